"""The message rules table: mandatory/optional payloads per exchange and direction,
what travels inside SK, error replies, groups that come together."""
import pytest

from ikecore.crypto import Encr, SkCipher
from ikecore.errors import ParseError
from ikecore.protocol import (RULES, AuthPayload, CertReqPayload, CpPayload, DeletePayload,
                              EapPayload, ExchangeType, Flags, IdiPayload, IdrPayload,
                              KePayload, Message, NoncePayload, NotifyPayload, NotifyType,
                              Proposal, SaPayload, TrafficSelector, Transform, TsiPayload,
                              TsrPayload, UnknownPayload, VendorIdPayload, check_rules,
                              parse_message, rules_for)
from ikecore.protocol.examples import SPI_I, SPI_R, ike_auth_response, ike_sa_init_request

X = ExchangeType
CIPHER = SkCipher(Encr.AES_GCM_16, bytes(36))
SA_IKE = SaPayload([Proposal(1, 1, b"", [Transform(1, 20, []), Transform(2, 5), Transform(4, 31)])])
SA_ESP = SaPayload([Proposal(1, 3, b"abcd", [Transform(1, 20, []), Transform(5, 0)])])
KE = KePayload(31, bytes(32))
NONCE = NoncePayload(bytes(32))
TSI = TsiPayload([TrafficSelector.from_network("10.0.0.0/8")])
TSR = TsrPayload([TrafficSelector.from_network("10.0.0.0/8")])


def clear(xchg, payloads, response=False, spi_r=None, mid=0):
    flags = Flags.RESPONSE if response else Flags.INITIATOR
    if spi_r is None:
        spi_r = SPI_R if response else bytes(8)
    return Message(SPI_I, spi_r, xchg, flags, mid, payloads)


def enc(xchg, inner, response=False, mid=1):
    return Message(SPI_I, SPI_R, xchg, Flags.RESPONSE if response else Flags.INITIATOR, mid, [],
                   inner)


def wire(msg):
    """Through the codec, as a receiver sees it (decrypted when encrypted)."""
    raw = msg.encode(CIPHER if msg.inner is not None else None)
    m = parse_message(raw)
    if m.sk is not None:
        check_rules(m)             # before decryption: only SK in the clear
        m.decrypt(CIPHER)
    return m


def ok(msg):
    check_rules(wire(msg))


def bad(msg):
    m = wire(msg)
    with pytest.raises(ParseError) as e:
        check_rules(m)
    assert e.value.notify_type == NotifyType.INVALID_SYNTAX


# IKE_SA_INIT  HDR, SAi1, KEi, Ni  -->  <--  HDR, SAr1, KEr, Nr, [CERTREQ]

def test_ike_sa_init_request():
    ok(ike_sa_init_request())
    ok(clear(X.IKE_SA_INIT, [NotifyPayload(notify_type=NotifyType.COOKIE, data=b"c"), SA_IKE, KE, NONCE]))
    bad(clear(X.IKE_SA_INIT, [SA_IKE, KE]))                               # no Ni
    bad(clear(X.IKE_SA_INIT, [SA_IKE, NONCE]))                            # no KE
    bad(clear(X.IKE_SA_INIT, [KE, NONCE]))                                # no SA
    bad(clear(X.IKE_SA_INIT, [SA_IKE, KE, NONCE, NONCE]))                 # two nonces
    bad(clear(X.IKE_SA_INIT, [SA_IKE, KE, NONCE, IdiPayload(2, b"x")]))   # not allowed here
    bad(clear(X.IKE_SA_INIT, [SA_IKE, KE, NONCE], spi_r=SPI_R))           # SPIr must be 0
    bad(clear(X.IKE_SA_INIT, [SA_IKE, KE, NONCE], mid=1))                 # Message ID 0


def test_ike_sa_init_request_may_carry_unknown_noncritical_payloads():
    ok(clear(X.IKE_SA_INIT, [SA_IKE, KE, NONCE, UnknownPayload(200, b"ext")]))


def test_ike_sa_init_response_and_error_replies():
    ok(clear(X.IKE_SA_INIT, [SA_IKE, KE, NONCE, CertReqPayload(4, bytes(20))], response=True))
    bad(clear(X.IKE_SA_INIT, [SA_IKE, KE], response=True))
    # error replies carry no SA/KE/Nr (RFC 7296 §1.2, §2.6)
    ok(clear(X.IKE_SA_INIT, [NotifyPayload(notify_type=NotifyType.COOKIE, data=b"c")],
             response=True, spi_r=bytes(8)))
    ok(clear(X.IKE_SA_INIT, [NotifyPayload(notify_type=NotifyType.INVALID_KE_PAYLOAD,
                                           data=b"\x00\x13")], response=True, spi_r=bytes(8)))
    ok(clear(X.IKE_SA_INIT, [NotifyPayload(notify_type=NotifyType.NO_PROPOSAL_CHOSEN)],
             response=True))
    # but a status notify alone is not an answer
    bad(clear(X.IKE_SA_INIT, [NotifyPayload(notify_type=NotifyType.NAT_DETECTION_SOURCE_IP,
                                            data=bytes(20))], response=True))
    bad(clear(X.IKE_SA_INIT, [NotifyPayload(notify_type=NotifyType.COOKIE, data=b"c"),
                              NONCE, NONCE], response=True))                # max still applies


def test_ike_sa_init_must_not_be_encrypted():
    m = enc(X.IKE_SA_INIT, [SA_IKE, KE, NONCE], mid=0)
    raw = m.encode(CIPHER)
    with pytest.raises(ParseError):
        check_rules(parse_message(raw))


# IKE_AUTH  HDR, SK {IDi, [CERT+], [CERTREQ+], [IDr], AUTH, [CP], SAi2, TSi, TSr}  -->

def test_ike_auth_request():
    ok(enc(X.IKE_AUTH, [IdiPayload(2, b"me"), IdrPayload(2, b"you"), AuthPayload(2, bytes(32)),
                        SA_ESP, TSI, TSR, NotifyPayload(notify_type=NotifyType.MOBIKE_SUPPORTED)]))
    # EAP: first request without AUTH, then EAP-only, then AUTH-only
    ok(enc(X.IKE_AUTH, [IdiPayload(2, b"me"), CpPayload(1, []), SA_ESP, TSI, TSR]))
    ok(enc(X.IKE_AUTH, [EapPayload(2, 1, 1, b"me")]))
    ok(enc(X.IKE_AUTH, [AuthPayload(2, bytes(32))]))
    bad(enc(X.IKE_AUTH, []))
    bad(enc(X.IKE_AUTH, [IdiPayload(2, b"me"), AuthPayload(2, bytes(32)), SA_ESP, TSI]))  # no TSr
    bad(enc(X.IKE_AUTH, [IdiPayload(2, b"me"), AuthPayload(2, bytes(32)), TSI, TSR]))     # no SA
    bad(enc(X.IKE_AUTH, [IdiPayload(2, b"me"), IdiPayload(2, b"again"), AuthPayload(2, bytes(32))]))
    bad(enc(X.IKE_AUTH, [IdiPayload(2, b"me"), AuthPayload(2, bytes(32)), KE]))


def test_ike_auth_response():
    ok(ike_auth_response())
    ok(enc(X.IKE_AUTH, [NotifyPayload(notify_type=NotifyType.AUTHENTICATION_FAILED)], response=True))
    ok(enc(X.IKE_AUTH, [IdrPayload(2, b"gw"), EapPayload(1, 1, 1)], response=True))
    bad(enc(X.IKE_AUTH, [IdrPayload(2, b"gw"), AuthPayload(2, bytes(32)), SA_ESP], response=True))
    bad(enc(X.IKE_AUTH, [IdiPayload(2, b"me"), AuthPayload(2, bytes(32))], response=True))


def test_ike_auth_payloads_must_be_inside_sk():
    m = Message(SPI_I, SPI_R, X.IKE_AUTH, Flags.INITIATOR, 1, [IdiPayload(2, b"me")],
                [AuthPayload(2, bytes(32))])
    raw = m.encode(CIPHER)
    with pytest.raises(ParseError):
        check_rules(parse_message(raw))
    # and no SK at all
    with pytest.raises(ParseError):
        check_rules(parse_message(Message(SPI_I, SPI_R, X.IKE_AUTH, Flags.INITIATOR, 1,
                                          [IdiPayload(2, b"me")]).encode()))
    with pytest.raises(ParseError):
        check_rules(parse_message(Message(SPI_I, SPI_R, X.IKE_AUTH, Flags.INITIATOR, 1).encode()))


def test_before_decryption_only_the_clear_part_is_checked():
    m = parse_message(enc(X.IKE_AUTH, []).encode(CIPHER))
    check_rules(m)                       # fine until decrypted
    m.decrypt(CIPHER)
    with pytest.raises(ParseError):
        check_rules(m)


# CREATE_CHILD_SA  HDR, SK {[N], SA, Ni, [KEi], [TSi, TSr]}  -->

def test_create_child_sa():
    ok(enc(X.CREATE_CHILD_SA, [SA_ESP, NONCE, TSI, TSR]))
    ok(enc(X.CREATE_CHILD_SA, [NotifyPayload(3, b"abcd", NotifyType.REKEY_SA), SA_ESP, NONCE, KE,
                               TSI, TSR]))
    # IKE SA rekey / clone (RFC 7791): no TS
    ok(enc(X.CREATE_CHILD_SA, [NotifyPayload(notify_type=NotifyType.CLONE_IKE_SA),
                               SaPayload([Proposal(1, 1, bytes(8), [Transform(1, 20), Transform(2, 5),
                                                                     Transform(4, 31)])]),
                               NONCE, KE]))
    bad(enc(X.CREATE_CHILD_SA, [SA_ESP, TSI, TSR]))                 # no nonce
    bad(enc(X.CREATE_CHILD_SA, [SA_ESP, NONCE, TSI]))               # TSi without TSr
    bad(enc(X.CREATE_CHILD_SA, [SA_ESP, NONCE, KE, KE]))
    ok(enc(X.CREATE_CHILD_SA, [SA_ESP, NONCE, TSI, TSR], response=True))
    ok(enc(X.CREATE_CHILD_SA, [NotifyPayload(notify_type=NotifyType.NO_ADDITIONAL_SAS)],
           response=True))
    ok(enc(X.CREATE_CHILD_SA, [NotifyPayload(notify_type=NotifyType.TEMPORARY_FAILURE)],
           response=True))
    bad(enc(X.CREATE_CHILD_SA, [NONCE], response=True))


# INFORMATIONAL  HDR, SK {[N], [D], [CP]}  <-->

def test_informational():
    ok(enc(X.INFORMATIONAL, []))                                     # liveness check
    ok(enc(X.INFORMATIONAL, [], response=True))
    ok(enc(X.INFORMATIONAL, [DeletePayload(1)]))
    ok(enc(X.INFORMATIONAL, [DeletePayload(3, [b"abcd"]), DeletePayload(2, [b"efgh"])]))
    ok(enc(X.INFORMATIONAL, [NotifyPayload(notify_type=NotifyType.UPDATE_SA_ADDRESSES),
                             NotifyPayload(notify_type=NotifyType.COOKIE2, data=bytes(16))]))
    ok(enc(X.INFORMATIONAL, [VendorIdPayload(b"v"), UnknownPayload(200, b"x")]))
    bad(enc(X.INFORMATIONAL, [NONCE]))
    bad(enc(X.INFORMATIONAL, [CpPayload(1), CpPayload(1)]))


# IKE_SESSION_RESUME  HDR, [N(COOKIE)], Ni, N(TICKET_OPAQUE)  -->  <--  HDR, Nr | N(TICKET_NACK)

def test_ike_session_resume():
    ticket = NotifyPayload(notify_type=NotifyType.TICKET_OPAQUE, data=bytes(40))
    ok(clear(X.IKE_SESSION_RESUME, [NONCE, ticket]))
    ok(clear(X.IKE_SESSION_RESUME, [NotifyPayload(notify_type=NotifyType.COOKIE, data=b"c"),
                                    NONCE, ticket], mid=0))
    bad(clear(X.IKE_SESSION_RESUME, [NONCE]))                                  # no ticket
    bad(clear(X.IKE_SESSION_RESUME, [ticket]))                                 # no nonce
    bad(clear(X.IKE_SESSION_RESUME, [NONCE, ticket, SA_IKE]))                  # no SA
    bad(clear(X.IKE_SESSION_RESUME, [NONCE, ticket], spi_r=SPI_R))
    ok(clear(X.IKE_SESSION_RESUME, [NONCE], response=True))
    ok(clear(X.IKE_SESSION_RESUME, [NotifyPayload(notify_type=NotifyType.TICKET_NACK)],
             response=True, spi_r=bytes(8)))
    bad(clear(X.IKE_SESSION_RESUME, [], response=True))
    # RFC 5723 §4.3.2: Message ID 0, like IKE_SA_INIT, both ways
    bad(clear(X.IKE_SESSION_RESUME, [NONCE, ticket], mid=1))
    bad(clear(X.IKE_SESSION_RESUME, [NONCE], response=True, mid=1))
    # NAT detection and other status notifies ride along (§4.3.2 "[,N+]"); a COOKIE
    # answer needs no Nr
    ok(clear(X.IKE_SESSION_RESUME, [NONCE, ticket,
                                    NotifyPayload(notify_type=NotifyType.NAT_DETECTION_SOURCE_IP,
                                                  data=bytes(20))]))
    ok(clear(X.IKE_SESSION_RESUME, [NotifyPayload(notify_type=NotifyType.COOKIE, data=b"c")],
             response=True, spi_r=bytes(8)))
    bad(clear(X.IKE_SESSION_RESUME, [NONCE, ticket, KE]))                      # no KE either (§1)


def test_unknown_exchange_type_and_zero_spi():
    with pytest.raises(ParseError):
        check_rules(clear(99, []))
    with pytest.raises(ParseError):
        rules_for(33, True)
    m = Message(bytes(8), bytes(8), X.IKE_SA_INIT, Flags.INITIATOR, 0, [SA_IKE, KE, NONCE])
    with pytest.raises(ParseError):
        check_rules(m)


def test_is_request_override():
    m = wire(clear(X.IKE_SA_INIT, [SA_IKE, KE, NONCE, CertReqPayload(4, bytes(20))], response=True))
    check_rules(m, is_request=False)
    with pytest.raises(ParseError):
        check_rules(m, is_request=True)            # CERTREQ not allowed in the request


def test_table_covers_every_exchange_both_ways():
    for x in X:
        for req in (True, False):
            r = RULES[(int(x), req)]
            assert r.name.startswith(x.name)
            assert r.encrypted == (x in (X.IKE_AUTH, X.CREATE_CHILD_SA, X.INFORMATIONAL))
