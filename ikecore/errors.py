"""The exceptions ikecore raises.

Layered as the architecture asks: crypto errors are named by outcome
(``InvalidTag``), protocol errors carry the notify that reports them, and every
malformed input raises a ``ParseError`` (which is also a ``ValueError``), never
IndexError or struct.error.
"""
from __future__ import annotations


class IkeError(Exception):
    """Base class of every error ikecore raises on purpose."""


# --- build / runtime environment -------------------------------------------------

class BackendError(IkeError):
    """The native core is missing, mismatched, or OpenSSL refused an operation."""


class UnsupportedAlgorithm(IkeError, ValueError):
    """A transform id (or key size) that ikecore does not implement."""


# --- cryptography -------------------------------------------------------------

class CryptoError(IkeError):
    """A cryptographic operation failed."""


class InvalidTag(CryptoError):
    """Authentication failed: the ICV / AEAD tag did not verify."""


class InvalidKey(CryptoError, ValueError):
    """A key of the wrong length or form for its algorithm."""


class LimitExceeded(CryptoError, ValueError):
    """A defined limit was exceeded (prf+ beyond 255 blocks, ...)."""


# --- ESP ---------------------------------------------------------------------

class EspError(IkeError):
    """Base class of ESP data-path errors."""


class ReplayError(EspError):
    """A packet was a replay or fell to the left of the anti-replay window."""


class SequenceExhausted(EspError):
    """The sequence number space is used up: the SA must be rekeyed."""


class MalformedPacket(EspError, ValueError):
    """An ESP packet is truncated, has bad padding, or the wrong SPI."""


class PolicyViolation(EspError):
    """A packet lies outside the traffic selectors of its SA (RFC 4301 §5.2), or
    no SA's selectors cover an outbound packet."""


# --- IKE messages and protocol -------------------------------------------------

class ProtocolError(IkeError):
    """An IKE protocol rule was broken.

    ``notify_type`` / ``notify_data`` say which Notify reports it to the peer
    (None when the RFC says to drop silently).
    """

    notify_type: int | None = None

    def __init__(self, message: str = "", *, notify_type: int | None = None,
                 notify_data: bytes = b"") -> None:
        super().__init__(message)
        if notify_type is not None:
            self.notify_type = notify_type
        self.notify_data = notify_data


class ParseError(ProtocolError, ValueError):
    """Malformed input. Maps to INVALID_SYNTAX (7) unless a subclass says otherwise."""

    notify_type = 7


class UnsupportedCriticalPayload(ParseError):
    """A payload we do not know arrived with the critical bit set (RFC 7296 §2.5)."""

    notify_type = 1

    def __init__(self, payload_type: int) -> None:
        super().__init__(f"unsupported critical payload type {payload_type}",
                         notify_data=bytes([payload_type]))
        self.payload_type = payload_type


class InvalidMajorVersion(ParseError):
    notify_type = 5


class InvalidKePayload(ProtocolError):
    """The peer's KE group is not the one we want; data = our 2-octet group."""

    notify_type = 17

    def __init__(self, wanted_group: int, message: str = "") -> None:
        super().__init__(message or f"INVALID_KE_PAYLOAD, wanted group {wanted_group}",
                         notify_data=wanted_group.to_bytes(2, "big"))
        self.wanted_group = wanted_group


class NoProposalChosen(ProtocolError):
    notify_type = 14


class AuthenticationFailed(ProtocolError):
    notify_type = 24


class TsUnacceptable(ProtocolError):
    notify_type = 38


class TemporaryFailure(ProtocolError):
    notify_type = 43


class NoAdditionalSas(ProtocolError):
    """The responder will hold no more SAs of this kind with the peer (e.g. the
    clone cap of RFC 7791 §5.3); the initiator should not retry until some go."""

    notify_type = 35


class PeerError(ProtocolError):
    """The peer answered with an error notify; ``notify_type`` is what it sent."""


class ConfigError(IkeError, ValueError):
    """A configuration file or value is invalid; the message names file and key."""


class InvalidKeyExchangeData(ParseError):
    """The peer's KE data is not a valid public value for its D-H group
    (wrong length, point off the curve, MODP value out of range, or an
    all-zero X25519 result)."""


# --- IKE message codec (ikecore.protocol) --------------------------------------

class IntegrityCheckFailed(ParseError, InvalidTag):
    """The ICV of an Encrypted (SK) or Encrypted Fragment (SKF) payload did not
    verify. Nothing may be answered: drop the message silently (RFC 7296 §2.21.2,
    §3.14; RFC 7383 §2.6)."""

    notify_type = None


class FragmentError(ParseError):
    """An IKE fragment (RFC 7383) that is out of range, duplicated, inconsistent
    with the others, or over a reassembly limit. Discard it silently (RFC 7383 §2.6)."""

    notify_type = None


class DuplicateFragment(FragmentError):
    """A fragment number that was already received (often a retransmission)."""


# --- session resumption tickets (RFC 5723) and their stores ---------------------

class TicketError(ProtocolError):
    """A ticket was refused. The gateway answers IKE_SESSION_RESUME with an
    unprotected N(TICKET_NACK) (RFC 5723 §4.3.2) and the client falls back to
    a full IKE_SA_INIT; nothing of the ticket is kept."""

    notify_type = 16412   # TICKET_NACK


class TicketMalformed(TicketError):
    """Not a ticket of ours: truncated, oversized, unknown format version or
    kind, or a decrypted state that does not parse."""


class TicketUnknownKey(TicketError):
    """The ticket names a key id the ring does not hold (never ours, or a key
    retired from the ring)."""


class TicketExpired(TicketError):
    """The ticket's protected expiry time has passed (RFC 5723 §6.1)."""


class TicketInvalid(TicketError):
    """The ticket's AEAD tag did not verify: tampered with or forged."""


class TicketReplayed(TicketError):
    """The ticket was already spent (RFC 5723 §4.3.1: single use), on this
    gateway or another one of the cluster."""


class StoreError(IkeError):
    """A ticket store call failed: the store is down, refused, or did not
    answer within its deadline. Resumption then falls back to TICKET_NACK (or
    no ticket is issued); the handshake never waits on it."""


class StoreTimeout(StoreError):
    """The store did not answer within the call's deadline."""


class StoreUnavailable(StoreError):
    """The store could not be reached, or refused the call (full, down)."""


class KeyRingError(IkeError, ValueError):
    """A wrapped ticket key ring does not open: the wrong wrapping key, or a
    blob that was tampered with, truncated or is of another format."""
