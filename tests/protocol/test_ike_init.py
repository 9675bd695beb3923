"""IKE_SA_INIT: COOKIE (RFC 7296 §2.6), INVALID_KE_PAYLOAD (§1.2, §1.3),
NAT detection and the move to port 4500 (§2.23), capability notifies.

    Initiator                                  Responder (busy)
    HDR(A,0), SAi1, KEi, Ni, N(NAT_D)*    -->
                                          <--  HDR(A,0), N(COOKIE)
    HDR(A,0), N(COOKIE), SAi1, KEi, Ni, ...  -->
                                          <--  HDR(A,B), SAr1, KEr, Nr, N(NAT_D)*

    HDR(A,0), SAi1, KEi(x25519), Ni, ...  -->
                                          <--  HDR(A,0), N(INVALID_KE_PAYLOAD: 19)
    HDR(A,0), SAi1, KEi(ecp256), Ni, ...  -->
                                          <--  HDR(A,B), SAr1, KEr, Nr, ...

Fake clock and seeded RNG throughout; a NAT is simulated by rewriting the
initiator's addresses in the harness (ike_pair.Nat).
"""
import random

import pytest

from ike_pair import ADDR_I, ADDR_R, Nat, Pair, configs
from ikecore.protocol import events as ev
from ikecore.protocol.constants import ExchangeType, Flags, NotifyType, PayloadType
from ikecore.protocol.endpoint import IkeEndpoint, NON_ESP_MARKER
from ikecore.protocol.exchanges.ike_sa_init import stateless_reply
from ikecore.protocol.message import Message, parse_message
from ikecore.protocol.payloads import KePayload, NoncePayload, NotifyPayload

PUBLIC = "203.0.113.7"


def _messages(p, direction, exchange=None):
    """Parsed messages of one direction from the harness trace (marker stripped)."""
    out = []
    for tag, data in p.trace:
        if tag != direction:
            continue
        if data[:4] == NON_ESP_MARKER:
            data = data[4:]
        m = parse_message(data)
        if exchange is None or m.exchange_type == exchange:
            out.append(m)
    return out


def _notify_types(msg):
    return [n.notify_type for n in msg.notifies()]


def _flood(endpoint, n, cfg, now):
    """n half-open SAs at ``endpoint`` from other initiators whose answers are never read."""
    for k in range(n):
        other = IkeEndpoint(cfg, rng=random.Random(500 + k).randbytes, now=now)
        other.connect(cfg, ("198.51.100.%d" % (k + 1), 500), ADDR_R, now)
        [(data, remote, local)] = other.datagrams_to_send()
        endpoint.receive_datagram(data, local, remote, now)
        endpoint.datagrams_to_send()


# ------------------------------------------------------------------ cookies --

@pytest.mark.parametrize("swap", [False, True], ids=["i-initiates", "r-initiates"])
def test_cookie_engages_at_the_half_open_threshold(swap):
    ci, cr = configs()
    if swap:
        ci, cr = cr, ci
    p = Pair(ci, cr)
    p.er.cookie_threshold = 2
    _flood(p.er, 2, ci, p.now)
    assert p.er.half_open == 2
    p.connect()
    assert p.run(p.established)
    inits = _messages(p, "i>r", ExchangeType.IKE_SA_INIT)
    answers = _messages(p, "r>i", ExchangeType.IKE_SA_INIT)
    assert len(inits) == 2 and len(answers) == 2
    assert _notify_types(answers[0]) == [NotifyType.COOKIE] and not any(answers[0].spi_r)
    retry = inits[1]
    # the cookie comes first; everything else is the same request (same SPI, KEi, Ni)
    assert retry.payloads[0].notify_type == NotifyType.COOKIE
    assert retry.payloads[0].data == answers[0].notify(NotifyType.COOKIE).data
    assert retry.spi_i == inits[0].spi_i and retry.message_id == 0
    assert retry.find(PayloadType.KE).data == inits[0].find(PayloadType.KE).data
    assert retry.find(PayloadType.NONCE).data == inits[0].find(PayloadType.NONCE).data
    assert p.er.stats["cookies_sent"] == 1 and p.er.stats["cookie_rejects"] == 0
    # the AUTH covers the retried request (RFC 7296 §2.15): established means both
    # agree; after IKE_AUTH neither side keeps the IKE_SA_INIT messages (memory per SA)
    assert p.conn("i").init_request == p.conn("r").init_request == b""
    assert p.conn("i").init_response == p.conn("r").init_response == b""


def test_no_cookie_below_the_threshold():
    p = Pair(*configs())
    p.er.cookie_threshold = 2
    _flood(p.er, 1, p.cfg_i, p.now)
    p.connect()
    assert p.run(p.established)
    assert p.er.stats["cookies_sent"] == 0
    assert p.er.half_open == 1    # only the flooding peer's SA is still half-open


def _cookie_for(p):
    """Run the pair until the responder has answered with a COOKIE; return it."""
    p.connect()
    while not _messages(p, "r>i"):
        p.step()
    return _messages(p, "r>i")[0].notify(NotifyType.COOKIE).data


def test_forged_cookie_is_treated_as_no_cookie():
    p = Pair(*configs())
    p.er.cookie_threshold = 0
    request = _messages_after_connect(p)
    forged = Message(request.spi_i, bytes(8), ExchangeType.IKE_SA_INIT, Flags.INITIATOR, 0,
                     payloads=[NotifyPayload(notify_type=NotifyType.COOKIE, data=bytes(17))]
                     + request.payloads)
    p.er.receive_datagram(forged.encode(), ADDR_I, ADDR_R, p.now)
    [(reply, _, _)] = p.er.datagrams_to_send()
    reply = parse_message(reply)
    assert _notify_types(reply) == [NotifyType.COOKIE]
    assert p.er.stats["cookie_rejects"] == 1 and not p.er.connections and p.er.half_open == 0
    # a real cookie for another nonce (or another address) does not pass either
    good = reply.notify(NotifyType.COOKIE).data
    other = Message(request.spi_i, bytes(8), ExchangeType.IKE_SA_INIT, Flags.INITIATOR, 0,
                    payloads=[NotifyPayload(notify_type=NotifyType.COOKIE, data=good)] + request.payloads)
    p.er.receive_datagram(other.encode(), ("192.0.2.99", 500), ADDR_R, p.now)
    assert _notify_types(parse_message(p.er.datagrams_to_send()[0][0])) == [NotifyType.COOKIE]
    assert p.er.stats["cookie_rejects"] == 2 and not p.er.connections


def _messages_after_connect(p):
    p.connect()
    p.ei.collect_all()
    [(data, _, _)] = p.ei.datagrams_to_send()
    return parse_message(data)


@pytest.mark.parametrize("delay, rejects", [(30.0, 0), (90.0, 0), (130.0, 1)],
                         ids=["current-secret", "previous-secret", "older-secret"])
def test_cookie_secret_rotation(delay, rejects):
    p = Pair(*configs())
    p.er.cookie_threshold = 0
    p.er.cookie_secret_lifetime = 60.0
    _cookie_for(p)
    p.now += delay          # the initiator's retry arrives after the secret rotated
    assert p.run(p.established)
    assert p.er.stats["cookie_rejects"] == rejects
    # a rejected (stale) cookie is answered with a fresh one, and the retry with it succeeds
    assert p.er.stats["cookies_sent"] == 1 + rejects


def test_explicit_rotation_keeps_exactly_one_previous_secret():
    p = Pair(*configs())
    p.er.cookie_threshold = 0
    _cookie_for(p)
    p.er.rotate_cookie_secret()
    p.er.rotate_cookie_secret()
    assert p.run(p.established)
    assert p.er.stats["cookie_rejects"] == 1 and p.er.stats["cookies_sent"] == 2


def test_cookie_then_invalid_ke_keeps_the_cookie():
    p = Pair(*configs("aes256gcm16-prfsha256-x25519-ecp256", ike_r="aes256gcm16-prfsha256-ecp256"))
    p.er.cookie_threshold = 0
    p.connect()
    assert p.run(p.established)
    inits = _messages(p, "i>r", ExchangeType.IKE_SA_INIT)
    answers = _messages(p, "r>i", ExchangeType.IKE_SA_INIT)
    assert [_notify_types(a)[:1] for a in answers[:2]] == [[NotifyType.COOKIE], [NotifyType.INVALID_KE_PAYLOAD]]
    assert len(inits) == 3
    assert inits[2].payloads[0].notify_type == NotifyType.COOKIE
    assert inits[2].find(PayloadType.KE).group == 19
    assert p.conn("i").suite.dh_group == 19


def test_retransmitted_init_request_gets_the_cached_answer_and_one_half_open_sa():
    p = Pair(*configs())
    request = _messages_after_connect(p)
    p.er.receive_datagram(request.raw, ADDR_I, ADDR_R, p.now)
    first = p.er.datagrams_to_send()
    p.er.receive_datagram(request.raw, ADDR_I, ADDR_R, p.now + 1)
    again = p.er.datagrams_to_send()
    assert first == again and p.er.half_open == 1 and len(p.er.connections) == 1


# --------------------------------------------------------------- INVALID_KE --

@pytest.mark.parametrize("swap", [False, True], ids=["x25519-side-initiates", "ecp256-side-initiates"])
def test_invalid_ke_retry(swap):
    a, b = "aes256gcm16-prfsha256-x25519-ecp256", "aes256gcm16-prfsha256-ecp256"
    ike, ike_r = (b, a) if swap else (a, b)
    p = Pair(*configs(ike, ike_r=ike_r))
    p.connect()
    assert p.run(p.established)
    inits = _messages(p, "i>r", ExchangeType.IKE_SA_INIT)
    answers = _messages(p, "r>i", ExchangeType.IKE_SA_INIT)
    if swap:   # the ecp256-only side offers ecp256: nothing to correct
        assert len(inits) == 1
    else:
        assert len(inits) == 2
        assert _notify_types(answers[0]) == [NotifyType.INVALID_KE_PAYLOAD]
        assert answers[0].notify(NotifyType.INVALID_KE_PAYLOAD).data == (19).to_bytes(2, "big")
        assert inits[1].find(PayloadType.KE).group == 19
        # the retry lists the wanted group first and keeps Ni and SPIi
        dh = [t.id for t in inits[1].find(PayloadType.SA).proposals[0].transforms if t.type == 4]
        assert dh[0] == 19
        assert inits[1].find(PayloadType.NONCE).data == inits[0].find(PayloadType.NONCE).data
        assert p.er.half_open == 0 and p.er.stats["init_refused"] == 1
    assert p.conn("i").suite.dh_group == p.conn("r").suite.dh_group == 19


def test_responder_uses_the_offered_ke_group_when_it_can():
    # the responder prefers ecp256 in its config but accepts the initiator's x25519 KE as is
    p = Pair(*configs("aes256gcm16-prfsha256-x25519-ecp256", ike_r="aes256gcm16-prfsha256-ecp256-x25519"))
    p.connect()
    assert p.run(p.established)
    assert len(_messages(p, "i>r", ExchangeType.IKE_SA_INIT)) == 1
    assert p.conn("r").suite.dh_group == 31


def _answer_with(p, notify_type, data):
    """Play a responder that answers the initiator's latest IKE_SA_INIT with one notify."""
    p.ei.collect_all()
    out = p.ei.datagrams_to_send()
    request = parse_message(out[-1][0])
    p.ei.receive_datagram(stateless_reply(request, notify_type, data), ADDR_R, ADDR_I, p.now)
    return request


def test_invalid_ke_for_a_group_never_offered_fails_cleanly():
    p = Pair(*configs("aes256gcm16-prfsha256-x25519-ecp256"))
    p.connect()
    _answer_with(p, NotifyType.INVALID_KE_PAYLOAD, (20).to_bytes(2, "big"))
    p._gather()
    [gone] = p.of(ev.IkeSaDeleted, "i")
    assert gone.notify_type == NotifyType.INVALID_KE_PAYLOAD and not p.ei.connections


def test_invalid_ke_ping_pong_is_bounded():
    p = Pair(*configs("aes256gcm16-prfsha256-x25519-ecp256"))
    p.connect()
    groups = []
    for k in range(10):
        if not p.ei.connections:
            break
        request = _answer_with(p, NotifyType.INVALID_KE_PAYLOAD, (19 if k % 2 == 0 else 31).to_bytes(2, "big"))
        groups.append(request.find(PayloadType.KE).group)
    p._gather()
    assert p.of(ev.IkeSaDeleted, "i") and not p.ei.connections
    assert groups[:3] == [31, 19, 31] and len(groups) <= 7


def test_malformed_init_requests_get_no_state():
    p = Pair(*configs())
    request = _messages_after_connect(p)
    no_ke = Message(request.spi_i, bytes(8), ExchangeType.IKE_SA_INIT, Flags.INITIATOR, 0,
                    payloads=[x for x in request.payloads if not isinstance(x, KePayload)])
    p.er.receive_datagram(no_ke.encode(), ADDR_I, ADDR_R, p.now)
    [(reply, _, _)] = p.er.datagrams_to_send()
    assert _notify_types(parse_message(reply)) == [NotifyType.INVALID_SYNTAX]
    bad_ke = Message(request.spi_i, bytes(8), ExchangeType.IKE_SA_INIT, Flags.INITIATOR, 0,
                     payloads=[KePayload(31, bytes(32)) if isinstance(x, KePayload) else x
                               for x in request.payloads])
    p.er.receive_datagram(bad_ke.encode(), ADDR_I, ADDR_R, p.now)   # all-zero X25519 point
    [(reply, _, _)] = p.er.datagrams_to_send()
    assert _notify_types(parse_message(reply)) == [NotifyType.INVALID_SYNTAX]
    assert not p.er.connections and p.er.half_open == 0
    # the good request still works afterwards
    p.er.receive_datagram(request.raw, ADDR_I, ADDR_R, p.now)
    assert p.er.half_open == 1


# -------------------------------------------------------------------- NAT-T --

def test_no_nat_stays_on_port_500():
    p = Pair(*configs())
    p.connect()
    assert p.run(p.established)
    ci, cr = p.conn("i"), p.conn("r")
    assert not (ci.nat_local or ci.nat_remote or cr.nat_local or cr.nat_remote)
    assert ci.local == ADDR_I and cr.remote == ADDR_I and cr.local == ADDR_R
    assert not p.of(ev.ChildSaInstalled, "i")[0].child.udp_encap
    assert all(not d.startswith(NON_ESP_MARKER) for _, d in p.trace)


def test_nat_in_front_of_the_initiator_moves_both_to_4500():
    nat = Nat(public=PUBLIC)
    p = Pair(*configs(), nat=nat)
    p.connect()
    assert p.run(p.established)
    ci, cr = p.conn("i"), p.conn("r")
    assert ci.nat_local and not ci.nat_remote
    assert cr.nat_remote and not cr.nat_local
    assert ci.local == (ADDR_I[0], 4500) and ci.remote == (ADDR_R[0], 4500)
    # the responder answers the NAT's mapping of the initiator's port 4500
    assert cr.local == (ADDR_R[0], 4500) and cr.remote == nat.out[(ADDR_I[0], 4500)]
    assert cr.remote[0] == PUBLIC
    for side in "ir":
        assert p.of(ev.ChildSaInstalled, side)[0].child.udp_encap
    # IKE_SA_INIT on 500 without marker, everything after on 4500 behind the non-ESP marker
    init = [d for _, d in p.trace if not d.startswith(NON_ESP_MARKER)]
    after = [d for _, d in p.trace if d.startswith(NON_ESP_MARKER)]
    assert {parse_message(d).exchange_type for d in init} == {ExchangeType.IKE_SA_INIT}
    assert {parse_message(d[4:]).exchange_type for d in after} == {ExchangeType.IKE_AUTH}


def test_nat_detection_hashes_are_rfc7296_2_23():
    from ikecore.protocol.exchanges.ike_sa_init import nat_detection_hash
    import hashlib
    import ipaddress
    spi_i, spi_r = bytes(range(1, 9)), bytes(8)
    expected = hashlib.sha1(spi_i + spi_r + ipaddress.ip_address("192.0.2.1").packed + (500).to_bytes(2, "big"))
    assert nat_detection_hash(spi_i, spi_r, ("192.0.2.1", 500)) == expected.digest()
    from ikecore.protocol import ike_sa
    assert ike_sa.nat_detection_hash(spi_i, spi_r, ("2001:db8::5", 4500)) == \
        nat_detection_hash(spi_i, spi_r, ("2001:db8::5", 4500))
    p = Pair(*configs())
    request = _messages_after_connect(p)
    src = request.notify(NotifyType.NAT_DETECTION_SOURCE_IP).data
    dst = request.notify(NotifyType.NAT_DETECTION_DESTINATION_IP).data
    assert src == nat_detection_hash(request.spi_i, bytes(8), ADDR_I)
    assert dst == nat_detection_hash(request.spi_i, bytes(8), ADDR_R)


def test_nat_rebinding_after_establishment_is_followed():
    nat = Nat(public=PUBLIC)
    p = Pair(*configs(), nat=nat)
    p.connect()
    assert p.run(p.established)
    cr = p.conn("r")
    old = cr.remote
    nat.rebind()
    p.conn("i").check_liveness(p.now)
    assert p.run(lambda: p.of(ev.PeerAlive, "i"))
    assert cr.remote != old and cr.remote == nat.out[(ADDR_I[0], 4500)]


@pytest.mark.parametrize("side", ["initiator", "responder"])
def test_force_encap_on_either_side(side):
    ci, cr = configs()
    if side == "initiator":
        ci.force_encap = True
    else:
        cr.force_encap = True
    p = Pair(ci, cr)
    p.connect()
    assert p.run(p.established)
    ci_, cr_ = p.conn("i"), p.conn("r")
    assert ci_.local[1] == ci_.remote[1] == 4500 and cr_.local[1] == cr_.remote[1] == 4500
    assert cr_.remote == (ADDR_I[0], 4500)
    for s in "ir":
        assert p.of(ev.ChildSaInstalled, s)[0].child.udp_encap
    assert any(d.startswith(NON_ESP_MARKER) for _, d in p.trace)


def test_peer_without_nat_detection_is_not_floated():
    # a peer that sends no NAT_DETECTION notifies: nothing is decided, nothing moves
    p = Pair(*configs())
    request = _messages_after_connect(p)
    bare = Message(request.spi_i, bytes(8), ExchangeType.IKE_SA_INIT, Flags.INITIATOR, 0,
                   payloads=[x for x in request.payloads if not (
                       isinstance(x, NotifyPayload) and x.notify_type in (
                           NotifyType.NAT_DETECTION_SOURCE_IP, NotifyType.NAT_DETECTION_DESTINATION_IP))])
    p.er.receive_datagram(bare.encode(), ("198.51.100.9", 4000), ADDR_R, p.now)
    [conn] = p.er.connections.values()
    assert not conn.nat_remote and not conn.nat_local


# -------------------------------------------------------------- capabilities --

def test_psk_handshake_carries_fragmentation_but_no_signature_hashes():
    p = Pair(*configs())
    p.connect()
    assert p.run(p.established)
    for direction in ("i>r", "r>i"):
        [m] = _messages(p, direction, ExchangeType.IKE_SA_INIT)
        types = _notify_types(m)
        assert NotifyType.IKEV2_FRAGMENTATION_SUPPORTED in types
        assert NotifyType.SIGNATURE_HASH_ALGORITHMS not in types
    assert p.conn("i").peer_fragmentation and p.conn("r").peer_fragmentation


def test_fragmentation_off_on_one_side_is_seen_by_the_other():
    ci, cr = configs()
    cr.fragmentation = False
    p = Pair(ci, cr)
    p.connect()
    assert p.run(p.established)
    assert not p.conn("i").peer_fragmentation and p.conn("r").peer_fragmentation


def test_ike_sa_init_comes_from_the_rng_alone():
    # same seeds: the same SPIs, nonces and KE values, so the same IKE_SA_INIT
    # messages and keys (the SK payloads' IVs come from the C core, not the rng)
    runs = []
    for _ in range(2):
        p = Pair(*configs(), seed=42)
        p.connect()
        assert p.run(p.established)
        runs.append(([m.raw for m in _messages(p, "i>r", ExchangeType.IKE_SA_INIT)
                      + _messages(p, "r>i", ExchangeType.IKE_SA_INIT)], p.conn("i").keys.sk_d))
    assert runs[0] == runs[1]
    nonce = _messages(p, "i>r", ExchangeType.IKE_SA_INIT)[0].find(NoncePayload).data
    assert len(nonce) == 32
