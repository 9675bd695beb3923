"""Cloning an IKE SA (RFC 7791) and full handshakes through two in-memory
endpoints, PSK or RSA-2048 certificates: the drivers of `ikecore bench`
(suite_clone) and bench/bench_clone.py."""
from __future__ import annotations

import statistics
import time

from ..protocol.config import (ChildConfig, EspProposal, IkeConfig, IkeProposal, Identity, LocalAuth,
                               RemoteAuth, TrafficSelectorSpec)
from .certs import CERT_TIME, rsa_pki
from .ike import ADDR_I, ADDR_R, PSK, Link

SUITE = "aes256gcm16-prfsha256-x25519"
TARGETS = {"psk": 2.0, "rsa": 5.0}




def configs(auth: str, *, child: bool = True):
    """Initiator and responder configurations, PSK or RSA-2048 certificates,
    cloning on (and no cap that a long run could reach)."""
    def side(me, peer, local, remote):
        children = [ChildConfig("net", [TrafficSelectorSpec.parse(local)], [TrafficSelectorSpec.parse(remote)],
                                [EspProposal.parse("aes256gcm16")])] if child else []
        common = dict(proposals=[IkeProposal.parse(SUITE)], children=children, dpd_delay=0, clone=True,
                      clone_limit=1_000_000)
        if auth == "psk":
            return IkeConfig(local_id=Identity.parse(me), local_auth=LocalAuth(psk=PSK),
                             remote_auth=RemoteAuth(psk=PSK), remote_id=Identity.parse(peer), **common)
        from ikecore.protocol.auth import TrustStore
        ca, leaves = rsa_pki(("initiator.bench", "responder.bench"))
        key, cert = leaves[me]
        return IkeConfig(local_id=Identity.parse(me), local_auth=LocalAuth(private_key=key, certificates=[cert]),
                         remote_auth=RemoteAuth(trust_store=TrustStore([ca])),
                         remote_id=Identity.parse(peer), certificate_time=lambda now: CERT_TIME, **common)
    return (side("initiator.bench", "responder.bench", "10.1.0.0/16", "10.2.0.0/16"),
            side("responder.bench", "initiator.bench", "10.2.0.0/16", "10.1.0.0/16"))


class CpuLink(Link):
    """bench_ike's Link, but ``responder_s`` counts process CPU time (the
    machine's other work does not land in it)."""

    clock = staticmethod(time.process_time)


def _handshake(link: Link, child: bool):
    conn = link.ei.connect(link.cfg_i, ADDR_I, ADDR_R, link.now)
    link.pump()
    if not conn.established or (child and not conn.children):
        raise AssertionError("the benchmark handshake did not complete")
    return conn


def handshake_fn(auth: str, *, child: bool = True):
    """One full IKE_SA_INIT + IKE_AUTH (with or without the first Child SA) per call."""
    cfg_i, cfg_r = configs(auth, child=child)
    counter = iter(range(10**9))

    def run():
        _handshake(Link(cfg_i, cfg_r, next(counter) * 2), child)
    return run


class Cloner:
    """One established IKE SA that the initiator clones once per call."""

    def __init__(self, auth: str, seed: int = 99) -> None:
        cfg_i, cfg_r = configs(auth)
        self.link = CpuLink(cfg_i, cfg_r, seed)
        self.parent = _handshake(self.link, True)
        [self.parent_r] = self.link.er.connections.values()
        self.clones = 0

    def __call__(self) -> None:
        link, ei, er = self.link, self.link.ei, self.link.er
        ei.clone(self.parent, link.now)
        link.pump()
        made = [c for c in ei.connections.values() if c is not self.parent]
        answered = [c for c in er.connections.values() if c is not self.parent_r]
        if len(made) != 1 or len(answered) != 1 or made[0].keys != answered[0].keys:
            raise AssertionError("the clone did not complete")
        # forget it on both ends (no Delete exchange): the SA count stays at two
        for ep, conn in ((ei, made[0]), (er, answered[0])):
            conn.terminate("benchmark", link.now)
            ep.collect(conn, link.now)
            # what an I/O layer does after each batch: it also drains the timer queue's
            # changed-SA set, which would otherwise keep every forgotten clone
            ep.get_timer()
        self.clones += 1


def responder_ms(auth: str, n: int = 40, rounds: int = 7) -> tuple[float, float]:
    """(responder CPU ms per clone, per handshake with a Child SA): medians of
    interleaved rounds, each started after a garbage collection so that no
    round pays for garbage an earlier benchmark left."""
    import gc
    cloner = Cloner(auth, seed=5)
    cfg_i, cfg_r = configs(auth)
    seeds = iter(range(20_000, 10**9, 2))
    per_clone, per_handshake = [], []
    for _ in range(rounds):
        gc.collect()
        cloner.link.responder_s = 0.0
        for _ in range(n):
            cloner()
        per_clone.append(cloner.link.responder_s / n * 1000)
        gc.collect()
        total = 0.0
        for _ in range(n):
            link = CpuLink(cfg_i, cfg_r, next(seeds))
            _handshake(link, True)
            total += link.responder_s
        per_handshake.append(total / n * 1000)
    return statistics.median(per_clone), statistics.median(per_handshake)
