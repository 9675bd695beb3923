"""IKEv2 key schedules, each one C call: initial, rekey/clone, resumption, Child SA.

RFC 7296 §2.13-2.14 (initial), §2.18 and RFC 7791 §5.2 (rekey and clone),
RFC 5723 §5.1 (resumption), RFC 7296 §2.17 (Child SA KEYMAT).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .._binding import as_bytes, check, ffi, lib
from .transforms import Integ, encr_key_length, integ_key_length, is_aead, prf_length


@dataclass(frozen=True)
class IkeKeys:
    """The seven IKE SA keys. Key fields are left out of repr so they never reach a log."""

    prf_id: int
    sk_d: bytes = field(repr=False)
    sk_ai: bytes = field(repr=False)
    sk_ar: bytes = field(repr=False)
    sk_ei: bytes = field(repr=False)
    sk_er: bytes = field(repr=False)
    sk_pi: bytes = field(repr=False)
    sk_pr: bytes = field(repr=False)
    skeyseed: bytes | None = field(default=None, repr=False)  # only when asked for (tests, KATs)


@dataclass(frozen=True)
class ChildKeys:
    """Child SA keys per direction (i = initiator to responder). AEAD encryption
    keys carry their salt at the end, exactly as ``ikecore.esp.EspSA`` takes them."""

    encr_i: bytes = field(repr=False)
    integ_i: bytes = field(repr=False)
    encr_r: bytes = field(repr=False)
    integ_r: bytes = field(repr=False)


def _lengths(encr_id: int, encr_key_bits: int | None, integ_id: int) -> tuple[int, int]:
    encr_len = encr_key_length(encr_id, encr_key_bits)
    if is_aead(encr_id):
        if integ_id != Integ.NONE:
            raise ValueError("an AEAD cipher takes no separate integrity transform (RFC 5282 §8)")
        return 0, encr_len
    if integ_id == Integ.NONE:
        raise ValueError("a non-AEAD cipher needs an integrity transform")
    return integ_key_length(integ_id), encr_len


def _spi(value: bytes, name: str) -> bytes:
    value = as_bytes(value, name)
    if len(value) != 8:
        raise ValueError(f"{name} must be 8 octets")
    return value


def _split(prf_id: int, buf, total: int, integ_len: int, encr_len: int, skeyseed) -> IkeKeys:
    raw = ffi.buffer(buf, total)[:]
    p = prf_length(prf_id)
    cuts = [p, integ_len, integ_len, encr_len, encr_len, p, p]
    parts, at = [], 0
    for n in cuts:
        parts.append(raw[at:at + n])
        at += n
    seed = ffi.buffer(skeyseed, len(skeyseed))[:] if skeyseed is not None else None
    return IkeKeys(prf_id, *parts, skeyseed=seed)


def _skeyseed_buf(prf_id: int, wanted: bool):
    if not wanted:
        return None, ffi.NULL, 0
    buf = ffi.new("uint8_t[]", prf_length(prf_id))
    return buf, buf, len(buf)


def ike_keys_initial(prf_id: int, ni: bytes, nr: bytes, shared_secret: bytes,
                     spi_i: bytes, spi_r: bytes, *, encr_id: int, encr_key_bits: int | None = None,
                     integ_id: int = Integ.NONE, include_skeyseed: bool = False) -> IkeKeys:
    """SKEYSEED = prf(Ni | Nr, g^ir) and its expansion into the seven keys."""
    ni, nr = as_bytes(ni, "ni"), as_bytes(nr, "nr")
    gir = as_bytes(shared_secret, "shared_secret")
    spi_i, spi_r = _spi(spi_i, "spi_i"), _spi(spi_r, "spi_r")
    integ_len, encr_len = _lengths(encr_id, encr_key_bits, integ_id)
    total = 3 * prf_length(prf_id) + 2 * integ_len + 2 * encr_len
    out = ffi.new("uint8_t[]", total)
    seed, seed_ptr, seed_len = _skeyseed_buf(prf_id, include_skeyseed)
    check(lib.ikc_ike_keys_initial(prf_id, ni, len(ni), nr, len(nr), gir, len(gir), spi_i, spi_r,
                                   integ_len, encr_len, out, total, seed_ptr, seed_len),
          "initial key schedule")
    return _split(prf_id, out, total, integ_len, encr_len, seed)


def ike_keys_rekey(old_prf_id: int, sk_d_old: bytes, shared_secret: bytes, ni: bytes, nr: bytes,
                   spi_i: bytes, spi_r: bytes, *, prf_id: int, encr_id: int,
                   encr_key_bits: int | None = None, integ_id: int = Integ.NONE,
                   include_skeyseed: bool = False) -> IkeKeys:
    """IKE SA rekey and clone: SKEYSEED = prf_old(SK_d_old, g^ir_new | Ni | Nr),
    expanded with the new SA's PRF over Ni | Nr | SPIi_new | SPIr_new."""
    sk_d_old = as_bytes(sk_d_old, "sk_d_old")
    gir = as_bytes(shared_secret, "shared_secret")
    ni, nr = as_bytes(ni, "ni"), as_bytes(nr, "nr")
    spi_i, spi_r = _spi(spi_i, "spi_i"), _spi(spi_r, "spi_r")
    integ_len, encr_len = _lengths(encr_id, encr_key_bits, integ_id)
    total = 3 * prf_length(prf_id) + 2 * integ_len + 2 * encr_len
    out = ffi.new("uint8_t[]", total)
    seed, seed_ptr, seed_len = _skeyseed_buf(old_prf_id, include_skeyseed)
    check(lib.ikc_ike_keys_rekey(old_prf_id, sk_d_old, len(sk_d_old), prf_id, gir, len(gir),
                                 ni, len(ni), nr, len(nr), spi_i, spi_r, integ_len, encr_len,
                                 out, total, seed_ptr, seed_len), "rekey key schedule")
    return _split(prf_id, out, total, integ_len, encr_len, seed)


def ike_keys_resume(prf_id: int, sk_d_old: bytes, ni: bytes, nr: bytes, spi_i: bytes, spi_r: bytes,
                    *, encr_id: int, encr_key_bits: int | None = None, integ_id: int = Integ.NONE,
                    include_skeyseed: bool = False) -> IkeKeys:
    """Session resumption: SKEYSEED = prf(SK_d_old, "Resumption" | Ni | Nr)."""
    sk_d_old = as_bytes(sk_d_old, "sk_d_old")
    ni, nr = as_bytes(ni, "ni"), as_bytes(nr, "nr")
    spi_i, spi_r = _spi(spi_i, "spi_i"), _spi(spi_r, "spi_r")
    integ_len, encr_len = _lengths(encr_id, encr_key_bits, integ_id)
    total = 3 * prf_length(prf_id) + 2 * integ_len + 2 * encr_len
    out = ffi.new("uint8_t[]", total)
    seed, seed_ptr, seed_len = _skeyseed_buf(prf_id, include_skeyseed)
    check(lib.ikc_ike_keys_resume(prf_id, sk_d_old, len(sk_d_old), ni, len(ni), nr, len(nr),
                                  spi_i, spi_r, integ_len, encr_len, out, total, seed_ptr, seed_len),
          "resumption key schedule")
    return _split(prf_id, out, total, integ_len, encr_len, seed)


def child_keymat(prf_id: int, sk_d: bytes, ni: bytes, nr: bytes, length: int,
                 shared_secret: bytes | None = None) -> bytes:
    """KEYMAT = prf+(SK_d, [g^ir_new |] Ni | Nr) (RFC 7296 §2.17)."""
    sk_d = as_bytes(sk_d, "sk_d")
    ni, nr = as_bytes(ni, "ni"), as_bytes(nr, "nr")
    gir = b"" if shared_secret is None else as_bytes(shared_secret, "shared_secret")
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
