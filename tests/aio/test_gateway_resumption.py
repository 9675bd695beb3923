"""Session resumption (RFC 5723) through two asyncio gateways over UDP loopback,
with the embedded ticket store (ikecore.store.MemoryTicketStore).

    client gateway                                gateway
    IKE_SA_INIT + IKE_AUTH {N(TICKET_REQUEST)}  -->
                                      <--  ... {N(TICKET_LT_OPAQUE)}
    (the client's SA is suspended: no Delete; it initiates again)
    IKE_SESSION_RESUME {Ni, N(TICKET_OPAQUE)}   -->   store: SET spent:<id> NX EX
                                      <--  {Nr}
    IKE_AUTH {AUTH = prf(SK_pi, ...)}           -->
                                      <--  {AUTH, N(TICKET_LT_OPAQUE)}
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import time

import pytest

from aio_helpers import exchange_traffic, ike_configs, initiator, responder, run
from ikecore.errors import StoreUnavailable
from ikecore.protocol import events as ev
from ikecore.resumption import TicketAuthority, TicketKeyRing
from ikecore.store import MemoryTicketStore

HOST = "127.0.0.1"


class DownStore(MemoryTicketStore):
    """A store whose every call fails as a refused connection would."""

    async def _set_once(self, key, ttl):
        raise StoreUnavailable("connection refused")


async def _gateways(store):
    ci, cr = ike_configs(HOST, resumption=True)
    gr = await responder(cr, HOST)
    gr.use_tickets(store, TicketAuthority(TicketKeyRing(rng=os.urandom, now=time.time()), rng=os.urandom))
    gi = await initiator(ci, gr, HOST)
    return gi, gr


async def _lose_and_reinitiate(gi, conn):
    if "to-r" not in gi.endpoint.tickets:
        await gi.wait_for(ev.TicketReceived, conn, timeout=10)
    gi._safe(conn, lambda c: c.suspend(gi.now()))       # gone without a Delete: the ticket stays
    gi._flush()
    return await gi.initiate("to-r", timeout=10)


def test_resumption_through_the_gateways():
    async def body():
        store = MemoryTicketStore()
        gi, gr = await _gateways(store)
        try:
            conn = await gi.initiate("to-r", timeout=10)
            old_r = gr.connections[0]
            conn2 = await _lose_and_reinitiate(gi, conn)
            assert conn2.resumed is not None and conn2.established
            for _ in range(100):                          # the gateway's side of the last message
                if gr.connections and gr.connections[0].resumed is not None:
                    break
                await asyncio.sleep(0.01)
            assert gr.endpoint.stats["resumed"] == 1 and gr.connections[0].resumed is not None
            assert store.round_trips == 1                 # one SET NX for the one resumption
            await exchange_traffic(gi, gr, HOST, 20, b"resumed")
            # the gateway dropped the SA the ticket came from, silently (RFC 5723 §4.3.4)
            assert old_r.state.value == "deleted" and len(gr.connections) == 1
            # and the client holds a fresh ticket for the next time
            if "to-r" not in gi.endpoint.tickets:
                await gi.wait_for(ev.TicketReceived, conn2, timeout=10)
            assert gi.endpoint.tickets["to-r"].sk_d == conn2.keys.sk_d
        finally:
            await gi.stop()
            await gr.stop()
    run(body())


def test_an_in_process_store_is_answered_at_once_without_a_task():
    """The memory store answers the gateway's spend inside the datagram's own
    callback (set_once_now): its asynchronous call, and a task for it, are
    never used. A store that changes how it answers (DownStore) keeps the
    asynchronous path."""
    async def body():
        store = MemoryTicketStore()
        assert store.answers_at_once and not DownStore().answers_at_once

        async def never(*_a, **_k):
            raise AssertionError("the asynchronous store call was used")
        store.set_once = store.take = never
        gi, gr = await _gateways(store)
        try:
            conn = await gi.initiate("to-r", timeout=10)
            conn2 = await _lose_and_reinitiate(gi, conn)
            assert conn2.resumed is not None and conn2.established
            assert gr.endpoint.stats["resumed"] == 1 and store.round_trips == 1
        finally:
            await gi.stop()
            await gr.stop()
    run(body())


def test_store_down_falls_back_to_a_full_handshake():
    async def body():
        store = DownStore()
        gi, gr = await _gateways(store)
        try:
            conn = await gi.initiate("to-r", timeout=10)
            conn2 = await _lose_and_reinitiate(gi, conn)
            assert conn2.established and conn2.resumed is None
            assert gr.endpoint.stats["ticket_store_errors"] == 1 and gr.endpoint.stats["resumed"] == 0
            assert gr.counters["ticket_store_errors"] == 1
            await exchange_traffic(gi, gr, HOST, 5, b"full")
        finally:
            await gi.stop()
            await gr.stop()
    run(body())


def test_wall_clock_is_set_from_the_loop():
    async def body():
        store = MemoryTicketStore()
        gi, gr = await _gateways(store)
        try:
            for g in (gi, gr):
                for spec in g.config.connections.values():
                    assert abs(spec.ike.wall_time(g.now()) - time.time()) < 1.0
        finally:
            await gi.stop()
            await gr.stop()
    run(body())


# ------------------------------------------------- a cluster sharing Redis --

def _redis():
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "store"))
    from redis_server import REDIS_SERVER, RedisServer
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    pytest.importorskip("redis")
    return RedisServer().start()


def test_cluster_refuses_a_ticket_spent_at_another_gateway():
    """Two gateways share the ticket keys and a Redis store: a ticket spent at the
    first is refused by the second (TICKET_NACK), and the client gets in anyway
    with a full handshake."""
    from ikecore.store.redis_store import RedisTicketStore
    server = _redis()

    async def body():
        ci, cr = ike_configs(HOST, resumption=True)
        cr2 = dataclasses.replace(cr)
        authority = TicketAuthority(TicketKeyRing(rng=os.urandom, now=time.time()), rng=os.urandom)
        stores = [RedisTicketStore(server.url), RedisTicketStore(server.url)]
        g1, g2 = await responder(cr, HOST), await responder(cr2, HOST)
        g1.use_tickets(stores[0], authority)
        g2.use_tickets(stores[1], authority)
        gi = await initiator(ci, g1, HOST)
        try:
            conn = await gi.initiate("to-r", timeout=10)
            if "to-r" not in gi.endpoint.tickets:
                await gi.wait_for(ev.TicketReceived, conn, timeout=10)
            spent = gi.endpoint.tickets["to-r"]
            conn2 = await _lose_and_reinitiate(gi, conn)            # resumed at gateway 1
            assert conn2.resumed is not None
            # the same ticket again, at gateway 2
            gi.endpoint.tickets["to-r"] = spent
            conn3 = gi.connect(ci, (HOST, g2.port), remote_natt_port=g2.natt_port)
            await gi.established(conn3, timeout=10)
            assert conn3.resumed is None                             # fell back to a full handshake
            assert g2.endpoint.stats["ticket_replays"] == 1 and g2.endpoint.stats["resumed"] == 0
            assert stores[0].round_trips == 1 and stores[1].round_trips == 1
        finally:
            await gi.stop()
            await g1.stop()
            await g2.stop()
            for s in stores:
                await s.close()
    try:
        run(body())
    finally:
        server.stop()


def test_stalled_redis_means_nack_within_the_deadline():
    """Redis stops answering (SIGSTOP): the check fails at the store's deadline,
    the client gets TICKET_NACK and a full handshake, nothing waits longer."""
    import signal
    from ikecore.store.redis_store import RedisTicketStore
    server = _redis()

    async def body():
        store = RedisTicketStore(server.url, deadline=0.2)
        gi, gr = await _gateways(store)
        try:
            conn = await gi.initiate("to-r", timeout=10)
            await store.set_once(b"warm-up", 5)            # the connection pool holds a connection
            server.signal(signal.SIGSTOP)
            conn2 = await _lose_and_reinitiate(gi, conn)
            assert conn2.established and conn2.resumed is None
            assert gr.endpoint.stats["ticket_store_errors"] == 1
        finally:
            server.signal(signal.SIGCONT)
            await gi.stop()
            await gr.stop()
            await store.close()
    try:
        run(body())
    finally:
        server.stop()


# ------------------------------------------------- through a faulty IKE path --

def test_resumption_through_a_lossy_duplicating_reordering_path():
    """Lost, repeated and reordered IKE messages: the resumption still completes,
    the ticket is spent once (a repeated IKE_SESSION_RESUME is never a replay), and
    each side ends with one IKE SA and one Child SA."""
    from types import SimpleNamespace

    from fault_relay import FaultRelay, Faults
    faults = Faults(loss=0.15, duplicate=0.2, reorder=0.2, paths=frozenset({"ike"}))
    fast = {"retransmit_timeout": 0.2, "retransmit_base": 1.5, "retransmit_tries": 10, "resume_tries": 6}

    async def body():
        ci, cr = ike_configs(HOST, resumption=True, **fast)
        store = MemoryTicketStore()
        gr = await responder(cr, HOST)
        gr.use_tickets(store, TicketAuthority(TicketKeyRing(rng=os.urandom, now=time.time()), rng=os.urandom))
        relay = await FaultRelay((HOST, gr.port), (HOST, gr.natt_port), faults, seed=3).start()
        gi = await initiator(ci, SimpleNamespace(port=relay.ike_port, natt_port=relay.natt_port), HOST)
        try:
            conn = await gi.initiate("to-r", timeout=30)
            for _ in range(2):
                conn = await _lose_and_reinitiate(gi, conn)
                assert conn.resumed is not None
            await asyncio.sleep(0.5)                      # late duplicates settle
            assert gr.endpoint.stats["resumed"] == 2 and gr.endpoint.stats["ticket_replays"] == 0
            assert store.round_trips == 2
            assert len(gr.connections) == 1 and len(gi.child_sas(conn)) == len(gr.child_sas()) == 1
            return relay.counts
        finally:
            await gi.stop(timeout=1)
            await gr.stop(timeout=1)
            relay.close()
    counts = run(body(), timeout=120)
    assert counts["ike", "duplicated"] > 0 and counts["ike", "lost"] > 0
