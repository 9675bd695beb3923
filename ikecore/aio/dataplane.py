"""The ESP data plane of the gateway: ESP SAs by Child SA, ESP-in-UDP (RFC 3948)
through :class:`~ikecore.esp.PacketVector` batches, and a Linux TUN device.

Inbound, the gateway hands every batch it read from the NAT-T socket (already
classified by ``classify_udpencap``) to :meth:`DataPlane.receive`: the ESP
packets are decrypted by SPI and checked against their Child SA's traffic
selectors (RFC 4301 §5.2) in one C call (:class:`~ikecore.esp.SelectorTable`)
and written to the TUN device (``write_fd``, one C call) or handed to a
callback.

Outbound, packets read from the TUN device (``read_fd``) or given to
:meth:`DataPlane.send_packets` are routed to a Child SA by its traffic
selectors (one C call per batch, with a flow cache), encrypted per SA in one C
call and sent with sendmmsg. No Python runs per packet on either path unless a
callback or a capture asks for the packets.

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

from ..esp import DUMMY, EMPTY, OK, PENDING, EspSA, PacketVector, SelectorTable
from ..esp import batch as _b
from ..esp.policy import ERR_POLICY, tally_count

log = logging.getLogger("ikecore.dataplane")

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000

# per-status counters of the inbound path (other negative statuses count as malformed)
_ERR_NAMES = {_b.ERR_TAG: "auth_failed", _b.ERR_REPLAY: "replayed", _b.ERR_SPI: "unknown_spi",
              _b.ERR_TRUNCATED: "malformed", _b.ERR_PADDING: "malformed", _b.ERR_BUFFER: "oversized",
              ERR_POLICY: "policy_drops"}
_COUNTED = {OK, DUMMY, *_ERR_NAMES}


# ------------------------------------------------------------------------ TUN --

class TunDevice:
    """A Linux TUN device (IFF_TUN | IFF_NO_PI): one IP packet per read()/write()."""

    def __init__(self, name: str = "ikc0") -> None:
        try:
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise OSError(exc.errno, f"TUN device {name}: cannot open /dev/net/tun: {exc.strerror}"
                          + (" (needs CAP_NET_ADMIN)" if exc.errno in (1, 13) else "")) from None
        try:
            ifr = struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI)
            res = fcntl.ioctl(fd, TUNSETIFF, ifr)
        except OSError as exc:
            os.close(fd)
            hint = " (needs CAP_NET_ADMIN)" if exc.errno in (1, 13) else ""
            raise OSError(exc.errno, f"TUN device {name}: cannot create it: {exc.strerror}{hint}") from None
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

@dataclass(eq=False, slots=True)
class ChildState:
    """One installed Child SA: its two EspSA objects and the IKE SA that owns it."""

    child: object                    # ikecore.protocol.child_sa.ChildSa
    conn: object                     # the IkeConnection that holds it (moves on IKE rekey)
    out_sa: EspSA
    in_sa: EspSA
    replaced_by: "ChildState | None" = None
    removed: bool = False
    policy: SelectorTable | None = field(default=None, repr=False)   # where the drop count lives
    _drops_at_removal: int = field(default=0, repr=False)

    @property
    def policy_drops(self) -> int:
        """Inbound packets dropped for lying outside the selectors."""
        if self.policy is not None and self.spi_in in self.policy:
            return self.policy.drops(self.spi_in)
        return self._drops_at_removal

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
        self.policy = SelectorTable()                # selectors by inbound SPI, in C
        self.states: dict[int, ChildState] = {}      # by inbound SPI
        self._by_child: dict[object, ChildState] = {}   # ChildSa (hashed by identity) -> state
        # IKE SA -> its state, or a list of them oldest first once it has several: most
        # IKE SAs hold one Child SA, and a container per IKE SA costs 200 bytes
        self._by_conn: dict[object, "ChildState | list[ChildState]"] = {}
        self.tx = PacketVector(batch_size, slot_size)
        self.tun_rx = PacketVector(batch_size, slot_size)
        self._probe = PacketVector(1, slot_size)     # route(): one packet
        self._spis: dict[int, object] = {}           # vector capacity -> uint32_t[] of SPIs
        self._groups: dict[int, object] = {}
        self._tally = SelectorTable.tally_array()
        self.counters = {"rx_esp": 0, "rx_ok": 0, "rx_dummy": 0, "auth_failed": 0, "replayed": 0,
                         "unknown_spi": 0, "malformed": 0, "oversized": 0, "policy_drops": 0,
                         "tx_packets": 0, "tx_dropped": 0, "no_route": 0, "tun_rx": 0, "tun_tx": 0}

    # -------------------------------------------------------------- SAs --
    def install(self, conn, child) -> ChildState | None:
        known = self._by_child.get(child)
        if known is not None:
            return known
        out_sa, in_sa = child.esp_sas()
        state = ChildState(child, conn, out_sa, in_sa, policy=self.policy)
        tunnel = child.mode == "tunnel"     # transport mode: neither checked nor routed here
        self.policy.set(in_sa.spi, child.local_ts, child.remote_ts, check=tunnel, route=tunnel)
        self.states[in_sa.spi] = state
        self._by_child[child] = state
        self._file_under(conn, [state])
        self.policy.bind(in_sa.spi, in_sa)     # inbound packets find it by SPI hash
        log.info("%s: ESP SAs installed for child %s: in 0x%08x, out 0x%08x (%s)", getattr(conn, "name", "?"),
                 child.name, in_sa.spi, out_sa.spi, "ESP-in-UDP" if child.udp_encap else "ESP")
        return state

    def replace(self, conn, old, new) -> ChildState | None:
        """A rekey: ``new`` takes over the outbound traffic; ``old`` keeps receiving until deleted."""
        state = self.install(conn, new)
        prev = self._by_child.get(old)
        if prev is not None and prev is not state:
            prev.replaced_by = state
            if prev.spi_in in self.policy:
                self.policy.set_route(prev.spi_in, False)   # still received on, no longer sent through
        return state

    def remove(self, child) -> ChildState | None:
        state = self._by_child.pop(child, None)
        if state is None:
            return None
        state.removed = True
        state._drops_at_removal = state.policy_drops
        filed = self._by_conn.get(state.conn)
        if filed is state:
            del self._by_conn[state.conn]
        elif filed is not None:
            if state in filed:
                filed.remove(state)
            if len(filed) == 1:
                self._by_conn[state.conn] = filed[0]
        self.states.pop(state.spi_in, None)
        self.policy.remove(state.spi_in)
        log.info("%s: ESP SAs removed for child %s (in 0x%08x)", getattr(state.conn, "name", "?"),
                 child.name, state.spi_in)
        return state

    def rehome(self, old_conn, new_conn) -> None:
        """An IKE rekey moved the Child SAs to a new IKE SA."""
        moved = self.states_of(old_conn)
        if not moved:
            return
        del self._by_conn[old_conn]
        for s in moved:
            s.conn = new_conn
        self._file_under(new_conn, moved)

    def _file_under(self, conn, states: list[ChildState]) -> None:
        """Add ``states`` to ``conn``'s entry: the state itself while it is
        alone, a list from the second on."""
        filed = self._by_conn.get(conn)
        if filed is None:
            filed = []
        elif isinstance(filed, ChildState):
            filed = [filed]
        filed.extend(states)
        self._by_conn[conn] = filed[0] if len(filed) == 1 else filed

    def state_of(self, child) -> ChildState | None:
        return self._by_child.get(child)

    def states_of(self, conn) -> list[ChildState]:
        """The Child SAs' states of one IKE SA, oldest first, without a table walk."""
        filed = self._by_conn.get(conn)
        if filed is None:
            return []
        return [filed] if isinstance(filed, ChildState) else list(filed)

    # ----------------------------------------------------------- routing --
    def route(self, pkt) -> ChildState | None:
        """The Child SA whose selectors cover an outbound IP packet (newest first)."""
        probe = self._probe
        if len(pkt) > probe.slot_size - probe.headroom:
            return None
        probe.load([pkt])
        spis, groups = self._arrays(probe)
        routed, _ = self.policy.route(probe, spis, groups)
        return self.states.get(spis[0]) if routed else None

    def _arrays(self, vec: PacketVector):
        """(per-packet SPIs, route groups): uint32_t arrays sized for ``vec``."""
        spis = self._spis.get(vec.capacity)
        if spis is None:
            spis = self._spis[vec.capacity] = SelectorTable.spi_array(vec)
            self._groups[vec.capacity] = SelectorTable.spi_array(vec)
        return spis, self._groups[vec.capacity]

    # ----------------------------------------------------------- inbound --
    def receive(self, vec: PacketVector) -> int:
        """Decrypt every PENDING packet of a batch (ESP after ``classify_udpencap``)
        and check it against its Child SA's selectors, in one C call; deliver the
        good ones. Returns how many were delivered."""
        spis, _ = self._arrays(vec)
        tally = self._tally
        self.policy.receive(vec, None, spis, tally)
        total = sum(tally)
        if not total:
            return 0
        c = self.counters
        c["rx_esp"] += total
        delivered = tally_count(tally, OK)
        c["rx_ok"] += delivered
        c["rx_dummy"] += tally_count(tally, DUMMY)
        for status, name in _ERR_NAMES.items():
            c[name] += tally_count(tally, status)
        c["malformed"] += total - sum(tally_count(tally, s) for s in _COUNTED)
        if not delivered:
            return 0
        if self.tun is not None:
            try:
                c["tun_tx"] += vec.write_fd(self.tun.fd)
            except OSError as exc:
                log.warning("writing to %s: %s", self.tun.name, exc)
        elif self.on_packet is not None:
            nh = vec.next_headers
            for i in vec.iter_status(OK):
                state = self.states.get(spis[i])
                try:
                    self.on_packet(state.child, bytes(vec.packet(i)), nh[i])
                except Exception:     # a broken callback must not stop the data path
                    log.exception("packet callback failed")
        # handled: a later call on this vector must not deliver them again
        vec.restatus(OK, EMPTY)
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
    def _send_group(self, vec: PacketVector, state: ChildState) -> int:
        """Encrypt the PENDING packets of ``vec`` for ``state`` and send them."""
        c = self.counters
        n = vec.count_status(PENDING)
        target = self.resolve(state)
        if target is None:
            c["tx_dropped"] += vec.restatus(PENDING, EMPTY)
            return 0
        sock, addr, local = target
        n_ok = state.out_sa.encrypt_batch(vec, next_header="ip" if state.child.mode == "tunnel" else None)
        if self.tap is not None:
            for i in vec.iter_status(OK):
                self.tap(bytes(vec.packet(i)), local, addr)
        vec.set_address(None, addr)
        try:
            sent = vec.send(sock)
        except OSError as exc:
            log.debug("sending ESP: %s", exc)
            sent = 0
        # not sent (socket full): drop, as a router would; encryption failures too
        c["tx_packets"] += sent
        c["tx_dropped"] += vec.restatus(OK, EMPTY) + (n - n_ok)
        return sent

    def _route_and_send(self, vec: PacketVector) -> int:
        spis, groups = self._arrays(vec)
        pending = vec.count_status(PENDING)
        if not pending:
            return 0
        routed, n_groups = self.policy.route(vec, spis, groups)
        self.counters["no_route"] += pending - routed
        if n_groups == 1:
            return self._send_group(vec, self.states[groups[0]])
        sent = 0
        for g in range(n_groups):           # one SA's packets at a time, the others parked
            self.policy.select(vec, spis, groups[g])
            sent += self._send_group(vec, self.states[groups[g]])
        return sent

    def send_packets(self, packets: Iterable[bytes], child=None, next_header: int | None = None) -> int:
        """Encrypt and send packets: through ``child`` (its newest rekeyed
        successor), or each routed by the selectors. Returns how many were sent."""
        state = None
        if child is not None:
            state = self._by_child.get(child)
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
                sent += self._send_group(vec, state)
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


__all__ = ["DataPlane", "ChildState", "TunDevice"]
