"""IKEv2 key schedules, each one C call: initial, rekey/clone, resumption, Child SA.

RFC 7296 §2.13-2.14 (initial), §2.18 and RFC 7791 §5.2 (rekey and clone),
RFC 5723 §5.1 (resumption), RFC 7296 §2.17 (Child SA KEYMAT).
"""
from __future__ import annotations

import struct
import threading
from typing import NamedTuple

from .._binding import as_bytes, check, error_for, ffi, lib
from .transforms import Integ, encr_key_length, integ_key_length, is_aead, prf_length


class IkeKeys(NamedTuple):
    """The seven IKE SA keys (a tuple, cheap to build). repr leaves the keys out
    so they never reach a log."""

    prf_id: int
    sk_d: bytes
    sk_ai: bytes
    sk_ar: bytes
    sk_ei: bytes
    sk_er: bytes
    sk_pi: bytes
    sk_pr: bytes
    skeyseed: bytes | None = None   # only when asked for (tests, KATs)

    def __repr__(self) -> str:
        return f"IkeKeys(prf_id={self.prf_id}, <keys hidden>)"


class ChildKeys(NamedTuple):
    """Child SA keys per direction (i = initiator to responder). AEAD encryption
    keys carry their salt at the end, exactly as ``ikecore.esp.EspSA`` takes them."""

    encr_i: bytes
    integ_i: bytes
    encr_r: bytes
    integ_r: bytes

    def __repr__(self) -> str:
        return "ChildKeys(<keys hidden>)"


class _Layout(NamedTuple):
    """Where each key sits in the prf+ stream of one (PRF, ENCR, INTEG) suite."""

    integ_len: int
    encr_len: int
    prf_len: int
    total: int
    split: struct.Struct          # the stream -> the seven keys, in one C-level call


_tls = threading.local()
_ZEROS = bytes(1024)


def _scratch(total: int):
    """This thread's output buffer of that size and a view of it. The key
    schedule runs once per handshake: reusing a buffer (wiped after each use)
    saves an allocation that costs as much as a tenth of the derivation."""
    bufs = getattr(_tls, "bufs", None)
    if bufs is None:
        bufs = _tls.bufs = {}
    entry = bufs.get(total)
    if entry is None:
        cdata = ffi.new("char[]", total)
        entry = bufs[total] = (cdata, memoryview(ffi.buffer(cdata)))
    return entry


_LAYOUTS: dict[tuple, _Layout] = {}


def _layout(prf_id: int, encr_id: int, encr_key_bits: int | None, integ_id: int) -> _Layout:
    """Validated once per suite, then cached: the key schedule runs per handshake."""
    key = (prf_id, encr_id, encr_key_bits, integ_id)
    layout = _LAYOUTS.get(key)
    if layout is None:
        integ_len, encr_len = _validated_lengths(encr_id, encr_key_bits, integ_id)
        p = prf_length(prf_id)
        offsets = [0]
        for n in (p, integ_len, integ_len, encr_len, encr_len, p, p):
            offsets.append(offsets[-1] + n)
        split = struct.Struct("".join(f"{n}s" for n in (p, integ_len, integ_len, encr_len, encr_len, p, p)))
        layout = _LAYOUTS[key] = _Layout(integ_len, encr_len, p, offsets[-1], split)
    return layout


_LENGTHS: dict[tuple, tuple[int, int]] = {}


def _lengths(encr_id: int, encr_key_bits: int | None, integ_id: int) -> tuple[int, int]:
    """Validated once per ESP suite, then cached: a Child SA's keys are cut per SA."""
    key = (encr_id, encr_key_bits, integ_id)
    lengths = _LENGTHS.get(key)
    if lengths is None:
        lengths = _LENGTHS[key] = _validated_lengths(encr_id, encr_key_bits, integ_id)
    return lengths


def _validated_lengths(encr_id: int, encr_key_bits: int | None, integ_id: int) -> tuple[int, int]:
    encr_len = encr_key_length(encr_id, encr_key_bits)
    if is_aead(encr_id):
        if integ_id != Integ.NONE:
            raise ValueError("an AEAD cipher takes no separate integrity transform (RFC 5282 §8)")
        return 0, encr_len
    if integ_id == Integ.NONE:
        raise ValueError("a non-AEAD cipher needs an integrity transform")
    return integ_key_length(integ_id), encr_len


def _spi(value: bytes, name: str) -> bytes:
    if type(value) is not bytes or len(value) != 8:
        value = as_bytes(value, name)
        if len(value) != 8:
            raise ValueError(f"{name} must be 8 octets")
    return value


def _bytes_args(**values) -> tuple:
    """Slow path of the argument check: convert bytes-likes, reject the rest."""
    return tuple(as_bytes(v, name) for name, v in values.items())


def _seed_buffer(prf_id: int):
    return ffi.new("char[]", prf_length(prf_id))


class IkeKeySchedule:
    """The IKE key schedule of one negotiated suite, checked once when built
    (like a pyca cipher object); each derivation is one C call.

    ``initial`` (RFC 7296 §2.14), ``rekey`` (§2.18; also a clone, RFC 7791) and
    ``resume`` (RFC 5723 §5.1) give the seven keys of an IKE SA of this suite."""

    __slots__ = ("prf_id", "encr_id", "encr_key_bits", "integ_id", "_layout")

    def __init__(self, prf_id: int, *, encr_id: int, encr_key_bits: int | None = None,
                 integ_id: int = Integ.NONE) -> None:
        self._layout = _layout(prf_id, encr_id, encr_key_bits, integ_id)
        self.prf_id, self.encr_id, self.encr_key_bits, self.integ_id = prf_id, encr_id, encr_key_bits, integ_id

    def _finish(self, rc: int, what: str, out, view, seed) -> IkeKeys:
        if rc:
            ffi.memmove(out, _ZEROS, self._layout.total)
            raise error_for(rc, what)
        keys = self._layout.split.unpack_from(view)
        ffi.memmove(out, _ZEROS, self._layout.total)     # the scratch buffer holds no key afterwards
        return tuple.__new__(IkeKeys, (self.prf_id, *keys,
                                       None if seed is None else ffi.unpack(seed, len(seed))))

    def _prepare(self, spi_i, spi_r, seed_prf: int, include_skeyseed: bool):
        """The SPIs checked (plain 8-octet bytes pass at once), this thread's output
        buffer for the key set, and SKEYSEED's buffer when asked for."""
        if type(spi_i) is not bytes or type(spi_r) is not bytes or len(spi_i) != 8 or len(spi_r) != 8:
            spi_i, spi_r = _spi(spi_i, "spi_i"), _spi(spi_r, "spi_r")
        total = self._layout.total
        bufs = getattr(_tls, "bufs", None)
        out, view = bufs[total] if bufs is not None and total in bufs else _scratch(total)
        return spi_i, spi_r, out, view, (_seed_buffer(seed_prf) if include_skeyseed else None)

    def initial(self, ni: bytes, nr: bytes, shared_secret: bytes, spi_i: bytes, spi_r: bytes, *,
                include_skeyseed: bool = False) -> IkeKeys:
        """SKEYSEED = prf(Ni | Nr, g^ir) and its expansion into the seven keys."""
        integ_len, encr_len, _, total, _ = self._layout
        gir = shared_secret
        # once per handshake: plain bytes take the cheap path through the checks
        if type(ni) is not bytes or type(nr) is not bytes or type(gir) is not bytes:
            ni, nr, gir = _bytes_args(ni=ni, nr=nr, shared_secret=gir)
        spi_i, spi_r, out, view, seed = self._prepare(spi_i, spi_r, self.prf_id, include_skeyseed)
        rc = lib.ikc_ike_keys_initial(self.prf_id, ni, len(ni), nr, len(nr), gir, len(gir), spi_i, spi_r,
                                      integ_len, encr_len, out, total,
                                      ffi.NULL if seed is None else seed, 0 if seed is None else len(seed))
        return self._finish(rc, "initial key schedule", out, view, seed)

    def rekey(self, old_prf_id: int, sk_d_old: bytes, shared_secret: bytes, ni: bytes, nr: bytes,
              spi_i: bytes, spi_r: bytes, *, include_skeyseed: bool = False) -> IkeKeys:
        """IKE SA rekey or clone: SKEYSEED = prf_old(SK_d_old, g^ir_new | Ni | Nr),
        expanded with this suite's PRF over Ni | Nr | SPIi_new | SPIr_new."""
        integ_len, encr_len, _, total, _ = self._layout
        gir = shared_secret
        # once per rekey and clone: plain bytes take the cheap path through the checks
        if type(sk_d_old) is not bytes or type(gir) is not bytes or type(ni) is not bytes or type(nr) is not bytes:
            sk_d_old, gir, ni, nr = _bytes_args(sk_d_old=sk_d_old, shared_secret=gir, ni=ni, nr=nr)
        spi_i, spi_r, out, view, seed = self._prepare(spi_i, spi_r, old_prf_id, include_skeyseed)
        rc = lib.ikc_ike_keys_rekey(old_prf_id, sk_d_old, len(sk_d_old), self.prf_id, gir, len(gir),
                                    ni, len(ni), nr, len(nr), spi_i, spi_r, integ_len, encr_len, out, total,
                                    ffi.NULL if seed is None else seed, 0 if seed is None else len(seed))
        return self._finish(rc, "rekey key schedule", out, view, seed)

    def resume(self, sk_d_old: bytes, ni: bytes, nr: bytes, spi_i: bytes, spi_r: bytes, *,
               include_skeyseed: bool = False) -> IkeKeys:
        """Session resumption: SKEYSEED = prf(SK_d_old, "Resumption" | Ni | Nr);
        the suite is the resumed SA's (from the ticket)."""
        integ_len, encr_len, _, total, _ = self._layout
        # once per resumption (both ends): plain bytes take the cheap path through the checks
        if type(sk_d_old) is not bytes or type(ni) is not bytes or type(nr) is not bytes:
            sk_d_old, ni, nr = _bytes_args(sk_d_old=sk_d_old, ni=ni, nr=nr)
        spi_i, spi_r, out, view, seed = self._prepare(spi_i, spi_r, self.prf_id, include_skeyseed)
        rc = lib.ikc_ike_keys_resume(self.prf_id, sk_d_old, len(sk_d_old), ni, len(ni), nr, len(nr),
                                     spi_i, spi_r, integ_len, encr_len, out, total,
                                     ffi.NULL if seed is None else seed, 0 if seed is None else len(seed))
        return self._finish(rc, "resumption key schedule", out, view, seed)


_SCHEDULES: dict[tuple, IkeKeySchedule] = {}


def key_schedule(prf_id: int, *, encr_id: int, encr_key_bits: int | None = None,
                 integ_id: int = Integ.NONE) -> IkeKeySchedule:
    """The (cached) schedule of a suite."""
    key = (prf_id, encr_id, encr_key_bits, integ_id)
    schedule = _SCHEDULES.get(key)
    if schedule is None:
        schedule = _SCHEDULES[key] = IkeKeySchedule(prf_id, encr_id=encr_id, encr_key_bits=encr_key_bits,
                                                     integ_id=integ_id)
    return schedule


def ike_keys_initial(prf_id: int, ni: bytes, nr: bytes, shared_secret: bytes, spi_i: bytes, spi_r: bytes,
                     *, encr_id: int, encr_key_bits: int | None = None, integ_id: int = Integ.NONE,
                     include_skeyseed: bool = False) -> IkeKeys:
    """``IkeKeySchedule.initial`` of the suite, in one call."""
    return key_schedule(prf_id, encr_id=encr_id, encr_key_bits=encr_key_bits, integ_id=integ_id).initial(
        ni, nr, shared_secret, spi_i, spi_r, include_skeyseed=include_skeyseed)


def ike_keys_rekey(old_prf_id: int, sk_d_old: bytes, shared_secret: bytes, ni: bytes, nr: bytes,
                   spi_i: bytes, spi_r: bytes, *, prf_id: int, encr_id: int,
                   encr_key_bits: int | None = None, integ_id: int = Integ.NONE,
                   include_skeyseed: bool = False) -> IkeKeys:
    """``IkeKeySchedule.rekey`` of the new SA's suite, in one call."""
    return key_schedule(prf_id, encr_id=encr_id, encr_key_bits=encr_key_bits, integ_id=integ_id).rekey(
        old_prf_id, sk_d_old, shared_secret, ni, nr, spi_i, spi_r, include_skeyseed=include_skeyseed)


def ike_keys_resume(prf_id: int, sk_d_old: bytes, ni: bytes, nr: bytes, spi_i: bytes, spi_r: bytes,
                    *, encr_id: int, encr_key_bits: int | None = None, integ_id: int = Integ.NONE,
                    include_skeyseed: bool = False) -> IkeKeys:
    """``IkeKeySchedule.resume`` of the resumed SA's suite, in one call."""
    return key_schedule(prf_id, encr_id=encr_id, encr_key_bits=encr_key_bits, integ_id=integ_id).resume(
        sk_d_old, ni, nr, spi_i, spi_r, include_skeyseed=include_skeyseed)


def child_keymat(prf_id: int, sk_d: bytes, ni: bytes, nr: bytes, length: int,
                 shared_secret: bytes | None = None) -> bytes:
    """KEYMAT = prf+(SK_d, [g^ir_new |] Ni | Nr) (RFC 7296 §2.17)."""
    if type(sk_d) is not bytes or type(ni) is not bytes or type(nr) is not bytes:
        sk_d, ni, nr = as_bytes(sk_d, "sk_d"), as_bytes(ni, "ni"), as_bytes(nr, "nr")
    if shared_secret is None:
        gir = b""
    elif type(shared_secret) is bytes:
        gir = shared_secret
    else:
        gir = as_bytes(shared_secret, "shared_secret")
    if shared_secret is not None and not gir:
        raise ValueError("shared_secret must not be empty when given")
    if not isinstance(length, int) or length <= 0:
        raise ValueError("length must be a positive int")
    out = ffi.new("uint8_t[]", length)
    check(lib.ikc_child_keymat(prf_id, sk_d, len(sk_d), gir or ffi.NULL, len(gir),
                               ni, len(ni), nr, len(nr), out, length), "Child SA KEYMAT")
    return ffi.buffer(out, length)[:]


def child_sa_keys(prf_id: int, sk_d: bytes, ni: bytes, nr: bytes, *, encr_id: int,
                  encr_key_bits: int | None = None, integ_id: int = Integ.NONE,
                  shared_secret: bytes | None = None) -> ChildKeys:
    """KEYMAT cut per RFC 7296 §2.17: initiator-to-responder first, encryption
    key (with salt) before integrity key in each direction."""
    integ_len, encr_len = _lengths(encr_id, encr_key_bits, integ_id)
    per_dir = encr_len + integ_len
    km = child_keymat(prf_id, sk_d, ni, nr, 2 * per_dir, shared_secret)
    return ChildKeys(km[:encr_len], km[encr_len:per_dir],
                     km[per_dir:per_dir + encr_len], km[per_dir + encr_len:])
