"""`ikecore bench`: run the suites, show progress, write the table, JSON and plot."""
from __future__ import annotations

import json
import sys
import time

from . import report
from .machine import machine_info
from .registry import Options, Result, suites


class Progress:
    """One line per case on stderr; redrawn in place on a terminal."""

    def __init__(self, total: int, stream=sys.stderr):
        self.total, self.done, self.stream = total, 0, stream
        self.tty = stream.isatty()
        self.t0 = time.perf_counter()

    def start(self, title: str) -> None:
        self.title = title
        self.case_t0 = time.perf_counter()
        if self.tty:
            self.stream.write(f"\r\033[K[{self.done + 1}/{self.total}] {title} ...")
            self.stream.flush()

    def finish(self, note: str = "") -> None:
        self.done += 1
        line = (f"[{self.done}/{self.total}] {self.title}: {time.perf_counter() - self.case_t0:.1f} s"
                f"{' ' + note if note else ''}")
        self.stream.write(("\r\033[K" if self.tty else "") + line + "\n")
        self.stream.flush()


def run(args) -> int:
    options = Options.make(args.quick, args.threads)
    wanted = set(args.only.split(",")) if args.only else None
    available, unavailable = [], {}
    for suite in suites():
        if wanted and suite.name not in wanted:
            continue
        if suite.cases is None:
            unavailable[suite.name] = suite.unavailable
        else:
            available.append(suite)
    if args.list:
        for suite in available:
            for case in suite.cases(options):
                print(f"{suite.name:<12} {case.title}")
        for name, why in unavailable.items():
            print(f"{name:<12} ({why})")
        return 0
    machine = machine_info()
    cpu, ssl = machine["cpu"], machine["openssl"]
    print(f"ikecore {machine['ikecore']['version']} on {cpu['brand_raw']}, {cpu['usable']} of {cpu['count']} "
          f"CPUs usable; {ssl['version']} ({ssl['libcrypto']}), providers {', '.join(ssl['providers'])}; "
          f"AES-GCM on VAES: {ssl['aes_gcm_vaes']}")
    print(f"CPU crypto flags: {' '.join(cpu['crypto_flags']) or 'none found'}")
    print("baselines: " + "; ".join(f"{k} {v}" for k, v in machine["baselines"].items()))
    cases = [case for suite in available for case in suite.cases(options)]
    progress = Progress(len(cases))
    results: list[Result] = []
    failed = 0
    for case in cases:
        progress.start(case.title)
        try:
            got = case.run()
        except Exception as exc:   # one broken case must not lose the others' figures
            failed += 1
            progress.finish(f"FAILED: {type(exc).__name__}: {exc}")
            continue
        results.extend(got)
        progress.finish()
    print(f"\n{len(results)} figures in {time.perf_counter() - progress.t0:.1f} s; every ratio is "
          "against a baseline measured in the same run, interleaved")
    print(report.table(results))
    for name, why in unavailable.items():
        print(f"{name}: {why}")
    data = report.to_json(results, machine, options, unavailable)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(data, f, indent=2)
        print(f"JSON: {args.json}")
    if args.plot:
        try:
            report.plot(results, args.plot, f"ikecore {machine['ikecore']['version']}, {ssl['version']}, "
                                            f"{cpu['brand_raw']}")
            print(f"plot: {args.plot}")
        except ImportError:
            print("plot: needs matplotlib (pip install 'ikecore[plot]')", file=sys.stderr)
            return 2
    status = 1 if failed else 0
    if args.compare:
        with open(args.compare) as f:
            old = json.load(f)
        text, regressed = report.compare(results, old, args.threshold)
        print(f"\nagainst {args.compare} (regression: slower by more than {args.threshold:.0%}):")
        print(text)
        if regressed:
            print(f"{len(regressed)} regression(s): {', '.join(regressed)}")
            status = status or 3
    return status


def add_arguments(parser) -> None:
    parser.add_argument("--quick", action="store_true", help="fewer cases and shorter runs (under 30 s)")
    parser.add_argument("--threads", type=int, help="thread-scaling cases run 1..N threads (default: CPUs, at most 8)")
    parser.add_argument("--only", help="comma-separated suites (see --list): esp, crypto, ike, ...")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--json", metavar="PATH", help="write the results (pytest-benchmark's JSON layout)")
    parser.add_argument("--plot", metavar="PATH", help="write a PNG of ESP throughput against packet size "
                        "(needs matplotlib: ikecore[plot])")
    parser.add_argument("--compare", metavar="OLD.json", help="compare with an earlier --json; exit 3 on a regression")
    parser.add_argument("--threshold", type=float, default=0.10,
                        help="slower by more than this fraction is a regression (default 0.10)")
