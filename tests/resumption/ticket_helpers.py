"""Shared builders for the ticket tests: a deterministic rng, a sample state."""
from __future__ import annotations

import hashlib

from ikecore.resumption import TicketState

NOW = 1_800_000_000          # a fixed unix time: tests pass time in
ID_FQDN = 2                  # RFC 7296 §3.5
AUTH_PSK = 2


class CountingRng:
    """Deterministic bytes (SHA-256 in counter mode of a seed): tests repeat."""

    def __init__(self, seed: bytes = b"ticket tests") -> None:
        self.seed = seed
        self.counter = 0

    def __call__(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            self.counter += 1
            out += hashlib.sha256(self.seed + self.counter.to_bytes(8, "big")).digest()
        return out[:n]


def sample_state(rng, *, expires_at: int = NOW + 1800, idi: bytes = b"alice.example.org",
                 sk_d: bytes | None = None) -> TicketState:
    return TicketState.new(rng, expires_at=expires_at, idi_type=ID_FQDN, idi=idi, idr_type=ID_FQDN,
                           idr=b"gw.example.org", auth_method=AUTH_PSK, prf_id=5, encr_id=20,
                           encr_key_bits=256, integ_id=0, dh_group=31,
                           sk_d=sk_d if sk_d is not None else rng(32))
