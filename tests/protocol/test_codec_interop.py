"""Independent codecs as oracles: scapy's IKEv2 layer and tshark's dissector.

- scapy parses what ikecore builds (field by field, no Raw/Padding leftovers)
  and ikecore parses what scapy builds (to equal objects and equal octets);
- tshark dissects ikecore's messages with no malformed-packet or error expert
  info, and decrypts ikecore's SK payloads (AES-GCM, AES-CBC + HMAC-SHA-256)
  with the keys, reporting the ICV "[correct]".
Tests skip cleanly when scapy or tshark is missing (CI installs both).
"""
import shutil
import subprocess
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ikecore.crypto import Encr, Integ, SkCipher
from ikecore.protocol import (AuthPayload, CertPayload, CertReqPayload, CpAttribute, CpPayload,
                              DeletePayload, EapPayload, ExchangeType, Flags, IdiPayload,
                              IdrPayload, KePayload, Message, NoncePayload, NotifyPayload,
                              NotifyType, Proposal, ProtocolId, SaPayload, TrafficSelector,
                              Transform, TransformAttribute, TsiPayload, TsrPayload,
                              VendorIdPayload, fragment_message, parse_message)
from ikecore.protocol.examples import SPI_I, SPI_R, ike_auth_response, ike_sa_init_request

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    scapy_all = pytest.importorskip("scapy.all")
scapy_all.conf.verb = 0
scapy_all.load_contrib("ikev2")
from scapy.contrib import ikev2 as sc  # noqa: E402

GCM_KEY = bytes(range(36))
CBC_KEY, CBC_INTEG = bytes(range(16)), bytes(range(32))
GCM = SkCipher(Encr.AES_GCM_16, GCM_KEY)
CBC = SkCipher(Encr.AES_CBC, CBC_KEY, Integ.HMAC_SHA2_256_128, CBC_INTEG)



def _certificate_der() -> bytes:
    """A real (self-signed) X.509 certificate, so that dissectors can decode CERT."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.derive_private_key(12345, ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ikecore test")])
    t = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(t)
            .not_valid_after(t + datetime.timedelta(days=365)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


# a message holding every payload type scapy's layer knows
EVERYTHING = [
    SaPayload([Proposal(1, ProtocolId.ESP, b"\x01\x02\x03\x04", [
        Transform.with_key_length(1, Encr.AES_CBC, 256), Transform(3, 12), Transform(5, 1)])]),
    KePayload(19, bytes(range(64))),
    IdiPayload(2, b"client.example.org"),
    IdrPayload(1, bytes([192, 0, 2, 1])),
    CertPayload(4, _certificate_der()),
    CertReqPayload(4, bytes(range(20))),
    AuthPayload(2, bytes(range(32))),
    NoncePayload(bytes(range(32))),
    NotifyPayload(3, b"\xaa\xbb\xcc\xdd", NotifyType.REKEY_SA, b""),
    NotifyPayload(notify_type=NotifyType.COOKIE2, data=bytes(16)),
    DeletePayload(ProtocolId.ESP, [b"\x00\x00\x10\x01", b"\x00\x00\x10\x02"]),
    VendorIdPayload(b"ikecore"),
    TsiPayload([TrafficSelector.from_network("10.0.0.0/24", 6, 80, 443)]),
    TsrPayload([TrafficSelector.from_network("2001:db8::/48")]),
    CpPayload(1, [CpAttribute(1), CpAttribute(3), CpAttribute(8)]),
    EapPayload(2, 5, 1, b"user@example.org"),
]


def layers(pkt):
    out = []
    p = pkt
    while p is not None and not isinstance(p, scapy_all.NoPayload):
        out.append(p)
        p = p.payload
    return out


def scapy_parse(raw: bytes):
    pkt = sc.IKEv2(raw)
    ls = layers(pkt)
    for layer in ls:
        assert not isinstance(layer, (scapy_all.Raw, scapy_all.Padding)), pkt.show(dump=True)
    return pkt, ls


# -- scapy parses what ikecore builds ---------------------------------------------------

def test_scapy_parses_ike_sa_init_request():
    raw = ike_sa_init_request().encode()
    pkt, ls = scapy_parse(raw)
    assert pkt.init_SPI == SPI_I and pkt.resp_SPI == bytes(8)
    assert pkt.exch_type == 34 and pkt.id == 0 and pkt.length == len(raw)
    sa = pkt[sc.IKEv2_SA]
    props = []
    p = sa.prop
    while p is not None and isinstance(p, sc.IKEv2_Proposal):
        props.append(p)
        p = p.payload if not isinstance(p.payload, scapy_all.NoPayload) else None
    assert [x.proposal for x in props] == [1, 2]
    assert [x.trans_nb for x in props] == [8, 7]
    t = props[0].trans
    assert (t.transform_type, t.transform_id, t.key_length) == (1, 20, 256)
    assert pkt[sc.IKEv2_KE].group == 31 and pkt[sc.IKEv2_KE].ke == bytes(range(32))
    assert pkt[sc.IKEv2_Nonce].nonce == bytes(range(100, 132))
    notifies = [x for x in ls if isinstance(x, sc.IKEv2_Notify)]
    assert [n.type for n in notifies] == [16388, 16389, 16430, 16431]
    assert notifies[0].notify == bytes(range(20))
    assert pkt[sc.IKEv2_VendorID].vendorID == bytes.fromhex("882fe56d6fd20dbc2251613b2ebe5beb")


def test_scapy_parses_every_payload():
    m = Message(SPI_I, SPI_R, ExchangeType.INFORMATIONAL, Flags.RESPONSE, 9, EVERYTHING)
    raw = m.encode()
    pkt, ls = scapy_parse(raw)
    assert [l.__class__.__name__ for l in ls] == [
        "IKEv2", "IKEv2_SA", "IKEv2_KE", "IKEv2_IDi", "IKEv2_IDr", "IKEv2_CERT", "IKEv2_CERTREQ",
        "IKEv2_AUTH", "IKEv2_Nonce", "IKEv2_Notify", "IKEv2_Notify", "IKEv2_Delete",
        "IKEv2_VendorID", "IKEv2_TSi", "IKEv2_TSr", "IKEv2_CP", "IKEv2_EAP"]
    for layer, payload in zip(ls[1:], EVERYTHING):
        assert layer.length == len(payload.encode_body()) + 4
    assert pkt[sc.IKEv2_IDi].ID == b"client.example.org"
    assert pkt[sc.IKEv2_IDr].ID == "192.0.2.1"
    assert pkt[sc.IKEv2_CERTREQ].cert_authority == bytes(range(20))
    assert pkt[sc.IKEv2_AUTH].auth_type == 2
    n = pkt[sc.IKEv2_Notify]
    assert (n.proto, n.SPIsize, n.type, n.SPI) == (3, 4, 16393, b"\xaa\xbb\xcc\xdd")
    d = pkt[sc.IKEv2_Delete]
    assert (d.proto, d.SPIsize, d.SPInum) == (3, 4, 2)
    ts = pkt[sc.IKEv2_TSi].traffic_selector[0]
    assert (ts.starting_address_v4, ts.ending_address_v4, ts.start_port, ts.end_port,
            ts.IP_protocol_ID) == ("10.0.0.0", "10.0.0.255", 80, 443, 6)
    ts6 = pkt[sc.IKEv2_TSr].traffic_selector[0]
    assert ts6.starting_address_v6 == "2001:db8::"
    assert [a.type for a in pkt[sc.IKEv2_CP].attributes] == [1, 3, 8]
    assert pkt[sc.IKEv2_EAP].load == EverythingEap()


def EverythingEap():
    return EVERYTHING[-1].encode_body()


@pytest.mark.parametrize("cipher", [GCM, CBC], ids=["gcm", "cbc"])
def test_scapy_parses_encrypted_and_fragmented(cipher):
    raw = ike_auth_response().encode(cipher)
    pkt, _ = scapy_parse(raw)
    sk = pkt[sc.IKEv2_Encrypted]
    assert sk.next_payload == 36 and bytes(sk.load) == raw[32:]
    for i, f in enumerate(fragment_message(ike_auth_response(), cipher, 200), 1):
        pkt, _ = scapy_parse(f)
        skf = pkt[sc.IKEv2_Encrypted_Fragment]
        assert skf.frag_number == i and skf.length == len(f) - 28


scapy_payloads = st.one_of(
    st.builds(NoncePayload, st.binary(min_size=16, max_size=64)),
    st.builds(lambda d: KePayload(31, d), st.binary(min_size=32, max_size=32)),
    st.builds(lambda t, d: NotifyPayload(notify_type=t, data=d),
              st.sampled_from([16384, 16396, 16430, 16432, 16433, 40000]), st.binary(max_size=30)),
    st.builds(VendorIdPayload, st.binary(min_size=1, max_size=30)),
    st.builds(lambda d: IdiPayload(2, d), st.binary(min_size=1, max_size=30)),
    st.builds(lambda d: AuthPayload(2, d), st.binary(min_size=1, max_size=64)),
    st.builds(lambda d: CertPayload(4, d), st.binary(min_size=1, max_size=64)),
    st.builds(lambda ids: SaPayload([Proposal(1, 1, b"", [Transform(t, i) for t, i in ids])]),
              st.lists(st.tuples(st.sampled_from([2, 3, 4]), st.integers(1, 30)), min_size=1,
                       max_size=6)),
)


@settings(max_examples=60, deadline=None)
@given(payloads=st.lists(scapy_payloads, max_size=6), mid=st.integers(0, 2**32 - 1))
def test_scapy_parses_generated_messages(payloads, mid):
    raw = Message(SPI_I, SPI_R, 37, 0x20, mid, payloads).encode()
    pkt, ls = scapy_parse(raw)
    assert pkt.id == mid and pkt.length == len(raw)
    assert [l.length for l in ls[1:]] == [len(p.encode_body()) + 4 for p in payloads]
    assert bytes(pkt) == raw


# -- ikecore parses what scapy builds -------------------------------------------------------

def test_ikecore_parses_scapy_ike_sa_init():
    pkt = (sc.IKEv2(init_SPI=SPI_I, resp_SPI=bytes(8), exch_type=34, flags="Initiator", id=0)
           / sc.IKEv2_SA(prop=sc.IKEv2_Proposal(proposal=1, proto=1, trans_nb=4, trans=(
               sc.IKEv2_Transform(transform_type=1, transform_id=20, length=12, key_length=256)
               / sc.IKEv2_Transform(transform_type=2, transform_id=5)
               / sc.IKEv2_Transform(transform_type=4, transform_id=19)
               / sc.IKEv2_Transform(transform_type=4, transform_id=31))))
           / sc.IKEv2_KE(group=19, ke=bytes(range(64)))
           / sc.IKEv2_Nonce(nonce=bytes(range(32)))
           / sc.IKEv2_Notify(type=16388, notify=bytes(20))
           / sc.IKEv2_Notify(type=16430)
           / sc.IKEv2_VendorID(vendorID=b"scapy"))
    raw = bytes(pkt)
    m = parse_message(raw)
    expected = Message(SPI_I, bytes(8), 34, Flags.INITIATOR, 0, [
        SaPayload([Proposal(1, 1, b"", [
            Transform(1, 20, [TransformAttribute(14, 256)]), Transform(2, 5), Transform(4, 19),
            Transform(4, 31)])]),
        KePayload(19, bytes(range(64))), NoncePayload(bytes(range(32))),
        NotifyPayload(notify_type=16388, data=bytes(20)), NotifyPayload(notify_type=16430),
        VendorIdPayload(b"scapy")])
    assert m == expected
    assert expected.encode() == raw


def test_ikecore_parses_scapy_auth_payloads():
    pkt = (sc.IKEv2(init_SPI=SPI_I, resp_SPI=SPI_R, exch_type=35, flags="Response", id=1)
           / sc.IKEv2_IDr(IDtype=2, ID=b"gw.example.org")
           / sc.IKEv2_AUTH(auth_type=2, load=bytes(32))
           / sc.IKEv2_SA(prop=sc.IKEv2_Proposal(proposal=1, proto=3, SPI=b"\x01\x02\x03\x04",
                                                trans_nb=2, trans=(
               sc.IKEv2_Transform(transform_type=1, transform_id=28)
               / sc.IKEv2_Transform(transform_type=5, transform_id=0))))
           / sc.IKEv2_TSi(number_of_TSs=1, traffic_selector=[sc.IPv4TrafficSelector(
               starting_address_v4="10.1.0.0", ending_address_v4="10.1.255.255")])
           / sc.IKEv2_TSr(number_of_TSs=1, traffic_selector=[sc.IPv6TrafficSelector(
               # scapy leaves the IPv6 selector length at its IPv4 default: set it
               length=40, starting_address_v6="fd00::", ending_address_v6="fd00::ffff")])
           / sc.IKEv2_Delete(proto=3, SPI=[b"\x00\x00\x00\x07"], SPInum=1)
           / sc.IKEv2_Notify(type=16396))
    raw = bytes(pkt)
    m = parse_message(raw)
    assert m.payloads == [
        IdrPayload(2, b"gw.example.org"), AuthPayload(2, bytes(32)),
        SaPayload([Proposal(1, 3, b"\x01\x02\x03\x04", [Transform(1, 28), Transform(5, 0)])]),
        TsiPayload([TrafficSelector.from_network("10.1.0.0/16")]),
        TsrPayload([TrafficSelector.from_range("fd00::", "fd00::ffff")]),
        DeletePayload(3, [b"\x00\x00\x00\x07"]), NotifyPayload(notify_type=16396)]
    assert m.encode() == raw


@settings(max_examples=60, deadline=None)
@given(nonce=st.binary(min_size=16, max_size=256), notify_type=st.integers(0, 65535),
       data=st.binary(max_size=50), vid=st.binary(min_size=1, max_size=50))
def test_ikecore_parses_generated_scapy_messages(nonce, notify_type, data, vid):
    if notify_type in (16390, 16388, 16389, 17, 9, 16385, 16397, 16398, 16401, 16402, 16409,
                       16413, 16431, 16393, 39, 44, 16407, 16408):
        notify_type = 40000        # those have length rules / special scapy layouts
    pkt = (sc.IKEv2(init_SPI=SPI_I, resp_SPI=SPI_R, exch_type=37, id=3)
           / sc.IKEv2_Nonce(nonce=nonce) / sc.IKEv2_Notify(type=notify_type, notify=data)
           / sc.IKEv2_VendorID(vendorID=vid))
    raw = bytes(pkt)
    m = parse_message(raw)
    assert m.payloads == [NoncePayload(nonce), NotifyPayload(notify_type=notify_type, data=data),
                          VendorIdPayload(vid)]
    assert m.encode() == raw


# -- tshark ---------------------------------------------------------------------------------

TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")


def tshark_dissect(tmp_path, raws, *options):
    pcap = tmp_path / "ike.pcap"
    pkts = [scapy_all.IP(src="127.0.0.1", dst="127.0.0.1") / scapy_all.UDP(sport=500, dport=500)
            / scapy_all.Raw(load=r) for r in raws]
    scapy_all.wrpcap(str(pcap), pkts)
    cmd = [TSHARK, "-n", "-r", str(pcap), "-V", "-d", "udp.port==500,isakmp"]
    for o in options:
        cmd += ["-o", o]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def assert_clean(text):
    assert "Malformed" not in text, text
    assert "Expert Info (Error" not in text, text
    assert "Expert Info (Warning" not in text, text
    assert "incorrect" not in text, text


def decryption_table(encr_alg, sk_e, integ_alg="NONE [RFC4306]", sk_a=b""):
    return (f"uat:ikev2_decryption_table:{SPI_I.hex()},{SPI_R.hex()},{sk_e.hex()},{sk_e.hex()},"
            f'"{encr_alg}",{sk_a.hex()},{sk_a.hex()},"{integ_alg}"')


@pytest.mark.interop
@needs_tshark
def test_tshark_dissects_clear_messages(tmp_path):
    msgs = [ike_sa_init_request().encode(),
            ike_auth_response(encrypted=False).encode(),
            Message(SPI_I, SPI_R, 37, Flags.RESPONSE, 9, EVERYTHING).encode()]
    text = tshark_dissect(tmp_path, msgs)
    assert_clean(text)
    assert text.count("Internet Security Association and Key Management Protocol") == 3
    assert "Exchange type: IKE_SA_INIT (34)" in text
    assert "NAT_DETECTION_SOURCE_IP" in text
    assert "ID_FQDN: gateway.example.org" in text
    assert "Payload: Extensible Authentication (48)" in text or "EAP" in text


@pytest.mark.interop
@needs_tshark
def test_tshark_decrypts_aes_gcm(tmp_path):
    raw = ike_auth_response().encode(GCM)
    text = tshark_dissect(tmp_path, [raw],
                          decryption_table("AES-GCM-256 with 16 octet ICV [RFC5282]", GCM_KEY))
    assert_clean(text)
    assert "[correct]" in text
    assert "ID_FQDN: gateway.example.org" in text
    assert "CLONE_IKE_SA_SUPPORTED" in text or "16432" in text


@pytest.mark.interop
@needs_tshark
def test_tshark_decrypts_aes_cbc_hmac_sha256(tmp_path):
    raw = ike_auth_response().encode(CBC)
    text = tshark_dissect(tmp_path, [raw],
                          decryption_table("AES-CBC-128 [RFC3602]", CBC_KEY,
                                           "HMAC_SHA2_256_128 [RFC4868]", CBC_INTEG))
    assert_clean(text)
    assert "[correct]" in text
    assert "ID_FQDN: gateway.example.org" in text


@pytest.mark.interop
@needs_tshark
def test_tshark_flags_a_wrong_key(tmp_path):
    """The oracle is not vacuous: with the wrong key tshark reports the ICV incorrect."""
    raw = ike_auth_response().encode(GCM)
    text = tshark_dissect(tmp_path, [raw],
                          decryption_table("AES-GCM-256 with 16 octet ICV [RFC5282]", bytes(36)))
    assert "incorrect" in text


@pytest.mark.interop
@needs_tshark
def test_tshark_dissects_fragments(tmp_path):
    frags = fragment_message(ike_auth_response(), GCM, 200)
    text = tshark_dissect(tmp_path, frags,
                          decryption_table("AES-GCM-256 with 16 octet ICV [RFC5282]", GCM_KEY))
    assert "Malformed" not in text and "Expert Info (Error" not in text
    assert text.count("Encrypted and Authenticated Fragment") >= len(frags)
