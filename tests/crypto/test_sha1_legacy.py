"""PRF_HMAC_SHA1 and AUTH_HMAC_SHA1_96 for legacy peers (RFC 8247 §2.3/§2.4
still require them): the C core against RFC 2202 / RFC 2404 vectors and the
stdlib; negotiated only when configured."""
import hashlib
import hmac

import pytest

from ikecore.crypto import Encr, Integ, Prf, SkCipher, integ_icv_length, integ_key_length, prf, prf_length, prf_plus
from ikecore.errors import InvalidTag


def test_rfc2202_prf_hmac_sha1(vectors):
    data = vectors("rfc2202_rfc2404_hmac_sha1.json")
    for case in data["cases"]:
        out = prf(Prf.HMAC_SHA1, bytes.fromhex(case["key"]), bytes.fromhex(case["data"]))
        assert out.hex() == case["hmac_sha1"], case["case"]
    assert len(data["cases"]) == 7 and prf_length(Prf.HMAC_SHA1) == 20


def test_prf_plus_sha1_against_stdlib():
    key, seed = bytes(range(20)), b"Ni | Nr | SPIi | SPIr" * 3
    out, t, n = b"", b"", 1
    while len(out) < 200:
        t = hmac.new(key, t + seed + bytes([n]), hashlib.sha1).digest()
        out, n = out + t, n + 1
    assert prf_plus(Prf.HMAC_SHA1, key, seed, 200) == out[:200]


def test_rfc2404_hmac_sha1_96_in_the_sk_payload(vectors):
    """AES-CBC + HMAC-SHA1-96: the ICV is the first 12 octets of HMAC-SHA1 over
    the associated data, IV and ciphertext (RFC 7296 §3.14, RFC 2404 §2)."""
    assert (integ_key_length(Integ.HMAC_SHA1_96), integ_icv_length(Integ.HMAC_SHA1_96)) == (20, 12)
    for case in vectors("rfc2202_rfc2404_hmac_sha1.json")["cases"]:
        key = bytes.fromhex(case["key"])
        if len(key) != 20:
            continue                        # the transform's key is exactly 20 octets (RFC 2404 §3)
        sk = SkCipher(Encr.AES_CBC, bytes(16), Integ.HMAC_SHA1_96, key)
        aad = b"\x00" * 28
        sealed = sk.seal(aad, b"inner payloads", iv=bytes(16))
        body, icv = sealed[:-12], sealed[-12:]
        assert icv == hmac.new(key, aad + body, hashlib.sha1).digest()[:12]
        assert sk.open(aad, sealed) == b"inner payloads"
        with pytest.raises(InvalidTag):
            sk.open(aad, sealed[:-1] + bytes([sealed[-1] ^ 1]))
    # the 96-bit values of RFC 2404 are the truncated RFC 2202 digests
    for case in vectors("rfc2202_rfc2404_hmac_sha1.json")["cases"]:
        assert case["hmac_sha1"].startswith(case["hmac_sha1_96"]) and len(case["hmac_sha1_96"]) == 24


def test_sha1_is_offered_only_when_configured():
    from ikecore.protocol.config import EspProposal, IkeProposal, psk_config
    from ikecore.protocol.negotiation import ike_sa_payload
    default = psk_config("a", "b", b"k" * 16)
    ids = {(t.type, t.id) for p in ike_sa_payload(default.proposals).proposals for t in p.transforms}
    assert (2, Prf.HMAC_SHA1) not in ids and (3, Integ.HMAC_SHA1_96) not in ids
    legacy = IkeProposal.parse("aes128-sha1-modp2048")
    assert legacy.prf == (Prf.HMAC_SHA1,) and legacy.integ == (Integ.HMAC_SHA1_96,)
    assert EspProposal.parse("aes128-sha1").integ == (Integ.HMAC_SHA1_96,)
