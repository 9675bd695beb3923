"""Issuing and opening tickets (RFC 5723 §6.1), sans-I/O.

The authority never touches a store. It says what the gateway must do with one:
``issue`` returns, by reference, the entry to write; ``open`` returns, by value,
the key the gateway must set once (SET NX EX) to spend the ticket, and by
reference the key it must take (GETDEL) and hand back to ``open_referenced``.
One store round trip per resumption either way. Format: docs/tickets.md.
"""
from __future__ import annotations

import dataclasses
import struct
from typing import Callable, NamedTuple

from ..crypto.ticket import NONCE_LENGTH, TAG_LENGTH
from ..errors import (InvalidTag, MalformedPacket, TicketExpired, TicketInvalid, TicketMalformed,
                      TicketUnknownKey)
from .keyring import TicketKeyRing
from .state import MAX_STATE_LENGTH, TicketState

FORMAT_VERSION = 1
KIND_BY_VALUE = 1        # the state travels in the ticket
KIND_BY_REFERENCE = 2    # the ticket names an entry of the store
KIND_STORED_STATE = 3    # that entry: the state, sealed the same way
_HEADER = struct.Struct(">BB4s")       # version, kind, key id
HEADER_LENGTH = _HEADER.size
_REFERENCE = struct.Struct(">16sQ")    # ticket id, expires_at
_OVERHEAD = HEADER_LENGTH + NONCE_LENGTH + TAG_LENGTH
MIN_TICKET_LENGTH = _OVERHEAD + _REFERENCE.size
MAX_TICKET_LENGTH = _OVERHEAD + MAX_STATE_LENGTH
SPEND_PREFIX = b"spent:"
REFERENCE_PREFIX = b"ticket:"
DEFAULT_CLOCK_SKEW = 60   # seconds the gateways of a cluster may disagree by


class IssuedTicket(NamedTuple):
    ticket: bytes
    # by reference: (ref_key, sealed_state, ttl_seconds) the gateway writes
    # to the store before it sends the ticket; by value: None
    store_put: tuple[bytes, bytes, int] | None
    lifetime: int            # seconds, for TICKET_LT_OPAQUE (RFC 5723 §7.1)
    expires_at: int          # may be earlier than the state's: see TicketAuthority.issue


class OpenedTicket(NamedTuple):
    ticket_id: bytes
    expires_at: int
    # by value: the state, and the replay-cache key to SET NX EX for ttl seconds
    # (refused if it already existed)
    state: TicketState | None = None
    spend_key: bytes | None = None
    ttl: int = 0
    # by reference: the store key to GETDEL; its value goes to open_referenced
    take_key: bytes | None = None

    @property
    def by_reference(self) -> bool:
        return self.take_key is not None


class TicketAuthority:
    """Seals tickets with the ring's current key and opens them with any key
    the ring still holds. Bad tickets raise ``TicketError`` subclasses."""

    def __init__(self, ring: TicketKeyRing, *, by_reference: bool = False,
                 rng: Callable[[int], bytes], clock_skew: int = DEFAULT_CLOCK_SKEW) -> None:
        self.ring = ring
        self.by_reference = by_reference
        self.rng = rng
        self.clock_skew = clock_skew

    # --- issuing ------------------------------------------------------------------

    def issue(self, state: TicketState, now: float) -> IssuedTicket:
        """A ticket for ``state``. Its expiry is cut to the time the current key
        may leave the ring, so that no ticket outlives the key that opens it."""
        if not isinstance(state, TicketState):
            raise TypeError("state must be a TicketState")
        expires_at = min(state.expires_at, self.ring.usable_until(now))
        lifetime = expires_at - int(now)
        if lifetime <= 0:
            raise ValueError("the ticket would be expired when issued")
        if expires_at != state.expires_at:
            state = dataclasses.replace(state, expires_at=expires_at)
        cipher = self.ring.current
        if not self.by_reference:
            ticket = cipher.seal(state.encode(), self.rng(NONCE_LENGTH),
                                 _HEADER.pack(FORMAT_VERSION, KIND_BY_VALUE, cipher.key_id))
            return IssuedTicket(ticket, None, lifetime, expires_at)
        ticket = cipher.seal(_REFERENCE.pack(state.ticket_id, expires_at), self.rng(NONCE_LENGTH),
                             _HEADER.pack(FORMAT_VERSION, KIND_BY_REFERENCE, cipher.key_id))
        # the store holds the state sealed too: reading the store gives no SK_d
        sealed_state = cipher.seal(state.encode(), self.rng(NONCE_LENGTH),
                                   _HEADER.pack(FORMAT_VERSION, KIND_STORED_STATE, cipher.key_id))
        return IssuedTicket(ticket, (REFERENCE_PREFIX + state.ticket_id, sealed_state, lifetime),
                            lifetime, expires_at)

    # --- opening ------------------------------------------------------------------

    def _unseal(self, blob: bytes, kinds: tuple[int, ...], what: str) -> tuple[int, bytes]:
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise TicketMalformed(f"{what} must be bytes")
        blob = bytes(blob)
        if len(blob) < MIN_TICKET_LENGTH:
            raise TicketMalformed(f"{what} truncated ({len(blob)} octets)")
        if len(blob) > MAX_TICKET_LENGTH:
            raise TicketMalformed(f"{what} oversized ({len(blob)} octets)")
        version, kind, key_id = _HEADER.unpack_from(blob, 0)
        if version != FORMAT_VERSION:
            raise TicketMalformed(f"{what} of unknown format version {version}")
        if kind not in kinds:
            raise TicketMalformed(f"{what} of unexpected kind {kind}")
        cipher = self.ring.find(key_id)
        if cipher is None:
            raise TicketUnknownKey(f"{what} sealed with key id {key_id.hex()}, not in the ring")
        try:
            return kind, cipher.open(blob, HEADER_LENGTH)
        except InvalidTag:
            raise TicketInvalid(f"{what} does not verify (tampered with or forged)") from None
        except MalformedPacket:   # unreachable after the length checks; kept total
            raise TicketMalformed(f"{what} truncated") from None

    def _check_expiry(self, expires_at: int, now: float) -> None:
        if now >= expires_at:
            raise TicketExpired(f"ticket expired {int(now) - expires_at} s ago")

    def open(self, ticket: bytes, now: float) -> OpenedTicket:
        """Verify a ticket from TICKET_OPAQUE. The gateway then spends it in the
        store (one round trip) before accepting the resumption."""
        kind, body = self._unseal(ticket, (KIND_BY_VALUE, KIND_BY_REFERENCE), "ticket")
        if kind == KIND_BY_REFERENCE:
            if len(body) != _REFERENCE.size:
                raise TicketMalformed("ticket reference of the wrong length")
            ticket_id, expires_at = _REFERENCE.unpack(body)
            self._check_expiry(expires_at, now)
            return OpenedTicket(ticket_id=ticket_id, expires_at=expires_at,
                                take_key=REFERENCE_PREFIX + ticket_id)
        state = TicketState.decode(body)
        self._check_expiry(state.expires_at, now)
        # the replay record must outlive the ticket on every gateway's clock
        ttl = max(1, state.expires_at - int(now)) + self.clock_skew
        return OpenedTicket(ticket_id=state.ticket_id, expires_at=state.expires_at, state=state,
                            spend_key=SPEND_PREFIX + state.ticket_id, ttl=ttl)

    def open_referenced(self, blob: bytes, now: float, *, ticket_id: bytes | None = None) -> TicketState:
        """The state a by-reference ticket named, from the value the gateway
        took from the store. ``ticket_id`` (the opened ticket's) is checked
        against the state's when given."""
        _, body = self._unseal(blob, (KIND_STORED_STATE,), "stored ticket state")
        state = TicketState.decode(body)
        if ticket_id is not None and state.ticket_id != ticket_id:
            raise TicketInvalid("stored ticket state belongs to another ticket")
        self._check_expiry(state.expires_at, now)
        return state
