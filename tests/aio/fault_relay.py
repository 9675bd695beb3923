"""A fault-injecting UDP relay between one initiator and one responder on
loopback, for tests (this kernel has no netem).

The initiator is pointed at the relay's two ports (``ike_port`` and
``natt_port``); the relay forwards each datagram to the responder's matching
port from a socket of its own, and the answers back to the initiator. On the
way, per direction, it loses, duplicates, reorders (holds a datagram back for a
random while, so later ones overtake it), delays and truncates datagrams with
the configured probabilities, from a seeded RNG. On the NAT-T port it tells
IKE (non-ESP marker), ESP and keepalives apart, so each fault can target the
IKE path, the ESP path or both, and it counts what it did to each kind.
"""
from __future__ import annotations

import asyncio
import random
import socket
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Faults:
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0          # held back 5-50 ms: later datagrams overtake it
    delay: float = 0.0            # fixed extra seconds for every datagram
    truncate: float = 0.0
    paths: frozenset = field(default_factory=lambda: frozenset({"ike", "esp"}))

    def applies(self, kind: str) -> bool:
        return kind in self.paths


def classify(data: bytes, natt: bool) -> str:
    if not natt:
        return "ike"
    if data == b"\xff":
        return "keepalive"
    if len(data) >= 4 and data[:4] == bytes(4):
        return "ike"
    return "esp"


class _Leg(asyncio.DatagramProtocol):
    def __init__(self, relay: "FaultRelay", natt: bool, downstream: bool) -> None:
        self.relay, self.natt, self.downstream = relay, natt, downstream
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.relay._received(self, data, addr)


class FaultRelay:
    """``await FaultRelay(("127.0.0.1", ike), ("127.0.0.1", natt), faults).start()``."""

    def __init__(self, responder_ike: tuple, responder_natt: tuple, faults: Faults | None = None, *,
                 seed: int = 1, host: str = "127.0.0.1") -> None:
        self.upstream = {False: tuple(responder_ike), True: tuple(responder_natt)}
        self.faults = faults or Faults()
        self.rng = random.Random(seed)
        self.host = host
        self.client: dict[bool, tuple | None] = {False: None, True: None}
        self.legs: dict = {}
        self.counts: Counter = Counter()          # e.g. ("esp", "duplicated"), ("ike", "forwarded")
        self._pending: set = set()

    async def start(self) -> "FaultRelay":
        loop = asyncio.get_running_loop()
        for natt in (False, True):
            for downstream in (True, False):      # downstream: faces the initiator
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.bind((self.host, 0))
                _, leg = await loop.create_datagram_endpoint(lambda n=natt, d=downstream: _Leg(self, n, d),
                                                             sock=sock)
                self.legs[(natt, downstream)] = leg
        return self

    @property
    def ike_port(self) -> int:
        return self.legs[(False, True)].transport.get_extra_info("sockname")[1]

    @property
    def natt_port(self) -> int:
        return self.legs[(True, True)].transport.get_extra_info("sockname")[1]

    def close(self) -> None:
        for handle in self._pending:
            handle.cancel()
        for leg in self.legs.values():
            if leg.transport is not None:
                leg.transport.close()

    def _received(self, leg: _Leg, data: bytes, addr) -> None:
        if leg.downstream:                        # from the initiator: on to the responder
            self.client[leg.natt] = addr
            out, dest = self.legs[(leg.natt, False)], self.upstream[leg.natt]
        else:                                     # from the responder: back to the initiator
            dest = self.client[leg.natt]
            if dest is None:
                return
            out = self.legs[(leg.natt, True)]
        kind = classify(data, leg.natt)
        f = self.faults
        applies = f.applies(kind)
        rng = self.rng
        if applies and rng.random() < f.loss:
            self.counts[kind, "lost"] += 1
            return
        copies = 2 if applies and rng.random() < f.duplicate else 1
        if copies == 2:
            self.counts[kind, "duplicated"] += 1
        if applies and f.truncate and rng.random() < f.truncate and len(data) > 1:
            data = data[:rng.randrange(1, len(data))]
            self.counts[kind, "truncated"] += 1
        for _ in range(copies):
            hold = f.delay if applies else 0.0
            if applies and rng.random() < f.reorder:
                hold += rng.uniform(0.005, 0.05)
                self.counts[kind, "reordered"] += 1
            self._send_later(out, data, dest, hold, kind)

    def _send_later(self, leg: _Leg, data: bytes, dest, hold: float, kind: str) -> None:
        def send() -> None:
            self._pending.discard(handle)
            if leg.transport is not None and not leg.transport.is_closing():
                leg.transport.sendto(data, dest)
                self.counts[kind, "forwarded"] += 1
        if hold <= 0:
            handle = None
            send()
            return
        handle = asyncio.get_running_loop().call_later(hold, send)
        self._pending.add(handle)
