"""PRFs and prf+ against published vectors and an independent stdlib reference."""
import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.cmac import CMAC
from cryptography.hazmat.primitives.ciphers.algorithms import AES
from hypothesis import given, settings
from hypothesis import strategies as st

from ikecore.crypto import Prf, prf, prf_plus
from ikecore.errors import IkeError, LimitExceeded, UnsupportedAlgorithm

HMAC_PRFS = {Prf.HMAC_SHA2_256: hashlib.sha256, Prf.HMAC_SHA2_384: hashlib.sha384,
             Prf.HMAC_SHA2_512: hashlib.sha512}


def reference_prf_plus(prf_fn, key, seed, length):
    """RFC 7296 §2.13 written out longhand."""
    out, t, n = b"", b"", 1
    while len(out) < length:
        t = prf_fn(key, t + seed + bytes([n]))
        out += t
        n += 1
    return out[:length]


def test_rfc4868_prf_vectors(vectors):
    data = vectors("rfc4868_hmac_sha2_prf_auth.json")
    names = {"PRF-HMAC-SHA-256": Prf.HMAC_SHA2_256, "PRF-HMAC-SHA-384": Prf.HMAC_SHA2_384,
             "PRF-HMAC-SHA-512": Prf.HMAC_SHA2_512}
    checked = 0
    for case in data["cases"]:
        for label, prf_id in names.items():
            if label in case and case["name"].startswith("PRF"):
                assert prf(prf_id, bytes.fromhex(case["key"]), bytes.fromhex(case["data"])).hex() == case[label]
                checked += 1
    assert checked == 18


def test_rfc4231_hmac_vectors(vectors):
    data = vectors("rfc4231_hmac_sha2.json")
    ids = {"hmac_sha256": Prf.HMAC_SHA2_256, "hmac_sha384": Prf.HMAC_SHA2_384, "hmac_sha512": Prf.HMAC_SHA2_512}
    checked = 0
    for case in data["cases"]:
        for field, prf_id in ids.items():
            expected = case[field]
            got = prf(prf_id, bytes.fromhex(case["key"]), bytes.fromhex(case["data"])).hex()
            assert got[:len(expected)] == expected  # case 5 is published truncated to 128 bits
            checked += 1
    assert checked == 21


@pytest.mark.parametrize("name, prf_id", [("rfc4434_aes_xcbc_prf128.json", Prf.AES128_XCBC),
                                          ("rfc4615_aes_cmac_prf128.json", Prf.AES128_CMAC)])
def test_aes_prf_vectors(vectors, name, prf_id):
    cases = vectors(name)["cases"]
    assert {c["key_len"] for c in cases} >= {10, 16}   # both key-handling rules exercised
    for case in cases:
        assert prf(prf_id, bytes.fromhex(case["key"]), bytes.fromhex(case["message"])).hex() == case["prf_output"]


def test_rfc3566_xcbc_mac_vectors(vectors):
    for case in vectors("rfc3566_aes_xcbc_mac96.json")["cases"]:
        # case 7's message is described, not printed: 1000 zero octets
        message = bytes.fromhex(case["message"]) if case["message"] is not None else bytes(case["message_len"])
        out = prf(Prf.AES128_XCBC, bytes.fromhex(case["key"]), message)
        assert out.hex() == case["aes_xcbc_mac"]


@settings(max_examples=300, deadline=None)
@given(prf_id=st.sampled_from(sorted(HMAC_PRFS)), key=st.binary(max_size=200), data=st.binary(max_size=600))
def test_hmac_prfs_equal_stdlib(prf_id, key, data):
    assert prf(prf_id, key, data) == hmac.new(key, data, HMAC_PRFS[prf_id]).digest()


def _cmac(key, data):
    c = CMAC(AES(key))
    c.update(data)
    return c.finalize()


@settings(max_examples=200, deadline=None)
@given(key=st.binary(max_size=40), data=st.binary(max_size=300))
def test_cmac_prf_equals_cryptography(key, data):
    # RFC 4615 §3: any key that is not 16 octets is first CMAC'd under the zero key
    k = key if len(key) == 16 else _cmac(bytes(16), key)
    assert prf(Prf.AES128_CMAC, key, data) == _cmac(k, data)


@settings(max_examples=200, deadline=None)
@given(prf_id=st.sampled_from(sorted(HMAC_PRFS)), key=st.binary(min_size=1, max_size=80),
       seed=st.binary(max_size=300), length=st.integers(0, 1200))
def test_prf_plus_equals_reference(prf_id, key, seed, length):
    ref = reference_prf_plus(lambda k, d: hmac.new(k, d, HMAC_PRFS[prf_id]).digest(), key, seed, length)
    assert prf_plus(prf_id, key, seed, length) == ref


def test_prf_plus_aes_prfs_equal_reference():
    key, seed = bytes(range(16)), b"seed" * 20
    for prf_id in (Prf.AES128_XCBC, Prf.AES128_CMAC):
        ref = reference_prf_plus(lambda k, d: prf(prf_id, k, d), key, seed, 16 * 255)
        assert prf_plus(prf_id, key, seed, 16 * 255) == ref


def test_prf_plus_block_limit():
    assert len(prf_plus(Prf.HMAC_SHA2_256, b"k", b"s", 255 * 32)) == 255 * 32
    with pytest.raises(LimitExceeded):
        prf_plus(Prf.HMAC_SHA2_256, b"k", b"s", 255 * 32 + 1)
    with pytest.raises(LimitExceeded):
        prf_plus(Prf.AES128_CMAC, b"k", b"s", 255 * 16 + 1)


@pytest.mark.parametrize("call", [
    lambda: prf(1, b"k", b"d"),             # PRF_HMAC_MD5: not implemented
    lambda: prf(99, b"k", b"d"),
    lambda: prf_plus(0, b"k", b"d", 10),
])
def test_unknown_prf_ids(call):
    with pytest.raises(UnsupportedAlgorithm):
        call()


@pytest.mark.parametrize("call, exc", [
    (lambda: prf(Prf.HMAC_SHA2_256, "text key", b"d"), TypeError),
    (lambda: prf(Prf.HMAC_SHA2_256, b"k", None), TypeError),
    (lambda: prf_plus(Prf.HMAC_SHA2_256, b"k", b"s", -1), ValueError),
    (lambda: prf_plus(Prf.HMAC_SHA2_256, b"k", b"s", 3.0), TypeError),
])
def test_prf_misuse(call, exc):
    with pytest.raises(exc):
        call()


def test_errors_share_the_base_class():
    with pytest.raises(IkeError):
        prf_plus(Prf.HMAC_SHA2_256, b"k", b"s", 10**6)


def test_results_are_copies_and_threads_do_not_share_the_output_buffer():
    # prf writes into a per-thread buffer and the C call releases the GIL: results
    # must be independent copies, and threads interleaving calls must each get theirs
    import threading
    first = prf(Prf.HMAC_SHA2_512, b"k1", b"d1")
    second = prf(Prf.HMAC_SHA2_256, b"k2", b"d2")
    assert first == hmac.new(b"k1", b"d1", hashlib.sha512).digest()
    assert second == hmac.new(b"k2", b"d2", hashlib.sha256).digest()
    wrong = []

    def worker(n: int) -> None:
        key = n.to_bytes(2, "big") * 16
        for i in range(300):
            data = i.to_bytes(4, "big") * 25
            prf_id, algo = (Prf.HMAC_SHA2_512, hashlib.sha512) if (n + i) % 2 else (Prf.HMAC_SHA2_256, hashlib.sha256)
            if prf(prf_id, key, data) != hmac.new(key, data, algo).digest():
                wrong.append((n, i))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []
