"""prf and prf+ (RFC 7296 §2.13) by IANA PRF id, computed in the C core."""
from __future__ import annotations

import threading

from .._binding import as_bytes, check, ffi, lib
from ..errors import LimitExceeded
from .transforms import _PRF_LENGTH, prf_length

PRF_PLUS_MAX_BLOCKS = 255


class _Out(threading.local):
    """One output buffer per thread, large enough for any PRF: a fresh ffi.new
    plus ffi.buffer copy per call cost about a third of a short prf (eight a
    resumption). Per thread because the C call releases the GIL; each call
    copies its result out before returning."""

    def __init__(self) -> None:
        self.buf = ffi.new("char[]", max(_PRF_LENGTH.values()))
        self.buf8 = ffi.cast("uint8_t *", self.buf)    # the same memory, as ikc_prf takes it


_out = _Out()


def prf(prf_id: int, key: bytes, data: bytes) -> bytes:
    """One PRF output. The AES PRFs take keys of any length as RFC 4434/4615 say."""
    # several calls per IKE_AUTH: bytes go straight through
    if type(key) is not bytes:
        key = as_bytes(key, "key")
    if type(data) is not bytes:
        data = as_bytes(data, "data")
    out_len = _PRF_LENGTH.get(prf_id)
    if out_len is None:
        out_len = prf_length(prf_id)        # raises UnsupportedAlgorithm
    out = _out
    rc = lib.ikc_prf(prf_id, key, len(key), data, len(data), out.buf8, out_len)
    if rc:
        check(rc, "prf")
    return ffi.unpack(out.buf, out_len)


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
