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


class Pair:
    def __init__(self, cfg_i, cfg_r, *, seed: int = 1, wire: Wire | None = None, now: float = 1000.0,
                 addr_i=ADDR_I, addr_r=ADDR_R):
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

    # -- driving ---------------------------------------------------------------
    def connect(self, **kw):
        conn = self.ei.connect(self.cfg_i, self.addr_i, self.addr_r, self.now, **kw)
        return conn

    def _gather(self):
        for src, dst, tag in ((self.ei, self.er, "i>r"), (self.er, self.ei, "r>i")):
            for data, remote, local in src.datagrams_to_send():
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
            self._gather()
            return True
        timers = [t for t in (self.ei.get_timer(), self.er.get_timer()) if t is not None]
        if not timers:
            return False
        self.now = max(self.now, min(timers))
        self.ei.handle_timer(self.now)
        self.er.handle_timer(self.now)
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
