"""The ESP data plane of the gateway: ESP SAs by Child SA, ESP-in-UDP (RFC 3948)
through :class:`~ikecore.esp.PacketVector` batches, and a Linux TUN device.

Inbound, the gateway hands every batch it read from the NAT-T socket (already
classified by ``classify_udpencap``) to :meth:`DataPlane.receive`: the ESP
packets are decrypted by SPI in one C call (:class:`~ikecore.esp.InboundSATable`),
checked against the Child SA's traffic selectors (RFC 4301 §5.2) and written to
the TUN device (``write_fd``, one C call) or handed to a callback.

Outbound, packets read from the TUN device (``read_fd``) or given to
:meth:`DataPlane.send_packets` are routed to a Child SA by its traffic
selectors, encrypted per SA in one C call and sent with sendmmsg.

Only tunnel mode is routed through the TUN device; transport-mode Child SAs
are reachable through ``send_packets`` and the callback (``next_header`` says
what the payload is).
"""
from __future__ import annotations

import fcntl
import ipaddress
import logging
import os
import struct
import subprocess
from dataclasses import dataclass, field
from typing import Callable, Iterable

from ..esp import EMPTY, OK, PENDING, EspSA, InboundSATable, PacketVector
from ..esp import batch as _b
from ..protocol.constants import TsType

log = logging.getLogger("ikecore.dataplane")

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000

_PORT_PROTOCOLS = (6, 17, 132)      # TCP, UDP, SCTP: ports follow the IP header
_ERR_NAMES = {_b.ERR_TAG: "auth_failed", _b.ERR_REPLAY: "replayed", _b.ERR_SPI: "unknown_spi",
              _b.ERR_TRUNCATED: "malformed", _b.ERR_PADDING: "malformed", _b.ERR_BUFFER: "oversized"}


# ----------------------------------------------------------------- selectors --

def packet_5tuple(pkt) -> tuple[int, bytes, bytes, int, int, int] | None:
    """(IP version, src, dst, protocol, src port, dst port) of an IP packet, or None.
    Ports are 0 when absent (other protocols, non-first fragments)."""
    if len(pkt) < 20:
        return None
    v = pkt[0] >> 4
    if v == 4:
        ihl = (pkt[0] & 15) * 4
        proto = pkt[9]
        src, dst = bytes(pkt[12:16]), bytes(pkt[16:20])
        frag_off = ((pkt[6] & 0x1F) << 8) | pkt[7]
        sport = dport = 0
        if proto in _PORT_PROTOCOLS and frag_off == 0 and len(pkt) >= ihl + 4:
            sport, dport = struct.unpack_from("!HH", pkt, ihl)
        return 4, src, dst, proto, sport, dport
    if v == 6 and len(pkt) >= 40:
        proto = pkt[6]
        sport = dport = 0
        if proto in _PORT_PROTOCOLS and len(pkt) >= 44:
            sport, dport = struct.unpack_from("!HH", pkt, 40)
        return 6, bytes(pkt[8:24]), bytes(pkt[24:40]), proto, sport, dport
    return None


def _ts_match(ts, version: int, addr: bytes, proto: int, port: int) -> bool:
    kind = TsType.TS_IPV4_ADDR_RANGE if version == 4 else TsType.TS_IPV6_ADDR_RANGE
    if getattr(ts, "ts_type", None) != kind:
        return False
    if not ts.start_addr <= addr <= ts.end_addr:
        return False
    if ts.ip_protocol and ts.ip_protocol != proto:
        return False
    if (ts.start_port, ts.end_port) != (0, 65535) and not ts.start_port <= port <= ts.end_port:
        return False
    return True


def selectors_allow(local_ts, remote_ts, tup, *, outbound: bool) -> bool:
    """Whether a packet's 5-tuple falls inside a Child SA's selectors."""
    v, src, dst, proto, sport, dport = tup
    if outbound:
        lo, lp, ro, rp = src, sport, dst, dport
    else:
        lo, lp, ro, rp = dst, dport, src, sport
    return (any(_ts_match(t, v, lo, proto, lp) for t in local_ts) and
            any(_ts_match(t, v, ro, proto, rp) for t in remote_ts))


# ------------------------------------------------------------------------ TUN --

class TunDevice:
    """A Linux TUN device (IFF_TUN | IFF_NO_PI): one IP packet per read()/write()."""

    def __init__(self, name: str = "ikc0") -> None:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            ifr = struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI)
            res = fcntl.ioctl(fd, TUNSETIFF, ifr)
        except OSError:
            os.close(fd)
            raise
        self.fd = fd
        self.name = res[:16].rstrip(b"\0").decode()

    def configure(self, addresses: Iterable[str] = (), routes: Iterable[str] = (), mtu: int | None = None) -> None:
        """Bring the device up with addresses and routes (runs ``ip``; needs CAP_NET_ADMIN)."""
        def ip(*args: str) -> None:
            r = subprocess.run(["ip", *args], capture_output=True, text=True)
            if r.returncode != 0:
                raise OSError(f"ip {' '.join(args)}: {r.stderr.strip()}")
        if mtu:
            ip("link", "set", "dev", self.name, "mtu", str(mtu))
        ip("link", "set", "dev", self.name, "up")
        for a in addresses:
            ip("addr", "add", a, "dev", self.name)
        for r in routes:
            family = "-6" if ipaddress.ip_network(r, strict=False).version == 6 else "-4"
            ip(family, "route", "replace", r, "dev", self.name)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __repr__(self) -> str:
        return f"TunDevice({self.name!r}, fd={self.fd})"


# ------------------------------------------------------------------ SA table --

@dataclass(eq=False)
class ChildState:
    """One installed Child SA: its two EspSA objects and the IKE SA that owns it."""

    child: object                    # ikecore.protocol.child_sa.ChildSa
    conn: object                     # the IkeConnection that holds it (moves on IKE rekey)
    out_sa: EspSA
    in_sa: EspSA
    replaced_by: "ChildState | None" = None
    removed: bool = False
    policy_drops: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def spi_in(self) -> int:
        return self.in_sa.spi

    @property
    def spi_out(self) -> int:
        return self.out_sa.spi

    def current(self) -> "ChildState":
        s = self
        while s.replaced_by is not None and not s.replaced_by.removed:
            s = s.replaced_by
        return s

    def stats(self) -> dict:
        o, i = self.out_sa.stats(), self.in_sa.stats()
        return {"name": self.child.name, "spi_in": f"{self.spi_in:08x}", "spi_out": f"{self.spi_out:08x}",
                "tx_packets": o["packets"], "tx_bytes": o["octets"],
                "rx_packets": i["packets"], "rx_bytes": i["octets"],
                "rx_auth_failed": i["auth_failed"], "rx_replayed": i["replayed"],
                "policy_drops": self.policy_drops}


# a function the gateway provides: (state) -> (socket, (host, port) to send its ESP to, our
# (host, port)), or None
Resolver = Callable[[ChildState], "tuple[object, tuple[str, int], tuple[str, int]] | None"]
# inbound delivery when there is no TUN device: (child, packet bytes, next header)
PacketCallback = Callable[[object, bytes, int], None]


class DataPlane:
    """ESP SAs of every Child SA, with batch encryption/decryption."""

    def __init__(self, resolve: Resolver, *, batch_size: int = 64, slot_size: int = 2048,
                 on_packet: PacketCallback | None = None) -> None:
        self.resolve = resolve
        self.on_packet = on_packet
        self.tap: Callable | None = None       # tap(datagram, src, dst): a capture of sent ESP
        self.tun: TunDevice | None = None
        self.batch_size = batch_size
        self.inbound = InboundSATable()
        self.states: dict[int, ChildState] = {}      # by inbound SPI
        self._by_child: dict[int, ChildState] = {}   # id(ChildSa) -> state
        self._route_cache: dict = {}
        self.tx = PacketVector(batch_size, slot_size)
        self.tun_rx = PacketVector(batch_size, slot_size)
        self.counters = {"rx_esp": 0, "rx_ok": 0, "rx_dummy": 0, "auth_failed": 0, "replayed": 0,
                         "unknown_spi": 0, "malformed": 0, "oversized": 0, "policy_drops": 0,
                         "tx_packets": 0, "tx_dropped": 0, "no_route": 0, "tun_rx": 0, "tun_tx": 0}

    # -------------------------------------------------------------- SAs --
    def install(self, conn, child) -> ChildState | None:
        if id(child) in self._by_child:
            return self._by_child[id(child)]
        if not child.udp_encap:
            log.warning("%s: Child SA %s without UDP encapsulation: plain ESP (IP protocol 50) is not "
                        "carried by this gateway; set encap = true", getattr(conn, "name", "?"), child.spi_in.hex())
        out_sa, in_sa = child.esp_sas()
        state = ChildState(child, conn, out_sa, in_sa)
        self.states[in_sa.spi] = state
        self._by_child[id(child)] = state
        self.inbound.add(in_sa)
        self._route_cache.clear()
        log.info("%s: ESP SAs installed for child %s: in 0x%08x, out 0x%08x (%s)", getattr(conn, "name", "?"),
                 child.name, in_sa.spi, out_sa.spi, "ESP-in-UDP" if child.udp_encap else "ESP")
        return state

    def replace(self, conn, old, new) -> ChildState | None:
        """A rekey: ``new`` takes over the outbound traffic; ``old`` keeps receiving until deleted."""
        state = self.install(conn, new)
        prev = self._by_child.get(id(old))
        if prev is not None and prev is not state:
            prev.replaced_by = state
        self._route_cache.clear()
        return state

    def remove(self, child) -> ChildState | None:
        state = self._by_child.pop(id(child), None)
        if state is None:
            return None
        state.removed = True
        self.states.pop(state.spi_in, None)
        self.inbound.remove(state.spi_in)
        self._route_cache.clear()
        log.info("%s: ESP SAs removed for child %s (in 0x%08x)", getattr(state.conn, "name", "?"),
                 child.name, state.spi_in)
        return state

    def rehome(self, old_conn, new_conn) -> None:
        """An IKE rekey moved the Child SAs to a new IKE SA."""
        for s in self._by_child.values():
            if s.conn is old_conn:
                s.conn = new_conn

    def state_of(self, child) -> ChildState | None:
        return self._by_child.get(id(child))

    def states_of(self, conn) -> list[ChildState]:
        return [s for s in self._by_child.values() if s.conn is conn]

    # ----------------------------------------------------------- routing --
    def route(self, pkt) -> ChildState | None:
        """The Child SA whose selectors cover an outbound IP packet (newest first)."""
        tup = packet_5tuple(pkt)
        if tup is None:
            return None
        cached = self._route_cache.get(tup)
        if cached is not None:
            return cached
        for s in reversed(list(self._by_child.values())):
            if s.replaced_by is not None or s.child.mode != "tunnel":
                continue
            if selectors_allow(s.child.local_ts, s.child.remote_ts, tup, outbound=True):
                if len(self._route_cache) > 4096:
                    self._route_cache.clear()
                self._route_cache[tup] = s
                return s
        return None

    # ----------------------------------------------------------- inbound --
    def receive(self, vec: PacketVector) -> int:
        """Decrypt every PENDING packet of a batch (ESP after ``classify_udpencap``);
        deliver the good ones. Returns how many were delivered."""
        pending = list(vec.iter_status(PENDING))
        if not pending:
            return 0
        c = self.counters
        c["rx_esp"] += len(pending)
        spis = {}
        for i in pending:
            p = vec.packet(i)
            spis[i] = int.from_bytes(p[:4], "big") if len(p) >= 4 else 0
        self.inbound.decrypt_batch(vec)
        delivered = 0
        st, nh = vec.status, vec.next_headers
        for i in pending:
            s = st[i]
            if s == OK:
                state = self.states.get(spis[i])
                pkt = vec.packet(i)
                if state is None:
                    st[i] = EMPTY
                    continue
                if state.child.mode == "tunnel":
                    tup = packet_5tuple(pkt) if nh[i] in (4, 41) else None
                    if tup is None or not selectors_allow(state.child.local_ts, state.child.remote_ts,
                                                          tup, outbound=False):
                        state.policy_drops += 1
                        c["policy_drops"] += 1
                        st[i] = EMPTY
                        continue
                delivered += 1
                if self.tun is None:
                    if self.on_packet is not None:
                        try:
                            self.on_packet(state.child, bytes(pkt), nh[i])
                        except Exception:     # a broken callback must not stop the data path
                            log.exception("packet callback failed")
                    st[i] = EMPTY
            elif s == _b.DUMMY:
                c["rx_dummy"] += 1
            else:
                c[_ERR_NAMES.get(s, "malformed")] += 1
        c["rx_ok"] += delivered
        if self.tun is not None and delivered:
            try:
                c["tun_tx"] += vec.write_fd(self.tun.fd)
            except OSError as exc:
                log.warning("writing to %s: %s", self.tun.name, exc)
            for i in pending:            # handled: a later call on this vector must not write them again
                if st[i] == OK:
                    st[i] = EMPTY
        return delivered

    def receive_in_order(self, vec: PacketVector, count: int, on_other: Callable[[int], None]) -> None:
        """Like :meth:`receive`, but packets that are not ESP (``status`` other than
        PENDING, e.g. IKE) are handed to ``on_other(i)`` in arrival order between
        the ESP runs, so that an IKE message installing or deleting an SA takes
        effect exactly where it arrived in the batch."""
        st = vec.status
        others = [i for i in range(count) if st[i] != PENDING and st[i] != EMPTY]
        if not others:
            self.receive(vec)
            return
        start = 0
        for k in others + [count]:
            parked = [i for i in range(k, count) if st[i] == PENDING]
            for i in parked:
                st[i] = EMPTY
            if any(st[i] == PENDING for i in range(start, k)):
                self.receive(vec)
            for i in parked:
                st[i] = PENDING
            if k < count:
                on_other(k)
            start = k + 1

    # ---------------------------------------------------------- outbound --
    def _send_group(self, vec: PacketVector, state: ChildState, idx: list[int] | None) -> int:
        """Encrypt the PENDING packets of ``vec`` (only ``idx`` when given) for ``state`` and send them."""
        target = self.resolve(state)
        if target is None:
            self.counters["tx_dropped"] += len(idx) if idx is not None else vec.count
            return 0
        sock, addr, local = target
        state.out_sa.encrypt_batch(vec, next_header="ip" if state.child.mode == "tunnel" else None)
        if self.tap is not None:
            for i in (idx if idx is not None else range(vec.count)):
                if vec.status[i] == OK:
                    self.tap(bytes(vec.packet(i)), local, addr)
        if idx is None:
            vec.set_address(None, addr)
        else:
            for i in idx:
                vec.set_address(i, addr)
        try:
            sent = vec.send(sock)
        except OSError as exc:
            log.debug("sending ESP: %s", exc)
            sent = 0
        st = vec.status
        left = 0
        for i in (idx if idx is not None else range(vec.count)):
            if st[i] == OK:          # not sent (socket full): drop, as a router would
                st[i] = EMPTY
                left += 1
            elif st[i] < 0:
                left += 1
        self.counters["tx_packets"] += sent
        self.counters["tx_dropped"] += left
        return sent

    def _route_and_send(self, vec: PacketVector) -> int:
        groups: dict[int, tuple[ChildState, list[int]]] = {}
        st = vec.status
        for i in range(vec.count):
            if st[i] != PENDING:
                continue
            state = self.route(vec.packet(i))
            if state is None:
                st[i] = EMPTY
                self.counters["no_route"] += 1
                continue
            groups.setdefault(id(state), (state, []))[1].append(i)
        if not groups:
            return 0
        if len(groups) == 1:
            state, idx = next(iter(groups.values()))
            return self._send_group(vec, state, idx)
        sent = 0
        members = [g for g in groups.values()]
        for state, idx in members:          # park the others, encrypt one SA's packets at a time
            for i in idx:
                st[i] = EMPTY
        for state, idx in members:
            for i in idx:
                st[i] = PENDING
            sent += self._send_group(vec, state, idx)
        return sent

    def send_packets(self, packets: Iterable[bytes], child=None, next_header: int | None = None) -> int:
        """Encrypt and send packets: through ``child`` (its newest rekeyed
        successor), or each routed by the selectors. Returns how many were sent."""
        state = None
        if child is not None:
            state = self._by_child.get(id(child))
            if state is None:
                raise LookupError(f"Child SA {child.name} is not installed")
            state = state.current()
            if state.removed:
                raise LookupError(f"Child SA {child.name} was deleted")
        packets = list(packets)
        sent = 0
        vec = self.tx
        for start in range(0, len(packets), vec.capacity):
            chunk = packets[start:start + vec.capacity]
            vec.load(chunk, next_header)
            if state is None:
                sent += self._route_and_send(vec)
            else:
                sent += self._send_group(vec, state, None)
        return sent

    # --------------------------------------------------------------- TUN --
    def attach_tun(self, tun: TunDevice) -> None:
        self.tun = tun

    def tun_readable(self, max_batches: int = 16) -> None:
        """Read what the TUN device has (in batches) and send it through the Child SAs."""
        if self.tun is None:
            return
        for _ in range(max_batches):
            try:
                n = self.tun_rx.read_fd(self.tun.fd, wait=False)
            except OSError as exc:
                log.warning("reading %s: %s", self.tun.name, exc)
                return
            if n == 0:
                return
            self.counters["tun_rx"] += n
            self._route_and_send(self.tun_rx)

    def stats(self) -> dict:
        return {"counters": dict(self.counters), "child_sas": [s.stats() for s in self._by_child.values()]}


__all__ = ["DataPlane", "ChildState", "TunDevice", "packet_5tuple", "selectors_allow"]
