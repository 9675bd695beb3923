"""IKE SA setup through two in-memory endpoints (both ends in this process):
full handshakes (IKE_SA_INIT + IKE_AUTH PSK + the first Child SA) against the
key exchange alone, and Child SA rekeys against a full handshake. The full
handshake is the baseline the tickets, resumption and clone suites use too
(handshake_baseline)."""
from __future__ import annotations

from .ike import GROUPS, full_handshake_fn, key_exchange_fn, rekey_fn
from .registry import Case, Options, Result, measure_pair

ORDER = 30


def handshake_baseline(group: str = "x25519"):
    """A callable doing one full handshake: the baseline of SA-creating cases."""
    return full_handshake_fn(group)


def _handshake(group: str, options: Options) -> list[Result]:
    o, b, samples = measure_pair(full_handshake_fn(group), key_exchange_fn(group), options)
    return [Result(name=f"handshake[psk-{group}]", group="handshake", unit="SAs", ours_per_s=o,
                   baseline="key exchange alone", baseline_per_s=b, params={"group": group}, samples=samples,
                   extra={"what": "IKE SA + Child SA, both ends; the ratio is the key exchange's share"})]


def _rekey(esp: str, options: Options) -> list[Result]:
    o, b, samples = measure_pair(rekey_fn(esp), handshake_baseline(), options)
    return [Result(name=f"child-rekey[{esp}]", group="child-rekey", unit="SAs", ours_per_s=o,
                   baseline="full handshake (x25519)", baseline_per_s=b, params={"esp": esp}, samples=samples,
                   extra={"what": "CREATE_CHILD_SA rekey + Delete of the old Child SA"})]


def cases(options: Options) -> list[Case]:
    groups = ["x25519"] if options.quick else list(GROUPS)
    out = [Case(f"full handshake PSK {g}", lambda g=g: _handshake(g, options)) for g in groups]
    out += [Case(f"Child SA rekey ({esp})", lambda e=esp: _rekey(e, options))
            for esp in ("aes256gcm16", "aes256gcm16-x25519")]
    return out
