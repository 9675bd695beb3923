"""Session resumption (RFC 5723) against full handshakes, both driven in memory
the way bench_ike.py drives handshakes.

Run:  python -m pytest bench/bench_resumption.py -s -p no:cacheprovider
      python bench/bench_resumption.py            (a quick table)

- ``resumption``: IKE_SESSION_RESUME + IKE_AUTH + the first Child SA per second,
  the gateway spending each ticket in an in-memory store (the one store round trip
  the I/O layer makes), the client taking the fresh ticket the resumed IKE_AUTH
  brings. Baseline, same run, same suite and endpoints: IKE_SA_INIT + IKE_AUTH +
  Child SA. Targets: 2x with PSK/X25519, 5x with RSA-2048 certificates.
  A second row compares with a full handshake that also issues a ticket (the
  full handshake of a gateway where resumption is on).
- ``responder CPU``: time spent inside the gateway's endpoint (datagrams, the
  ticket check answer) per resumption and per full handshake.
Nothing asserts on time.
"""
from __future__ import annotations

import time

import pytest

# the measured operations are shared with `ikecore bench` (suite_resumption)
from ikecore.benchmarks.resumption import (TARGETS, Link, configs, full_handshake_fn,  # noqa: F401
                                           responder_ms, resumption_fn)


# ----------------------------------------------------------------- benchmarks --

@pytest.mark.parametrize("auth", ["psk", "rsa2048"])
def test_resumption_vs_full_handshake(compare, benchmark, auth):
    key = f"{auth}-x25519"
    ratio = compare(resumption_fn(auth), full_handshake_fn(auth),
                    label=f"resumption+IKE_AUTH+Child vs full handshake, {key}",
                    target=TARGETS[key], baseline_name="full handshake")
    resume_ms, full_ms = responder_ms(auth)
    benchmark.extra_info.update({"responder_ms_per_resumption": resume_ms,
                                 "responder_ms_per_full_handshake": full_ms,
                                 "responder_cpu_ratio": full_ms / resume_ms})
    print(f"\n{key}: resumption {ratio:.2f}x full handshakes; responder {resume_ms:.3f} ms per "
          f"resumption, {full_ms:.3f} ms per full handshake ({full_ms / resume_ms:.2f}x)")


@pytest.mark.parametrize("auth", ["psk", "rsa2048"])
def test_resumption_vs_full_handshake_issuing_a_ticket(compare, auth):
    compare(resumption_fn(auth), full_handshake_fn(auth, tickets=True),
            label=f"resumption vs full handshake + ticket, {auth}-x25519",
            baseline_name="full handshake + ticket")


# ------------------------------------------------------------ stand-alone use --

def _rate(fn, seconds: float = 1.0) -> float:
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - t0)


def main() -> None:
    for auth in ("psk", "rsa2048"):
        res, full = _rate(resumption_fn(auth)), _rate(full_handshake_fn(auth))
        resume_ms, full_ms = responder_ms(auth)
        print(f"{auth:8} resumptions/s {res:7.0f}  full/s {full:7.0f}  ratio {res / full:5.2f} "
              f"(target {TARGETS[auth + '-x25519']})  responder {resume_ms:.3f} ms vs {full_ms:.3f} ms")


if __name__ == "__main__":
    main()
