"""``ikecore demo``'s resumption steps (RFC 5723): a gateway cluster of two, A
and B, sharing one ticket store and one ticket key ring (the ring travels
through the store, wrapped, as in a real cluster):

1. the client's full handshake with A gets it a ticket;
2. A fails (its sockets close, no Delete), the client drops its SA as DPD would;
3. the client resumes at B: IKE_SESSION_RESUME + IKE_AUTH, no key exchange, no
   re-authentication, one store round trip at B, and ESP flows;
4. the client presents the spent ticket again and B refuses it (TICKET_NACK);
   the client falls back to a full handshake.

The store is embedded (``MemoryTicketStore``) unless a Redis URL is given.
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import time

from ..protocol import events as ev
from ..protocol.constants import NotifyType
from ..resumption import TicketAuthority
from ..store import MemoryTicketStore, RedisTicketStore, SharedKeyRing
from .config import ConnectionSpec, GatewayConfig
from .gateway import Gateway


class _Cluster:
    """Gateways A and B: one store each (the same server with Redis), one shared ring."""

    def __init__(self, host: str, responder_config, on_packet, redis_url: str | None) -> None:
        self.host, self.cr, self.on_packet, self.redis_url = host, responder_config, on_packet, redis_url
        self.wrapping_key = os.urandom(32)      # a real cluster reads it from a 0600 key file
        self.shared_store = None if redis_url else MemoryTicketStore()
        self.members: dict[str, tuple[Gateway, object]] = {}

    def _store(self):
        return RedisTicketStore(self.redis_url, deadline=0.5) if self.redis_url else self.shared_store

    async def start(self, name: str) -> Gateway:
        store = self._store()
        ring = SharedKeyRing(store, self.wrapping_key, rng=os.urandom, rotation=3600, keep=2)
        await ring.sync(time.time())                    # B finds the ring A published
        cr = dataclasses.replace(self.cr, resumption=True)
        gw = Gateway(GatewayConfig(connections={"demo": ConnectionSpec("demo", cr)}, listen=[self.host],
                                   port=0, natt_port=0, keepalive_interval=0), on_packet=self.on_packet)
        await gw.start()
        gw.use_tickets(store, TicketAuthority(ring.ring, rng=os.urandom))
        self.members[name] = (gw, store)
        return gw

    async def stop(self) -> None:
        for gw, store in self.members.values():
            if gw.running:
                await gw.stop(timeout=1.0)
            if self.redis_url:
                await store.close()


async def _wait(predicate, timeout: float) -> bool:
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


async def resumption_steps(gi: Gateway, host: str, responder_config, *, traffic, gateway_sink, client_sink,
                           a_ip: str, b_ip: str, packets: int, size: int, redis_url: str | None,
                           timeout: float) -> dict:
    """Run the steps with the client gateway ``gi`` (connection "demo" with
    ``resumption = true``); ``traffic(src_gw, sink, src, dst, count, size, child, timeout)``
    is the demo's traffic step, the sinks count what arrives at the gateways and at
    the client. Returns the steps' summary."""
    cluster = _Cluster(host, responder_config, gateway_sink, redis_url)
    out: dict = {"store": f"redis {redis_url}" if redis_url else "embedded (memory)"}
    try:
        a = await cluster.start("A")
        b = await cluster.start("B")
        out["gateways"] = {"A": {"ike": a.port, "natt": a.natt_port}, "B": {"ike": b.port, "natt": b.natt_port}}

        # 1. a full handshake with A; the ticket comes in its IKE_AUTH
        t0 = time.perf_counter()
        conn = await gi.initiate("demo", remote=host, remote_port=a.port, remote_natt_port=a.natt_port,
                                 timeout=timeout)
        if "demo" not in gi.endpoint.tickets:
            await gi.wait_for(ev.TicketReceived, conn, timeout=timeout)
        ticket = gi.endpoint.tickets["demo"]
        out["ticket"] = {"from": "A", "ms": round((time.perf_counter() - t0) * 1000, 3),
                         "octets": len(ticket.ticket), "expires_in_s": round(ticket.expires_at - time.time())}

        # 2. A fails: no Delete reaches the client, which drops the SA (DPD would)
        a.abort()
        gi.suspend(conn)
        out["failover"] = {"A": "stopped without a Delete", "client": "SA dropped, ticket kept"}

        # 3. resume at B
        b_store = cluster.members["B"][1]
        trips = b_store.round_trips
        t0 = time.perf_counter()
        resumed = await gi.initiate("demo", remote=host, remote_port=b.port, remote_natt_port=b.natt_port,
                                    timeout=timeout)
        ms = round((time.perf_counter() - t0) * 1000, 3)
        await _wait(lambda: bool(b.connections) and b.connections[0].established, timeout)
        child = gi.child_sas(resumed)[0]
        b_conn = b.connections[0]
        out["resume"] = {"at": "B", "ms": ms, "resumed": resumed.resumed is not None,
                         "spi_i": resumed.spi_i.hex(), "spi_r": resumed.spi_r.hex(),
                         "child_spi_in": child.spi_in.hex(),
                         "traffic": {
                             "initiator_to_responder": await traffic(gi, gateway_sink, a_ip, b_ip, packets, size,
                                                                     child, timeout),
                             "responder_to_initiator": await traffic(b, client_sink, b_ip, a_ip, packets, size,
                                                                     b.child_sas(b_conn)[0], timeout)}}
        out["resume"]["store_round_trips"] = b_store.round_trips - trips

        # 4. the spent ticket, presented again, is refused; the client falls back
        gi.endpoint.tickets["demo"] = ticket
        refused = asyncio.ensure_future(gi.wait_for(ev.ResumeFailed, timeout=timeout))
        t0 = time.perf_counter()
        again = await gi.initiate("demo", remote=host, remote_port=b.port, remote_natt_port=b.natt_port,
                                  timeout=timeout)
        _, failure = await refused
        out["replay"] = {"at": "B", "refused": failure.notify_type == NotifyType.TICKET_NACK,
                         "notify": NotifyType(failure.notify_type).name if failure.notify_type else None,
                         "reason": failure.reason,
                         "fallback": "full handshake" if again.established and again.resumed is None else "none",
                         "ms": round((time.perf_counter() - t0) * 1000, 3)}
        flows = out["resume"]["traffic"].values()
        out["ok"] = (out["resume"]["resumed"] and out["replay"]["refused"]
                     and out["replay"]["fallback"] == "full handshake"
                     and all(f["received"] == f["sent"] > 0 for f in flows))
    except Exception as exc:          # the summary says what failed
        out["ok"] = False
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        for c in list(gi.connections):
            gi.delete(c)
        await asyncio.sleep(0.05)
        await cluster.stop()
    return out


def format_resumption(r: dict, flow) -> list[str]:
    lines = [f"  resumption  gateways A and B share a ticket store ({r['store']}) and key ring"]
    if "ticket" in r:
        t = r["ticket"]
        lines.append(f"  ticket      from A in its IKE_AUTH ({t['octets']} octets, expires in {t['expires_in_s']} s), "
                     f"full handshake {t['ms']:.1f} ms")
    if "failover" in r:
        lines.append("  failover    A stopped without a Delete; the client dropped its SA and kept the ticket")
    if "resume" in r:
        x = r["resume"]
        lines.append(f"  resumed     at B in {x['ms']:.1f} ms (IKE_SESSION_RESUME + IKE_AUTH, no key exchange, "
                     f"no re-authentication, {x.get('store_round_trips', '?')} store round trip), "
                     f"SPIs {x['spi_i']}_i {x['spi_r']}_r")
        lines.append(f"  ESP  i -> B {flow(x['traffic']['initiator_to_responder'])}")
        lines.append(f"  ESP  B -> i {flow(x['traffic']['responder_to_initiator'])}")
    if "replay" in r:
        x = r["replay"]
        lines.append(f"  replay      the spent ticket again at B: {'refused with ' + str(x['notify']) if x['refused'] else 'ACCEPTED'}"
                     f"; fallback: {x['fallback']} ({x['ms']:.1f} ms)")
    if "error" in r:
        lines.append(f"  error       {r['error']}")
    return lines


__all__ = ["resumption_steps", "format_resumption"]
