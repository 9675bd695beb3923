"""The embedded ticket store: one gateway's memory, bounded in entries, every
entry with an expiry. The default when no cluster store is configured."""
from __future__ import annotations

import heapq
import time
from typing import Callable

from ..errors import StoreUnavailable
from .base import DEFAULT_DEADLINE, TicketStore

DEFAULT_MAX_ENTRIES = 100_000
_LATEST = b"\0ring:latest"


class MemoryTicketStore(TicketStore):
    """At most ``max_entries`` live entries. When full, expired entries are
    swept; if it is still full the call fails (StoreUnavailable) instead of
    evicting: dropping a replay record would let a spent ticket in again."""

    def __init__(self, *, max_entries: int = DEFAULT_MAX_ENTRIES, deadline: float = DEFAULT_DEADLINE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(deadline=deadline)
        if type(max_entries) is not int or max_entries < 1:
            raise ValueError("max_entries must be a positive int")
        self.max_entries = max_entries
        self.clock = clock
        self._data: dict[bytes, tuple[float, bytes]] = {}
        self._expiry: list[tuple[float, bytes]] = []    # heap; stale rows skipped on sweep
        self._latest: int | None = None

    def __len__(self) -> int:
        return len(self._data)

    def _live(self, key: bytes, now: float) -> tuple[float, bytes] | None:
        entry = self._data.get(key)
        if entry is not None and entry[0] <= now:
            del self._data[key]
            entry = None
        return entry

    def _sweep(self, now: float) -> None:
        heap = self._expiry
        while heap and heap[0][0] <= now:
            expires, key = heapq.heappop(heap)
            entry = self._data.get(key)
            if entry is not None and entry[0] == expires:
                del self._data[key]

    def _store(self, key: bytes, value: bytes, ttl: int, now: float) -> None:
        if key not in self._data:
            self._sweep(now)
            if len(self._data) >= self.max_entries:
                raise StoreUnavailable(f"memory ticket store full ({self.max_entries} entries)")
        expires = now + ttl
        self._data[key] = (expires, value)
        heapq.heappush(self._expiry, (expires, key))
        if len(self._expiry) > 2 * len(self._data) + 64:   # rows of overwritten or taken entries
            self._expiry = [(e, k) for k, (e, _) in self._data.items()]
            heapq.heapify(self._expiry)

    async def _put(self, key: bytes, value: bytes, ttl: int) -> None:
        self._store(key, value, ttl, self.clock())

    async def _take(self, key: bytes) -> bytes | None:
        entry = self._live(key, self.clock())
        if entry is None:
            return None
        del self._data[key]
        return entry[1]

    async def _set_once(self, key: bytes, ttl: int) -> bool:
        now = self.clock()
        if self._live(key, now) is not None:
            return False
        self._store(key, b"1", ttl, now)
        return True

    async def _get_ring(self, generation: int) -> bytes | None:
        entry = self._live(b"\0ring:%d" % generation, self.clock())
        return entry[1] if entry else None

    async def _latest_ring_generation(self) -> int | None:
        return self._latest

    async def _put_ring(self, generation: int, blob: bytes, ttl: int) -> bool:
        now = self.clock()
        key = b"\0ring:%d" % generation
        if self._live(key, now) is not None:
            return False
        self._store(key, blob, ttl, now)
        self._latest = max(self._latest or 0, generation)
        return True
