"""IKEv2 message fragmentation (RFC 7383).

Sending: :func:`fragment_message` cuts the protected content of a message into
Encrypted Fragment (SKF) payloads, one IKE message each, every one protected on
its own. The AAD / ICV input of a fragment runs from the IKE header through the
SKF payload's 8-octet header, Fragment Number and Total Fragments included
(RFC 7383 §2.5; RFC 5282 §5.1).

Receiving: a :class:`Reassembler` (one per IKE SA) takes parsed fragment
messages, authenticates each one *before* storing it (RFC 7383 §2.6), and gives
back the whole message once every fragment is in. It bounds what an
authenticated but hostile peer can make us hold: fragments per message, octets
per message, messages in reassembly at once, and time. A fragment that breaks a
rule raises :class:`~ikecore.errors.FragmentError` (notify_type None: discard
silently); a repeated fragment raises its subclass DuplicateFragment.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ..errors import DuplicateFragment, FragmentError, ParseError
from .message import (_gen_pack, _hdr_pack, MAX_PAYLOADS, Message, _open_sk, encode_payloads,
                      parse_chain)
from .payloads import SKF, SkfPayload

_SKF = 53

# IKE message size per fragment, non-ESP marker included, for the minimum
# path MTUs RFC 7383 §2.5.1 recommends: IP datagrams of 576 (IPv4) / 1280 (IPv6)
FRAGMENT_SIZE_IPV4 = 576 - 20 - 8 - 4
FRAGMENT_SIZE_IPV6 = 1280 - 40 - 8 - 4


def message_budget(ip_packet_size: int, remote_host: str, natt: bool) -> int:
    """The largest IKE message (header included) whose IP packet is at most
    ``ip_packet_size`` octets: less the IPv4 (20) or IPv6 (40) header, UDP (8)
    and, on the NAT-T port, the non-ESP marker (4; RFC 3948 §2.2). The
    configured fragment size bounds the whole packet (RFC 7383 §2.5.1: 1280
    for IPv6, whose minimum MTU it is)."""
    ip = 40 if ":" in str(remote_host) else 20
    return ip_packet_size - ip - 8 - (4 if natt else 0)


def fragment_message(msg: Message, sk_cipher, max_size: int = FRAGMENT_SIZE_IPV6, *,
                     ivs: list | None = None) -> list[bytes]:
    """The IKE messages (fragments) that together carry ``msg.inner``.

    Each result is at most ``max_size`` octets (IKE header included). ``ivs``
    (one per fragment) is for known-answer tests only.
    """
    if msg.inner is None:
        raise ValueError("only an encrypted message (inner payloads) can be fragmented")
    if msg.payloads:
        raise ValueError("messages with payloads in the clear are not fragmented")
    plaintext = encode_payloads(msg.inner)
    first_type = msg.inner[0].payload_type if msg.inner else 0
    overhead = 28 + 8
    # the largest chunk whose sealed form fits (CBC rounds up to the block)
    chunk = max_size - overhead - sk_cipher.iv_length - sk_cipher.icv_length - 1
    while chunk > 0 and overhead + sk_cipher.sealed_length(chunk) > max_size:
        chunk -= 1
    if chunk <= 0:
        raise ValueError(f"a fragment of {max_size} octets has no room for content")
    total = max(1, -(-len(plaintext) // chunk))
    if total > 0xFFFF:
        raise ValueError("too many fragments")
    out = []
    try:
        for k in range(1, total + 1):
            part = plaintext[(k - 1) * chunk:k * chunk]
            sealed_len = sk_cipher.sealed_length(len(part))
            length = overhead + sealed_len
            aad = b"".join((
                _hdr_pack(msg.spi_i, msg.spi_r, _SKF, msg.version, msg.exchange_type,
                          msg.flags, msg.message_id, length),
                _gen_pack(first_type if k == 1 else 0, 0, 8 + sealed_len),
                SKF.pack(k, total)))
            iv = ivs[k - 1] if ivs is not None else None
            out.append(aad + sk_cipher.seal(aad, part, iv))
    except struct.error as exc:
        raise ValueError(f"a field is out of range: {exc}") from None
    return out


@dataclass(slots=True)
class _Pending:
    started: float
    total: int
    exchange_type: int
    spis: tuple
    parts: dict = field(default_factory=dict)
    size: int = 0
    first_payload: int = 0


class Reassembler:
    """Collects the fragments of the messages one peer sends on one IKE SA.

    ``add(message, sk_cipher, now)`` returns None until the last fragment of a
    message arrives, then the reassembled :class:`Message` with ``inner`` set
    (``raw`` is None: a fragmented message has no single octet string).
    ``now`` is any monotonic clock in seconds (sans-I/O: the caller owns time).
    """

    def __init__(self, *, max_fragments: int = 32, max_message_size: int = 64 * 1024,
                 max_pending: int = 4, timeout: float = 30.0) -> None:
        self.max_fragments = max_fragments
        self.max_message_size = max_message_size
        self.max_pending = max_pending
        self.timeout = timeout
        self._pending: dict[tuple, _Pending] = {}

    @property
    def pending_bytes(self) -> int:
        return sum(p.size for p in self._pending.values())

    @property
    def pending_messages(self) -> int:
        return len(self._pending)

    def expire(self, now: float) -> None:
        """Forget reassemblies older than ``timeout``."""
        stale = [k for k, p in self._pending.items() if now - p.started > self.timeout]
        for k in stale:
            del self._pending[k]

    def discard(self, message_id: int, is_response: bool) -> None:
        self._pending.pop((message_id, is_response), None)

    def add(self, msg: Message, sk_cipher, now: float, *, validate: bool = True) -> Message | None:
        skf = msg.sk
        if type(skf) is not SkfPayload:
            raise ValueError("not an Encrypted Fragment message")
        num, total = skf.fragment_number, skf.total_fragments
        if not 1 <= num <= total:
            raise FragmentError(f"fragment {num} of {total} is out of range")
        if total > self.max_fragments:
            raise FragmentError(f"{total} fragments is over the limit of {self.max_fragments}")
        if msg.payloads:
            raise FragmentError("payloads in the clear next to an Encrypted Fragment")
        self.expire(now)
        key = (msg.message_id, msg.is_response)
        pending = self._pending.get(key)
        if pending is not None:
            if total < pending.total:
                # a fragment of an older try with larger fragments (RFC 7383 PMTU
                # discovery resends in more, smaller fragments): drop it
                raise FragmentError(f"Total Fragments {total} below the {pending.total} seen")
            if pending.exchange_type != msg.exchange_type or pending.spis != (msg.spi_i, msg.spi_r):
                raise FragmentError("fragment of another exchange under the same Message ID")
            if num in pending.parts and total == pending.total:
                plain = _open_sk(msg, sk_cipher)
                if plain == pending.parts[num]:
                    raise DuplicateFragment(f"fragment {num} of {total} again")
                raise FragmentError(f"fragment {num} of {total} again, with other content")
        elif len(self._pending) >= self.max_pending:
            raise FragmentError(f"already {self.max_pending} messages in reassembly")

        plain = _open_sk(msg, sk_cipher)      # authenticate before keeping anything

        if pending is not None and total > pending.total:
            # the sender lowered its fragment size (PMTU discovery): start over
            del self._pending[key]
            pending = None
        if pending is None:
            pending = _Pending(now, total, msg.exchange_type, (msg.spi_i, msg.spi_r))
            self._pending[key] = pending
        if pending.size + len(plain) > self.max_message_size:
            del self._pending[key]
            raise FragmentError(f"reassembled message over {self.max_message_size} octets")
        pending.parts[num] = plain
        pending.size += len(plain)
        if num == 1:
            pending.first_payload = skf.first_payload
        if len(pending.parts) < total:
            return None

        del self._pending[key]
        content = b"".join([pending.parts[i] for i in range(1, total + 1)])
        try:
            inner, _, _ = parse_chain(content, 0, len(content), pending.first_payload,
                                      validate=validate, allow_sk=False,
                                      max_payloads=MAX_PAYLOADS)
        except (IndexError, struct.error, KeyError) as exc:
            raise ParseError(f"malformed reassembled payloads: {exc}") from exc
        return Message(msg.spi_i, msg.spi_r, msg.exchange_type, msg.flags, msg.message_id,
                       [], inner, None, msg.version)


__all__ = ["fragment_message", "Reassembler", "FRAGMENT_SIZE_IPV4", "FRAGMENT_SIZE_IPV6"]
