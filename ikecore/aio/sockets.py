"""The gateway's sockets: the IKE and NAT-T listeners, datagram input (the
NAT-T port read in batches with recvmmsg and classified in C, the IKE port read
until empty in one callback) and output, and the choice of local address. A
mixin of :class:`~ikecore.aio.gateway.Gateway`, whose state (``endpoint``,
``dataplane``, ``listeners``, ``counters``...) it uses."""
from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import logging
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigError, IkeError
from ..esp import IKE as PKT_IKE, KEEPALIVE as PKT_KEEPALIVE
from ..protocol.endpoint import NON_ESP_MARKER, Classification
from .dataplane import ChildState
from .errors import GatewayError

if TYPE_CHECKING:
    from .gateway import Gateway

log = logging.getLogger("ikecore.gateway")

IKE_RECV_BATCH = 64          # IKE-port datagrams read per readiness callback
# The NAT-T port's receive slots hold ESP and IKE alike. An unfragmented IKE_AUTH
# (certificates, many selectors) is easily over 2 KB, and a datagram longer than its
# slot is cut short by recvmmsg and lost: 10,000 octets, charon's default max_packet,
# also more than any ESP packet on a 9,000-octet MTU link.
NATT_SLOT = 10240


@dataclass(eq=False)
class _Listener:
    host: str                       # as configured (may be a wildcard)
    family: int
    ike_sock: socket.socket
    natt_sock: socket.socket

    @functools.cached_property
    def wildcard(self) -> bool:          # asked for every datagram sent: parsed once
        return ipaddress.ip_address(self.host).is_unspecified


def grow_buffers(s: socket.socket, size: int) -> None:
    """Room for bursts of ESP: SO_RCVBUFFORCE when allowed (root), else up to rmem_max."""
    if size <= 0:
        return
    for force, plain in ((getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF),
                         (getattr(socket, "SO_SNDBUFFORCE", None), socket.SO_SNDBUF)):
        for opt in (force, plain):
            if opt is None:
                continue
            try:
                s.setsockopt(socket.SOL_SOCKET, opt, size)
                break
            except OSError:
                continue


def _norm(addr) -> tuple[str, int]:
    host = addr[0]
    if "%" in host:
        host = host.split("%")[0]
    return host, addr[1]


class GatewaySockets:
    """Sockets and datagram I/O of the gateway (mixin)."""

    def _bind(self) -> None:
        hosts = self.config.listen
        if not hosts:
            raise ConfigError(f"{self.config.source}: gateway.listen: no address to listen on")
        last: OSError | None = None
        for _attempt in range(8):
            port, natt = self.config.port, self.config.natt_port
            opened: list[_Listener] = []
            try:
                for host in hosts:
                    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
                    socks = []
                    for p in (port, natt):
                        s = socket.socket(family, socket.SOCK_DGRAM)
                        socks.append(s)
                        if family == socket.AF_INET6:
                            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                        s.setblocking(False)
                        grow_buffers(s, self.config.socket_buffer)
                        try:
                            s.bind((host, p))
                        except OSError:
                            for x in socks:
                                x.close()
                            raise
                    port, natt = socks[0].getsockname()[1], socks[1].getsockname()[1]
                    opened.append(_Listener(host, family, socks[0], socks[1]))
            except OSError as exc:
                if (len(hosts) > 1 and ipaddress.ip_address(host).is_unspecified
                        and exc.errno in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL)):
                    log.warning("not listening on %s: %s", host, exc.strerror)   # e.g. no IPv6
                    hosts = [h for h in hosts if h != host]
                    for lst in opened:
                        lst.ike_sock.close()
                        lst.natt_sock.close()
                    continue
                for lst in opened:
                    lst.ike_sock.close()
                    lst.natt_sock.close()
                last = exc
                if self.config.port and self.config.natt_port:
                    break                   # fixed ports: retrying cannot help
                continue
            self.listeners = opened
            self.port, self.natt_port = port, natt
            return
        raise OSError(last.errno if last else 0,
                      f"cannot bind {hosts} ports {self.config.port}/{self.config.natt_port}: {last}")

    # ============================================================ I/O: input ==
    def _watch(self, lst: _Listener) -> None:
        """Read both of a listener's sockets from the event loop."""
        self.loop.add_reader(lst.ike_sock.fileno(), self._ike_readable, lst)
        self.loop.add_reader(lst.natt_sock.fileno(), self._natt_readable, lst)

    def _unwatch(self, lst: _Listener) -> None:
        for s in (lst.ike_sock, lst.natt_sock):
            try:
                self.loop.remove_reader(s.fileno())
            except (ValueError, OSError):
                pass

    def _ike_readable(self, lst: _Listener) -> None:
        """What waits on the IKE port, up to IKE_RECV_BATCH datagrams in one callback
        (asyncio's datagram transport read one datagram per event-loop round: under
        load that was a loop round and an epoll call per datagram); the timer is
        re-armed once. No size limit: an unfragmented IKE message may be large."""
        sock = lst.ike_sock
        port = self.port
        try:
            for _ in range(IKE_RECV_BATCH):
                try:
                    data, addr = sock.recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:          # e.g. an ICMP error reported on the socket
                    log.debug("IKE socket %s: %s", lst.host, exc)
                    continue
                self.counters["ike_rx"] += 1
                remote = _norm(addr)
                local = (self._local_host(lst, remote[0]), port)
                if self.capture is not None:
                    self.capture.write(data, remote, local)
                self._input(data, remote, local)
        except Exception:        # never let one bad datagram stop the gateway
            self.counters["internal_errors"] += 1
            log.exception("error on the IKE port")
        self._flush()

    def _natt_readable(self, lst: _Listener) -> None:
        rx = self._rx
        try:
            for _ in range(16):
                n = rx.recv(lst.natt_sock, wait=False)
                if n == 0:
                    break
                self.counters["natt_rx"] += n
                if self.capture is not None:
                    for i in range(n):
                        src = rx.address(i)
                        self.capture.write(bytes(rx.packet(i)), src,
                                           (self._local_host(lst, src[0]), self.natt_port))
                rx.classify_udpencap()
                st = rx.status

                def other(i: int, lst=lst) -> None:
                    if st[i] == PKT_IKE:
                        remote = rx.address(i)
                        self._input(NON_ESP_MARKER + bytes(rx.packet(i)), remote,
                                    (self._local_host(lst, remote[0]), self.natt_port))
                    elif st[i] == PKT_KEEPALIVE:
                        self.counters["keepalives_rx"] += 1
                    else:
                        self.dataplane.counters["malformed"] += 1

                self.dataplane.receive_in_order(rx, n, other)
                if n < rx.capacity:
                    break
        except OSError as exc:
            if self.running:
                log.warning("NAT-T socket %s: %s", lst.host, exc)
        except Exception:        # never let one bad datagram stop the gateway
            self.counters["internal_errors"] += 1
            log.exception("error on the NAT-T path")
        self._flush()

    def _input(self, data: bytes, remote, local) -> None:
        """One IKE datagram into the endpoint, and what it produced out at once (the
        caller re-arms the timer once for its batch): the peers work on the answer
        while we read on, and an SA this message installs or deletes applies to the
        datagrams after it."""
        now = self.loop.time()
        try:
            kind = self.endpoint.receive_datagram(data, remote, local, now)
            if kind == Classification.KEEPALIVE:
                self.counters["keepalives_rx"] += 1
        except Exception:
            self.counters["internal_errors"] += 1
            log.exception("error handling a datagram from %s", remote)
        self._flush(arm=False)

    # =========================================================== I/O: output ==
    def _flush(self, *, arm: bool = True) -> None:
        """Send what the endpoint produced, handle its events, re-arm the timer
        (``arm=False``: the caller re-arms later, once for a batch)."""
        if self.endpoint is None:
            return
        for _ in range(100):
            out = self.endpoint.datagrams_to_send()
            for data, remote, local in out:
                self._send(data, remote, local)
            handled = self._process_events()
            if not out and not handled:
                break
        if arm:
            self._arm_timer()

    def _listener_for(self, local) -> _Listener | None:
        host = local[0]
        # the endpoint's own address as text: only IPv6's has a colon (no parse per datagram)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        same = [lst for lst in self.listeners if lst.family == family]
        for lst in same:
            if lst.host == host:
                return lst
        wild = [lst for lst in same if lst.wildcard]
        return (wild or same or [None])[0]

    def _send(self, data: bytes, remote, local) -> None:
        lst = self._listener_for(local)
        if lst is None:
            self.counters["send_errors"] += 1
            log.debug("no socket for local address %s", local)
            return
        self.counters["ike_tx"] += 1
        if self.capture is not None:
            self.capture.write(data, local, remote)
        try:
            (lst.natt_sock if local[1] == self.natt_port else lst.ike_sock).sendto(data, tuple(remote))
        except OSError as exc:          # EAGAIN included: a full buffer drops it, as the network may
            self.counters["send_errors"] += 1
            log.debug("sending to %s: %s", remote, exc)

    def _esp_target(self, state: ChildState):
        from .mobility import esp_target
        # the IKE SA's addresses, as MOBIKE has them now (they may move, RFC 4555)
        return esp_target(self, self.current(state.conn))

    def _local_host(self, lst: _Listener, remote_host: str) -> str:
        return self._local_address(remote_host) if lst.wildcard else lst.host

    def _local_address(self, remote_host: str) -> str:
        """The source address the kernel picks toward ``remote_host``, if we listen on it."""
        cached = self._local_cache.get(remote_host)
        if cached is not None:
            return cached
        family = socket.AF_INET6 if ipaddress.ip_address(remote_host).version == 6 else socket.AF_INET
        bound = [lst.host for lst in self.listeners if lst.family == family]
        if not bound:
            raise IkeError(f"not listening on any IPv{6 if family == socket.AF_INET6 else 4} address")
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((remote_host, 9))
                src = _norm(s.getsockname())[0]
        except OSError:
            src = None
        specific = [h for h in bound if not ipaddress.ip_address(h).is_unspecified]
        if src is None or (specific and src not in specific and len(specific) == len(bound)):
            src = specific[0] if specific else src
        if src is None:
            raise IkeError(f"no route to {remote_host}")
        if len(self._local_cache) > 4096:
            self._local_cache.clear()
        self._local_cache[remote_host] = src
        return src

    async def _resolve(self, host: str) -> str:
        try:
            ipaddress.ip_address(host)
            return host
        except ValueError:
            pass
        infos = await self.loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
        families = {lst.family for lst in self.listeners}
        for family, _, _, _, addr in infos:
            if family in families:
                return _norm(addr)[0]
        raise GatewayError(f"{host}: no address of a family we listen on")

    def _queue_packet(self, child, packet: bytes, next_header: int) -> None:
        try:
            self.packets.put_nowait((child, packet))
        except asyncio.QueueFull:
            self.counters["packets_dropped"] += 1
