"""The gateway's work per datagram does not grow with the SAs it holds.

A responder gateway holds N established IKE SAs (copies of a real one, with
their own SPIs, identities and deadlines), and a real initiator gateway runs a
full handshake, a Child SA rekey, a liveness check and a delete against it over
loopback UDP, through the event loop, exactly as the daemon runs. The count is
the calls of any IKE SA's get_timer() or handle_timer() per datagram received
(counted on the class, whatever calls them): a work count, never a time.
Before the timer heap, every datagram cost N (get_timer walked the table)."""
import asyncio
import copy

from aio_helpers import ike_configs, pair, run
from ikecore.protocol import events as ev
from ikecore.protocol.config import Identity
from ikecore.protocol.ike_sa import IkeConnection

FRESH_CONTAINERS = (("outstanding", dict), ("response_cache", dict), ("children", dict),
                    ("exchange_state", dict), ("tasks", list), ("deferred", list),
                    ("_datagrams", list), ("_events", list), ("_spawned", list))


def hold_copies(gw, template, n: int) -> None:
    """``n`` more established IKE SAs in ``gw``'s endpoint, each a copy of
    ``template`` with its own SPI, peer identity and (distinct, future) deadlines."""
    now = gw.now()
    for k in range(n):
        sa = copy.copy(template)
        sa.spi_r = (0x5C << 56 | k + 1).to_bytes(8, "big")
        for name, make in FRESH_CONTAINERS:
            setattr(sa, name, make())
        sa.remote_id = Identity.parse(f"held-{k}@test")
        sa.index_keys = None
        sa.rekey_at = now + 3600 + k * 0.01
        sa.expire_at = now + 7200 + k * 0.01
        gw.endpoint._adopt(sa)
    gw.endpoint.get_timer()          # the copies' first scheduling is set-up, not per-datagram work


class SaWorkCounter:
    """Counts every IkeConnection.get_timer / handle_timer call while active."""

    def __init__(self, monkeypatch):
        self.calls = 0
        for name in ("get_timer", "handle_timer"):
            original = getattr(IkeConnection, name)

            def counted(sa, *args, _original=original):
                self.calls += 1
                return _original(sa, *args)
            monkeypatch.setattr(IkeConnection, name, counted)


def received(gw) -> int:
    c = gw.counters
    return c["ike_rx"] + c["natt_rx"]


async def work_per_datagram(held: int, counter: SaWorkCounter) -> tuple[int, int]:
    """(SAs touched, IKE datagrams received) by the responder for one IKE SA's
    whole life while it holds ``held`` other SAs."""
    ci, cr = ike_configs()
    gi, gr, first = await pair(ci=ci, cr=cr)
    try:
        template = next(c for c in gr.endpoint.connections.values() if c.established)
        hold_copies(gr, template, held)
        gi.delete(first)
        await gi.wait_for(ev.IkeSaDeleted, first, timeout=10)
        touched, rx = counter.calls, received(gr)
        conn = await gi.initiate("to-r", timeout=20)
        gi.rekey_child(conn)
        await gi.wait_for(ev.ChildSaRekeyed, conn, timeout=10)
        gi.check_liveness(conn)
        await gi.wait_for(ev.PeerAlive, conn, timeout=10)
        gi.delete(conn)
        await gi.wait_for(ev.IkeSaDeleted, conn, timeout=10)
        await asyncio.sleep(0.05)
        assert len(gr.endpoint.connections) == held          # all copies still there, untouched
        return counter.calls - touched, received(gr) - rx
    finally:
        await gi.stop()
        await gr.stop(timeout=0.1)


def test_sas_touched_per_datagram_stays_constant_from_100_to_20000_sas(monkeypatch):
    counter = SaWorkCounter(monkeypatch)
    small_touched, small_rx = run(work_per_datagram(100, counter))
    large_touched, large_rx = run(work_per_datagram(20_000, counter), timeout=120)
    assert small_rx == large_rx == 6            # INIT, AUTH, Child SA rekey, its Delete, DPD, Delete
    assert large_touched == small_touched       # the same work, whatever the table holds
    assert large_touched <= 3 * large_rx        # a handful of SAs per datagram, not the table


def test_expiry_runs_only_the_sas_that_are_due():
    async def body():
        ci, cr = ike_configs()
        gi, gr, conn = await pair(ci=ci, cr=cr)
        try:
            template = next(c for c in gr.endpoint.connections.values() if c.established)
            hold_copies(gr, template, 20_000)
            due = list(gr.endpoint.connections.values())[-5:]
            for sa in due:
                sa.expire_at = gr.now()            # hard lifetime now: a Delete each
                gr.endpoint.timers.touch(sa)
            touched = gr.endpoint.timers.sas_touched
            gr._on_timer()
            # each due SA: recomputed when touched, popped, recomputed after its handler
            assert gr.endpoint.timers.sas_touched - touched <= 3 * len(due)
            assert all(sa.outstanding for sa in due)          # each sent its Delete
        finally:
            await gi.stop()
            await gr.stop(timeout=0.1)
    run(body(), timeout=120)
