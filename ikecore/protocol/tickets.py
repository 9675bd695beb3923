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

from dataclasses import dataclass, field

from .config import Identity
from .negotiation import IkeSuite

# RFC 5723 §4.3.3 leaves the signed octets ambiguous (docs/resumption.md):
AUTH_FORM_RFC = "rfc"            # IKE_SESSION_RESUME message | peer nonce | prf(SK_px, IDx')
AUTH_FORM_MESSAGE = "message"    # the IKE_SESSION_RESUME message alone (libreswan 5.x)


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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
