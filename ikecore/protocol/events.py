"""What the sans-I/O core reports to the layer above (``IkeConnection.next_event``)."""
from __future__ import annotations

from dataclasses import field

from .._frozen import frozen_dataclass
from .child_sa import ChildSa
from .config import Identity
from .negotiation import IkeSuite


class Event:
    """Base class of every event."""


# events are made several times a handshake: the cheaper __init__ (ikecore/_frozen.py)
_event = frozen_dataclass


@_event
class IkeSaEstablished(Event):
    spi_i: bytes
    spi_r: bytes
    initiator: bool          # we are the original initiator
    suite: IkeSuite
    local_id: Identity
    remote_id: Identity
    virtual_ip: str | None = None   # the address our peer assigned us (CP), if any
    resumed: bool = False           # made by IKE_SESSION_RESUME (RFC 5723), not a full handshake


@_event
class IkeSaRekeyed(Event):
    """The IKE SA was replaced; ``connection`` is the new one (it holds the Child SAs)."""
    old_spis: tuple[bytes, bytes]
    new_spis: tuple[bytes, bytes]
    suite: IkeSuite
    connection: object = field(default=None, repr=False, compare=False)


@_event
class IkeSaCloned(Event):
    """RFC 7791: a new IKE SA (``connection``) beside the old one, which stays."""
    parent_spis: tuple[bytes, bytes]
    clone_spis: tuple[bytes, bytes]
    suite: IkeSuite
    connection: object = field(default=None, repr=False, compare=False)


@_event
class IkeSaCloneFailed(Event):
    """Our clone request for the IKE SA (``spi_i``, ``spi_r``) was refused or its
    answer was unusable; the IKE SA itself stays as it was."""
    spi_i: bytes
    spi_r: bytes
    notify_type: int | None
    reason: str


@_event
class IkeSaDeleted(Event):
    spi_i: bytes
    spi_r: bytes
    reason: str              # "deleted by peer", "deleted", "peer unresponsive", "authentication failed", ...
    notify_type: int | None = None


@_event
class ChildSaInstalled(Event):
    child: ChildSa


@_event
class ChildSaRekeyed(Event):
    old: ChildSa
    new: ChildSa


@_event
class ChildSaDeleted(Event):
    child: ChildSa
    reason: str


@_event
class ChildSaFailed(Event):
    """A Child SA could not be created; the IKE SA stays up."""
    name: str
    notify_type: int | None
    reason: str


@_event
class PeerAlive(Event):
    """A liveness check (empty INFORMATIONAL) was answered."""
    spi_i: bytes
    spi_r: bytes


@_event
class TicketReceived(Event):
    """Client: the gateway granted a ticket (N(TICKET_LT_OPAQUE), RFC 5723 §4.2);
    the endpoint keeps it for the connection (``IkeEndpoint.tickets[config name]``)."""
    lifetime: int                    # seconds, relative, as the gateway said
    ticket: object = field(repr=False)   # ikecore.protocol.tickets.ClientTicket


@_event
class TicketRefused(Event):
    """Client: the gateway answered a TICKET_REQUEST with TICKET_NACK (no ticket) or
    TICKET_ACK (not now: asked again later)."""
    notify_type: int
    reason: str


@_event
class TicketIssued(Event):
    """Gateway: a ticket went out on this IKE SA (ids and times only, no secrets).
    A by-reference ticket's store write is in ``IkeEndpoint.ticket_store_ops()``."""
    ticket_id: bytes
    expires_at: int                  # unix seconds
    lifetime: int
    store_put: object = field(default=None, repr=False, compare=False)   # tickets.TicketPut or None


@_event
class ResumeFailed(Event):
    """Client: IKE_SESSION_RESUME did not work (TICKET_NACK, no answer, an error, or
    no usable ticket); the same connection now runs a full IKE_SA_INIT under the new
    SPI ``spi_i`` (``old_spi_i`` was the resumption's)."""
    reason: str
    old_spi_i: bytes
    spi_i: bytes
    notify_type: int | None = None


__all__ = ["Event", "IkeSaEstablished", "IkeSaRekeyed", "IkeSaCloned", "IkeSaCloneFailed", "IkeSaDeleted", "ChildSaInstalled",
           "ChildSaRekeyed", "ChildSaDeleted", "ChildSaFailed", "PeerAlive", "TicketReceived", "TicketRefused",
           "TicketIssued", "ResumeFailed"]


@_event
class IkeSaMoved(Event):
    """MOBIKE (RFC 4555): the IKE SA and its Child SAs now use this address pair
    (each ``(host, port)``); ESP follows."""
    spi_i: bytes
    spi_r: bytes
    local: tuple
    remote: tuple
    previous_local: tuple
    previous_remote: tuple
    nat_local: bool = False
    nat_remote: bool = False


@_event
class MobikeFailed(Event):
    """An address update (ours, or the peer's return-routability check) did not
    succeed; the IKE SA stays on ``local``/``remote``."""
    spi_i: bytes
    spi_r: bytes
    reason: str
    local: tuple
    remote: tuple
    notify_type: int | None = None


__all__ += ["IkeSaMoved", "MobikeFailed"]
