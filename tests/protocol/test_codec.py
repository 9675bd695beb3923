"""The IKE message codec: known layouts, the SK payload, helpers, the RFC 7634 vector."""
import json
from pathlib import Path

import pytest

from ikecore.crypto import Encr, Integ, SkCipher
from ikecore.errors import (IkeError, IntegrityCheckFailed, InvalidKeyExchangeData,
                            InvalidMajorVersion, ParseError, UnsupportedCriticalPayload)
from ikecore.protocol import (AuthPayload, CertPayload, CertReqPayload, CpAttribute,
                              CpAttributeType, CpPayload, DeletePayload, EapPayload,
                              ExchangeType, Flags, IdiPayload, IdPayload, IdrPayload, IdType,
                              KePayload, Message, NoncePayload, NotifyPayload, NotifyType,
                              PayloadType, Proposal, ProtocolId, SaPayload, TrafficSelector,
                              Transform, TransformAttribute, TransformType, TsiPayload,
                              TsrPayload, UnknownPayload,
                              UnknownTrafficSelector, VendorIdPayload, decrypt_message,
                              encode_message, name_of, parse_message, parse_payload_body)
from ikecore.protocol.examples import (SPI_I, SPI_R, ike_auth_response, ike_sa_init_request)

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def hdr(next_payload, length, xchg=34, flags=0x08, mid=0, spi_r=bytes(8), version=0x20):
    return (SPI_I + spi_r + bytes([next_payload, version, xchg, flags]) + mid.to_bytes(4, "big")
            + length.to_bytes(4, "big"))


def wrap(payload_type, body, next_payload=0, flags=0):
    return bytes([next_payload, flags]) + (len(body) + 4).to_bytes(2, "big") + body


def one_payload_message(payload_type, body, **kw):
    p = wrap(payload_type, body)
    return hdr(payload_type, 28 + len(p), **kw) + p


# -- the header ---------------------------------------------------------------------

def test_header_fields():
    raw = ike_sa_init_request().encode()
    m = parse_message(raw)
    assert m.spi_i == SPI_I and m.spi_r == bytes(8)
    assert m.exchange_type == ExchangeType.IKE_SA_INIT
    assert m.flags == Flags.INITIATOR and m.is_initiator and m.is_request and not m.is_response
    assert m.message_id == 0 and m.version == 0x20
    assert m.raw == raw and m.sk is None and m.inner is None


def test_empty_message_round_trip():
    raw = hdr(0, 28, xchg=37, flags=0x20, mid=7)
    m = parse_message(raw)
    assert m.payloads == [] and m.message_id == 7 and m.is_response
    assert m.encode() == raw


def test_minor_version_is_ignored_and_kept():
    raw = hdr(0, 28, version=0x21)
    assert parse_message(raw).version == 0x21
    assert parse_message(raw).encode() == raw


def test_major_version_above_2_is_invalid_major_version():
    with pytest.raises(InvalidMajorVersion) as e:
        parse_message(hdr(0, 28, version=0x30))
    assert e.value.notify_type == NotifyType.INVALID_MAJOR_VERSION


def test_ikev1_is_a_parse_error():
    with pytest.raises(ParseError):
        parse_message(hdr(0, 28, version=0x10))


def test_parse_accepts_bytearray_and_memoryview():
    raw = ike_sa_init_request().encode()
    assert parse_message(bytearray(raw)) == parse_message(memoryview(raw))


def test_parse_rejects_non_bytes():
    with pytest.raises(TypeError):
        parse_message("not bytes")


# -- payload layouts, byte for byte (RFC 7296 §3.x diagrams) ----------------------

def test_ke_layout():
    p = KePayload(31, bytes(32))
    assert p.encode_body() == b"\x00\x1f\x00\x00" + bytes(32)


def test_transform_key_length_attribute_layout():
    t = Transform.with_key_length(TransformType.ENCR, Encr.AES_CBC, 128)
    assert t.encode(last=True) == bytes.fromhex("0000000c 01 00 000c 800e 0080".replace(" ", ""))
    assert t.key_length == 128


def test_sa_layout():
    sa = SaPayload([Proposal(1, ProtocolId.ESP, b"\x01\x02\x03\x04", [
        Transform(TransformType.ENCR, Encr.CHACHA20_POLY1305), Transform(TransformType.ESN, 0)])])
    assert sa.encode_body() == bytes.fromhex(
        "0000001c" "01030402" "01020304"   # last, length 28, num 1, ESP, SPI size 4, 2 transforms
        "03000008" "0100001c"              # more, length 8, ENCR, id 28
        "00000008" "05000000")             # last, ESN 0


def test_notify_layout():
    n = NotifyPayload(ProtocolId.ESP, b"\xaa\xbb\xcc\xdd", NotifyType.REKEY_SA, b"")
    assert n.encode_body() == bytes.fromhex("0304" "4009" "aabbccdd")


def test_delete_layout():
    assert DeletePayload(ProtocolId.IKE).encode_body() == bytes.fromhex("01000000")
    d = DeletePayload(ProtocolId.ESP, [b"\x00\x00\x00\x01", b"\x00\x00\x00\x02"])
    assert d.spi_size == 4
    assert d.encode_body() == bytes.fromhex("03040002" "00000001" "00000002")


def test_ts_layout():
    ts = TsiPayload([TrafficSelector.from_network("192.0.2.0/24", ip_protocol=17,
                                                  start_port=500, end_port=500)])
    assert ts.encode_body() == bytes.fromhex(
        "01000000" "07110010" "01f401f4" "c0000200" "c00002ff")
    sel = ts.selectors[0]
    assert str(sel.start_address) == "192.0.2.0" and str(sel.end_address) == "192.0.2.255"


def test_id_auth_cert_layouts():
    assert IdiPayload(IdType.ID_FQDN, b"a.b").encode_body() == b"\x02\x00\x00\x00a.b"
    assert IdiPayload(IdType.ID_FQDN, b"a.b").id_body == b"\x02\x00\x00\x00a.b"
    assert AuthPayload(2, b"\x01" * 4).encode_body() == b"\x02\x00\x00\x00" + b"\x01" * 4
    assert CertPayload(4, b"der").encode_body() == b"\x04der"
    creq = CertReqPayload(4, bytes(20) + b"\x01" * 20)
    assert creq.ca_hashes == [bytes(20), b"\x01" * 20]


def test_cp_and_eap_layouts():
    cp = CpPayload(1, [CpAttribute(CpAttributeType.INTERNAL_IP4_ADDRESS),
                       CpAttribute(CpAttributeType.INTERNAL_IP4_DNS, bytes([8, 8, 8, 8]))])
    assert cp.encode_body() == bytes.fromhex("01000000" "00010000" "00030004" "08080808")
    assert EapPayload(2, 7, 1, b"me").encode_body() == bytes.fromhex("02070007" "01") + b"me"
    assert EapPayload(3, 7).encode_body() == bytes.fromhex("03070004")


def test_every_payload_type_in_one_message_round_trips():
    payloads = [
        SaPayload([Proposal(1, 1, b"", [Transform(1, 20, []), Transform(2, 5), Transform(4, 31)])]),
        KePayload(31, bytes(32)), IdiPayload(1, bytes(4)), IdrPayload(5, bytes(16)),
        CertPayload(4, b"cert"), CertReqPayload(4, bytes(20)), AuthPayload(14, b"\x01\x02\x03"),
        NoncePayload(bytes(16)), NotifyPayload(notify_type=60000, data=b"private"),
        DeletePayload(3, [b"abcd"]), VendorIdPayload(b"vendor"),
        TsiPayload([TrafficSelector.from_network("::/0")]),
        TsrPayload([UnknownTrafficSelector(9, b"\x00" + bytes(12))]),
        CpPayload(2, [CpAttribute(0x1234, b"x")]), EapPayload(1, 1, 4, b"\x10" * 17),
        UnknownPayload(200, b"whatever"),
    ]
    m = Message(SPI_I, SPI_R, 37, 0, 3, payloads)
    raw = m.encode()
    back = parse_message(raw)
    assert back == m
    assert back.encode() == raw


def test_unknown_values_are_preserved():
    sa = SaPayload([Proposal(1, 1, b"", [Transform(1, 1024, [
        TransformAttribute(0x1234, b"tlv"), TransformAttribute(0x0777, 5)])])])
    m = Message(SPI_I, SPI_R, 37, 0, 0, [sa, NotifyPayload(notify_type=12345, data=b"?")])
    back = parse_message(m.encode())
    assert back == m
    assert back.payloads[1].notify_type == 12345
    assert name_of("notify", 12345) == "notify#12345"
    assert name_of("notify", 16390) == "COOKIE"


def test_nonzero_reserved_fields_are_ignored():
    body = b"\x00\x1f\xff\xff" + bytes(32)          # KE with RESERVED = ffff
    m = parse_message(one_payload_message(PayloadType.KE, body))
    assert m.payloads == [KePayload(31, bytes(32))]


def test_critical_bit_on_a_known_payload_is_ignored():
    body = bytes(16)
    p = bytes([0, 0x80]) + (20).to_bytes(2, "big") + body
    m = parse_message(hdr(40, 48) + p)
    assert m.payloads == [NoncePayload(bytes(16))]


def test_unknown_noncritical_payload_is_skipped_but_kept():
    p = bytes([40, 0]) + (8).to_bytes(2, "big") + b"abcd" + wrap(40, bytes(16))
    m = parse_message(hdr(99, 28 + len(p)) + p)
    assert m.payloads == [UnknownPayload(99, b"abcd"), NoncePayload(bytes(16))]
    assert m.encode() == m.raw


def test_unknown_critical_payload_raises_unsupported_critical_payload():
    p = bytes([0, 0x80]) + (8).to_bytes(2, "big") + b"abcd"
    with pytest.raises(UnsupportedCriticalPayload) as e:
        parse_message(hdr(99, 28 + len(p)) + p)
    assert e.value.notify_type == NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD
    assert e.value.notify_data == b"\x63"      # the payload type (RFC 7296 §3.10.1)
    assert isinstance(e.value, ParseError) and isinstance(e.value, ValueError)


def test_unknown_critical_payload_inside_sk():
    c = SkCipher(Encr.AES_GCM_16, bytes(36))
    m = Message(SPI_I, SPI_R, 37, 0, 1, [], [UnknownPayload(99, b"zz", critical=True)])
    back = parse_message(m.encode(c))
    with pytest.raises(UnsupportedCriticalPayload):
        back.decrypt(c)


# -- semantic checks ------------------------------------------------------------------

@pytest.mark.parametrize("payload", [
    KePayload(19, bytes(63)),                        # ECP-256 needs 64 octets
    KePayload(14, bytes(255)),                       # MODP-2048 needs 256
    KePayload(31, bytes(33)),
])
def test_ke_length_must_match_the_group(payload):
    with pytest.raises(InvalidKeyExchangeData) as e:
        parse_message(Message(SPI_I, payloads=[payload]).encode())
    assert e.value.notify_type == NotifyType.INVALID_SYNTAX


def test_ke_of_unknown_group_is_kept():
    m = parse_message(Message(SPI_I, payloads=[KePayload(1000, b"abc")]).encode())
    assert m.payloads[0] == KePayload(1000, b"abc")


@pytest.mark.parametrize("payload", [
    NoncePayload(bytes(15)), NoncePayload(bytes(257)),
    SaPayload([]),
    SaPayload([Proposal(2, 1, b"", [Transform(1, 12)]), Proposal(3, 1, b"", [Transform(1, 12)])]),
    SaPayload([Proposal(1, 1, b"", [Transform(1, 12)]), Proposal(1, 1, b"", [Transform(1, 12)])]),
    SaPayload([Proposal(0, 1, b"", [Transform(1, 12)])]),
    SaPayload([Proposal(1, ProtocolId.IKE, bytes(4), [Transform(1, 12)])]),   # IKE SPI 0 or 8
    SaPayload([Proposal(1, ProtocolId.ESP, bytes(8), [Transform(1, 12)])]),   # ESP SPI 4
    SaPayload([Proposal(1, ProtocolId.ESP, bytes(4), [])]),
    IdiPayload(IdType.ID_IPV4_ADDR, bytes(5)), IdrPayload(IdType.ID_IPV6_ADDR, bytes(4)),
    IdiPayload(IdType.ID_FQDN, b""),
    AuthPayload(2, b""), AuthPayload(14, b"\x09abc"),
    NotifyPayload(notify_type=NotifyType.NAT_DETECTION_SOURCE_IP, data=bytes(19)),
    NotifyPayload(notify_type=NotifyType.COOKIE, data=b""),
    NotifyPayload(notify_type=NotifyType.COOKIE, data=bytes(65)),
    NotifyPayload(notify_type=NotifyType.INVALID_KE_PAYLOAD, data=b"\x13"),
    NotifyPayload(notify_type=NotifyType.REKEY_SA),                           # needs an ESP SPI
    NotifyPayload(3, b"\x00\x00", NotifyType.REKEY_SA),
    NotifyPayload(notify_type=NotifyType.SIGNATURE_HASH_ALGORITHMS, data=b"\x00\x02\x00"),
    DeletePayload(ProtocolId.IKE, [b"abcd"]), DeletePayload(ProtocolId.ESP, []),
    DeletePayload(9, []),
    TsiPayload([]),
    TsiPayload([TrafficSelector(7, 0, 10, 9, bytes(4), bytes(4))]),            # ports reversed
    TsiPayload([TrafficSelector(7, 0, 0, 65535, b"\x0a\x00\x00\x02", b"\x0a\x00\x00\x01")]),
    CpPayload(9, []), CpPayload(1, [CpAttribute(1, bytes(3))]),
    EapPayload(1, 1, None, b""), EapPayload(3, 1, None, b"x"), EapPayload(9, 1),
])
def test_semantic_violations_raise_invalid_syntax(payload):
    raw = Message(SPI_I, payloads=[payload]).encode()
    with pytest.raises(ParseError) as e:
        parse_message(raw)
    assert e.value.notify_type == NotifyType.INVALID_SYNTAX
    # structure is fine: without validation it parses back to the same object
    assert parse_message(raw, validate=False).payloads == [payload]


def test_opaque_ports_are_allowed():
    ts = TsiPayload([TrafficSelector(7, 6, 65535, 0, bytes(4), bytes([255] * 4))])
    assert parse_message(Message(SPI_I, payloads=[ts]).encode()).payloads == [ts]
    assert ts.selectors[0].is_opaque_ports


def test_parse_payload_body():
    assert parse_payload_body(PayloadType.NONCE, bytes(16)) == NoncePayload(bytes(16))
    assert parse_payload_body(77, b"x") == UnknownPayload(77, b"x")
    with pytest.raises(ParseError):
        parse_payload_body(PayloadType.KE, b"\x00")


# -- helpers ------------------------------------------------------------------------

def test_find_and_notify_helpers():
    m = ike_sa_init_request()
    assert m.find(PayloadType.NONCE) is m.payloads[2]
    assert m.find(KePayload).group == 31
    assert m.find(PayloadType.CERT) is None
    assert len(m.notifies()) == 4
    assert m.notify(NotifyType.NAT_DETECTION_SOURCE_IP).data == bytes(range(20))
    assert m.has_notify(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED)
    assert not m.has_notify(NotifyType.COOKIE)
    assert m.error_notify() is None
    a = ike_auth_response()
    assert isinstance(a.find(PayloadType.IDR), IdPayload)
    assert a.find(IdiPayload) is None
    assert [type(p) for p in a.find_all(PayloadType.NOTIFY)] == [NotifyPayload] * 3
    assert list(a) == a.inner


def test_errors_are_value_errors_and_ike_errors():
    for bad in (b"", b"\x00", bytes(27)):
        with pytest.raises(ParseError) as e:
            parse_message(bad)
        assert isinstance(e.value, ValueError) and isinstance(e.value, IkeError)


def test_encode_rejects_out_of_range_fields():
    with pytest.raises(ValueError):
        Message(SPI_I, message_id=1 << 32).encode()
    with pytest.raises(ValueError):
        Message(SPI_I, payloads=[VendorIdPayload(bytes(70000))]).encode()
    with pytest.raises(ValueError):
        Message(SPI_I, inner=[]).encode()            # encrypted but no cipher


# -- the Encrypted payload ---------------------------------------------------------

SUITES = {
    "aes256gcm16": lambda: SkCipher(Encr.AES_GCM_16, bytes(range(36))),
    "aes128gcm8": lambda: SkCipher(Encr.AES_GCM_8, bytes(range(20))),
    "chacha20poly1305": lambda: SkCipher(Encr.CHACHA20_POLY1305, bytes(range(36))),
    "aes128-sha256": lambda: SkCipher(Encr.AES_CBC, bytes(range(16)), Integ.HMAC_SHA2_256_128,
                                      bytes(range(32))),
    "aes256-sha512": lambda: SkCipher(Encr.AES_CBC, bytes(range(32)), Integ.HMAC_SHA2_512_256,
                                      bytes(range(64))),
}


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_sk_round_trip(suite):
    c = SUITES[suite]()
    msg = ike_auth_response()
    raw = encode_message(msg, c)
    back = parse_message(raw)
    assert back.payloads == [] and back.inner is None
    assert back.sk.first_payload == PayloadType.IDR
    assert len(raw) == 28 + 4 + len(back.sk.data)
    assert back.decrypt(c) == msg.inner
    assert back.inner == msg.inner and back.all_payloads == msg.inner
    # a parsed, still-encrypted message re-encodes unchanged
    assert parse_message(raw).encode() == raw


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_sk_with_clear_payloads_and_empty_inner(suite):
    c = SUITES[suite]()
    m = Message(SPI_I, SPI_R, 37, Flags.RESPONSE, 5, [VendorIdPayload(b"clear")], [])
    back = parse_message(m.encode(c))
    assert back.payloads == [VendorIdPayload(b"clear")]
    assert back.sk.first_payload == 0
    assert back.decrypt(c) == []


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_sk_bad_icv_raises_integrity_check_failed(suite):
    c = SUITES[suite]()
    raw = bytearray(encode_message(ike_auth_response(), c))
    for pos in (len(raw) - 1, 40, 20, 3):       # ICV, ciphertext, header fields (AAD), SPI
        bad = bytearray(raw)
        bad[pos] ^= 1
        m = parse_message(bytes(bad))
        with pytest.raises(IntegrityCheckFailed) as e:
            m.decrypt(c)
        assert e.value.notify_type is None
        assert isinstance(e.value, ParseError)


def test_sk_wrong_key_is_integrity_failure():
    raw = encode_message(ike_auth_response(), SUITES["aes256gcm16"]())
    other = SkCipher(Encr.AES_GCM_16, bytes(36))
    with pytest.raises(IntegrityCheckFailed):
        parse_message(raw).decrypt(other)


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_sk_truncated_body_is_an_integrity_failure(suite):
    c = SUITES[suite]()
    raw = encode_message(ike_auth_response(), c)
    for cut in (1, 5, c.icv_length, len(raw) - 33):
        short = raw[:len(raw) - cut]
        short = short[:24] + len(short).to_bytes(4, "big") + short[28:]
        # fix the SK payload length too so the outer structure is consistent
        sk_len = len(short) - 28
        short = short[:30] + sk_len.to_bytes(2, "big") + short[32:]
        m = parse_message(short)
        with pytest.raises(IntegrityCheckFailed):
            m.decrypt(c)


def test_sk_inner_garbage_after_valid_icv_is_invalid_syntax():
    """Authenticated but malformed inner chain: INVALID_SYNTAX (the peer can be told)."""
    c = SUITES["aes256gcm16"]()
    aad_hdr = hdr(46, 0, xchg=37, flags=0x20, spi_r=SPI_R)
    plain = b"\x00\x00\x00\x30" + bytes(4)           # a Notify claiming 48 octets
    sealed_len = c.sealed_length(len(plain))
    total = 28 + 4 + sealed_len
    aad = aad_hdr[:24] + total.to_bytes(4, "big") + bytes([41, 0]) + (4 + sealed_len).to_bytes(2, "big")
    raw = aad + c.seal(aad, plain)
    m = parse_message(raw)
    with pytest.raises(ParseError) as e:
        m.decrypt(c)
    assert type(e.value) is ParseError and e.value.notify_type == NotifyType.INVALID_SYNTAX


def test_sk_nested_sk_is_rejected():
    c = SUITES["aes256gcm16"]()
    inner = Message(SPI_I, SPI_R, 37, 0, 1, [], [NoncePayload(bytes(16))]).encode(c)[28:]
    # an inner chain starting with SK
    m = Message(SPI_I, SPI_R, 37, 0, 1, [], [UnknownPayload(46, inner[4:])])
    raw = m.encode(c)
    with pytest.raises(ParseError):
        parse_message(raw).decrypt(c)


def test_sk_must_be_last():
    body = bytes(40)
    sk = bytes([0, 0]) + (4 + len(body)).to_bytes(2, "big") + body
    trailing = wrap(40, bytes(16))
    raw = hdr(46, 28 + len(sk) + len(trailing), xchg=37) + sk + trailing
    with pytest.raises(ParseError):
        parse_message(raw)


def test_decrypting_unencrypted_message_is_a_usage_error():
    with pytest.raises(ValueError):
        parse_message(ike_sa_init_request().encode()).decrypt(SUITES["aes256gcm16"]())


# -- RFC 7634 Appendix B: the published ChaCha20-Poly1305 IKEv2 message ----------------

def test_rfc7634_appendix_b_decrypts():
    v = json.loads((VECTORS / "rfc7634_chacha20poly1305.json").read_text())["ikev2_example"]
    raw = bytes.fromhex(v["ike_message_assembled"])
    m = parse_message(raw)
    assert m.spi_i.hex() == v["ike_spi_i"] and m.spi_r.hex() == v["ike_spi_r"]
    assert m.exchange_type == ExchangeType.INFORMATIONAL and m.message_id == 9
    assert raw[:m.sk_offset + 4].hex() == v["aad"]
    c = SkCipher(Encr.CHACHA20_POLY1305, bytes.fromhex(v["sk_e_keymat"]))
    inner = m.decrypt(c)
    assert inner == [NotifyPayload(0, b"", NotifyType.SET_WINDOW_SIZE, b"\x00\x00\x00\x0a")]
    # and we produce the same octets from the same IV (the RFC's sender used no padding)
    again = Message(m.spi_i, m.spi_r, m.exchange_type, m.flags, m.message_id, [], inner)
    assert encode_message(again, c, iv=bytes.fromhex(v["iv"])) == raw


def test_decrypt_message_function_alias():
    c = SUITES["chacha20poly1305"]()
    raw = encode_message(ike_auth_response(), c)
    m = parse_message(raw)
    assert decrypt_message(m, c) == ike_auth_response().inner


def test_ke_require_group_raises_invalid_ke_payload_with_our_group():
    from ikecore.errors import InvalidKePayload
    KePayload(31, bytes(32)).require_group(31)
    with pytest.raises(InvalidKePayload) as e:
        KePayload(19, bytes(64)).require_group(31)
    assert e.value.notify_type == NotifyType.INVALID_KE_PAYLOAD
    assert e.value.notify_data == b"\x00\x1f"
    n = NotifyPayload.from_error(e.value)
    assert n == NotifyPayload(notify_type=NotifyType.INVALID_KE_PAYLOAD, data=b"\x00\x1f")
    n.validate()


def test_notify_from_error():
    try:
        parse_message(b"\x00")
    except ParseError as exc:
        assert NotifyPayload.from_error(exc) == NotifyPayload(notify_type=NotifyType.INVALID_SYNTAX)
    p = bytes([0, 0x80]) + (8).to_bytes(2, "big") + b"abcd"
    with pytest.raises(UnsupportedCriticalPayload) as e:
        parse_message(hdr(99, 28 + len(p)) + p)
    assert NotifyPayload.from_error(e.value) == NotifyPayload(notify_type=1, data=b"\x63")
    assert NotifyPayload.from_error(IntegrityCheckFailed("x")) is None


def test_abstract_id_and_ts_payloads_cannot_be_encoded():
    with pytest.raises(TypeError):
        Message(SPI_I, payloads=[IdPayload(2, b"x")]).encode()
    from ikecore.protocol import TsPayload
    with pytest.raises(TypeError):
        Message(SPI_I, payloads=[TsPayload([])]).encode()
