"""Session resumption data the sans-I/O core shares with the layer above (RFC 5723).

- :class:`ClientTicket`: what a client keeps with a ticket (the ticket is opaque
  to it, so the "from the ticket" state of RFC 5723 §5 travels beside it).
- :class:`TicketCheck` / :class:`TicketPut`: the store operations a responder
  needs done, taken from ``IkeEndpoint.ticket_store_ops()``. A check pauses an
  IKE_SESSION_RESUME request until ``IkeEndpoint.ticket_checked(token, ...)``
  answers it; the core never waits and never does I/O.
- :class:`ResumedSa`: what an IKE SA made by IKE_SESSION_RESUME carries until
  (and after) its IKE_AUTH: the identities and the AUTH form.

Times: ``expires_at`` values are unix seconds (``IkeConfig.wall_time``); the
core's own ``now`` stays the monotonic clock its caller drives it with.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .._frozen import frozen_dataclass
from ..errors import ParseError
from .config import Identity
from .negotiation import IkeSuite

_CLIENT_TICKET_VERSION = 1
_CT_FIXED = struct.Struct(">BqBBHHHHH")   # version, expiry (ms), IDi/IDr types, suite
_U16 = struct.Struct(">H")

# RFC 5723 §4.3.3 leaves the signed octets ambiguous (docs/resumption.md):
AUTH_FORM_RFC = "rfc"            # IKE_SESSION_RESUME message | peer nonce | prf(SK_px, IDx')
AUTH_FORM_MESSAGE = "message"    # the IKE_SESSION_RESUME message alone (libreswan 5.x)


# one per ticket a client receives: the cheaper __init__ (ikecore/_frozen.py)
@frozen_dataclass
class ClientTicket:
    """A ticket held by the client, with the state needed to resume with it."""

    ticket: bytes = field(repr=False)
    expires_at: float                 # unix seconds
    local_id: Identity                # our IDi when the ticket was issued
    remote_id: Identity               # the gateway's IDr
    suite: IkeSuite                   # the resumed IKE SA's transforms
    sk_d: bytes = field(repr=False)   # SK_d of the SA the ticket was issued on
    config_name: str = ""

    def usable(self, wall_now: float) -> bool:
        """A client must not present a ticket it knows expired (RFC 5723 §4.3.1)."""
        return wall_now < self.expires_at

    def __repr__(self) -> str:
        return (f"ClientTicket({self.config_name!r}, {len(self.ticket)} octets, "
                f"expires_at={self.expires_at:.0f}, <keys hidden>)")

    def encode(self) -> bytes:
        """Octets a client can keep across a restart (they hold SK_d: store them as a
        key, readable by the owner only). ``decode`` is the inverse."""
        s = self.suite
        fixed = _CT_FIXED.pack(_CLIENT_TICKET_VERSION, int(self.expires_at * 1000),
                               int(self.local_id.id_type), int(self.remote_id.id_type), int(s.encr_id),
                               int(s.key_bits or 0), int(s.prf_id), int(s.integ_id), int(s.dh_group))
        parts = [fixed]
        for blob in (self.local_id.data, self.remote_id.data, self.sk_d, self.ticket,
                     self.config_name.encode()):
            if len(blob) > 0xFFFF:
                raise ValueError("a client ticket field longer than 65535 octets")
            parts += [_U16.pack(len(blob)), bytes(blob)]
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> "ClientTicket":
        """A ticket kept with ``encode``; ParseError for anything else."""
        data = bytes(data)
        if len(data) < _CT_FIXED.size:
            raise ParseError("client ticket truncated")
        (version, expires_ms, idi_type, idr_type, encr, bits, prf_id, integ,
         group) = _CT_FIXED.unpack_from(data, 0)
        if version != _CLIENT_TICKET_VERSION:
            raise ParseError(f"client ticket of unknown version {version}")
        at, fields = _CT_FIXED.size, []
        for _ in range(5):
            if at + 2 > len(data):
                raise ParseError("client ticket truncated")
            (n,) = _U16.unpack_from(data, at)
            if at + 2 + n > len(data):
                raise ParseError("client ticket truncated")
            fields.append(data[at + 2:at + 2 + n])
            at += 2 + n
        if at != len(data):
            raise ParseError("trailing octets after a client ticket")
        idi, idr, sk_d, ticket, name = fields
        if not sk_d or not ticket:
            raise ParseError("client ticket without SK_d or ticket")
        try:
            config_name = name.decode()
        except UnicodeDecodeError:
            raise ParseError("client ticket with a connection name that is not UTF-8") from None
        return cls(ticket=ticket, expires_at=expires_ms / 1000.0, local_id=Identity(idi_type, idi),
                   remote_id=Identity(idr_type, idr),
                   suite=IkeSuite(encr, bits or None, prf_id, integ, group), sk_d=sk_d,
                   config_name=config_name)


@frozen_dataclass      # one per resumption a gateway answers
class TicketCheck:
    """A spend (by value) or a take (by reference) the I/O layer must do before an
    IKE_SESSION_RESUME goes on; answer with ``IkeEndpoint.ticket_checked(token, result, now)``.

    - by value (``spend_key`` set): ``SET spend_key 1 NX EX ttl``; result True if it
      was set (first use), False if it existed (a replay), or the exception.
    - by reference (``take_key`` set): ``GETDEL take_key``; result the bytes found,
      None if there were none (unknown or spent), or the exception.
    """

    token: int
    spend_key: bytes | None = None
    ttl: int = 0
    take_key: bytes | None = None

    @property
    def by_reference(self) -> bool:
        return self.take_key is not None


@frozen_dataclass
class TicketPut:
    """A by-reference ticket was issued: the I/O layer stores ``value`` under ``key``
    for ``ttl`` seconds (``SET key value EX ttl``); no answer is expected."""

    key: bytes
    value: bytes = field(repr=False)
    ttl: int


@dataclass
class ResumedSa:
    """The ticket state an IKE SA made by IKE_SESSION_RESUME authenticates against
    (RFC 5723 §4.3.3): IDi and IDr must be the ticket's; ``auth_form`` is the form
    of the signed octets (the responder learns it from the initiator's AUTH)."""

    local_id: Identity
    remote_id: Identity
    auth_form: str | None = None
    auth_method: int = 2
    ticket_id: bytes = b""            # responder: the ticket it was resumed with
    reauth_at: float = float("inf")   # responder: the old SA's re-authentication bound


__all__ = ["ClientTicket", "TicketCheck", "TicketPut", "ResumedSa", "AUTH_FORM_RFC", "AUTH_FORM_MESSAGE"]
