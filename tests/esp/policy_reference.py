"""An independent, plain-Python statement of the data path's selector policy
(RFC 4301 §4.4.1, §5.1-5.2), the oracle that ikecore.esp.SelectorTable (C) is
checked against."""
from __future__ import annotations

import struct

PORT_PROTOCOLS = (6, 17, 132)      # TCP, UDP, SCTP: ports follow the IP header
TS_IPV4, TS_IPV6 = 7, 8


def packet_5tuple(pkt: bytes):
    """(IP version, src, dst, protocol, src port, dst port), or None for no IP
    header. Ports are 0 for other protocols and non-first fragments."""
    if len(pkt) < 20:
        return None
    v = pkt[0] >> 4
    if v == 4:
        ihl = (pkt[0] & 15) * 4
        if ihl < 20 or ihl > len(pkt):
            return None
        proto = pkt[9]
        frag_off = ((pkt[6] & 0x1F) << 8) | pkt[7]
        sport = dport = 0
        if proto in PORT_PROTOCOLS and frag_off == 0 and len(pkt) >= ihl + 4:
            sport, dport = struct.unpack_from("!HH", pkt, ihl)
        return 4, bytes(pkt[12:16]), bytes(pkt[16:20]), proto, sport, dport
    if v == 6 and len(pkt) >= 40:
        proto = pkt[6]
        sport = dport = 0
        if proto in PORT_PROTOCOLS and len(pkt) >= 44:
            sport, dport = struct.unpack_from("!HH", pkt, 40)
        return 6, bytes(pkt[8:24]), bytes(pkt[24:40]), proto, sport, dport
    return None


def ts_match(ts, version: int, addr: bytes, proto: int, port: int) -> bool:
    if ts.ts_type != (TS_IPV4 if version == 4 else TS_IPV6):
        return False
    if not ts.start_addr <= addr <= ts.end_addr:
        return False
    if ts.ip_protocol and ts.ip_protocol != proto:
        return False
    if (ts.start_port, ts.end_port) != (0, 65535) and not ts.start_port <= port <= ts.end_port:
        return False
    return True


def selectors_allow(local_ts, remote_ts, tup, *, outbound: bool) -> bool:
    v, src, dst, proto, sport, dport = tup
    lo, lp, ro, rp = (src, sport, dst, dport) if outbound else (dst, dport, src, sport)
    return (any(ts_match(t, v, lo, proto, lp) for t in local_ts) and
            any(ts_match(t, v, ro, proto, rp) for t in remote_ts))


def inbound_allowed(local_ts, remote_ts, payload: bytes, next_header: int) -> bool:
    """A decrypted tunnel-mode packet is delivered only if it is an IP packet of
    the version its next header names, inside the selectors."""
    tup = packet_5tuple(payload)
    if next_header not in (4, 41) or tup is None or tup[0] != (4 if next_header == 4 else 6):
        return False
    return selectors_allow(local_ts, remote_ts, tup, outbound=False)


def route(sas, pkt: bytes):
    """sas: [(spi, local_ts, remote_ts, routable)] oldest first -> the SPI of the
    newest routable SA that covers the packet, or None."""
    tup = packet_5tuple(pkt)
    if tup is None:
        return None
    for spi, local_ts, remote_ts, routable in reversed(sas):
        if routable and selectors_allow(local_ts, remote_ts, tup, outbound=True):
            return spi
    return None
