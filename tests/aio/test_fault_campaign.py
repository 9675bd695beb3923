"""Loss, duplication, reordering and truncation between two gateways, through
the fault-injecting relay (fault_relay.py): every exchange completes by
retransmission, no Child SA is made twice, and anti-replay counts exactly the
duplicates the relay delivered."""
import asyncio
import dataclasses
from collections import Counter
from types import SimpleNamespace

from aio_helpers import NETS, collect, ike_configs, initiator, responder, run, udp_packet
from fault_relay import FaultRelay, Faults
from ikecore.protocol import events as ev

FAST_RETRANSMIT = {"retransmit_timeout": 0.2, "retransmit_base": 1.5, "retransmit_tries": 10}


async def through_relay(faults: Faults, *, seed: int, replay_window: int = 64):
    ci, cr = ike_configs(**FAST_RETRANSMIT)
    if replay_window != 64:
        ci = dataclasses.replace(ci, children=[dataclasses.replace(c, replay_window=replay_window)
                                               for c in ci.children])
        cr = dataclasses.replace(cr, children=[dataclasses.replace(c, replay_window=replay_window)
                                               for c in cr.children])
    gr = await responder(cr)
    relay = await FaultRelay(("127.0.0.1", gr.port), ("127.0.0.1", gr.natt_port), faults, seed=seed).start()
    gi = await initiator(ci, SimpleNamespace(port=relay.ike_port, natt_port=relay.natt_port))
    return gi, gr, relay


async def close(gi, gr, relay):
    await gi.stop(timeout=1)
    await gr.stop(timeout=1)
    relay.close()


def test_every_exchange_completes_through_a_lossy_duplicating_reordering_ike_path():
    faults = Faults(loss=0.15, duplicate=0.15, reorder=0.15, paths=frozenset({"ike"}))

    async def body():
        gi, gr, relay = await through_relay(faults, seed=11)
        try:
            conn = await gi.initiate("to-r", timeout=30)
            for _ in range(3):
                gi.rekey_child(conn)
                await gi.wait_for(ev.ChildSaDeleted, conn, timeout=30)
            gi.rekey(conn)
            await gi.wait_for(ev.IkeSaRekeyed, conn, timeout=30)
            gi.check_liveness(conn)
            await gi.wait_for(ev.PeerAlive, conn, timeout=30)
            await asyncio.sleep(0.3)                   # late duplicates and retransmissions settle
            # one Child SA each side, the same one, however often requests were repeated
            [mine], [theirs] = gi.child_sas(conn), gr.child_sas()
            assert (mine.spi_in, mine.spi_out) == (theirs.spi_out, theirs.spi_in)
            assert gi.counters["child_sas_installed"] == gr.counters["child_sas_installed"] == 4
            assert len(gi.connections) == len(gr.connections) == 1
            return relay.counts
        finally:
            await close(gi, gr, relay)
    counts = run(body(), timeout=120)
    assert counts["ike", "lost"] > 0 and counts["ike", "duplicated"] > 0 and counts["ike", "reordered"] > 0


def test_anti_replay_counts_only_the_duplicates_on_a_faulty_esp_path():
    faults = Faults(loss=0.05, duplicate=0.10, reorder=0.10, paths=frozenset({"esp"}))
    _, _, a, b = NETS["127.0.0.1"]

    async def body():
        gi, gr, relay = await through_relay(faults, seed=5, replay_window=4096)
        try:
            conn = await gi.initiate("to-r", timeout=30)
            sent = [udp_packet(a, b, b"packet %d" % k) for k in range(600)]
            for k in range(0, len(sent), 50):
                assert gi.send_packets(sent[k:k + 50]) == 50
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)
            got = []
            while not gr.packets.empty():
                got.append(gr.packets.get_nowait()[1])
            counters = gr.dataplane.counters
            return relay.counts, got, sent, dict(counters)
        finally:
            await close(gi, gr, relay)
    counts, got, sent, counters = run(body(), timeout=120)
    assert counts["esp", "duplicated"] > 0 and counts["esp", "lost"] > 0 and counts["esp", "reordered"] > 0
    assert len(got) == len(set(got))                     # nothing delivered twice
    assert set(got) <= set(sent)
    assert len(got) == len(sent) - counts["esp", "lost"]  # everything not lost arrived
    assert counters["replayed"] == counts["esp", "duplicated"]   # only true replays
    assert counters["auth_failed"] == 0


def test_truncated_datagrams_are_dropped_and_the_tunnel_carries_on():
    faults = Faults(truncate=0.1, loss=0.05)
    _, _, a, b = NETS["127.0.0.1"]

    async def body():
        gi, gr, relay = await through_relay(faults, seed=3)
        try:
            conn = await gi.initiate("to-r", timeout=30)
            gi.rekey_child(conn)
            await gi.wait_for(ev.ChildSaDeleted, conn, timeout=30)
            sent = [udp_packet(a, b, b"t %d" % k) for k in range(200)]
            gi.send_packets(sent)
            await asyncio.sleep(0.3)
            got = Counter()
            while not gr.packets.empty():
                got[gr.packets.get_nowait()[1]] += 1
            return relay.counts, got, sent, dict(gr.dataplane.counters), gr.counters["internal_errors"]
        finally:
            await close(gi, gr, relay)
    counts, got, sent, counters, errors = run(body(), timeout=120)
    assert counts["esp", "truncated"] > 0 and counts["ike", "truncated"] > 0
    assert set(got) <= set(sent) and max(got.values()) == 1
    # a truncated ESP packet fails its ICV or its length checks; it is no replay
    assert counters["replayed"] == 0
    assert counters["auth_failed"] + counters["malformed"] >= counts["esp", "truncated"] > 0
    assert errors == 0
