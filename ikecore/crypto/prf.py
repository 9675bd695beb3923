"""prf and prf+ (RFC 7296 §2.13) by IANA PRF id, computed in the C core."""
from __future__ import annotations

from .._binding import as_bytes, check, ffi, lib
from ..errors import LimitExceeded
from .transforms import prf_length

PRF_PLUS_MAX_BLOCKS = 255


def prf(prf_id: int, key: bytes, data: bytes) -> bytes:
    """One PRF output. The AES PRFs take keys of any length as RFC 4434/4615 say."""
    # several calls per IKE_AUTH: bytes go straight through
    if type(key) is not bytes:
        key = as_bytes(key, "key")
    if type(data) is not bytes:
        data = as_bytes(data, "data")
    out_len = prf_length(prf_id)
    out = ffi.new("uint8_t[]", out_len)
    rc = lib.ikc_prf(prf_id, key, len(key), data, len(data), out, out_len)
    if rc:
        check(rc, "prf")
    return ffi.buffer(out, out_len)[:]


def prf_plus(prf_id: int, key: bytes, seed: bytes, length: int) -> bytes:
    """``length`` octets of prf+(key, seed); at most 255 PRF blocks."""
    key = as_bytes(key, "key")
    seed = as_bytes(seed, "seed")
    if not isinstance(length, int) or isinstance(length, bool):
        raise TypeError("length must be an int")
    if length < 0:
        raise ValueError("length must not be negative")
    if length > PRF_PLUS_MAX_BLOCKS * prf_length(prf_id):
        raise LimitExceeded(f"prf+ is defined for at most {PRF_PLUS_MAX_BLOCKS} blocks")
    out = ffi.new("uint8_t[]", max(length, 1))
    check(lib.ikc_prf_plus(prf_id, key, len(key), seed, len(seed), out, length), "prf+")
    return ffi.buffer(out, length)[:]
