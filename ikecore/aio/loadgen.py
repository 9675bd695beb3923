"""``ikecore load``: an IKEv2 load generator in the spirit of strongSwan's load-tester.

Many initiators share one asyncio event loop, one
:class:`~ikecore.protocol.endpoint.IkeEndpoint` and two UDP sockets (IKE and
NAT-T) on one local address. Each simulated initiator is one IKE SA with one
Child SA (tunnel mode), its own identity (``id_template``, e.g.
``load-{n}@ikecore.test``) and its own inner host address (``inner_net``), so
any responder that accepts a range of identities and narrows its selectors can
take them: an ``ikecore gateway`` or a strongSwan charon. Load SAs never say
INITIAL_CONTACT, which would make a responder drop the SAs it holds with an
identity it has seen before.

The endpoint's own timers run as usual: retransmissions, half-open limits.

Work is done in phases; each returns a :class:`PhaseResult` with its rate,
its failures by reason and, where the responder's PID is known, the
responder's CPU time and RSS growth over the phase (``/proc/PID``):

    gen = LoadGenerator(LoadSpec("192.0.2.2", template=ike_config), responder_pid=pid)
    await gen.start()
    est = await gen.establish(10_000)          # IKE SA + Child SA each; the SAs are then held
    storm = await gen.rekey_children(60.0)     # every held Child SA rekeyed, spread over 60 s
    gone = await gen.delete_all()
    await gen.close()

:func:`format_summary` turns the results into the text ``ikecore load`` prints.
"""
from __future__ import annotations

import asyncio
import dataclasses
import gc
import ipaddress
import os
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from ..errors import ConfigError, IkeError
from ..protocol import events as ev
from ..protocol.config import Identity, IkeConfig, TrafficSelectorSpec
from ..protocol.endpoint import IkeEndpoint
from ..protocol.ike_sa import IkeConnection, State
from .sockets import grow_buffers
from .timers import GatewayTimers

RECV_BATCH = 256                 # datagrams read per readiness callback and socket
DEFAULT_SOCKET_BUFFER = 8 << 20  # bursts of thousands of replies must not overflow


# ----------------------------------------------------------------- responder --

@dataclass(frozen=True)
class ProcSample:
    at: float          # time.monotonic()
    cpu_s: float       # user + system CPU seconds, all threads
    rss_kb: int


class ProcessStats:
    """CPU time and resident memory of a process (the responder), from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._tick = os.sysconf("SC_CLK_TCK")

    def sample(self) -> ProcSample | None:
        """None once the process is gone (or /proc is not there)."""
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{self.pid}/status") as f:
                status = f.read()
        except OSError:
            return None
        # the command name may hold spaces and parentheses: the fields follow the last ')'
        fields = stat[stat.rindex(")") + 2:].split()
        cpu = (int(fields[11]) + int(fields[12])) / self._tick      # utime, stime
        rss = 0
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
                break
        return ProcSample(time.monotonic(), cpu, rss)


# -------------------------------------------------------------------- spec --

@dataclass
class LoadSpec:
    """What to load and how hard."""

    remote: str                              # the responder's address
    template: IkeConfig                      # suites, authentication, the Child SA (its first child)
    port: int = 500                          # the responder's IKE port
    natt_port: int = 4500                    # the responder's NAT-T port
    source: str | None = None                # our address (default: the one routed toward remote)
    id_template: str | None = "load-{n}@ikecore.test"   # our identity per SA; None: the template's
    inner_net: str | None = "10.128.0.0/9"   # per-SA local selector: host n+1 of this network; None: the template's
    concurrency: int = 64                    # handshakes (or deletes) in flight at once
    rate: float = 0.0                        # new handshakes per second (0: as fast as concurrency allows)
    socket_buffer: int = DEFAULT_SOCKET_BUFFER

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError("concurrency must be at least 1")
        if self.rate < 0:
            raise ConfigError("rate must not be negative")
        if not self.template.children:
            raise ConfigError("the load configuration needs a Child SA")
        if self.id_template is not None:
            try:
                Identity.parse(self.id_template.format(n=0))
            except (KeyError, IndexError, ValueError) as exc:
                raise ConfigError(f"bad identity template {self.id_template!r}: {exc}") from None
        if self.inner_net is not None:
            try:
                net = ipaddress.ip_network(self.inner_net, strict=False)
            except ValueError as exc:
                raise ConfigError(f"bad inner network {self.inner_net!r}: {exc}") from None
            self._inner = net

    def inner_capacity(self) -> int | None:
        """How many distinct per-SA inner addresses the network has."""
        return None if self.inner_net is None else self._inner.num_addresses - 2

    def config_for(self, n: int) -> IkeConfig:
        """The configuration of simulated initiator ``n``: the template with its own
        identity and inner host. Copied field by field, not by dataclasses.replace:
        the template was validated once, and revalidating it for every SA was a tenth
        of the generator's CPU per handshake."""
        cfg = self.template
        changes: dict = {"initial_contact": False}
        if self.id_template is not None:
            changes["local_id"] = Identity.parse(self.id_template.format(n=n))
        if self.inner_net is not None:
            host = self._inner.network_address + 1 + n % (self._inner.num_addresses - 2)
            child = _copy_with(cfg.children[0], local_ts=[TrafficSelectorSpec(host, host)])
            changes["children"] = [child, *cfg.children[1:]]
        return _copy_with(cfg, **changes)


def _copy_with(obj, **changes):
    """A shallow copy of a (non-frozen, slot-less) dataclass instance with ``changes``,
    without running its __init__/__post_init__ again."""
    new = object.__new__(type(obj))
    new.__dict__.update(obj.__dict__, **changes)
    return new


# ------------------------------------------------------------------ phases --

@dataclass
class PhaseResult:
    """One phase: how many operations it started and completed, in how long,
    what failed (by reason), and what the responder spent meanwhile."""

    name: str                       # "establish", "rekey", "ike-rekey", "clone", "resume", "delete"
    requested: int
    started: int = 0
    completed: int = 0
    elapsed: float = 0.0
    failures: Counter = field(default_factory=Counter)
    latencies: list = field(default_factory=list, repr=False)   # seconds, per completed operation
    held_before: int = 0            # SAs held when the phase began
    responder_before: ProcSample | None = None
    responder_after: ProcSample | None = None
    ike_sas: int = 0                # establish: IKE SAs up (with or without their Child SA)
    child_sas: int = 0              # establish: Child SAs installed
    began_at: float = field(default=0.0, repr=False)   # the event loop's clock

    @property
    def rate(self) -> float:
        return self.completed / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def responder_cpu_s(self) -> float | None:
        if self.responder_before is None or self.responder_after is None:
            return None
        return self.responder_after.cpu_s - self.responder_before.cpu_s

    @property
    def responder_rss_growth_kb(self) -> int | None:
        if self.responder_before is None or self.responder_after is None:
            return None
        return self.responder_after.rss_kb - self.responder_before.rss_kb

    def percentile(self, p: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def as_dict(self) -> dict:
        cpu = self.responder_cpu_s
        rss = self.responder_rss_growth_kb
        out = {"phase": self.name, "requested": self.requested, "started": self.started,
               "completed": self.completed, "elapsed_s": round(self.elapsed, 4),
               "per_s": round(self.rate, 2), "failures": dict(self.failures), "held_before": self.held_before}
        if self.name in ("establish", "resume"):
            out.update(ike_sas=self.ike_sas, child_sas=self.child_sas,
                       ike_sas_per_s=round(self.ike_sas / self.elapsed, 2) if self.elapsed else 0.0,
                       child_sas_per_s=round(self.child_sas / self.elapsed, 2) if self.elapsed else 0.0)
        if self.latencies:
            out["latency_ms"] = {f"p{p}": round(self.percentile(p) * 1000, 3) for p in (50, 90, 99)}
        if cpu is not None:
            out["responder"] = {
                "cpu_s": round(cpu, 3),
                "cpu_ms_per_op": round(cpu * 1000 / self.completed, 4) if self.completed else None,
                "cpu_utilization": round(cpu / self.elapsed, 3) if self.elapsed else None,
                "rss_kb_before": self.responder_before.rss_kb, "rss_kb_after": self.responder_after.rss_kb,
                "rss_growth_kb": rss,
                "rss_kb_per_op": round(rss / self.completed, 3) if self.completed else None,
            }
        return out


@dataclass(eq=False)
class _Track:
    """One operation in flight: which phase, which SA, since when."""
    phase: PhaseResult
    index: int
    started_at: float
    fell_back: str | None = None    # resume: why the gateway refused the ticket (a full handshake followed)


# --------------------------------------------------------------- generator --

class LoadGenerator(GatewayTimers):
    """Many IKE initiators on one event loop. See the module docstring.

    ``progress(snapshot)`` is called about every ``progress_interval`` seconds
    while a phase runs (see :meth:`snapshot`). ``freeze_gc``: after each
    establish phase, move every object of the process out of the cyclic
    garbage collector's reach (``gc.freeze()``, undone by :meth:`close`). With
    100,000 SAs held, a full collection takes seconds, during which no
    datagram is read and the responder idles; a process that only generates
    load can afford it, one that embeds the generator may not."""

    def __init__(self, spec: LoadSpec, *, responder_pid: int | None = None,
                 progress: Callable[[dict], None] | None = None, progress_interval: float = 1.0,
                 rng: Callable[[int], bytes] = os.urandom, freeze_gc: bool = False) -> None:
        self.spec = spec
        self.freeze_gc = freeze_gc
        self._gc_frozen = False
        self.rng = rng
        self.responder = ProcessStats(responder_pid) if responder_pid else None
        self.progress = progress
        self.progress_interval = progress_interval
        self.loop: asyncio.AbstractEventLoop | None = None
        self.endpoint: IkeEndpoint | None = None
        self.held: dict[int, IkeConnection] = {}       # simulated initiator -> its established IKE SA
        self._index_of: dict[IkeConnection, int] = {}
        self._tracks: dict[IkeConnection, _Track] = {}
        self._next_index = 0
        self._phase: PhaseResult | None = None
        self._wake = asyncio.Event()                   # set when the running phase has nothing left in flight
        self._top_up: Callable[[float], None] | None = None   # the running phase's starter
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._socks: dict[int, socket.socket] = {}    # local port -> socket
        self.local: str | None = None
        self.ike_port = 0
        self.natt_port = 0
        self.counters = Counter()                      # datagrams, socket errors, SAs lost while held
        self.lost = Counter()                          # held SAs that went away, by reason
        self.tickets: dict[int, object] = {}           # simulated initiator -> its newest ClientTicket
        self.clones: dict[IkeConnection, int] = {}     # clones made by clone_all -> their original's initiator

    # ----------------------------------------------------------- lifecycle --
    async def start(self) -> "LoadGenerator":
        self.loop = asyncio.get_running_loop()
        spec = self.spec
        family = socket.AF_INET6 if ipaddress.ip_address(spec.remote).version == 6 else socket.AF_INET
        self.local = spec.source or _route_source(spec.remote, family)
        socks = []
        try:
            for _ in range(2):                          # NAT-T first: the endpoint needs its port
                s = socket.socket(family, socket.SOCK_DGRAM)
                socks.append(s)
                s.setblocking(False)
                grow_buffers(s, spec.socket_buffer)
                s.bind((self.local, 0))
        except OSError:
            for s in socks:
                s.close()
            raise
        natt, ike = socks
        self.natt_port, self.ike_port = natt.getsockname()[1], ike.getsockname()[1]
        self._socks = {self.natt_port: natt, self.ike_port: ike}
        self.endpoint = IkeEndpoint(None, rng=self.rng, now=self.loop.time(), natt_port=self.natt_port,
                                    select_config=lambda remote, local: None)   # we answer no IKE_SA_INIT
        for port, s in self._socks.items():
            self.loop.add_reader(s.fileno(), self._readable, s, (self.local, port))
        return self

    async def close(self) -> None:
        """Forget every SA (no Delete: use :meth:`delete_all` first) and close the sockets."""
        if self._gc_frozen:
            gc.unfreeze()
            self._gc_frozen = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for s in self._socks.values():
            try:
                self.loop.remove_reader(s.fileno())
            except (ValueError, OSError):
                pass
            s.close()
        self._socks = {}

    async def __aenter__(self) -> "LoadGenerator":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # -------------------------------------------------------------- phases --
    async def establish(self, count: int, *, rate: float | None = None, concurrency: int | None = None,
                        timeout: float | None = None) -> PhaseResult:
        """Start ``count`` simulated initiators (IKE SA + Child SA each) and hold
        those that come up. ``timeout``: give up on what is still in flight."""
        phase = PhaseResult("establish", count)

        def start_one(now: float) -> None:
            n = self._next_index
            self._next_index += 1
            cfg = self.spec.config_for(n)
            conn = self.endpoint.connect(cfg, (self.local, self.ike_port), (self.spec.remote, self.spec.port),
                                         now, remote_natt_port=self.spec.natt_port)
            self._tracks[conn] = _Track(phase, n, now)
            self._index_of[conn] = n

        return await self._run(phase, count, start_one, rate=self.spec.rate if rate is None else rate,
                               concurrency=concurrency or self.spec.concurrency, timeout=timeout)

    async def rekey_children(self, window: float, *, count: int | None = None,
                             timeout: float | None = None) -> PhaseResult:
        """Rekey the Child SA of every held IKE SA (or of the first ``count``),
        the starts spread evenly over ``window`` seconds (a rekey storm)."""
        def begin(conn: IkeConnection, now: float) -> bool:
            child = next((c for c in conn.children.values()
                          if not (c.rekeying or c.deleting or c.replaced_by is not None)), None)
            if child is None:
                return False
            conn.rekey_child_sa(now, child.spi_in)
            return True
        return await self._storm("rekey", begin, window, count, timeout)

    async def rekey_ike_sas(self, window: float, *, count: int | None = None,
                            timeout: float | None = None) -> PhaseResult:
        """Rekey every held IKE SA (or the first ``count``), the starts spread
        evenly over ``window`` seconds; the new IKE SAs take their Child SAs over."""
        def begin(conn: IkeConnection, now: float) -> bool:
            conn.rekey(now)
            return True
        return await self._storm("ike-rekey", begin, window, count, timeout)

    async def _storm(self, name: str, begin, window: float, count: int | None,
                     timeout: float | None) -> PhaseResult:
        """Run ``begin(conn, now)`` on the held IKE SAs (their latest successors),
        the starts spread evenly over ``window`` seconds; ``begin`` answers False
        when the SA has nothing to start."""
        targets = list(self.held.items())[:count]
        phase = PhaseResult(name, len(targets))
        it = iter(targets)

        def start_one(now: float) -> None:
            n, conn = next(it)
            conn = _current(conn)
            try:
                started = conn.state == State.ESTABLISHED and begin(conn, now)
            except IkeError as exc:
                phase.failures[f"could not start: {exc}"] += 1
                return
            if not started:
                phase.failures["not established when its turn came"] += 1
                return
            self._tracks[conn] = _Track(phase, n, now)
            self._collect(conn, now)

        rate = len(targets) / window if window > 0 else 0.0
        return await self._run(phase, len(targets), start_one, rate=rate,
                               concurrency=max(1, len(targets)) if rate else self.spec.concurrency,
                               timeout=timeout if timeout is not None else window + 60.0)

    async def clone_all(self, *, count: int | None = None, concurrency: int | None = None,
                        timeout: float | None = None) -> PhaseResult:
        """Clone every held IKE SA (or the first ``count``) once (RFC 7791): a
        sibling IKE SA with new SPIs and keys, no re-authentication. The clones
        are kept (``clones``) until :meth:`delete_all`."""
        def begin(phase: PhaseResult, n: int, conn: IkeConnection, now: float) -> None:
            try:
                self.endpoint.clone(conn, now)
            except IkeError as exc:
                phase.failures[f"could not start: {exc}"] += 1
                return
            self._tracks[conn] = _Track(phase, n, now)
        return await self._over_held("clone", begin, count, concurrency, timeout)

    async def resume_all(self, *, count: int | None = None, concurrency: int | None = None,
                         timeout: float | None = None) -> PhaseResult:
        """A mass reconnect (RFC 5723): every held IKE SA (or the first ``count``)
        is forgotten without a Delete, as by a client that lost it, and comes back
        with its ticket: IKE_SESSION_RESUME + IKE_AUTH + its Child SA. An SA the
        responder gave no ticket is a failure ("no ticket from the responder").
        A resumption the gateway refused, and that a full handshake replaced, is
        a failure of this phase (by reason), though the SA is held again."""
        def begin(phase: PhaseResult, n: int, conn: IkeConnection, now: float) -> None:
            ticket = self.tickets.pop(n, None)
            if ticket is None:
                phase.failures["no ticket from the responder"] += 1
                return
            # gone from the books before it goes: its end is no loss
            self._index_of.pop(conn, None)
            self.held.pop(n, None)
            conn.suspend(now)
            self._collect(conn, now)
            new = self.endpoint.resume(conn.config, (self.local, self.ike_port), (self.spec.remote, self.spec.port),
                                       now, ticket=ticket, remote_natt_port=self.spec.natt_port)
            self._tracks[new] = _Track(phase, n, now)
            self._index_of[new] = n
        return await self._over_held("resume", begin, count, concurrency, timeout)

    async def _over_held(self, name: str, begin, count: int | None, concurrency: int | None,
                         timeout: float | None) -> PhaseResult:
        """Run ``begin(phase, n, conn, now)`` on the held IKE SAs (their latest
        successors; the first ``count``), ``concurrency`` in flight at most."""
        targets = list(self.held.items())[:count]
        phase = PhaseResult(name, len(targets))
        it = iter(targets)

        def start_one(now: float) -> None:
            n, conn = next(it)
            begin(phase, n, _current(conn), now)

        return await self._run(phase, len(targets), start_one, rate=self.spec.rate,
                               concurrency=concurrency or self.spec.concurrency, timeout=timeout)

    async def delete_all(self, *, concurrency: int | None = None, timeout: float | None = None,
                         indices=None) -> PhaseResult:
        """Delete every held IKE SA and clone (INFORMATIONAL Delete, answered by the
        responder); ``indices``: only those simulated initiators' SAs and clones."""
        targets = list(self.held.items()) + [(n, clone) for clone, n in self.clones.items()]
        if indices is not None:
            wanted = set(indices)
            targets = [(n, conn) for n, conn in targets if n in wanted]
        phase = PhaseResult("delete", len(targets))
        it = iter(targets)

        def start_one(now: float) -> None:
            n, conn = next(it)
            conn = _current(conn)
            if conn.state == State.DELETED:
                phase.failures["gone before its delete"] += 1
                return
            self._tracks[conn] = _Track(phase, n, now)
            conn.delete(now, reason="load test done")
            self._collect(conn, now)

        return await self._run(phase, len(targets), start_one, rate=0.0,
                               concurrency=concurrency or max(self.spec.concurrency, 256), timeout=timeout)

    async def hold(self, seconds: float) -> None:
        """Keep the SAs (answering the responder, running timers) for a while."""
        end = self.loop.time() + seconds
        while (left := end - self.loop.time()) > 0:
            await asyncio.sleep(min(left, self.progress_interval))
            self._report_progress(None)

    # ------------------------------------------------------------- the loop --
    async def _run(self, phase: PhaseResult, total: int, start_one, *, rate: float, concurrency: int,
                   timeout: float | None) -> PhaseResult:
        loop = self.loop
        self._phase = phase
        phase.held_before = len(self.held)
        phase.responder_before = self.responder.sample() if self.responder else None
        t0 = phase.began_at = loop.time()
        deadline = t0 + timeout if timeout is not None else None
        next_progress = t0 + self.progress_interval

        def top_up(now: float) -> None:
            """Start what concurrency and rate allow now."""
            in_flight = self._in_flight(phase)
            while phase.started < total and in_flight < concurrency:
                if rate > 0 and phase.started >= (now - t0) * rate + 1:
                    break
                phase.started += 1
                start_one(now)
                in_flight = self._in_flight(phase)
            if phase.started >= total and in_flight == 0:
                self._wake.set()         # the last start failed at once: nothing will finish

        # Completions start their successors from _flush, in the datagram or timer callback:
        # waking this coroutine for each one cost an event-loop round and a wait_for task
        # per handshake, more than a tenth of the generator's CPU. It wakes only for the
        # end of the phase, the rate's next start, progress and the deadline.
        self._top_up = top_up
        try:
            while True:
                now = loop.time()
                self._wake.clear()          # the phase's end from here on ends the wait below
                top_up(now)
                self._flush()
                if phase.started >= total and self._in_flight(phase) == 0:
                    break
                if deadline is not None and now >= deadline:
                    self._abandon(phase, "timed out", now)
                    break
                if now >= next_progress:
                    next_progress = now + self.progress_interval
                    self._report_progress(phase)
                wait = max(0.0, next_progress - now)
                if rate > 0 and phase.started < total:
                    wait = min(wait, max(0.0, t0 + phase.started / rate - now))
                if deadline is not None:
                    wait = min(wait, max(0.0, deadline - now))
                if wait > 0:
                    try:
                        await asyncio.wait_for(self._wake.wait(), wait)
                    except asyncio.TimeoutError:
                        pass
                else:
                    await asyncio.sleep(0)
        finally:
            self._top_up = None
            phase.elapsed = loop.time() - t0
            phase.responder_after = self.responder.sample() if self.responder else None
            self._phase = None
            if self.freeze_gc and phase.name == "establish":
                gc.freeze()
                self._gc_frozen = True
        self._report_progress(phase)
        return phase

    def _in_flight(self, phase: PhaseResult) -> int:
        return phase.started - phase.completed - sum(phase.failures.values())

    def _abandon(self, phase: PhaseResult, reason: str, now: float) -> None:
        for conn, track in list(self._tracks.items()):
            if track.phase is phase:
                del self._tracks[conn]
                phase.failures[reason] += 1
                if phase.name == "establish":
                    conn.terminate(reason, now)          # nothing more to wait for on this one
                    self._collect(conn, now)
        self._flush()

    # --------------------------------------------------------------- I/O --
    def _readable(self, sock: socket.socket, local: tuple) -> None:
        now = self.loop.time()
        endpoint = self.endpoint
        for _ in range(RECV_BATCH):
            try:
                data, addr = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:              # e.g. ECONNREFUSED from an ICMP error: the next one may be fine
                self.counters["socket_errors"] += 1
                continue
            self.counters["rx"] += 1
            try:
                endpoint.receive_datagram(data, addr[:2], local, now)
            except Exception:            # one bad datagram must not stop the load
                self.counters["internal_errors"] += 1
        self._flush()

    def _flush(self) -> None:
        endpoint = self.endpoint
        if endpoint is None:
            return
        now = self.loop.time()
        for _ in range(100):
            out = endpoint.datagrams_to_send()
            for data, remote, local in out:
                sock = self._socks.get(local[1])
                if sock is None:
                    continue
                try:
                    sock.sendto(data, remote)
                    self.counters["tx"] += 1
                except (BlockingIOError, InterruptedError):
                    self.counters["tx_dropped"] += 1      # a retransmission covers it
                except OSError:
                    self.counters["socket_errors"] += 1
            handled = 0
            while (item := endpoint.next_event()) is not None:
                handled += 1
                self._on_event(item[0], item[1], now)
            if handled and self._top_up is not None:
                self._top_up(now)        # finished operations make room: their successors go out next round
            if not out and not handled:
                break
        self._arm_timer()

    def _collect(self, conn: IkeConnection, now: float) -> None:
        self.endpoint.collect(conn, now)

    @property
    def running(self) -> bool:
        """For the timer mixin: armed only while the sockets are open."""
        return bool(self._socks)

    # ------------------------------------------------------------ events --
    def _finish(self, conn: IkeConnection, now: float, failure: str | None = None) -> None:
        track = self._tracks.pop(conn, None)
        if track is None:
            return
        if failure is None:
            track.phase.completed += 1
            track.phase.latencies.append(now - track.started_at)
        else:
            track.phase.failures[failure] += 1
        phase = track.phase
        if phase.started >= phase.requested and self._in_flight(phase) == 0:
            self._wake.set()

    def _on_event(self, conn: IkeConnection, event, now: float) -> None:
        track = self._tracks.get(conn)
        if isinstance(event, ev.IkeSaEstablished):
            if track is not None and track.phase.name in ("establish", "resume"):
                track.phase.ike_sas += 1
                self.counters["ike_sas_established"] += 1
        elif isinstance(event, ev.ChildSaInstalled):
            self.counters["child_sas_installed"] += 1
            if track is not None and track.phase.name in ("establish", "resume"):
                track.phase.child_sas += 1
                self.held[track.index] = conn
                self._finish(conn, now, None if track.fell_back is None
                             else f"ticket refused, full handshake instead: {track.fell_back}")
        elif isinstance(event, ev.TicketReceived):
            n = self._index_of.get(conn)
            if n is not None:
                self.tickets[n] = event.ticket
        elif isinstance(event, ev.ResumeFailed):
            self.counters["resumptions_refused"] += 1
            if track is not None:
                track.fell_back = event.reason
        elif isinstance(event, ev.ChildSaRekeyed):
            self.counters["child_sas_rekeyed"] += 1
            if track is not None and track.phase.name == "rekey":
                self._finish(conn, now)
        elif isinstance(event, ev.ChildSaFailed):
            self.counters["child_sa_failures"] += 1
            if track is not None and track.phase.name in ("establish", "resume", "rekey"):
                what = "Child SA rekey" if track.phase.name == "rekey" else "Child SA"
                self._finish(conn, now, f"{what}: {event.reason}")
                if track.phase.name != "rekey":
                    # an IKE SA without its Child SA is no simulated initiator: let it go
                    try:
                        conn.delete(now, reason="load: no Child SA")
                    except IkeError:
                        pass
                    self._collect(conn, now)
        elif isinstance(event, ev.IkeSaCloned):
            self.counters["ike_sas_cloned"] += 1
            if track is not None and track.phase.name == "clone":
                if event.connection is not None:
                    self.clones[event.connection] = track.index
                self._finish(conn, now)
        elif isinstance(event, ev.IkeSaCloneFailed):
            if track is not None and track.phase.name == "clone":
                self._finish(conn, now, f"clone: {event.reason}")
        elif isinstance(event, ev.IkeSaRekeyed):
            new = event.connection
            if new is not None:
                n = self._index_of.pop(conn, None)
                if n is not None:
                    self._index_of[new] = n
                    if self.held.get(n) is conn:
                        self.held[n] = new
                if track is not None and track.phase.name == "ike-rekey":
                    self._finish(conn, now)
                elif track is not None:             # the operation carries on with the new SA
                    self._tracks[new] = self._tracks.pop(conn)
        elif isinstance(event, ev.IkeSaDeleted):
            self.counters["ike_sas_deleted"] += 1
            self.clones.pop(conn, None)
            n = self._index_of.pop(conn, None)
            was_held = n is not None and self.held.get(n) is conn
            if was_held:
                del self.held[n]
                self.tickets.pop(n, None)
            if track is not None:
                if track.phase.name == "delete":
                    self._finish(conn, now)
                else:
                    what = {"establish": "IKE SA", "resume": "IKE SA"}.get(track.phase.name,
                                                                           f"IKE SA lost during {track.phase.name}")
                    self._finish(conn, now, f"{what}: {event.reason}")
            elif was_held:
                self.lost[event.reason] += 1

    # ------------------------------------------------------------ progress --
    def snapshot(self, phase: PhaseResult | None = None) -> dict:
        """Where the run stands: the phase's counts and rate so far, SAs held,
        and the responder's CPU utilisation and RSS."""
        phase = phase or self._phase
        snap: dict = {"held": len(self.held), "lost": sum(self.lost.values())}
        if phase is not None:
            elapsed = phase.elapsed or self.loop.time() - phase.began_at
            snap.update(phase=phase.name, requested=phase.requested, started=phase.started,
                        completed=phase.completed, failed=sum(phase.failures.values()),
                        in_flight=self._in_flight(phase),
                        per_s=phase.completed / elapsed if elapsed > 0 else 0.0)
        if self.responder is not None:
            s = self.responder.sample()
            if s is not None:
                prev = getattr(self, "_last_sample", None)
                if prev is not None and s.at > prev.at:
                    snap["responder_cpu"] = (s.cpu_s - prev.cpu_s) / (s.at - prev.at)
                snap["responder_rss_kb"] = s.rss_kb
                self._last_sample = s
        return snap

    def _report_progress(self, phase: PhaseResult | None) -> None:
        if self.progress is not None:
            try:
                self.progress(self.snapshot(phase))
            except Exception:            # a broken display must not stop the load
                self.progress = None


def _current(conn: IkeConnection) -> IkeConnection:
    """The live IKE SA of a chain of IKE rekeys."""
    while conn.replaced_by is not None:
        conn = conn.replaced_by
    return conn


def _route_source(remote: str, family: int) -> str:
    """The source address the kernel picks toward ``remote``."""
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.connect((remote, 9))
        return s.getsockname()[0]


# ------------------------------------------------------------------ report --

def format_progress(snap: dict) -> str:
    """One line: phase, progress, rate, failures, SAs held, the responder's load."""
    parts = []
    if "phase" in snap:
        parts.append(f"{snap['phase']:<9} {snap['completed']:>8,}/{snap['requested']:<8,} "
                     f"{snap['per_s']:>8,.0f}/s  in flight {snap['in_flight']:>5,}  failed {snap['failed']:,}")
    parts.append(f"held {snap['held']:,}")
    if snap.get("lost"):
        parts.append(f"lost {snap['lost']:,}")
    if "responder_rss_kb" in snap:
        cpu = f"CPU {snap['responder_cpu'] * 100:.0f}% " if "responder_cpu" in snap else ""
        parts.append(f"responder {cpu}RSS {snap['responder_rss_kb'] / 1024:,.1f} MiB")
    return "  ".join(parts)


_PHASE_WORDS = {"establish": ("IKE SAs + Child SAs", "handshakes"), "rekey": ("Child SA rekeys", "rekeys"),
                "clone": ("IKE SA clones", "clones"),
                "resume": ("resumptions (IKE_SESSION_RESUME + IKE_AUTH + Child SA)", "resumptions"),
                "ike-rekey": ("IKE SA rekeys", "rekeys"), "delete": ("IKE SA deletes", "deletes")}


def format_summary(summary: dict) -> str:
    """The human report of :func:`summarize`'s dict."""
    lines = [f"ikecore load -> {summary['target']}: {summary['suite']}, {summary['auth']}"
             f"{', responder pid ' + str(summary['responder_pid']) if summary.get('responder_pid') else ''}"]
    for p in summary["phases"]:
        what, unit = _PHASE_WORDS.get(p["phase"], (p["phase"], "operations"))
        line = (f"  {p['phase']:<9} {p['completed']:,}/{p['requested']:,} {what} in {p['elapsed_s']:.2f} s: "
                f"{p['per_s']:,.1f} {unit}/s")
        if p["phase"] == "establish":
            line = (f"  {p['phase']:<9} {p['ike_sas']:,} IKE SAs, {p['child_sas']:,} Child SAs of {p['requested']:,}"
                    f" in {p['elapsed_s']:.2f} s: {p['ike_sas_per_s']:,.1f} IKE SAs/s, "
                    f"{p['child_sas_per_s']:,.1f} Child SAs/s")
        if "latency_ms" in p:
            lat = p["latency_ms"]
            line += f" (latency p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms)"
        lines.append(line)
        r = p.get("responder")
        if r is not None and p["completed"]:
            text = (f"            responder CPU {r['cpu_s']:.2f} s ({r['cpu_ms_per_op']:.3f} ms per {unit[:-1]}, "
                    f"{r['cpu_utilization'] * 100:.0f}% of a core)")
            if p["phase"] == "establish":
                text += (f", RSS {r['rss_kb_before'] / 1024:,.1f} -> {r['rss_kb_after'] / 1024:,.1f} MiB "
                         f"({r['rss_kb_per_op']:.2f} KB per IKE SA + Child SA)")
            lines.append(text)
        if p["failures"]:
            lines.append("            failures: " + ", ".join(f"{n:,} {reason}" for reason, n in
                                                             sorted(p["failures"].items(), key=lambda x: -x[1])))
    total = sum(sum(p["failures"].values()) for p in summary["phases"])
    lost = summary.get("lost") or {}
    lines.append(f"  failures  {total:,}" + (" (" + ", ".join(f"{n:,} {r}" for r, n in lost.items()) + " lost while held)"
                                             if lost else ""))
    return "\n".join(lines)


def summarize(gen: LoadGenerator, phases: list[PhaseResult], *, suite: str, auth: str) -> dict:
    return {"target": f"{gen.spec.remote}:{gen.spec.port}", "suite": suite, "auth": auth,
            "responder_pid": gen.responder.pid if gen.responder else None,
            "local": f"{gen.local} (IKE {gen.ike_port}, NAT-T {gen.natt_port})",
            "phases": [p.as_dict() for p in phases], "held": len(gen.held), "lost": dict(gen.lost),
            "counters": dict(gen.counters),
            "ok": all(not p.failures for p in phases) and not gen.lost}


__all__ = ["LoadSpec", "LoadGenerator", "PhaseResult", "ProcessStats", "ProcSample", "format_progress",
           "format_summary", "summarize"]
