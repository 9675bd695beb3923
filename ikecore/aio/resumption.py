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
"""
from __future__ import annotations

import asyncio
import logging
import time

from ..errors import IkeError
from ..protocol.config import IkeConfig
from ..protocol.tickets import TicketCheck, TicketPut

log = logging.getLogger("ikecore.gateway")


class GatewayResumption:
    """Ticket store plumbing for :class:`ikecore.aio.Gateway` (mixin)."""

    #: an ``ikecore.store.TicketStore`` (memory or Redis); None: checks fail (TICKET_NACK)
    ticket_store = None

    def use_tickets(self, store, authority=None) -> None:
        """Spend and take tickets in ``store``; with ``authority`` (an
        ``ikecore.resumption.TicketAuthority``) every connection with
        ``resumption = true`` issues tickets and accepts IKE_SESSION_RESUME."""
        self.ticket_store = store
        if authority is not None:
            for spec in self.config.connections.values():
                if spec.ike.resumption:
                    spec.ike.ticket_authority = authority

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
    def _flush(self) -> None:
        super()._flush()
        endpoint = self.endpoint
        if endpoint is None:
            return
        for op in endpoint.ticket_store_ops():
            self._spawn(self._ticket_op(op))

    async def _ticket_op(self, op) -> None:
        store = self.ticket_store
        if isinstance(op, TicketPut):
            if store is None:
                return
            try:
                await store.put(op.key, op.value, op.ttl)
            except (IkeError, OSError) as exc:
                self.counters["ticket_store_errors"] = self.counters.get("ticket_store_errors", 0) + 1
                log.warning("ticket store: by-reference state not written: %s", exc)
            return
        assert isinstance(op, TicketCheck)
        if store is None:
            result: object = RuntimeError("no ticket store configured")
        else:
            try:
                result = await (store.take(op.take_key) if op.by_reference
                                else store.set_once(op.spend_key, op.ttl))
            except (IkeError, OSError, asyncio.TimeoutError) as exc:   # StoreError and its kin
                self.counters["ticket_store_errors"] = self.counters.get("ticket_store_errors", 0) + 1
                result = exc
        if self.endpoint is None:          # stopped meanwhile
            return
        self.endpoint.ticket_checked(op.token, result, self.loop.time())
        self._flush()


__all__ = ["GatewayResumption"]
