"""The ticket store goes away and comes back (RFC 5723 resumption with Redis):
with Redis stopped, a returning client gets a full handshake, promptly (no hang);
with Redis back on the same port, it resumes again. In-process gateways
(``gw.use_tickets``); the daemon-level run belongs to the TOML resumption keys."""
from __future__ import annotations

import asyncio
import os
import time

import pytest

from aio_helpers import ike_configs, initiator, responder, run
from test_gateway_resumption import _lose_and_reinitiate, _redis
from ikecore.resumption import TicketAuthority, TicketKeyRing

HOST = "127.0.0.1"
NO_HANG_BOUND = 5.0       # seconds for the fallback handshake with the store down


@pytest.mark.slow
def test_redis_stopped_means_full_handshakes_and_back_means_resumptions():
    from ikecore.store.redis_store import RedisTicketStore
    server = _redis()
    servers = [server]

    async def body():
        store = RedisTicketStore(server.url, deadline=0.3)
        ci, cr = ike_configs(HOST, resumption=True)
        gr = await responder(cr, HOST)
        gr.use_tickets(store, TicketAuthority(TicketKeyRing(rng=os.urandom, now=time.time()), rng=os.urandom))
        gi = await initiator(ci, gr, HOST)
        loop = asyncio.get_running_loop()
        try:
            conn = await gi.initiate("to-r", timeout=10)
            conn = await _lose_and_reinitiate(gi, conn)
            assert conn.resumed is not None                       # Redis up: resumed

            server.stop()                                          # Redis gone (by its PID)
            t0 = loop.time()
            conn = await _lose_and_reinitiate(gi, conn)
            down = loop.time() - t0
            assert conn.established and conn.resumed is None       # a full handshake ...
            assert down < NO_HANG_BOUND                            # ... without a hang
            assert gr.endpoint.stats["ticket_store_errors"] >= 1

            back = type(server)()
            back.port = server.port                                # the same address again
            servers.append(back.start())
            resumed = None
            for _ in range(5):                                     # the pool reconnects on demand
                conn = await _lose_and_reinitiate(gi, conn)
                if conn.resumed is not None:
                    resumed = conn
                    break
            assert resumed is not None                             # Redis back: resumed again
            return down, dict(gr.endpoint.stats)
        finally:
            await gi.stop()
            await gr.stop()
            await store.close()
    try:
        down, stats = run(body(), timeout=60)
        print(f"\nRedis down: full handshake in {down * 1000:.0f} ms; stats {stats}")
    finally:
        for s in servers:
            s.stop()
