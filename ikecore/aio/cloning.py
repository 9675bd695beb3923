"""Cloning IKE SAs in the gateway (RFC 7791). A mixin of
:class:`~ikecore.aio.gateway.Gateway`.

``await gw.clone(conn)`` asks the peer for a clone of ``conn`` (of the IKE SA
that now stands for it) and returns the clone, an :class:`IkeConnection` the
gateway routes and keeps alive like any other, once both ends have it. With
``local_address`` the clone is then moved there with MOBIKE (RFC 7791 §1,
Appendix A.4: clone, then move the clone), which needs MOBIKE negotiated on the
parent; the move is the gateway's ``update_addresses`` (ikecore.aio.mobility).

The responder side needs nothing here: the core answers clone requests within
the configuration's ``clone``/``clone_limit`` (docs/clone.md) and the gateway
adopts the clone from its ``IkeSaCloned`` event.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ..errors import IkeError
from ..protocol import events as ev
from ..protocol.ike_sa import IkeConnection
from .errors import GatewayError

if TYPE_CHECKING:
    from .gateway import Gateway


class GatewayCloning:
    """``clone`` (mixin)."""

    async def clone(self: "Gateway", conn: IkeConnection, local_address=None, *,
                    timeout: float = 10.0) -> IkeConnection:
        """Clone ``conn``; returns the clone. Raises :class:`GatewayError` when
        cloning was not negotiated, the peer refused (its notify in
        ``notify_type``: NO_ADDITIONAL_SAS, TEMPORARY_FAILURE after our retries,
        ...), the IKE SA went away, or no answer came within ``timeout``."""
        self._require_running()
        target = self.current(conn)
        if local_address is not None:
            if not (target.config.mobike and target.peer_mobike):
                raise GatewayError(f"{target.name}: moving a clone needs MOBIKE negotiated on the parent",
                                   target)
        # ours, not a clone the peer asked for at the same moment: we are its original initiator
        done = asyncio.ensure_future(self.wait_for(
            (ev.IkeSaCloned, ev.IkeSaCloneFailed, ev.IkeSaDeleted), target, timeout=timeout,
            predicate=lambda c, e: not isinstance(e, ev.IkeSaCloned) or e.connection.initiator))
        await asyncio.sleep(0)            # the waiter is registered before anything can answer
        try:
            self._command(target, lambda c, now: c.clone(now))
        except IkeError as exc:
            done.cancel()
            raise GatewayError(f"{target.name}: {exc}", target) from None
        try:
            _, event = await done
        except asyncio.TimeoutError:
            raise GatewayError(f"{target.name}: no clone within {timeout:g} s", target) from None
        if isinstance(event, ev.IkeSaCloneFailed):
            raise GatewayError(f"{target.name}: clone refused: {event.reason}", target, event.notify_type)
        if isinstance(event, ev.IkeSaDeleted):
            raise GatewayError(f"{target.name}: the IKE SA went away before its clone: {event.reason}",
                               target, event.notify_type)
        clone = event.connection
        if local_address is not None:
            await self.update_addresses(clone, local=local_address, timeout=timeout)
        return clone


__all__ = ["GatewayCloning"]
