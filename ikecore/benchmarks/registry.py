"""The cases of `ikecore bench`, found in the suite_*.py modules of this package.

A suite module defines ``ORDER`` (where its rows go in the table) and
``cases(options) -> list[Case]``; a module whose feature is not in this build
raises ImportError on import and is listed as unavailable. Each case returns
one or more Results: ikecore's rate of one operation and, where there is one,
the rate of its baseline measured in the same run, interleaved.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Options:
    quick: bool = False
    threads: int = 2            # the thread-scaling cases run 1..threads
    repeats: int = 7            # interleaved rounds per measurement
    min_time: float = 0.03      # seconds per timed run

    @classmethod
    def make(cls, quick: bool, threads: int | None = None) -> "Options":
        import os
        threads = threads or min(os.cpu_count() or 1, 8)
        if quick:
            return cls(quick=True, threads=min(threads, 2), repeats=5, min_time=0.03)
        return cls(quick=False, threads=threads, repeats=7, min_time=0.08)


@dataclass
class Result:
    name: str                   # unique and stable across runs: --compare matches on it
    group: str
    unit: str                   # what ours_per_s counts: "packets", "SAs", "messages", ...
    ours_per_s: float
    baseline: str | None = None
    baseline_per_s: float | None = None
    bytes_per_unit: float | None = None   # payload octets per unit, for Gbit/s
    params: dict = field(default_factory=dict)
    samples: list[float] = field(default_factory=list)   # ours: seconds per unit, per round
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return self.ours_per_s / self.baseline_per_s if self.baseline_per_s else None

    @property
    def gbit_s(self) -> float | None:
        return self.ours_per_s * self.bytes_per_unit * 8 / 1e9 if self.bytes_per_unit else None

    @property
    def baseline_gbit_s(self) -> float | None:
        if self.bytes_per_unit and self.baseline_per_s:
            return self.baseline_per_s * self.bytes_per_unit * 8 / 1e9
        return None


@dataclass(frozen=True)
class Case:
    title: str                  # what the progress display shows
    run: Callable[[], list[Result]]


@dataclass(frozen=True)
class Suite:
    name: str                   # the module's group name, e.g. "esp"
    order: int
    cases: Callable[[Options], list[Case]] | None
    unavailable: str | None = None   # why this build has no such benchmark


def suites() -> list[Suite]:
    """Every suite_*.py module of this package, in ORDER."""
    found = []
    for info in pkgutil.iter_modules(_package_path()):
        if not info.name.startswith("suite_"):
            continue
        name = info.name[len("suite_"):]
        try:
            module = importlib.import_module(f"{__package__}.{info.name}")
        except ImportError as exc:
            found.append(Suite(name, 1000, None, f"not in this build ({exc})"))
            continue
        found.append(Suite(name, getattr(module, "ORDER", 500), module.cases))
    return sorted(found, key=lambda s: (s.order, s.name))


def _package_path() -> list[str]:
    import os
    return [os.path.dirname(__file__)]


def measure_pair(ours, baseline, options: Options, units_per_call: int = 1) -> tuple[float, float, list[float]]:
    """(ours units/s, baseline units/s, ours' seconds per unit per round): best
    of options.repeats interleaved rounds (bench/'s ESP method)."""
    from .timing import best_rates
    samples: dict = {}
    rates = best_rates({"ours": ours, "baseline": baseline}, {"ours": units_per_call, "baseline": units_per_call},
                       options.repeats, options.min_time, samples)
    return rates["ours"], rates["baseline"], samples["ours"]
