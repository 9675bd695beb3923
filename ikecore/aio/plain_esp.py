"""Plain ESP (IP protocol 50) through raw sockets, for Child SAs without UDP
encapsulation (no NAT detected and ``encap = false``), as strongSwan's
kernel-libipsec does. Needs CAP_NET_RAW; without it the gateway logs why and
such Child SAs carry no traffic (``encap = true``, the default, avoids them).

Inbound: an IPv4 raw socket delivers the IP header too, which is stripped; an
IPv6 one delivers the ESP packet only. The packets then take the same C path
as ESP-in-UDP (decrypt by SPI, selector check, TUN or callback). Outbound:
``DataPlane`` sends the batch on the raw socket to (peer, 0); the kernel adds
the IP header."""
from __future__ import annotations

import logging
import socket

from ..esp import PacketVector

log = logging.getLogger("ikecore.gateway")

IPPROTO_ESP = 50
MAX_READS = 64            # packets read per wake-up, so that one peer cannot hold the loop


class PlainEsp:
    """The raw ESP socket of every listener (attribute ``plain_esp`` of the gateway)."""

    def __init__(self, gw) -> None:
        self.gw = gw
        self.socks: dict[int, socket.socket] = {}    # id(listener) -> raw socket
        self.vec = PacketVector(gw.config.batch_size)
        self.counters = {"rx": 0, "rx_short": 0}

    def open(self) -> None:
        for lst in self.gw.listeners:
            try:
                s = socket.socket(lst.family, socket.SOCK_RAW, IPPROTO_ESP)
            except OSError as exc:
                log.info("plain ESP unavailable on %s (%s): Child SAs need encap = true", lst.host, exc.strerror)
                continue
            try:
                s.setblocking(False)
                s.bind((lst.host, 0))
            except OSError as exc:
                s.close()
                log.info("plain ESP unavailable on %s (%s)", lst.host, exc.strerror)
                continue
            self.socks[id(lst)] = s
            self.gw.loop.add_reader(s.fileno(), self._readable, lst, s)

    def close(self) -> None:
        for s in self.socks.values():
            try:
                self.gw.loop.remove_reader(s.fileno())
            except (ValueError, OSError):
                pass
            s.close()
        self.socks.clear()

    def target(self, lst, remote: tuple, local: tuple):
        """(raw socket, (peer, 0), (us, 0)) for the DataPlane, or None."""
        s = self.socks.get(id(lst)) if lst is not None else None
        if s is None:
            return None
        return s, (remote[0], 0), (local[0], 0)

    def _readable(self, lst, sock: socket.socket) -> None:
        packets = []
        try:
            for _ in range(min(MAX_READS, self.vec.capacity)):
                try:
                    data, _src = sock.recvfrom(65535)
                except BlockingIOError:
                    break
                if lst.family == socket.AF_INET:
                    ihl = (data[0] & 0x0F) * 4 if data else 0
                    data = data[ihl:]
                if len(data) < 8:             # SPI and sequence number at least
                    self.counters["rx_short"] += 1
                    continue
                packets.append(data)
            if packets:
                self.counters["rx"] += len(packets)
                self.vec.load(packets)
                self.gw.dataplane.receive(self.vec)
        except OSError as exc:
            if self.gw.running:
                log.warning("raw ESP socket %s: %s", lst.host, exc)
        except Exception:                     # never let one bad packet stop the gateway
            self.gw.counters["internal_errors"] += 1
            log.exception("error on the plain ESP path")


__all__ = ["PlainEsp", "IPPROTO_ESP"]
