"""UDP encapsulation of ESP (RFC 3948) for single datagrams.

On UDP port 4500 three things arrive: ESP (first 4 octets = the non-zero SPI),
IKE (preceded by the 4-octet zero non-ESP marker) and NAT keepalives (one
0xFF octet). With an ordinary UDP socket the kernel adds and strips the UDP
header; :func:`wrap` / :func:`unwrap` are for raw sockets, TUN devices and
tests. For batches see :meth:`ikecore.esp.PacketVector.classify_udpencap`.
"""
from __future__ import annotations

import struct
from enum import IntEnum

from ..errors import MalformedPacket

NAT_T_PORT = 4500
NON_ESP_MARKER = b"\x00\x00\x00\x00"
KEEPALIVE = b"\xff"
_UDP = struct.Struct("!HHHH")


class Kind(IntEnum):
    ESP = 0
    IKE = 1
    KEEPALIVE = 2


def classify(datagram: bytes) -> tuple[Kind, bytes]:
    """What a UDP 4500 payload carries, and that thing: the ESP packet, the IKE
    message without its non-ESP marker, or b"" for a keepalive.
    Raises MalformedPacket for anything else (RFC 3948 §2.2, §2.3)."""
    d = bytes(datagram)
    if d == KEEPALIVE:
        return Kind.KEEPALIVE, b""
    if len(d) >= 4 and d[:4] == NON_ESP_MARKER:
        return Kind.IKE, d[4:]
    if len(d) < 8:
        raise MalformedPacket(f"{len(d)}-octet datagram on the NAT-T port is neither ESP, IKE nor a keepalive")
    return Kind.ESP, d


def add_non_esp_marker(ike_message: bytes) -> bytes:
    """An IKE message as sent on port 4500."""
    return NON_ESP_MARKER + bytes(ike_message)


def wrap(esp_packet: bytes, src_port: int = NAT_T_PORT, dst_port: int = NAT_T_PORT) -> bytes:
    """UDP header (checksum 0, RFC 3948 §2.1) + ESP packet."""
    n = len(esp_packet) + 8
    if n > 0xFFFF:
        raise ValueError("datagram too large for UDP")
    return _UDP.pack(src_port, dst_port, n, 0) + bytes(esp_packet)


def unwrap(datagram: bytes) -> tuple[int, int, bytes]:
    """(source port, destination port, payload) of a UDP datagram (header first)."""
    if len(datagram) < 8:
        raise MalformedPacket("UDP datagram shorter than its header")
    sport, dport, length, _ = _UDP.unpack_from(datagram)
    if length < 8 or length > len(datagram):
        raise MalformedPacket("UDP length field out of range")
    return sport, dport, bytes(datagram[8:length])
