"""Session resumption (RFC 5723) between two in-memory endpoints with a fake clock.

    Client                                        Gateway
    IKE_AUTH  HDR, SK {IDi, AUTH, SAi2, TSi, TSr, N(TICKET_REQUEST)}  -->
                        <--  HDR, SK {IDr, AUTH, SAr2, TSi, TSr, N(TICKET_LT_OPAQUE)}
    ... the client loses its IKE SA (suspend: no Delete) ...
    IKE_SESSION_RESUME  HDR(SPIi, 0), Ni, N(TICKET_OPAQUE), N(NAT_D)*  -->
                                          (the gateway spends the ticket in its store)
                        <--  HDR(SPIi, SPIr), Nr, N(NAT_D)*      |  HDR(SPIi, 0), N(TICKET_NACK)
    IKE_AUTH  HDR, SK {IDi, IDr, AUTH, SAi2, TSi, TSr, N(TICKET_REQUEST)}  -->
                        <--  HDR, SK {IDr, AUTH, SAr2, TSi, TSr, N(TICKET_LT_OPAQUE)}

Every refusal ends in TICKET_NACK (or a failed AUTH) and a full IKE_SA_INIT on the
same client connection; no ticket is accepted twice. The key schedule and both AUTH
forms are recomputed with stdlib hmac (tests/crypto/reference_kdf.py).
"""
from __future__ import annotations

import dataclasses
import importlib.util
import pathlib
import random

import pytest

from ike_pair import (ADDR_R, WALL_OFFSET, Pair, TicketDesk, assert_child_pair, decrypt_trace,
                      peer_child, resumption_configs, wall_clock)
from ikecore.protocol import events as ev
from ikecore.protocol.config import Identity
from ikecore.protocol.constants import AuthMethod, ExchangeType, NotifyType, PayloadType
from ikecore.protocol.endpoint import IkeEndpoint
from ikecore.protocol.exchanges import resumption
from ikecore.protocol.message import Message, parse_message
from ikecore.protocol.payloads import NoncePayload, NotifyPayload
from ikecore.protocol.tickets import TicketCheck
from ikecore.resumption import TicketAuthority, TicketKeyRing

_spec = importlib.util.spec_from_file_location(
    "reference_kdf", pathlib.Path(__file__).parent.parent / "crypto" / "reference_kdf.py")
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)


# ------------------------------------------------------------------ helpers --

def ticketed_pair(*, desk: TicketDesk | None = None, **kw) -> Pair:
    """A pair whose client holds a ticket from a full handshake."""
    p = Pair(*resumption_configs(**kw), desk=desk or TicketDesk())
    p.connect()
    assert p.run(p.established, max_time=60)
    assert p.ei.tickets.get("ike") is not None
    return p


def lose_sa(p: Pair):
    """The client goes offline: it forgets its SA without a Delete (ticket kept)."""
    conn = p.conn("i")
    conn.suspend(p.now)
    p.ei.collect_all()
    p.flush()
    assert p.ei.tickets.get("ike") is not None
    p.now += 5
    return conn


def resumed_up(p: Pair, conn) -> bool:
    return conn.established and any(e.resumed for e in p.of(ev.IkeSaEstablished, "r"))


def resume(p: Pair, **kw):
    conn = p.resume(**kw)
    p.run(lambda: conn.established and len(conn.children) == 1, max_time=120)
    return conn


def fell_back(p: Pair, conn) -> bool:
    """The client gave up resuming and completed a full handshake instead."""
    return (bool(p.of(ev.ResumeFailed)) and conn.established and conn.resumed is None
            and not any(e.resumed for e in p.of(ev.IkeSaEstablished, "r")))


def exchanges(p: Pair) -> list:
    out = []
    for tag, data in p.trace:
        data = data[4:] if data[:4] == bytes(4) else data
        out.append((tag, parse_message(data).exchange_type))
    return out


def resume_messages(p: Pair) -> tuple[Message, Message]:
    req = rsp = None
    for tag, data in p.trace:
        m = parse_message(data[4:] if data[:4] == bytes(4) else data)
        if m.exchange_type == ExchangeType.IKE_SESSION_RESUME:
            if tag == "i>r":
                req = m
            else:
                rsp = m
    return req, rsp


# ---------------------------------------------------------- the happy path --

def test_ticket_issued_in_ike_auth():
    p = ticketed_pair()
    [received] = p.of(ev.TicketReceived)
    [issued] = p.of(ev.TicketIssued, "r")
    assert received.lifetime == issued.lifetime == 3600          # IkeConfig.ticket_lifetime
    held = p.ei.tickets["ike"]
    assert held is received.ticket
    assert held.expires_at == WALL_OFFSET + 1000 + 3600        # wall time at receipt + lifetime
    assert held.remote_id == Identity.parse("responder@test") and held.local_id == Identity.parse("initiator@test")
    assert held.sk_d == p.conn("i").keys.sk_d
    assert "sk_d" not in repr(held) and held.ticket.hex() not in repr(held)
    # the gateway remembers nothing but which SA the ticket came from
    assert p.er._ticket_holders == {issued.ticket_id: p.conn("r")}


def test_resumption_establishes_and_carries_traffic():
    p = ticketed_pair()
    old_r = p.conn("r")
    old_child_r = next(iter(old_r.children.values()))
    lose_sa(p)
    mark = len(p.trace)
    conn = resume(p)
    assert resumed_up(p, conn)
    # one IKE_SESSION_RESUME, one IKE_AUTH, no IKE_SA_INIT
    assert exchanges(p)[mark:] == [("i>r", 38), ("r>i", 38), ("i>r", 35), ("r>i", 35)]
    [est_i] = [e for e in p.of(ev.IkeSaEstablished) if e.spi_i == conn.spi_i]
    assert est_i.resumed and est_i.remote_id == Identity.parse("responder@test")
    gw = p.conn("r")
    assert gw is not old_r and gw.resumed is not None
    assert gw.remote_id == Identity.parse("initiator@test")
    assert conn.suite == gw.suite == old_r.suite
    # the first Child SA is keyed from the new SK_d and the resumption nonces
    [child] = conn.children.values()
    assert_child_pair(child, peer_child(child, gw))
    # RFC 5723 §4.3.4: the gateway dropped the old SA and its Child SA silently
    assert old_r.state.value == "deleted" and old_r.deleted_reason == "replaced by a resumed session"
    assert any(isinstance(e, ev.ChildSaDeleted) and e.child is old_child_r for e in p.events_r)
    assert not any(t == "r>i" and x == 37 for t, x in exchanges(p)[mark:])   # no Delete
    # single use, both ends: the client spent its ticket, and got a fresh one
    assert p.desk.checks == 1
    assert len(p.of(ev.TicketReceived)) == 2
    assert p.ei.tickets["ike"] is p.of(ev.TicketReceived)[-1].ticket
    assert p.ei.tickets["ike"].sk_d == conn.keys.sk_d


def test_resume_again_with_the_fresh_ticket():
    p = ticketed_pair()
    for _ in range(3):
        lose_sa(p)
        conn = resume(p)
        assert resumed_up(p, conn)
    assert p.er.stats["resumed"] == 3 and p.er.stats["ticket_nacks"] == 0
    assert len(p.live("r")) == 1        # every older SA was retired on the gateway


@pytest.mark.parametrize("form", ["rfc", "message"])
def test_key_schedule_and_auth_against_reference(form):
    """SKEYSEED = prf(SK_d_old, "Resumption" | Ni | Nr), prf+ over Ni | Nr | SPIi | SPIr,
    AUTH = prf(SK_px, octets) without the key pad, recomputed with stdlib hmac."""
    p = ticketed_pair(cfg_i_kw={"resumption_auth": form})
    sk_d_old = p.ei.tickets["ike"].sk_d
    lose_sa(p)
    conn = resume(p)
    gw = p.conn("r")
    req, rsp = resume_messages(p)
    ni, nr = req.find(PayloadType.NONCE).data, rsp.find(PayloadType.NONCE).data
    skeyseed, keys = ref.rekey(5, sk_d_old, 5, b"Resumption", ni, nr, conn.spi_i, conn.spi_r, 0, 36)
    sk_d, sk_ai, sk_ar, sk_ei, sk_er, sk_pi, sk_pr = keys
    assert (conn.keys.sk_d, conn.keys.sk_ei, conn.keys.sk_er, conn.keys.sk_pi, conn.keys.sk_pr) == \
           (sk_d, sk_ei, sk_er, sk_pi, sk_pr)
    assert gw.keys == conn.keys
    # AUTH payloads of the resumed IKE_AUTH, as they crossed the wire
    auth_msgs = [(t, m) for t, m in decrypt_trace(p, gw, conn) if m.exchange_type == ExchangeType.IKE_AUTH]
    auth_i = next(m for t, m in auth_msgs if t == "i>r").find(PayloadType.AUTH)
    auth_r = next(m for t, m in auth_msgs if t == "r>i").find(PayloadType.AUTH)
    assert auth_i.method == auth_r.method == AuthMethod.SHARED_KEY_MIC
    idi = bytes([3, 0, 0, 0]) + b"initiator@test"
    idr = bytes([3, 0, 0, 0]) + b"responder@test"
    if form == "rfc":
        octets_i = req.raw + nr + ref.prf(5, sk_pi, idi)
        octets_r = rsp.raw + ni + ref.prf(5, sk_pr, idr)
    else:
        octets_i, octets_r = req.raw, rsp.raw
    assert auth_i.data == ref.prf(5, sk_pi, octets_i)
    # the gateway answered in the form the client used
    assert auth_r.data == ref.prf(5, sk_pr, octets_r)
    assert gw.resumed.auth_form == form


def test_key_schedule_sha384_cbc_suite():
    p = ticketed_pair(ike="aes128-sha384-prfsha384-ecp256")
    sk_d_old = p.ei.tickets["ike"].sk_d
    lose_sa(p)
    conn = resume(p)
    req, rsp = resume_messages(p)
    ni, nr = req.find(PayloadType.NONCE).data, rsp.find(PayloadType.NONCE).data
    _, keys = ref.rekey(6, sk_d_old, 6, b"Resumption", ni, nr, conn.spi_i, conn.spi_r, 48, 16)
    assert list(conn.keys[1:8]) == keys
    assert resumed_up(p, conn)


def test_ticket_lifetime_is_bounded_by_the_sa_and_reauthentication():
    # ticket_lifetime 3600, but the IKE SA lives 1000 s and must re-authenticate after 500 s
    p = ticketed_pair(rekey_time=900, life_time=1000, cfg_r_kw={"reauth_time": 500.0})
    assert p.of(ev.TicketReceived)[0].lifetime == 500
    p2 = ticketed_pair(rekey_time=900, life_time=1000)
    assert p2.of(ev.TicketReceived)[0].lifetime == 1000
    # a resumed SA keeps the old SA's re-authentication bound: its ticket expires no later
    lose_sa(p)
    p.now += 100
    first_expiry = p.ei.tickets["ike"].expires_at
    conn = resume(p)
    assert resumed_up(p, conn)
    assert p.ei.tickets["ike"].expires_at <= first_expiry


# --------------------------------------------------------------- renewal --

def test_renewal_in_informational():
    p = ticketed_pair()
    conn = p.conn("i")
    first = p.ei.tickets["ike"]
    conn.request_ticket(p.now)
    p.run(lambda: len(p.of(ev.TicketReceived)) == 2, max_time=30)
    assert p.ei.tickets["ike"] is not first and p.ei.tickets["ike"].ticket != first.ticket
    assert len(p.of(ev.TicketIssued, "r")) == 2


def test_client_renews_before_the_ticket_runs_out():
    p = ticketed_pair(dpd_delay=0, cfg_r_kw={"ticket_lifetime": 100.0})
    p.settle(95)
    assert len(p.of(ev.TicketReceived)) >= 2        # asked again at 90 % of the lifetime


@pytest.mark.parametrize("rekeyer", ["i", "r"])
def test_ike_rekey_brings_a_ticket_for_the_new_sa(rekeyer):
    p = ticketed_pair()
    side = p.conn(rekeyer)
    side.rekey(p.now)
    p.run(lambda: p.of(ev.IkeSaRekeyed, "i") and len(p.of(ev.TicketReceived)) == 2, max_time=60)
    new_i = p.conn("i")
    assert p.ei.tickets["ike"].sk_d == new_i.keys.sk_d
    if rekeyer == "i":       # in the CREATE_CHILD_SA itself (RFC 5723 §4.1)
        assert not any(m.exchange_type == ExchangeType.INFORMATIONAL and m.notify(NotifyType.TICKET_REQUEST)
                       for _, m in decrypt_trace(p, p.conn("r")))
    # the ticket resumes, and the gateway retires the rekeyed SA it came from
    p.settle(5)
    lose_sa(p)
    conn = resume(p)
    assert resumed_up(p, conn) and len(p.live("r")) == 1


def test_gateway_without_authority_refuses_tickets():
    ci, cr = resumption_configs()
    cr = dataclasses.replace(cr, ticket_authority=None)
    p = Pair(ci, cr)
    p.connect()
    assert p.run(p.established, max_time=60)
    assert p.of(ev.TicketRefused)[0].notify_type == NotifyType.TICKET_NACK
    assert "ike" not in p.ei.tickets


# ------------------------------------------------ the client's ticket rules --

@pytest.mark.parametrize("who", ["i", "r"])
def test_ticket_dies_with_a_deleted_sa(who):
    p = ticketed_pair()
    conn_i = p.conn("i")
    p.conn(who).delete(p.now)
    p.run(lambda: conn_i.state.value == "deleted", max_time=60)
    assert "ike" not in p.ei.tickets     # RFC 5723 §6.2


def test_ticket_survives_an_unresponsive_peer():
    p = ticketed_pair(dpd_delay=10)
    p.wire.loss = 1.0
    p.run(lambda: not p.live("i"), max_time=600)
    assert p.of(ev.IkeSaDeleted)[-1].reason == "peer unresponsive"
    assert "ike" in p.ei.tickets
    p.wire.loss = 0.0
    conn = resume(p)
    assert resumed_up(p, conn)


def test_no_ticket_means_a_full_handshake():
    ci, cr = resumption_configs()
    p = Pair(ci, cr, desk=TicketDesk())
    conn = p.resume()
    assert p.run(lambda: conn.established, max_time=60)
    assert p.of(ev.ResumeFailed)[0].reason == "no usable ticket"
    assert [x for _, x in exchanges(p)][:2] == [34, 34]


def test_client_does_not_present_an_expired_ticket():
    p = ticketed_pair()
    lose_sa(p)
    p.now += 4000
    conn = p.resume()
    p.run(lambda: conn.established, max_time=60)
    assert p.of(ev.ResumeFailed)[0].reason == "no usable ticket"
    assert p.desk.checks == 0


# ------------------------------------------------- refused: TICKET_NACK -----

def _with_ticket(p: Pair, ticket: bytes, **changes):
    held = p.ei.tickets["ike"]
    return dataclasses.replace(held, ticket=ticket, **changes)


def _nacked_then_full(p: Pair, conn) -> None:
    p.run(lambda: conn.established, max_time=120)
    assert fell_back(p, conn), p.of(ev.ResumeFailed)
    failed = p.of(ev.ResumeFailed)[-1]
    assert failed.notify_type == NotifyType.TICKET_NACK
    assert failed.old_spi_i != conn.spi_i
    assert p.er.stats["ticket_nacks"] >= 1 and p.er.stats["resumed"] == 0


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]


@pytest.mark.parametrize("damage", ["tampered-body", "tampered-tag", "tampered-header", "forged",
                                    "truncated", "empty-ish", "oversized", "huge"])
def test_bad_tickets_get_nack_and_a_full_handshake(damage):
    p = ticketed_pair()
    good = p.ei.tickets["ike"].ticket
    bad = {
        "tampered-body": _flip(good, len(good) // 2),
        "tampered-tag": _flip(good, len(good) - 1),
        "tampered-header": _flip(good, 3),
        "forged": good[:6] + random.Random(1).randbytes(len(good) - 6),
        "truncated": good[:40],
        "empty-ish": b"\x01",
        "oversized": good + bytes(1200),
        "huge": bytes(resumption.MAX_TICKET + 1),
    }[damage]
    lose_sa(p)
    conn = p.resume(ticket=_with_ticket(p, bad))
    _nacked_then_full(p, conn)
    assert p.desk.checks == 0            # refused before any store round trip


def test_ticket_of_unknown_or_retired_key():
    p = ticketed_pair()
    lose_sa(p)
    # another gateway's authority (a key id this ring never had)
    other = TicketAuthority(TicketKeyRing(rng=random.Random(9).randbytes, now=wall_clock(p.now)),
                            rng=random.Random(9).randbytes)
    ci, cr = resumption_configs(authority=other)
    q = Pair(ci, cr, desk=TicketDesk())
    q.connect()
    assert q.run(q.established, max_time=60)
    conn = p.resume(ticket=q.ei.tickets["ike"])
    _nacked_then_full(p, conn)


def test_ticket_of_a_retired_key():
    p = ticketed_pair()
    held = p.ei.tickets["ike"]
    ring = p.cfg_r.ticket_authority.ring
    for k in range(ring.keep + 2):       # the key that sealed it leaves the ring
        ring.rotate(wall_clock(p.now) + k)
    lose_sa(p)
    conn = p.resume(ticket=held)
    _nacked_then_full(p, conn)


def test_expired_ticket_presented_anyway():
    p = ticketed_pair()
    held = p.ei.tickets["ike"]
    lose_sa(p)
    p.now += 3700                        # past the ticket's protected expiry
    conn = p.resume(ticket=dataclasses.replace(held, expires_at=held.expires_at + 10**6))
    _nacked_then_full(p, conn)


def test_replay_at_the_same_gateway():
    p = ticketed_pair()
    held = p.ei.tickets["ike"]
    lose_sa(p)
    conn = resume(p)
    assert resumed_up(p, conn)
    conn.suspend(p.now)
    p.flush()
    replay = p.resume(ticket=held)       # the spent ticket again (a copy an attacker kept)
    p.run(lambda: replay.established, max_time=120)
    assert fell_back(p, replay) or p.of(ev.ResumeFailed)[-1].notify_type == NotifyType.TICKET_NACK
    assert p.er.stats["ticket_replays"] == 1 and p.er.stats["resumed"] == 1
    assert p.desk.checks == 2


def test_replay_at_another_gateway_of_the_cluster():
    """Two gateways share the ticket key ring and the store: the second refuses
    a ticket the first accepted."""
    p = ticketed_pair()
    held = p.ei.tickets["ike"]
    lose_sa(p)
    conn = resume(p)
    assert resumed_up(p, conn)
    # gateway 2: same configuration and authority, same store, another address
    q = Pair(p.cfg_i, p.cfg_r, seed=77, desk=p.desk, addr_r=("192.0.2.3", 500), now=p.now)
    replay = q.resume(ticket=held)
    q.run(lambda: replay.established, max_time=120)
    assert q.of(ev.ResumeFailed)[-1].notify_type == NotifyType.TICKET_NACK
    assert q.er.stats["ticket_replays"] == 1 and q.er.stats["resumed"] == 0


@pytest.mark.parametrize("form", ["rfc", "message"])   # "message" octets do not cover IDi
def test_idi_differing_from_the_ticket_is_refused(form):
    p = ticketed_pair(cfg_i_kw={"resumption_auth": form})
    lose_sa(p)
    held = p.ei.tickets["ike"]
    conn = p.resume(ticket=dataclasses.replace(held, local_id=Identity.parse("mallory@test")))
    p.run(lambda: conn.established, max_time=120)
    # the gateway refused the resumed AUTH; the client fell back to a full handshake
    assert p.of(ev.ResumeFailed)[-1].notify_type == NotifyType.AUTHENTICATION_FAILED
    assert not any(e.resumed for e in p.of(ev.IkeSaEstablished, "r"))
    assert conn.established and conn.remote_id == Identity.parse("responder@test")


def test_gateway_identity_or_policy_changed():
    p = ticketed_pair()
    lose_sa(p)
    # the gateway now only talks to another peer identity: the ticket's IDi is refused
    p.er.select_config = lambda remote, local: dataclasses.replace(
        p.cfg_r, remote_id=Identity.parse("someone@else"))
    conn = p.resume()
    p.run(lambda: bool(p.of(ev.ResumeFailed)), max_time=30)
    assert p.of(ev.ResumeFailed)[-1].notify_type == NotifyType.TICKET_NACK
    assert p.desk.checks == 0 and conn.resumed is None


def test_suite_no_longer_allowed_is_refused():
    from ikecore.protocol.config import IkeProposal
    p = ticketed_pair()
    lose_sa(p)
    p.er.select_config = lambda remote, local: dataclasses.replace(
        p.cfg_r, proposals=[IkeProposal.parse("aes128gcm16-prfsha384-x25519")])
    conn = p.resume()
    p.run(lambda: bool(p.of(ev.ResumeFailed)), max_time=30)
    assert p.of(ev.ResumeFailed)[-1].notify_type == NotifyType.TICKET_NACK
    assert p.desk.checks == 0 and conn.resumed is None


@pytest.mark.parametrize("mode", ["down", "slow"])
def test_store_down_or_slow_means_nack(mode):
    p = ticketed_pair(desk=TicketDesk())
    lose_sa(p)
    p.desk.mode = mode
    conn = p.resume()
    _nacked_then_full(p, conn)
    assert p.desk.checks == 1
    assert p.er.half_open == 0 and not p.er._pending_checks
    if mode == "slow":                   # the store's late answer changes nothing
        endpoint, token = p.desk.unanswered[0]
        endpoint.ticket_checked(token, True, p.now)
        assert p.er.stats["resumed"] == 0


def test_resumption_off_at_the_gateway_gets_nack():
    p = ticketed_pair()
    lose_sa(p)
    p.er.select_config = lambda remote, local: dataclasses.replace(p.cfg_r, resumption=False)
    conn = p.resume()
    _nacked_then_full(p, conn)


def test_no_answer_falls_back_after_resume_tries():
    p = ticketed_pair()
    lose_sa(p)
    orig = p.er.receive_datagram

    def deaf_to_resume(data, remote, local, now):       # a gateway that drops exchange 38
        if parse_message(data).exchange_type == ExchangeType.IKE_SESSION_RESUME:
            return None
        return orig(data, remote, local, now)
    p.er.receive_datagram = deaf_to_resume
    conn = p.resume()
    start = p.now
    p.run(lambda: conn.established, max_time=120)
    failed = p.of(ev.ResumeFailed)[-1]
    assert failed.reason == "no answer to IKE_SESSION_RESUME"
    sent = [1 for t, x in exchanges(p) if t == "i>r" and x == 38]
    assert len(sent) == 1 + p.cfg_i.resume_tries
    assert conn.established and p.now - start < 30


def test_lost_resume_response_is_answered_from_cache():
    p = ticketed_pair()
    lose_sa(p)
    conn = p.resume()
    p.deliver("i>r")                     # the request reaches the gateway ...
    assert p.discard("r>i") == 1         # ... its answer is lost
    p.run(lambda: conn.established, max_time=60)
    assert resumed_up(p, conn)
    assert p.desk.checks == 1            # the retransmission was answered from the cache


# ---------------------------------------------------- unauthenticated state --

def _resume_request(spi_i: bytes, ticket: bytes, cookie: bytes | None = None) -> bytes:
    payloads = [NotifyPayload(notify_type=NotifyType.COOKIE, data=cookie)] if cookie else []
    payloads += [NoncePayload(bytes(32)), NotifyPayload(notify_type=NotifyType.TICKET_OPAQUE, data=ticket)]
    return Message(spi_i, bytes(8), ExchangeType.IKE_SESSION_RESUME, 0x08, 0, payloads=payloads).encode()


def _gateway(**kw):
    ci, cr = resumption_configs()
    p = Pair(ci, cr, desk=TicketDesk())
    p.connect()
    assert p.run(p.established, max_time=60)
    ticket = p.ei.tickets["ike"].ticket
    gw = IkeEndpoint(cr, rng=random.Random(3).randbytes, now=p.now, **kw)
    return gw, ticket, p.now


def test_pending_ticket_checks_are_bounded_and_count_as_half_open():
    gw, ticket, now = _gateway(max_ticket_checks=3, cookie_threshold=1000)
    for k in range(5):
        gw.receive_datagram(_resume_request(bytes([k + 1]) * 8, ticket), ("198.51.100.1", 500 + k),
                            ADDR_R, now)
    checks = [op for op in gw.ticket_store_ops() if isinstance(op, TicketCheck)]
    assert len(checks) == 3 and gw.half_open == 3
    nacks = [parse_message(d) for d, _, _ in gw.datagrams_to_send()]
    assert len(nacks) == 2 and all(m.notify(NotifyType.TICKET_NACK) for m in nacks)
    assert all(m.spi_r == bytes(8) for m in nacks)
    # a retransmission while its check is pending is not a second check
    gw.receive_datagram(_resume_request(b"\x01" * 8, ticket), ("198.51.100.1", 500), ADDR_R, now)
    assert gw.ticket_store_ops() == [] and gw.datagrams_to_send() == []
    # the store never answers: after the timeout each gets TICKET_NACK, and nothing is left
    assert gw.get_timer() == now + gw.ticket_check_timeout
    gw.handle_timer(now + gw.ticket_check_timeout)
    assert gw.half_open == 0 and len(gw.datagrams_to_send()) == 3


def test_cookies_engage_for_resumption():
    gw, ticket, now = _gateway(cookie_threshold=1)
    gw.receive_datagram(_resume_request(b"\x01" * 8, ticket), ("198.51.100.1", 500), ADDR_R, now)
    assert len(gw.ticket_store_ops()) == 1 and gw.half_open == 1
    gw.datagrams_to_send()
    # over the threshold: a stateless COOKIE, no ticket work at all
    gw.receive_datagram(_resume_request(b"\x02" * 8, ticket), ("198.51.100.2", 500), ADDR_R, now)
    [(data, _, _)] = gw.datagrams_to_send()
    reply = parse_message(data)
    assert reply.exchange_type == ExchangeType.IKE_SESSION_RESUME
    cookie = reply.notify(NotifyType.COOKIE).data
    assert gw.ticket_store_ops() == [] and gw.half_open == 1
    # the same request with the cookie goes on to the ticket check
    gw.receive_datagram(_resume_request(b"\x02" * 8, ticket, cookie), ("198.51.100.2", 500), ADDR_R, now)
    assert len(gw.ticket_store_ops()) == 1 and gw.half_open == 2
    # a cookie made for another address does not
    gw.receive_datagram(_resume_request(b"\x03" * 8, ticket, cookie), ("198.51.100.3", 500), ADDR_R, now)
    assert gw.ticket_store_ops() == [] and gw.stats["cookie_rejects"] == 1


def test_client_answers_a_cookie_challenge():
    p = ticketed_pair()
    lose_sa(p)
    p.er.cookie_threshold = 0
    conn = resume(p)
    assert resumed_up(p, conn) and p.er.stats["cookies_sent"] == 1
    req, _ = resume_messages(p)
    assert req.payloads[0].notify_type == NotifyType.COOKIE     # first, as in IKE_SA_INIT


def test_half_open_resumed_sa_expires():
    p = ticketed_pair()
    lose_sa(p)
    conn = p.resume()
    p.deliver("i>r")
    p.discard()
    conn.suspend(p.now)                  # the client vanishes before IKE_AUTH
    assert p.er.half_open == 1
    p.settle(60)
    assert p.er.half_open == 0 and len(p.live("r", "init-done")) == 0


def test_malformed_resume_requests_do_not_crash():
    gw, ticket, now = _gateway()
    for data in (_resume_request(b"\x01" * 8, b"") [:-4],
                 Message(b"\x02" * 8, bytes(8), 38, 0x08, 0, payloads=[NoncePayload(bytes(32))]).encode(),
                 Message(b"\x03" * 8, bytes(8), 38, 0x08, 5, payloads=[
                     NoncePayload(bytes(32)), NotifyPayload(notify_type=NotifyType.TICKET_OPAQUE,
                                                            data=ticket)]).encode(),
                 Message(b"\x04" * 8, bytes(8), 38, 0x08, 0, payloads=[
                     NoncePayload(bytes(4)), NotifyPayload(notify_type=NotifyType.TICKET_OPAQUE,
                                                           data=ticket)]).encode(),
                 Message(b"\x05" * 8, bytes(8), 38, 0x08, 0, payloads=[
                     NoncePayload(bytes(32)), NotifyPayload(notify_type=NotifyType.TICKET_OPAQUE, data=ticket),
                     NotifyPayload(notify_type=NotifyType.TICKET_OPAQUE, data=ticket)]).encode()):
        gw.receive_datagram(data, ("198.51.100.9", 500), ADDR_R, now)
    assert gw.ticket_store_ops() == [] and gw.half_open == 0
    for data, _, _ in gw.datagrams_to_send():
        assert parse_message(data).error_notify() is not None


# ------------------------------------------------------- by-reference tickets --

def test_by_reference_tickets():
    p = ticketed_pair(by_reference=True)
    assert p.desk.puts == 1 and len(p.desk.data) == 1     # the state went to the store
    held = p.ei.tickets["ike"]
    lose_sa(p)
    conn = resume(p)
    assert resumed_up(p, conn)
    assert p.desk.checks == 1
    # taken (GETDEL) once; a replay finds nothing
    conn.suspend(p.now)
    p.flush()
    replay = p.resume(ticket=held)
    p.run(lambda: replay.established, max_time=120)
    assert p.of(ev.ResumeFailed)[-1].notify_type == NotifyType.TICKET_NACK
    assert p.er.stats["ticket_replays"] == 1


def test_by_reference_state_missing_from_the_store():
    p = ticketed_pair(by_reference=True)
    lose_sa(p)
    p.desk.data.clear()                  # the store lost it (restart, eviction)
    conn = p.resume()
    _nacked_then_full(p, conn)


# ------------------------------------------------------ NAT and certificates --

def test_nat_detection_afresh_after_moving_behind_a_nat():
    """The client resumes from behind a NAT it was not behind before (RFC 5723
    §4.3.2: NAT detection as in IKE_SA_INIT): both ends move to 4500."""
    from ike_pair import Nat
    from ikecore.protocol.endpoint import NON_ESP_MARKER
    p = ticketed_pair()
    assert not p.conn("i").nat_detected
    lose_sa(p)
    p.nat = Nat(public="203.0.113.9")
    mark = len(p.trace)
    conn = resume(p)
    gw = p.conn("r")
    assert resumed_up(p, conn)
    assert conn.nat_local and gw.nat_remote
    assert conn.local[1] == 4500 and gw.local[1] == 4500 and gw.remote[0] == "203.0.113.9"
    assert next(iter(conn.children.values())).udp_encap
    after = [d for _, d in p.trace[mark:]]
    assert not after[0].startswith(NON_ESP_MARKER) and all(d.startswith(NON_ESP_MARKER) for d in after[2:])


def test_resumption_of_a_certificate_authenticated_sa():
    """The original SA authenticated with certificates; the resumed IKE_AUTH carries
    no CERT, no CERTREQ and no signature, and the ticket keeps the original method."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from test_ike_auth_methods import Pki, cert_configs
    pki = Pki()
    ci, cr = cert_configs(pki, ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1()),
                          cfg_i={"resumption": True, "wall_clock": wall_clock},
                          cfg_r={"resumption": True, "wall_clock": wall_clock,
                                 "ticket_authority": resumption_configs()[1].ticket_authority})
    p = Pair(ci, cr, desk=TicketDesk())
    p.connect()
    assert p.run(p.established, max_time=60)
    lose_sa(p)
    conn = resume(p)
    gw = p.conn("r")
    assert resumed_up(p, conn)
    assert gw.peer_auth_method == AuthMethod.DIGITAL_SIGNATURE     # from the ticket
    resumed_auth = [m for t, m in decrypt_trace(p, gw, conn) if m.exchange_type == ExchangeType.IKE_AUTH][-2:]
    for m in resumed_auth:
        assert not m.find_all(PayloadType.CERT) and not m.find_all(PayloadType.CERTREQ)
        assert m.find(PayloadType.AUTH).method == AuthMethod.SHARED_KEY_MIC


# ------------------------------------------------------------------ fuzzing --

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_FUZZ = {}


def _fuzz_gateway():
    if not _FUZZ:
        gw, ticket, now = _gateway(max_ticket_checks=8, cookie_threshold=1000)
        _FUZZ.update(gw=gw, ticket=ticket, now=now)
    return _FUZZ["gw"], _FUZZ["ticket"], _FUZZ["now"]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_resume_requests_never_crash_and_stay_bounded(data):
    gw, ticket, now = _fuzz_gateway()
    raw = bytearray(_resume_request(data.draw(st.binary(min_size=8, max_size=8)), ticket))
    for _ in range(data.draw(st.integers(0, 6))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    gw.receive_datagram(bytes(raw[:cut] if data.draw(st.booleans()) else raw), ("198.51.100.7", 500),
                        ADDR_R, now)
    # The answers are drawn before the shared gateway says how many checks it has, so the
    # draws never depend on state earlier examples left behind (hypothesis requires that).
    answers = data.draw(st.lists(st.sampled_from([True, False, None, b"junk", ConnectionError("down")]),
                                 min_size=gw.max_ticket_checks, max_size=gw.max_ticket_checks))
    for op, answer in zip(gw.ticket_store_ops(), answers):   # a fresh spend succeeds
        gw.ticket_checked(op.token, answer, now)
    gw.datagrams_to_send()
    assert len(gw._pending_checks) <= gw.max_ticket_checks
    # only an intact ticket can have made a half-open SA
    for conn in gw.connections.values():
        assert conn.resumed is not None and conn.resumed.ticket_id


def test_one_renewal_pending_at_a_time():
    p = ticketed_pair(dpd_delay=0)
    conn = p.conn("i")
    for _ in range(3):
        conn.request_ticket(p.now)
        p.run(lambda: not conn.outstanding and not conn.tasks, max_time=30)
    from ikecore.protocol.exchanges.resumption import TicketRequestTask
    assert sum(isinstance(t, TicketRequestTask) for _, t in conn.deferred) == 1
    assert len(p.of(ev.TicketReceived)) == 4


def test_a_stolen_ticket_without_sk_d_gets_nowhere():
    """The ticket crosses the wire in the clear; without SK_d its holder cannot key
    the IKE_AUTH, so the gateway never establishes anything with it."""
    p = ticketed_pair()
    old_r = p.conn("r")
    lose_sa(p)
    held = p.ei.tickets["ike"]
    thief = p.resume(ticket=dataclasses.replace(held, sk_d=bytes(len(held.sk_d))))
    p.run(lambda: thief.established or thief.state.value == "deleted", max_time=120)
    assert not any(e.resumed for e in p.of(ev.IkeSaEstablished, "r"))
    assert p.er.stats["resumed"] == 1                       # the ticket was spent ...
    assert p.live("r") == [old_r]                           # ... but no SA came of it
    assert p.er.half_open == 0


def test_a_wrong_resumption_auth_is_refused(monkeypatch):
    p = ticketed_pair()
    lose_sa(p)
    real = resumption.resumed_auth

    def forged(conn, *, initiator_side, id_type, id_data):
        auth = real(conn, initiator_side=initiator_side, id_type=id_type, id_data=id_data)
        if initiator_side:
            auth.data = bytes(len(auth.data))
        return auth
    monkeypatch.setattr(resumption, "resumed_auth", forged)
    conn = p.resume()
    p.run(lambda: bool(p.of(ev.ResumeFailed)), max_time=60)
    assert p.of(ev.ResumeFailed)[-1].notify_type == NotifyType.AUTHENTICATION_FAILED
    assert not any(e.resumed for e in p.of(ev.IkeSaEstablished, "r"))
    monkeypatch.undo()
    p.run(lambda: conn.established, max_time=60)            # the full handshake that follows
    assert conn.resumed is None


# ------------------------------------------------------ a client's restart --

def test_client_ticket_survives_a_restart_as_octets():
    """A client keeps its ticket across a restart (ClientTicket.encode/decode) and
    resumes from a brand-new endpoint."""
    from ikecore.errors import ParseError
    from ikecore.protocol.tickets import ClientTicket
    p = ticketed_pair()
    held = p.ei.tickets["ike"]
    kept = held.encode()
    again = ClientTicket.decode(kept)
    assert again == held and again.sk_d == held.sk_d and again.ticket == held.ticket
    for bad in (kept[:-1], kept + b"\0", b"\x02" + kept[1:], kept[:10], b""):
        with pytest.raises(ParseError):
            ClientTicket.decode(bad)
    lose_sa(p)
    p.ei = IkeEndpoint(p.cfg_i, rng=random.Random(42).randbytes, now=p.now)    # the restarted client
    conn = p.resume(ticket=ClientTicket.decode(kept))
    p.run(lambda: conn.established and len(conn.children) == 1, max_time=60)
    assert resumed_up(p, conn)
