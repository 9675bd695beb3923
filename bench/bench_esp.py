"""ESP throughput: ikecore (batch and single-packet API) against `cryptography`.

Run:  python -m pytest bench/bench_esp.py -s -p no:cacheprovider [--benchmark-json out.json]

Every case measures all implementations *in the same run*, interleaved (best of
several repeats each), so that the ratios survive a noisy machine; the ratios go
into ``benchmark.extra_info`` and a table is printed at the end (-s). No timing
is asserted.

The implementations (batch, single, crypto, crypto_esp, crypto_bare) and the
thread-scaling driver live in ikecore.benchmarks.esp, shared with `ikecore
bench`; see that module for what each one does. ``crypto_bare`` is the bar the
single-packet API must clear although it does the whole framing. Gbit/s counts
payload octets.
"""
from __future__ import annotations

import os
import time

import pytest

from ikecore.benchmarks.esp import BATCH, SIZES, SUITES, esp_impls, thread_rate
from ikecore.benchmarks.timing import best_rates

REPEATS = int(os.environ.get("IKECORE_BENCH_REPEATS", "7"))
MIN_TIME = float(os.environ.get("IKECORE_BENCH_MIN_TIME", "0.03"))   # seconds per timed run

RESULTS: list[dict] = []
# (ENCR id, size) -> the batch-vs-cryptography target of the ESP issue
BATCH_TARGETS = {(20, "64"): 3.5, (20, "1400"): 1.8, (12, "64"): 15.0}


@pytest.mark.parametrize("direction", ["encrypt", "decrypt"])
@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("suite", list(SUITES))
def test_esp_throughput(benchmark, record_ratio, suite, size, direction):
    sizes = SIZES[size]
    impls, payloads = esp_impls(suite, sizes, direction)
    pps = best_rates(impls, dict.fromkeys(impls, BATCH), REPEATS, MIN_TIME)
    avg = sum(sizes) / len(sizes)
    row = {"suite": suite, "size": size, "direction": direction}
    for k, v in pps.items():
        row[f"{k}_pps"] = round(v)
        row[f"{k}_gbps"] = round(v * avg * 8 / 1e9, 3)
    row["batch_vs_crypto"] = round(pps["batch"] / pps["crypto"], 2)
    row["single_vs_crypto"] = round(pps["single"] / pps["crypto"], 2)
    row["batch_vs_crypto_esp"] = round(pps["batch"] / pps["crypto_esp"], 2)
    row["single_vs_crypto_esp"] = round(pps["single"] / pps["crypto_esp"], 2)
    if "crypto_bare" in pps:
        row["batch_vs_crypto_bare"] = round(pps["batch"] / pps["crypto_bare"], 2)
        row["single_vs_crypto_bare"] = round(pps["single"] / pps["crypto_bare"], 2)
    RESULTS.append(row)
    benchmark.extra_info.update(row)
    # the targets, into the session's ratio table
    where = f"{suite} {size}{' B' if size.isdigit() else ''} {direction}"
    batch_target = BATCH_TARGETS.get((SUITES[suite][0], size))
    if batch_target:
        record_ratio(f"ESP batch vs cryptography, {where}", pps["batch"], pps["crypto"], batch_target,
                     "cryptography")
    if "crypto_bare" in pps:
        record_ratio(f"ESP single vs bare AEAD, {where}", pps["single"], pps["crypto_bare"], 1.0,
                     "cryptography bare AEAD")
    benchmark.pedantic(impls["batch"], rounds=20, iterations=5, warmup_rounds=2)


@pytest.mark.parametrize("size", [64, 1400])
def test_esp_threads_scaling(benchmark, record_ratio, size):
    best1 = best2 = 0.0
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(max(5, REPEATS)):   # best of several: a 2-core VM has noisy neighbours
        best1 = max(best1, thread_rate(1, size))
    c1, w1 = time.process_time(), time.perf_counter()
    for _ in range(max(5, REPEATS)):   # best of several: a 2-core VM has noisy neighbours
        best2 = max(best2, thread_rate(2, size))
    c2, w2 = time.process_time(), time.perf_counter()
    # CPU seconds per wall second: ~2 with two threads means two cores really ran
    cpu1, cpu2 = (c1 - c0) / (w1 - w0), (c2 - c1) / (w2 - w1)
    row = {"suite": "AES-128-GCM", "size": str(size), "direction": "encrypt threads",
           "one_thread_pps": round(best1), "two_threads_pps": round(best2),
           "two_vs_one": round(best2 / best1, 2), "cpus": os.cpu_count(),
           "cpu_per_wall_1": round(cpu1, 2), "cpu_per_wall_2": round(cpu2, 2)}
    RESULTS.append(row)
    benchmark.extra_info.update(row)
    record_ratio(f"ESP batch AES-128-GCM {size} B, 2 threads vs 1", best2, best1, 1.7, "ikecore on 1 thread")
    benchmark.pedantic(lambda: thread_rate(2, size, 0.05), rounds=1, iterations=1)


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    if not RESULTS:
        return
    print("\n\nESP throughput (packets/s, payload Gbit/s; ratios measured in the same run)")
    print("| suite | size | dir | batch pps | batch Gb/s | single pps | crypto pps | crypto_esp pps "
          "| bare pps | batch/crypto | batch/crypto_esp | single/crypto | single/bare |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in RESULTS:
        if "batch_pps" not in r:
            continue
        print(f"| {r['suite']} | {r['size']} | {r['direction']} | {r['batch_pps']:,} | "
              f"{r['batch_gbps']:.2f} | {r['single_pps']:,} | {r['crypto_pps']:,} | "
              f"{r['crypto_esp_pps']:,} | {r.get('crypto_bare_pps', '-')} | "
              f"{r['batch_vs_crypto']:.2f} | {r['batch_vs_crypto_esp']:.2f} | "
              f"{r['single_vs_crypto']:.2f} | {r.get('single_vs_crypto_bare', '-')} |")
    for r in RESULTS:
        if "two_vs_one" in r:
            print(f"threads AES-128-GCM encrypt {r['size']:>5} B: 1 thread {r['one_thread_pps']:,} pps, "
                  f"2 threads {r['two_threads_pps']:,} pps, x{r['two_vs_one']} ({r['cpus']} CPUs; "
                  f"CPU/wall {r['cpu_per_wall_1']} vs {r['cpu_per_wall_2']}: below ~1.9 the second "
                  "core was busy elsewhere)")
