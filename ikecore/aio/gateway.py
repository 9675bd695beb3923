"""The asyncio gateway: UDP sockets and timers around the sans-I/O core.

One :class:`~ikecore.protocol.endpoint.IkeEndpoint` holds every IKE SA; the
gateway feeds it datagrams from the IKE port (500) and the NAT-T port (4500), on
IPv4 and IPv6, sends what it produces, runs its timer on the event loop's
clock, and installs the ESP SAs of every Child SA in a
:class:`~ikecore.aio.dataplane.DataPlane`.

This module holds the lifecycle, the public API and event handling; each other
concern is a mixin in its own module:

- ``sockets``: the listeners and datagram I/O. IKE port: an asyncio
  ``DatagramProtocol``. NAT-T port (RFC 3948): read in batches with recvmmsg
  into a :class:`~ikecore.esp.PacketVector`, classified in C: IKE (non-ESP
  marker) to the endpoint, 0xFF keepalives counted, ESP decrypted by SPI in one
  C call.
- ``timers``: one event-loop timer at the endpoint's earliest deadline, and NAT
  keepalives (every ``keepalive_interval``, spread over the interval and sent
  with sendmmsg).
- ``restart``: ``start``/``restart`` connections kept up.
- ``status``: counters and the operator's snapshot.
- ``cloning``: ``clone`` (RFC 7791).
- ``mobility``: MOBIKE (RFC 4555): ``update_addresses``, extra listeners, roaming.

``stop()`` deletes every IKE SA (INFORMATIONAL Delete), waits for the answers
(bounded), then closes the sockets.

Scripting::

    gw = Gateway(load_config("gw.toml"))
    await gw.start()
    conn = await gw.initiate("site-b")                 # IKE SA + first Child SA up
    child = gw.child_sas(conn)[0]
    gw.send_packets([ip_packet], child)                # ESP-in-UDP
    gw.rekey_child(conn); await gw.wait_for(ChildSaRekeyed, conn)
    await gw.stop()
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
from dataclasses import dataclass
from typing import Callable

from ..errors import ConfigError, IkeError
from ..esp import PacketVector
from ..protocol import events as ev
from ..protocol.config import IkeConfig
from ..protocol.describe import esp_suite_text, ike_suite_text
from ..protocol.endpoint import IkeEndpoint
from ..protocol.ike_sa import IkeConnection, State
from ..protocol.limits import unauthenticated_log
from .cloning import GatewayCloning
from .config import GatewayConfig
from .dataplane import ChildState, DataPlane, TunDevice
from .errors import GatewayError
from .keylog import KeyLog
from .mobility import GatewayMobility
from .restart import RestartPolicy
from .resumption import GatewayResumption
from .sockets import NATT_SLOT, GatewaySockets, _Listener
from .virtual_ip import VirtualIps
from .plain_esp import PlainEsp
from .status import GatewayStatus, _ts_text
from .timers import GatewayTimers, KeepaliveScheduler, flush_suppressed_logs

log = logging.getLogger("ikecore.gateway")


@dataclass(eq=False)
class _Waiter:
    kinds: tuple
    conn: IkeConnection | None
    predicate: Callable | None
    future: asyncio.Future


@dataclass(eq=False)
class _Initiation:
    conn: IkeConnection
    future: asyncio.Future
    want_child: bool
    established: bool = False
    keep_up: str | None = None    # a restart connection's name: kept up once established


class Gateway(GatewayResumption, GatewaySockets, GatewayTimers, RestartPolicy, GatewayStatus, GatewayMobility,
              GatewayCloning):
    """An IKEv2 gateway on asyncio. See the module docstring for an example.

    ``on_packet(child, packet, next_header)`` receives decrypted inbound packets
    when no TUN device is configured; without it they go to :attr:`packets`
    (an asyncio.Queue of ``(child, packet)``). ``rng``: randomness for the
    core (default ``os.urandom``). ``event_queue_size``: keep the newest events
    in :attr:`events` for an application that reads them (0, the default: keep
    none, since each holds its IKE SA, keys included, until it is read;
    :meth:`wait_for` needs no queue)."""

    def __init__(self, config: GatewayConfig, *, on_packet: Callable | None = None,
                 rng: Callable[[int], bytes] = os.urandom, event_queue_size: int = 0,
                 packet_queue_size: int = 10000) -> None:
        self.config = config
        self.rng = rng
        self.loop: asyncio.AbstractEventLoop | None = None
        self.endpoint: IkeEndpoint | None = None
        self.events: asyncio.Queue | None = (asyncio.Queue(maxsize=event_queue_size)
                                              if event_queue_size > 0 else None)
        self.packets: asyncio.Queue = asyncio.Queue(maxsize=packet_queue_size)
        self._on_packet = on_packet
        self.dataplane = DataPlane(self._esp_target, batch_size=config.batch_size,
                                   on_packet=on_packet or self._queue_packet)
        self.keylog = (KeyLog(config.key_export.directory, ike=config.key_export.ike,
                              esp=config.key_export.esp) if config.key_export else None)
        self.tun: TunDevice | None = None
        self.listeners: list[_Listener] = []
        self.port = config.port
        self.natt_port = config.natt_port
        self._rx = PacketVector(config.batch_size, slot_size=NATT_SLOT)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._tasks: set[asyncio.Task] = set()
        self._waiters: list[_Waiter] = []
        self._initiations: dict[IkeConnection, _Initiation] = {}
        self._kept_up: dict[str, IkeConnection] = {}   # restart connections: name -> IKE SA
        self.connection_failures: dict[str, dict] = {}   # name -> the last failure (status.py)
        self.virtual_ips = VirtualIps(self)             # road-warrior client addresses on the TUN device
        self.plain_esp = PlainEsp(self)                 # raw ESP sockets for Child SAs without NAT-T
        self._local_cache: dict[str, str] = {}
        self._changed = asyncio.Event()
        self.running = False
        self._stopping = False
        self.counters = {"ike_rx": 0, "ike_tx": 0, "natt_rx": 0, "keepalives_rx": 0, "keepalives_tx": 0,
                         "send_errors": 0, "internal_errors": 0, "events_dropped": 0, "packets_dropped": 0,
                         "ike_sas_established": 0, "child_sas_installed": 0, "ike_sas_deleted": 0,
                         "ike_sas_moved": 0}
        self.started_at: float | None = None
        self.capture = None          # a PcapWriter (or anything with write(data, src, dst)): every datagram
        self.collector = None       # the daemon's CollectorPolicy (aio/collector.py), if any
        self.keepalives = (KeepaliveScheduler(self, config.keepalive_interval)
                           if config.keepalive_interval > 0 else None)

    def set_capture(self, writer) -> None:
        """Record every datagram sent and received (``writer.write(payload, src, dst)``)."""
        self.capture = writer
        self.dataplane.tap = writer.write if writer is not None else None

    # ================================================================ lifecycle ==
    async def start(self) -> "Gateway":
        """Bind the sockets, create the endpoint, start the timers (and the TUN
        device and ``start = true`` connections)."""
        if self.running:
            return self
        self.loop = asyncio.get_running_loop()
        await self._start_tickets()            # [resumption]: store, shared ring, authority
        try:
            self._bind()
        except OSError:
            await self._stop_tickets()
            raise
        now = self.loop.time()
        self._prepare_resumption()
        self.endpoint = IkeEndpoint(None, rng=self.rng, now=now, natt_port=self.natt_port,
                                    cookie_threshold=self.config.cookie_threshold,
                                    select_config=self._select_config, limits=self.config.limits)
        for lst in self.listeners:
            self._watch(lst)
        if any(not spec.ike.force_encap for spec in self.config.connections.values()):
            self.plain_esp.open()                       # only where a connection may use plain ESP
        if self.config.tun is not None:
            self._open_tun()
        self.running = True
        self.started_at = now
        if self.keepalives is not None:
            self._spawn(self.keepalives.run())
        self._spawn(flush_suppressed_logs(self, 10.0))
        if self.config.roam_interval > 0:
            self._spawn(self._roam_loop(self.config.roam_interval))     # MOBIKE: mobility.py
        log.info("gateway listening on %s (IKE %d, NAT-T %d)",
                 ", ".join(lst.host for lst in self.listeners), self.port, self.natt_port)
        for spec in self.config.connections.values():
            if spec.start:
                self._spawn(self._start_connection(spec))
        return self

    async def __aenter__(self) -> "Gateway":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def _open_tun(self) -> None:
        spec = self.config.tun
        tun = TunDevice(spec.name)
        if spec.configure:
            routes = spec.routes if not isinstance(spec.routes, str) else self._auto_routes()
            tun.configure(spec.addresses, routes, spec.mtu)
        self.tun = tun
        self.dataplane.attach_tun(tun)
        self.loop.add_reader(tun.fd, self.dataplane.tun_readable)
        log.info("TUN device %s attached", tun.name)

    def _auto_routes(self) -> list[str]:
        nets: list[str] = []
        for spec in self.config.connections.values():
            for child in spec.ike.children:
                for ts in child.remote_ts:
                    for net in ipaddress.summarize_address_range(ts.start, ts.end):
                        if str(net) not in nets:
                            nets.append(str(net))
        return nets

    async def stop(self, timeout: float = 5.0) -> None:
        """Delete every IKE SA (their Child SAs go with them), wait up to
        ``timeout`` seconds for the peers' answers, then close everything."""
        if not self.running or self._stopping:
            return
        self._stopping = True
        now = self.loop.time()
        for conn in list(self.endpoint.connections.values()):
            try:
                if conn.state == State.INIT_DONE and not conn.initiator:
                    conn.terminate("gateway shutdown", now)
                else:
                    conn.delete(now)
            except IkeError as exc:
                log.debug("%s: delete at shutdown: %s", conn.name, exc)
        self.endpoint.collect_all()
        self._flush()
        deadline = self.loop.time() + timeout
        while self.endpoint.connections and self.loop.time() < deadline:
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), max(0.0, deadline - self.loop.time()))
            except asyncio.TimeoutError:
                break
        now = self.loop.time()
        for conn in list(self.endpoint.connections.values()):
            conn.terminate("gateway shutdown", now)
        self.endpoint.collect_all()
        self._process_events()
        self._close()
        await self._stop_tickets()
        log.info("gateway stopped")

    def abort(self) -> None:
        """Close the sockets at once, with no Delete sent (a crash, for tests)."""
        if self.running:
            self._close()

    def _close(self) -> None:
        self.running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for t in list(self._tasks):
            t.cancel()
        for lst in self.listeners:
            self._unwatch(lst)
            lst.natt_sock.close()
            lst.ike_sock.close()
        self.plain_esp.close()
        self.listeners = []
        if self.tun is not None:
            try:
                self.loop.remove_reader(self.tun.fd)
            except (ValueError, OSError):
                pass
            self.tun.close()
            self.tun = None
        for init in self._initiations.values():
            if not init.future.done():
                init.future.set_exception(GatewayError("the gateway stopped", init.conn))
        for w in self._waiters:
            if not w.future.done():
                w.future.cancel()
        self._changed.set()

    def _spawn(self, coro) -> asyncio.Task:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ============================================================ public API ==
    @property
    def addresses(self) -> list[tuple[str, int, int]]:
        """(host, IKE port, NAT-T port) of every listening address."""
        return [(lst.host, self.port, self.natt_port) for lst in self.listeners]

    def now(self) -> float:
        return self.loop.time()

    async def initiate(self, name: str, *, remote: str | None = None, remote_port: int | None = None,
                       remote_natt_port: int | None = None, child: str | None = None,
                       timeout: float = 30.0) -> IkeConnection:
        """Initiate connection ``name``; returns the IKE SA once it and its first
        Child SA are up. Raises :class:`GatewayError` on failure (the IKE SA is
        deleted when only the Child SA failed) or on ``timeout``."""
        spec = self.config.connection(name)
        host = remote or spec.initiator_target
        if host is None:
            raise ConfigError(f"{self.config.source}: connections.{name}.remote_addrs: "
                              "no single host to initiate to")
        host = await self._resolve(host)
        conn = self.connect(spec.ike, (host, remote_port or spec.remote_port),
                            remote_natt_port=remote_natt_port or spec.remote_natt_port,
                            child=child or spec.start_child, local_host=spec.local_addr)
        if spec.keep_up:
            self._initiations[conn].keep_up = name
        conn = await self.established(conn, timeout=timeout)
        self._start_other_children(conn, spec)        # every child marked to start (restart.py)
        return conn

    def connect(self, config: IkeConfig, remote: tuple[str, int], *, remote_natt_port: int = 4500,
                child: str | None = None, local_host: str | None = None) -> IkeConnection:
        """Start an IKE SA with any IkeConfig (no await; see :meth:`established`)."""
        self._require_running()
        host = remote[0]
        local = (local_host or self._local_address(host), self.port)
        # with a resumption ticket for this connection: IKE_SESSION_RESUME (RFC 5723)
        conn = self._connect_or_resume(config, local, (host, remote[1]), self.loop.time(), child=child,
                                       remote_natt_port=remote_natt_port)
        self._initiations[conn] = _Initiation(conn, self.loop.create_future(), bool(config.children))
        log.info("%s: initiating to %s:%d", conn.name, host, remote[1])
        self._flush()
        return conn

    async def established(self, conn: IkeConnection, timeout: float = 30.0) -> IkeConnection:
        """Wait until an IKE SA started with :meth:`connect` is up with its first Child SA."""
        init = self._initiations.get(conn)
        if init is None:
            if conn.state == State.ESTABLISHED:
                return conn
            raise GatewayError(f"{conn.name}: not being initiated", conn)
        try:
            return await asyncio.wait_for(asyncio.shield(init.future), timeout)
        except asyncio.TimeoutError:
            self._initiations.pop(conn, None)
            self._safe(self.current(conn), lambda target: target.delete(self.loop.time()))
            raise GatewayError(f"{conn.name}: not established within {timeout:g} s", conn) from None

    def current(self, conn: IkeConnection) -> IkeConnection:
        """The IKE SA that now stands for ``conn`` (following IKE rekeys)."""
        seen = 0
        while conn.replaced_by is not None and seen < 1000:
            conn = conn.replaced_by
            seen += 1
        return conn

    @property
    def connections(self) -> list[IkeConnection]:
        """Established IKE SAs."""
        if self.endpoint is None:
            return []
        return [c for c in self.endpoint.connections.values() if c.state == State.ESTABLISHED]

    def child_sas(self, conn: IkeConnection | None = None) -> list:
        """Installed Child SAs (of one IKE SA, or all), newest last; rekeyed-away ones left out."""
        if conn is not None:
            states = self.dataplane.states_of(self.current(conn))
        else:
            states = self.dataplane._by_child.values()
        return [s.child for s in states if s.replaced_by is None]

    def child_state(self, child) -> ChildState | None:
        return self.dataplane.state_of(child)

    # -- commands: each runs on the current IKE SA and sends at once --
    def rekey(self, conn: IkeConnection) -> None:
        self._command(conn, lambda c, now: c.rekey(now))

    def rekey_child(self, conn: IkeConnection, child=None) -> None:
        child = self._child_of(conn, child)
        self._command(conn, lambda c, now: c.rekey_child_sa(now, child.spi_in))

    def create_child(self, conn: IkeConnection, name: str | None = None) -> None:
        self._command(conn, lambda c, now: c.create_child_sa(now, name))

    def delete_child(self, conn: IkeConnection, child=None) -> None:
        child = self._child_of(conn, child)
        self._command(conn, lambda c, now: c.delete_child_sa(now, child.spi_in))

    def delete(self, conn: IkeConnection) -> None:
        """Delete the IKE SA; a ``restart`` connection stays down (this is the
        operator's decision, not a failure)."""
        self._kept_up.pop(self._kept_name(conn), None)
        self._command(conn, lambda c, now: c.delete(now))

    def suspend(self, conn: IkeConnection) -> None:
        """Forget the IKE SA without a Delete, keeping its resumption ticket
        (the peer is gone: what DPD concludes, or a client about to resume
        elsewhere)."""
        self._command(conn, lambda c, now: c.suspend(now))

    def check_liveness(self, conn: IkeConnection) -> None:
        self._command(conn, lambda c, now: c.check_liveness(now))

    def _child_of(self, conn, child):
        if child is None:
            kids = self.child_sas(conn)
            if not kids:
                raise IkeError(f"{conn.name}: no Child SA")
            return kids[0]
        state = self.dataplane.state_of(child)
        return state.current().child if state is not None else child

    def _command(self, conn: IkeConnection, fn) -> None:
        self._require_running()
        target = self.current(conn)
        fn(target, self.loop.time())
        self.endpoint.collect(target)
        self._flush()

    def _require_running(self) -> None:
        if not self.running or self._stopping:
            raise IkeError("the gateway is not running")

    async def wait_for(self, kinds, conn: IkeConnection | None = None, *, predicate=None,
                       timeout: float = 10.0):
        """Wait for the next event of type ``kinds`` (a class or tuple), on ``conn``
        (or any IKE SA that replaced it) when given; returns ``(conn, event)``."""
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        w = _Waiter(kinds, conn, predicate, self.loop.create_future())
        self._waiters.append(w)
        try:
            return await asyncio.wait_for(w.future, timeout)
        finally:
            if w in self._waiters:
                self._waiters.remove(w)

    def send_packets(self, packets, child=None, next_header: int | None = None) -> int:
        """ESP-protect and send IP packets: through ``child`` (or the SA that
        rekeyed it), else each routed by the Child SAs' traffic selectors."""
        return self.dataplane.send_packets(packets, child, next_header)

    # ================================================================ events ==
    def _process_events(self) -> int:
        n = 0
        while (item := self.endpoint.next_event()) is not None:
            conn, event = item
            n += 1
            try:
                self._handle_event(conn, event)
            except Exception:
                self.counters["internal_errors"] += 1
                log.exception("error handling %s", type(event).__name__)
            if self.events is None:
                pass
            elif self.events.full():
                self.counters["events_dropped"] += 1
                self.events.get_nowait()              # keep the newest: drop the oldest
                self.events.put_nowait((conn, event))
            else:
                self.events.put_nowait((conn, event))
            for w in list(self._waiters):
                if w.future.done() or not isinstance(event, w.kinds):
                    continue
                if w.conn is not None and self.current(w.conn) is not self.current(conn):
                    continue
                if w.predicate is not None and not w.predicate(conn, event):
                    continue
                w.future.set_result((conn, event))
                self._waiters.remove(w)
        if n:
            self._changed.set()
        return n

    def _safe(self, conn: IkeConnection, fn) -> None:
        """Run a command on ``conn`` that may fail harmlessly (it may be gone already)."""
        try:
            fn(conn)
        except IkeError as exc:
            log.debug("%s", exc)
        if self.endpoint is not None:
            self.endpoint.collect(conn)

    def _handle_event(self, conn: IkeConnection, event) -> None:
        init = self._initiations.get(conn)
        if isinstance(event, ev.IkeSaEstablished):
            self.counters["ike_sas_established"] += 1
            if self.keepalives is not None:
                self.keepalives.add(conn)
            if log.isEnabledFor(logging.INFO):      # its arguments cost more than the line at load
                log.info("%s: IKE SA established with %s (%s), %s:%d, %s", conn.name, event.remote_id,
                         "initiator" if event.initiator else "responder", *conn.remote,
                         ike_suite_text(conn.suite))
            if self.keylog:
                self.keylog.ike_sa(conn)
            conn.release_session_keys()
            self.virtual_ips.established(conn)
            if init is not None:
                init.established = True
                if not init.want_child:
                    self._resolve_init(conn, result=conn)
        elif isinstance(event, ev.ChildSaInstalled):
            self.counters["child_sas_installed"] += 1
            self.dataplane.install(conn, event.child)
            self._log_child(conn, event.child, "installed")
            if init is not None and init.established:
                self._resolve_init(conn, result=conn)
        elif isinstance(event, ev.ChildSaRekeyed):
            self.dataplane.replace(conn, event.old, event.new)
            self._log_child(conn, event.new, "rekeyed (replaces %s)" % event.old.spi_in.hex())
        elif isinstance(event, ev.ChildSaDeleted):
            self.dataplane.remove(event.child)
            log.info("%s: Child SA %s %s deleted: %s", conn.name, event.child.name,
                     event.child.spi_in.hex(), event.reason)
        elif isinstance(event, ev.ChildSaFailed):
            # a responder's refusal (no child name) was logged by the core when it was sent
            log.log(logging.DEBUG if not event.name else logging.WARNING,
                    "%s: Child SA %s failed: %s", conn.name, event.name, event.reason)
            self.note_failure(conn.config.name, f"Child SA {event.name}: {event.reason}")
            if init is not None and not init.future.done():
                self._resolve_init(conn, error=GatewayError(
                    f"{conn.name}: Child SA {event.name or ''} not created: {event.reason}", conn,
                    event.notify_type))
                self._safe(conn, lambda target: target.delete(self.loop.time()))
        elif isinstance(event, (ev.IkeSaRekeyed, ev.IkeSaCloned)):
            new = event.connection
            if self.keepalives is not None and new is not None:
                self.keepalives.add(new)
            if isinstance(event, ev.IkeSaRekeyed):
                self.dataplane.rehome(conn, new)
                self.virtual_ips.rekeyed(conn, new)
                name = self._kept_name(conn)
                if name is not None and new is not None:
                    self._kept_up[name] = new      # hold the live SA, not the rekeyed-away chain
            log.info("%s: IKE SA %s -> %s", conn.name,
                     "rekeyed" if isinstance(event, ev.IkeSaRekeyed) else "cloned", new.name)
            if self.keylog and new is not None:
                self.keylog.ike_sa(new)
            if new is not None and new.established:
                new.release_session_keys()
        elif isinstance(event, ev.IkeSaDeleted):
            self.counters["ike_sas_deleted"] += 1
            if self.keepalives is not None:
                self.keepalives.discard(conn)
            log.info("%s: IKE SA deleted: %s", conn.name, event.reason)
            if conn.replaced_by is None and event.reason not in ("deleted", "gateway shutdown"):
                self.note_failure(conn.config.name, f"IKE SA: {event.reason}")
            for s in self.dataplane.states_of(conn):
                self.dataplane.remove(s.child)
            self.virtual_ips.deleted(conn)
            if init is not None:
                self._resolve_init(conn, error=GatewayError(
                    f"{conn.name}: IKE SA failed: {event.reason}", conn, event.notify_type))
            self._restart_if_kept(conn, event.reason)
        elif isinstance(event, ev.IkeSaCloneFailed):
            log.info("%s: clone refused: %s", conn.name, event.reason)
        elif isinstance(event, ev.PeerAlive):
            log.debug("%s: peer alive", conn.name)
        elif isinstance(event, ev.IkeSaMoved):
            self._moved(conn, event)
        elif isinstance(event, ev.MobikeFailed):
            log.warning("%s: MOBIKE: %s; staying at %s:%d <-> %s:%d", conn.name, event.reason,
                        *event.local, *event.remote)

    def _log_child(self, conn, child, what: str) -> None:
        if log.isEnabledFor(logging.INFO):          # selectors as text: ~30 us a Child SA
            log.info("%s: Child SA %s %s: in %s out %s, %s, %s, %s <=> %s", conn.name, child.name, what,
                     child.spi_in.hex(), child.spi_out.hex(), "ESP-in-UDP" if child.udp_encap else "ESP",
                     esp_suite_text(child.suite), _ts_text(child.local_ts), _ts_text(child.remote_ts))
        if self.keylog:
            self.keylog.child_sa(child, self.current(conn).local[0], self.current(conn).remote[0])
        if not (self.keylog and self.keylog.esp and conn.config.mobike):
            child.release_keys()         # the installed EspSAs hold them now
        # (MOBIKE with key export: a move writes rows for the new addresses, mobility.py)

    def _resolve_init(self, conn, *, result=None, error=None) -> None:
        init = self._initiations.pop(conn, None)
        if init is None or init.future.done():
            return
        if error is not None:
            init.future.set_exception(error)
            init.future.exception()          # mark retrieved: a timed-out caller may be gone
        else:
            if init.keep_up is not None:
                self._kept_up[init.keep_up] = conn
            init.future.set_result(result)

    def _select_config(self, remote, local) -> IkeConfig | None:
        if self._stopping:
            return None
        for spec in self.config.connections.values():
            if spec.accepts(remote[0]):
                return spec.ike
        unauthenticated_log.info("no connection accepts", "no connection accepts a peer at %s", remote[0])
        return None


__all__ = ["Gateway", "GatewayError"]
