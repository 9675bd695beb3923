"""Interop with an independent ESP implementation: scapy's SecurityAssociation.

For every suite (AES-GCM-16 128/256, ChaCha20-Poly1305, AES-CBC 128/256 with
HMAC-SHA2-256/384/512), tunnel (IPv4 and IPv6 inner) and transport mode, with and
without ESN, with and without UDP encapsulation (RFC 3948): scapy decrypts what
ikecore builds and ikecore (single and batch path) decrypts what scapy builds.
"""
from __future__ import annotations

import warnings

import pytest

scapy_all = pytest.importorskip("scapy.all")
ipsec = pytest.importorskip("scapy.layers.ipsec")
warnings.filterwarnings("ignore", module="scapy")

from scapy.all import ICMP, IP, TCP, UDP, IPv6, Raw, raw  # noqa: E402
from scapy.layers.inet6 import ICMPv6EchoRequest  # noqa: E402
from scapy.layers.ipsec import ESP, SecurityAssociation  # noqa: E402

from esp_suites import SUITES, Suite  # noqa: E402
from ikecore.esp import OK, PacketVector, udpencap  # noqa: E402

GW1, GW2 = "192.0.2.1", "192.0.2.2"
SPI = 0xC0DE1234
ESN_HIGH = 7


def _inner(mode: str):
    if mode == "tunnel4":
        return IP(src="10.1.0.1", dst="10.2.0.1") / ICMP(id=7, seq=3) / Raw(b"ikecore-esp" * 5), 4
    if mode == "tunnel6":
        return (IPv6(src="2001:db8:1::1", dst="2001:db8:2::1") / ICMPv6EchoRequest(id=7, seq=3)
                / Raw(b"v6 payload" * 3)), 41
    # transport: the TCP segment of a host-to-host packet
    return IP(src=GW1, dst=GW2) / TCP(sport=1234, dport=80, flags="PA") / Raw(b"GET / HTTP/1.0\r\n\r\n"), 6


def _scapy_sa(s: Suite, mode: str, esn: bool, natt: bool):
    kw = {}
    if s.integ_key:
        kw["auth_key"] = s.integ_key
    return SecurityAssociation(
        ESP, spi=SPI, crypt_algo=s.scapy_crypt, crypt_key=s.key, auth_algo=s.scapy_auth,
        tunnel_header=IP(src=GW1, dst=GW2) if mode.startswith("tunnel") else None,
        nat_t_header=UDP(sport=4500, dport=4500) if natt else None,
        esn_en=esn, esn=ESN_HIGH if esn else 0, **kw)


MODES = ["tunnel4", "tunnel6", "transport"]
params = pytest.mark.parametrize("mode", MODES)
esn_p = pytest.mark.parametrize("esn", [False, True], ids=["seq32", "esn"])
natt_p = pytest.mark.parametrize("natt", [False, True], ids=["esp", "udpencap"])
suite_p = pytest.mark.parametrize("name", sorted(SUITES))


def _payload_bytes(pkt, mode: str) -> bytes:
    return raw(pkt) if mode.startswith("tunnel") else raw(pkt)[20:]


@suite_p
@params
@esn_p
@natt_p
def test_scapy_decrypts_ikecore(name, mode, esn, natt):
    s = Suite(name)
    inner, nh = _inner(mode)
    payload = _payload_bytes(inner, mode)
    tx = s.sa(SPI, esn=esn, direction="out")
    low = 41
    tx.advance_seq(((ESN_HIGH << 32) if esn else 0) + low - 1)
    scapy_sa = _scapy_sa(s, mode, esn, natt)
    for i in range(3):
        esp = tx.encrypt(payload, nh)
        assert int.from_bytes(esp[4:8], "big") == low + i
        if natt:
            wire = IP(src=GW1, dst=GW2, proto=17) / Raw(udpencap.wrap(esp, 4500, 4500))
        else:
            wire = IP(src=GW1, dst=GW2, proto=50) / Raw(esp)
        got = scapy_sa.decrypt(IP(raw(wire)))
        if mode.startswith("tunnel"):
            assert raw(got) == payload
        else:
            assert raw(got[TCP]) == payload


@suite_p
@params
@esn_p
@natt_p
def test_ikecore_decrypts_scapy(name, mode, esn, natt):
    s = Suite(name)
    inner, nh = _inner(mode)
    payload = _payload_bytes(inner, mode)
    scapy_sa = _scapy_sa(s, mode, esn, natt)
    low = 0xFFFFFFF0 if esn else 100
    rx = s.sa(SPI, esn=esn, direction="in", replay_window=128)
    rx.resync_replay(((ESN_HIGH << 32) if esn else 0) + low - 1)
    rxb = s.sa(SPI, esn=esn, direction="in", replay_window=128)
    rxb.resync_replay(((ESN_HIGH << 32) if esn else 0) + low - 1)
    datagrams = []
    for i in range(3):
        out = scapy_sa.encrypt(inner if mode.startswith("tunnel") else inner.copy(), seq_num=low + i)
        ip_payload = raw(out)[len(raw(out)) - (out.len - out.ihl * 4):]
        if natt:
            sport, dport, udp_payload = udpencap.unwrap(ip_payload)
            assert (sport, dport) == (4500, 4500)
            kind, esp = udpencap.classify(udp_payload)
            assert kind == udpencap.Kind.ESP
            datagrams.append(udp_payload)
        else:
            esp = ip_payload
            datagrams.append(esp)
        assert rx.decrypt(esp) == (payload, nh)
        assert rx.last_decrypted_seq == ((ESN_HIGH << 32) if esn else 0) + low + i
    # the batch path: a vector as recvmmsg on UDP 4500 (or a raw ESP socket) would fill it
    vec = PacketVector(8)
    vec.load(datagrams)
    if natt:
        vec.classify_udpencap()
    assert rxb.decrypt_batch(vec) == 3
    for i in range(3):
        assert vec.status[i] == OK
        assert bytes(vec[i]) == payload and vec.next_headers[i] == nh
