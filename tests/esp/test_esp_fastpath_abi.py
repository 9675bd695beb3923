"""ikecore._fastpath on the limited API: single-packet decryption decrypts a
packet whose encrypted part fits 2048 octets on the stack and copies the
payload out once, a larger one into a bytes object that is then shrunk; both
sides of that boundary, tampered packets on both sides, the forwarding of
uncommon calls to the cffi path, and the module's abi3 build."""
from __future__ import annotations

import os

import pytest

from ikecore.errors import InvalidTag
from ikecore.esp import EspSA

SPI = 0x7002
STACK_DECRYPT_MAX = 2048   # csrc/fastpath.c


def _pair(suite):
    return suite.pair(SPI)


def _sizes_around_the_boundary(tx):
    # room = packet length - framing + 2, framing = 8 + IV + ICV + 2
    framing = 8 + tx.iv_length + tx.icv_length + 2
    out = []
    for n in range(STACK_DECRYPT_MAX - 40, STACK_DECRYPT_MAX + 40):
        room = tx.packet_length(n) - framing + 2
        if STACK_DECRYPT_MAX - 20 <= room <= STACK_DECRYPT_MAX + 20:
            out.append(n)
    return out


def test_round_trip_across_the_stack_buffer_boundary(suite):
    tx, rx = _pair(suite)
    sizes = _sizes_around_the_boundary(tx)
    assert sizes
    for n in sizes:
        # next header 17: with 4 or 41 the core would trim a random payload to the
        # inner IP header's length (TFC padding removal)
        payload = os.urandom(n)
        got, nh = rx.decrypt(tx.encrypt(payload, 17))
        assert (got, nh) == (payload, 17)
        assert type(got) is bytes


def test_tampered_packets_fail_on_both_sides_of_the_boundary(suite):
    tx, rx = _pair(suite)
    for n in (64, STACK_DECRYPT_MAX - 100, STACK_DECRYPT_MAX + 100, 9000):
        pkt = bytearray(tx.encrypt(os.urandom(n), 17))
        pkt[-1] ^= 1
        with pytest.raises(InvalidTag):
            rx.decrypt(bytes(pkt))
    # the SA still works after the failures
    payload = os.urandom(3000)
    assert rx.decrypt(tx.encrypt(payload, 17)) == (payload, 17)


def test_uncommon_calls_are_forwarded_with_their_arguments(suite):
    tx, rx = _pair(suite)
    payload = os.urandom(100)
    # a bytearray and a keyword argument take the cffi path, with the same result
    pkt = tx.encrypt(bytearray(payload), 17, tfc_pad=32)
    assert rx.decrypt(bytearray(pkt))[1] == 17
    assert rx.decrypt(memoryview(tx.encrypt(payload, 6)))[0][:len(payload)] == payload
    with pytest.raises(TypeError):
        tx.encrypt(payload)


def test_fastpath_is_the_abi3_build():
    if os.environ.get("IKECORE_FASTPATH_ABI") == "full":
        pytest.skip("built per Python version on request")
    fastpath = pytest.importorskip("ikecore._fastpath")
    assert ".abi3." in os.path.basename(fastpath.__file__)
    assert issubclass(EspSA, fastpath.SinglePacketESP)
