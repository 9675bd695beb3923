"""The ticket store interface (I/O, asyncio): what the gateway asks on behalf
of the sans-I/O ticket authority (ikecore.resumption).

Every call runs under a deadline (``asyncio.wait_for``): a store that is down,
refuses, or answers late raises ``StoreError`` (``StoreTimeout`` /
``StoreUnavailable``) and the gateway answers TICKET_NACK or issues no ticket.
It never waits longer than the deadline. ``round_trips`` counts the calls made,
so tests and the benchmark can check the one-round-trip-per-resumption rule.
"""
from __future__ import annotations

import abc
import asyncio

from ..errors import StoreError, StoreTimeout, StoreUnavailable

DEFAULT_DEADLINE = 0.25   # seconds; a resumption must not wait longer on its store
_timeout = getattr(asyncio, "timeout", None)


class TicketStore(abc.ABC):
    """put / take (GETDEL) / set_once (SET NX EX) and the shared key ring."""

    # True for a store in this process that can answer a call at once, without
    # I/O: the gateway then calls its ``*_now`` twins instead of spawning a task
    answers_at_once = False

    def __init__(self, *, deadline: float = DEFAULT_DEADLINE) -> None:
        if not deadline > 0:
            raise ValueError("deadline must be positive")
        self.deadline = deadline
        self.round_trips = 0

    async def _call(self, what: str, coro):
        self.round_trips += 1
        try:
            if _timeout is not None:        # 3.11+: no task of its own, unlike wait_for
                async with _timeout(self.deadline):
                    return await coro
            return await asyncio.wait_for(coro, self.deadline)
        except asyncio.TimeoutError:
            raise StoreTimeout(f"ticket store {what}: no answer within {self.deadline} s") from None
        except StoreError:
            raise
        except Exception as exc:   # the backend's own errors (connection refused, ...)
            if not self._is_backend_error(exc):
                raise
            raise StoreUnavailable(f"ticket store {what}: {type(exc).__name__}: {exc}") from exc

    def _is_backend_error(self, exc: Exception) -> bool:
        return isinstance(exc, OSError)

    @staticmethod
    def _check(key: bytes, ttl: int | None = None) -> None:
        if not isinstance(key, bytes) or not key:
            raise TypeError("store keys are non-empty bytes")
        if ttl is not None and (type(ttl) is not int or ttl <= 0):
            raise ValueError("ttl must be a positive int (seconds)")

    # --- tickets ------------------------------------------------------------------

    async def put(self, key: bytes, value: bytes, ttl: int) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (a by-reference ticket's state)."""
        self._check(key, ttl)
        if not isinstance(value, bytes):
            raise TypeError("value must be bytes")
        await self._call("put", self._put(key, value, ttl))

    async def take(self, key: bytes) -> bytes | None:
        """Get and delete atomically (GETDEL): of two gateways taking one key,
        at most one gets the value."""
        self._check(key)
        return await self._call("take", self._take(key))

    async def set_once(self, key: bytes, ttl: int) -> bool:
        """Create ``key`` for ``ttl`` seconds unless it exists (SET NX EX):
        True for the one caller that created it."""
        self._check(key, ttl)
        return await self._call("set_once", self._set_once(key, ttl))

    # --- the shared key ring (ikecore.store.ringsync) -------------------------------

    async def get_ring(self, generation: int) -> bytes | None:
        """The wrapped ring of that generation, or None."""
        return await self._call("get_ring", self._get_ring(generation))

    async def latest_ring_generation(self) -> int | None:
        """A hint: the newest generation published (newer ones may exist)."""
        return await self._call("latest_ring_generation", self._latest_ring_generation())

    async def put_ring(self, generation: int, blob: bytes, ttl: int) -> bool:
        """Publish generation ``generation`` unless it exists (SET NX EX);
        True for the one gateway whose blob became that generation."""
        if type(generation) is not int or generation <= 0:
            raise ValueError("generation must be a positive int")
        self._check(b"ring", ttl)
        return await self._call("put_ring", self._put_ring(generation, blob, ttl))

    async def close(self) -> None:
        """Release connections (no deadline: nothing waits on it)."""

    # --- backends -----------------------------------------------------------------

    @abc.abstractmethod
    async def _put(self, key: bytes, value: bytes, ttl: int) -> None: ...

    @abc.abstractmethod
    async def _take(self, key: bytes) -> bytes | None: ...

    @abc.abstractmethod
    async def _set_once(self, key: bytes, ttl: int) -> bool: ...

    @abc.abstractmethod
    async def _get_ring(self, generation: int) -> bytes | None: ...

    @abc.abstractmethod
    async def _latest_ring_generation(self) -> int | None: ...

    @abc.abstractmethod
    async def _put_ring(self, generation: int, blob: bytes, ttl: int) -> bool: ...
