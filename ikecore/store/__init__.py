"""Ticket stores (I/O, asyncio) for session resumption: the in-memory default
and Redis for clusters, the shared key ring's sync flow, and the wrapping-key
file loader. The sans-I/O side is ``ikecore.resumption``; see docs/tickets.md."""
from .base import DEFAULT_DEADLINE, TicketStore
from .keyfile import create_wrapping_key_file, load_wrapping_key
from .memory import MemoryTicketStore
from .redeem import issue_ticket, redeem_ticket
from .redis_store import RedisTicketStore
from .ringsync import SharedKeyRing

__all__ = ["TicketStore", "MemoryTicketStore", "RedisTicketStore", "SharedKeyRing", "load_wrapping_key",
           "create_wrapping_key_file", "issue_ticket", "redeem_ticket", "DEFAULT_DEADLINE"]
