"""Handshakes and memory with many SAs held, driven the way the daemon drives
the core: after every datagram the responder is asked for its next deadline
(``get_timer``), its due timers run (``handle_timer``), and its events are
drained, while it holds N established IKE SAs.

Run:  python -m pytest bench/bench_gateway_scale.py -s -p no:cacheprovider
      IKECORE_BENCH_HELD=100000 IKECORE_BENCH_MEMORY_SAS=100000 python -m pytest bench/bench_gateway_scale.py -s
      python bench/bench_gateway_scale.py --held 0,10000,100000 --memory 10000 [--split]

- ``handshakes with N held``: full IKE_SA_INIT + IKE_AUTH + Child SA (PSK,
  X25519) per second while the responder holds N SAs (copies of a real SA with
  their own SPIs, identities and deadlines), against the same with none held,
  same run. Target: flat within 20 % (ratio >= 0.8).
- ``memory per SA``: the responder's RSS growth per IKE SA + Child SA,
  established by real handshakes, with the ESP SAs installed in a DataPlane as
  the gateway does, against strongSwan charon's 12.7 KB on this machine kind
  (architecture guide). Target: 10 KB or less (ratio charon/ours >= 1.27).
  Every client authenticates with its own identity, as road warriors (and
  ``ikecore load``) do; IKECORE_BENCH_IDENTITIES=one gives them all one, as
  before December 2026. IKECORE_BENCH_MEMORY_SPLIT=1 (``--split``) adds a
  second, traced run that splits the figure into Python objects
  (tracemalloc) and the rest (native: OpenSSL contexts, the C SA structs,
  allocator overhead).
Nothing asserts on time.
"""
from __future__ import annotations

import copy
import dataclasses
import gc
import logging
import os
import random
import time
import tracemalloc

from bench_ike import ADDR_R, _configs
from ikecore.aio.dataplane import DataPlane
from ikecore.protocol import events as ev
from ikecore.protocol.config import Identity
from ikecore.protocol.endpoint import IkeEndpoint
from ikecore.protocol.limits import EndpointLimits

CHARON_BYTES_PER_SA = 12.7 * 1024
TARGET_BYTES_PER_SA = 10 * 1024
FRESH = (("outstanding", dict), ("response_cache", dict), ("children", dict), ("exchange_state", dict),
         ("tasks", list), ("deferred", list), ("_datagrams", list), ("_events", list), ("_spawned", list))


class Responder:
    """A responder endpoint driven as the gateway drives it, with a throwaway
    initiator per handshake (distinct SPIs, ports and no INITIAL_CONTACT)."""

    def __init__(self, seed: int = 1, now: float = 1000.0, distinct_ids: bool = False):
        cfg_i, cfg_r = _configs("x25519")
        self.cfg_i = dataclasses.replace(cfg_i, initial_contact=False)
        self.distinct_ids = distinct_ids        # each client its own identity (the responder takes any)
        if distinct_ids:
            cfg_r = dataclasses.replace(cfg_r, remote_id=None)
        self.clients = 0
        self.now = now
        self.rng = random.Random(seed).randbytes
        # every simulated client authenticates as the same identity: no per-identity cap
        self.ep = IkeEndpoint(cfg_r, rng=random.Random(seed + 1).randbytes, now=now,
                              limits=EndpointLimits(max_sas_per_identity=0))
        self.dataplane: DataPlane | None = None
        self.port = 0

    def deliver(self, data, remote, local) -> None:
        ep = self.ep
        ep.receive_datagram(data, remote, local, self.now)
        t = ep.get_timer()                          # what the gateway does after every datagram
        if t is not None and t <= self.now:
            ep.handle_timer(self.now)
        while (item := ep.next_event()) is not None:      # as the gateway handles them
            conn, event = item
            if isinstance(event, ev.IkeSaEstablished):
                conn.release_session_keys()
            elif isinstance(event, ev.ChildSaInstalled) and self.dataplane is not None:
                self.dataplane.install(conn, event.child)
                event.child.release_keys()

    def handshake(self) -> None:
        self.port = (self.port + 1) % 50000        # 10000-59999: never the NAT-T port
        self.clients += 1
        cfg_i = self.cfg_i
        if self.distinct_ids:
            cfg_i = dataclasses.replace(cfg_i, local_id=Identity.parse(f"client-{self.clients}@bench"))
        ei = IkeEndpoint(cfg_i, rng=self.rng, now=self.now)
        conn = ei.connect(cfg_i, ("192.0.2.1", 10000 + self.port), ADDR_R, self.now)
        while True:
            moved = False
            for data, remote, local in ei.datagrams_to_send():
                self.deliver(data, local, remote)
                moved = True
            for data, remote, local in self.ep.datagrams_to_send():
                ei.receive_datagram(data, local, remote, self.now)
                moved = True
            if not moved:
                break
        if not conn.established or not conn.children:
            raise AssertionError("the benchmark handshake did not complete")

    def hold_copies(self, n: int) -> None:
        """n more established SAs: copies of a real one, each with its own SPI,
        peer identity and future deadlines."""
        self.handshake()
        template = next(c for c in self.ep.connections.values() if c.established)
        for k in range(n):
            sa = copy.copy(template)
            sa.spi_r = (0x5C << 56 | k + 1).to_bytes(8, "big")
            for name, make in FRESH:
                setattr(sa, name, make())
            sa.remote_id = Identity.parse(f"held-{k}@bench")
            sa.index_keys = None
            sa.rekey_at = self.now + 3600 + k * 0.001
            sa.expire_at = self.now + 7200 + k * 0.001
            self.ep._adopt(sa)
        self.ep.get_timer()


def held_responder(n: int) -> Responder:
    r = Responder(seed=n + 3)
    if n:
        r.hold_copies(n)
    return r


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) * 1024
    return 0


def _distinct_ids() -> bool:
    return os.environ.get("IKECORE_BENCH_IDENTITIES", "distinct") != "one"


def bytes_per_sa(n: int, *, traced: bool = False, distinct_ids: bool = True) -> float:
    """RSS growth per IKE SA + Child SA (ESP installed), real handshakes; with
    ``traced``, the growth of the Python objects alone (tracemalloc)."""
    logging.disable(logging.WARNING)
    try:
        r = Responder(seed=77, distinct_ids=distinct_ids)
        r.dataplane = DataPlane(lambda state: None)
        for _ in range(50):
            r.handshake()
        gc.collect()
        if traced:
            tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0] if traced else rss_bytes()
        for _ in range(n):
            r.handshake()
        gc.collect()
        grown = (tracemalloc.get_traced_memory()[0] if traced else rss_bytes()) - before
        if len(r.ep.connections) != n + 50 or len(r.dataplane.states) != n + 50:
            raise AssertionError("SAs went missing during the memory run")
        return grown / n
    finally:
        if traced:
            tracemalloc.stop()
        logging.disable(logging.NOTSET)


def report_memory(n: int, split: bool) -> float:
    distinct = _distinct_ids()
    per_sa = bytes_per_sa(n, distinct_ids=distinct)
    who = "each client its own identity" if distinct else "one identity for all clients"
    print(f"\nmemory per IKE SA + Child SA at {n} SAs ({who}): {per_sa:.0f} B "
          f"(charon {CHARON_BYTES_PER_SA:.0f} B, target {TARGET_BYTES_PER_SA} B)")
    if split:
        gc.collect()
        python = bytes_per_sa(n, traced=True, distinct_ids=distinct)
        print(f"  of which Python objects {python:.0f} B, native and allocator {per_sa - python:.0f} B")
    return per_sa


def _held_sizes() -> list[int]:
    return [int(x) for x in os.environ.get("IKECORE_BENCH_HELD", "10000").split(",")]


# ----------------------------------------------------------------- benchmarks --

def test_handshakes_flat_with_sas_held(compare):
    empty = held_responder(0)
    for n in _held_sizes():
        loaded = held_responder(n)
        compare(loaded.handshake, empty.handshake,
                label=f"handshakes/s holding {n} SAs vs none (get_timer per datagram)",
                target=0.8, baseline_name="no SAs held")


def test_memory_per_sa(record_ratio):
    n = int(os.environ.get("IKECORE_BENCH_MEMORY_SAS", "5000"))
    per_sa = report_memory(n, os.environ.get("IKECORE_BENCH_MEMORY_SPLIT") == "1")
    # as a rate: SAs per MiB, so that higher is better like every other row
    record_ratio(f"IKE+Child SAs per MiB at {n} SAs vs charon's 12.7 KB/SA",
                 2**20 / per_sa, 2**20 / CHARON_BYTES_PER_SA, target=CHARON_BYTES_PER_SA / TARGET_BYTES_PER_SA,
                 baseline_name="strongSwan charon")


# ------------------------------------------------------------ stand-alone use --

def main(argv=None) -> None:
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--held", default="0,10000,100000", help="comma-separated SA counts to hold")
    ap.add_argument("--memory", type=int, default=10000, help="real SAs for the memory figure (0: skip)")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--split", action="store_true", help="split the memory figure into Python and native")
    args = ap.parse_args(argv)
    for n in (int(x) for x in args.held.split(",")):
        r = held_responder(n)
        r.handshake()
        k, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < args.seconds:
            r.handshake()
            k += 1
        print(f"holding {n:>7} SAs: {k / (time.perf_counter() - t0):7.0f} handshakes/s "
              f"(both ends in this process)")
    if args.memory:
        report_memory(args.memory, args.split)


if __name__ == "__main__":
    main()
