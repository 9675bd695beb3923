"""Session resumption tickets (RFC 5723) against `cryptography` in the same run.

Targets (issue: session resumption tickets): tickets sealed and opened per
second at least 1.0x `cryptography`'s AESGCM doing the same AEAD on the same
plaintext; and at most one store round trip per resumption (counted, by value
one SET NX EX, by reference one GETDEL).
"""
from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ikecore.crypto import TicketCipher
from ikecore.resumption import HEADER_LENGTH, TicketAuthority, TicketKeyRing
from ikecore.store import MemoryTicketStore, issue_ticket, redeem_ticket

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "resumption"))
from ticket_helpers import NOW, sample_state  # noqa: E402

STATE = sample_state(os.urandom)
PLAIN = STATE.encode()            # what a by-value ticket seals (120 octets here)
HEADER = b"\x01\x01KEY1"


class PycaTicketCipher:
    """The same seal/open contract written with `cryptography`'s AESGCM: the
    baseline an implementation without ikecore's C core would have."""

    def __init__(self, key: bytes, key_id: bytes) -> None:
        self._aead = AESGCM(key)
        self.key_id = key_id

    def seal(self, plaintext: bytes, nonce: bytes, header: bytes = b"") -> bytes:
        return header + nonce + self._aead.encrypt(nonce, plaintext, header)

    def open(self, ticket: bytes, header_len: int) -> bytes:
        return self._aead.decrypt(ticket[header_len:header_len + 12], ticket[header_len + 12:],
                                  ticket[:header_len])


@pytest.mark.parametrize("key_len", [32, 16])
def test_ticket_seal_open(compare, key_len):
    """The targeted figure: one ticket sealed and opened, same nonce source,
    same plaintext, same header (AAD), same output octets."""
    key = os.urandom(key_len)
    ours_c, ref = TicketCipher(key, b"KEY1"), PycaTicketCipher(key, b"KEY1")
    nonce = os.urandom(12)   # fixed here: both sides measure the AEAD, not the DRBG

    def ours():
        return ours_c.open(ours_c.seal(PLAIN, nonce, HEADER), HEADER_LENGTH)

    def baseline():
        return ref.open(ref.seal(PLAIN, nonce, HEADER), HEADER_LENGTH)

    assert ours_c.seal(PLAIN, nonce, HEADER) == ref.seal(PLAIN, nonce, HEADER)
    assert ours() == baseline() == PLAIN
    compare(ours, baseline, label=f"ticket seal+open AES-{key_len * 8}-GCM {len(PLAIN)} B", target=1.0,
            baseline_name="cryptography AESGCM")


@pytest.mark.parametrize("op", ["seal", "open"])
def test_ticket_seal_or_open(compare, op):
    key = os.urandom(32)
    ours_c, ref = TicketCipher(key, b"KEY1"), PycaTicketCipher(key, b"KEY1")
    nonce = os.urandom(12)
    sealed = ours_c.seal(PLAIN, nonce, HEADER)
    if op == "seal":
        ours, baseline = (lambda: ours_c.seal(PLAIN, nonce, HEADER)), (lambda: ref.seal(PLAIN, nonce, HEADER))
    else:
        ours, baseline = (lambda: ours_c.open(sealed, HEADER_LENGTH)), (lambda: ref.open(sealed, HEADER_LENGTH))
    assert ours() == baseline()
    compare(ours, baseline, label=f"ticket {op} AES-256-GCM {len(PLAIN)} B", target=1.0,
            baseline_name="cryptography AESGCM")


def _authority(cipher_cls, *, by_reference=False):
    ring = TicketKeyRing(rng=os.urandom, now=NOW)
    key = os.urandom(32)
    ring._keys[1].cipher = cipher_cls(key, b"KEY1")   # the current key
    return TicketAuthority(ring, rng=os.urandom, by_reference=by_reference)


def test_ticket_issue_open(compare):
    """Whole tickets through TicketAuthority (state encoding, header, random
    nonce, checks, decoding), only the AEAD differing."""
    ours_a, ref_a = _authority(TicketCipher), _authority(PycaTicketCipher)

    def ours():
        return ours_a.open(ours_a.issue(STATE, NOW).ticket, NOW).state

    def baseline():
        return ref_a.open(ref_a.issue(STATE, NOW).ticket, NOW).state

    assert ours() == baseline() == STATE
    compare(ours, baseline, label="ticket issue+open (TicketAuthority, by value)",
            baseline_name="same with cryptography AESGCM")


@pytest.mark.parametrize("by_reference", [False, True], ids=["by-value", "by-reference"])
def test_store_round_trips_per_resumption(benchmark, by_reference):
    """A work count, not a time: redeeming a ticket makes exactly one store call."""
    async def count(n: int) -> tuple[int, int]:
        store = MemoryTicketStore()
        authority = _authority(TicketCipher, by_reference=by_reference)
        tickets = [(await issue_ticket(authority, store, sample_state(os.urandom), NOW)).ticket for _ in range(n)]
        issued = store.round_trips
        for ticket in tickets:
            await redeem_ticket(authority, store, ticket, NOW)
        return issued, store.round_trips - issued

    n = 200
    issued, redeemed = asyncio.run(count(n))
    per_resumption = redeemed / n
    assert per_resumption == 1.0
    assert issued == (n if by_reference else 0)
    benchmark.extra_info.update(store_round_trips_per_resumption=per_resumption,
                                store_round_trips_per_issue=issued / n)
    print(f"\nstore round trips per resumption ({'by reference: GETDEL' if by_reference else 'by value: SET NX EX'}):"
          f" {per_resumption:g}; per issued ticket: {issued / n:g}")
    benchmark.pedantic(lambda: None, rounds=1)
