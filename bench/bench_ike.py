"""IKE setup rates through two in-memory endpoints: the baseline that Child SA
cloning and session resumption are compared against.

Run:  python -m pytest bench/bench_ike.py -s -p no:cacheprovider
      python bench/bench_ike.py [--profile]      (a quick table, or a cProfile top list)

- ``handshake``: IKE_SA_INIT + IKE_AUTH (PSK) + the first Child SA, both ends
  in this process, per second; for X25519 and ECP-256 (AES-256-GCM, PRF SHA-256).
  The same-run baseline is the key exchange alone (two key generations and two
  shared secrets, what one handshake does on both ends), so the reported ratio
  *is* the share of handshake time spent in key exchange.
- ``responder CPU``: the part of a handshake spent inside the responder's
  ``receive_datagram``, comparable to strongSwan charon's 0.455 ms (x25519) and
  0.57 ms (ECP-256) per handshake on this machine kind (architecture guide).
- ``child rekey``: CREATE_CHILD_SA rekey of the Child SA + the Delete of the old
  one, per second, without PFS (baseline: a full handshake) and with X25519 PFS
  (baseline: its key exchange alone, giving the key exchange share again).
Nothing asserts on time.
"""
from __future__ import annotations

import random
import time

import pytest

from ikecore.crypto.dh import KeyExchange
from ikecore.protocol.config import ChildConfig, EspProposal, IkeProposal, TrafficSelectorSpec, psk_config
from ikecore.protocol.endpoint import IkeEndpoint

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

    def pump(self) -> None:
        ei, er, now, clock = self.ei, self.er, self.now, time.perf_counter
        while True:
            moved = False
            for data, remote, local in ei.datagrams_to_send():
                t0 = clock()
                er.receive_datagram(data, local, remote, now)
                self.responder_s += clock() - t0
                moved = True
            for data, remote, local in er.datagrams_to_send():
                ei.receive_datagram(data, local, remote, now)
                moved = True
            if not moved:
                break
        for ep in (ei, er):            # events are not kept: they would pile up over rounds
            while ep.next_event() is not None:
                pass

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


# ----------------------------------------------------------------- benchmarks --

@pytest.mark.parametrize("group", list(GROUPS))
def test_handshake_psk(compare, benchmark, group):
    share = compare(full_handshake_fn(group), key_exchange_fn(group),
                    label=f"IKE_SA_INIT+IKE_AUTH+Child, PSK {group}: key exchange share",
                    baseline_name="key exchange alone")
    ms = responder_ms(group)
    benchmark.extra_info.update({
        "key_exchange_share": share,
        "responder_ms_per_handshake": ms,
        "charon_responder_ms": CHARON_RESPONDER_MS[group],
        "responder_cost_vs_charon": ms / CHARON_RESPONDER_MS[group],
    })
    print(f"\n{group}: key exchange {share:.0%} of a handshake; responder {ms:.3f} ms/handshake "
          f"(charon {CHARON_RESPONDER_MS[group]} ms)")


def test_child_rekey_no_pfs(compare):
    compare(rekey_fn("aes256gcm16"), full_handshake_fn("x25519"),
            label="Child SA rekey (no PFS) vs full handshake (x25519)", baseline_name="full handshake")


def test_child_rekey_pfs(compare):
    compare(rekey_fn("aes256gcm16-x25519"), key_exchange_fn("x25519"),
            label="Child SA rekey (PFS x25519): key exchange share", baseline_name="key exchange alone")


# ------------------------------------------------------------ stand-alone use --

def _rate(fn, seconds: float = 1.0) -> float:
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - t0)


def main(argv=None) -> None:
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", action="store_true", help="cProfile 300 x25519 handshakes")
    args = ap.parse_args(argv)
    if args.profile:
        import cProfile
        import pstats
        fn = full_handshake_fn("x25519")
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(300):
            fn()
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return
    for group in GROUPS:
        hs = _rate(full_handshake_fn(group))
        kex = _rate(key_exchange_fn(group))
        print(f"{group:7} handshakes/s {hs:8.0f}  key exchange share {hs / kex:5.1%}  "
              f"responder {responder_ms(group):.3f} ms (charon {CHARON_RESPONDER_MS[group]})")
    for esp in ("aes256gcm16", "aes256gcm16-x25519"):
        print(f"child rekeys/s ({esp}) {_rate(rekey_fn(esp)):8.0f}")


if __name__ == "__main__":
    main()
