"""What `ikecore bench` writes: the table, the JSON (pytest-benchmark's layout,
so its `compare` and other tools read it), the plot of throughput against
packet size, and the comparison with an earlier run's JSON."""
from __future__ import annotations

import datetime
import statistics
from pathlib import Path

from .registry import Result

FORMAT = "ikecore-bench 1"


def _rate(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def table(results: list[Result]) -> str:
    """A plain-text table: rate, Gbit/s, the same-run baseline and the ratio."""
    head = ("benchmark", "rate", "unit/s", "Gbit/s", "baseline", "baseline rate", "ratio")
    rows = [head]
    for r in results:
        rows.append((r.name, _rate(r.ours_per_s), r.unit, f"{r.gbit_s:.2f}" if r.gbit_s else "-",
                     r.baseline or "-", _rate(r.baseline_per_s), f"{r.ratio:.2f}" if r.ratio else "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    right = {1, 3, 5, 6}
    lines = []
    for k, row in enumerate(rows):
        lines.append("  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _stats(samples: list[float]) -> dict:
    """pytest-benchmark's stats block from seconds-per-unit samples."""
    s = sorted(samples)
    n = len(s)
    q1, q3 = (s[n // 4], s[(3 * n) // 4]) if n >= 4 else (s[0], s[-1])
    iqr = q3 - q1
    mean = statistics.fmean(s)
    stddev = statistics.stdev(s) if n > 1 else 0.0
    return {"min": s[0], "max": s[-1], "mean": mean, "stddev": stddev, "rounds": n,
            "median": statistics.median(s), "iqr": iqr, "q1": q1, "q3": q3,
            "iqr_outliers": sum(1 for x in s if x < q1 - 1.5 * iqr or x > q3 + 1.5 * iqr),
            "stddev_outliers": sum(1 for x in s if abs(x - mean) > stddev),
            "outliers": "0;0", "ld15iqr": s[0], "hd15iqr": s[-1],
            "ops": 1 / mean if mean else 0.0, "total": sum(s), "iterations": 1}


def to_json(results: list[Result], machine: dict, options, unavailable: dict[str, str]) -> dict:
    benchmarks = []
    for r in results:
        samples = r.samples or [1 / r.ours_per_s]
        benchmarks.append({
            "group": r.group, "name": r.name, "fullname": f"ikecore.benchmarks::{r.name}",
            "params": r.params, "param": "-".join(str(v) for v in r.params.values()),
            "extra_info": dict(r.extra, unit=r.unit, ours_per_s=r.ours_per_s, baseline=r.baseline,
                               baseline_per_s=r.baseline_per_s, ratio=r.ratio, gbit_s=r.gbit_s,
                               baseline_gbit_s=r.baseline_gbit_s, bytes_per_unit=r.bytes_per_unit),
            "options": {"disable_gc": False, "timer": "perf_counter", "min_rounds": options.repeats,
                        "max_time": None, "min_time": options.min_time, "warmup": True},
            "stats": _stats(samples),
        })
    return {"machine_info": machine,
            "commit_info": {"id": None, "project": "ikecore", "version": machine["ikecore"]["version"]},
            "benchmarks": benchmarks,
            "datetime": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "version": FORMAT,
            "ikecore_bench": {"quick": options.quick, "threads": options.threads, "unavailable": unavailable}}


def plot(results: list[Result], path: str | Path, title: str) -> None:
    """Payload Gbit/s against packet size: ikecore single and batch, and the
    `cryptography` baseline, one panel per direction. Needs matplotlib."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    esp = [r for r in results if r.group in ("esp-single", "esp-batch")]
    directions = sorted({r.params["direction"] for r in esp}) or ["encrypt"]
    fig, axes = plt.subplots(1, len(directions), figsize=(6 * len(directions), 4.2), squeeze=False)
    for ax, direction in zip(axes[0], directions):
        rows = [r for r in esp if r.params["direction"] == direction]
        for suite in sorted({r.params["suite"] for r in rows}):
            for api, style in (("single", "o-"), ("batch", "s-")):
                pts = sorted((r.params["size"], r.gbit_s) for r in rows
                             if r.params["suite"] == suite and r.params["api"] == api)
                if pts:
                    ax.plot(*zip(*pts), style, label=f"ikecore {api} {suite}")
            base = sorted((r.params["size"], r.baseline_gbit_s) for r in rows
                          if r.params["suite"] == suite and r.params["api"] == "single")
            if base:
                ax.plot(*zip(*base), "x--", label=f"{rows[0].baseline} {suite}")
        ax.set_xlabel("payload octets per packet")
        ax.set_ylabel("payload Gbit/s (one thread)")
        ax.set_title(f"ESP {direction}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def compare(results: list[Result], old: dict, threshold: float) -> tuple[str, list[str]]:
    """Each benchmark of this run against the same-named one in `old` (a JSON
    written by `ikecore bench`); returns the table and the names that got
    slower by more than `threshold` (a fraction). Both the absolute rate and
    the ratio to the same-run baseline are shown: on another machine, or with
    another OpenSSL, only the ratio's change says much about ikecore itself."""
    before = {b["name"]: b for b in old.get("benchmarks", [])}
    rows = [("benchmark", "old rate", "new rate", "change", "old ratio", "new ratio", "")]
    regressed = []
    for r in results:
        b = before.get(r.name)
        if not b:
            continue
        info = b.get("extra_info", {})
        old_rate = info.get("ours_per_s") or b["stats"]["ops"]
        change = r.ours_per_s / old_rate - 1
        flag = ""
        if change < -threshold:
            flag = "REGRESSION"
            regressed.append(r.name)
        elif change > threshold:
            flag = "faster"
        old_ratio = info.get("ratio")
        rows.append((r.name, _rate(old_rate), _rate(r.ours_per_s), f"{change:+.1%}",
                     f"{old_ratio:.2f}" if old_ratio else "-", f"{r.ratio:.2f}" if r.ratio else "-", flag))
    if len(rows) == 1:
        return "no benchmark of this run is in the old file", []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) if 0 < i < 6 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines), regressed
