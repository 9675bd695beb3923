"""Sharing the ticket key ring across a cluster through a ticket store.

Every gateway holds the same ring. The store keeps each generation, wrapped
under the gateways' common wrapping key, at ``ring:<generation>`` (SET NX EX:
written once, never overwritten) and a hint ``ring:latest``. ``sync``:

1. Start, or catch up: load the generation the ``ring:latest`` hint names
   when it is newer than ours; with none at all, publish generation 1 (SET NX:
   of gateways starting together one wins, the others load its ring).
2. Follow: adopt every newer generation another gateway has published (the
   hint may lag: generations are probed one by one from ours).
3. Rotate: when the ring's next key is due, build generation n+1 and publish it
   with SET NX. The first gateway to see the period pass wins; a gateway that
   loses discards its candidate and adopts the winner's. No two gateways fight:
   a generation is written exactly once.

Because the key that becomes current at a rotation was already the ring's
*next* key for a whole period, every gateway that synced during that period can
open the tickets sealed with it at once, before it syncs again. Run ``sync``
at least once per ``sync_interval`` (a quarter of the rotation period).
See docs/tickets.md.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from ..errors import KeyRingError, StoreError, StoreUnavailable
from ..resumption.keyring import TicketKeyRing
from .base import TicketStore

log = logging.getLogger(__name__)

_MAX_FOLLOW = 64   # generations adopted in one sync; more means a gateway slept for days


class SharedKeyRing:
    """Keeps one ``TicketKeyRing`` (``.ring``, mutated in place so that a
    ``TicketAuthority`` built on it sees each adoption) in step with the store."""

    def __init__(self, store: TicketStore, wrapping_key: bytes, *, rng: Callable[[int], bytes],
                 rotation: float = 3600.0, keep: int = 2, key_bits: int = 256) -> None:
        self.store = store
        self._wrapping_key = bytes(wrapping_key)
        self.rng = rng
        self.rotation, self.keep, self.key_bits = rotation, keep, key_bits
        self.ring: TicketKeyRing | None = None

    def __repr__(self) -> str:
        return f"SharedKeyRing({self.ring!r})"

    @property
    def ttl(self) -> int:
        """How long the store keeps one generation: past the retirement of
        every key it holds."""
        rotation = self.ring.rotation if self.ring else self.rotation
        keep = self.ring.keep if self.ring else self.keep
        return int(rotation * (keep + 3))

    @property
    def sync_interval(self) -> float:
        return (self.ring.rotation if self.ring else self.rotation) / 4

    def _import(self, blob: bytes) -> TicketKeyRing:
        return TicketKeyRing.import_wrapped(blob, self._wrapping_key, rng=self.rng)

    async def _publish_or_load(self, candidate: TicketKeyRing) -> TicketKeyRing:
        """The ring of candidate's generation: ours if the store took it, else
        the one another gateway published first."""
        won = await self.store.put_ring(candidate.generation, candidate.export_wrapped(self._wrapping_key),
                                        self.ttl)
        if won:
            log.info("ticket key ring: published generation %d", candidate.generation)
            return candidate
        blob = await self.store.get_ring(candidate.generation)
        if blob is None:
            raise StoreUnavailable(f"ticket key ring generation {candidate.generation} vanished")
        theirs = self._import(blob)
        return theirs

    async def sync(self, now: float) -> TicketKeyRing:
        """One round of the flow above. Raises StoreError (store down: keep
        the ring as it is and try again later) or KeyRingError (the store holds
        a ring this gateway's wrapping key does not open: a configuration error)."""
        # the hint first: a gateway that slept past the store's expiry of the
        # generations after its own must not build on its stale ring
        latest = await self.store.latest_ring_generation() or 0
        if latest and (self.ring is None or latest > self.ring.generation):
            blob = await self.store.get_ring(latest)
            if blob is not None:
                newest = self._import(blob)
                if self.ring is None:
                    self.ring = newest
                else:
                    self.ring.adopt(newest)
        published = False
        if self.ring is None:
            candidate = TicketKeyRing(rng=self.rng, now=now, rotation=self.rotation, keep=self.keep,
                                      key_bits=self.key_bits, generation=latest + 1)
            ring = await self._publish_or_load(candidate)
            if ring is not candidate:
                candidate.discard()
            published = True
            self.ring = ring
        ring = self.ring
        for _ in range(_MAX_FOLLOW):
            blob = await self.store.get_ring(ring.generation + 1)
            if blob is None:
                break
            ring.adopt(self._import(blob))
            log.info("ticket key ring: adopted generation %d", ring.generation)
        if not published and latest < ring.generation and await self.store.get_ring(ring.generation) is None:
            # the store lost the ring (a Redis restarted without persistence): publish
            # ours again (SET NX), so that a gateway starting now adopts it instead of
            # founding a ring of its own that no other gateway opens
            if await self.store.put_ring(ring.generation, ring.export_wrapped(self._wrapping_key), self.ttl):
                log.info("ticket key ring: republished generation %d", ring.generation)
        if ring.due(now):
            candidate = ring.rotated(now)
            try:
                winner = await self._publish_or_load(candidate)
            except BaseException:
                candidate.discard(keep=ring)
                raise
            if winner is not candidate:
                candidate.discard(keep=ring)
            ring.adopt(winner)
        return ring

    async def run(self, *, clock: Callable[[], float] = time.time, stop: asyncio.Event | None = None) -> None:
        """Sync every ``sync_interval`` until ``stop`` is set; store trouble is
        logged and retried, the ring kept as it is meanwhile."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                await self.sync(clock())
            except (StoreError, KeyRingError) as exc:
                log.warning("ticket key ring sync failed: %s", exc)
            try:
                await asyncio.wait_for(stop.wait(), self.sync_interval)
            except asyncio.TimeoutError:
                pass
