"""Restart policy: ``start = true`` connections are initiated at start-up and,
with ``restart``, again whenever their IKE SA ends, backing off while they
fail. A mixin of :class:`~ikecore.aio.gateway.Gateway`."""
from __future__ import annotations

import asyncio
import logging

from ..protocol.ike_sa import IkeConnection
from .config import ConnectionSpec
from .errors import GatewayError

log = logging.getLogger("ikecore.gateway")

# the first retry after a failed initiation, and the most the back-off grows to (seconds)
RESTART_FIRST_DELAY = 2.0
RESTART_MAX_DELAY = 60.0


class RestartPolicy:
    """Keeps ``start``/``restart`` connections up (mixin)."""

    async def _start_connection(self, spec: ConnectionSpec) -> None:
        """``start = true`` (and ``restart``): initiate, and try again (backing off)
        while it fails."""
        delay = RESTART_FIRST_DELAY
        # a reload that removed or replaced the connection ends the loop
        while self.running and not self._stopping and self.config.connections.get(spec.name) is spec:
            try:
                await self.initiate(spec.name)
                self.connection_failures.pop(spec.name, None)
                return
            except (GatewayError, OSError, asyncio.TimeoutError) as exc:
                log.warning("%s: initiation failed: %s; retrying in %.0f s", spec.name, exc, delay)
                self.note_failure(spec.name, str(exc), retry_at=self.loop.time() + delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_MAX_DELAY)

    def _start_other_children(self, conn: IkeConnection, spec: ConnectionSpec) -> None:
        """The IKE SA is up with its first Child SA: create the connection's
        other children marked ``start`` (CREATE_CHILD_SA each; the window
        queues them). They come back with the IKE SA when ``restart`` does."""
        if not spec.start_children:
            return
        have = {c.name for c in self.child_sas(conn)}
        for name in spec.start_children:
            if name not in have:
                log.info("%s: starting Child SA %s", spec.name, name)
                self.create_child(conn, name)

    def _restart_if_kept(self, conn: IkeConnection, reason: str) -> None:
        """The IKE SA of a ``restart`` connection ended: initiate it again, unless
        it was replaced (IKE rekey) or the gateway is stopping. (``delete``
        forgets the connection first: an operator's delete is no failure.)"""
        name = self._kept_name(conn) if conn.replaced_by is None else None
        if name is None:
            return
        del self._kept_up[name]
        spec = self.config.connections.get(name)
        if spec is not None and spec.keep_up and self.running and not self._stopping:
            log.info("%s: IKE SA ended (%s); initiating again", name, reason)
            self._spawn(self._start_connection(spec))

    def _kept_name(self, conn: IkeConnection) -> str | None:
        """The restart connection whose IKE SA ``conn`` is now, if any."""
        current = self.current(conn)
        for name, kept in self._kept_up.items():
            if self.current(kept) is current:
                return name
        return None
