"""The benchmark suite of `ikecore bench`, and the measurement code that the
pytest benchmarks in bench/ share with it.

- timing: interleaved timing against a same-run baseline;
- esp, crypto, ike: the measured operations and their baselines;
- machine: what a run ran on;
- registry: the cases; each suite_*.py module adds one group (ESP, SK, key
  schedules, handshakes, ...) with a `cases(options)` function, so a new
  feature's benchmark is one small module;
- report: the table, the pytest-benchmark-compatible JSON, the plot and
  --compare.
"""
