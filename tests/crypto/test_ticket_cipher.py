"""TicketCipher: AES-GCM ticket sealing in the C core (ikecore/crypto/ticket.py, csrc/ticket.c)."""
from __future__ import annotations

import gc
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given
from hypothesis import strategies as st

from ikecore.crypto import TicketCipher
from ikecore.errors import InvalidKey, InvalidTag, MalformedPacket

KEY_ID = b"\x00\x00\x00\x07"


@pytest.mark.parametrize("index", range(3))
def test_known_answer_gcm_spec(vectors, index):
    """The header is the AAD and travels in front: with the spec's AAD as the
    header, the output is AAD | IV | C | T of the published case."""
    case = vectors("gcm_spec_aes256.json")["cases"][index]
    key, iv, aad, pt = (bytes.fromhex(case[k]) for k in ("key", "iv", "aad", "plaintext"))
    expected = aad + iv + bytes.fromhex(case["ciphertext"]) + bytes.fromhex(case["tag"])
    cipher = TicketCipher(key, KEY_ID)
    assert cipher.seal(pt, iv, aad) == expected
    assert cipher.open(expected, len(aad)) == pt
    # and the independent implementation agrees on the same vector
    assert AESGCM(key).encrypt(iv, pt, aad) == expected[len(aad) + 12:]


@pytest.mark.parametrize("key_len", [16, 32])
def test_matches_cryptography(key_len):
    key, nonce, header, pt = os.urandom(key_len), os.urandom(12), os.urandom(6), os.urandom(200)
    cipher = TicketCipher(key, KEY_ID)
    sealed = cipher.seal(pt, nonce, header)
    assert sealed[:6] == header and sealed[6:18] == nonce
    assert sealed[18:] == AESGCM(key).encrypt(nonce, pt, header)
    assert cipher.key_bits == key_len * 8
    # a blob sealed by cryptography opens here
    other = header + nonce + AESGCM(key).encrypt(nonce, b"from pyca", header)
    assert cipher.open(other, 6) == b"from pyca"


def test_every_flipped_bit_is_refused():
    cipher = TicketCipher(os.urandom(32), KEY_ID)
    sealed = cipher.seal(b"state of an IKE SA", os.urandom(12), b"HDR123")
    for i in range(len(sealed)):
        for bit in (0x01, 0x80):
            bad = bytearray(sealed)
            bad[i] ^= bit
            with pytest.raises(InvalidTag):
                cipher.open(bytes(bad), 6)
    assert cipher.open(sealed, 6) == b"state of an IKE SA"


def test_wrong_header_length_or_key_is_refused():
    cipher = TicketCipher(os.urandom(32), KEY_ID)
    sealed = cipher.seal(b"x" * 40, os.urandom(12), b"HDR123")
    with pytest.raises(InvalidTag):
        cipher.open(sealed, 5)
    with pytest.raises(InvalidTag):
        TicketCipher(os.urandom(32), KEY_ID).open(sealed, 6)


def test_truncated_is_malformed_not_a_crash():
    cipher = TicketCipher(os.urandom(32), KEY_ID)
    sealed = cipher.seal(b"", os.urandom(12), b"HDR")
    assert len(sealed) == 3 + 12 + 16
    assert cipher.open(sealed, 3) == b""
    for n in range(len(sealed)):
        with pytest.raises(MalformedPacket):
            cipher.open(sealed[:n], 3)
    with pytest.raises(MalformedPacket):
        cipher.open(sealed, 100)     # header beyond the blob
    with pytest.raises(ValueError):
        cipher.open(sealed, 10 ** 6)


def test_oversized_is_refused_before_crypto():
    cipher = TicketCipher(os.urandom(32), KEY_ID)
    with pytest.raises(ValueError):
        cipher.open(bytes(70000), 6)
    with pytest.raises(ValueError):
        cipher.seal(bytes(70000), os.urandom(12), b"")


def test_bad_arguments():
    with pytest.raises(InvalidKey):
        TicketCipher(os.urandom(24), KEY_ID)      # AES-192 is not offered for tickets
    with pytest.raises(InvalidKey):
        TicketCipher(b"", KEY_ID)
    with pytest.raises(ValueError):
        TicketCipher(os.urandom(32), b"abc")
    with pytest.raises(TypeError):
        TicketCipher("key" * 11, KEY_ID)
    cipher = TicketCipher(os.urandom(32), KEY_ID)
    with pytest.raises(ValueError):
        cipher.seal(b"x", os.urandom(8), b"")    # nonces are 12 octets
    with pytest.raises(ValueError):
        cipher.open(b"x" * 40, -1)
    with pytest.raises(TypeError):
        cipher.seal("text", os.urandom(12), b"")


def test_large_plaintext_grows_the_buffer():
    cipher = TicketCipher(os.urandom(32), KEY_ID)
    pt = os.urandom(5000)
    sealed = cipher.seal(pt, os.urandom(12), b"H")
    assert cipher.open(sealed, 1) == pt
    assert cipher.open(cipher.seal(b"small", os.urandom(12), b"H"), 1) == b"small"


def test_wrap_and_unwrap_keep_the_key_in_c():
    wrapper = TicketCipher(os.urandom(32), b"wrap")
    key = os.urandom(32)
    inner = TicketCipher(key, KEY_ID)
    blob = wrapper.wrap_key(inner, os.urandom(12), b"ring-header")
    assert key not in blob
    # it is AES-256-GCM of the raw key under the wrapping key
    copy = wrapper.unwrap_key(blob, len(b"ring-header"), KEY_ID)
    sealed = inner.seal(b"hello", os.urandom(12), b"h")
    assert copy.open(sealed, 1) == b"hello"
    assert copy.key_id == KEY_ID and copy.key_bits == 256
    bad = bytearray(blob)
    bad[-1] ^= 1
    with pytest.raises(InvalidTag):
        wrapper.unwrap_key(bytes(bad), len(b"ring-header"), KEY_ID)
    with pytest.raises(InvalidTag):
        TicketCipher(os.urandom(32), b"wrap").unwrap_key(blob, len(b"ring-header"), KEY_ID)
    # a sealed blob that is not a 16- or 32-octet key is refused unopened
    with pytest.raises(InvalidKey):
        wrapper.unwrap_key(wrapper.seal(b"x" * 20, os.urandom(12), b"h"), 1, KEY_ID)
    with pytest.raises(MalformedPacket):
        wrapper.unwrap_key(blob[:20], 11, KEY_ID)


def test_close_wipes_and_refuses_use():
    cipher = TicketCipher(os.urandom(32), KEY_ID)
    sealed = cipher.seal(b"x", os.urandom(12), b"")
    cipher.close()
    cipher.close()     # idempotent
    with pytest.raises(ValueError):
        cipher.open(sealed, 0)
    with pytest.raises(ValueError):
        cipher.seal(b"x", os.urandom(12), b"")


def test_repr_shows_no_key():
    key = bytes(range(32))
    text = repr(TicketCipher(key, KEY_ID))
    assert key.hex() not in text and "00000007" in text


def test_many_objects_freed_by_gc():
    for _ in range(2000):
        TicketCipher(os.urandom(32), KEY_ID).seal(b"x", os.urandom(12), b"")
    gc.collect()


@given(st.binary(max_size=300), st.binary(max_size=40), st.binary(min_size=12, max_size=12))
def test_round_trip_and_agreement(pt, header, nonce):
    key = b"\x42" * 32
    cipher = TicketCipher(key, KEY_ID)
    sealed = cipher.seal(pt, nonce, header)
    assert sealed == header + nonce + AESGCM(key).encrypt(nonce, pt, header)
    assert cipher.open(sealed, len(header)) == pt


@given(st.binary(max_size=400), st.integers(min_value=0, max_value=80))
def test_open_of_anything_is_refused_cleanly(blob, header_len):
    cipher = TicketCipher(b"\x17" * 32, KEY_ID)
    with pytest.raises((InvalidTag, MalformedPacket)):
        cipher.open(blob, header_len)


def test_fast_and_general_paths_agree():
    """bytes go through ikecore._fastpath's C methods; other buffers and
    keyword calls through cffi: same output, same errors."""
    from ikecore import _fastpath
    assert issubclass(TicketCipher, _fastpath.TicketKey)
    key, nonce, header, pt = os.urandom(32), os.urandom(12), b"HDR123", os.urandom(100)
    cipher = TicketCipher(key, KEY_ID)
    fast = cipher.seal(pt, nonce, header)
    assert cipher.seal(bytearray(pt), memoryview(nonce), bytearray(header)) == fast
    assert cipher.seal(pt, nonce=nonce, header=header) == fast
    assert cipher._seal_general(pt, nonce, header) == fast
    assert cipher.seal(pt, nonce) == cipher._seal_general(pt, nonce, b"")
    assert cipher.open(bytearray(fast), 6) == cipher.open(fast, 6) == cipher._open_general(fast, 6) == pt
    assert cipher.open(fast, header_len=6) == pt
    for call in (cipher.open, cipher._open_general):
        with pytest.raises(InvalidTag):
            call(fast[:-1] + bytes([fast[-1] ^ 1]), 6)
        with pytest.raises(MalformedPacket):
            call(fast[:33], 6)
        with pytest.raises(ValueError):
            call(fast, -1)
        with pytest.raises(ValueError):
            call(fast, 1 << 70)
    for call in (cipher.seal, cipher._seal_general):
        with pytest.raises(ValueError):
            call(pt, b"short", header)
    empty = cipher.seal(b"", nonce, header)
    assert cipher.open(empty, 6) == b""
