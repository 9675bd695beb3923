"""The IKE message: header, payload chain, Encrypted payload (RFC 7296 §3.1, §3.2, §3.14).

``parse_message(data)`` reads one IKE message (without the 4-octet non-ESP
marker of port 4500) into a :class:`Message`. Every malformed input raises a
:class:`~ikecore.errors.ParseError` subclass: lengths that lie in either
direction, chains that end early or run past the message, payloads after SK,
unknown critical payloads (UnsupportedCriticalPayload), version > 2
(InvalidMajorVersion), oversize messages, more than ``max_payloads`` payloads.
Work is linear in the message length.

Encrypted messages are opened with :meth:`Message.decrypt` (or
:func:`decrypt_message`) given the peer's :class:`~ikecore.crypto.sk.SkCipher`;
a bad ICV raises :class:`~ikecore.errors.IntegrityCheckFailed` (a ParseError
and an InvalidTag, notify_type None: drop silently). Building works the other
way round: set ``Message.inner`` to the payloads to protect and call
``encode_message(msg, sk_cipher)``.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Iterator

from ..crypto.sk import SkCipher
from ..errors import (IntegrityCheckFailed, InvalidMajorVersion, InvalidTag, ParseError,
                      UnsupportedCriticalPayload)
from .constants import IKEV2_VERSION, MAX_MESSAGE_LENGTH, Flags, PayloadType
from .payloads import (CRITICAL, GENERIC_HEADER, PARSERS, SKF, Layout, NotifyPayload, Payload,
                       SkfPayload, SkPayload, UnknownPayload)

# IKE Header (RFC 7296 §3.1)
#                      1                   2                   3
#  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# |                       IKE SA Initiator's SPI                  |
# |                                                               |
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# |                       IKE SA Responder's SPI                  |
# |                                                               |
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# |  Next Payload | MjVer | MnVer | Exchange Type |     Flags     |
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# |                          Message ID                           |
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# |                            Length                             |
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
IKE_HEADER = Layout("IKE header", [
    ("spi_i", "8s"), ("spi_r", "8s"), ("next_payload", "B"), ("version", "B"),
    ("exchange_type", "B"), ("flags", "B"), ("message_id", "I"), ("length", "I")])

MAX_PAYLOADS = 256          # per message, clear and inner together
_SK = int(PayloadType.SK)
_SKF = int(PayloadType.SKF)
_R = int(Flags.RESPONSE)
_I = int(Flags.INITIATOR)

_gen_unpack = GENERIC_HEADER.unpack_from
_gen_pack = GENERIC_HEADER.pack
_hdr_unpack = IKE_HEADER.unpack_from
_hdr_pack = IKE_HEADER.pack


@dataclass(slots=True)
class Message:
    """One IKE message.

    ``payloads`` are the payloads in the clear (everything before SK);
    ``inner`` the payloads inside SK: None for a message without SK (or one not
    yet decrypted), a list (maybe empty) once decrypted or when building an
    encrypted message. ``sk`` is the Encrypted (or Encrypted Fragment) payload
    as received. ``raw`` holds the octets it was parsed from (RealMessage1/2 of
    RFC 7296 §2.15 for IKE_SA_INIT).
    """
    spi_i: bytes
    spi_r: bytes = bytes(8)
    exchange_type: int = 34
    flags: int = 0
    message_id: int = 0
    payloads: list = field(default_factory=list)
    inner: list | None = None
    sk: SkPayload | SkfPayload | None = None
    version: int = IKEV2_VERSION
    raw: bytes | None = field(default=None, compare=False, repr=False)
    sk_offset: int = field(default=0, compare=False, repr=False)

    # -- header flags -------------------------------------------------------------
    @property
    def is_response(self) -> bool:
        return bool(self.flags & _R)

    @property
    def is_request(self) -> bool:
        return not self.flags & _R

    @property
    def is_initiator(self) -> bool:
        """The I flag: sent by the original initiator of the IKE SA."""
        return bool(self.flags & _I)

    @property
    def is_encrypted(self) -> bool:
        return self.sk is not None or self.inner is not None

    @property
    def is_fragment(self) -> bool:
        return type(self.sk) is SkfPayload

    # -- payload access -----------------------------------------------------------
    @property
    def all_payloads(self) -> list:
        """Clear payloads followed by the inner (decrypted) ones."""
        inner = self.inner
        if not inner:
            return self.payloads
        # an encrypted message usually has no clear payload but SK: no copy then
        return self.payloads + inner if self.payloads else inner

    def __iter__(self) -> Iterator[Payload]:
        return iter(self.all_payloads)

    # find/notify run a dozen times per message: they walk the lists without the
    # all_payloads property (an encrypted message's clear list is usually empty)

    def find(self, kind) -> Payload | None:
        """First payload of a type (``PayloadType.NONCE``) or class (``IdPayload``)."""
        if isinstance(kind, type):
            for p in self.all_payloads:
                if isinstance(p, kind):
                    return p
            return None
        for p in self.payloads:
            if p.payload_type == kind:
                return p
        if self.inner:
            for p in self.inner:
                if p.payload_type == kind:
                    return p
        return None

    def find_all(self, kind) -> list:
        if isinstance(kind, type):
            return [p for p in self.all_payloads if isinstance(p, kind)]
        return [p for p in self.all_payloads if p.payload_type == kind]

    def notifies(self) -> list[NotifyPayload]:
        return [p for p in self.all_payloads if type(p) is NotifyPayload]

    def notify(self, notify_type: int) -> NotifyPayload | None:
        """The first Notify of that type, or None."""
        for p in self.payloads:
            if type(p) is NotifyPayload and p.notify_type == notify_type:
                return p
        if self.inner:
            for p in self.inner:
                if type(p) is NotifyPayload and p.notify_type == notify_type:
                    return p
        return None

    def has_notify(self, notify_type: int) -> bool:
        return self.notify(notify_type) is not None

    def error_notify(self) -> NotifyPayload | None:
        """The first Notify of an error type (1..16383), or None."""
        for p in self.all_payloads:
            if type(p) is NotifyPayload and 0 < p.notify_type < 16384:
                return p
        return None

    # -- codec --------------------------------------------------------------------
    def encode(self, sk_cipher=None, *, iv: bytes | None = None) -> bytes:
        return encode_message(self, sk_cipher, iv=iv)

    def decrypt(self, sk_cipher, *, validate: bool = True) -> list:
        return decrypt_message(self, sk_cipher, validate=validate)


# ---------------------------------------------------------------------------------
# parsing

def parse_chain(buf: bytes, off: int, end: int, next_type: int, *, validate: bool = True,
                allow_sk: bool = True, max_payloads: int = MAX_PAYLOADS):
    """Walk a payload chain in ``buf[off:end]`` starting with type ``next_type``.

    Returns ``(payloads, sk, sk_offset)``; ``sk`` is the final SK/SKF payload
    (None if there is none), ``sk_offset`` the offset of its generic header.
    """
    payloads: list = []
    append = payloads.append
    parsers = PARSERS
    sk = None
    sk_offset = 0
    room = max_payloads          # payloads still allowed
    while next_type:
        if off + 4 > end:
            raise ParseError(f"payload chain ends early: no room for payload type {next_type}")
        nxt, flags, plen = _gen_unpack(buf, off)
        p_end = off + plen
        if plen < 4 or p_end > end:
            raise ParseError(f"payload type {next_type}: length {plen} does not fit "
                             f"the {end - off} octets left")
        parser = parsers.get(next_type)
        if parser is not None:
            p = parser(buf, off + 4, p_end)
            if validate:
                p.validate()
        elif next_type == _SK or next_type == _SKF:
            if not allow_sk:
                raise ParseError("an Encrypted payload inside an Encrypted payload")
            if p_end != end:
                raise ParseError("the Encrypted payload is not the last payload")
            if next_type == _SK:
                sk = SkPayload(nxt, buf[off + 4:end])
            else:
                if plen < 8:
                    raise ParseError("truncated Encrypted Fragment payload")
                num, total = SKF.unpack_from(buf, off + 4)
                sk = SkfPayload(nxt, num, total, buf[off + 8:end])
                if validate:
                    sk.validate()
            sk_offset = off
            off = end
            break
        elif flags & CRITICAL:
            raise UnsupportedCriticalPayload(next_type)
        else:
            p = UnknownPayload(next_type, buf[off + 4:p_end], False)
        append(p)
        room -= 1
        if room < 0:
            raise ParseError(f"more than {max_payloads} payloads")
        off = p_end
        next_type = nxt
    if off != end:
        raise ParseError(f"{end - off} octets after the last payload")
    return payloads, sk, sk_offset


def parse_message(data, *, max_length: int = MAX_MESSAGE_LENGTH, validate: bool = True,
                  max_payloads: int = MAX_PAYLOADS) -> Message:
    """Parse one IKE message (no non-ESP marker). See the module docstring."""
    if type(data) is not bytes:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"an IKE message is bytes, not {type(data).__name__}")
        data = bytes(data)
    n = len(data)
    if n < 28:
        raise ParseError(f"{n} octets is shorter than the IKE header")
    if n > max_length:
        raise ParseError(f"message of {n} octets is over the {max_length}-octet limit")
    spi_i, spi_r, first, version, xchg, flags, mid, length = _hdr_unpack(data, 0)
    if version >> 4 != 2:
        if version >> 4 > 2:
            raise InvalidMajorVersion(f"IKE major version {version >> 4}")
        raise ParseError(f"IKE major version {version >> 4} (IKEv1?)")
    if length != n:
        raise ParseError(f"IKE header Length {length} but the datagram holds {n} octets")
    try:
        payloads, sk, sk_offset = parse_chain(data, 28, n, first, validate=validate,
                                              max_payloads=max_payloads)
    except (IndexError, struct.error, KeyError) as exc:   # defence in depth: never leak these
        raise ParseError(f"malformed message: {exc}") from exc
    msg = Message(spi_i, spi_r, xchg, flags, mid, payloads, None, sk, version, data, sk_offset)
    return msg


def _open_sk(msg: Message, sk_cipher) -> bytes:
    """Authenticate and decrypt ``msg.sk``; the plaintext with padding removed."""
    sk = msg.sk
    if sk is None:
        raise ValueError("the message has no Encrypted payload")
    if msg.raw is None:
        raise ValueError("only a parsed message (with .raw) can be decrypted")
    header_len = 4 if type(sk) is SkPayload else 8
    sealed = sk.data
    n = len(sealed)
    # Checked before authentication: such a payload cannot be verified, so it
    # is dropped like one with a bad ICV.
    if (n < sk_cipher.iv_length + sk_cipher.block_length + sk_cipher.icv_length
            or (n - sk_cipher.iv_length - sk_cipher.icv_length) % sk_cipher.block_length):
        raise IntegrityCheckFailed(f"Encrypted payload of {n} octets cannot be valid "
                                   "for this cipher")
    aad = msg.raw[:msg.sk_offset + header_len]
    try:
        return sk_cipher.open(aad, sealed)
    except InvalidTag:
        raise IntegrityCheckFailed("the Encrypted payload's ICV did not verify") from None
    except ValueError as exc:   # MalformedPacket: bad padding after a valid ICV
        raise ParseError(f"Encrypted payload: {exc}") from None


def decrypt_message(msg: Message, sk_cipher, *, validate: bool = True) -> list:
    """Open the SK payload of a parsed message with the sender's SkCipher,
    parse the inner payloads, store them in ``msg.inner`` and return them."""
    if type(msg.sk) is SkfPayload:
        raise ValueError("an Encrypted Fragment goes through a Reassembler")
    plain = _open_sk(msg, sk_cipher)
    try:
        inner, _, _ = parse_chain(plain, 0, len(plain), msg.sk.first_payload,
                                  validate=validate, allow_sk=False,
                                  max_payloads=MAX_PAYLOADS - len(msg.payloads))
    except (IndexError, struct.error, KeyError) as exc:
        raise ParseError(f"malformed inner payloads: {exc}") from exc
    msg.inner = inner
    return inner


# ---------------------------------------------------------------------------------
# encoding

def encode_payloads(payloads, last_next: int = 0) -> bytes:
    """The chain of generic headers and bodies; the last Next Payload is ``last_next``."""
    parts = []
    append = parts.append
    # each header names the type of the payload after it: walk with the next one in hand
    nexts = [p.payload_type for p in payloads]
    nexts.append(last_next)
    i = 0
    for p in payloads:
        i += 1
        body = p.encode_body()
        nxt = nexts[i]
        flags = 0
        tp = type(p)
        if tp is UnknownPayload:
            if p.critical:
                flags = CRITICAL
        elif tp is SkPayload or tp is SkfPayload:
            nxt = p.first_payload
        length = len(body) + 4
        if length > 0xFFFF:
            raise ValueError(f"payload {p.payload_type} of {length} octets does not fit")
        append(_gen_pack(nxt, flags, length))
        append(body)
    return b"".join(parts)


def encode_message(msg: Message, sk_cipher=None, *, iv: bytes | None = None) -> bytes:
    """Serialize a message.

    - ``msg.inner`` not None: the inner payloads are protected in an SK payload
      with ``sk_cipher`` (the sender's direction); ``iv`` is for known-answer
      tests only.
    - else ``msg.sk`` (as parsed) is written back unchanged;
    - else a message in the clear.
    """
    clear = msg.payloads
    try:
        if msg.inner is not None:
            if sk_cipher is None:
                raise ValueError("an encrypted message needs an SkCipher")
            inner = msg.inner
            plaintext = encode_payloads(inner)
            sealed_len = sk_cipher.sealed_length(len(plaintext))
            clear_bytes = encode_payloads(clear, _SK) if clear else b""
            total = 28 + len(clear_bytes) + 4 + sealed_len
            if total > MAX_MESSAGE_LENGTH or 4 + sealed_len > 0xFFFF:
                raise ValueError(f"message of {total} octets is too large: fragment it")
            aad = b"".join((
                _hdr_pack(msg.spi_i, msg.spi_r, clear[0].payload_type if clear else _SK,
                          msg.version, msg.exchange_type, msg.flags, msg.message_id, total),
                clear_bytes,
                _gen_pack(inner[0].payload_type if inner else 0, 0, 4 + sealed_len)))
            if iv is None and type(sk_cipher) is SkCipher:
                return sk_cipher.seal_message(aad, plaintext)    # one C call writes the message
            return aad + sk_cipher.seal(aad, plaintext, iv)
        chain = clear + [msg.sk] if msg.sk is not None else clear
        body = encode_payloads(chain)
        total = 28 + len(body)
        if total > MAX_MESSAGE_LENGTH:
            raise ValueError(f"message of {total} octets is too large")
        return _hdr_pack(msg.spi_i, msg.spi_r, chain[0].payload_type if chain else 0,
                         msg.version, msg.exchange_type, msg.flags, msg.message_id,
                         total) + body
    except struct.error as exc:
        raise ValueError(f"a field is out of range: {exc}") from None


__all__ = ["Message", "parse_message", "parse_chain", "decrypt_message", "encode_message",
           "encode_payloads", "IKE_HEADER", "MAX_PAYLOADS"]
