"""The C key schedules against the pure-Python reference and published KDF vectors."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_kdf as ref
from ikecore.crypto import (Encr, Integ, Prf, child_keymat, child_sa_keys, ike_keys_initial,
                            ike_keys_rekey, ike_keys_resume)
from ikecore.errors import InvalidKey, UnsupportedAlgorithm

PRFS = [Prf.HMAC_SHA2_256, Prf.HMAC_SHA2_384, Prf.HMAC_SHA2_512, Prf.AES128_XCBC, Prf.AES128_CMAC]
# (encr_id, key_bits, integ_id, SK_a length, SK_e length)
SUITES = [
    (Encr.AES_GCM_16, 256, Integ.NONE, 0, 36),
    (Encr.AES_GCM_16, 128, Integ.NONE, 0, 20),
    (Encr.AES_GCM_8, 192, Integ.NONE, 0, 28),
    (Encr.CHACHA20_POLY1305, None, Integ.NONE, 0, 36),
    (Encr.AES_CBC, 256, Integ.HMAC_SHA2_256_128, 32, 32),
    (Encr.AES_CBC, 128, Integ.HMAC_SHA2_384_192, 48, 16),
    (Encr.AES_CBC, 192, Integ.HMAC_SHA2_512_256, 64, 24),
]
nonce = st.binary(min_size=16, max_size=256)
spi = st.binary(min_size=8, max_size=8)
secret = st.binary(min_size=1, max_size=512)
KEY_FIELDS = ("sk_d", "sk_ai", "sk_ar", "sk_ei", "sk_er", "sk_pi", "sk_pr")


def as_list(keys):
    return [getattr(keys, f) for f in KEY_FIELDS]


@settings(max_examples=1500, deadline=None)
@given(prf_id=st.sampled_from(PRFS), suite=st.sampled_from(SUITES), ni=nonce, nr=nonce, gir=secret,
       spi_i=spi, spi_r=spi)
def test_initial_equals_reference(prf_id, suite, ni, nr, gir, spi_i, spi_r):
    encr_id, bits, integ_id, a_len, e_len = suite
    keys = ike_keys_initial(prf_id, ni, nr, gir, spi_i, spi_r, encr_id=encr_id, encr_key_bits=bits,
                            integ_id=integ_id, include_skeyseed=True)
    skeyseed, expected = ref.initial(prf_id, ni, nr, gir, spi_i, spi_r, a_len, e_len)
    assert keys.skeyseed == skeyseed
    assert as_list(keys) == expected


@settings(max_examples=1000, deadline=None)
@given(old_prf=st.sampled_from(PRFS), new_prf=st.sampled_from(PRFS), suite=st.sampled_from(SUITES),
       sk_d=st.binary(min_size=16, max_size=64), gir=secret, ni=nonce, nr=nonce, spi_i=spi, spi_r=spi)
def test_rekey_and_clone_equal_reference(old_prf, new_prf, suite, sk_d, gir, ni, nr, spi_i, spi_r):
    encr_id, bits, integ_id, a_len, e_len = suite
    keys = ike_keys_rekey(old_prf, sk_d, gir, ni, nr, spi_i, spi_r, prf_id=new_prf, encr_id=encr_id,
                          encr_key_bits=bits, integ_id=integ_id, include_skeyseed=True)
    skeyseed, expected = ref.rekey(old_prf, sk_d, new_prf, gir, ni, nr, spi_i, spi_r, a_len, e_len)
    assert keys.skeyseed == skeyseed   # keyed by the OLD SA's PRF (RFC 7296 §2.18)
    assert as_list(keys) == expected


@settings(max_examples=1000, deadline=None)
@given(prf_id=st.sampled_from(PRFS), suite=st.sampled_from(SUITES), sk_d=st.binary(min_size=16, max_size=64),
       ni=nonce, nr=nonce, spi_i=spi, spi_r=spi)
def test_resumption_equals_reference(prf_id, suite, sk_d, ni, nr, spi_i, spi_r):
    encr_id, bits, integ_id, a_len, e_len = suite
    keys = ike_keys_resume(prf_id, sk_d, ni, nr, spi_i, spi_r, encr_id=encr_id, encr_key_bits=bits,
                           integ_id=integ_id, include_skeyseed=True)
    skeyseed, expected = ref.rekey(prf_id, sk_d, prf_id, b"Resumption", ni, nr, spi_i, spi_r, a_len, e_len)
    assert keys.skeyseed == skeyseed
    assert as_list(keys) == expected


@settings(max_examples=1000, deadline=None)
@given(prf_id=st.sampled_from(PRFS), sk_d=st.binary(min_size=16, max_size=64), ni=nonce, nr=nonce,
       gir=st.one_of(st.none(), secret), length=st.integers(1, 16 * 255))
def test_child_keymat_equals_reference(prf_id, sk_d, ni, nr, gir, length):
    seed = (gir or b"") + ni + nr
    assert child_keymat(prf_id, sk_d, ni, nr, length, gir) == ref.prf_plus(prf_id, sk_d, seed, length)


def test_child_sa_keys_layout():
    sk_d, ni, nr = b"d" * 32, b"i" * 32, b"r" * 32
    km = child_keymat(Prf.HMAC_SHA2_256, sk_d, ni, nr, 2 * (32 + 32))
    keys = child_sa_keys(Prf.HMAC_SHA2_256, sk_d, ni, nr, encr_id=Encr.AES_CBC, encr_key_bits=256,
                         integ_id=Integ.HMAC_SHA2_256_128)
    # RFC 7296 §2.17: i->r encryption, i->r integrity, r->i encryption, r->i integrity
    assert (keys.encr_i, keys.integ_i, keys.encr_r, keys.integ_r) == (km[:32], km[32:64], km[64:96], km[96:])
    gcm = child_sa_keys(Prf.HMAC_SHA2_256, sk_d, ni, nr, encr_id=Encr.AES_GCM_16, encr_key_bits=128)
    km = child_keymat(Prf.HMAC_SHA2_256, sk_d, ni, nr, 40)
    assert (gcm.encr_i, gcm.encr_r, gcm.integ_i) == (km[:20], km[20:], b"")


def test_keys_never_in_repr():
    keys = ike_keys_initial(Prf.HMAC_SHA2_256, b"n" * 32, b"m" * 32, b"g" * 32, b"a" * 8, b"b" * 8,
                            encr_id=Encr.AES_GCM_16, encr_key_bits=256)
    text = repr(keys)
    for f in KEY_FIELDS:
        assert not getattr(keys, f) or getattr(keys, f).hex() not in text
    assert keys.skeyseed is None


def test_worked_lengths_aes256gcm_sha256():
    # RFC 7296 §2.14 / digest §3.6: 32 + 0 + 0 + 36 + 36 + 32 + 32 = 168 octets
    keys = ike_keys_initial(Prf.HMAC_SHA2_256, b"n" * 32, b"m" * 32, b"g" * 32, b"a" * 8, b"b" * 8,
                            encr_id=Encr.AES_GCM_16, encr_key_bits=256)
    assert [len(k) for k in as_list(keys)] == [32, 0, 0, 36, 36, 32, 32]


GOOD = dict(ni=b"n" * 32, nr=b"m" * 32, shared_secret=b"g" * 32, spi_i=b"a" * 8, spi_r=b"b" * 8)


@pytest.mark.parametrize("change, exc", [
    (dict(spi_i=b"short"), ValueError),
    (dict(ni=b"n" * 4), ValueError),               # below the 8-octet floor
    (dict(nr=b"m" * 300), ValueError),             # above 256 octets
    (dict(shared_secret=b""), ValueError),
    (dict(ni="text"), TypeError),
    (dict(encr_key_bits=100), InvalidKey),
    (dict(encr_id=3), UnsupportedAlgorithm),       # 3DES: not offered
    (dict(prf_id=1), UnsupportedAlgorithm),       # PRF_HMAC_MD5: not implemented (2, SHA1, is: legacy peers)
    (dict(integ_id=Integ.HMAC_SHA2_256_128), ValueError),   # AEAD plus INTEG
    (dict(encr_id=Encr.AES_CBC, encr_key_bits=128), ValueError),  # CBC without INTEG
    (dict(encr_id=Encr.AES_CBC, encr_key_bits=128, integ_id=99), UnsupportedAlgorithm),
])
def test_initial_bad_input(change, exc):
    args = dict(GOOD, prf_id=Prf.HMAC_SHA2_256, encr_id=Encr.AES_GCM_16, encr_key_bits=256)
    args.update(change)
    prf_id = args.pop("prf_id")
    with pytest.raises(exc):
        ike_keys_initial(prf_id, args.pop("ni"), args.pop("nr"), args.pop("shared_secret"),
                         args.pop("spi_i"), args.pop("spi_r"), **args)


def test_rekey_and_resume_bad_input():
    with pytest.raises(ValueError):
        ike_keys_rekey(Prf.HMAC_SHA2_256, b"", b"g", b"n" * 32, b"m" * 32, b"a" * 8, b"b" * 8,
                       prf_id=Prf.HMAC_SHA2_256, encr_id=Encr.AES_GCM_16, encr_key_bits=128)
    with pytest.raises(UnsupportedAlgorithm):
        ike_keys_rekey(77, b"d" * 32, b"g", b"n" * 32, b"m" * 32, b"a" * 8, b"b" * 8,
                       prf_id=Prf.HMAC_SHA2_256, encr_id=Encr.AES_GCM_16, encr_key_bits=128)
    with pytest.raises(ValueError):
        ike_keys_resume(Prf.HMAC_SHA2_256, b"d" * 32, b"n" * 32, b"m" * 32, b"a" * 9, b"b" * 8,
                        encr_id=Encr.AES_GCM_16, encr_key_bits=128)
    with pytest.raises(ValueError):
        child_keymat(Prf.HMAC_SHA2_256, b"d" * 32, b"n" * 32, b"m" * 32, 0)
    with pytest.raises(ValueError):
        child_keymat(Prf.HMAC_SHA2_256, b"d" * 32, b"n" * 32, b"m" * 32, 16, shared_secret=b"")


def test_schedule_object_equals_the_functions():
    from ikecore.crypto import IkeKeySchedule
    args = (b"n" * 32, b"m" * 32, b"g" * 32, b"a" * 8, b"b" * 8)
    for kw in (dict(encr_id=Encr.AES_GCM_16, encr_key_bits=256),
               dict(encr_id=Encr.AES_CBC, encr_key_bits=128, integ_id=Integ.HMAC_SHA2_384_192)):
        schedule = IkeKeySchedule(Prf.HMAC_SHA2_384, **kw)
        assert schedule.initial(*args) == ike_keys_initial(Prf.HMAC_SHA2_384, *args, **kw)
        old = schedule.initial(*args)
        assert schedule.rekey(Prf.HMAC_SHA2_256, old.sk_d, b"h" * 32, b"x" * 32, b"y" * 32, b"c" * 8, b"d" * 8) == \
            ike_keys_rekey(Prf.HMAC_SHA2_256, old.sk_d, b"h" * 32, b"x" * 32, b"y" * 32, b"c" * 8, b"d" * 8,
                           prf_id=Prf.HMAC_SHA2_384, **kw)
        assert schedule.resume(old.sk_d, b"x" * 32, b"y" * 32, b"c" * 8, b"d" * 8) == \
            ike_keys_resume(Prf.HMAC_SHA2_384, old.sk_d, b"x" * 32, b"y" * 32, b"c" * 8, b"d" * 8, **kw)


@pytest.mark.parametrize("kw, exc", [
    (dict(encr_id=Encr.AES_GCM_16, encr_key_bits=100), InvalidKey),
    (dict(encr_id=3), UnsupportedAlgorithm),
    (dict(encr_id=Encr.AES_GCM_16, encr_key_bits=128, integ_id=Integ.HMAC_SHA2_256_128), ValueError),
])
def test_schedule_object_checks_its_suite_once(kw, exc):
    from ikecore.crypto import IkeKeySchedule
    with pytest.raises(exc):
        IkeKeySchedule(Prf.HMAC_SHA2_256, **kw)
    with pytest.raises(UnsupportedAlgorithm):
        IkeKeySchedule(99, encr_id=Encr.AES_GCM_16, encr_key_bits=128)


def test_scratch_buffer_holds_no_key_afterwards():
    from ikecore.crypto import keyschedule as ks
    keys = ike_keys_initial(Prf.HMAC_SHA2_256, b"n" * 32, b"m" * 32, b"g" * 32, b"a" * 8, b"b" * 8,
                            encr_id=Encr.AES_GCM_16, encr_key_bits=256)
    out, view = ks._tls.bufs[3 * 32 + 2 * 36]
    assert bytes(view) == bytes(len(view)) and keys.sk_d
