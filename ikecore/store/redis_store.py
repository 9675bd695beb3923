"""The cluster ticket store: Redis through the ``redis`` package's asyncio
client (``pip install ikecore[redis]``).

One command per call, no client-side retries (a retried SET NX or GETDEL could
turn one gateway's success into another's refusal, and the deadline already
bounds the wait): a resumption costs one round trip, SET NX EX by value or
GETDEL by reference (Redis >= 6.2). Keys live under ``prefix``; the ring's
two keys share the hash tag ``{ring}`` so that its script touches one slot.
"""
from __future__ import annotations

from .base import DEFAULT_DEADLINE, TicketStore

try:
    import redis.asyncio as _redis
    from redis.backoff import NoBackoff
    from redis.asyncio.retry import Retry
    from redis.exceptions import RedisError
except ImportError:   # pragma: no cover - exercised only without the extra
    _redis = None

DEFAULT_PREFIX = b"ikecore:tickets:"

# publish a ring generation unless it exists, and move the "latest" hint
# forward (never back), in one atomic round trip
_PUT_RING = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  local latest = tonumber(redis.call('GET', KEYS[2]) or '0')
  if tonumber(ARGV[3]) > latest then redis.call('SET', KEYS[2], ARGV[3]) end
  return 1
end
return 0
"""


class RedisTicketStore(TicketStore):
    """``url`` like ``redis://127.0.0.1:6379/0`` (``rediss://`` for TLS,
    credentials in the URL or Redis ACLs: RFC 5723 §9.1 wants access to the
    store controlled)."""

    def __init__(self, url: str, *, deadline: float = DEFAULT_DEADLINE, prefix: bytes = DEFAULT_PREFIX,
                 max_connections: int = 64) -> None:
        super().__init__(deadline=deadline)
        if _redis is None:
            raise ImportError("RedisTicketStore needs the redis package: pip install 'ikecore[redis]'")
        self.prefix = prefix
        self._client = _redis.Redis.from_url(
            url, socket_timeout=deadline, socket_connect_timeout=deadline,
            retry=Retry(NoBackoff(), 0), max_connections=max_connections, decode_responses=False)
        self._put_ring_script = self._client.register_script(_PUT_RING)

    def _is_backend_error(self, exc: Exception) -> bool:
        return isinstance(exc, (RedisError, OSError))

    async def close(self) -> None:
        await self._client.aclose()

    async def _put(self, key: bytes, value: bytes, ttl: int) -> None:
        await self._client.set(self.prefix + key, value, ex=ttl)

    async def _take(self, key: bytes) -> bytes | None:
        return await self._client.getdel(self.prefix + key)

    async def _set_once(self, key: bytes, ttl: int) -> bool:
        return bool(await self._client.set(self.prefix + key, b"1", nx=True, ex=ttl))

    async def _get_ring(self, generation: int) -> bytes | None:
        return await self._client.get(self.prefix + b"{ring}:%d" % generation)

    async def _latest_ring_generation(self) -> int | None:
        value = await self._client.get(self.prefix + b"{ring}:latest")
        return int(value) if value else None

    async def _put_ring(self, generation: int, blob: bytes, ttl: int) -> bool:
        keys = [self.prefix + b"{ring}:%d" % generation, self.prefix + b"{ring}:latest"]
        return bool(await self._put_ring_script(keys=keys, args=[blob, ttl, generation]))
