"""Session resumption tickets (RFC 5723), sans-I/O: the ticket state, the key
ring and the authority that issues and opens tickets. The stores (I/O) live in
``ikecore.store``; the format and the cluster flow are in docs/tickets.md."""
from .authority import (FORMAT_VERSION, HEADER_LENGTH, KIND_BY_REFERENCE, KIND_BY_VALUE,
                        KIND_STORED_STATE, MAX_TICKET_LENGTH, MIN_TICKET_LENGTH, IssuedTicket,
                        OpenedTicket, TicketAuthority)
from .keyring import WRAPPING_KEY_LENGTH, TicketKeyRing
from .state import TICKET_ID_LENGTH, TicketState

__all__ = [
    "TicketState", "TicketKeyRing", "TicketAuthority", "IssuedTicket", "OpenedTicket",
    "FORMAT_VERSION", "HEADER_LENGTH", "KIND_BY_VALUE", "KIND_BY_REFERENCE", "KIND_STORED_STATE",
    "MAX_TICKET_LENGTH", "MIN_TICKET_LENGTH", "TICKET_ID_LENGTH", "WRAPPING_KEY_LENGTH",
]
