"""MOBIKE (RFC 4555) address updates through two in-memory endpoints.

Run:  python -m pytest bench/bench_mobike.py -s -p no:cacheprovider
      python bench/bench_mobike.py          (a quick table)

Each call moves a live IKE SA (with one Child SA) from one initiator address
to the other and back is the next call; both ends run in this process:

- ``update + return routability``: the default. UPDATE_SA_ADDRESSES round trip
  (NAT-D, COOKIE2) and the responder's COOKIE2 check at the new address: two
  INFORMATIONAL round trips.
- ``update only``: ``mobike_return_routability = false`` and NAT-D that match,
  so the responder moves at once: one round trip.

The same-run baseline is an INFORMATIONAL liveness round trip (an empty
request and its answer) on the same kind of IKE SA, so the ratio says what a
move costs in liveness checks. Nothing asserts on time.
"""
from __future__ import annotations

import random
import time

from ikecore.protocol.config import ChildConfig, EspProposal, IkeProposal, TrafficSelectorSpec, psk_config
from ikecore.protocol.endpoint import IkeEndpoint

ADDR_I, ADDR_R = ("192.0.2.1", 500), ("192.0.2.2", 500)
OTHER_I = "192.0.2.11"
PSK = b"benchmark pre-shared key 0123456789"


def _configs(**kw):
    def side(me, peer, local, remote):
        child = ChildConfig("net", [TrafficSelectorSpec.parse(local)], [TrafficSelectorSpec.parse(remote)],
                            [EspProposal.parse("aes256gcm16")])
        return psk_config(me, peer, PSK, proposals=[IkeProposal.parse("aes256gcm16-prfsha256-x25519")],
                          children=[child], dpd_delay=0, mobike=True, **kw)
    return (side("initiator@bench", "responder@bench", "10.1.0.0/16", "10.2.0.0/16"),
            side("responder@bench", "initiator@bench", "10.2.0.0/16", "10.1.0.0/16"))


class Link:
    """Two endpoints and a lossless wire (datagrams go where they are addressed)."""

    def __init__(self, *, return_routability: bool = True, seed: int = 5, now: float = 1000.0):
        cfg_i, cfg_r = _configs(mobike_return_routability=return_routability)
        self.now = now
        self.ei = IkeEndpoint(cfg_i, rng=random.Random(seed).randbytes, now=now)
        self.er = IkeEndpoint(cfg_r, rng=random.Random(seed + 1).randbytes, now=now)
        self.conn = self.ei.connect(cfg_i, ADDR_I, ADDR_R, now)
        self.pump()
        [self.peer] = self.er.connections.values()
        if not (self.conn.established and self.conn.children and self.conn.peer_mobike):
            raise AssertionError("the benchmark IKE SA did not come up with MOBIKE")

    def pump(self) -> None:
        ei, er, now = self.ei, self.er, self.now
        while True:
            moved = False
            for data, remote, local in ei.datagrams_to_send():
                er.receive_datagram(data, local, remote, now)
                moved = True
            for data, remote, local in er.datagrams_to_send():
                ei.receive_datagram(data, local, remote, now)
                moved = True
            if not moved:
                break
        for ep in (ei, er):            # events are not kept: they would pile up over rounds
            while ep.next_event() is not None:
                pass


def move_fn(*, return_routability: bool):
    """One MOBIKE move per call, alternating between two initiator addresses."""
    link = Link(return_routability=return_routability)
    conn, peer = link.conn, link.peer
    hosts = [OTHER_I, ADDR_I[0]]
    turn = iter(range(10**12))

    def run():
        host = hosts[next(turn) % 2]
        conn.update_addresses(link.now, local=(host, conn.local[1]))
        link.ei.collect_all()
        link.pump()
        if peer.remote[0] != host or conn.outstanding or peer.outstanding:
            raise AssertionError("the move did not complete")
    return run


def liveness_fn():
    """One INFORMATIONAL liveness round trip per call (the baseline)."""
    link = Link()
    conn = link.conn

    def run():
        before = conn.next_request_id
        conn.check_liveness(link.now)
        link.ei.collect_all()
        link.pump()
        if conn.outstanding or conn.next_request_id != before + 1:
            raise AssertionError("the liveness check did not complete")
    return run


# ----------------------------------------------------------------- benchmarks --

def test_mobike_update_with_return_routability(compare):
    compare(move_fn(return_routability=True), liveness_fn(),
            label="MOBIKE move (update + return routability) vs liveness RT", baseline_name="liveness round trip")


def test_mobike_update_only(compare):
    compare(move_fn(return_routability=False), liveness_fn(),
            label="MOBIKE move (update only) vs liveness RT", baseline_name="liveness round trip")


# ------------------------------------------------------------ stand-alone use --

def _rate(fn, seconds: float = 1.0) -> float:
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - t0)


def main() -> None:
    base = _rate(liveness_fn())
    for rr in (True, False):
        moves = _rate(move_fn(return_routability=rr))
        print(f"MOBIKE moves/s ({'update + return routability' if rr else 'update only':28}) {moves:8.0f}"
              f"   liveness round trips/s {base:8.0f}   ratio {moves / base:.2f}")


if __name__ == "__main__":
    main()
