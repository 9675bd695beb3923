"""NIST SP 800-135 §7.1 IKEv2 KDF known answers (tests/vectors/nist_cavp_ikev2_kdf.json
names the transcription each case comes from) through the one-shot key schedules."""
import json
from pathlib import Path

import pytest

from ikecore.crypto import Encr, Integ, child_keymat, ike_keys_initial, ike_keys_rekey, prf_plus

PRF_BY_HASH = {"sha256": 5, "sha384": 6, "sha512": 7}
_DATA = json.loads((Path(__file__).parents[1] / "vectors" / "nist_cavp_ikev2_kdf.json").read_text())
CASES = [c for c in _DATA["cases"] if c["hash"] in PRF_BY_HASH]
FIELDS = ("sk_d", "sk_ai", "sk_ar", "sk_ei", "sk_er", "sk_pi", "sk_pr")


def h(case, name):
    return bytes.fromhex(case[name])


def test_every_hash_is_covered():
    assert {c["hash"] for c in CASES} == set(PRF_BY_HASH)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_skeyseed_and_dkm(case):
    prf_id = PRF_BY_HASH[case["hash"]]
    # the longest key layout we offer, so the prf+ stream covers the published DKM
    keys = ike_keys_initial(prf_id, h(case, "Ni"), h(case, "Nr"), h(case, "gir"), h(case, "SPIi"),
                            h(case, "SPIr"), encr_id=Encr.AES_CBC, encr_key_bits=256,
                            integ_id=Integ.HMAC_SHA2_512_256, include_skeyseed=True)
    assert keys.skeyseed == h(case, "SKEYSEED")
    stream = b"".join(getattr(keys, f) for f in FIELDS)
    n = min(len(stream), case["dkm_len_bytes"])
    assert stream[:n] == h(case, "DKM")[:n]
    # and the whole published DKM, which can be longer than any IKE key layout
    seed = h(case, "Ni") + h(case, "Nr") + h(case, "SPIi") + h(case, "SPIr")
    assert prf_plus(prf_id, keys.skeyseed, seed, case["dkm_len_bytes"]) == h(case, "DKM")


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_rekey_skeyseed(case):
    prf_id = PRF_BY_HASH[case["hash"]]
    keys = ike_keys_rekey(prf_id, h(case, "SK_d"), h(case, "gir_new"), h(case, "Ni"), h(case, "Nr"),
                          b"\x01" * 8, b"\x02" * 8, prf_id=prf_id, encr_id=Encr.AES_GCM_16,
                          encr_key_bits=128, include_skeyseed=True)
    assert keys.skeyseed == h(case, "SKEYSEED_rekey")


CHILD = [c for c in CASES if c.get("has_child_dkms")]


@pytest.mark.parametrize("case", CHILD, ids=[c["name"] for c in CHILD])
def test_child_dkm_with_and_without_dh(case):
    prf_id = PRF_BY_HASH[case["hash"]]
    sk_d, ni, nr = h(case, "SK_d"), h(case, "Ni"), h(case, "Nr")
    assert child_keymat(prf_id, sk_d, ni, nr, len(h(case, "DKM_child"))) == h(case, "DKM_child")
    assert child_keymat(prf_id, sk_d, ni, nr, len(h(case, "DKM_child_dh")),
                        shared_secret=h(case, "gir_new")) == h(case, "DKM_child_dh")


def test_child_vectors_cover_sha256_and_sha512():
    assert {c["hash"] for c in CHILD} >= {"sha256", "sha512"}
