"""Session resumption (RFC 5723) in the asyncio gateway (mixin): the ticket store
calls the sans-I/O endpoint asks for, the wall clock tickets need, and resuming
a connection that holds a ticket (docs/resumption.md, "What the I/O layer does").

- Gateway role: every ``TicketCheck`` the endpoint hands out becomes one store
  call (``set_once`` by value, ``take`` by reference) in its own task; the answer,
  a store error or the store's deadline (``ikecore.store``: StoreTimeout) goes
  back through ``endpoint.ticket_checked`` and TICKET_NACK follows any failure.
  ``TicketPut`` (a by-reference ticket's state) is written the same way. The
  loop never waits on the store.
- Client role: ``connect`` (so ``initiate`` and the restart policy) resumes when
  the endpoint holds a usable ticket for the connection, else runs a full
  handshake; a failed resumption falls back by itself in the core.
- Time: each connection's ``IkeConfig.wall_clock`` maps the loop clock to unix
  time (tickets carry absolute expiries), set once at start.
- Configuration (``[resumption]``, ``GatewayConfig.resumption``): ``start``
  builds the store (memory or Redis, each call under ``store_deadline``), the
  key ring shared through it (``SharedKeyRing``: wrapped under the configured
  wrapping key, or a random one for the memory store) and the authority, and
  runs the ring's sync loop (adopt and rotate) as a task; ``stop`` ends the loop
  and closes the store. A store that is down at start delays only the ring:
  resumptions get TICKET_NACK, and no tickets are issued, until it loads.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time

from ..errors import ConfigError, IkeError, KeyRingError, StoreError
from ..protocol.config import IkeConfig
from ..protocol.tickets import TicketCheck, TicketPut

log = logging.getLogger("ikecore.gateway")


class GatewayResumption:
    """Ticket store plumbing for :class:`ikecore.aio.Gateway` (mixin)."""

    #: an ``ikecore.store.TicketStore`` (memory or Redis); None: checks fail (TICKET_NACK)
    ticket_store = None
    #: the ``ikecore.store.SharedKeyRing`` built from ``[resumption]`` (None: not configured)
    ticket_ring = None
    ticket_authority = None
    _ring_task: asyncio.Task | None = None
    _ring_stop: asyncio.Event | None = None
    _ring_kick: asyncio.Event | None = None
    _owns_ticket_store = False

    #: retry period of the ring sync while the store is down (the ring's own period can be long)
    RING_RETRY = 2.0

    def use_tickets(self, store, authority=None) -> None:
        """Spend and take tickets in ``store``; with ``authority`` (an
        ``ikecore.resumption.TicketAuthority``) every connection with
        ``resumption = true`` issues tickets and accepts IKE_SESSION_RESUME."""
        self.ticket_store = store
        if authority is not None:
            for spec in self.config.connections.values():
                if spec.ike.resumption:
                    spec.ike.ticket_authority = authority

    # --------------------------------------------------------- configuration --
    async def _start_tickets(self) -> None:
        """Build the store, the shared ring and the authority from
        ``config.resumption`` (nothing when it is absent or disabled, or when
        ``use_tickets`` already gave a store). Raises ConfigError when the store
        holds a ring the wrapping key does not open."""
        spec = self.config.resumption
        if spec is None or not spec.enabled or self.ticket_store is not None:
            return
        from ..store import MemoryTicketStore, RedisTicketStore, SharedKeyRing
        if spec.shared:
            store = RedisTicketStore(spec.store, deadline=spec.store_deadline)
            wrapping_key = spec.wrapping_key
        else:
            store = MemoryTicketStore(max_entries=spec.store_max_entries, deadline=spec.store_deadline)
            # the ring never leaves this process, unless a file was configured anyway
            wrapping_key = spec.wrapping_key or os.urandom(32)
        ring = SharedKeyRing(store, wrapping_key, rng=self.rng, rotation=spec.key_rotation, keep=spec.keep_keys)
        self.ticket_store, self.ticket_ring, self._owns_ticket_store = store, ring, True
        try:
            await ring.sync(time.time())
        except StoreError as exc:
            self._count_ring_sync_error()
            log.warning("ticket store %s: %s; TICKET_NACK and no tickets until the key ring loads",
                        _safe_url(spec.store), exc)
        except KeyRingError as exc:
            self.ticket_store, self.ticket_ring = None, None
            await store.close()
            raise ConfigError(f"{self.config.source}: resumption.wrapping_key_file: the store holds a key ring "
                              f"this key does not open ({exc}); every gateway of a cluster needs the same "
                              "key file") from None
        if ring.ring is not None:
            self._install_authority()
        self._ring_stop, self._ring_kick = asyncio.Event(), asyncio.Event()
        self._ring_task = self._spawn(self._ring_loop())
        log.info("session resumption: tickets by %s, store %s, lifetime %gs, key rotation %gs",
                 spec.mode, _safe_url(spec.store), spec.ticket_lifetime, spec.key_rotation)

    def _count_ring_sync_error(self) -> None:
        self.counters["ticket_ring_sync_errors"] = self.counters.get("ticket_ring_sync_errors", 0) + 1

    def _install_authority(self) -> None:
        from ..resumption import TicketAuthority
        spec = self.config.resumption
        authority = TicketAuthority(self.ticket_ring.ring, by_reference=spec.mode == "reference", rng=self.rng)
        self.ticket_authority = authority
        for conn_spec in self.config.connections.values():
            if conn_spec.ike.resumption:
                conn_spec.ike.ticket_authority = authority

    async def _ring_loop(self) -> None:
        """Follow and rotate the shared ring until stop. A failed ticket store
        call wakes it early (the store may have lost the ring: a restarted Redis
        without persistence); while the store is down it retries every
        RING_RETRY seconds, keeping the ring it holds."""
        shared, stop, kick = self.ticket_ring, self._ring_stop, self._ring_kick
        while not stop.is_set():
            kick.clear()
            ok = False                  # False: the store failed, retry soon
            try:
                await shared.sync(time.time())
                ok = True
                if self.ticket_authority is None:
                    self._install_authority()
                    log.info("ticket key ring loaded (generation %d): issuing tickets", shared.ring.generation)
            except StoreError as exc:
                self._count_ring_sync_error()
                log.warning("ticket key ring sync failed: %s", exc)
            except KeyRingError as exc:         # not the store's fault: retrying soon would not help
                ok = True
                self._count_ring_sync_error()
                log.error("ticket key ring: %s (is the wrapping key the cluster's?)", exc)
            # after a failure only the retry period counts (failing resumptions must not
            # turn into a sync each); after a success, a store error wakes the loop
            waiting = (kick.wait() if ok else stop.wait())
            try:
                await asyncio.wait_for(waiting, shared.sync_interval if ok else min(shared.sync_interval,
                                                                                     self.RING_RETRY))
            except asyncio.TimeoutError:
                pass

    def _store_failed(self) -> None:
        self.counters["ticket_store_errors"] = self.counters.get("ticket_store_errors", 0) + 1
        if self._ring_kick is not None:
            self._ring_kick.set()

    async def _stop_tickets(self) -> None:
        """End the ring loop and close the store this gateway built."""
        task, self._ring_task = self._ring_task, None
        if task is not None:
            self._ring_stop.set()
            self._ring_kick.set()
            if not task.done():
                task.cancel()
            await asyncio.wait([task])
        if self._owns_ticket_store and self.ticket_store is not None:
            store, self.ticket_store = self.ticket_store, None
            self._owns_ticket_store = False
            try:
                await store.close()
            except (IkeError, OSError) as exc:
                log.debug("ticket store close: %s", exc)

    def _prepare_resumption(self) -> None:
        """Give every connection a wall clock: loop time plus a fixed offset, taken
        once (a jump of the system clock later does not move ticket expiries)."""
        offset = time.time() - self.loop.time()
        for spec in self.config.connections.values():
            if spec.ike.wall_clock is None:
                spec.ike.wall_clock = lambda now, offset=offset: now + offset

    def _connect_or_resume(self, config: IkeConfig, local, remote, now: float, *, child, remote_natt_port):
        endpoint = self.endpoint
        ticket = endpoint.tickets.get(config.name) if config.resumption else None
        if ticket is not None and ticket.usable(config.wall_time(now)):
            log.info("%s: resuming with a ticket", config.name)
            return endpoint.resume(config, local, remote, now, child=child, remote_natt_port=remote_natt_port)
        return endpoint.connect(config, local, remote, now, child=child, remote_natt_port=remote_natt_port)

    # ------------------------------------------------------------ store calls --
    def _flush(self, *, arm: bool = True) -> None:
        """Send, handle events, and give the store its work. A store in this
        process (``answers_at_once``: the memory store) is answered right here,
        and what the answers produce is flushed in turn; one across the network
        (Redis) gets a task per call. A task, and the deadline's own task, per
        resumption cost more CPU than the rest of it through the daemon."""
        for _ in range(100):
            super()._flush(arm=arm)
            endpoint = self.endpoint
            if endpoint is None:
                return
            ops = endpoint.ticket_store_ops()
            if not ops:
                return
            store = self.ticket_store
            if store is None or not store.answers_at_once:
                for op in ops:
                    self._spawn(self._ticket_op(op))
                return
            for op in ops:
                if isinstance(op, TicketPut):
                    try:
                        store.put_now(op.key, op.value, op.ttl)
                    except (IkeError, OSError) as exc:
                        self._put_failed(exc)
                    continue
                try:
                    result = (store.take_now(op.take_key) if op.by_reference
                              else store.set_once_now(op.spend_key, op.ttl))
                except (IkeError, OSError) as exc:
                    self._store_failed()
                    result = exc
                endpoint.ticket_checked(op.token, result, self.loop.time())

    def _put_failed(self, exc: Exception) -> None:
        self._store_failed()
        log.warning("ticket store: by-reference state not written: %s", exc)

    async def _ticket_op(self, op) -> None:
        store = self.ticket_store
        if isinstance(op, TicketPut):
            if store is None:
                return
            try:
                await store.put(op.key, op.value, op.ttl)
            except (IkeError, OSError) as exc:
                self._put_failed(exc)
            return
        assert isinstance(op, TicketCheck)
        if store is None:
            result: object = RuntimeError("no ticket store configured")
        else:
            try:
                result = await (store.take(op.take_key) if op.by_reference
                                else store.set_once(op.spend_key, op.ttl))
            except (IkeError, OSError, asyncio.TimeoutError) as exc:   # StoreError and its kin
                self._store_failed()
                result = exc
        if self.endpoint is None:          # stopped meanwhile
            return
        self.endpoint.ticket_checked(op.token, result, self.loop.time())
        self._flush()


def _safe_url(url: str) -> str:
    """The store URL without its password, for logs."""
    from urllib.parse import urlsplit, urlunsplit
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


__all__ = ["GatewayResumption"]
