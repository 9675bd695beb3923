"""The gateway's side of a ticket: the store calls around the sans-I/O
``TicketAuthority``, one round trip each way.

``redeem_ticket`` is what a gateway runs on IKE_SESSION_RESUME: open the ticket
(no I/O), then spend it in the store, then hand back the state. Any failure
raises a ``TicketError`` (answer TICKET_NACK) or ``StoreError`` (answer
TICKET_NACK too: a store that cannot confirm single use must not let a ticket
in). ``issue_ticket`` writes a by-reference ticket's state before the ticket
goes out; a store failure there means: send TICKET_NACK or no ticket.
"""
from __future__ import annotations

from ..errors import TicketReplayed
from ..resumption import IssuedTicket, TicketAuthority, TicketState
from .base import TicketStore


async def issue_ticket(authority: TicketAuthority, store: TicketStore, state: TicketState,
                       now: float) -> IssuedTicket:
    """A ticket for ``state``; by reference its state is in the store first."""
    issued = authority.issue(state, now)
    if issued.store_put is not None:
        key, value, ttl = issued.store_put
        await store.put(key, value, ttl)
    return issued


async def redeem_ticket(authority: TicketAuthority, store: TicketStore, ticket: bytes,
                        now: float) -> TicketState:
    """Open and spend ``ticket``: one store round trip (SET NX EX by value,
    GETDEL by reference). A second redemption, here or on any gateway sharing
    the store, raises ``TicketReplayed``."""
    opened = authority.open(ticket, now)
    if opened.by_reference:
        blob = await store.take(opened.take_key)
        if blob is None:
            raise TicketReplayed("ticket already used, or its state expired from the store")
        return authority.open_referenced(blob, now, ticket_id=opened.ticket_id)
    if not await store.set_once(opened.spend_key, opened.ttl):
        raise TicketReplayed("ticket already used")
    return opened.state
