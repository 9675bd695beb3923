"""Session resumption (RFC 5723) and full handshakes through a client and a
gateway endpoint in memory, the gateway serving its ticket store from a dict
(the one store round trip the I/O layer makes per resumption). For `ikecore
bench` (suite_resumption) and bench/bench_resumption.py."""
from __future__ import annotations

import random

from ..protocol.config import (ChildConfig, EspProposal, IkeConfig, IkeProposal, Identity, LocalAuth,
                               RemoteAuth, TrafficSelectorSpec)
from ..protocol.auth import TrustStore
from ..protocol.tickets import TicketCheck, TicketPut
from ..resumption import TicketAuthority, TicketKeyRing
from .certs import CERT_TIME, rsa_pki
from .ike import Link as IkeLink

ADDR_I, ADDR_R = ("192.0.2.1", 500), ("192.0.2.2", 500)
PSK = b"benchmark pre-shared key 0123456789"
WALL_OFFSET = 1_700_000_000.0
TARGETS = {"psk-x25519": 2.0, "rsa2048-x25519": 5.0}


def _child(local: str, remote: str) -> ChildConfig:
    return ChildConfig("net", [TrafficSelectorSpec.parse(local)], [TrafficSelectorSpec.parse(remote)],
                       [EspProposal.parse("aes256gcm16")])




def configs(auth: str, *, resumption: bool):
    """Client and gateway configurations; with ``resumption`` the gateway issues tickets."""
    ids = ("client.bench", "gw.bench")
    if auth == "psk":
        local = {i: LocalAuth(psk=PSK) for i in ids}
        remote = {i: RemoteAuth(psk=PSK) for i in ids}
    else:
        ca, leaves = rsa_pki(ids)
        local = {i: LocalAuth(private_key=key, certificates=(cert,)) for i, (key, cert) in leaves.items()}
        store = TrustStore([ca])
        remote = {i: RemoteAuth(trust_store=store) for i in ids}
    common = dict(proposals=[IkeProposal.parse("aes256gcm16-prfsha256-x25519")], dpd_delay=0,
                  resumption=resumption, wall_clock=lambda now: now + WALL_OFFSET,
                  certificate_time=lambda now: CERT_TIME)
    ci = IkeConfig(local_id=Identity.parse(ids[0]), local_auth=local[ids[0]], remote_auth=remote[ids[1]],
                   remote_id=Identity.parse(ids[1]), children=[_child("10.1.0.0/16", "10.2.0.0/16")],
                   name="bench", **common)
    authority = None
    if resumption:
        rnd = random.Random(11)
        authority = TicketAuthority(TicketKeyRing(rng=rnd.randbytes, now=WALL_OFFSET), rng=rnd.randbytes)
    cr = IkeConfig(local_id=Identity.parse(ids[1]), local_auth=local[ids[1]], remote_auth=remote[ids[0]],
                   remote_id=Identity.parse(ids[0]), children=[_child("10.2.0.0/16", "10.1.0.0/16")],
                   name="bench", ticket_authority=authority, **common)
    return ci, cr


class Link(IkeLink):
    """A client and a gateway endpoint that live across rounds, a lossless wire,
    and the gateway's ticket store (a dict: SET NX / GETDEL / SET)."""

    def __init__(self, cfg_i, cfg_r, seed: int, now: float = 1000.0):
        super().__init__(cfg_i, cfg_r, seed, now)
        self.store: dict = {}
        self.round_trips = 0

    def _serve_responder(self) -> bool:
        ops = self.er.ticket_store_ops()
        for op in ops:
            if isinstance(op, TicketPut):
                self.store[op.key] = op.value
            elif isinstance(op, TicketCheck):
                self.round_trips += 1
                if op.by_reference:
                    result = self.store.pop(op.take_key, None)
                else:
                    result = op.spend_key not in self.store
                    self.store[op.spend_key] = b"1"
                t0 = self.clock()
                self.er.ticket_checked(op.token, result, self.now)
                self.responder_s += self.clock() - t0
        return bool(ops)

    def _finish(self, conn):
        if not conn.established or not conn.children:
            raise AssertionError("the benchmark exchange did not complete")
        conn.suspend(self.now)         # the client goes away without a Delete, keeping its ticket
        self.ei.collect_all()
        self.now += 0.001
        return conn

    def handshake(self):
        conn = self.ei.connect(self.cfg_i, ADDR_I, ADDR_R, self.now)
        self.pump()
        return self._finish(conn)

    def resumption(self):
        conn = self.ei.resume(self.cfg_i, ADDR_I, ADDR_R, self.now)
        self.pump()
        if conn.resumed is None:
            raise AssertionError("the benchmark fell back to a full handshake")
        return self._finish(conn)


def _link(auth: str, *, resumption: bool, seed: int = 1) -> Link:
    link = Link(*configs(auth, resumption=resumption), seed)
    link.handshake()                  # the first ticket (and warm caches)
    return link


def full_handshake_fn(auth: str, *, tickets: bool = False):
    """A full handshake; with ``tickets`` the gateway also issues a ticket in it
    (what a full handshake costs where resumption is on)."""
    link = _link(auth, resumption=tickets)
    return link.handshake


def resumption_fn(auth: str):
    link = _link(auth, resumption=True)
    return link.resumption


def responder_ms(auth: str, rounds: int = 15, per_round: int = 40) -> tuple[float, float]:
    """Gateway CPU (ms) per resumption and per full handshake: the best round of
    each, the two measured alternately so that a busy neighbour hits both alike."""
    links = {True: _link(auth, resumption=True), False: _link(auth, resumption=False)}
    best = {True: float("inf"), False: float("inf")}
    for _ in range(rounds):
        for resumed, link in links.items():
            fn = link.resumption if resumed else link.handshake
            link.responder_s = 0.0
            for _ in range(per_round):
                fn()
            best[resumed] = min(best[resumed], link.responder_s / per_round * 1000)
    return best[True], best[False]
