"""A minimal pcap writer for what the gateway sends and receives (opt-in).

Each UDP datagram is written as a raw IP packet (LINKTYPE_RAW) with the real
addresses and ports, so that tshark/Wireshark dissect it; with non-standard
ports tell tshark which is which (``-d udp.port==P,isakmp -d udp.port==Q,udpencap``).
"""
from __future__ import annotations

import ipaddress
import struct
import time

LINKTYPE_RAW = 101


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ip_udp_packet(payload: bytes, src: tuple[str, int], dst: tuple[str, int]) -> bytes:
    """An IPv4 or IPv6 packet carrying ``payload`` in UDP from ``src`` to ``dst``."""
    s, d = ipaddress.ip_address(src[0]), ipaddress.ip_address(dst[0])
    length = 8 + len(payload)
    udp = struct.pack("!HHHH", src[1], dst[1], length, 0) + payload
    if s.version == 4:
        pseudo = s.packed + d.packed + struct.pack("!BBH", 0, 17, length)
        csum = _checksum(pseudo + udp) or 0xFFFF
        udp = udp[:6] + struct.pack("!H", csum) + udp[8:]
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, 0, 0x4000, 64, 17, 0, s.packed, d.packed)
        hdr = hdr[:10] + struct.pack("!H", _checksum(hdr)) + hdr[12:]
        return hdr + udp
    pseudo = s.packed + d.packed + struct.pack("!I3xB", length, 17)
    csum = _checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", csum) + udp[8:]
    return struct.pack("!IHBB16s16s", 6 << 28, length, 17, 64, s.packed, d.packed) + udp


class PcapWriter:
    """``write(payload, src, dst)`` appends one UDP datagram; ``close()`` when done."""

    def __init__(self, path) -> None:
        self.path = path
        self._f = open(path, "wb")
        self._f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_RAW))
        self.count = 0

    def write(self, payload: bytes, src: tuple[str, int], dst: tuple[str, int]) -> None:
        if self._f is None:
            return
        pkt = ip_udp_packet(bytes(payload), src, dst)
        t = time.time()
        self._f.write(struct.pack("<IIII", int(t), int((t % 1) * 1e6), len(pkt), len(pkt)) + pkt)
        self.count += 1

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


__all__ = ["PcapWriter", "ip_udp_packet"]
