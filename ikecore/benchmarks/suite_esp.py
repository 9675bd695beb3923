"""ESP: single-packet and batch (64 packets per call) encrypt and decrypt
against `cryptography`'s AEAD (or Cipher + HMAC for CBC) in the same run, and
batch encryption on 1..N threads against one thread."""
from __future__ import annotations

from .esp import BATCH, SUITES, esp_impls, thread_rate
from .registry import Case, Options, Result
from .timing import best_rates

ORDER = 10
SIZES = (64, 512, 1400)


def _baseline_name(suite: str) -> str:
    return "cryptography Cipher+HMAC" if "CBC" in suite else "cryptography AEAD"


def _packets(suite: str, size: int, direction: str, options: Options) -> list[Result]:
    impls, _ = esp_impls(suite, [size] * BATCH, direction)
    impls = {k: impls[k] for k in ("single", "batch", "crypto")}
    samples: dict = {}
    pps = best_rates(impls, dict.fromkeys(impls, BATCH), options.repeats, options.min_time, samples)
    params = {"suite": suite, "size": size, "direction": direction}
    return [Result(name=f"esp-{api}[{suite}-{size}-{direction}]", group=f"esp-{api}", unit="packets",
                   ours_per_s=pps[api], baseline=_baseline_name(suite), baseline_per_s=pps["crypto"],
                   bytes_per_unit=size, params=dict(params, api=api), samples=samples[api])
            for api in ("single", "batch")]


def _threads(size: int, options: Options) -> list[Result]:
    seconds = 0.15 if options.quick else 0.4
    tries = 1 if options.quick else 3
    one = max(thread_rate(1, size, seconds) for _ in range(tries))
    results = []
    for n in range(1, options.threads + 1):
        pps = one if n == 1 else max(thread_rate(n, size, seconds) for _ in range(tries))
        results.append(Result(name=f"esp-threads[AES-128-GCM-{size}-{n}]", group="esp-threads", unit="packets",
                              ours_per_s=pps, baseline="ikecore on 1 thread", baseline_per_s=one,
                              bytes_per_unit=size, params={"suite": "AES-128-GCM", "size": size, "threads": n},
                              samples=[1 / pps]))
    return results


def cases(options: Options) -> list[Case]:
    suites = ["AES-128-GCM"] if options.quick else list(SUITES)
    out = []
    for suite in suites:
        for size in SIZES:
            for direction in ("encrypt", "decrypt"):
                out.append(Case(f"ESP {suite} {size} B {direction}, single and batch",
                                lambda s=suite, n=size, d=direction: _packets(s, n, d, options)))
    out.append(Case(f"ESP batch AES-128-GCM 1400 B on 1..{options.threads} threads",
                    lambda: _threads(1400, options)))
    return out
