"""IKE message codec: messages parsed / serialized per second against scapy's IKEv2 layer.

Target (issue: IKEv2 message codec): >= 10x scapy for a typical IKE_SA_INIT
request and IKE_AUTH response. scapy has no IKE crypto, so the IKE_AUTH rows
compare the same payloads in the clear; the "SK" rows add our decryption /
encryption (AES-256-GCM, C core) on our side only, against the same scapy
baseline.
"""
import warnings

import pytest

from ikecore.crypto import Encr, SkCipher
from ikecore.protocol import parse_message
from ikecore.protocol.examples import ike_auth_response, ike_sa_init_request

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    scapy_all = pytest.importorskip("scapy.all")
scapy_all.conf.verb = 0
scapy_all.load_contrib("ikev2")
from scapy.contrib.ikev2 import IKEv2  # noqa: E402

TARGET = 10.0
GCM = SkCipher(Encr.AES_GCM_16, bytes(range(36)))

MESSAGES = {
    "IKE_SA_INIT request": ike_sa_init_request,
    "IKE_AUTH response": lambda: ike_auth_response(encrypted=False),
}


def scapy_tree(raw: bytes):
    """A scapy packet whose bytes() really rebuilds (no dissection cache)."""
    pkt = IKEv2(raw)
    pkt.clear_cache()
    assert bytes(pkt) == raw
    return pkt


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_parse(compare, name):
    raw = MESSAGES[name]().encode()
    assert parse_message(raw).encode() == raw
    ratio = compare(lambda: parse_message(raw), lambda: IKEv2(raw),
                    label=f"parse {name} ({len(raw)} B)", target=TARGET, baseline_name="scapy")
    assert ratio > 0


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_serialize(compare, name):
    msg = MESSAGES[name]()
    raw = msg.encode()
    pkt = scapy_tree(raw)
    compare(msg.encode, lambda: bytes(pkt), label=f"serialize {name} ({len(raw)} B)",
            target=TARGET, baseline_name="scapy")


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_parse_and_serialize(compare, name):
    raw = MESSAGES[name]().encode()

    def ours():
        return parse_message(raw).encode()

    def theirs():
        p = IKEv2(raw)
        p.clear_cache()
        return bytes(p)

    assert ours() == raw and theirs() == raw
    compare(ours, theirs, label=f"parse+serialize {name}", target=TARGET, baseline_name="scapy")


def test_ike_auth_response_parse_with_sk(compare):
    """Ours: parse + AES-GCM open + inner parse; scapy: parse of the clear payloads."""
    msg = ike_auth_response()
    sealed = msg.encode(GCM)
    clear = ike_auth_response(encrypted=False).encode()

    def ours():
        m = parse_message(sealed)
        m.decrypt(GCM)
        return m

    assert ours().inner == msg.inner
    compare(ours, lambda: IKEv2(clear), label="parse+decrypt IKE_AUTH response (SK, GCM)",
            target=TARGET, baseline_name="scapy (clear)")


def test_ike_auth_response_serialize_with_sk(compare):
    """Ours: serialize + AES-GCM seal; scapy: serialize the clear payloads."""
    msg = ike_auth_response()
    pkt = scapy_tree(ike_auth_response(encrypted=False).encode())
    compare(lambda: msg.encode(GCM), lambda: bytes(pkt),
            label="serialize+encrypt IKE_AUTH response (SK, GCM)", target=TARGET,
            baseline_name="scapy (clear)")
