"""MemoryTicketStore: bounded, expiring, deadlines (ikecore/store/memory.py, base.py)."""
from __future__ import annotations

import asyncio

import pytest

from ikecore.errors import StoreError, StoreTimeout, StoreUnavailable
from ikecore.store import MemoryTicketStore, SharedKeyRing, TicketStore


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def run(coro):
    return asyncio.run(coro)


def test_put_take_is_get_and_delete():
    async def main():
        store = MemoryTicketStore()
        await store.put(b"k", b"v", 10)
        assert await store.take(b"k") == b"v"
        assert await store.take(b"k") is None
        assert await store.take(b"never") is None
        assert store.round_trips == 4
    run(main())


def test_set_once():
    async def main():
        store = MemoryTicketStore()
        assert await store.set_once(b"spent:1", 10) is True
        assert await store.set_once(b"spent:1", 10) is False
        assert await store.set_once(b"spent:2", 10) is True
    run(main())


def test_entries_expire():
    async def main():
        clock = Clock()
        store = MemoryTicketStore(clock=clock)
        await store.put(b"k", b"v", 5)
        assert await store.set_once(b"s", 5)
        clock.t += 4.9
        assert not await store.set_once(b"s", 5)
        clock.t += 0.1
        assert await store.take(b"k") is None
        assert await store.set_once(b"s", 5)       # a replay record that expired may be set again
    run(main())


def test_size_is_capped_and_full_means_refusal_not_eviction():
    async def main():
        clock = Clock()
        store = MemoryTicketStore(max_entries=100, clock=clock)
        for i in range(100):
            assert await store.set_once(b"spent:%d" % i, 60)
        with pytest.raises(StoreUnavailable, match="full"):
            await store.set_once(b"spent:new", 60)
        with pytest.raises(StoreUnavailable):
            await store.put(b"ticket:new", b"x", 60)
        # nothing was evicted: every replay record still refuses
        for i in range(100):
            assert not await store.set_once(b"spent:%d" % i, 60)
        assert len(store) == 100
        # expired entries make room
        clock.t += 61
        assert await store.set_once(b"spent:new", 60)
        assert len(store) == 1
    run(main())


def test_overwrites_do_not_grow_the_expiry_heap_without_bound():
    async def main():
        store = MemoryTicketStore(max_entries=10, clock=Clock())
        for i in range(10000):
            await store.put(b"same", b"%d" % i, 60)
            await store.put(b"other%d" % (i % 5), b"x", 60)
        assert len(store) == 6
        assert len(store._expiry) <= 2 * 6 + 64     # rows of overwritten entries are compacted away
    run(main())


def test_bad_arguments():
    async def main():
        store = MemoryTicketStore()
        with pytest.raises(TypeError):
            await store.put("k", b"v", 1)
        with pytest.raises(TypeError):
            await store.put(b"k", "v", 1)
        with pytest.raises(ValueError):
            await store.set_once(b"k", 0)
        with pytest.raises(ValueError):
            await store.set_once(b"k", 1.5)
        with pytest.raises(TypeError):
            await store.take(b"")
    run(main())
    with pytest.raises(ValueError):
        MemoryTicketStore(max_entries=0)
    with pytest.raises(ValueError):
        MemoryTicketStore(deadline=0)


class SlowStore(MemoryTicketStore):
    """A store whose backend hangs or fails: the deadline and error mapping of
    the base class are what is tested."""

    def __init__(self, mode: str) -> None:
        super().__init__(deadline=0.05)
        self.mode = mode

    async def _set_once(self, key, ttl):
        if self.mode == "hang":
            await asyncio.sleep(3600)
        if self.mode == "refused":
            raise ConnectionRefusedError("connection refused")
        raise RuntimeError("a bug, not a store failure")


def test_a_hanging_store_times_out_at_its_deadline():
    async def main():
        store = SlowStore("hang")
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(StoreTimeout, match="0.05"):
            await store.set_once(b"k", 10)
        assert loop.time() - t0 < 1.0
    run(main())


def test_a_down_store_is_a_store_error_and_bugs_stay_bugs():
    async def main():
        with pytest.raises(StoreUnavailable, match="refused"):
            await SlowStore("refused").set_once(b"k", 10)
        with pytest.raises(RuntimeError):
            await SlowStore("bug").set_once(b"k", 10)
    run(main())
    assert issubclass(StoreTimeout, StoreError) and issubclass(StoreUnavailable, StoreError)


def test_the_interface_is_abstract():
    with pytest.raises(TypeError):
        TicketStore()


def test_ring_generations_are_written_once():
    async def main():
        store = MemoryTicketStore()
        assert await store.latest_ring_generation() is None
        assert await store.put_ring(1, b"one", 100)
        assert not await store.put_ring(1, b"other", 100)
        assert await store.get_ring(1) == b"one"
        assert await store.put_ring(3, b"three", 100)
        assert await store.put_ring(2, b"two", 100)
        assert await store.latest_ring_generation() == 3     # never moves back
        assert await store.get_ring(4) is None
    run(main())


def test_shared_ring_over_one_store():
    """Two gateways in one process share the ring; rotation is done by the
    first that sees the period pass and adopted by the other."""
    async def main():
        import os
        store = MemoryTicketStore()
        key = os.urandom(32)
        a = SharedKeyRing(store, key, rng=os.urandom, rotation=100, keep=1)
        b = SharedKeyRing(store, key, rng=os.urandom, rotation=100, keep=1)
        ring_a = await a.sync(1000)
        ring_b = await b.sync(1001)
        assert ring_a.key_ids == ring_b.key_ids and ring_a.generation == 1
        assert await a.sync(1099) is ring_a and ring_a.generation == 1
        await b.sync(1100)                     # b sees the period pass first
        assert ring_b.generation == 2
        await a.sync(1101)                     # a adopts b's generation 2, does not rotate again
        assert ring_a.key_ids == ring_b.key_ids and ring_a.generation == 2
        with pytest.raises(Exception):
            await SharedKeyRing(store, os.urandom(32), rng=os.urandom).sync(1102)
    run(main())


def test_a_store_that_lost_the_ring_gets_it_back():
    """A Redis restarted without persistence holds no ring: the gateways that
    still hold it publish it again, and a gateway that started meanwhile (and
    founded a ring of its own) adopts theirs, so the cluster converges."""
    async def main():
        import os
        key = os.urandom(32)
        old = MemoryTicketStore()
        a = SharedKeyRing(old, key, rng=os.urandom, rotation=100, keep=1)
        await a.sync(1000)
        await a.sync(1100)
        assert a.ring.generation == 2
        wiped = MemoryTicketStore()
        a.store = wiped
        late = SharedKeyRing(wiped, key, rng=os.urandom, rotation=100, keep=1)
        await late.sync(1110)                          # founds generation 1: nobody told it otherwise
        assert late.ring.generation == 1 and late.ring.key_ids != a.ring.key_ids
        trips = wiped.round_trips
        await a.sync(1120)                             # republishes its generation 2
        assert await wiped.latest_ring_generation() == 2 and await wiped.get_ring(2) is not None
        assert a.ring.generation == 2
        await late.sync(1130)
        assert late.ring.generation == 2 and late.ring.key_ids == a.ring.key_ids
        # in step, a sync costs no republishing
        trips = wiped.round_trips
        await a.sync(1140)
        assert wiped.round_trips - trips == 2          # the hint and the probe for generation 3
    run(main())


def test_a_gateway_that_slept_past_the_ring_expiry_catches_up():
    """Its next generation expired from the store long ago: it must jump to the
    cluster's newest generation, not publish a stale one of its own."""
    async def main():
        import os
        clock = Clock(1000)
        store = MemoryTicketStore(clock=clock)
        key = os.urandom(32)
        sleeper = SharedKeyRing(store, key, rng=os.urandom, rotation=100, keep=1)
        awake = SharedKeyRing(store, key, rng=os.urandom, rotation=100, keep=1)
        await sleeper.sync(1000)
        await awake.sync(1000)
        for t in range(1100, 1900, 100):
            clock.t = t
            await awake.sync(t)
        assert awake.ring.generation == 9 and await store.get_ring(2) is None   # expired (ttl 400 s)
        clock.t = 1850
        await sleeper.sync(1850)
        assert sleeper.ring.generation == 9 and sleeper.ring.key_ids == awake.ring.key_ids
        assert await store.get_ring(10) is None
    run(main())


def test_ring_sync_loop_survives_a_failing_store_and_stops(caplog):
    async def main():
        import os

        class Flaky(MemoryTicketStore):
            calls = 0

            async def _latest_ring_generation(self):
                Flaky.calls += 1
                if Flaky.calls == 1:
                    raise ConnectionResetError("store went away")
                return await super()._latest_ring_generation()

        store = Flaky()
        shared = SharedKeyRing(store, os.urandom(32), rng=os.urandom, rotation=4)   # syncs every 1 s
        stop = asyncio.Event()
        task = asyncio.create_task(shared.run(clock=lambda: 1000.0, stop=stop))
        for _ in range(300):
            await asyncio.sleep(0.01)
            if shared.ring is not None:
                break
        stop.set()
        await asyncio.wait_for(task, 2)
        assert shared.ring is not None and shared.ring.generation == 1
    with caplog.at_level("WARNING", logger="ikecore.store.ringsync"):
        run(main())
    assert "store went away" in caplog.text


@pytest.mark.parametrize("by_reference", [False, True])
def test_redeem_against_a_hanging_store_fails_at_the_deadline_and_spends_nothing(by_reference):
    """The gateway answers TICKET_NACK (a StoreError) within the deadline; the
    ticket was not spent, so it still works once the store is back."""
    import os

    from ticket_helpers import NOW, sample_state

    from ikecore.resumption import TicketAuthority, TicketKeyRing
    from ikecore.store import issue_ticket, redeem_ticket

    class Hanging(MemoryTicketStore):
        hang = False

        async def _set_once(self, key, ttl):
            if self.hang:
                await asyncio.sleep(3600)
            return await super()._set_once(key, ttl)

        async def _take(self, key):
            if self.hang:
                await asyncio.sleep(3600)
            return await super()._take(key)

    async def main():
        store = Hanging(deadline=0.05)
        authority = TicketAuthority(TicketKeyRing(rng=os.urandom, now=NOW), by_reference=by_reference,
                                    rng=os.urandom)
        state = sample_state(os.urandom)
        ticket = (await issue_ticket(authority, store, state, NOW)).ticket
        store.hang = True
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(StoreTimeout):
            await redeem_ticket(authority, store, ticket, NOW)
        assert loop.time() - t0 < 1.0
        store.hang = False
        assert await redeem_ticket(authority, store, ticket, NOW) == state
    run(main())


def test_answers_at_once_like_the_asynchronous_calls():
    """set_once_now / take_now / put_now: the same answers, checks and round-trip
    counts as the awaited calls, for the gateway's in-callback path."""
    s = MemoryTicketStore(max_entries=2)
    assert s.answers_at_once
    assert s.set_once_now(b"spent", 60) is True and s.set_once_now(b"spent", 60) is False
    s.put_now(b"ref", b"state", 60)
    assert s.take_now(b"ref") == b"state" and s.take_now(b"ref") is None
    assert s.round_trips == 5
    with pytest.raises(ValueError):
        s.set_once_now(b"k", 0)
    with pytest.raises(TypeError):
        s.put_now(b"k", "not bytes", 60)
    s.put_now(b"other", b"x", 60)
    with pytest.raises(StoreUnavailable):               # full: refused, never evicted
        s.set_once_now(b"third", 60)
    assert asyncio.run(s.set_once(b"spent", 60)) is False   # one table for both paths
