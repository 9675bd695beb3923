"""IKE setup rates through two in-memory endpoints: the baseline that Child SA
cloning and session resumption are compared against.

Run:  python -m pytest bench/bench_ike.py -s -p no:cacheprovider
      python bench/bench_ike.py [--profile]      (a quick table, or a cProfile top list)

- ``handshake``: IKE_SA_INIT + IKE_AUTH (PSK) + the first Child SA, both ends
  in this process, per second; for X25519 and ECP-256 (AES-256-GCM, PRF SHA-256).
  The same-run baseline is the key exchange alone (two key generations and two
  shared secrets, what one handshake does on both ends), so the reported ratio
  *is* the share of handshake time spent in key exchange.
- ``responder CPU``: the part of a handshake spent inside the responder's
  ``receive_datagram``, comparable to strongSwan charon's 0.455 ms (x25519) and
  0.57 ms (ECP-256) per handshake on this machine kind (architecture guide).
- ``child rekey``: CREATE_CHILD_SA rekey of the Child SA + the Delete of the old
  one, per second, without PFS (baseline: a full handshake) and with X25519 PFS
  (baseline: its key exchange alone, giving the key exchange share again).
Nothing asserts on time.
"""
from __future__ import annotations

import pytest

# the measured operations are shared with `ikecore bench`; the other bench files
# (bench_gateway_scale, bench_clone) import Link and the configurations from here
from ikecore.benchmarks.ike import (ADDR_I, ADDR_R, CHARON_RESPONDER_MS, GROUPS, PSK, Link,  # noqa: F401
                                    _configs, full_handshake_fn, key_exchange_fn, rekey_fn, responder_ms)
from ikecore.benchmarks.timing import rate as _rate


# ----------------------------------------------------------------- benchmarks --

@pytest.mark.parametrize("group", list(GROUPS))
def test_handshake_psk(compare, benchmark, group):
    share = compare(full_handshake_fn(group), key_exchange_fn(group),
                    label=f"IKE_SA_INIT+IKE_AUTH+Child, PSK {group}: key exchange share",
                    baseline_name="key exchange alone")
    ms = responder_ms(group)
    benchmark.extra_info.update({
        "key_exchange_share": share,
        "responder_ms_per_handshake": ms,
        "charon_responder_ms": CHARON_RESPONDER_MS[group],
        "responder_cost_vs_charon": ms / CHARON_RESPONDER_MS[group],
    })
    print(f"\n{group}: key exchange {share:.0%} of a handshake; responder {ms:.3f} ms/handshake "
          f"(charon {CHARON_RESPONDER_MS[group]} ms)")


def test_child_rekey_no_pfs(compare):
    compare(rekey_fn("aes256gcm16"), full_handshake_fn("x25519"),
            label="Child SA rekey (no PFS) vs full handshake (x25519)", baseline_name="full handshake")


def test_child_rekey_pfs(compare):
    compare(rekey_fn("aes256gcm16-x25519"), key_exchange_fn("x25519"),
            label="Child SA rekey (PFS x25519): key exchange share", baseline_name="key exchange alone")


# ------------------------------------------------------------ stand-alone use --

def main(argv=None) -> None:
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", action="store_true", help="cProfile 300 x25519 handshakes")
    args = ap.parse_args(argv)
    if args.profile:
        import cProfile
        import pstats
        fn = full_handshake_fn("x25519")
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(300):
            fn()
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return
    for group in GROUPS:
        hs = _rate(full_handshake_fn(group))
        kex = _rate(key_exchange_fn(group))
        print(f"{group:7} handshakes/s {hs:8.0f}  key exchange share {hs / kex:5.1%}  "
              f"responder {responder_ms(group):.3f} ms (charon {CHARON_RESPONDER_MS[group]})")
    for esp in ("aes256gcm16", "aes256gcm16-x25519"):
        print(f"child rekeys/s ({esp}) {_rate(rekey_fn(esp)):8.0f}")


if __name__ == "__main__":
    main()
