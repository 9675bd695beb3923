"""The endpoint's timer structure: a heap of IKE SA deadlines with lazy
cancellation (ikecore.protocol.endpoint.TimerQueue). Ordering, cancellation,
rescheduling, and the work count: only SAs that changed or are due are ever
looked at."""
import random

import pytest

from ike_pair import Pair, configs
from ikecore.protocol.endpoint import TimerQueue


class FakeSa:
    """Anything with get_timer() is schedulable; counts how often it is asked."""

    def __init__(self, deadline):
        self.deadline = deadline
        self.asked = 0

    def get_timer(self):
        self.asked += 1
        return self.deadline


def test_due_sas_come_out_in_deadline_order_each_once():
    q = TimerQueue()
    sas = [FakeSa(float(d)) for d in random.Random(7).sample(range(1000), 200)]
    for sa in sas:
        q.touch(sa)
    assert q.next_deadline() == min(sa.deadline for sa in sas)
    due = q.pop_due(499.0)
    assert [sa.deadline for sa in due] == sorted(sa.deadline for sa in sas if sa.deadline <= 499.0)
    # an SA whose handler left its deadline where it was is due again, once
    assert sorted(map(id, q.pop_due(499.0))) == sorted(map(id, due))


def test_a_popped_sa_is_rescheduled_from_its_new_deadline():
    q = TimerQueue()
    sa = FakeSa(10.0)
    q.touch(sa)
    assert q.pop_due(10.0) == [sa]
    sa.deadline = 50.0            # its handler set a new deadline (a retransmission, a rekey)
    assert q.next_deadline() == 50.0
    assert q.pop_due(49.0) == []
    assert q.pop_due(50.0) == [sa]


def test_cancellation_is_lazy_and_exact():
    q = TimerQueue()
    a, b = FakeSa(10.0), FakeSa(20.0)
    q.touch(a)
    q.touch(b)
    assert q.next_deadline() == 10.0
    a.deadline = None             # nothing due any more (deleted, or all timers stopped)
    q.touch(a)
    assert q.next_deadline() == 20.0
    assert q.pop_due(100.0) == [b]
    assert q.promised(a) is None and len(q) == 0


def test_moving_a_deadline_later_or_earlier():
    q = TimerQueue()
    a, b = FakeSa(10.0), FakeSa(20.0)
    q.touch(a)
    q.touch(b)
    a.deadline = 30.0             # later: the old entry must not fire it at 10
    q.touch(a)
    assert q.pop_due(15.0) == []
    b.deadline = 5.0              # earlier
    q.touch(b)
    assert q.next_deadline() == 5.0
    assert q.pop_due(30.0) == [b, a]


def test_stale_entries_are_compacted():
    q = TimerQueue()
    sa = FakeSa(1.0)
    for k in range(10_000):
        sa.deadline = 1000.0 + k
        q.touch(sa)
        q.next_deadline()
    assert len(q._heap) <= 2 * len(q) + 64 + 1


def test_work_is_the_changed_sas_not_the_table():
    q = TimerQueue()
    sas = [FakeSa(1000.0 + k) for k in range(20_000)]
    for sa in sas:
        q.touch(sa)
    q.next_deadline()
    before = q.sas_touched
    for _ in range(100):           # a datagram for one SA, then the gateway asks for the next deadline
        q.touch(sas[123])
        q.next_deadline()
    assert q.sas_touched - before == 100
    sas[5].deadline = 1.0
    sas[6].deadline = 2.0
    q.touch(sas[5])
    q.touch(sas[6])
    before = q.sas_touched
    assert q.pop_due(2.0) == [sas[5], sas[6]]
    q.next_deadline()
    assert q.sas_touched - before == 2 + 2       # recomputed once, rescheduled once, each
    assert sum(sa.asked for sa in sas) < 20_000 + 300


@pytest.mark.parametrize("who", ["i", "r"])
def test_endpoint_timers_drive_rekeys_and_retransmission(who):
    """Through the real endpoint: the soft lifetime starts a rekey when the
    heap says it is due, and the request is retransmitted at its deadline."""
    ci, cr = configs(rekey_time=100.0, life_time=200.0, dpd_delay=0)
    p = Pair(ci, cr)
    p.connect()
    assert p.run(p.established)
    ep = p.ei if who == "i" else p.er
    conn = p.conn(who)
    assert ep.get_timer() == conn.get_timer() == conn.rekey_at
    ep.handle_timer(conn.rekey_at - 0.001)
    assert not conn.outstanding                        # not due yet: nothing happens
    rekey_at = conn.rekey_at
    ep.handle_timer(rekey_at)
    [out] = conn.outstanding.values()                  # the soft lifetime started an IKE rekey
    assert ep.get_timer() == out.deadline              # and the heap follows the new deadline
    ep.datagrams_to_send()                             # the request is lost
    ep.handle_timer(out.deadline)
    assert out.tries == 1 and len(ep.datagrams_to_send()) == 1      # retransmitted once
    assert ep.get_timer() == out.deadline > rekey_at
