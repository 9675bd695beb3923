"""Interleaved timing: every figure is a ratio against a baseline timed in the
same run, alternately, so that machine noise hits both alike. Used by
`ikecore bench` and by the pytest benchmarks in bench/ (bench/conftest.py)."""
from __future__ import annotations

import statistics
import time


def per_call_seconds(fn, min_time: float = 0.02) -> float:
    """Seconds per call of one timed run, its loop count sized to min_time."""
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time:
            return dt / n
        n *= 2 if dt <= 0 else max(2, int(min_time / dt * 1.2))


def interleaved_samples(ours, baseline, rounds: int = 7, min_time: float = 0.02) -> tuple[list[float], list[float]]:
    """Per-call seconds of each, one run of each per round, alternately."""
    a, b = [], []
    for _ in range(rounds):
        a.append(per_call_seconds(ours, min_time))
        b.append(per_call_seconds(baseline, min_time))
    return a, b


def interleaved(ours, baseline, rounds: int = 7, min_time: float = 0.02) -> tuple[float, float]:
    """Median per-call time of each, measured alternately."""
    a, b = interleaved_samples(ours, baseline, rounds, min_time)
    return statistics.median(a), statistics.median(b)


def loops_for(fn, min_time: float) -> int:
    """A loop count that makes one timed run of fn last about min_time."""
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        t = time.perf_counter() - t0
        if t >= min_time / 4:
            return max(1, int(n * min_time / t))
        n *= 4


def best_rates(impls: dict, units_per_call: dict, repeats: int, min_time: float,
               samples: dict | None = None) -> dict:
    """Best-of-`repeats` units/s per implementation, all of them interleaved
    round by round. `samples`, if given, receives each one's seconds per unit
    of every round (for the JSON's statistics)."""
    loops = {k: loops_for(f, min_time) for k, f in impls.items()}
    best = dict.fromkeys(impls, 0.0)
    for _ in range(repeats):
        for k, f in impls.items():
            n = loops[k]
            t0 = time.perf_counter()
            for _ in range(n):
                f()
            dt = time.perf_counter() - t0
            best[k] = max(best[k], n * units_per_call[k] / dt)
            if samples is not None:
                samples.setdefault(k, []).append(dt / (n * units_per_call[k]))
    return best


def rate(fn, seconds: float = 1.0) -> float:
    """Calls/s of fn over about `seconds` (one warm-up call first)."""
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - t0)
