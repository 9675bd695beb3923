"""`ikecore bench`: the smoke run (--quick) writes a table, a JSON in
pytest-benchmark's layout and a plot; --compare flags regressions. Nothing here
asserts on time: the figures are only checked for being figures."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from ikecore.benchmarks import report
from ikecore.benchmarks.registry import Options, Result, suites

# what pytest-benchmark writes per benchmark (its compare and histogram read these)
STATS_KEYS = {"min", "max", "mean", "stddev", "rounds", "median", "iqr", "q1", "q3", "iqr_outliers",
              "stddev_outliers", "outliers", "ld15iqr", "hd15iqr", "ops", "total", "iterations"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    pytest.importorskip("matplotlib")
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run([sys.executable, "-m", "ikecore", "bench", "--quick", "--threads", "2",
                           "--json", str(out / "run.json"), "--plot", str(out / "esp.png")],
                          capture_output=True, text=True, timeout=300)
    return proc, out


def test_quick_run_succeeds_and_prints_the_table(quick_run):
    proc, _ = quick_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for column in ("benchmark", "rate", "Gbit/s", "baseline", "ratio"):
        assert column in proc.stdout
    # the progress display counts the cases on stderr
    assert "[1/" in proc.stderr
    assert "OpenSSL" in proc.stdout and "CPU crypto flags" in proc.stdout


def test_json_has_pytest_benchmark_layout_and_every_group(quick_run):
    _, out = quick_run
    data = json.loads((out / "run.json").read_text())
    assert {"machine_info", "commit_info", "benchmarks", "datetime", "version"} <= data.keys()
    machine = data["machine_info"]
    assert machine["cpu"]["brand_raw"] and machine["cpu"]["count"] >= 1
    assert isinstance(machine["cpu"]["crypto_flags"], list)
    assert machine["openssl"]["version"].startswith("OpenSSL 3")
    assert "default" in machine["openssl"]["providers"]
    assert "cryptography" in machine["baselines"]
    groups = {b["group"] for b in data["benchmarks"]}
    assert {"esp-single", "esp-batch", "esp-threads", "sk", "keyschedule", "handshake", "child-rekey",
            "ticket", "resumption", "clone"} <= groups
    sizes = {b["params"]["size"] for b in data["benchmarks"] if b["group"] == "esp-single"}
    assert sizes == {64, 512, 1400}
    names = [b["name"] for b in data["benchmarks"]]
    assert len(names) == len(set(names)), "--compare matches on names: they must be unique"
    for b in data["benchmarks"]:
        assert STATS_KEYS <= b["stats"].keys(), b["name"]
        assert b["stats"]["min"] <= b["stats"]["median"] <= b["stats"]["max"]
        info = b["extra_info"]
        assert info["ours_per_s"] > 0 and math.isfinite(info["ours_per_s"])
        assert info["baseline"] and info["baseline_per_s"] > 0
        assert info["ratio"] == pytest.approx(info["ours_per_s"] / info["baseline_per_s"])
        if b["group"].startswith("esp"):
            assert info["unit"] == "packets"
            assert info["gbit_s"] == pytest.approx(info["ours_per_s"] * b["params"]["size"] * 8 / 1e9)
        if b["group"] in ("handshake", "child-rekey", "resumption", "clone"):
            assert info["unit"] == "SAs"


def test_plot_is_a_png(quick_run):
    _, out = quick_run
    png = (out / "esp.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def _result(name, rate, base=100.0):
    return Result(name=name, group="g", unit="packets", ours_per_s=rate, baseline="b", baseline_per_s=base,
                  samples=[1 / rate])


def test_compare_flags_a_regression_and_nothing_else():
    old = report.to_json([_result("steady", 1000), _result("slower", 1000), _result("faster", 1000),
                          _result("gone", 1000)],
                         {"ikecore": {"version": "0"}}, Options.make(quick=True, threads=1), {})
    new = [_result("steady", 950), _result("slower", 800), _result("faster", 1500), _result("new", 5)]
    text, regressed = report.compare(new, old, threshold=0.10)
    assert regressed == ["slower"]
    lines = {line.split()[0]: line for line in text.splitlines()[2:]}
    assert set(lines) == {"steady", "slower", "faster"}
    assert "REGRESSION" in lines["slower"] and "-20.0%" in lines["slower"]
    assert "faster" in lines["faster"].split()[-1]
    assert "REGRESSION" not in lines["steady"]


def test_compare_exit_status(tmp_path, quick_run):
    """--compare against a file whose rates are ten times higher: every match regressed, exit 3."""
    _, out = quick_run
    data = json.loads((out / "run.json").read_text())
    for b in data["benchmarks"]:
        if b["group"] == "keyschedule":
            b["extra_info"]["ours_per_s"] *= 10
    data["benchmarks"] = [b for b in data["benchmarks"] if b["group"] == "keyschedule"]
    assert data["benchmarks"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data))
    proc = subprocess.run([sys.executable, "-m", "ikecore", "bench", "--quick", "--only", "crypto",
                           "--compare", str(old)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert proc.stdout.count("REGRESSION") == len(data["benchmarks"])


def test_every_suite_module_loads_and_lists_cases():
    found = suites()
    assert {"esp", "crypto", "ike", "tickets", "resumption", "clone"} <= {s.name for s in found if s.cases}
    for suite in found:
        if suite.cases:
            assert suite.cases(Options.make(quick=True, threads=1)), suite.name


def test_pytest_benchmark_reads_the_json(quick_run):
    """pytest-benchmark's own `compare` command loads the file and tabulates every group."""
    pytest.importorskip("pytest_benchmark")
    _, out = quick_run
    proc = subprocess.run([sys.executable, "-c", "import sys; from pytest_benchmark.cli import main; "
                           "sys.argv = ['pytest-benchmark', 'compare', sys.argv[1]]; main()", str(out / "run.json")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for group in ("esp-single", "esp-batch", "keyschedule", "handshake"):
        assert f"benchmark '{group}'" in proc.stdout
