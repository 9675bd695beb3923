"""Cloning an IKE SA (RFC 7791) against a full IKE_SA_INIT + IKE_AUTH, both
through two in-memory endpoints the way bench_ike.py drives handshakes, in
the same run and with the same suite (AES-256-GCM, PRF SHA-256, X25519).

Run:  python -m pytest bench/bench_clone.py -s -p no:cacheprovider
      python bench/bench_clone.py [--profile psk|rsa] [--parts] [--rounds N]

- ``clone vs handshake``: clones per second on one established IKE SA
  (CREATE_CHILD_SA with N(CLONE_IKE_SA), KEi/KEr, both ends' clone set up)
  against full handshakes per second, for PSK and for RSA-2048 certificates
  (a CA and a leaf each side, RFC 7427 RSASSA-PSS signatures). The handshake
  baseline carries the first Child SA, as IKE_AUTH normally does; a second
  row compares against an IKE_AUTH without a Child SA (no SA/TS payloads,
  no Child SA keys), which is the stricter like-for-like figure.
  Targets: 2x with PSK, 5x with RSA-2048.
- ``responder CPU``: process CPU time inside the responder endpoint's
  ``receive_datagram`` per clone and per handshake (the cloning peer is the
  initiator; a gateway answers clones).
- ``key exchange share``: the clone against two X25519 key generations and
  two shared secrets alone, i.e. which share of a clone is the key exchange
  RFC 7296 §2.18 makes mandatory (RFC 7791 defines no DH-less clone).

Every ratio is given twice: wall-clock rates (the harness's interleaved
rounds) and process CPU time per call (``cpu_interleaved``), which a busy
shared machine disturbs far less. Both drivers keep their two endpoints
across calls and forget what each call made on both ends (``terminate``, no
Delete exchange): the Cloner its clone, the Handshaker its IKE SA. So the SA
count stays the same however many rounds run, and neither side of a ratio
pays a harness cost (new endpoints, a growing SA table) the other does not.
Nothing asserts on time.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import pytest

if __name__ == "__main__":
    # run as a script, sys.path starts with bench/: measure this tree's ikecore, not
    # whichever checkout an editable install points at
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_ike import ADDR_I, ADDR_R, key_exchange_fn
# the drivers are shared with `ikecore bench` (suite_clone)
from ikecore.benchmarks.clone import (TARGETS, Cloner, CpuLink, configs, handshake_fn,  # noqa: F401
                                      responder_ms)


# ----------------------------------------------------------------- benchmarks --

def cpu_interleaved(ours, baseline, rounds: int = 9, n_ours: int = 40, n_base: int = 20) -> tuple[float, float]:
    """Median process-CPU seconds per call of each, measured alternately: on a
    machine shared with other work, wall-clock rates mostly measure the neighbours."""
    def per_call(fn, n):
        t0 = time.process_time()
        for _ in range(n):
            fn()
        return (time.process_time() - t0) / n
    a, b = [], []
    for _ in range(rounds):
        a.append(per_call(ours, n_ours))
        b.append(per_call(baseline, n_base))
    return statistics.median(a), statistics.median(b)


@pytest.mark.parametrize("child", [True, False], ids=["with-child", "no-child"])
@pytest.mark.parametrize("auth", ["psk", "rsa"])
def test_clone_vs_handshake(compare, record_ratio, benchmark, auth, child):
    name = {"psk": "PSK", "rsa": "RSA-2048"}[auth]
    what = "IKE_SA_INIT+IKE_AUTH+Child" if child else "IKE_SA_INIT+IKE_AUTH (no Child)"
    cloner, handshake = Cloner(auth), handshake_fn(auth, child=child)
    ratio = compare(cloner, handshake, target=TARGETS[auth], label=f"clone vs {what}, {name} x25519",
                    baseline_name="full handshake")
    t_clone, t_hs = cpu_interleaved(cloner, handshake)
    record_ratio("  the same in process CPU time", 1 / t_clone, 1 / t_hs, TARGETS[auth])
    extra = {"clone_vs_handshake": ratio, "clone_vs_handshake_cpu": t_hs / t_clone,
             "clone_cpu_ms": t_clone * 1e3, "handshake_cpu_ms": t_hs * 1e3}
    if child:
        r_clone, r_hs = responder_ms(auth)
        extra.update({"responder_ms_per_clone": r_clone, "responder_ms_per_handshake": r_hs,
                      "responder_ratio": r_hs / r_clone})
        print(f"\n{name}: responder {r_clone:.3f} ms per clone vs {r_hs:.3f} ms per handshake "
              f"(x{r_hs / r_clone:.2f})")
    benchmark.extra_info.update(extra)


def test_clone_key_exchange_share(compare):
    compare(Cloner("psk"), key_exchange_fn("x25519"), label="clone (PSK x25519): key exchange share",
            baseline_name="key exchange alone")


# ------------------------------------------------------------ stand-alone use --

def parts(n: int = 1000) -> dict:
    """Process-CPU microseconds of what every clone (and every handshake) does,
    measured alone: where a clone's time goes besides message handling."""
    import random

    from ikecore.crypto import SkCipher
    from ikecore.crypto.keyschedule import ike_keys_rekey
    from ikecore.protocol.ike_sa import IkeConnection

    def cpu_us(fn, count):
        runs = []
        for _ in range(5):
            t0 = time.process_time()
            for _ in range(count):
                fn()
            runs.append((time.process_time() - t0) / count * 1e6)
        return statistics.median(runs)
    cfg = configs("psk")[0]
    rng = random.Random(1).randbytes
    key = bytes(36)
    out = {
        "clone, both ends": cpu_us(Cloner("psk"), max(50, n // 4)),
        "X25519: 2 key pairs + 2 shared secrets": cpu_us(key_exchange_fn("x25519"), max(50, n // 4)),
        "4 SK cipher contexts": 4 * cpu_us(lambda: SkCipher(20, key), n),
        "2 key schedules (SKEYSEED + prf+)": 2 * cpu_us(lambda: ike_keys_rekey(
            5, bytes(32), bytes(32), bytes(32), bytes(32), bytes(8), bytes(8), prf_id=5, encr_id=20,
            encr_key_bits=256, integ_id=0), n),
        "2 IkeConnection objects": 2 * cpu_us(lambda: IkeConnection(
            cfg, initiator=True, local=ADDR_I, remote=ADDR_R, rng=rng, now=0.0), n),
    }
    out["the rest: messages and state, both ends"] = out["clone, both ends"] - sum(
        v for k, v in out.items() if k != "clone, both ends")
    return out


def main(argv=None) -> None:
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", choices=["psk", "rsa"], help="cProfile 500 clones (and the responder alone)")
    ap.add_argument("--rounds", type=int, default=9, help="interleaved rounds per figure (median)")
    ap.add_argument("--parts", action="store_true", help="CPU time of a clone's parts, each alone")
    args = ap.parse_args(argv)
    if args.parts:
        for name, us in parts().items():
            print(f"{name:42} {us:8.1f} us")
        return
    if args.profile:
        import cProfile
        import pstats
        cloner = Cloner(args.profile)
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(500):
            cloner()
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
        return
    # process CPU time in interleaved rounds: on a shared machine, rates over wall-clock
    # windows taken one after the other mostly measure what the neighbours did meanwhile
    rounds = args.rounds
    print("process CPU time per call, medians of interleaved rounds (both ends in this process)")
    for auth in ("psk", "rsa"):
        cloner = Cloner(auth)
        t_clone, t_hs = cpu_interleaved(cloner, handshake_fn(auth), rounds)
        _, t_bare = cpu_interleaved(cloner, handshake_fn(auth, child=False), rounds)
        _, t_kex = cpu_interleaved(cloner, key_exchange_fn("x25519"), rounds, n_base=40)
        r_clone, r_hs = responder_ms(auth)
        print(f"{auth:4} clones/s {1 / t_clone:6.0f}  handshakes/s {1 / t_hs:6.0f} (x{t_hs / t_clone:.2f}), "
              f"without Child {1 / t_bare:6.0f} (x{t_bare / t_clone:.2f}); key exchange {t_kex / t_clone:5.1%} "
              f"of a clone; responder {r_clone:.3f} ms/clone vs {r_hs:.3f} ms/handshake (x{r_hs / r_clone:.2f})")


if __name__ == "__main__":
    main()
