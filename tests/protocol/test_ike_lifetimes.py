"""Soft and hard lifetimes (RFC 7296 §2.8): the soft one rekeys, the hard one
deletes; a rekeyed SA restarts its clock; half-open and replaced SAs are
bounded too. Fake clock only: every instant below is exact.

    t = created                       soft (rekey_time - jitter)      hard (life_time)
    |---------------------------------|-------------------------------|
                                      CREATE_CHILD_SA (rekey)         INFORMATIONAL D (if not rekeyed)
"""
import pytest

from ike_pair import Pair, assert_child_pair, configs, decrypt_trace, other, peer_child
from ikecore.protocol import events as ev
from ikecore.protocol.config import EspProposal, IkeProposal
from ikecore.protocol.constants import ExchangeType, NotifyType
from ikecore.protocol.ike_sa import State


def pair_with(side, *, ike=None, child=None, dpd=0.0):
    """``side``'s configuration gets the given (rekey, life) times; the other's
    stay at the (much longer) defaults."""
    ci, cr = configs()
    cfg = ci if side == "i" else cr
    if ike:
        cfg.rekey_time, cfg.life_time = ike
    if child:
        cfg.children[0].rekey_time, cfg.children[0].life_time = child
    ci.dpd_delay = cr.dpd_delay = dpd
    p = Pair(ci, cr)
    p.connect()
    assert p.run(p.established)
    p.settle(0.0)
    return p


def run_until(p, cond, limit):
    assert p.run(cond, max_time=limit), "the condition never came true"
    return p.now


# ---------------------------------------------------------------------- IKE SA --

@pytest.mark.parametrize("side", ["i", "r"])
def test_soft_lifetime_rekeys_the_ike_sa(side):
    p = pair_with(side, ike=(100.0, 150.0))
    a, b = p.conn(side), p.conn(other(side))
    born = p.now
    assert born + 90.0 <= a.rekey_at <= born + 100.0          # up to 10 % jitter, never later
    assert a.expire_at == born + 150.0
    soft = a.rekey_at
    when = run_until(p, lambda: p.of(ev.IkeSaRekeyed, side), 200)
    assert when == soft                       # the wire takes no time: the rekey ends as it starts
    p.settle(5.0)
    na, nb = p.conn(side), p.conn(other(side))
    assert na.initiator                       # the side whose soft lifetime ran out rekeyed
    assert a.state == b.state == State.DELETED and na.keys == nb.keys
    [child] = na.children.values()
    assert_child_pair(child, peer_child(child, nb))
    # the new SA's clock starts at the rekey
    assert when + 90.0 <= na.rekey_at <= when + 100.0 and na.expire_at == pytest.approx(when + 150.0)
    second = run_until(p, lambda: len(p.of(ev.IkeSaRekeyed, side)) == 2, 300)
    assert when + 90.0 <= second <= when + 100.0


@pytest.mark.parametrize("side", ["i", "r"])
def test_hard_lifetime_deletes_an_ike_sa_that_could_not_be_rekeyed(side):
    p = pair_with(side, ike=(100.0, 150.0))
    a, b = p.conn(side), p.conn(other(side))
    born = p.now
    # the peer no longer accepts our proposal: every rekey is refused
    b.config.proposals = [IkeProposal.parse("aes128-sha256-modp2048")]
    when = run_until(p, lambda: a.state == State.DELETED, 300)
    assert when == pytest.approx(born + 150.0)
    refusals = [m.error_notify().notify_type for _, m in decrypt_trace(p, a)
                if m.is_response and m.exchange_type == ExchangeType.CREATE_CHILD_SA]
    assert refusals == [NotifyType.NO_PROPOSAL_CHOSEN]      # tried once, not hammered
    assert [e.reason for e in p.of(ev.IkeSaDeleted, side)] == ["lifetime expired"]
    assert [e.reason for e in p.of(ev.IkeSaDeleted, other(side))] == ["deleted by peer"]
    assert len(p.of(ev.ChildSaDeleted, side)) == 1 and not p.ei.connections and not p.er.connections


@pytest.mark.parametrize("side", ["i", "r"])
def test_refused_ike_rekey_is_retried_after_temporary_failure(side):
    p = pair_with(side, ike=(100.0, 150.0))
    a, b = p.conn(side), p.conn(other(side))
    [child_b] = b.children.values()
    # the peer is busy with an exchange of its own when the rekey arrives
    b.rekey_child_sa(p.now, child_b.spi_in)
    p.now = first_try = a.rekey_at
    (p.ei if side == "i" else p.er).handle_timer(p.now)
    assert a.rekey_in_flight
    p.deliver("i>r" if side == "i" else "r>i", response=False)     # a's rekey reaches b first
    run_until(p, lambda: p.of(ev.IkeSaRekeyed, side), 60)
    retried_at = p.now
    refusals = [m for _, m in decrypt_trace(p, a) if m.is_response and m.exchange_type ==
                ExchangeType.CREATE_CHILD_SA and m.error_notify() is not None]
    assert [m.error_notify().notify_type for m in refusals] == [NotifyType.TEMPORARY_FAILURE]
    assert retried_at >= first_try + 2.0                     # it waited before trying again
    p.settle(5.0)
    na, nb = p.conn(side), p.conn(other(side))
    [c] = na.children.values()
    assert_child_pair(c, peer_child(c, nb))


def test_half_open_sa_is_forgotten():
    p = Pair(*configs())
    p.connect()
    p.deliver("i>r")
    p.discard()                           # the IKE_SA_INIT response and everything after: lost
    p.wire.loss = 1.0
    [cr] = p.er.connections.values()
    start = p.now
    when = run_until(p, lambda: cr.state == State.DELETED, 200)
    assert when == pytest.approx(start + max(30.0, cr.config.retransmit_timeout * 20))
    assert [e.reason for e in p.of(ev.IkeSaDeleted, "r")] == ["negotiation timed out"]
    assert p.er.half_open == 0 and not p.er.connections


def test_replaced_sa_waits_for_its_delete_only_so_long():
    """The rekey responder keeps the old SA for its Delete; if that Delete is
    lost for good, the old SA goes anyway, quietly, and its children stay."""
    ci, cr = configs()
    ci.dpd_delay = cr.dpd_delay = 0.0
    p = Pair(ci, cr)
    p.connect()
    assert p.run(p.established)
    old_i, old_r = p.conn("i"), p.conn("r")
    old_i.rekey(p.now)
    p.deliver("i>r")
    p.deliver("r>i")                      # rekey done; the Delete of the old SA goes out...
    start = p.now
    assert old_r.state == State.REKEYED and old_i.state == State.DELETING
    p.wire.loss = 1.0                     # ...and never arrives, nor does anything else
    p.discard()
    p.run(lambda: old_i.state == old_r.state == State.DELETED, max_time=200)
    assert p.now == pytest.approx(start + old_r.retransmit_span())
    for side in ("i", "r"):
        assert [e.reason for e in p.of(ev.IkeSaDeleted, side)] == ["rekeyed"]
        assert not p.of(ev.ChildSaDeleted, side)
    [child_i], [child_r] = p.conn("i").children.values(), p.conn("r").children.values()
    assert_child_pair(child_i, child_r)


# -------------------------------------------------------------------- Child SA --

@pytest.mark.parametrize("side", ["i", "r"])
def test_soft_lifetime_rekeys_the_child_sa(side):
    p = pair_with(side, child=(60.0, 90.0))
    a, b = p.conn(side), p.conn(other(side))
    [old] = a.children.values()
    born = p.now
    assert born + 54.0 <= old.rekey_at <= born + 60.0 and old.expire_at == born + 90.0
    soft = old.rekey_at
    when = run_until(p, lambda: p.of(ev.ChildSaRekeyed, side), 100)
    assert when == soft
    p.settle(2.0)
    [new] = a.children.values()
    assert new is not old and new.initiator
    assert_child_pair(new, peer_child(new, b))
    assert when + 54.0 <= new.rekey_at <= when + 60.0 and new.expire_at == pytest.approx(when + 90.0)
    # and again, one soft lifetime later: the clock keeps running
    run_until(p, lambda: len(p.of(ev.ChildSaRekeyed, side)) == 2, 100)
    p.settle(2.0)
    [newer] = a.children.values()
    assert_child_pair(newer, peer_child(newer, b))
    assert len(b.children) == 1


@pytest.mark.parametrize("side", ["i", "r"])
def test_hard_lifetime_deletes_a_child_sa_that_could_not_be_rekeyed(side):
    p = pair_with(side, child=(60.0, 90.0))
    a, b = p.conn(side), p.conn(other(side))
    [old] = a.children.values()
    hard = old.expire_at
    b.config.children[0].esp_proposals = [EspProposal.parse("aes128-sha256")]   # refuses ours now
    when = run_until(p, lambda: not a.children and not b.children, 200)
    assert when == hard
    [failed] = p.of(ev.ChildSaFailed, side)
    assert failed.notify_type == NotifyType.NO_PROPOSAL_CHOSEN
    assert [(e.child, e.reason) for e in p.of(ev.ChildSaDeleted, side)] == [(old, "lifetime expired")]
    assert a.state == b.state == State.ESTABLISHED          # the IKE SA lives on


def test_lifetimes_carry_jitter_from_the_rng():
    starts = set()
    for seed in range(5):
        ci, cr = configs()
        p = Pair(ci, cr, seed=seed)
        p.connect()
        assert p.run(p.established)
        for c in (p.conn("i"), p.conn("r")):
            lead = c.expire_at - c.rekey_at
            assert c.config.life_time - c.config.rekey_time <= lead <= (
                c.config.life_time - 0.9 * c.config.rekey_time)
            starts.add(round(c.rekey_at, 6))
    assert len(starts) > 5           # the two ends (and the runs) do not rekey in lockstep
