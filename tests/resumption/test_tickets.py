"""Tickets (RFC 5723 §6.1): format, bad input, single use, key ring rotation
and wrapping. ikecore/resumption, ikecore/store/redeem.py, docs/tickets.md."""
from __future__ import annotations

import asyncio
import dataclasses
import os
import struct

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from ticket_helpers import NOW, CountingRng, sample_state

from ikecore.errors import (ConfigError, KeyRingError, TicketError, TicketExpired, TicketInvalid,
                            TicketMalformed, TicketReplayed, TicketUnknownKey)
from ikecore.resumption import (HEADER_LENGTH, KIND_BY_REFERENCE, KIND_BY_VALUE, MAX_TICKET_LENGTH,
                                MIN_TICKET_LENGTH, TicketAuthority, TicketKeyRing, TicketState)
from ikecore.store import MemoryTicketStore, issue_ticket, load_wrapping_key, redeem_ticket

HOUR = 3600


@pytest.fixture
def rng():
    return CountingRng()


@pytest.fixture
def ring(rng):
    return TicketKeyRing(rng=rng, now=NOW, rotation=HOUR, keep=2)


def run(coro):
    return asyncio.run(coro)


# --- the format ---------------------------------------------------------------------

def test_by_value_round_trip_and_layout(rng, ring):
    authority = TicketAuthority(ring, rng=rng)
    state = sample_state(rng)
    issued = authority.issue(state, NOW)
    ticket = issued.ticket
    assert issued.store_put is None and issued.lifetime == 1800 and issued.expires_at == state.expires_at
    assert ticket[0] == 1 and ticket[1] == KIND_BY_VALUE and ticket[2:6] == ring.current.key_id
    assert len(ticket) == HEADER_LENGTH + 12 + len(state.encode()) + 16
    assert state.sk_d not in ticket and b"alice" not in ticket     # encrypted, not just signed
    opened = authority.open(ticket, NOW + 10)
    assert opened.state == state and not opened.by_reference
    assert opened.spend_key == b"spent:" + state.ticket_id
    # the replay record outlives the ticket by the allowed clock skew
    assert opened.ttl == state.expires_at - (NOW + 10) + authority.clock_skew


def test_by_value_is_aes256gcm_over_the_state_with_the_header_as_aad(rng, ring):
    """Independent check of the documented format with `cryptography`."""
    key = b"\x5a" * 32
    from ikecore.crypto import TicketCipher
    ring._keys[1].cipher = TicketCipher(key, b"KEY1")
    state = sample_state(rng)
    ticket = TicketAuthority(ring, rng=rng).issue(state, NOW).ticket
    header, nonce, sealed = ticket[:6], ticket[6:18], ticket[18:]
    assert header == b"\x01\x01KEY1"
    plain = AESGCM(key).decrypt(nonce, sealed, header)
    assert plain == state.encode()
    assert plain[:16] == state.ticket_id and struct.unpack(">Q", plain[16:24])[0] == state.expires_at


def test_by_reference_round_trip(rng, ring):
    authority = TicketAuthority(ring, by_reference=True, rng=rng)
    state = sample_state(rng)
    issued = authority.issue(state, NOW)
    ref_key, stored, ttl = issued.store_put
    assert ref_key == b"ticket:" + state.ticket_id and ttl == 1800
    assert issued.ticket[1] == KIND_BY_REFERENCE and len(issued.ticket) == MIN_TICKET_LENGTH
    assert state.sk_d not in stored and state.sk_d not in issued.ticket
    opened = authority.open(issued.ticket, NOW + 1)
    assert opened.by_reference and opened.take_key == ref_key and opened.state is None
    assert authority.open_referenced(stored, NOW + 1, ticket_id=opened.ticket_id) == state
    # the stored state opens only as stored state, and only for its own ticket
    with pytest.raises(TicketMalformed):
        authority.open(stored, NOW + 1)
    with pytest.raises(TicketMalformed):
        authority.open_referenced(issued.ticket, NOW + 1)
    with pytest.raises(TicketInvalid):
        authority.open_referenced(stored, NOW + 1, ticket_id=bytes(16))
    with pytest.raises(TicketExpired):
        authority.open_referenced(stored, state.expires_at)


def test_an_authority_opens_both_kinds(rng, ring):
    """Switching a gateway between modes does not strand tickets already out."""
    by_value = TicketAuthority(ring, rng=rng)
    by_ref = TicketAuthority(ring, by_reference=True, rng=rng)
    assert by_ref.open(by_value.issue(sample_state(rng), NOW).ticket, NOW).state is not None
    assert by_value.open(by_ref.issue(sample_state(rng), NOW).ticket, NOW).by_reference


def test_state_validation_and_repr(rng):
    state = sample_state(rng, sk_d=b"\xaa" * 32)
    assert "sk_d" not in repr(state) and "aa" * 32 not in repr(state)
    assert TicketState.decode(state.encode()) == state
    for bad in (dict(ticket_id=b"short"), dict(sk_d=b""), dict(sk_d=b"x" * 65), dict(idi=b"x" * 1025),
                dict(expires_at=-1), dict(expires_at=1 << 64), dict(prf_id=70000), dict(idi_type=256),
                dict(auth_method="2")):
        with pytest.raises(ValueError):
            dataclasses.replace(state, **bad)
    with pytest.raises(TypeError):
        dataclasses.replace(state, idi="alice")


def test_state_decode_refuses_every_truncation_and_extension(rng):
    encoded = sample_state(rng).encode()
    for n in range(len(encoded)):
        with pytest.raises(TicketMalformed):
            TicketState.decode(encoded[:n])
    with pytest.raises(TicketMalformed):
        TicketState.decode(encoded + b"\0")


def test_largest_state_fits_the_maximum_ticket(rng, ring):
    state = dataclasses.replace(sample_state(rng), idi=b"i" * 1024, idr=b"r" * 1024, sk_d=b"d" * 64)
    ticket = TicketAuthority(ring, rng=rng).issue(state, NOW).ticket
    assert len(ticket) == MAX_TICKET_LENGTH
    assert TicketAuthority(ring, rng=rng).open(ticket, NOW).state == state


def test_issue_refuses_an_already_expired_state(rng, ring):
    with pytest.raises(ValueError):
        TicketAuthority(ring, rng=rng).issue(sample_state(rng, expires_at=NOW), NOW)
    with pytest.raises(TypeError):
        TicketAuthority(ring, rng=rng).issue(b"not a state", NOW)


def test_expiry_is_cut_to_the_keys_life(rng, ring):
    """No ticket outlives the key that opens it: keep=2 -> at most until the
    current key has seen the next rotation and two more."""
    state = sample_state(rng, expires_at=NOW + 30 * 86400)
    issued = TicketAuthority(ring, rng=rng).issue(state, NOW)
    assert issued.expires_at == NOW + HOUR + 2 * HOUR == ring.usable_until(NOW)
    assert issued.lifetime == 3 * HOUR
    authority = TicketAuthority(ring, rng=rng)
    assert authority.open(issued.ticket, NOW).state.expires_at == issued.expires_at
    for t in (NOW + HOUR, NOW + 2 * HOUR, NOW + 3 * HOUR - 1):
        ring.maybe_rotate(t)
        assert authority.open(issued.ticket, t).state is not None
    ring.maybe_rotate(NOW + 3 * HOUR)
    with pytest.raises(TicketError):
        authority.open(issued.ticket, NOW + 3 * HOUR)


# --- bad input: every case is refused with its own error -----------------------------

def test_expired(rng, ring):
    authority = TicketAuthority(ring, rng=rng)
    state = sample_state(rng, expires_at=NOW + 100)
    ticket = authority.issue(state, NOW).ticket
    assert authority.open(ticket, NOW + 99.9).state == state
    with pytest.raises(TicketExpired):
        authority.open(ticket, NOW + 100)
    ref = TicketAuthority(ring, by_reference=True, rng=rng).issue(state, NOW).ticket
    with pytest.raises(TicketExpired):
        authority.open(ref, NOW + 5000)


@pytest.mark.parametrize("by_reference", [False, True])
def test_every_tampered_octet_is_refused(rng, ring, by_reference):
    authority = TicketAuthority(ring, by_reference=by_reference, rng=rng)
    ticket = authority.issue(sample_state(rng), NOW).ticket
    for i in range(len(ticket)):
        bad = bytearray(ticket)
        bad[i] ^= 0x01
        with pytest.raises(TicketError) as info:
            authority.open(bytes(bad), NOW)
        expected = (TicketMalformed if i < 2 else TicketUnknownKey if i < HEADER_LENGTH else TicketInvalid)
        assert type(info.value) is expected, i
        assert info.value.notify_type == 16412       # TICKET_NACK


def test_forged_tickets_with_a_real_key_id_are_invalid(rng, ring):
    authority = TicketAuthority(ring, rng=rng)
    header = bytes([1, KIND_BY_VALUE]) + ring.current.key_id
    for n in (MIN_TICKET_LENGTH, 124, 500, MAX_TICKET_LENGTH):
        with pytest.raises(TicketInvalid):
            authority.open(header + os.urandom(n - HEADER_LENGTH), NOW)
    # sealed under the right format by someone without the key
    forged = AESGCM(os.urandom(32)).encrypt(b"\0" * 12, sample_state(rng).encode(), header)
    with pytest.raises(TicketInvalid):
        authority.open(header + b"\0" * 12 + forged, NOW)


def test_truncated_and_oversized(rng, ring):
    authority = TicketAuthority(ring, rng=rng)
    ticket = authority.issue(sample_state(rng), NOW).ticket
    for n in range(MIN_TICKET_LENGTH):
        with pytest.raises(TicketMalformed):
            authority.open(ticket[:n], NOW)
    for n in range(MIN_TICKET_LENGTH, len(ticket)):
        with pytest.raises(TicketInvalid):
            authority.open(ticket[:n], NOW)
    with pytest.raises(TicketMalformed):
        authority.open(ticket + bytes(MAX_TICKET_LENGTH), NOW)
    with pytest.raises(TicketMalformed):
        authority.open(bytes(10 ** 6), NOW)
    with pytest.raises(TicketMalformed):
        authority.open("a string", NOW)


def test_unknown_version_kind_and_key(rng, ring):
    authority = TicketAuthority(ring, rng=rng)
    ticket = authority.issue(sample_state(rng), NOW).ticket
    with pytest.raises(TicketMalformed, match="version"):
        authority.open(b"\x02" + ticket[1:], NOW)
    with pytest.raises(TicketMalformed, match="kind"):
        authority.open(ticket[:1] + b"\x03" + ticket[2:], NOW)
    other_ring = TicketKeyRing(rng=CountingRng(b"another gateway"), now=NOW)
    with pytest.raises(TicketUnknownKey):
        TicketAuthority(other_ring, rng=rng).open(ticket, NOW)


def test_a_key_retired_from_the_ring(rng, ring):
    authority = TicketAuthority(ring, rng=rng)
    state = sample_state(rng, expires_at=NOW + 100 * HOUR)
    ticket = authority.issue(state, NOW).ticket
    first = ring.current
    ring.rotate(NOW + HOUR)
    ring.rotate(NOW + 2 * HOUR)
    assert authority.open(ticket, NOW + 2 * HOUR).state is not None   # two previous keys kept
    ring.rotate(NOW + 3 * HOUR)
    assert first.key_id not in ring.key_ids
    with pytest.raises(ValueError, match="closed"):       # wiped in the C core
        first.open(ticket, HEADER_LENGTH)
    with pytest.raises(TicketUnknownKey):
        authority.open(ticket, NOW + 3 * HOUR)


def test_single_use_by_value_on_two_gateways(rng, ring):
    """Both gateways open the ticket (same ring); the shared store lets only
    the first spend it."""
    async def main():
        store = MemoryTicketStore()
        gw_a = TicketAuthority(ring, rng=rng)
        gw_b = TicketAuthority(ring, rng=CountingRng(b"b"))
        state = sample_state(rng)
        ticket = (await issue_ticket(gw_a, store, state, NOW)).ticket
        assert store.round_trips == 0           # by value: nothing to store
        assert await redeem_ticket(gw_b, store, ticket, NOW + 1) == state
        assert store.round_trips == 1           # one SET NX EX
        with pytest.raises(TicketReplayed):
            await redeem_ticket(gw_a, store, ticket, NOW + 2)
        with pytest.raises(TicketReplayed):
            await redeem_ticket(gw_b, store, ticket, NOW + 3)
    run(main())


def test_single_use_by_reference(rng, ring):
    async def main():
        store = MemoryTicketStore()
        authority = TicketAuthority(ring, by_reference=True, rng=rng)
        state = sample_state(rng)
        ticket = (await issue_ticket(authority, store, state, NOW)).ticket
        assert store.round_trips == 1 and len(store) == 1
        assert await redeem_ticket(authority, store, ticket, NOW + 1) == state
        assert store.round_trips == 2 and len(store) == 0      # one GETDEL
        with pytest.raises(TicketReplayed):
            await redeem_ticket(authority, store, ticket, NOW + 2)
    run(main())


def test_a_refused_ticket_costs_no_store_round_trip(rng, ring):
    async def main():
        store = MemoryTicketStore()
        authority = TicketAuthority(ring, rng=rng)
        ticket = authority.issue(sample_state(rng), NOW).ticket
        for bad in (ticket[:-1], ticket[:-1] + bytes([ticket[-1] ^ 1]), b""):
            with pytest.raises(TicketError):
                await redeem_ticket(authority, store, bad, NOW)
        with pytest.raises(TicketExpired):
            await redeem_ticket(authority, store, ticket, NOW + 10 ** 6)
        assert store.round_trips == 0
        # the good ticket is still unspent
        assert await redeem_ticket(authority, store, ticket, NOW) is not None
    run(main())


# --- the key ring -------------------------------------------------------------------

def test_rotation_keeps_next_current_and_previous(rng):
    ring = TicketKeyRing(rng=rng, now=NOW, rotation=HOUR, keep=2)
    next_id, current_id = ring.key_ids
    assert ring.current.key_id == current_id and not ring.due(NOW + HOUR - 1)
    assert not ring.maybe_rotate(NOW + HOUR - 1) and ring.generation == 1
    assert ring.maybe_rotate(NOW + HOUR) and ring.generation == 2
    assert ring.current.key_id == next_id                 # the pre-published key takes over
    assert ring.key_ids[1:] == [next_id, current_id]
    for i in range(2, 6):
        ring.rotate(NOW + i * HOUR)
    assert len(ring.key_ids) == 2 + 2 and len(set(ring.key_ids)) == 4


def test_tickets_sealed_with_the_next_key_open_before_rotation(rng):
    """What lets a cluster rotate without a flag day: gateway A has rotated,
    gateway B has not yet, and B still opens A's new tickets."""
    wrapping_key = os.urandom(32)
    ring_a = TicketKeyRing(rng=rng, now=NOW, rotation=HOUR)
    ring_b = TicketKeyRing.import_wrapped(ring_a.export_wrapped(wrapping_key), wrapping_key, rng=rng)
    ring_a.rotate(NOW + HOUR)
    state = sample_state(rng, expires_at=NOW + 2 * HOUR)
    ticket = TicketAuthority(ring_a, rng=rng).issue(state, NOW + HOUR).ticket
    assert TicketAuthority(ring_b, rng=rng).open(ticket, NOW + HOUR).state is not None


def test_ring_parameters_are_checked(rng):
    for bad in (dict(rotation=0), dict(keep=-1), dict(keep=17), dict(key_bits=192), dict(generation=0)):
        with pytest.raises(ValueError):
            TicketKeyRing(rng=rng, now=NOW, **bad)
    ring = TicketKeyRing(rng=rng, now=NOW, key_bits=128)
    assert ring.current.key_bits == 128
    assert "TicketKeyRing" in repr(ring)


def test_key_ids_never_collide_in_a_ring():
    # an rng that repeats its first key id: the ring draws again
    seq = iter([b"AAAA", b"k" * 32, b"AAAA", b"BBBB", b"l" * 32, b"AAAA", b"BBBB", b"CCCC", b"m" * 32])
    ring = TicketKeyRing(rng=lambda n: next(seq), now=NOW)
    assert ring.key_ids == [b"BBBB", b"AAAA"]
    ring.rotate(NOW + HOUR)
    assert ring.key_ids == [b"CCCC", b"BBBB", b"AAAA"]


# --- wrapping -----------------------------------------------------------------------

def test_wrapped_ring_round_trip(rng, ring):
    wrapping_key = os.urandom(32)
    ring.rotate(NOW + HOUR)
    blob = ring.export_wrapped(wrapping_key)
    copy = TicketKeyRing.import_wrapped(blob, wrapping_key, rng=rng)
    assert copy.key_ids == ring.key_ids and copy.generation == ring.generation == 2
    assert (copy.rotation, copy.keep, copy.key_bits) == (ring.rotation, ring.keep, ring.key_bits)
    assert copy.due(NOW + 2 * HOUR) and not copy.due(NOW + 2 * HOUR - 1)
    ticket = TicketAuthority(ring, rng=rng).issue(sample_state(rng, expires_at=NOW + 2 * HOUR), NOW + HOUR).ticket
    assert TicketAuthority(copy, rng=rng).open(ticket, NOW + HOUR).state is not None
    assert wrapping_key not in blob


def test_wrapped_ring_refuses_wrong_key_tampering_and_truncation(rng, ring):
    wrapping_key = os.urandom(32)
    blob = ring.export_wrapped(wrapping_key)
    with pytest.raises(KeyRingError, match="wrapping key"):
        TicketKeyRing.import_wrapped(blob, os.urandom(32), rng=rng)
    for i in range(len(blob)):
        bad = bytearray(blob)
        bad[i] ^= 0x04
        with pytest.raises(KeyRingError):
            TicketKeyRing.import_wrapped(bytes(bad), wrapping_key, rng=rng)
    for n in range(len(blob)):
        with pytest.raises(KeyRingError):
            TicketKeyRing.import_wrapped(blob[:n], wrapping_key, rng=rng)
    with pytest.raises(KeyRingError):
        TicketKeyRing.import_wrapped(blob + b"\0", wrapping_key, rng=rng)
    with pytest.raises(ValueError):
        ring.export_wrapped(b"short")
    # entries swapped: each entry's AAD names its index
    header = 20
    entry = (len(blob) - header) // 2
    swapped = blob[:header] + blob[header + entry:] + blob[header:header + entry]
    with pytest.raises(KeyRingError):
        TicketKeyRing.import_wrapped(swapped, wrapping_key, rng=rng)


def test_adopt_wipes_the_keys_left_behind(rng, ring):
    old_current = ring.current
    newer = TicketKeyRing(rng=CountingRng(b"elsewhere"), now=NOW)
    ring.adopt(newer)
    with pytest.raises(ValueError, match="closed"):
        old_current.seal(b"x", bytes(12), b"")
    assert ring.current is not old_current


# --- the wrapping key file ----------------------------------------------------------

def test_wrapping_key_file(tmp_path):
    key = os.urandom(32)
    raw = tmp_path / "ring.key"
    raw.write_bytes(key)
    raw.chmod(0o600)
    assert load_wrapping_key(raw) == key
    hexed = tmp_path / "ring.hex"
    hexed.write_text(key.hex() + "\n")
    hexed.chmod(0o400)
    assert load_wrapping_key(str(hexed)) == key
    for mode in (0o644, 0o640, 0o604, 0o660):
        raw.chmod(mode)
        with pytest.raises(ConfigError, match="0600"):
            load_wrapping_key(raw)
    raw.chmod(0o600)
    short = tmp_path / "short.key"
    short.write_bytes(os.urandom(31))
    short.chmod(0o600)
    with pytest.raises(ConfigError, match="32"):
        load_wrapping_key(short)
    with pytest.raises(ConfigError, match="cannot open"):
        load_wrapping_key(tmp_path / "missing.key")
    with pytest.raises(ConfigError):
        load_wrapping_key(tmp_path)                  # a directory
    link = tmp_path / "link.key"
    link.symlink_to(raw)
    with pytest.raises(ConfigError):
        load_wrapping_key(link)                      # not followed


# --- format stability ----------------------------------------------------------------

FORMAT_1_TICKET = bytes.fromhex(
    "010100000001a5a5a5a5a5a5a5a5a5a5a5a521469ea336992e8e20a5a9e9a42e792a8d1ab75788189849445585792147e79af6"
    "bf54b9d506b9e9baa6583b02264206c8220502f3225d0791dc2c8bd6dec044c32e5799dbcb2f87ef35296142eee18c94864a87"
    "d97e3e833e28782ba911a637ae68207998f0f29bfd0cd7d9721056625a73040f18683e759a")


def test_format_1_vector_keeps_opening(rng, ring):
    """By-value tickets outlive software upgrades: this one, made by format 1
    with a fixed key, nonce and state (a regression vector of this project,
    its AEAD checked by `cryptography` below), must open, and issuing the
    same state must give the same octets."""
    from ikecore.crypto import TicketCipher
    key = bytes(range(32))
    ring._keys[1].cipher = TicketCipher(key, b"\x00\x00\x00\x01")
    state = TicketState(ticket_id=bytes(range(16)), expires_at=NOW + 1800, idi_type=2, idi=b"alice.example.org",
                        idr_type=2, idr=b"gw.example.org", auth_method=2, prf_id=5, encr_id=20,
                        encr_key_bits=256, integ_id=0, dh_group=31, sk_d=bytes(range(100, 132)))
    authority = TicketAuthority(ring, rng=lambda n: b"\xa5" * n)
    assert authority.open(FORMAT_1_TICKET, NOW).state == state
    assert authority.issue(state, NOW).ticket == FORMAT_1_TICKET
    assert AESGCM(key).decrypt(b"\xa5" * 12, FORMAT_1_TICKET[18:], FORMAT_1_TICKET[:6]) == state.encode()


def test_create_wrapping_key_file(tmp_path):
    from ikecore.store import create_wrapping_key_file
    path = tmp_path / "ring.key"
    old = os.umask(0)
    try:
        create_wrapping_key_file(path)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o600
    key = load_wrapping_key(path)
    assert len(key) == 32
    with pytest.raises(ConfigError, match="cannot create"):
        create_wrapping_key_file(path)            # never overwritten
    assert load_wrapping_key(path) == key


# --- the state's own checks -------------------------------------------------------------

@pytest.mark.parametrize("field, value, error", [
    ("ticket_id", "not bytes", TypeError), ("idi", bytearray(b"x"), TypeError), ("sk_d", None, TypeError),
    ("ticket_id", bytes(15), ValueError), ("sk_d", b"", ValueError), ("sk_d", bytes(65), ValueError),
    ("idi", bytes(1025), ValueError), ("idr", bytes(1025), ValueError),
    ("expires_at", -1, ValueError), ("expires_at", 1 << 64, ValueError), ("expires_at", 1.5, ValueError),
    ("idi_type", 256, ValueError), ("idr_type", True, ValueError), ("auth_method", 256, ValueError),
    ("prf_id", 0x10000, ValueError), ("encr_id", -1, ValueError), ("encr_key_bits", 0x10000, ValueError),
    ("integ_id", "2", ValueError), ("dh_group", 0x10000, ValueError),
])
def test_state_refuses_each_bad_field_by_name(field, value, error):
    good = sample_state(CountingRng())
    with pytest.raises(error, match=field):
        dataclasses.replace(good, **{field: value})


def test_state_takes_the_extremes():
    good = sample_state(CountingRng())
    state = dataclasses.replace(good, expires_at=(1 << 64) - 1, idi=bytes(1024), idr=b"", sk_d=bytes(64),
                                dh_group=0xFFFF, auth_method=0)
    assert TicketState.decode(state.encode()) == state
