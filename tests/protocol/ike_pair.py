"""Two IKE endpoints wired together in memory with a fake clock and a seeded
RNG; the wire can lose, duplicate and reorder datagrams (deterministically)."""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from ikecore.protocol import events as ev
from ikecore.protocol.config import ChildConfig, EspProposal, IkeProposal, TrafficSelectorSpec, psk_config
from ikecore.protocol.endpoint import IkeEndpoint

ADDR_I = ("192.0.2.1", 500)
ADDR_R = ("192.0.2.2", 500)
PSK = b"in-memory test psk 0123456789"


def child(name="net", local="10.1.0.0/16", remote="10.2.0.0/16", esp="aes256gcm16", **kw) -> ChildConfig:
    return ChildConfig(name, [TrafficSelectorSpec.parse(local)], [TrafficSelectorSpec.parse(remote)],
                       [EspProposal.parse(p) for p in esp.split(",")], **kw)


def configs(ike="aes256gcm16-prfsha256-x25519", esp="aes256gcm16", *, ike_r=None, esp_r=None, **kw):
    """Matching initiator and responder PSK configurations."""
    ci = psk_config("initiator@test", "responder@test", PSK,
                    proposals=[IkeProposal.parse(p) for p in ike.split(",")],
                    children=[child(esp=esp)], **kw)
    cr = psk_config("responder@test", "initiator@test", PSK,
                    proposals=[IkeProposal.parse(p) for p in (ike_r or ike).split(",")],
                    children=[child(local="10.2.0.0/16", remote="10.1.0.0/16", esp=esp_r or esp)], **kw)
    return ci, cr


@dataclass
class Wire:
    """Fault injection, decided by a seeded RNG so every run is the same."""
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    seed: int = 7
    rnd: random.Random = field(init=False)
    delivered: int = 0
    dropped: int = 0

    def __post_init__(self):
        self.rnd = random.Random(self.seed)


@dataclass
class Nat:
    """A NAPT in front of the initiator: its source (address, port) becomes
    (public, a mapped port) on the way out and replies are mapped back; a
    reply to a port with no mapping is dropped. ``rebind()`` forgets every
    mapping (a NAT reboot or timeout), so the next packet gets a new port."""
    public: str = "203.0.113.7"
    next_port: int = 40000
    out: dict = field(default_factory=dict)     # private -> public
    back: dict = field(default_factory=dict)    # public -> private

    def outbound(self, private):
        private = tuple(private)
        if private not in self.out:
            public = (self.public, self.next_port)
            self.next_port += 1
            self.out[private], self.back[public] = public, private
        return self.out[private]

    def inbound(self, public):
        return self.back.get(tuple(public))

    def rebind(self):
        self.out.clear()
        self.back.clear()


class TicketDesk:
    """The I/O layer's side of resumption, synchronous and in memory: serves an
    endpoint's ``ticket_store_ops()`` the way the gateway does against Redis
    (SET NX EX to spend a by-value ticket, GETDEL for a by-reference one, SET for
    a by-reference ticket's state). ``mode``: "ok", "down" (every call fails),
    "slow" (never answers). Several endpoints may share one desk (a cluster)."""

    def __init__(self, mode: str = "ok"):
        self.mode = mode
        self.data: dict = {}
        self.checks = 0                # TicketCheck operations seen (store round trips)
        self.puts = 0
        self.unanswered: list = []     # (endpoint, token) a slow store sat on

    def serve(self, endpoint, now: float) -> None:
        from ikecore.protocol.tickets import TicketCheck, TicketPut
        for op in endpoint.ticket_store_ops():
            if isinstance(op, TicketPut):
                self.puts += 1
                if self.mode == "ok":
                    self.data[op.key] = op.value
                continue
            assert isinstance(op, TicketCheck)
            self.checks += 1
            if self.mode == "slow":
                self.unanswered.append((endpoint, op.token))
                continue
            if self.mode == "down":
                endpoint.ticket_checked(op.token, ConnectionError("store down"), now)
            elif op.by_reference:
                endpoint.ticket_checked(op.token, self.data.pop(op.take_key, None), now)
            else:
                fresh = op.spend_key not in self.data
                self.data.setdefault(op.spend_key, b"1")
                endpoint.ticket_checked(op.token, fresh, now)


WALL_OFFSET = 1_700_000_000.0     # the fake clock's `now` -> unix seconds


def wall_clock(now: float) -> float:
    return now + WALL_OFFSET


def resumption_configs(ike="aes256gcm16-prfsha256-x25519", esp="aes256gcm16", *, by_reference=False,
                       seed: int = 5, authority=None, cfg_i_kw=None, cfg_r_kw=None, **kw):
    """configs() with resumption on: the responder issues tickets (a fresh
    TicketAuthority unless one is given), both sides map `now` to wall time."""
    from ikecore.resumption import TicketAuthority, TicketKeyRing
    if authority is None:
        rnd = random.Random(seed)
        ring = TicketKeyRing(rng=rnd.randbytes, now=wall_clock(1000.0))
        authority = TicketAuthority(ring, by_reference=by_reference, rng=rnd.randbytes)
    ci, cr = configs(ike, esp, resumption=True, wall_clock=wall_clock, **kw)
    ci = _replace(ci, **(cfg_i_kw or {}))
    cr = _replace(cr, ticket_authority=authority, **(cfg_r_kw or {}))
    return ci, cr


def _replace(cfg, **kw):
    import dataclasses
    return dataclasses.replace(cfg, **kw) if kw else cfg


def check_timer_queue(ep) -> None:
    """The endpoint's timer heap never runs an SA later than that SA's real
    deadline (earlier is allowed: lazy entries). Run after every input the
    endpoint itself routes, so an SA whose deadline moved without the
    endpoint hearing of it fails the test that caused it."""
    for conn in ep.connections.values():
        real = conn.get_timer()
        if real is not None:
            promised = ep.timers.promised(conn)
            assert promised is not None and promised <= real, (conn.name, promised, real)


class Pair:
    def __init__(self, cfg_i, cfg_r, *, seed: int = 1, wire: Wire | None = None, now: float = 1000.0,
                 addr_i=ADDR_I, addr_r=ADDR_R, nat: Nat | None = None, desk: TicketDesk | None = None):
        self.desk = desk               # serves the responder's ticket store operations
        self.nat = nat                 # a NAT in front of the initiating side (ei)
        self.now = now
        rnd_i, rnd_r = random.Random(seed), random.Random(seed + 1000)
        self.ei = IkeEndpoint(cfg_i, rng=rnd_i.randbytes, now=now)
        self.er = IkeEndpoint(cfg_r, rng=rnd_r.randbytes, now=now)
        self.cfg_i, self.cfg_r = cfg_i, cfg_r
        self.addr_i, self.addr_r = addr_i, addr_r
        self.wire = wire or Wire()
        self.events_i: list = []
        self.events_r: list = []
        self.in_flight: list = []      # (endpoint, data, remote, local)
        self.trace: list = []          # (direction, data) of every delivered datagram
        # the inbound SK cipher of every SA seen: a deleted SA gives its keys up at
        # once (the endpoint drops them), and decrypt_trace reads old traffic
        self.sk_in_seen: dict = {}

    # -- driving ---------------------------------------------------------------
    def connect(self, **kw):
        conn = self.ei.connect(self.cfg_i, self.addr_i, self.addr_r, self.now, **kw)
        return conn

    def resume(self, **kw):
        return self.ei.resume(self.cfg_i, self.addr_i, self.addr_r, self.now, **kw)

    def _gather(self):
        for ep in (self.ei, self.er):
            for c in ep.connections.values():
                if c.sk_in is not None:
                    self.sk_in_seen[(c.spis, c.initiator)] = c.sk_in
        if self.desk is not None:
            self.desk.serve(self.er, self.now)
        for src, dst, tag in ((self.ei, self.er, "i>r"), (self.er, self.ei, "r>i")):
            for data, remote, local in src.datagrams_to_send():
                if self.nat is not None:
                    if tag == "i>r":
                        local = self.nat.outbound(local)
                    else:
                        remote = self.nat.inbound(remote)
                        if remote is None:
                            self.wire.dropped += 1
                            continue
                copies = 1
                if self.wire.rnd.random() < self.wire.loss:
                    self.wire.dropped += 1
                    copies = 0
                elif self.wire.rnd.random() < self.wire.duplicate:
                    copies = 2
                for _ in range(copies):
                    self.in_flight.append((dst, data, local, remote, tag))
        if len(self.in_flight) > 1 and self.wire.rnd.random() < self.wire.reorder:
            self.wire.rnd.shuffle(self.in_flight)
        for ep, out in ((self.ei, self.events_i), (self.er, self.events_r)):
            while (e := ep.next_event()) is not None:
                out.append(e[1])

    def step(self) -> bool:
        """Deliver one datagram, or advance the clock to the next timer. False when idle."""
        self.ei.collect_all()
        self.er.collect_all()
        self._gather()
        if self.in_flight:
            dst, data, src_addr, dst_addr, tag = self.in_flight.pop(0)
            self.trace.append((tag, data))
            self.wire.delivered += 1
            dst.receive_datagram(data, src_addr, dst_addr, self.now)
            check_timer_queue(dst)
            self._gather()
            return True
        timers = [t for t in (self.ei.get_timer(), self.er.get_timer()) if t is not None]
        if not timers:
            return False
        self.now = max(self.now, min(timers))
        self.ei.handle_timer(self.now)
        self.er.handle_timer(self.now)
        check_timer_queue(self.ei)
        check_timer_queue(self.er)
        self._gather()
        return True

    def run(self, until=None, *, max_steps: int = 10_000, max_time: float | None = None):
        """Step until ``until()`` is true (or nothing is left to do)."""
        limit = self.now + max_time if max_time is not None else None
        for _ in range(max_steps):
            if until is not None and until():
                return True
            if limit is not None and self.now > limit:
                return False
            if not self.in_flight and until is not None:
                timers = [t for t in (self.ei.get_timer(), self.er.get_timer()) if t is not None]
                if limit is not None and timers and min(timers) > limit:
                    return until()
            if not self.step():
                return until() if until else True
        raise AssertionError("the exchange did not settle")

    # -- views -----------------------------------------------------------------
    def of(self, kind, side="i"):
        return [e for e in (self.events_i if side == "i" else self.events_r) if isinstance(e, kind)]

    def established(self) -> bool:
        return bool(self.of(ev.IkeSaEstablished, "i")) and bool(self.of(ev.IkeSaEstablished, "r"))

    def conn(self, side="i"):
        ep = self.ei if side == "i" else self.er
        live = [c for c in ep.connections.values() if c.state.value == "established"]
        return live[0] if len(live) == 1 else live

    # -- fine control for scenario tests ---------------------------------------
    def flush(self):
        """Put what the endpoints want to send on the wire; deliver nothing."""
        self.ei.collect_all()
        self.er.collect_all()
        self._gather()

    def in_flight_tags(self) -> list:
        self.flush()
        return [f[4] for f in self.in_flight]

    def deliver(self, tag=None, *, index: int = 0, response: bool | None = None) -> bytes:
        """Deliver the ``index``-th datagram in flight going ``tag`` ("i>r" or
        "r>i"), of the requests or responses only if ``response`` says which."""
        self.flush()

        def is_response(data):
            return bool(data[4 + 19 if data[:4] == bytes(4) else 19] & 0x20)

        matching = [k for k, f in enumerate(self.in_flight) if (tag is None or f[4] == tag)
                    and (response is None or is_response(f[1]) == response)]
        dst, data, src_addr, dst_addr, t = self.in_flight.pop(matching[index])
        self.trace.append((t, data))
        self.wire.delivered += 1
        dst.receive_datagram(data, src_addr, dst_addr, self.now)
        self._gather()
        return data

    def discard(self, tag=None) -> int:
        """Lose every datagram in flight (going ``tag``); how many were lost."""
        self.flush()
        keep = [f for f in self.in_flight if tag is not None and f[4] != tag]
        lost = len(self.in_flight) - len(keep)
        self.in_flight[:] = keep
        self.wire.dropped += lost
        return lost

    def settle(self, seconds: float, *, max_steps: int = 20_000) -> None:
        """Deliver everything and fire every timer due in the next ``seconds``
        (and none later); the clock then stands at the end of that span."""
        end = self.now + seconds
        for _ in range(max_steps):
            self.flush()
            if not self.in_flight:
                timers = [t for t in (self.ei.get_timer(), self.er.get_timer()) if t is not None]
                if not timers or min(timers) > end:
                    self.now = max(self.now, end)
                    return
            self.step()
        raise AssertionError("the pair did not settle")

    def live(self, side="i", state="established") -> list:
        ep = self.ei if side == "i" else self.er
        return [c for c in ep.connections.values() if c.state.value == state]


class Network:
    """Any number of endpoints, each owning one IP address; datagrams are
    delivered by destination address, in order, with no loss. The clock only
    moves when the caller sets ``now``."""

    def __init__(self, now: float = 1000.0):
        self.now = now
        self.hosts: dict = {}          # ip -> endpoint
        self.events: dict = {}         # ip -> [event]
        self.trace: list = []          # (src, dst, data)

    def add(self, ip: str, config, *, seed: int) -> IkeEndpoint:
        ep = IkeEndpoint(config, rng=random.Random(seed).randbytes, now=self.now)
        self.hosts[ip] = ep
        self.events[ip] = []
        return ep

    def run(self, max_steps: int = 10_000) -> None:
        for _ in range(max_steps):
            moved = False
            for ip, ep in list(self.hosts.items()):
                ep.collect_all()
                while (e := ep.next_event()) is not None:
                    self.events[ip].append(e[1])
                for data, remote, local in ep.datagrams_to_send():
                    moved = True
                    self.trace.append((local, remote, data))
                    dst = self.hosts.get(remote[0])
                    if dst is not None:
                        dst.receive_datagram(data, local, remote, self.now)
            if not moved:
                return
        raise AssertionError("the network did not settle")

    def of(self, ip: str, kind) -> list:
        return [e for e in self.events[ip] if isinstance(e, kind)]


# -- helpers for the exchange, collision, fault and lifetime tests ---------------

def other(side: str) -> str:
    return "r" if side == "i" else "i"


def established_pair(*, wire: Wire | None = None, seed: int = 1, ike="aes256gcm16-prfsha256-x25519",
                     esp="aes256gcm16", **kw) -> Pair:
    """A Pair with its first IKE SA and Child SA up (whatever the wire does)."""
    p = Pair(*configs(ike, esp, **kw), seed=seed, wire=wire)
    p.connect()
    assert p.run(p.established, max_time=600)
    p.run(lambda: len(p.conn("i").children) == len(p.conn("r").children) == 1, max_time=600)
    return p


def peer_child(child, peer_conn):
    """The Child SA on the peer's side that pairs with ``child``."""
    return next(c for c in peer_conn.children.values() if c.spi_in == child.spi_out)


def assert_child_pair(x, y) -> None:
    """``x`` and ``y`` are the two ends of one Child SA: SPIs and keys mirror
    each other, and their EspSA objects carry packets both ways."""
    assert x.spi_in == y.spi_out and x.spi_out == y.spi_in
    assert x.outbound_keys == y.inbound_keys and x.inbound_keys == y.outbound_keys
    assert x.suite == y.suite
    out_x, in_x = x.esp_sas()
    out_y, in_y = y.esp_sas()
    inner = b"\x45" + bytes(19) + b"payload from x"
    assert in_y.decrypt(out_x.encrypt(inner, 4)) == (inner, 4)
    assert in_x.decrypt(out_y.encrypt(b"reply from y", 4)) == (b"reply from y", 4)


def decrypt_trace(p: Pair, *conns) -> list:
    """(direction, Message) for every delivered datagram one of ``conns`` (the
    receiving side of an IKE SA) can open; inner payloads decrypted."""
    from ikecore.protocol.message import parse_message
    out = []
    for tag, data in p.trace:
        if data[:4] == bytes(4):
            data = data[4:]
        msg = parse_message(data)
        for c in conns:
            # the receiver's own SPI: SPIr for what the original initiator sends
            if (msg.spi_i, msg.spi_r) != c.spis or msg.is_initiator == c.initiator:
                continue
            sk_in = c.sk_in if c.sk_in is not None else p.sk_in_seen.get((c.spis, c.initiator))
            if msg.sk is not None and not msg.is_fragment and sk_in is not None:
                msg.decrypt(sk_in)
            out.append((tag, msg))
            break
    return out
