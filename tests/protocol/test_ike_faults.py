"""Bad input to the IKE SA core: messages valid in syntax but wrong for the
state, responses nobody asked for, replayed and reordered requests, requests
beyond the window, peers that never answer. Nothing may crash, no SA may be
left half-changed, and other SAs must not notice.

    Responder state  request                  answer
    half-open        anything but IKE_AUTH    N(INVALID_SYNTAX), then the SA is forgotten
    established      IKE_AUTH, unknown type   N(INVALID_SYNTAX), the SA stays
    rekeyed/deleting CREATE_CHILD_SA          N(TEMPORARY_FAILURE)
    any              unprotected, bad ICV,    nothing
                     beyond the window
    any              already answered         the cached response, bit for bit
"""
import pytest

from ike_pair import (ADDR_I, ADDR_R, Pair, Wire, assert_child_pair, configs, decrypt_trace,
                      established_pair, other, peer_child)
from ikecore.protocol import events as ev
from ikecore.protocol.constants import ExchangeType, Flags, NotifyType, PayloadType, ProtocolId
from ikecore.protocol.exchanges.task import Task
from ikecore.protocol.ike_sa import REQUEST_TABLE, Admit, State, admit_request
from ikecore.protocol.message import Message, parse_message
from ikecore.protocol.negotiation import esp_sa_payload
from ikecore.protocol.payloads import (DeletePayload, IdiPayload, NoncePayload, NotifyPayload,
                                       TrafficSelector, TsiPayload, TsrPayload)

X = ExchangeType


class RawRequest(Task):
    """Sends whatever payloads it is given, in any state past IKE_SA_INIT, and
    keeps the answer: a stand-in for a peer that breaks the rules."""

    def __init__(self, exchange_type, payloads):
        self.exchange_type, self.payloads = exchange_type, payloads
        self.answer = None

    def ready(self, conn):
        return conn.keys is not None

    def build_request(self, conn, now):
        return Message(conn.spi_i, conn.spi_r, self.exchange_type, inner=list(self.payloads))

    def on_response(self, conn, msg, now):
        self.answer = msg

    def failed(self, conn, now, reason, notify_type=None):
        self.answer = reason


def child_request(conn):
    any_v4 = TrafficSelector(7, 0, 0, 65535, bytes(4), b"\xff" * 4)
    sa = esp_sa_payload(conn.config.children[0].esp_proposals, b"\x11\x22\x33\x44")
    return [sa, NoncePayload(bytes(range(32))), TsiPayload([any_v4]), TsrPayload([any_v4])]


def half_open_pair():
    """IKE_SA_INIT done; the initiator's IKE_AUTH is held back (not queued)."""
    p = Pair(*configs())
    ci = p.connect()
    ci.tasks.clear()                      # no IKE_AUTH: the test sends its own requests
    p.deliver("i>r")
    p.deliver("r>i")
    [cr] = p.er.connections.values()
    assert ci.state == cr.state == State.INIT_DONE
    return p, ci, cr


# ------------------------------------------------------------ the state table --

def test_request_table_lists_what_each_state_takes():
    listed = {(s, x) for (s, x) in REQUEST_TABLE}
    for state in State:
        for xchg in (X.IKE_SA_INIT, X.IKE_AUTH, X.CREATE_CHILD_SA, X.INFORMATIONAL, X.IKE_SESSION_RESUME, 99):
            for initiator in (True, False):
                action = admit_request(state, xchg, initiator=initiator)
                if state in (State.IDLE, State.INIT_SENT, State.DELETED):
                    assert action is Admit.DROP
                elif state == State.INIT_DONE and initiator:
                    assert action is Admit.DROP
                elif (state, xchg) in listed:
                    assert action is REQUEST_TABLE[(state, xchg)]
                else:
                    assert action in (Admit.REJECT, Admit.REJECT_AND_CLOSE)
    assert admit_request(State.ESTABLISHED, X.CREATE_CHILD_SA, initiator=True) is Admit.HANDLE
    assert admit_request(State.REKEYED, X.CREATE_CHILD_SA, initiator=False) is Admit.TEMPORARY_FAILURE
    assert admit_request(State.INIT_DONE, X.IKE_AUTH, initiator=False) is Admit.HANDLE


# ----------------------------------------------------------------- half-open --

@pytest.mark.parametrize("exchange, payloads", [
    (X.CREATE_CHILD_SA, "child"),
    (X.INFORMATIONAL, []),
    (X.INFORMATIONAL, [DeletePayload(ProtocolId.IKE)]),
    (99, []),
])
def test_only_ike_auth_may_follow_ike_sa_init(exchange, payloads):
    p, ci, cr = half_open_pair()
    task = RawRequest(exchange, child_request(ci) if payloads == "child" else payloads)
    ci.queue(task, p.now)
    p.deliver("i>r")
    # answered (the message passed the ICV), and the half-open SA is forgotten
    assert cr.state == State.DELETED and not p.er.connections
    assert p.er.half_open == 0
    p.deliver("r>i")
    [answer] = [m for _, m in decrypt_trace(p, ci) if m.is_response and m.message_id == 1]
    assert answer.inner == [NotifyPayload(notify_type=NotifyType.INVALID_SYNTAX)]
    assert answer.exchange_type == exchange
    assert not p.of(ev.IkeSaEstablished, "r") and not p.of(ev.ChildSaInstalled, "r")


def test_the_initiator_ignores_requests_before_its_ike_auth_completes():
    """The responder is up once it sent its IKE_AUTH response; a request of its
    own that overtakes that response is dropped and retransmitted, not refused."""
    p = Pair(*configs())
    p.connect()
    for tag in ("i>r", "r>i", "i>r"):        # IKE_SA_INIT, and the IKE_AUTH request
        p.deliver(tag)
    ci = next(iter(p.ei.connections.values()))
    cr = next(iter(p.er.connections.values()))
    assert cr.state == State.ESTABLISHED and ci.state == State.INIT_DONE
    cr.check_liveness(p.now)
    p.deliver("r>i", response=False)          # the check overtakes the IKE_AUTH response
    assert ci.state == State.INIT_DONE and ci.expected_request_id == 0
    assert p.in_flight_tags() == ["r>i"]      # no answer went back
    assert p.run(lambda: p.of(ev.PeerAlive, "r"), max_time=60)
    assert ci.state == State.ESTABLISHED and len(p.of(ev.IkeSaEstablished, "i")) == 1
    answers = [m for _, m in decrypt_trace(p, cr) if m.is_response]
    assert all(m.error_notify() is None for m in answers)


# --------------------------------------------------------------- established --

@pytest.mark.parametrize("side", ["i", "r"])
@pytest.mark.parametrize("exchange", [X.IKE_AUTH, 99])
def test_wrong_exchange_on_an_established_sa_is_refused(side, exchange):
    p = established_pair()
    a, b = p.conn(side), p.conn(other(side))
    [child_a] = a.children.values()
    payloads = [IdiPayload(2, b"again")] if exchange == X.IKE_AUTH else []
    task = RawRequest(exchange, payloads)
    a.queue(task, p.now)
    p.settle(5.0)
    # (the initiator's own IKE_AUTH was answered on this SA too: take the last answer)
    answer = [m for _, m in decrypt_trace(p, a) if m.is_response and m.exchange_type == exchange][-1]
    assert answer.message_id == a.next_request_id - 1
    assert answer.inner == [NotifyPayload(notify_type=NotifyType.INVALID_SYNTAX)]
    assert a.state == b.state == State.ESTABLISHED
    assert len(p.of(ev.IkeSaEstablished, "i")) == len(p.of(ev.IkeSaEstablished, "r")) == 1
    assert_child_pair(child_a, peer_child(child_a, b))
    a.create_child_sa(p.now)                   # and the SA goes on working
    assert p.run(lambda: len(a.children) == len(b.children) == 2, max_time=60)


@pytest.mark.parametrize("side", ["i", "r"])
def test_create_child_sa_on_a_deleting_sa_is_refused(side):
    p = established_pair()
    a, b = p.conn(side), p.conn(other(side))
    a.delete(p.now)
    b.create_child_sa(p.now)
    p.deliver(TAG[side])               # a's Delete
    p.deliver(TAG[other(side)])        # b's request meets a DELETING SA
    p.settle(30.0)
    refusals = [m.error_notify().notify_type for _, m in decrypt_trace(p, b)
                if m.is_response and m.exchange_type == X.CREATE_CHILD_SA]
    assert refusals == [NotifyType.TEMPORARY_FAILURE]
    assert not p.ei.connections and not p.er.connections


TAG = {"i": "i>r", "r": "r>i"}


# ------------------------------------------------------------------ responses --

def forged_response(sender, exchange, mid, payloads=()):
    msg = Message(sender.spi_i, sender.spi_r, exchange,
                  Flags.RESPONSE | (Flags.INITIATOR if sender.initiator else Flags.NONE), mid,
                  inner=list(payloads))
    return sender.encode(msg)[0]


@pytest.mark.parametrize("side", ["i", "r"])
def test_responses_nobody_asked_for_are_ignored(side):
    p = established_pair()
    a, b = p.conn(side), p.conn(other(side))
    addr_a, addr_b = (ADDR_I, ADDR_R) if side == "i" else (ADDR_R, ADDR_I)
    ep_a = p.ei if side == "i" else p.er
    a.check_liveness(p.now)
    p.flush()
    [mid] = a.outstanding
    heard = a.last_heard
    bogus = [forged_response(b, X.INFORMATIONAL, mid + 7),               # an ID never used
             forged_response(b, X.CREATE_CHILD_SA, mid,                  # right ID, wrong exchange
                             [NotifyPayload(notify_type=NotifyType.NO_PROPOSAL_CHOSEN)]),
             forged_response(b, X.INFORMATIONAL, mid + 1)]               # one not sent yet
    for data in bogus:
        ep_a.receive_datagram(data, addr_b, addr_a, p.now)
    assert list(a.outstanding) == [mid] and a.last_heard == heard
    assert not p.of(ev.PeerAlive, side)
    assert p.run(lambda: p.of(ev.PeerAlive, side), max_time=60)    # the real answer still counts
    assert a.state == b.state == State.ESTABLISHED


# ------------------------------------------------------------------- requests --

@pytest.mark.parametrize("side", ["i", "r"])
def test_retransmitted_request_gets_the_cached_response(side):
    p = established_pair()
    a, b = p.conn(side), p.conn(other(side))
    a.create_child_sa(p.now)
    request = p.deliver(TAG[side])
    response = p.deliver(TAG[other(side)])
    assert len(b.children) == 2
    p.trace.append((TAG[side], request))
    (p.er if side == "i" else p.ei).receive_datagram(request, *((ADDR_I, ADDR_R) if side == "i"
                                                               else (ADDR_R, ADDR_I)), p.now)
    p.flush()
    assert [f[1] for f in p.in_flight] == [response]            # bit for bit, nothing new made
    assert len(b.children) == 2 and len(p.of(ev.ChildSaInstalled, other(side))) == 2
    p.discard()
    # once the next request is answered, the old response is forgotten: no answer at all
    a.check_liveness(p.now)
    p.settle(5.0)
    (p.er if side == "i" else p.ei).receive_datagram(request, *((ADDR_I, ADDR_R) if side == "i"
                                                               else (ADDR_R, ADDR_I)), p.now)
    assert p.in_flight_tags() == []
    assert len(b.children) == 2


@pytest.mark.parametrize("side", ["i", "r"])
def test_requests_outside_the_window_or_unprotected_are_dropped(side):
    p = established_pair()
    a, b = p.conn(side), p.conn(other(side))
    addr_a, addr_b = (ADDR_I, ADDR_R) if side == "i" else (ADDR_R, ADDR_I)
    ep_b = p.er if side == "i" else p.ei
    expected = b.expected_request_id
    flags = Flags.INITIATOR if a.initiator else Flags.NONE
    ahead = a.encode(Message(a.spi_i, a.spi_r, X.INFORMATIONAL, flags, expected + 1, inner=[]))[0]
    clear = Message(a.spi_i, a.spi_r, X.INFORMATIONAL, flags, expected,
                    payloads=[DeletePayload(ProtocolId.IKE)]).encode()
    tampered = bytearray(a.encode(Message(a.spi_i, a.spi_r, X.INFORMATIONAL, flags, expected,
                                          inner=[DeletePayload(ProtocolId.IKE)]))[0])
    tampered[-1] ^= 1
    for data in (ahead, clear, bytes(tampered), b"\x00" * 40):
        ep_b.receive_datagram(data, addr_a, addr_b, p.now)
    assert p.in_flight_tags() == [] and b.expected_request_id == expected
    assert a.state == b.state == State.ESTABLISHED and b.children
    a.check_liveness(p.now)
    assert p.run(lambda: p.of(ev.PeerAlive, side), max_time=60)


def test_a_window_takes_requests_out_of_order():
    p = established_pair(window_size=3)
    ci, cr = p.conn("i"), p.conn("r")
    p.settle(1.0)                                  # the SET_WINDOW_SIZE exchanges
    for _ in range(3):
        ci.create_child_sa(p.now)
    p.flush()
    requests = [f for f in p.in_flight if f[4] == "i>r"]
    assert len(requests) == 3
    first = requests[0][1]
    for index in (2, 1, 0):                        # the newest first
        p.deliver("i>r", index=index)
    assert len(cr.children) == 4 and cr.expected_request_id == ci.next_request_id
    assert len(cr.response_cache) == 3
    p.discard("r>i")                               # every response is lost...
    assert p.run(lambda: len(ci.children) == 4, max_time=60)   # ...and replayed from the cache
    assert len(cr.children) == 4
    for c in ci.children.values():
        assert_child_pair(c, peer_child(c, cr))
    p.er.receive_datagram(first, ADDR_I, ADDR_R, p.now)
    assert p.in_flight_tags() == ["r>i"]           # still within the window: replayed


# ---------------------------------------------------------- silent peers --

@pytest.mark.parametrize("side", ["i", "r"])
def test_a_request_never_answered_ends_the_sa_on_schedule(side):
    p = established_pair()
    a, b = p.conn(side), p.conn(other(side))
    a.config.dpd_delay = b.config.dpd_delay = 0.0
    p.wire.loss = 1.0
    start = p.now
    a.create_child_sa(p.now)
    p.flush()
    sent_at = [0.0] * p.wire.dropped
    while a.state != State.DELETED:
        before = p.wire.dropped
        p.step()
        if p.wire.dropped > before:
            sent_at.append(p.now - start)
    cfg = a.config
    gaps = [cfg.retransmit_timeout * cfg.retransmit_base ** k for k in range(cfg.retransmit_tries)]
    assert sent_at == pytest.approx([sum(gaps[:k]) for k in range(cfg.retransmit_tries + 1)])
    assert p.now - start == pytest.approx(a.retransmit_span())
    assert [e.reason for e in p.of(ev.IkeSaDeleted, side)] == ["peer unresponsive"]
    assert b.state == State.ESTABLISHED                        # the peer simply heard nothing


def test_other_sas_do_not_notice_a_dead_one():
    p = established_pair()
    first_i = p.conn("i")
    second_i = p.connect()
    assert p.run(lambda: second_i.state == State.ESTABLISHED and len(p.live("r")) == 2, max_time=60)
    first_i.config.dpd_delay = 10.0
    dead = first_i.spi_i

    def drop_dead():
        p.flush()
        p.in_flight[:] = [f for f in p.in_flight if parse_message(f[1]).spi_i != dead]

    end = p.now + 400
    while p.now < end and first_i.state != State.DELETED:
        drop_dead()
        p.step()
    assert first_i.state == State.DELETED
    assert second_i.state == State.ESTABLISHED
    [second_r] = [c for c in p.er.connections.values() if c.spi_i == second_i.spi_i]
    second_i.create_child_sa(p.now)
    assert p.run(lambda: len(second_i.children) == len(second_r.children) == 2, max_time=60)
    for c in second_i.children.values():
        assert_child_pair(c, peer_child(c, second_r))


@pytest.mark.parametrize("seed", range(3))
def test_a_hostile_wire_never_corrupts_the_sas(seed):
    """Everything at once, for a long time: rekeys, child rekeys, liveness checks
    over a wire that loses, duplicates and reorders; whatever survives is sound."""
    p = established_pair(wire=Wire(loss=0.2, duplicate=0.3, reorder=0.5, seed=seed), seed=seed,
                         rekey_time=300.0, life_time=400.0)
    for side in ("i", "r"):
        cfg = p.cfg_i if side == "i" else p.cfg_r
        cfg.children[0].rekey_time, cfg.children[0].life_time = 120.0, 200.0
        for c in p.conn(side).children.values():       # the first Child SA too
            c.rekey_at, c.expire_at = p.now + 110.0 + (side == "r") * 7, p.now + 200.0
    p.settle(2000.0)
    [ci], [cr] = p.live("i"), p.live("r")
    assert ci.spis == cr.spis and ci.keys == cr.keys
    assert len(ci.children) == len(cr.children) == 1
    for c in ci.children.values():
        assert_child_pair(c, peer_child(c, cr))
    assert len(p.of(ev.IkeSaRekeyed, "i")) >= 5 and len(p.of(ev.ChildSaRekeyed, "i")) >= 10
    assert not p.of(ev.ChildSaFailed, "i") and not p.of(ev.ChildSaFailed, "r")


# ------------------------------------------------------------ bad answers --

@pytest.mark.parametrize("side", ["i", "r"])
def test_an_unusable_child_sa_answer_leaves_nothing_behind(side, monkeypatch):
    """The peer answers a PFS request without KEr: we refuse the Child SA and
    have the peer delete the half it installed."""
    from ikecore.protocol.exchanges import create_child_sa
    p = established_pair(esp="aes256gcm16-x25519")
    a, b = p.conn(side), p.conn(other(side))
    real = create_child_sa._respond_child

    def without_ke(conn, msg, now):
        return [pl for pl in real(conn, msg, now) if pl.payload_type != PayloadType.KE]

    monkeypatch.setattr(create_child_sa, "_respond_child", without_ke)
    a.create_child_sa(p.now)
    p.settle(10.0)
    [failed] = p.of(ev.ChildSaFailed, side)
    assert failed.notify_type == NotifyType.INVALID_SYNTAX
    assert len(a.children) == len(b.children) == 1                 # the peer's half is gone again
    [installed, gone] = p.of(ev.ChildSaInstalled, other(side))[-1:] + p.of(ev.ChildSaDeleted, other(side))
    assert installed.child is gone.child
    assert a.state == b.state == State.ESTABLISHED


@pytest.mark.parametrize("side", ["i", "r"])
def test_child_sa_refused_for_now_is_tried_again_later(side):
    p = established_pair()
    a, b = p.conn(side), p.conn(other(side))
    b.state = State.REKEYED             # as if b were in the middle of an IKE rekey
    a.create_child_sa(p.now)
    first = p.now
    p.settle(0.0)
    b.state = State.ESTABLISHED
    assert len(a.children) == 1 and a.deferred
    p.run(lambda: len(a.children) == len(b.children) == 2, max_time=30)
    assert p.now >= first + 2.0        # not at once (RFC 7296 §2.25)
    answers = [m for _, m in decrypt_trace(p, a) if m.is_response and m.exchange_type == X.CREATE_CHILD_SA]
    assert [m.error_notify() and m.error_notify().notify_type for m in answers] == [
        NotifyType.TEMPORARY_FAILURE, None]
    assert not p.of(ev.ChildSaFailed, side)


def test_message_ids_running_out_end_the_sa():
    p = established_pair()
    a = p.conn("i")
    a.next_request_id = 0xFFFFFFFF + 1
    a.check_liveness(p.now)
    assert a.state == State.DELETED
    p.flush()
    assert [e.reason for e in p.of(ev.IkeSaDeleted, "i")] == ["message IDs exhausted"]
