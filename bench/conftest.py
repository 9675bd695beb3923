"""Benchmark harness: every figure is a ratio against a baseline timed in the same run.

`compare(ours, baseline, label=..., target=...)` times both callables in
interleaved rounds (so machine noise hits both alike), records the result in
pytest-benchmark's extra_info, and the session ends with a table of ratios
against their targets. Nothing here asserts on time: targets are reported.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# the timing code is shared with `ikecore bench`
from ikecore.benchmarks.timing import interleaved, per_call_seconds  # noqa: F401

RESULTS: list[dict] = []


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
    the session's table: record_ratio(label, ours_per_s, baseline_per_s, target, baseline_name)."""
    def record(label: str, ours_per_s: float, baseline_per_s: float, target: float | None = None,
               baseline_name: str | None = None) -> None:
        RESULTS.append({"label": label, "ours_per_s": ours_per_s, "baseline_per_s": baseline_per_s,
                        "ratio": ours_per_s / baseline_per_s, "target": target, "baseline": baseline_name})
    return record


# the libraries the targets were set against (README's benchmark table): a newer
# one can move a baseline, and with it a ratio, without ikecore changing
TARGETS_SET_WITH = {"cryptography": "48"}


def _moved(baseline: str) -> str:
    """' -- this baseline moved: ...' where its library is not the one the targets were set with."""
    import importlib
    for name, major in TARGETS_SET_WITH.items():
        if baseline.startswith(name):
            version = importlib.import_module(name).__version__
            if version.split(".")[0] != major:
                return (f" -- this baseline moved: the targets were set against {name} {major}, "
                        f"this run has {name} {version}")
    return ""


def _library_of(baseline: str, libraries: dict[str, str]) -> str | None:
    """The library a baseline's name refers to, with its version ('cryptography AESGCM' ->
    'cryptography 50.0.2 (OpenSSL ...)'); None for baselines that are ikecore itself."""
    for name, version in libraries.items():
        if baseline.startswith(name):
            return f"{name} {version}"
    return None


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    from ikecore.benchmarks.machine import baseline_libraries
    from ikecore.crypto.backend import report

    tr = terminalreporter
    libraries = baseline_libraries()
    ssl_version = report().openssl_version
    tr.section("ikecore ratios against same-run baselines (figures only: nothing here fails on speed)")
    tr.write_line(f"ikecore on {ssl_version}; baselines: "
                  + "; ".join(f"{k} {v}" for k, v in libraries.items()))
    tr.write_line(f"{'benchmark':<58} {'ours/s':>12} {'base/s':>12} {'ratio':>7} {'target':>7}  "
                  "ratio of target")
    below = []
    for r in RESULTS:
        target = r["target"]
        of_target = f"{r['ratio'] / target:.0%}" if target else "-"
        tr.write_line(f"{r['label']:<58} {r['ours_per_s']:>12,.0f} {r['baseline_per_s']:>12,.0f} "
                      f"{r['ratio']:>7.2f} {(f'{target:.2f}' if target else '-'):>7}  {of_target}")
        if target and r["ratio"] < target:
            below.append(r)
    for r in below:
        baseline = r.get("baseline") or ""
        library = _library_of(baseline, libraries) if baseline else None
        if library:
            why = f"the baseline, {baseline}, runs on {library}; ikecore on {ssl_version}"
        elif baseline:
            why = f"the baseline is {baseline}, measured on this machine in the same run"
        else:
            why = "its baseline was measured on this machine in the same run"
        tr.write_line(f"under its target ({r['ratio']:.2f} of {r['target']:.2f}): {r['label']}: {why}; "
                      f"ikecore {r['ours_per_s']:,.0f}/s against {r['baseline_per_s']:,.0f}/s"
                      f"{_moved(baseline) if baseline else ''}")
    out = os.environ.get("IKECORE_BENCH_REPORT")
    if out:
        Path(out).write_text(json.dumps(RESULTS, indent=2))
