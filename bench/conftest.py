"""Benchmark harness: every figure is a ratio against a baseline timed in the same run.

`compare(ours, baseline, label=..., target=...)` times both callables in
interleaved rounds (so machine noise hits both alike), records the result in
pytest-benchmark's extra_info, and the session ends with a table of ratios
against their targets. Nothing here asserts on time: targets are reported.
"""
from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import pytest

RESULTS: list[dict] = []


def per_call_seconds(fn, min_time: float = 0.02) -> float:
    """Best-of-run seconds per call with a loop count sized to min_time."""
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time:
            return dt / n
        n *= 2 if dt <= 0 else max(2, int(min_time / dt * 1.2))


def interleaved(ours, baseline, rounds: int = 7) -> tuple[float, float]:
    """Median per-call time of each, measured alternately."""
    a, b = [], []
    for _ in range(rounds):
        a.append(per_call_seconds(ours))
        b.append(per_call_seconds(baseline))
    return statistics.median(a), statistics.median(b)


@pytest.fixture
def compare(benchmark):
    def run(ours, baseline, *, label: str, target: float | None = None, units_per_call: int = 1,
            bytes_per_unit: int | None = None, baseline_name: str = "baseline") -> float:
        rounds = int(os.environ.get("IKECORE_BENCH_ROUNDS", "7"))
        t_ours, t_base = interleaved(ours, baseline, rounds)
        ratio = t_base / t_ours
        row = {"label": label, "ours_per_s": units_per_call / t_ours,
               "baseline_per_s": units_per_call / t_base, "ratio": ratio, "target": target,
               "baseline": baseline_name}
        if bytes_per_unit:
            row["ours_gbit_s"] = row["ours_per_s"] * bytes_per_unit * 8 / 1e9
            row["baseline_gbit_s"] = row["baseline_per_s"] * bytes_per_unit * 8 / 1e9
        RESULTS.append(row)
        benchmark.extra_info.update(row)
        # one pytest-benchmark row per comparison, for its own tables and --benchmark-json
        benchmark.pedantic(ours, rounds=3, iterations=max(1, int(0.01 / t_ours)))
        return ratio
    return run


@pytest.fixture
def record_ratio():
    """Put a ratio measured elsewhere (e.g. bench_esp's interleaved rounds) into
    the session's table: record_ratio(label, ours_per_s, baseline_per_s, target)."""
    def record(label: str, ours_per_s: float, baseline_per_s: float, target: float | None = None) -> None:
        RESULTS.append({"label": label, "ours_per_s": ours_per_s, "baseline_per_s": baseline_per_s,
                        "ratio": ours_per_s / baseline_per_s, "target": target})
    return record


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    tr = terminalreporter
    tr.section("ikecore ratios (same-run baselines)")
    tr.write_line(f"{'benchmark':<58} {'ours/s':>12} {'base/s':>12} {'ratio':>7} {'target':>7}  met")
    for r in RESULTS:
        target = f"{r['target']:.2f}" if r["target"] else "-"
        met = "" if not r["target"] else ("yes" if r["ratio"] >= r["target"] else "NO")
        tr.write_line(f"{r['label']:<58} {r['ours_per_s']:>12,.0f} {r['baseline_per_s']:>12,.0f} "
                      f"{r['ratio']:>7.2f} {target:>7}  {met}")
    out = os.environ.get("IKECORE_BENCH_REPORT")
    if out:
        Path(out).write_text(json.dumps(RESULTS, indent=2))
