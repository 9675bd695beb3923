"""Hypothesis fuzzing of ticket opening: whatever arrives in TICKET_OPAQUE is
refused with a TicketError (never another exception, never accepted) unless it
is a ticket we issued, unchanged."""
from __future__ import annotations

import os

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from ticket_helpers import NOW, CountingRng, sample_state

from ikecore.errors import KeyRingError, TicketError, TicketMalformed
from ikecore.resumption import HEADER_LENGTH, TicketAuthority, TicketKeyRing, TicketState

RNG = CountingRng(b"fuzz")
RING = TicketKeyRing(rng=RNG, now=NOW)
BY_VALUE = TicketAuthority(RING, rng=RNG)
BY_REF = TicketAuthority(RING, by_reference=True, rng=RNG)
STATE = sample_state(RNG)
TICKETS = [BY_VALUE.issue(STATE, NOW).ticket, BY_REF.issue(STATE, NOW).ticket]
WRAPPING_KEY = os.urandom(32)
RING_BLOB = RING.export_wrapped(WRAPPING_KEY)
HEADERS = [bytes([1, kind]) + key_id for kind in (1, 2, 3) for key_id in RING.key_ids]

fuzz = settings(suppress_health_check=[HealthCheck.too_slow])


def refused_or_ours(authority, blob, now=NOW):
    try:
        opened = authority.open(blob, now)
    except TicketError:
        return None
    assert blob in TICKETS, "a ticket we did not issue was accepted"
    return opened


@fuzz
@given(st.binary(max_size=3000))
def test_arbitrary_bytes(blob):
    assert refused_or_ours(BY_VALUE, blob) is None


@fuzz
@given(st.sampled_from(HEADERS), st.binary(max_size=2500))
def test_our_headers_with_arbitrary_bodies(header, body):
    assert refused_or_ours(BY_VALUE, header + body) is None


@fuzz
@given(st.sampled_from(TICKETS), st.data())
def test_mutated_tickets(ticket, data):
    blob = bytearray(ticket)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "extend"]))
        at = data.draw(st.integers(0, max(0, len(blob) - 1)))
        if op == "flip" and blob:
            blob[at] ^= data.draw(st.integers(1, 255))
        elif op == "set" and blob:
            blob[at] = data.draw(st.integers(0, 255))
        elif op == "insert":
            blob[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and blob:
            del blob[at:at + data.draw(st.integers(1, 8))]
        elif op == "truncate":
            del blob[at:]
        elif op == "extend":
            blob += data.draw(st.binary(min_size=1, max_size=3000))
    blob = bytes(blob)
    assume(blob != ticket)
    assert refused_or_ours(BY_VALUE, blob) is None
    assert refused_or_ours(BY_REF, blob) is None


@fuzz
@given(st.binary(max_size=2500))
def test_open_referenced_of_anything(blob):
    try:
        BY_REF.open_referenced(blob, NOW)
    except TicketError:
        return
    raise AssertionError("arbitrary stored state accepted")


@fuzz
@given(st.binary(max_size=2300))
def test_state_decode_is_exact(data):
    try:
        state = TicketState.decode(data)
    except TicketMalformed:
        return
    assert state.encode() == data


@fuzz
@given(ticket_id=st.binary(min_size=16, max_size=16), expires_at=st.integers(NOW + 1, NOW + 7200),
       idi_type=st.integers(0, 255), idi=st.binary(max_size=1024), idr_type=st.integers(0, 255),
       idr=st.binary(max_size=1024), auth_method=st.integers(0, 255), ids=st.lists(st.integers(0, 0xFFFF),
       min_size=5, max_size=5), sk_d=st.binary(min_size=1, max_size=64), by_ref=st.booleans())
def test_any_state_round_trips(ticket_id, expires_at, idi_type, idi, idr_type, idr, auth_method, ids, sk_d,
                               by_ref):
    state = TicketState(ticket_id=ticket_id, expires_at=expires_at, idi_type=idi_type, idi=idi,
                        idr_type=idr_type, idr=idr, auth_method=auth_method, prf_id=ids[0], encr_id=ids[1],
                        encr_key_bits=ids[2], integ_id=ids[3], dh_group=ids[4], sk_d=sk_d)
    authority = BY_REF if by_ref else BY_VALUE
    issued = authority.issue(state, NOW)
    opened = authority.open(issued.ticket, NOW)
    got = authority.open_referenced(issued.store_put[1], NOW, ticket_id=opened.ticket_id) if by_ref \
        else opened.state
    assert got == state
    assert len(issued.ticket) >= HEADER_LENGTH + 28


@fuzz
@given(st.data())
def test_wrapped_ring_mutations(data):
    blob = bytearray(RING_BLOB)
    at = data.draw(st.integers(0, len(blob) - 1))
    op = data.draw(st.sampled_from(["flip", "truncate", "extend"]))
    if op == "flip":
        blob[at] ^= data.draw(st.integers(1, 255))
    elif op == "truncate":
        del blob[at:]
    else:
        blob += data.draw(st.binary(min_size=1, max_size=64))
    try:
        TicketKeyRing.import_wrapped(bytes(blob), WRAPPING_KEY, rng=RNG)
    except KeyRingError:
        return
    raise AssertionError("a changed key ring was accepted")


@fuzz
@given(st.binary(max_size=600))
def test_wrapped_ring_arbitrary(blob):
    try:
        TicketKeyRing.import_wrapped(b"IKR1" + blob, WRAPPING_KEY, rng=RNG)
    except KeyRingError:
        return
    raise AssertionError("arbitrary key ring accepted")
