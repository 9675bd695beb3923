"""The gateway's clocks: the IKE timer (one event-loop timer armed at the
endpoint's earliest deadline, which the endpoint keeps in a heap) and NAT
keepalives. A mixin of :class:`~ikecore.aio.gateway.Gateway`."""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ..esp import OK, PENDING, PacketVector
from ..protocol.ike_sa import IkeConnection, State

if TYPE_CHECKING:
    from .gateway import Gateway

log = logging.getLogger("ikecore.gateway")


class GatewayTimers:
    """Arms and runs the endpoint's timer (mixin)."""

    # ================================================================ timers ==
    def _arm_timer(self) -> None:
        if not self.running:
            return
        t = self.endpoint.get_timer()
        if t == self._timer_at and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = t
        if t is not None:
            self._timer = self.loop.call_at(max(t, self.loop.time()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        try:
            self.endpoint.handle_timer(self.loop.time())
        except Exception:
            self.counters["internal_errors"] += 1
            log.exception("error in the IKE timers")
        self._flush()


async def flush_suppressed_logs(gw, interval: float) -> None:
    """Every ``interval``: the counts of log lines rate-limiting held back
    (ikecore.protocol.limits), also after a flood has stopped."""
    from ..protocol.limits import unauthenticated_log
    while gw.running:
        await asyncio.sleep(interval)
        unauthenticated_log.flush()


class KeepaliveScheduler:
    """NAT keepalives (RFC 3948 §2.3): one 0xFF octet every ``interval`` to each
    peer of an SA on NAT-T when we are behind a NAT (or force encapsulation).

    The SAs are spread over the ticks of one interval (about one tick a second),
    so each tick sends to about N/ticks SAs, in sendmmsg batches, and never walks
    the whole table. SAs join when they are established and leave when they are
    deleted; one that stopped needing keepalives leaves at its next tick.
    """

    BATCH = 64

    def __init__(self, gw: "Gateway", interval: float) -> None:
        self.gw = gw
        self.interval = interval
        self.ticks = max(1, min(60, int(interval)))
        self._slots: list[dict[IkeConnection, None]] = [{} for _ in range(self.ticks)]
        self._slot_of: dict[IkeConnection, int] = {}
        self._next_slot = 0           # new SAs are dealt round-robin over the slots
        self._tick = 0
        self._vec = PacketVector(self.BATCH, slot_size=128, headroom=0)
        self.sent_per_tick: list[int] = []        # the last ticks' sizes, for tests and status

    def __len__(self) -> int:
        return len(self._slot_of)

    def add(self, conn: IkeConnection) -> None:
        if conn in self._slot_of:
            return
        slot = self._next_slot
        self._next_slot = (slot + 1) % self.ticks
        self._slots[slot][conn] = None
        self._slot_of[conn] = slot

    def discard(self, conn: IkeConnection) -> None:
        slot = self._slot_of.pop(conn, None)
        if slot is not None:
            self._slots[slot].pop(conn, None)

    async def run(self) -> None:
        gw = self.gw
        period = self.interval / self.ticks
        while gw.running:
            await asyncio.sleep(period)
            try:
                self.tick()
            except Exception:
                gw.counters["internal_errors"] += 1
                log.exception("error sending NAT keepalives")

    def tick(self) -> int:
        """Send the keepalives of the next slot; returns how many went out."""
        gw = self.gw
        slot = self._slots[self._tick]
        self._tick = (self._tick + 1) % self.ticks
        by_socket: dict = {}
        for conn in list(slot):
            if conn.state is not State.ESTABLISHED:
                self.discard(conn)
                continue
            if conn.local[1] != gw.natt_port or not (conn.nat_local or conn.config.force_encap):
                continue
            lst = gw._listener_for(conn.local)
            if lst is None:
                continue
            by_socket.setdefault(lst.natt_sock, []).append((conn.local, tuple(conn.remote)))
        sent = 0
        for sock, peers in by_socket.items():
            for start in range(0, len(peers), self.BATCH):
                sent += self._send_batch(sock, peers[start:start + self.BATCH])
        gw.counters["keepalives_tx"] += sent
        self.sent_per_tick = (self.sent_per_tick + [sent])[-self.ticks:]
        return sent

    def _send_batch(self, sock, peers: list) -> int:
        vec, capture = self._vec, self.gw.capture
        vec.load([b"\xff"] * len(peers))
        vec.restatus(PENDING, OK)
        for i, (local, remote) in enumerate(peers):
            vec.set_address(i, remote)
            if capture is not None:
                capture.write(b"\xff", local, remote)
        try:
            return vec.send(sock)
        except OSError as exc:
            log.debug("NAT keepalives: %s", exc)
            return 0
