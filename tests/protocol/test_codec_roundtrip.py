"""Property tests: every payload (and whole messages, clear and encrypted) survives
encode -> parse -> encode byte for byte and parses back to an equal object."""
import ipaddress

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ikecore.crypto import Encr, Integ, SkCipher
from ikecore.protocol import (AuthPayload, CertPayload, CertReqPayload, CpAttribute,
                              CpPayload, DeletePayload, EapPayload, IdiPayload, IdrPayload,
                              KE_DATA_LENGTH, KePayload, Message, NoncePayload, NotifyPayload,
                              Proposal, SaPayload, TrafficSelector, Transform,
                              TransformAttribute, TsiPayload, TsrPayload, UnknownPayload,
                              UnknownTrafficSelector, VendorIdPayload, encode_message,
                              parse_message)
from ikecore.protocol.payloads import CP_ATTRIBUTE_LENGTHS, NOTIFY_DATA_LENGTH, NOTIFY_WITH_CHILD_SPI

u8 = st.integers(0, 255)
u16 = st.integers(0, 0xFFFF)
small = st.binary(min_size=1, max_size=40)


def attributes():
    tv = st.builds(TransformAttribute, st.integers(0, 0x7FFF).filter(lambda t: t != 14), u16)
    tlv = st.builds(TransformAttribute, st.integers(0, 0x7FFF).filter(lambda t: t != 14),
                    st.binary(max_size=12))
    key_len = st.builds(TransformAttribute, st.just(14), st.sampled_from([128, 192, 256]))
    return st.lists(st.one_of(tv, tlv, key_len), max_size=3)


transforms = st.builds(Transform, st.integers(1, 255), u16, attributes())


@st.composite
def proposals(draw, num):
    protocol = draw(st.sampled_from([1, 2, 3, 0, 200]))
    if protocol == 1:
        spi = draw(st.sampled_from([b"", bytes(range(8))]))
    elif protocol in (2, 3):
        spi = draw(st.binary(min_size=4, max_size=4))
    else:
        spi = draw(st.binary(max_size=16))
    return Proposal(num, protocol, spi, draw(st.lists(transforms, min_size=1, max_size=6)))


@st.composite
def sa_payloads(draw):
    n = draw(st.integers(1, 4))
    if n == 1:
        return SaPayload([draw(proposals(draw(st.integers(1, 255))))])
    return SaPayload([draw(proposals(i)) for i in range(1, n + 1)])


@st.composite
def ke_payloads(draw):
    group = draw(st.one_of(st.sampled_from(sorted(KE_DATA_LENGTH)), st.integers(33, 0xFFFF)))
    n = KE_DATA_LENGTH.get(group)
    data = draw(st.binary(min_size=n, max_size=n) if n else small)
    return KePayload(group, data)


@st.composite
def id_payloads(draw):
    cls = draw(st.sampled_from([IdiPayload, IdrPayload]))
    t = draw(st.sampled_from([1, 2, 3, 5, 9, 10, 11, 200]))
    n = {1: 4, 5: 16}.get(t)
    return cls(t, draw(st.binary(min_size=n, max_size=n) if n else small))


@st.composite
def auth_payloads(draw):
    method = draw(st.sampled_from([1, 2, 9, 10, 11, 14, 250]))
    if method == 14:
        alg = draw(st.binary(max_size=20))
        return AuthPayload(14, bytes([len(alg)]) + alg + draw(st.binary(max_size=64)))
    return AuthPayload(method, draw(st.binary(min_size=1, max_size=64)))


@st.composite
def notify_payloads(draw):
    t = draw(st.one_of(st.sampled_from(sorted(NOTIFY_DATA_LENGTH) + sorted(NOTIFY_WITH_CHILD_SPI)
                                       + [16384, 16396, 16430, 16431, 16432, 16433, 16402]),
                       u16))
    if t in NOTIFY_WITH_CHILD_SPI:
        proto, spi = draw(st.sampled_from([2, 3])), draw(st.binary(min_size=4, max_size=4))
    else:
        proto = draw(st.sampled_from([0, 1]))
        spi = draw(st.sampled_from([b"", bytes(8)]))
    lo, hi = NOTIFY_DATA_LENGTH.get(t, (0, 40))
    if t == 16431:
        data = draw(st.lists(u16, max_size=5).map(lambda l: b"".join(x.to_bytes(2, "big") for x in l)))
    elif t == 16402:
        data = draw(st.sampled_from([bytes(12), bytes(36)]))
    else:
        data = draw(st.binary(min_size=lo, max_size=min(hi, 80)))
    return NotifyPayload(proto, spi, t, data)


@st.composite
def delete_payloads(draw):
    proto = draw(st.sampled_from([1, 2, 3]))
    if proto == 1:
        return DeletePayload(1)
    return DeletePayload(proto, draw(st.lists(st.binary(min_size=4, max_size=4), min_size=1,
                                              max_size=5)))


@st.composite
def selectors(draw):
    kind = draw(st.sampled_from([4, 6, 0]))
    if kind == 0:
        return UnknownTrafficSelector(draw(st.integers(9, 255)), draw(st.binary(min_size=1, max_size=20)))
    n = 4 if kind == 4 else 16
    a, b = sorted([draw(st.binary(min_size=n, max_size=n)), draw(st.binary(min_size=n, max_size=n))])
    ports = draw(st.one_of(st.just((65535, 0)), st.tuples(u16, u16).map(sorted)))
    return TrafficSelector(7 if kind == 4 else 8, draw(u8), ports[0], ports[1], a, b)


ts_payloads = st.builds(lambda cls, sels: cls(sels), st.sampled_from([TsiPayload, TsrPayload]),
                        st.lists(selectors(), min_size=1, max_size=4))


@st.composite
def cp_attributes(draw):
    t = draw(st.one_of(st.sampled_from(sorted(CP_ATTRIBUTE_LENGTHS)), st.integers(16, 0x7FFF),
                       st.just(14)))
    if t == 14:
        return CpAttribute(14, draw(st.binary(max_size=10).filter(lambda b: len(b) % 2 == 0)))
    allowed = CP_ATTRIBUTE_LENGTHS.get(t)
    if allowed is not None:
        n = draw(st.sampled_from(allowed))
        return CpAttribute(t, draw(st.binary(min_size=n, max_size=n)))
    return CpAttribute(t, draw(st.binary(max_size=20)))


cp_payloads = st.builds(CpPayload, st.sampled_from([1, 2, 3, 4]), st.lists(cp_attributes(), max_size=5))


@st.composite
def eap_payloads(draw):
    code = draw(st.sampled_from([1, 2, 3, 4]))
    if code in (3, 4):
        return EapPayload(code, draw(u8))
    return EapPayload(code, draw(u8), draw(u8), draw(st.binary(max_size=60)))


unknown_payloads = st.builds(UnknownPayload,
                             st.integers(1, 255).filter(lambda t: t not in range(33, 49) and t != 53),
                             st.binary(max_size=30))

PAYLOADS = {
    "SA": sa_payloads(),
    "KE": ke_payloads(),
    "ID": id_payloads(),
    "CERT": st.builds(CertPayload, u8, st.binary(max_size=60)),
    "CERTREQ": st.builds(CertReqPayload, u8, st.binary(max_size=60)),
    "AUTH": auth_payloads(),
    "NONCE": st.builds(NoncePayload, st.binary(min_size=16, max_size=256)),
    "NOTIFY": notify_payloads(),
    "DELETE": delete_payloads(),
    "VENDOR_ID": st.builds(VendorIdPayload, st.binary(max_size=40)),
    "TS": ts_payloads,
    "CP": cp_payloads,
    "EAP": eap_payloads(),
    "UNKNOWN": unknown_payloads,
}
any_payload = st.one_of(*PAYLOADS.values())


@st.composite
def messages(draw, max_payloads=8):
    return Message(draw(st.binary(min_size=8, max_size=8)), draw(st.binary(min_size=8, max_size=8)),
                   draw(st.integers(0, 255)), draw(u8), draw(st.integers(0, 0xFFFFFFFF)),
                   draw(st.lists(any_payload, max_size=max_payloads)),
                   version=draw(st.integers(0x20, 0x2F)))


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_payload_round_trip(kind, data):
    payload = data.draw(PAYLOADS[kind])
    payload.validate()                       # the strategies make valid payloads
    msg = Message(bytes(range(1, 9)), payloads=[payload])
    raw = msg.encode()
    back = parse_message(raw)
    assert back.payloads == [payload]
    assert back.encode() == raw


@settings(max_examples=300, deadline=None)
@given(msg=messages())
def test_message_round_trip(msg):
    raw = msg.encode()
    back = parse_message(raw)
    assert back == msg
    assert back.encode() == raw
    assert back.raw == raw


CIPHERS = [
    SkCipher(Encr.AES_GCM_16, bytes(range(36))),
    SkCipher(Encr.CHACHA20_POLY1305, bytes(range(36))),
    SkCipher(Encr.AES_CBC, bytes(range(16)), Integ.HMAC_SHA2_256_128, bytes(range(32))),
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msg=messages(max_payloads=3), inner=st.lists(any_payload, max_size=8),
       cipher=st.sampled_from(CIPHERS))
def test_encrypted_message_round_trip(msg, inner, cipher):
    msg.inner = inner
    raw = encode_message(msg, cipher)
    back = parse_message(raw)
    assert back.payloads == msg.payloads
    assert back.inner is None and back.sk is not None
    assert back.encode() == raw                       # re-emitted as received
    assert back.decrypt(cipher) == inner
    assert back == Message(msg.spi_i, msg.spi_r, msg.exchange_type, msg.flags, msg.message_id,
                           msg.payloads, inner, back.sk, msg.version)


def test_traffic_selector_helpers():
    ts = TrafficSelector.from_range("10.0.0.1", "10.0.0.9", ip_protocol=6, start_port=80,
                                    end_port=80)
    assert ts.start_address == ipaddress.ip_address("10.0.0.1")
    ts6 = TrafficSelector.from_network("2001:db8::/32")
    assert ts6.ts_type == 8
    assert ts6.end_address == ipaddress.ip_address("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")
