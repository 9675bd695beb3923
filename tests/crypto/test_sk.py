"""SK payload protection against `cryptography` in both directions, and tampering."""
import hashlib
import hmac
import os

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from hypothesis import given, settings
from hypothesis import strategies as st

from ikecore.crypto import Encr, Integ, SkCipher
from ikecore.errors import InvalidKey, InvalidTag, LimitExceeded, MalformedPacket, UnsupportedAlgorithm

AEAD_SUITES = [(Encr.AES_GCM_16, 16), (Encr.AES_GCM_16, 24), (Encr.AES_GCM_16, 32), (Encr.AES_GCM_12, 16),
               (Encr.AES_GCM_8, 32), (Encr.CHACHA20_POLY1305, 32)]
CBC_SUITES = [(kb, integ) for kb in (16, 24, 32) for integ in
              (Integ.HMAC_SHA2_256_128, Integ.HMAC_SHA2_384_192, Integ.HMAC_SHA2_512_256)]
INTEG = {Integ.HMAC_SHA2_256_128: (hashlib.sha256, 32, 16), Integ.HMAC_SHA2_384_192: (hashlib.sha384, 48, 24),
         Integ.HMAC_SHA2_512_256: (hashlib.sha512, 64, 32)}
ICV = {Encr.AES_GCM_8: 8, Encr.AES_GCM_12: 12, Encr.AES_GCM_16: 16, Encr.CHACHA20_POLY1305: 16}


def ref_aead(encr_id, key, salt):
    return ChaCha20Poly1305(key) if encr_id == Encr.CHACHA20_POLY1305 else AESGCM(key)


def ref_aead_seal(encr_id, keymat, aad, plain, iv):
    """RFC 5282: nonce = salt | IV, plaintext | pad length 0, tag appended (maybe truncated)."""
    key, salt = keymat[:-4], keymat[-4:]
    ct = ref_aead(encr_id, key, salt).encrypt(salt + iv, plain + b"\x00", aad)
    body, tag = ct[:-16], ct[-16:]
    return iv + body + tag[:ICV[encr_id]]


def ref_aead_open(encr_id, keymat, aad, sealed):
    key, salt = keymat[:-4], keymat[-4:]
    iv, rest = sealed[:8], sealed[8:]
    if ICV[encr_id] != 16:
        pytest.skip("cryptography verifies only full 16-octet tags")
    pt = ref_aead(encr_id, key, salt).decrypt(salt + iv, rest, aad)
    return pt[:len(pt) - 1 - pt[-1]]


@pytest.mark.parametrize("encr_id, key_len", AEAD_SUITES)
@settings(max_examples=40, deadline=None)
@given(aad=st.binary(min_size=32, max_size=64), plain=st.binary(max_size=1500), iv=st.binary(min_size=8, max_size=8))
def test_aead_seal_matches_cryptography(encr_id, key_len, aad, plain, iv):
    keymat = os.urandom(key_len + 4)
    ours = SkCipher(encr_id, keymat)
    sealed = ours.seal(aad, plain, iv=iv)
    assert len(sealed) == ours.sealed_length(len(plain))
    assert sealed == ref_aead_seal(encr_id, keymat, aad, plain, iv)


@pytest.mark.parametrize("encr_id, key_len", [s for s in AEAD_SUITES if ICV[s[0]] == 16])
@settings(max_examples=40, deadline=None)
@given(aad=st.binary(min_size=32, max_size=64), plain=st.binary(max_size=1500),
       pad=st.integers(0, 255), iv=st.binary(min_size=8, max_size=8))
def test_aead_open_accepts_cryptography(encr_id, key_len, aad, plain, pad, iv):
    keymat = os.urandom(key_len + 4)
    key, salt = keymat[:-4], keymat[-4:]
    # RFC 5282 §3: a receiver accepts any padding up to 255 octets
    ct = ref_aead(encr_id, key, salt).encrypt(salt + iv, plain + bytes(pad) + bytes([pad]), aad)
    assert SkCipher(encr_id, keymat).open(aad, iv + ct) == plain
    assert ref_aead_open(encr_id, keymat, aad, SkCipher(encr_id, keymat).seal(aad, plain)) == plain


def ref_cbc_seal(key, integ_id, integ_key, aad, plain, iv):
    digest, _, icv_len = INTEG[integ_id]
    pad = (16 - (len(plain) + 1) % 16) % 16
    framed = plain + bytes(range(1, pad + 1)) + bytes([pad])
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    body = iv + enc.update(framed) + enc.finalize()
    return body + hmac.new(integ_key, aad + body, digest).digest()[:icv_len]


@pytest.mark.parametrize("key_len, integ_id", CBC_SUITES)
@settings(max_examples=30, deadline=None)
@given(aad=st.binary(min_size=32, max_size=64), plain=st.binary(max_size=1500), iv=st.binary(min_size=16, max_size=16))
def test_cbc_hmac_both_directions(key_len, integ_id, aad, plain, iv):
    key, integ_key = os.urandom(key_len), os.urandom(INTEG[integ_id][1])
    ours = SkCipher(Encr.AES_CBC, key, integ_id, integ_key)
    sealed = ours.seal(aad, plain, iv=iv)
    assert sealed == ref_cbc_seal(key, integ_id, integ_key, aad, plain, iv)
    assert ours.open(aad, sealed) == plain
    # and a fresh (random-IV) seal from the reference opens with ours
    other_iv = os.urandom(16)
    assert ours.open(aad, ref_cbc_seal(key, integ_id, integ_key, aad, plain, other_iv)) == plain


def test_default_ivs_never_repeat():
    for encr_id, key_len in [(Encr.AES_GCM_16, 32), (Encr.CHACHA20_POLY1305, 32)]:
        sk = SkCipher(encr_id, os.urandom(key_len + 4))
        ivs = {sk.seal(b"h" * 32, b"x")[:8] for _ in range(2000)}
        assert len(ivs) == 2000
    cbc = SkCipher(Encr.AES_CBC, os.urandom(16), Integ.HMAC_SHA2_256_128, os.urandom(32))
    assert len({cbc.seal(b"h" * 32, b"x")[:16] for _ in range(500)}) == 500


def all_suites():
    for encr_id, key_len in AEAD_SUITES:
        yield SkCipher(encr_id, os.urandom(key_len + 4))
    for key_len, integ_id in CBC_SUITES:
        yield SkCipher(Encr.AES_CBC, os.urandom(key_len), integ_id, os.urandom(INTEG[integ_id][1]))


@pytest.mark.parametrize("sk", list(all_suites()), ids=lambda s: f"{s.encr_id}-{s.integ_id}")
def test_every_flipped_byte_fails(sk):
    aad, plain = os.urandom(36), os.urandom(77)
    sealed = sk.seal(aad, plain)
    for i in range(len(sealed)):
        bad = bytearray(sealed)
        bad[i] ^= 0x01
        with pytest.raises(InvalidTag):
            sk.open(aad, bytes(bad))
    for i in range(len(aad)):
        bad = bytearray(aad)
        bad[i] ^= 0x80
        with pytest.raises(InvalidTag):
            sk.open(bytes(bad), sealed)
    assert sk.open(aad, sealed) == plain


@pytest.mark.parametrize("sk", list(all_suites()), ids=lambda s: f"{s.encr_id}-{s.integ_id}")
def test_truncated_input(sk):
    aad = os.urandom(32)
    sealed = sk.seal(aad, b"payload")
    for n in range(sk.iv_length + sk.block_length + sk.icv_length):
        with pytest.raises((MalformedPacket, InvalidTag)):
            sk.open(aad, sealed[:n])
    with pytest.raises((MalformedPacket, InvalidTag)):
        sk.open(aad, sealed[:-1])


def test_bad_pad_length_after_valid_tag():
    keymat = os.urandom(36)
    key, salt = keymat[:-4], keymat[-4:]
    iv, aad = os.urandom(8), os.urandom(32)
    # authentic message whose pad-length octet points past the plaintext
    ct = AESGCM(key).encrypt(salt + iv, b"abc" + bytes([200]), aad)
    with pytest.raises(MalformedPacket):
        SkCipher(Encr.AES_GCM_16, keymat).open(aad, iv + ct)


@pytest.mark.parametrize("args, exc", [
    ((Encr.AES_GCM_16, b"k" * 19), InvalidKey),
    ((Encr.AES_GCM_16, b"k" * 3), InvalidKey),
    ((Encr.CHACHA20_POLY1305, b"k" * 32), InvalidKey),
    ((Encr.AES_CBC, b"k" * 20, Integ.HMAC_SHA2_256_128, b"i" * 32), InvalidKey),
    ((Encr.AES_CBC, b"k" * 16, Integ.HMAC_SHA2_256_128, b"i" * 31), InvalidKey),
    ((Encr.AES_CBC, b"k" * 16), UnsupportedAlgorithm),          # CBC needs INTEG
    ((Encr.AES_CBC, b"k" * 16, 1, b"i" * 16), UnsupportedAlgorithm),  # HMAC-MD5-96: not implemented
    ((Encr.AES_GCM_16, b"k" * 20, Integ.HMAC_SHA2_256_128, b"i" * 32), ValueError),
    ((3, b"k" * 24), UnsupportedAlgorithm),
    ((Encr.AES_GCM_16, "not bytes"), TypeError),
])
def test_construction_errors(args, exc):
    with pytest.raises(exc):
        SkCipher(*args)


def test_seal_misuse():
    sk = SkCipher(Encr.AES_GCM_16, os.urandom(20))
    with pytest.raises(ValueError):
        sk.seal(b"aad", b"x", iv=b"short")
    with pytest.raises(TypeError):
        sk.seal(b"aad", "text")
    with pytest.raises(ValueError):
        sk.seal(b"aad", bytes(2 << 20))


def test_rfc7634_appendix_b_ike_message(vectors):
    """RFC 7634 Appendix B: an INFORMATIONAL message protected with ChaCha20-Poly1305."""
    case = vectors("rfc7634_chacha20poly1305.json")["ikev2_example"]
    message = bytes.fromhex(case["ike_message_assembled"])
    sk = SkCipher(Encr.CHACHA20_POLY1305, bytes.fromhex(case["sk_e_keymat"]))
    inner = sk.open(message[:32], message[32:])
    assert inner == bytes.fromhex(case["plaintext"])[:-1]   # pad length octet stripped
    # and sealing the same inner payload with the published IV gives the published bytes
    assert message[:32] + sk.seal(message[:32], inner, iv=bytes.fromhex(case["iv"])) == message


def _prefix(next_payload=41):
    """IKE header (lengths zero, to be filled in) + SK generic header."""
    header = bytes(range(16)) + bytes([46, 0x20, 37, 0x08]) + (5).to_bytes(4, "big") + bytes(4)
    return header + bytes([next_payload, 0, 0, 0])


@pytest.mark.parametrize("sk", list(all_suites()), ids=lambda s: f"{s.encr_id}-{s.integ_id}")
def test_whole_message_forms(sk):
    inner = os.urandom(100)
    msg = sk.seal_message(_prefix(), inner)
    assert int.from_bytes(msg[24:28], "big") == len(msg)
    assert int.from_bytes(msg[30:32], "big") == len(msg) - 28
    assert sk.open_message(msg, 28) == inner
    # the same bytes open through the split form with AAD = header .. SK header
    assert sk.open(msg[:32], msg[32:]) == inner
    # lengths that disagree with the datagram are refused before any crypto
    with pytest.raises(MalformedPacket):
        sk.open_message(msg + b"\x00", 28)
    with pytest.raises(MalformedPacket):
        sk.open_message(msg[:-1], 28)
    for bad_offset in (0, 27, len(msg) - 3, len(msg), len(msg) + 10):
        with pytest.raises(MalformedPacket):
            sk.open_message(msg, bad_offset)
    tampered = bytearray(msg)
    tampered[20] ^= 1   # message id: covered by the AAD / ICV
    with pytest.raises(InvalidTag):
        sk.open_message(bytes(tampered), 28)


def test_seal_message_limits():
    sk = SkCipher(Encr.AES_GCM_16, os.urandom(20))
    with pytest.raises(ValueError):
        sk.seal_message(b"short", b"x")
    with pytest.raises(LimitExceeded):
        sk.seal_message(_prefix(), bytes(70000))   # SK payload length is 16 bits


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400), offset=st.integers(-5, 500))
def test_open_message_on_garbage(data, offset):
    """Any octets at any offset: a clear error, never a crash or a plaintext."""
    for sk in (SkCipher(Encr.AES_GCM_16, bytes(36)), SkCipher(Encr.AES_CBC, bytes(16),
                                                             Integ.HMAC_SHA2_256_128, bytes(32))):
        try:
            sk.open_message(data, offset)
        except (InvalidTag, MalformedPacket, ValueError):
            pass
        else:
            raise AssertionError("garbage opened")
