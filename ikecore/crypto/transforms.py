"""IANA IKEv2 transform ids (RFC 7296 §3.3.2) and the key lengths they imply."""
from __future__ import annotations

from enum import IntEnum

from ..errors import InvalidKey, UnsupportedAlgorithm


class TransformType(IntEnum):
    ENCR = 1
    PRF = 2
    INTEG = 3
    DH = 4   # "Key Exchange Method" in RFC 9370
    ESN = 5


class Encr(IntEnum):
    AES_CBC = 12
    AES_GCM_8 = 18
    AES_GCM_12 = 19
    AES_GCM_16 = 20
    CHACHA20_POLY1305 = 28


class Prf(IntEnum):
    HMAC_SHA1 = 2           # legacy peers only (RFC 8247 §2.3); offered only when configured
    AES128_XCBC = 4
    HMAC_SHA2_256 = 5
    HMAC_SHA2_384 = 6
    HMAC_SHA2_512 = 7
    AES128_CMAC = 8


class Integ(IntEnum):
    NONE = 0
    HMAC_SHA1_96 = 2        # RFC 2404; legacy peers only (RFC 8247 §2.4)
    HMAC_SHA2_256_128 = 12
    HMAC_SHA2_384_192 = 13
    HMAC_SHA2_512_256 = 14


AEAD_ENCR = frozenset({Encr.AES_GCM_8, Encr.AES_GCM_12, Encr.AES_GCM_16, Encr.CHACHA20_POLY1305})

_PRF_LENGTH = {Prf.HMAC_SHA1: 20, Prf.AES128_XCBC: 16, Prf.HMAC_SHA2_256: 32, Prf.HMAC_SHA2_384: 48,
               Prf.HMAC_SHA2_512: 64, Prf.AES128_CMAC: 16}
_INTEG = {  # id: (key length, ICV length), RFC 4868 §2.6
    Integ.NONE: (0, 0),
    Integ.HMAC_SHA1_96: (20, 12),              # RFC 2404 §3
    Integ.HMAC_SHA2_256_128: (32, 16),
    Integ.HMAC_SHA2_384_192: (48, 24),
    Integ.HMAC_SHA2_512_256: (64, 32),
}
_AES_KEY_BITS = (128, 192, 256)


def is_aead(encr_id: int) -> bool:
    return encr_id in AEAD_ENCR


def prf_length(prf_id: int) -> int:
    """Output length = preferred key length (SK_d, SK_pi, SK_pr) of a PRF."""
    try:
        return _PRF_LENGTH[prf_id]
    except KeyError:
        raise UnsupportedAlgorithm(f"unsupported PRF transform id {prf_id}") from None


def integ_key_length(integ_id: int) -> int:
    try:
        return _INTEG[integ_id][0]
    except KeyError:
        raise UnsupportedAlgorithm(f"unsupported INTEG transform id {integ_id}") from None


def integ_icv_length(integ_id: int) -> int:
    try:
        return _INTEG[integ_id][1]
    except KeyError:
        raise UnsupportedAlgorithm(f"unsupported INTEG transform id {integ_id}") from None


def encr_key_length(encr_id: int, key_bits: int | None = None) -> int:
    """Keying material an ENCR transform takes: AEADs include their 4-octet salt
    (RFC 5282 §7.1, RFC 4106 §8.1, RFC 7634 §3)."""
    if encr_id == Encr.CHACHA20_POLY1305:
        if key_bits not in (None, 256):
            raise InvalidKey("ChaCha20-Poly1305 takes no key length other than 256 bits")
        return 36
    if encr_id in (Encr.AES_CBC, Encr.AES_GCM_8, Encr.AES_GCM_12, Encr.AES_GCM_16):
        if key_bits not in _AES_KEY_BITS:
            raise InvalidKey(f"AES needs a key length of 128, 192 or 256 bits, not {key_bits}")
        return key_bits // 8 + (4 if encr_id in AEAD_ENCR else 0)
    raise UnsupportedAlgorithm(f"unsupported ENCR transform id {encr_id}")
