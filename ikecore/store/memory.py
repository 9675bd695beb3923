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
        # a subclass that changes how calls are answered (a slow or failing store in
        # tests) is answered the asynchronous way, through what it changed
        cls = type(self)
        self.answers_at_once = all(getattr(cls, name) is getattr(MemoryTicketStore, name)
                                   for name in ("_call", "put", "take", "set_once", "_put", "_take", "_set_once"))

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

    # -- answered at once (answers_at_once): the same checks and counts as the
    # -- async calls, without a task or a deadline (nothing here can be late)

    def put_now(self, key: bytes, value: bytes, ttl: int) -> None:
        self._check(key, ttl)
        if not isinstance(value, bytes):
            raise TypeError("value must be bytes")
        self.round_trips += 1
        self._put_sync(key, value, ttl)

    def take_now(self, key: bytes) -> bytes | None:
        self._check(key)
        self.round_trips += 1
        return self._take_sync(key)

    def set_once_now(self, key: bytes, ttl: int) -> bool:
        self._check(key, ttl)
        self.round_trips += 1
        return self._set_once_sync(key, ttl)

    def _put_sync(self, key: bytes, value: bytes, ttl: int) -> None:
        self._store(key, value, ttl, self.clock())

    def _take_sync(self, key: bytes) -> bytes | None:
        entry = self._live(key, self.clock())
        if entry is None:
            return None
        del self._data[key]
        return entry[1]

    def _set_once_sync(self, key: bytes, ttl: int) -> bool:
        now = self.clock()
        if self._live(key, now) is not None:
            return False
        self._store(key, b"1", ttl, now)
        return True

    async def _put(self, key: bytes, value: bytes, ttl: int) -> None:
        self._put_sync(key, value, ttl)

    async def _take(self, key: bytes) -> bytes | None:
        return self._take_sync(key)

    async def _set_once(self, key: bytes, ttl: int) -> bool:
        return self._set_once_sync(key, ttl)

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
