"""The state a ticket carries (RFC 5723 §5, the "from the ticket" rows) and its
octet encoding inside the AEAD (docs/tickets.md, "State encoding").

All integers are big-endian. The encoding is exact: every octet is accounted
for, so trailing or missing octets are refused as malformed.
"""
from __future__ import annotations

import struct
from dataclasses import field
from typing import Callable

from .._frozen import frozen_dataclass
from ..errors import TicketMalformed

TICKET_ID_LENGTH = 16
MAX_ID_LENGTH = 1024          # IDi / IDr data; a DER DN of a long subject fits
MAX_SK_D_LENGTH = 64          # prf output of PRF_HMAC_SHA2_512
_FIXED = struct.Struct(">16sQBBBHHHHH")   # ticket id .. dh group
_U16 = struct.Struct(">H")
MAX_STATE_LENGTH = _FIXED.size + 2 + MAX_ID_LENGTH + 2 + MAX_ID_LENGTH + 1 + MAX_SK_D_LENGTH
_UINT64_MAX = (1 << 64) - 1
_BYTES_FIELDS = ("ticket_id", "idi", "idr", "sk_d")
_INT_LIMITS = (("expires_at", _UINT64_MAX), ("idi_type", 255), ("idr_type", 255), ("auth_method", 255),
               ("prf_id", 0xFFFF), ("encr_id", 0xFFFF), ("encr_key_bits", 0xFFFF), ("integ_id", 0xFFFF),
               ("dh_group", 0xFFFF))


# one per ticket issued: the cheaper __init__ (13 fields), __post_init__ still checks them
@frozen_dataclass
class TicketState:
    """What the gateway needs to resume an IKE SA (RFC 5723 §5)."""

    ticket_id: bytes                # 16 random octets: the single-use identity
    expires_at: int                 # unix time, seconds (64-bit in the format)
    idi_type: int                   # ID payload type (RFC 7296 §3.5) and data
    idi: bytes
    idr_type: int
    idr: bytes
    auth_method: int                # how the initiator authenticated the original IKE SA
    prf_id: int
    encr_id: int
    encr_key_bits: int
    integ_id: int
    dh_group: int
    sk_d: bytes = field(repr=False)  # the old SK_d: a secret, never in a repr

    def __post_init__(self) -> None:
        # runs for every ticket a gateway issues: one pass over the fields, and the
        # field-by-field walk (for the exact error) only when that pass fails
        b, i = bytes, int
        ticket_id, idi, idr, sk_d = self.ticket_id, self.idi, self.idr, self.sk_d   # each read once
        if not (isinstance(ticket_id, b) and isinstance(idi, b) and isinstance(idr, b)
                and isinstance(sk_d, b) and len(ticket_id) == TICKET_ID_LENGTH
                and 0 < len(sk_d) <= MAX_SK_D_LENGTH and len(idi) <= MAX_ID_LENGTH
                and len(idr) <= MAX_ID_LENGTH
                and type(v := self.expires_at) is i and 0 <= v <= _UINT64_MAX
                and type(v := self.idi_type) is i and 0 <= v <= 255
                and type(v := self.idr_type) is i and 0 <= v <= 255
                and type(v := self.auth_method) is i and 0 <= v <= 255
                and type(v := self.prf_id) is i and 0 <= v <= 0xFFFF
                and type(v := self.encr_id) is i and 0 <= v <= 0xFFFF
                and type(v := self.encr_key_bits) is i and 0 <= v <= 0xFFFF
                and type(v := self.integ_id) is i and 0 <= v <= 0xFFFF
                and type(v := self.dh_group) is i and 0 <= v <= 0xFFFF):
            self._raise_first_error()

    def _raise_first_error(self) -> None:
        for name in _BYTES_FIELDS:
            if not isinstance(getattr(self, name), bytes):
                raise TypeError(f"{name} must be bytes")
        if len(self.ticket_id) != TICKET_ID_LENGTH:
            raise ValueError(f"ticket_id must be {TICKET_ID_LENGTH} octets")
        if not 0 < len(self.sk_d) <= MAX_SK_D_LENGTH:
            raise ValueError(f"sk_d must be 1..{MAX_SK_D_LENGTH} octets")
        for name in ("idi", "idr"):
            if len(getattr(self, name)) > MAX_ID_LENGTH:
                raise ValueError(f"{name} longer than {MAX_ID_LENGTH} octets")
        for name, top in _INT_LIMITS:
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= top:
                raise ValueError(f"{name} must be an int in 0..{top}")
        raise AssertionError("unreachable: the one-pass check and the walk disagree")

    @classmethod
    def new(cls, rng: Callable[[int], bytes], *, expires_at: int, **fields) -> "TicketState":
        """A state with a fresh random ticket id."""
        return cls(ticket_id=rng(TICKET_ID_LENGTH), expires_at=int(expires_at), **fields)

    def encode(self) -> bytes:
        return b"".join((
            _FIXED.pack(self.ticket_id, self.expires_at, self.auth_method, self.idi_type, self.idr_type,
                        self.prf_id, self.encr_id, self.encr_key_bits, self.integ_id, self.dh_group),
            _U16.pack(len(self.idi)), self.idi,
            _U16.pack(len(self.idr)), self.idr,
            bytes([len(self.sk_d)]), self.sk_d,
        ))

    @classmethod
    def decode(cls, data: bytes) -> "TicketState":
        """The inverse of ``encode``; ``TicketMalformed`` for anything else."""
        if len(data) < _FIXED.size or len(data) > MAX_STATE_LENGTH:
            raise TicketMalformed("ticket state of impossible length")
        (ticket_id, expires_at, auth_method, idi_type, idr_type, prf_id, encr_id, encr_key_bits,
         integ_id, dh_group) = _FIXED.unpack_from(data, 0)
        at = _FIXED.size
        idi, at = _take16(data, at, "IDi")
        idr, at = _take16(data, at, "IDr")
        if at >= len(data):
            raise TicketMalformed("ticket state truncated before SK_d")
        n = data[at]
        if not 0 < n <= MAX_SK_D_LENGTH or at + 1 + n != len(data):
            raise TicketMalformed("ticket state SK_d length does not match")
        # every field is in range by construction (struct widths, the length
        # checks above): skip __post_init__, which costs more than the AEAD
        state = object.__new__(cls)
        state.__dict__.update(ticket_id=ticket_id, expires_at=expires_at, idi_type=idi_type, idi=idi,
                              idr_type=idr_type, idr=idr, auth_method=auth_method, prf_id=prf_id,
                              encr_id=encr_id, encr_key_bits=encr_key_bits, integ_id=integ_id,
                              dh_group=dh_group, sk_d=data[at + 1:])
        return state


def _take16(data: bytes, at: int, what: str) -> tuple[bytes, int]:
    if at + 2 > len(data):
        raise TicketMalformed(f"ticket state truncated before {what}")
    (n,) = _U16.unpack_from(data, at)
    if n > MAX_ID_LENGTH or at + 2 + n > len(data):
        raise TicketMalformed(f"ticket state {what} length does not match")
    return data[at + 2:at + 2 + n], at + 2 + n
