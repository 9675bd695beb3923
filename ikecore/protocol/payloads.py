"""IKEv2 payloads (RFC 7296 §3.2-§3.16, RFC 7383 §2.5) as dataclasses.

Each payload class knows its own body: ``encode_body()`` gives the octets after
the 4-octet generic payload header, a ``_parse_*`` function reads them back,
and ``validate()`` applies the RFC's semantic rules (KE length for the group,
SPI sizes, traffic selector ranges, ...). The generic header and the payload
chain are handled by :mod:`ikecore.protocol.message`.

Layouts are field tables (:class:`Layout`) with the RFC diagram beside them.
RESERVED fields are written as zero and ignored on receipt (RFC 7296 §3.2),
so a message re-encodes byte for byte whenever its reserved bits were zero.
Numbers nobody registered (notify types, transform ids, attribute types, ...)
are kept as plain ints and written back unchanged.

Parsers work on offsets into the one ``bytes`` object of the message
(``buf[off:end]`` is the payload body); only the final field values are
sliced out.
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from typing import ClassVar, Union

from ..errors import (FragmentError, InvalidKeyExchangeData, InvalidKePayload, ParseError,
                      ProtocolError)
from .constants import (MAX_NONCE_LENGTH, MIN_NONCE_LENGTH, CfgType, CpAttributeType,
                        EapCode, IdType, NotifyType, PayloadType, ProtocolId, TsType)


class Layout:
    """A fixed-size field table: ``[(name, struct code), ...]`` in wire order.

    ``None`` names a RESERVED field (written with a pad code ``x``, so it is
    zero on output and ignored on input). ``Layout.struct`` packs and unpacks
    the named fields in order.
    """

    __slots__ = ("title", "fields", "struct", "size", "names", "pack", "unpack_from")

    def __init__(self, title: str, fields: list[tuple[str | None, str]]) -> None:
        self.title = title
        self.fields = tuple(fields)
        self.struct = struct.Struct(">" + "".join(code for _, code in fields))
        self.size = self.struct.size
        self.names = tuple(name for name, _ in fields if name is not None)
        self.pack = self.struct.pack
        self.unpack_from = self.struct.unpack_from

    def __repr__(self) -> str:
        return f"Layout({self.title!r}, {self.size} octets: {', '.join(self.names)})"


def _fail(what: str) -> ParseError:
    return ParseError(what)


# ---------------------------------------------------------------------------------
# Generic payload header (RFC 7296 §3.2)
#
#                      1                   2                   3
#  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# | Next Payload  |C|  RESERVED   |         Payload Length        |
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
GENERIC_HEADER = Layout("generic payload header",
                        [("next_payload", "B"), ("flags", "B"), ("length", "H")])
CRITICAL = 0x80


class Payload:
    """Base of every payload. ``payload_type`` is the wire number."""

    __slots__ = ()
    payload_type: ClassVar[int]

    def encode_body(self) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def validate(self) -> None:
        """Raise :class:`ParseError` (with the notify it maps to) if the payload
        breaks a rule of its RFC. Structure is already checked by the parser."""


# ---------------------------------------------------------------------------------
# Security Association (RFC 7296 §3.3)
#
# SA payload = generic header | Proposal substructures
#
# Proposal Substructure (§3.3.1)
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# | Last Substruc |   RESERVED    |         Proposal Length       |
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# | Proposal Num  |  Protocol ID  |    SPI Size   |Num  Transforms|
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# ~                        SPI (variable)                         ~
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# ~                        <Transforms>                           ~
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
PROPOSAL = Layout("proposal substructure", [
    ("last_substruc", "B"), (None, "x"), ("proposal_length", "H"),
    ("proposal_num", "B"), ("protocol_id", "B"), ("spi_size", "B"), ("num_transforms", "B")])
LAST_PROPOSAL, MORE_PROPOSALS = 0, 2

# Transform Substructure (§3.3.2)
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# | Last Substruc |   RESERVED    |        Transform Length       |
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# |Transform Type |   RESERVED    |          Transform ID         |
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# ~                      Transform Attributes                     ~
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
TRANSFORM = Layout("transform substructure", [
    ("last_substruc", "B"), (None, "x"), ("transform_length", "H"),
    ("transform_type", "B"), (None, "x"), ("transform_id", "H")])
LAST_TRANSFORM, MORE_TRANSFORMS = 0, 3
_proposal_pack, _transform_pack = PROPOSAL.pack, TRANSFORM.pack
_PROPOSAL_SIZE, _TRANSFORM_SIZE = PROPOSAL.size, TRANSFORM.size

# Data Attributes (§3.3.5)
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# |A|       Attribute Type        |    AF=0  Attribute Length     |
# |F|                             |    AF=1  Attribute Value      |
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# |                   AF=0  Attribute Value                       |
# |                   AF=1  Not Transmitted                       |
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
ATTRIBUTE = Layout("data attribute", [("af_type", "H"), ("length_or_value", "H")])
ATTRIBUTE_TV = 0x8000
KEY_LENGTH_ATTRIBUTE = 14

_PROTOCOL_SPI_SIZES = {ProtocolId.IKE: (0, 8), ProtocolId.AH: (4,), ProtocolId.ESP: (4,)}


@dataclass(slots=True)
class TransformAttribute:
    """``value`` is an int for TV (AF=1, 2-octet) attributes, bytes for TLV ones."""
    type: int
    value: Union[int, bytes]

    def encode(self) -> bytes:
        if isinstance(self.value, int):
            return ATTRIBUTE.pack(ATTRIBUTE_TV | self.type, self.value)
        return ATTRIBUTE.pack(self.type, len(self.value)) + self.value


@dataclass(slots=True)
class Transform:
    """One transform: ``Transform(TransformType.ENCR, Encr.AES_CBC, [TransformAttribute(14, 128)])``."""
    type: int
    id: int
    attributes: list = field(default_factory=list)

    @classmethod
    def with_key_length(cls, type: int, id: int, bits: int) -> "Transform":
        return cls(type, id, [TransformAttribute(KEY_LENGTH_ATTRIBUTE, bits)])

    @property
    def key_length(self) -> int | None:
        """The Key Length attribute in bits, or None when absent (RFC 7296 §3.3.5)."""
        for attr in self.attributes:
            if attr.type == KEY_LENGTH_ATTRIBUTE and isinstance(attr.value, int):
                return attr.value
        return None

    def encode(self, last: bool) -> bytes:
        attributes = self.attributes
        if not attributes:
            return _transform_pack(LAST_TRANSFORM if last else MORE_TRANSFORMS, _TRANSFORM_SIZE,
                                   self.type, self.id)
        attrs = b"".join([a.encode() for a in attributes])
        return _transform_pack(LAST_TRANSFORM if last else MORE_TRANSFORMS,
                               _TRANSFORM_SIZE + len(attrs), self.type, self.id) + attrs


@dataclass(slots=True)
class Proposal:
    """``Proposal(num, protocol_id, spi, transforms)``; ``spi`` is b"" in IKE_SA_INIT."""
    num: int
    protocol_id: int
    spi: bytes = b""
    transforms: list = field(default_factory=list)

    def transforms_of(self, transform_type: int) -> list:
        return [t for t in self.transforms if t.type == transform_type]

    def encode(self, last: bool) -> bytes:
        transforms = self.transforms
        n = len(transforms)
        parts = [t.encode(False) for t in transforms[:-1]]
        if transforms:
            parts.append(transforms[-1].encode(True))
        body = b"".join(parts)
        spi = self.spi
        return _proposal_pack(LAST_PROPOSAL if last else MORE_PROPOSALS, _PROPOSAL_SIZE + len(spi) + len(body),
                              self.num, self.protocol_id, len(spi), n) + spi + body


@dataclass(slots=True)
class SaPayload(Payload):
    """``SaPayload(proposals=[Proposal(1, ProtocolId.IKE, b"", [Transform(...), ...])])``."""
    proposals: list = field(default_factory=list)
    payload_type: ClassVar[int] = PayloadType.SA

    def encode_body(self) -> bytes:
        proposals = self.proposals
        if len(proposals) == 1:            # every SA payload but an initiator's offer
            return proposals[0].encode(True)
        n = len(proposals)
        return b"".join([p.encode(i == n - 1) for i, p in enumerate(proposals)])

    def validate(self) -> None:
        proposals = self.proposals
        if not proposals:
            raise _fail("SA payload without proposals")
        # RFC 7296 §3.3.1: the first proposal is number 1, each next one is one
        # more; a response carries the single accepted proposal with its number.
        if len(proposals) > 1:
            for i, p in enumerate(proposals, 1):
                if p.num != i:
                    raise _fail(f"proposal numbers must be 1, 2, 3, ...: got {p.num} at {i}")
        elif proposals[0].num == 0:
            raise _fail("proposal number 0")
        for p in proposals:
            sizes = _PROTOCOL_SPI_SIZES.get(p.protocol_id)
            if sizes is not None and len(p.spi) not in sizes:
                raise _fail(f"SPI size {len(p.spi)} is invalid for protocol {p.protocol_id}")
            if not p.transforms:
                raise _fail(f"proposal {p.num} without transforms")
            for t in p.transforms:
                for a in t.attributes:
                    if a.type == KEY_LENGTH_ATTRIBUTE and not isinstance(a.value, int):
                        raise _fail("Key Length attribute must use the TV format")


def _parse_attributes(buf: bytes, off: int, end: int) -> list:
    attrs = []
    unpack = ATTRIBUTE.unpack_from
    while off < end:
        if off + 4 > end:
            raise _fail("truncated transform attribute")
        af_type, lv = unpack(buf, off)
        if af_type & ATTRIBUTE_TV:
            attrs.append(TransformAttribute(af_type & 0x7FFF, lv))
            off += 4
        else:
            nxt = off + 4 + lv
            if nxt > end:
                raise _fail("transform attribute runs past its transform")
            attrs.append(TransformAttribute(af_type, buf[off + 4:nxt]))
            off = nxt
    return attrs


def _parse_sa(buf: bytes, off: int, end: int) -> SaPayload:
    proposals = []
    p_unpack = PROPOSAL.unpack_from
    t_unpack = TRANSFORM.unpack_from
    while off < end:
        if off + 8 > end:
            raise _fail("truncated proposal")
        last, plen, num, proto, spi_size, n_transforms = p_unpack(buf, off)
        p_end = off + plen
        if plen < 8 + spi_size or p_end > end:
            raise _fail(f"proposal length {plen} is wrong")
        if last == LAST_PROPOSAL:
            if p_end != end:
                raise _fail("data after the last proposal")
        elif last != MORE_PROPOSALS or p_end == end:
            raise _fail(f"bad Last Substruc {last} in proposal")
        t_off = off + 8 + spi_size
        spi = buf[off + 8:t_off]
        transforms = []
        while t_off < p_end:
            if t_off + 8 > p_end:
                raise _fail("truncated transform")
            t_last, tlen, ttype, tid = t_unpack(buf, t_off)
            t_end = t_off + tlen
            if tlen < 8 or t_end > p_end:
                raise _fail(f"transform length {tlen} is wrong")
            if t_last == LAST_TRANSFORM:
                if t_end != p_end:
                    raise _fail("data after the last transform")
            elif t_last != MORE_TRANSFORMS or t_end == p_end:
                raise _fail(f"bad Last Substruc {t_last} in transform")
            attrs = _parse_attributes(buf, t_off + 8, t_end) if tlen > 8 else []
            transforms.append(Transform(ttype, tid, attrs))
            t_off = t_end
        if len(transforms) != n_transforms:
            raise _fail(f"proposal says {n_transforms} transforms but holds {len(transforms)}")
        proposals.append(Proposal(num, proto, spi, transforms))
        off = p_end
    return SaPayload(proposals)


# ---------------------------------------------------------------------------------
# Key Exchange (RFC 7296 §3.4)
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# |   Diffie-Hellman Group Num    |           RESERVED            |
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# ~                       Key Exchange Data                       ~
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
KE = Layout("KE", [("group", "H"), (None, "2x")])

# Key Exchange Data length per group: MODP = modulus length (RFC 7296 §3.4,
# RFC 2409, RFC 3526, RFC 5114), ECP = x | y (RFC 5903 §7, RFC 5114, RFC 6954),
# Curve25519/448 (RFC 8031 §3.1).
KE_DATA_LENGTH = {
    1: 96, 2: 128, 5: 192, 14: 256, 15: 384, 16: 512, 17: 768, 18: 1024,
    19: 64, 20: 96, 21: 132, 22: 128, 23: 256, 24: 256, 25: 48, 26: 56,
    27: 56, 28: 64, 29: 96, 30: 128, 31: 32, 32: 56,
}


@dataclass(slots=True)
class KePayload(Payload):
    group: int
    data: bytes
    payload_type: ClassVar[int] = PayloadType.KE

    def encode_body(self) -> bytes:
        return KE.pack(self.group) + self.data

    def validate(self) -> None:
        want = KE_DATA_LENGTH.get(self.group)
        if want is not None and len(self.data) != want:
            raise InvalidKeyExchangeData(
                f"KE data for group {self.group} must be {want} octets, not {len(self.data)}")
        if not self.data:
            raise _fail("KE payload without key exchange data")

    def require_group(self, wanted_group: int) -> None:
        """Raise InvalidKePayload(wanted_group) - the notify carries our group
        (RFC 7296 §1.2, §3.10.1) - unless the peer used that group."""
        if self.group != wanted_group:
            raise InvalidKePayload(wanted_group,
                                   f"KE for group {self.group}, we want {wanted_group}")


def _parse_ke(buf: bytes, off: int, end: int) -> KePayload:
    if end - off < 4:
        raise _fail("truncated KE payload")
    return KePayload(KE.unpack_from(buf, off)[0], buf[off + 4:end])


# ---------------------------------------------------------------------------------
# Identification - IDi / IDr (RFC 7296 §3.5)
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# |   ID Type     |                 RESERVED                      |
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# ~                   Identification Data                         ~
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
ID = Layout("ID", [("id_type", "B"), (None, "3x")])
_ID_LENGTHS = {IdType.ID_IPV4_ADDR: 4, IdType.ID_IPV6_ADDR: 16}


@dataclass(slots=True)
class IdPayload(Payload):
    """Base of :class:`IdiPayload` and :class:`IdrPayload` (same layout)."""
    id_type: int
    data: bytes

    @property
    def payload_type(self) -> int:
        raise TypeError("IdPayload is abstract: use IdiPayload or IdrPayload")

    def encode_body(self) -> bytes:
        return ID.pack(self.id_type) + self.data

    def validate(self) -> None:
        want = _ID_LENGTHS.get(self.id_type)
        if want is not None and len(self.data) != want:
            raise _fail(f"ID type {self.id_type} needs {want} octets of data")
        if not self.data:
            raise _fail("ID payload without identification data")

    @property
    def id_body(self) -> bytes:
        """IDx' of RFC 7296 §2.15: the payload without its generic header."""
        return self.encode_body()


@dataclass(slots=True)
class IdiPayload(IdPayload):
    payload_type: ClassVar[int] = PayloadType.IDI


@dataclass(slots=True)
class IdrPayload(IdPayload):
    payload_type: ClassVar[int] = PayloadType.IDR


def _parse_id(cls):
    def parse(buf: bytes, off: int, end: int) -> IdPayload:
        if end - off < 4:
            raise _fail("truncated ID payload")
        return cls(buf[off], buf[off + 4:end])
    return parse


# ---------------------------------------------------------------------------------
# Certificate (§3.6) and Certificate Request (§3.7): same layout
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# | Cert Encoding |                                               |
# +-+-+-+-+-+-+-+-+                                               |
# ~             Certificate Data / Certification Authority        ~
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
CERT = Layout("CERT / CERTREQ", [("encoding", "B")])


@dataclass(slots=True)
class CertPayload(Payload):
    encoding: int
    data: bytes
    payload_type: ClassVar[int] = PayloadType.CERT

    def encode_body(self) -> bytes:
        return bytes((self.encoding,)) + self.data


@dataclass(slots=True)
class CertReqPayload(Payload):
    """For X.509 (encoding 4) ``data`` is a list of 20-octet SHA-1 hashes of CA
    public keys (RFC 7296 §3.7): see :attr:`ca_hashes`."""
    encoding: int
    data: bytes = b""
    payload_type: ClassVar[int] = PayloadType.CERTREQ

    def encode_body(self) -> bytes:
        return bytes((self.encoding,)) + self.data

    @property
    def ca_hashes(self) -> list[bytes]:
        d = self.data
        return [d[i:i + 20] for i in range(0, len(d) - len(d) % 20, 20)]


def _parse_cert(cls):
    def parse(buf: bytes, off: int, end: int):
        if end - off < 1:
            raise _fail("truncated CERT/CERTREQ payload")
        return cls(buf[off], buf[off + 1:end])
    return parse


# ---------------------------------------------------------------------------------
# Authentication (RFC 7296 §3.8)
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# | Auth Method   |                RESERVED                       |
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# ~                      Authentication Data                      ~
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
AUTH = Layout("AUTH", [("method", "B"), (None, "3x")])


@dataclass(slots=True)
class AuthPayload(Payload):
    method: int
    data: bytes
    payload_type: ClassVar[int] = PayloadType.AUTH

    def encode_body(self) -> bytes:
        return AUTH.pack(self.method) + self.data

    def validate(self) -> None:
        if not self.data:
            raise _fail("AUTH payload without authentication data")
        # RFC 7427 §3: 1-octet length | AlgorithmIdentifier | signature
        if self.method == 14 and self.data[0] + 1 > len(self.data):
            raise _fail("AlgorithmIdentifier runs past the AUTH payload")


def _parse_auth(buf: bytes, off: int, end: int) -> AuthPayload:
    if end - off < 4:
        raise _fail("truncated AUTH payload")
    return AuthPayload(buf[off], buf[off + 4:end])


# ---------------------------------------------------------------------------------
# Nonce (RFC 7296 §3.9): body = Nonce Data, 16..256 octets
@dataclass(slots=True)
class NoncePayload(Payload):
    data: bytes
    payload_type: ClassVar[int] = PayloadType.NONCE

    def encode_body(self) -> bytes:
        return self.data

    def validate(self) -> None:
        if not MIN_NONCE_LENGTH <= len(self.data) <= MAX_NONCE_LENGTH:
            raise _fail(f"nonce of {len(self.data)} octets (RFC 7296 §3.9: 16..256)")


def _parse_nonce(buf: bytes, off: int, end: int) -> NoncePayload:
    return NoncePayload(buf[off:end])


# ---------------------------------------------------------------------------------
# Notify (RFC 7296 §3.10)
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# |  Protocol ID  |   SPI Size    |      Notify Message Type      |
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# ~                Security Parameter Index (SPI)                 ~
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# ~                       Notification Data                       ~
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
NOTIFY = Layout("Notify", [("protocol_id", "B"), ("spi_size", "B"), ("notify_type", "H")])

# Notification Data length (min, max) where the RFC fixes it.
NOTIFY_DATA_LENGTH = {
    NotifyType.INVALID_KE_PAYLOAD: (2, 2),            # RFC 7296 §3.10.1
    NotifyType.INVALID_MESSAGE_ID: (4, 4),            # RFC 7296 §3.10.1
    NotifyType.SET_WINDOW_SIZE: (4, 4),               # RFC 7296 §3.10.1
    NotifyType.NAT_DETECTION_SOURCE_IP: (20, 20),     # SHA-1, RFC 7296 §2.23
    NotifyType.NAT_DETECTION_DESTINATION_IP: (20, 20),
    NotifyType.COOKIE: (1, 64),                       # RFC 7296 §2.6
    NotifyType.ADDITIONAL_IP4_ADDRESS: (4, 4),        # RFC 4555 §4.2.2
    NotifyType.ADDITIONAL_IP6_ADDRESS: (16, 16),
    NotifyType.COOKIE2: (8, 64),                      # RFC 4555 §4.2.5
    NotifyType.TICKET_LT_OPAQUE: (5, 65535),          # 4-octet lifetime | ticket, RFC 5723 §7.1
    NotifyType.TICKET_OPAQUE: (1, 65535),             # RFC 5723 §7.2
}
# Notifies about a Child SA that carry its SPI (RFC 7296 §3.10, §3.10.1)
NOTIFY_WITH_CHILD_SPI = frozenset({NotifyType.INVALID_SELECTORS, NotifyType.REKEY_SA,
                                   NotifyType.CHILD_SA_NOT_FOUND})
# bound once: NotifyType.X goes through EnumType.__getattr__ (~75 ns) and every
# received Notify is validated
_SIGNATURE_HASH_ALGORITHMS = NotifyType.SIGNATURE_HASH_ALGORITHMS
_NO_NATS_ALLOWED = NotifyType.NO_NATS_ALLOWED


@dataclass(slots=True)
class NotifyPayload(Payload):
    """``NotifyPayload(protocol_id, spi, notify_type, data)``; all default to
    empty, so ``NotifyPayload(notify_type=NotifyType.COOKIE, data=c)`` reads well."""
    protocol_id: int = 0
    spi: bytes = b""
    notify_type: int = 0
    data: bytes = b""
    payload_type: ClassVar[int] = PayloadType.NOTIFY

    @property
    def is_error(self) -> bool:
        return 0 < self.notify_type < 16384

    @classmethod
    def from_error(cls, error: ProtocolError) -> "NotifyPayload | None":
        """The Notify that reports ``error`` to the peer (None: say nothing)."""
        if error.notify_type is None:
            return None
        return cls(notify_type=error.notify_type, data=getattr(error, "notify_data", b""))

    def encode_body(self) -> bytes:
        return NOTIFY.pack(self.protocol_id, len(self.spi), self.notify_type) + self.spi + self.data

    def validate(self) -> None:
        t = self.notify_type
        if t in NOTIFY_WITH_CHILD_SPI:
            if self.protocol_id not in (ProtocolId.AH, ProtocolId.ESP) or len(self.spi) != 4:
                raise _fail(f"notify {t} needs an AH/ESP protocol and a 4-octet SPI")
        lengths = NOTIFY_DATA_LENGTH.get(t)
        if lengths is not None and not lengths[0] <= len(self.data) <= lengths[1]:
            raise _fail(f"notify {t} with {len(self.data)} octets of data")
        if t == _SIGNATURE_HASH_ALGORITHMS and len(self.data) % 2:
            raise _fail("SIGNATURE_HASH_ALGORITHMS data is a list of 2-octet ids")
        if t == _NO_NATS_ALLOWED and len(self.data) not in (12, 36):
            raise _fail("NO_NATS_ALLOWED data must hold two addresses and two ports")


def _parse_notify(buf: bytes, off: int, end: int) -> NotifyPayload:
    if end - off < 4:
        raise _fail("truncated Notify payload")
    proto, spi_size, ntype = NOTIFY.unpack_from(buf, off)
    spi_end = off + 4 + spi_size
    if spi_end > end:
        raise _fail("Notify SPI runs past the payload")
    return NotifyPayload(proto, buf[off + 4:spi_end], ntype, buf[spi_end:end])


# ---------------------------------------------------------------------------------
# Delete (RFC 7296 §3.11)
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# | Protocol ID   |   SPI Size    |          Num of SPIs          |
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# ~               Security Parameter Index(es) (SPI)              ~
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
DELETE = Layout("Delete", [("protocol_id", "B"), ("spi_size", "B"), ("num_spis", "H")])


@dataclass(slots=True)
class DeletePayload(Payload):
    """``DeletePayload(ProtocolId.IKE)`` deletes the IKE SA; for ESP pass the
    4-octet inbound SPIs. ``spi_size`` follows from them unless given."""
    protocol_id: int
    spis: list = field(default_factory=list)
    spi_size: int | None = None
    payload_type: ClassVar[int] = PayloadType.DELETE

    def __post_init__(self) -> None:
        if self.spi_size is None:
            self.spi_size = (len(self.spis[0]) if self.spis
                             else 0 if self.protocol_id == ProtocolId.IKE else 4)

    def encode_body(self) -> bytes:
        if any(len(s) != self.spi_size for s in self.spis):
            raise ValueError("Delete SPIs must all have the SPI size")
        return DELETE.pack(self.protocol_id, self.spi_size, len(self.spis)) + b"".join(self.spis)

    def validate(self) -> None:
        if self.protocol_id == ProtocolId.IKE:
            if self.spi_size != 0 or self.spis:
                raise _fail("an IKE SA Delete carries no SPIs (RFC 7296 §3.11)")
        elif self.protocol_id in (ProtocolId.AH, ProtocolId.ESP):
            if self.spi_size != 4 or not self.spis:
                raise _fail("an AH/ESP Delete needs 4-octet SPIs")
        else:
            raise _fail(f"Delete for unknown protocol {self.protocol_id}")


def _parse_delete(buf: bytes, off: int, end: int) -> DeletePayload:
    if end - off < 4:
        raise _fail("truncated Delete payload")
    proto, size, count = DELETE.unpack_from(buf, off)
    off += 4
    if end - off != size * count:
        raise _fail(f"Delete holds {end - off} octets for {count} SPIs of {size}")
    if not count:
        return DeletePayload(proto, [], size)
    if not size:
        raise _fail("Delete with SPIs of size 0")
    return DeletePayload(proto, [buf[i:i + size] for i in range(off, end, size)], size)


# ---------------------------------------------------------------------------------
# Vendor ID (RFC 7296 §3.12): body = Vendor ID
@dataclass(slots=True)
class VendorIdPayload(Payload):
    data: bytes
    payload_type: ClassVar[int] = PayloadType.VENDOR_ID

    def encode_body(self) -> bytes:
        return self.data


def _parse_vendor(buf: bytes, off: int, end: int) -> VendorIdPayload:
    return VendorIdPayload(buf[off:end])


# ---------------------------------------------------------------------------------
# Traffic Selector - TSi / TSr (RFC 7296 §3.13)
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# | Number of TSs |                 RESERVED                      |
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# ~                       <Traffic Selectors>                     ~
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#
# Traffic Selector (§3.13.1)
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# |   TS Type     |IP Protocol ID*|       Selector Length         |
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# |           Start Port*         |           End Port*           |
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# ~                         Starting Address*                     ~
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# ~                         Ending Address*                       ~
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
TS_HEADER = Layout("TS", [("num_ts", "B"), (None, "3x")])
SELECTOR = Layout("traffic selector", [("ts_type", "B"), ("ip_protocol", "B"),
                                       ("selector_length", "H"), ("start_port", "H"),
                                       ("end_port", "H")])
SELECTOR_HEAD = Layout("traffic selector head", [("ts_type", "B"), ("octet1", "B"),
                                                 ("selector_length", "H")])
_TS_ADDRESS_LENGTH = {TsType.TS_IPV4_ADDR_RANGE: 4, TsType.TS_IPV6_ADDR_RANGE: 16}
OPAQUE_PORTS = (65535, 0)   # RFC 7296 §3.13.1


@dataclass(slots=True)
class TrafficSelector:
    ts_type: int
    ip_protocol: int
    start_port: int
    end_port: int
    start_addr: bytes
    end_addr: bytes

    @classmethod
    def from_network(cls, network: str, ip_protocol: int = 0, start_port: int = 0,
                     end_port: int = 65535) -> "TrafficSelector":
        """``TrafficSelector.from_network("10.0.0.0/24")`` (or a single address)."""
        net = ipaddress.ip_network(network, strict=False)
        ts_type = TsType.TS_IPV4_ADDR_RANGE if net.version == 4 else TsType.TS_IPV6_ADDR_RANGE
        return cls(ts_type, ip_protocol, start_port, end_port,
                   net.network_address.packed, net.broadcast_address.packed)

    @classmethod
    def from_range(cls, start: str, end: str, ip_protocol: int = 0, start_port: int = 0,
                   end_port: int = 65535) -> "TrafficSelector":
        a, b = ipaddress.ip_address(start), ipaddress.ip_address(end)
        ts_type = TsType.TS_IPV4_ADDR_RANGE if a.version == 4 else TsType.TS_IPV6_ADDR_RANGE
        return cls(ts_type, ip_protocol, start_port, end_port, a.packed, b.packed)

    @property
    def start_address(self):
        return ipaddress.ip_address(self.start_addr)

    @property
    def end_address(self):
        return ipaddress.ip_address(self.end_addr)

    @property
    def is_opaque_ports(self) -> bool:
        return (self.start_port, self.end_port) == OPAQUE_PORTS

    def encode(self) -> bytes:
        return SELECTOR.pack(self.ts_type, self.ip_protocol,
                             8 + len(self.start_addr) + len(self.end_addr),
                             self.start_port, self.end_port) + self.start_addr + self.end_addr

    def validate(self) -> None:
        n = _TS_ADDRESS_LENGTH.get(self.ts_type)
        if n is not None and (len(self.start_addr) != n or len(self.end_addr) != n):
            raise _fail(f"TS type {self.ts_type} needs {n}-octet addresses")
        if self.start_port > self.end_port and not self.is_opaque_ports:
            raise _fail(f"traffic selector ports {self.start_port} > {self.end_port}")
        if self.start_addr > self.end_addr:
            raise _fail("traffic selector start address above its end address")


@dataclass(slots=True)
class UnknownTrafficSelector:
    """A selector of a TS type we do not know (e.g. RFC 4595 Fibre Channel):
    ``data`` is the selector without its TS Type and Selector Length fields
    (octet 1, then octets 4..). Kept so that it can be refused politely
    (TS_UNACCEPTABLE) or passed on unchanged."""
    ts_type: int
    data: bytes

    def encode(self) -> bytes:
        if not self.data:
            raise ValueError("an unknown traffic selector keeps at least its octet 1")
        return SELECTOR_HEAD.pack(self.ts_type, self.data[0], 3 + len(self.data)) + self.data[1:]

    def validate(self) -> None:
        pass


@dataclass(slots=True)
class TsPayload(Payload):
    """Base of :class:`TsiPayload` and :class:`TsrPayload`."""
    selectors: list = field(default_factory=list)

    @property
    def payload_type(self) -> int:
        raise TypeError("TsPayload is abstract: use TsiPayload or TsrPayload")

    def encode_body(self) -> bytes:
        return TS_HEADER.pack(len(self.selectors)) + b"".join([s.encode() for s in self.selectors])

    def validate(self) -> None:
        if not self.selectors:
            raise _fail("TS payload without traffic selectors")
        for s in self.selectors:
            s.validate()


@dataclass(slots=True)
class TsiPayload(TsPayload):
    payload_type: ClassVar[int] = PayloadType.TSI


@dataclass(slots=True)
class TsrPayload(TsPayload):
    payload_type: ClassVar[int] = PayloadType.TSR


def _parse_ts(cls):
    def parse(buf: bytes, off: int, end: int) -> TsPayload:
        if end - off < 4:
            raise _fail("truncated TS payload")
        count = buf[off]
        off += 4
        selectors = []
        unpack = SELECTOR.unpack_from
        for _ in range(count):
            if off + 4 > end:
                raise _fail("traffic selector runs past the TS payload")
            ts_type = buf[off]
            slen = (buf[off + 2] << 8) | buf[off + 3]
            s_end = off + slen
            if slen < 4 or s_end > end:
                raise _fail(f"traffic selector length {slen} is wrong")
            n = _TS_ADDRESS_LENGTH.get(ts_type)
            if n is None:
                selectors.append(UnknownTrafficSelector(ts_type, buf[off + 1:off + 2] + buf[off + 4:s_end]))
            else:
                if slen != 8 + 2 * n:
                    raise _fail(f"TS type {ts_type} selector of {slen} octets")
                _, proto, _, sport, eport = unpack(buf, off)
                selectors.append(TrafficSelector(ts_type, proto, sport, eport,
                                                 buf[off + 8:off + 8 + n], buf[off + 8 + n:s_end]))
            off = s_end
        if off != end:
            raise _fail("data after the last traffic selector")
        return cls(selectors)
    return parse


# ---------------------------------------------------------------------------------
# Encrypted (SK, RFC 7296 §3.14) and Encrypted Fragment (SKF, RFC 7383 §2.5)
#
# SK:  | generic header | IV | encrypted payloads, padding, pad length | ICV |
# SKF: | generic header | Fragment Number (2) | Total Fragments (2) | IV | ... | ICV |
# The generic header's Next Payload is the type of the first inner payload
# (for SKF: in fragment 1 only, 0 in the others).
SKF = Layout("SKF", [("fragment_number", "H"), ("total_fragments", "H")])


@dataclass(slots=True)
class SkPayload(Payload):
    """The Encrypted payload as received: ``data`` = IV | ciphertext | ICV.
    Open it with :meth:`Message.decrypt`; build one by giving a Message
    ``inner`` payloads and an SkCipher."""
    first_payload: int
    data: bytes
    payload_type: ClassVar[int] = PayloadType.SK

    def encode_body(self) -> bytes:
        return bytes(self.data)


@dataclass(slots=True)
class SkfPayload(Payload):
    first_payload: int
    fragment_number: int
    total_fragments: int
    data: bytes
    payload_type: ClassVar[int] = PayloadType.SKF

    def encode_body(self) -> bytes:
        return SKF.pack(self.fragment_number, self.total_fragments) + bytes(self.data)

    def validate(self) -> None:
        if not 1 <= self.fragment_number <= self.total_fragments:
            raise FragmentError(f"fragment {self.fragment_number} of {self.total_fragments}")


# ---------------------------------------------------------------------------------
# Configuration (RFC 7296 §3.15)
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# |   CFG Type    |                    RESERVED                   |
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# ~                   Configuration Attributes                    ~
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#
# Configuration Attribute (§3.15.1)
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# |R|         Attribute Type      |            Length             |
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# ~                             Value                             ~
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
CP = Layout("CP", [("cfg_type", "B"), (None, "3x")])
CP_ATTRIBUTE = Layout("configuration attribute", [("type", "H"), ("length", "H")])
# allowed value lengths (RFC 7296 §3.15.1 table; 0 = "please assign" in a request)
CP_ATTRIBUTE_LENGTHS = {
    CpAttributeType.INTERNAL_IP4_ADDRESS: (0, 4),
    CpAttributeType.INTERNAL_IP4_NETMASK: (0, 4),
    CpAttributeType.INTERNAL_IP4_DNS: (0, 4),
    CpAttributeType.INTERNAL_IP4_NBNS: (0, 4),
    CpAttributeType.INTERNAL_IP4_DHCP: (0, 4),
    CpAttributeType.INTERNAL_IP6_ADDRESS: (0, 17),
    CpAttributeType.INTERNAL_IP6_DNS: (0, 16),
    CpAttributeType.INTERNAL_IP6_DHCP: (0, 16),
    CpAttributeType.INTERNAL_IP4_SUBNET: (0, 8),
    CpAttributeType.INTERNAL_IP6_SUBNET: (17,),
}


@dataclass(slots=True)
class CpAttribute:
    type: int
    value: bytes = b""

    def encode(self) -> bytes:
        return CP_ATTRIBUTE.pack(self.type & 0x7FFF, len(self.value)) + self.value


@dataclass(slots=True)
class CpPayload(Payload):
    cfg_type: int
    attributes: list = field(default_factory=list)
    payload_type: ClassVar[int] = PayloadType.CP

    def encode_body(self) -> bytes:
        return CP.pack(self.cfg_type) + b"".join([a.encode() for a in self.attributes])

    def validate(self) -> None:
        if self.cfg_type not in (CfgType.CFG_REQUEST, CfgType.CFG_REPLY, CfgType.CFG_SET,
                                 CfgType.CFG_ACK):
            raise _fail(f"unknown CFG type {self.cfg_type}")
        for a in self.attributes:
            ok = CP_ATTRIBUTE_LENGTHS.get(a.type)
            if ok is not None and len(a.value) not in ok:
                raise _fail(f"configuration attribute {a.type} of {len(a.value)} octets")
            if a.type == CpAttributeType.SUPPORTED_ATTRIBUTES and len(a.value) % 2:
                raise _fail("SUPPORTED_ATTRIBUTES is a list of 2-octet types")

    def attributes_of(self, attr_type: int) -> list:
        return [a for a in self.attributes if a.type == attr_type]


def _parse_cp(buf: bytes, off: int, end: int) -> CpPayload:
    if end - off < 4:
        raise _fail("truncated CP payload")
    cfg_type = buf[off]
    off += 4
    attrs = []
    unpack = CP_ATTRIBUTE.unpack_from
    while off < end:
        if off + 4 > end:
            raise _fail("truncated configuration attribute")
        atype, alen = unpack(buf, off)
        a_end = off + 4 + alen
        if a_end > end:
            raise _fail("configuration attribute runs past the CP payload")
        attrs.append(CpAttribute(atype & 0x7FFF, buf[off + 4:a_end]))
        off = a_end
    return CpPayload(cfg_type, attrs)


# ---------------------------------------------------------------------------------
# EAP (RFC 7296 §3.16; EAP packet format RFC 3748 §4)
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# |     Code      | Identifier    |           Length              |
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# |     Type      | Type_Data...
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
EAP = Layout("EAP", [("code", "B"), ("identifier", "B"), ("length", "H")])


@dataclass(slots=True)
class EapPayload(Payload):
    """``eap_type`` is None for Success/Failure (which carry no Type)."""
    code: int
    identifier: int
    eap_type: int | None = None
    type_data: bytes = b""
    payload_type: ClassVar[int] = PayloadType.EAP

    @property
    def eap_message(self) -> bytes:
        return self.encode_body()

    def encode_body(self) -> bytes:
        if self.eap_type is None:
            return EAP.pack(self.code, self.identifier, 4 + len(self.type_data)) + self.type_data
        return EAP.pack(self.code, self.identifier, 5 + len(self.type_data)) + \
            bytes((self.eap_type,)) + self.type_data

    def validate(self) -> None:
        if self.code in (EapCode.REQUEST, EapCode.RESPONSE):
            if self.eap_type is None:
                raise _fail("EAP Request/Response without a Type")
        elif self.code in (EapCode.SUCCESS, EapCode.FAILURE):
            if self.eap_type is not None or self.type_data:
                raise _fail("EAP Success/Failure carries no data")
        else:
            raise _fail(f"unknown EAP code {self.code}")


def _parse_eap(buf: bytes, off: int, end: int) -> EapPayload:
    if end - off < 4:
        raise _fail("truncated EAP payload")
    code, ident, length = EAP.unpack_from(buf, off)
    if length != end - off:
        raise _fail(f"EAP Length {length} but the payload holds {end - off} octets")
    if code in (EapCode.REQUEST, EapCode.RESPONSE) and length >= 5:
        return EapPayload(code, ident, buf[off + 4], buf[off + 5:end])
    return EapPayload(code, ident, None, buf[off + 4:end])


# ---------------------------------------------------------------------------------
@dataclass(slots=True)
class UnknownPayload(Payload):
    """A payload type we do not implement, received without the critical bit:
    skipped by the protocol (RFC 7296 §2.5) but kept for a faithful re-encode."""
    payload_type: int
    data: bytes = b""
    critical: bool = False

    def encode_body(self) -> bytes:
        return bytes(self.data)


# payload type -> parser(buf, body_offset, end) for every type we understand
# (SK and SKF are handled by the message parser itself: they end the chain).
PARSERS = {
    PayloadType.SA: _parse_sa,
    PayloadType.KE: _parse_ke,
    PayloadType.IDI: _parse_id(IdiPayload),
    PayloadType.IDR: _parse_id(IdrPayload),
    PayloadType.CERT: _parse_cert(CertPayload),
    PayloadType.CERTREQ: _parse_cert(CertReqPayload),
    PayloadType.AUTH: _parse_auth,
    PayloadType.NONCE: _parse_nonce,
    PayloadType.NOTIFY: _parse_notify,
    PayloadType.DELETE: _parse_delete,
    PayloadType.VENDOR_ID: _parse_vendor,
    PayloadType.TSI: _parse_ts(TsiPayload),
    PayloadType.TSR: _parse_ts(TsrPayload),
    PayloadType.CP: _parse_cp,
    PayloadType.EAP: _parse_eap,
}
# plain-int keyed copy: dict lookups with an int hit the fast path
PARSERS = {int(k): v for k, v in PARSERS.items()}

PAYLOAD_CLASSES = {
    PayloadType.SA: SaPayload, PayloadType.KE: KePayload, PayloadType.IDI: IdiPayload,
    PayloadType.IDR: IdrPayload, PayloadType.CERT: CertPayload,
    PayloadType.CERTREQ: CertReqPayload, PayloadType.AUTH: AuthPayload,
    PayloadType.NONCE: NoncePayload, PayloadType.NOTIFY: NotifyPayload,
    PayloadType.DELETE: DeletePayload, PayloadType.VENDOR_ID: VendorIdPayload,
    PayloadType.TSI: TsiPayload, PayloadType.TSR: TsrPayload, PayloadType.SK: SkPayload,
    PayloadType.CP: CpPayload, PayloadType.EAP: EapPayload, PayloadType.SKF: SkfPayload,
}


def parse_payload_body(payload_type: int, body: bytes, *, validate: bool = True) -> Payload:
    """Parse one payload body (the octets after its generic header)."""
    body = bytes(body)
    parser = PARSERS.get(payload_type)
    if parser is None:
        return UnknownPayload(payload_type, body)
    p = parser(body, 0, len(body))
    if validate:
        p.validate()
    return p


__all__ = [
    "Layout", "Payload", "GENERIC_HEADER", "SaPayload", "Proposal", "Transform",
    "TransformAttribute", "KePayload", "IdPayload", "IdiPayload", "IdrPayload", "CertPayload",
    "CertReqPayload", "AuthPayload", "NoncePayload", "NotifyPayload", "DeletePayload",
    "VendorIdPayload", "TsPayload", "TsiPayload", "TsrPayload", "TrafficSelector",
    "UnknownTrafficSelector", "SkPayload", "SkfPayload", "CpPayload", "CpAttribute",
    "EapPayload", "UnknownPayload", "PARSERS", "PAYLOAD_CLASSES", "KE_DATA_LENGTH",
    "NOTIFY_DATA_LENGTH", "parse_payload_body", "KEY_LENGTH_ATTRIBUTE",
]
