"""Exchange collisions (RFC 7296 §2.8.1, §2.8.2, §2.25): both ends rekeying
the same Child SA or IKE SA, rekeys meeting deletes, crossing deletes. The
harness delivers datagrams one by one in the order each test chooses.

    A                                        B
    req(A): N(REKEY_SA)?, SA, Ni(A) ...  -->
                                       <--  req(B): N(REKEY_SA)?, SA, Ni(B) ...
    resp(B): SA, Nr(A) ...               -->            (each answers the other's)
                                       <--  resp(A): SA, Nr(B) ...
    two new SAs: the one whose exchange holds the lowest of the four nonces is
    deleted by the end that initiated that exchange
"""
import pytest

from ike_pair import assert_child_pair, decrypt_trace, established_pair, other, peer_child
from ikecore.protocol import events as ev
from ikecore.protocol.constants import ExchangeType, NotifyType, PayloadType, ProtocolId
from ikecore.protocol.ike_sa import State

TAG = {"i": "i>r", "r": "r>i"}       # the direction a side sends in


def requests_and_responses(p, conns, exchange_type):
    """{(sender is the original initiator, message id): (request, response)}, once each."""
    reqs, resps = {}, {}
    for _, m in decrypt_trace(p, *conns):
        if m.exchange_type != exchange_type:
            continue
        if m.is_response:
            resps.setdefault((not m.is_initiator, m.message_id, m.spi_i), m)
        else:
            reqs.setdefault((m.is_initiator, m.message_id, m.spi_i), m)
    return {k: (reqs[k], resps.get(k)) for k in reqs}


def informational_deletes(p, conns, protocol):
    """[(side that asked, SPIs)] for every Delete request of ``protocol``."""
    out, seen = [], set()
    for _, m in decrypt_trace(p, *conns):
        key = (m.spi_i, m.is_initiator, m.message_id)
        if m.exchange_type != ExchangeType.INFORMATIONAL or m.is_response or key in seen:
            continue
        seen.add(key)
        for d in m.find_all(PayloadType.DELETE):
            if d.protocol_id == protocol:
                out.append(("i" if m.is_initiator else "r", list(d.spis), m.spi_i))
    return out


# ------------------------------------------------------- Child SA rekeys --

def simultaneous_child_rekey(seed, first_done):
    """Both ends rekey the one Child SA; ``first_done`` is the side whose
    exchange completes first. Returns the pair and what the trace shows."""
    p = established_pair(seed=seed)
    ci, cr = p.conn("i"), p.conn("r")
    [old_i] = ci.children.values()
    old_r = peer_child(old_i, cr)
    ci.rekey_child_sa(p.now, old_i.spi_in)
    cr.rekey_child_sa(p.now, old_r.spi_in)
    assert sorted(p.in_flight_tags()) == ["i>r", "r>i"]
    p.deliver("i>r")
    p.deliver("r>i")                  # each end has answered the other's request
    assert old_i.peer_rekey is not None and old_r.peer_rekey is not None
    p.deliver(TAG[other(first_done)])  # the response that completes ``first_done``'s exchange
    p.deliver(TAG[first_done])
    p.settle(60.0)
    exchanges = requests_and_responses(p, [ci, cr], ExchangeType.CREATE_CHILD_SA)
    assert len(exchanges) == 2
    made = {}
    for (by_initiator, _, _), (req, resp) in exchanges.items():
        side = "i" if by_initiator else "r"
        nonces = (req.find(PayloadType.NONCE).data, resp.find(PayloadType.NONCE).data)
        spis = {req.find(PayloadType.SA).proposals[0].spi, resp.find(PayloadType.SA).proposals[0].spi}
        made[side] = (nonces, spis, req.find(PayloadType.SA).proposals[0].spi)
    return p, ci, cr, old_i, old_r, made


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("first_done", ["i", "r"])
def test_simultaneous_child_rekey(seed, first_done):
    p, ci, cr, old_i, old_r, made = simultaneous_child_rekey(seed, first_done)
    lowest = min(n for nonces, _, _ in made.values() for n in nonces)
    loser = next(side for side, (nonces, _, _) in made.items() if lowest in nonces)
    winner = other(loser)
    # one Child SA survives, the same one on both ends: the winner's
    [child_i], [child_r] = ci.children.values(), cr.children.values()
    assert {child_i.spi_in, child_i.spi_out} == made[winner][1]
    assert_child_pair(child_i, child_r)
    # the redundant SA was deleted by its creator; the old one by a rekey initiator
    # (both, if their Deletes crossed); nobody deleted the survivor
    deletes = informational_deletes(p, [ci, cr], ProtocolId.ESP)
    assert (loser, [made[loser][2]], ci.spi_i) in deletes
    old_deletes = [d for d in deletes if d[:2] in (("i", [old_i.spi_in]), ("r", [old_r.spi_in]))]
    assert 1 <= len(old_deletes) and len(deletes) == 1 + len(old_deletes)
    # each end saw two SAs installed by the rekeys and two SAs go (old, redundant)
    for side, old in (("i", old_i), ("r", old_r)):
        assert [e.old for e in p.of(ev.ChildSaRekeyed, side)] == [old, old]
        assert len(p.of(ev.ChildSaDeleted, side)) == 2 and not p.of(ev.ChildSaFailed, side)
    assert ci.state == cr.state == State.ESTABLISHED


def test_simultaneous_child_rekey_either_end_can_win():
    winners = set()
    for seed in range(8):
        _, ci, _, _, _, made = simultaneous_child_rekey(seed, "i")
        [child] = ci.children.values()
        winners |= {side for side, (_, spis, _) in made.items() if spis == {child.spi_in, child.spi_out}}
    assert winners == {"i", "r"}


@pytest.mark.parametrize("late", ["i", "r"])
def test_child_rekey_meets_a_completed_rekey(late):
    """``late``'s request reaches the other end after that end's own rekey of the
    same SA completed: TEMPORARY_FAILURE, and the completed rekey stands (§2.25.1)."""
    p = established_pair()
    a, b = p.conn(other(late)), p.conn(late)          # a completes first
    [old_a] = a.children.values()
    old_b = peer_child(old_a, b)
    a.rekey_child_sa(p.now, old_a.spi_in)
    b.rekey_child_sa(p.now, old_b.spi_in)
    p.deliver(TAG[other(late)])                   # a's request: b answers it (its own is out)
    p.deliver(TAG[late], response=True)           # a's rekey is done, a deletes the old SA...
    p.deliver(TAG[late], response=False)          # ...then b's request arrives: too late
    p.settle(60.0)
    [child_a], [child_b] = a.children.values(), b.children.values()
    assert_child_pair(child_a, child_b)
    assert child_a.initiator                      # a's rekey made it
    answers = [resp for (_, (req, resp)) in
               requests_and_responses(p, [a, b], ExchangeType.CREATE_CHILD_SA).items()
               if resp is not None and resp.error_notify() is not None]
    assert [r.error_notify().notify_type for r in answers] == [NotifyType.TEMPORARY_FAILURE]
    assert len(p.of(ev.ChildSaRekeyed, "i")) == len(p.of(ev.ChildSaRekeyed, "r")) == 1
    assert not p.of(ev.ChildSaFailed, "i") and not p.of(ev.ChildSaFailed, "r")


@pytest.mark.parametrize("deleter", ["i", "r"])
def test_child_rekey_meets_delete(deleter):
    """One end deletes a Child SA while the other rekeys it (§2.25.1): the
    deleter refuses the rekey, the rekeyer answers the Delete; it ends gone."""
    p = established_pair()
    a, b = p.conn(deleter), p.conn(other(deleter))
    [victim_a] = a.children.values()
    victim_b = peer_child(victim_a, b)
    a.delete_child_sa(p.now, victim_a.spi_in)
    b.rekey_child_sa(p.now, victim_b.spi_in)
    assert sorted(p.in_flight_tags()) == ["i>r", "r>i"]
    p.deliver(TAG[deleter])
    p.deliver(TAG[other(deleter)])
    p.settle(60.0)
    assert not a.children and not b.children
    refused = [resp.error_notify().notify_type for (_, (req, resp)) in
               requests_and_responses(p, [a, b], ExchangeType.CREATE_CHILD_SA).items()]
    assert refused == [NotifyType.TEMPORARY_FAILURE]
    assert [e.child for e in p.of(ev.ChildSaDeleted, deleter)] == [victim_a]
    assert [e.child for e in p.of(ev.ChildSaDeleted, other(deleter))] == [victim_b]
    assert a.state == b.state == State.ESTABLISHED
    p.settle(30.0)
    assert not b.children          # the refused rekey is not tried again for a deleted SA


def test_crossing_child_deletes():
    """Both ends delete the same Child SA at once: each deletes it while
    answering, and neither answer names it again (§1.4.1)."""
    p = established_pair()
    ci, cr = p.conn("i"), p.conn("r")
    [child_i] = ci.children.values()
    child_r = peer_child(child_i, cr)
    ci.delete_child_sa(p.now, child_i.spi_in)
    cr.delete_child_sa(p.now, child_r.spi_in)
    p.deliver("i>r")
    p.deliver("r>i")
    p.settle(10.0)
    assert not ci.children and not cr.children
    answers = [m for _, m in decrypt_trace(p, ci, cr)
               if m.exchange_type == ExchangeType.INFORMATIONAL and m.is_response]
    assert len(answers) == 2 and all(m.find(PayloadType.DELETE) is None for m in answers)
    assert len(p.of(ev.ChildSaDeleted, "i")) == len(p.of(ev.ChildSaDeleted, "r")) == 1


@pytest.mark.parametrize("side", ["i", "r"])
def test_rekey_of_a_child_sa_the_peer_lost(side):
    """CHILD_SA_NOT_FOUND: forget the SA and make a new one from scratch (§2.25)."""
    p = established_pair()
    a, b = p.conn(side), p.conn(other(side))
    [old] = a.children.values()
    del b.children[peer_child(old, b).spi_in]             # the peer lost it
    a.rekey_child_sa(p.now, old.spi_in)
    assert p.run(lambda: len(a.children) == len(b.children) == 1 and old.spi_in not in a.children,
                 max_time=60)
    [(req, resp)] = [v for v in requests_and_responses(p, [a, b], ExchangeType.CREATE_CHILD_SA).values()
                     if v[0].notify(NotifyType.REKEY_SA)]
    not_found = resp.notify(NotifyType.CHILD_SA_NOT_FOUND)
    assert not_found is not None and not_found.spi == old.spi_in
    [new] = a.children.values()
    assert_child_pair(new, peer_child(new, b))
    assert [(e.child, e.reason) for e in p.of(ev.ChildSaDeleted, side)] == [(old, "unknown to the peer")]


# -------------------------------------------------------------- IKE rekeys --

class Seen:
    """Every IKE SA either endpoint held at some point (rekeys create some briefly)."""

    def __init__(self, p):
        self.p = p
        self.conns = {"i": [], "r": []}

    def look(self):
        for side, ep in (("i", self.p.ei), ("r", self.p.er)):
            for c in ep.connections.values():
                if c not in self.conns[side]:
                    self.conns[side].append(c)

    def deliver(self, tag):
        self.p.deliver(tag)
        self.look()


def check_ike_rekey_outcome(p, seen, old_i, old_r, children_i, children_r):
    """One new IKE SA survives, alike on both ends, holding every Child SA;
    returns it (initiator's view) and the map of new SAs to their nonces."""
    seen.look()
    news = {c.spis: (c.ni, c.nr) for c in seen.conns["i"] if c not in (old_i,)}
    live_i = [c for c in p.ei.connections.values() if c.state == State.ESTABLISHED]
    live_r = [c for c in p.er.connections.values() if c.state == State.ESTABLISHED]
    assert len(live_i) == len(live_r) == 1
    [si], [sr] = live_i, live_r
    assert si.spis == sr.spis and si.keys == sr.keys and si.spis != old_i.spis
    assert si.children == children_i and sr.children == children_r
    for c in si.children.values():
        assert_child_pair(c, peer_child(c, sr))
    # nothing else is left over: old and redundant SAs are gone on both ends
    assert list(p.ei.connections.values()) == [si] and list(p.er.connections.values()) == [sr]
    for side, survivor, old in (("i", si, old_i), ("r", sr, old_r)):
        [rekeyed] = p.of(ev.IkeSaRekeyed, side)
        assert rekeyed.old_spis == old.spis and rekeyed.connection is survivor
        assert [e.spi_i for e in p.of(ev.IkeSaDeleted, side)] == [old.spi_i]  # the old SA, once
        assert not p.of(ev.ChildSaDeleted, side)
    return si, news


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("first_done", ["i", "r"])
def test_simultaneous_ike_rekey(seed, first_done):
    p = established_pair(seed=seed)
    old_i, old_r = p.conn("i"), p.conn("r")
    old_i.create_child_sa(p.now)
    assert p.run(lambda: len(old_i.children) == len(old_r.children) == 2, max_time=60)
    children_i, children_r = dict(old_i.children), dict(old_r.children)
    seen = Seen(p)
    old_i.rekey(p.now)
    old_r.rekey(p.now)
    assert sorted(p.in_flight_tags()) == ["i>r", "r>i"]
    seen.deliver("i>r")
    seen.deliver("r>i")
    # each end answered the other's rekey; those new SAs wait for the outcome
    assert old_i.rekey_collision is not None and old_r.rekey_collision is not None
    assert old_i.rekey_collision.sa.state == State.PENDING
    seen.deliver(TAG[other(first_done)])
    seen.deliver(TAG[first_done])
    p.settle(120.0)
    conns = seen.conns["i"] + seen.conns["r"]
    survivor, news = check_ike_rekey_outcome(p, seen, old_i, old_r, children_i, children_r)
    assert len(news) == 2
    lowest = min(n for pair in news.values() for n in pair)
    [redundant] = [spis for spis, pair in news.items() if lowest in pair]
    assert survivor.spis != redundant and survivor.spis in news
    # deleted by their creators: the redundant one by its rekey initiator, the
    # old one by the survivor's
    redundant_creator = "i" if any(c.spis == redundant and c.initiator for c in seen.conns["i"]) else "r"
    survivor_creator = "i" if survivor.initiator else "r"
    deletes = informational_deletes(p, conns, ProtocolId.IKE)
    assert sorted((who, spi_i) for who, _, spi_i in deletes) == sorted(
        [(_sender(redundant_creator, seen, redundant), redundant[0]),
         (_sender(survivor_creator, seen, old_i.spis), old_i.spi_i)])
    # the survivor is usable
    survivor.create_child_sa(p.now)
    assert p.run(lambda: len(survivor.children) == 3, max_time=60)


def _sender(side, seen, spis):
    """The I flag value (as "i"/"r") a message from ``side`` carries on the SA ``spis``."""
    conn = next(c for c in seen.conns[side] if c.spis == spis)
    return "i" if conn.initiator else "r"


def test_simultaneous_ike_rekey_either_end_can_win():
    winners = set()
    for seed in range(8):
        p = established_pair(seed=seed)
        ci, cr = p.conn("i"), p.conn("r")
        ci.rekey(p.now)
        cr.rekey(p.now)
        p.deliver("i>r")
        p.deliver("r>i")
        p.settle(120.0)
        survivor = p.conn("i")
        winners.add("i" if survivor.initiator else "r")
    assert winners == {"i", "r"}


@pytest.mark.parametrize("delete_first", [True, False])
@pytest.mark.parametrize("late", ["i", "r"])
def test_ike_rekey_meets_a_completed_rekey(late, delete_first):
    """``late``'s rekey request arrives after the other end completed its own:
    TEMPORARY_FAILURE; the completed rekey's SA survives, whether its Delete of
    the old SA or the refusal reaches ``late`` first (§2.8.2)."""
    p = established_pair()
    a, b = p.conn(other(late)), p.conn(late)
    children_a, children_b = dict(a.children), dict(b.children)
    seen = Seen(p)
    a.rekey(p.now)
    b.rekey(p.now)
    seen.deliver(TAG[other(late)])     # b answers a's rekey (its own is out: PENDING)
    p.deliver(TAG[late], response=True)            # a's rekey is done; a deletes the old SA
    assert a.state == State.DELETING
    p.deliver(TAG[late], response=False)           # b's request: refused
    assert sorted(p.in_flight_tags()) == sorted([TAG[other(late)]] * 2)   # a's Delete and the refusal
    p.deliver(TAG[other(late)], response=not delete_first)
    seen.look()
    p.settle(120.0)
    old_i, old_r = (a, b) if late == "r" else (b, a)
    ch_i, ch_r = (children_a, children_b) if late == "r" else (children_b, children_a)
    survivor, news = check_ike_rekey_outcome(p, seen, old_i, old_r, ch_i, ch_r)
    assert len(news) == 1 and survivor.initiator == (late == "r")   # a's rekey made it
    refusals = [resp.error_notify().notify_type for (req, resp) in
                requests_and_responses(p, [a, b], ExchangeType.CREATE_CHILD_SA).values()
                if resp is not None and resp.error_notify() is not None]
    assert refusals == [NotifyType.TEMPORARY_FAILURE]


@pytest.mark.parametrize("deleter", ["i", "r"])
def test_ike_rekey_meets_delete(deleter):
    """One end deletes the IKE SA while the other rekeys it: the rekeyer answers
    the Delete and forgets its rekey; the deleter refuses the rekey (§2.25.2)."""
    p = established_pair()
    a, b = p.conn(deleter), p.conn(other(deleter))
    a.delete(p.now)
    b.rekey(p.now)
    p.deliver(TAG[deleter])
    p.deliver(TAG[other(deleter)])
    p.settle(120.0)
    assert not p.ei.connections and not p.er.connections
    assert [e.reason for e in p.of(ev.IkeSaDeleted, deleter)] == ["deleted"]
    assert [e.reason for e in p.of(ev.IkeSaDeleted, other(deleter))] == ["deleted by peer"]
    assert not p.of(ev.IkeSaRekeyed, "i") and not p.of(ev.IkeSaRekeyed, "r")
    assert len(p.of(ev.ChildSaDeleted, "i")) == len(p.of(ev.ChildSaDeleted, "r")) == 1


@pytest.mark.parametrize("ike_rekeyer", ["i", "r"])
def test_ike_rekey_meets_child_rekey(ike_rekeyer):
    """A Child SA rekey in flight makes the other end's IKE rekey wait
    (TEMPORARY_FAILURE); the IKE rekey is tried again later and takes the new
    Child SA with it."""
    p = established_pair()
    a, b = p.conn(ike_rekeyer), p.conn(other(ike_rekeyer))
    [child_b] = b.children.values()
    a.rekey(p.now)
    b.rekey_child_sa(p.now, child_b.spi_in)
    p.deliver(TAG[ike_rekeyer])
    p.deliver(TAG[other(ike_rekeyer)])
    p.settle(60.0)
    exchanges = requests_and_responses(p, [a, b], ExchangeType.CREATE_CHILD_SA)
    refused = [req for (req, resp) in exchanges.values() if resp.error_notify() is not None]
    assert [req.find(PayloadType.SA).proposals[0].protocol_id for req in refused] == [ProtocolId.IKE]
    assert all(resp.error_notify().notify_type == NotifyType.TEMPORARY_FAILURE
               for req, resp in exchanges.values() if resp.error_notify() is not None)
    na, nb = p.conn(ike_rekeyer), p.conn(other(ike_rekeyer))
    assert na.spis != a.spis and na.spis == nb.spis and na.keys == nb.keys
    [new_a], [new_b] = na.children.values(), nb.children.values()
    assert_child_pair(new_a, new_b)
    assert child_b.spi_in not in nb.children
    assert not p.of(ev.ChildSaFailed, "i") and not p.of(ev.ChildSaFailed, "r")


def test_unanswered_rekey_in_a_collision_takes_the_pending_sa_along():
    """Our rekey is never answered while the peer's new SA waits on its
    outcome: when the old SA gives up, the waiting one goes too, unreported."""
    p = established_pair()
    ci, cr = p.conn("i"), p.conn("r")
    ci.config.dpd_delay = cr.config.dpd_delay = 0.0
    ci.rekey(p.now)
    cr.rekey(p.now)
    p.deliver("r>i", response=False)           # i answers r's rekey: its new SA is PENDING
    pending = ci.rekey_collision.sa
    assert pending.state == State.PENDING and pending in p.ei.connections.values()
    p.wire.loss = 1.0                          # then the peer is gone
    p.discard()
    p.run(lambda: ci.state == State.DELETED, max_time=200)
    p.settle(1.0)
    assert pending.state == State.DELETED and not p.ei.connections
    assert [e.spi_i for e in p.of(ev.IkeSaDeleted, "i")] == [ci.spi_i]
    assert not p.of(ev.IkeSaRekeyed, "i")
