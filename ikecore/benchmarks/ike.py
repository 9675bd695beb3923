"""IKE setup through two in-memory endpoints: full handshakes, the key exchange
alone, the responder's share, Child SA rekeys. For `ikecore bench` and
bench/bench_ike.py; the baseline that Child SA cloning and session resumption
are compared against."""
from __future__ import annotations

import random
import time

from ..crypto.dh import KeyExchange
from ..protocol.config import ChildConfig, EspProposal, IkeProposal, TrafficSelectorSpec, psk_config
from ..protocol.endpoint import IkeEndpoint

ADDR_I, ADDR_R = ("192.0.2.1", 500), ("192.0.2.2", 500)
PSK = b"benchmark pre-shared key 0123456789"
GROUPS = {"x25519": 31, "ecp256": 19}
CHARON_RESPONDER_MS = {"x25519": 0.455, "ecp256": 0.57}


def _configs(group: str, esp: str = "aes256gcm16"):
    def side(me, peer, local, remote):
        child = ChildConfig("net", [TrafficSelectorSpec.parse(local)], [TrafficSelectorSpec.parse(remote)],
                            [EspProposal.parse(esp)])
        return psk_config(me, peer, PSK, proposals=[IkeProposal.parse(f"aes256gcm16-prfsha256-{group}")],
                          children=[child], dpd_delay=0)
    return (side("initiator@bench", "responder@bench", "10.1.0.0/16", "10.2.0.0/16"),
            side("responder@bench", "initiator@bench", "10.2.0.0/16", "10.1.0.0/16"))


class Link:
    """Two endpoints and a lossless wire; ``responder_s`` accumulates the time
    spent inside the responder endpoint."""

    def __init__(self, cfg_i, cfg_r, seed: int, now: float = 1000.0):
        self.now = now
        self.cfg_i = cfg_i
        self.ei = IkeEndpoint(cfg_i, rng=random.Random(seed).randbytes, now=now)
        self.er = IkeEndpoint(cfg_r, rng=random.Random(seed + 1).randbytes, now=now)
        self.responder_s = 0.0

    clock = staticmethod(time.perf_counter)     # what responder_s is counted in

    def pump(self) -> None:
        ei, er, now, clock = self.ei, self.er, self.now, self.clock
        while True:
            moved = False
            for data, remote, local in ei.datagrams_to_send():
                t0 = clock()
                er.receive_datagram(data, local, remote, now)
                self.responder_s += clock() - t0
                moved = True
            moved |= self._serve_responder()
            for data, remote, local in er.datagrams_to_send():
                ei.receive_datagram(data, local, remote, now)
                moved = True
            if not moved:
                break
        for ep in (ei, er):            # events are not kept: they would pile up over rounds
            while ep.next_event() is not None:
                pass

    def _serve_responder(self) -> bool:
        """What an I/O layer does for the responder between datagrams (a ticket
        store, in the resumption link): whether it moved anything."""
        return False

    def handshake(self):
        conn = self.ei.connect(self.cfg_i, ADDR_I, ADDR_R, self.now)
        self.pump()
        if not conn.established or not conn.children:
            raise AssertionError("the benchmark handshake did not complete")
        return conn


def full_handshake_fn(group: str):
    cfg_i, cfg_r = _configs(group)
    counter = iter(range(10**9))

    def run():
        Link(cfg_i, cfg_r, next(counter) * 2).handshake()
    return run


def key_exchange_fn(group: str, *, both_sides: bool = True):
    """What the key exchange costs in one handshake: generate + shared secret on each end."""
    gid = GROUPS[group]
    rng = random.Random(7).randbytes

    def run():
        a = KeyExchange.generate(gid, rng)
        b = KeyExchange.generate(gid, rng)
        a.shared_secret(b.public_bytes)
        if both_sides:
            b.shared_secret(a.public_bytes)
    return run


def responder_ms(group: str, n: int = 300) -> float:
    cfg_i, cfg_r = _configs(group)
    total = 0.0
    for k in range(n):
        link = Link(cfg_i, cfg_r, 10_000 + 2 * k)
        link.handshake()
        total += link.responder_s
    return total / n * 1000


def rekey_fn(esp: str):
    """One Child SA rekey (CREATE_CHILD_SA + INFORMATIONAL Delete) per call on a live IKE SA."""
    cfg_i, cfg_r = _configs("x25519", esp)
    link = Link(cfg_i, cfg_r, 99)
    conn = link.handshake()

    def run():
        [spi] = conn.children
        conn.rekey_child_sa(link.now, spi)
        link.ei.collect_all()
        link.pump()
        if spi in conn.children or len(conn.children) != 1:
            raise AssertionError("the rekey did not complete")
    return run
