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
    machine's other work does not land in it). Only for ``responder_ms``:
    reading the process clock costs about a microsecond a datagram, which
    rates measured through it would count."""

    clock = staticmethod(time.process_time)


def _handshake(link: Link, child: bool):
    conn = link.ei.connect(link.cfg_i, ADDR_I, ADDR_R, link.now)
    link.pump()
    if not conn.established or (child and not conn.children):
        raise AssertionError("the benchmark handshake did not complete")
    return conn


def _forget(link: Link, ours, theirs) -> None:
    """Forget one IKE SA on both ends, with no Delete exchange, so that the SA
    count stays where it was however many rounds run. The clone and the
    handshake drivers both end each call with this, so neither pays a harness
    cost the other does not."""
    if ours.keys != theirs.keys:
        raise AssertionError("the two ends did not derive the same keys")
    now = link.now
    for ep, conn in ((link.ei, ours), (link.er, theirs)):
        conn.terminate("benchmark", now)
        ep.collect(conn, now)
        # what an I/O layer does after each batch: it also drains the timer queue's
        # changed-SA set, which would otherwise keep every forgotten SA
        ep.get_timer()


class Handshaker:
    """One full IKE_SA_INIT + IKE_AUTH (with or without the first Child SA) per
    call, between two endpoints that live across calls (as a gateway's do);
    each SA is forgotten on both ends afterwards, as the Cloner forgets its
    clones."""

    def __init__(self, auth: str, *, child: bool = True, seed: int = 1, link=Link) -> None:
        cfg_i, cfg_r = configs(auth, child=child)
        self.link = link(cfg_i, cfg_r, seed)
        self.child = child
        self.handshakes = 0

    def __call__(self) -> None:
        link = self.link
        ours = _handshake(link, self.child)
        theirs = link.er.connections.get(ours.spi_r)     # the responder files it under SPIr
        if theirs is None or len(link.er.connections) != 1:
            raise AssertionError("the responder holds no (or more than one) SA")
        _forget(link, ours, theirs)
        self.handshakes += 1


def handshake_fn(auth: str, *, child: bool = True):
    """One full IKE_SA_INIT + IKE_AUTH (with or without the first Child SA) per call."""
    return Handshaker(auth, child=child)


class Cloner:
    """One established IKE SA that the initiator clones once per call."""

    def __init__(self, auth: str, seed: int = 99, *, link=Link) -> None:
        cfg_i, cfg_r = configs(auth)
        self.link = link(cfg_i, cfg_r, seed)
        self.parent = _handshake(self.link, True)
        self.parent_r = self.link.er.connections[self.parent.spi_r]
        self.clones = 0

    def __call__(self) -> None:
        link, parent = self.link, self.parent
        link.ei.clone(parent, link.now)
        link.pump()
        # each end holds the parent and the one clone; the responder files its clone
        # under the clone's SPIr
        made = link.ei.connections
        ours = None
        for conn in made.values():
            if conn is not parent:
                ours = conn
        theirs = link.er.connections.get(ours.spi_r) if ours is not None else None
        if theirs is None or theirs is self.parent_r or len(made) != 2 or len(link.er.connections) != 2:
            raise AssertionError("the clone did not complete")
        _forget(link, ours, theirs)
        self.clones += 1


def responder_ms(auth: str, n: int = 40, rounds: int = 7) -> tuple[float, float]:
    """(responder CPU ms per clone, per handshake with a Child SA): medians of
    interleaved rounds, each started after a garbage collection so that no
    round pays for garbage an earlier benchmark left. Both drivers keep their
    two endpoints across rounds."""
    import gc
    cloner = Cloner(auth, seed=5, link=CpuLink)
    handshaker = Handshaker(auth, seed=20_000, link=CpuLink)
    per_clone, per_handshake = [], []
    for _ in range(rounds):
        gc.collect()
        cloner.link.responder_s = 0.0
        for _ in range(n):
            cloner()
        per_clone.append(cloner.link.responder_s / n * 1000)
        gc.collect()
        handshaker.link.responder_s = 0.0
        for _ in range(n):
            handshaker()
        per_handshake.append(handshaker.link.responder_s / n * 1000)
    return statistics.median(per_clone), statistics.median(per_handshake)
