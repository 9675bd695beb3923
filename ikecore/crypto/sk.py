"""Protection of the IKEv2 Encrypted (SK) payload, in the C core.

``aad`` is the message from the first octet of the IKE header through the SK
payload's 4-octet generic header (RFC 5282 §5.1; for CBC + HMAC the same octets
start the ICV input, RFC 7296 §3.14). ``seal`` returns IV | ciphertext | ICV.
"""
from __future__ import annotations

from .._binding import as_bytes, check, ffi, lib
from ..errors import InvalidTag
from .transforms import Integ, is_aead

_MAX_MESSAGE = 1 << 20


class SkCipher:
    """One key, one direction: SK_ei/SK_ai for the initiator's messages, SK_er/SK_ar for the responder's."""

    __slots__ = ("_handle", "encr_id", "integ_id", "iv_length", "icv_length", "block_length")

    def __init__(self, encr_id: int, encr_key: bytes, integ_id: int = Integ.NONE,
                 integ_key: bytes = b"") -> None:
        encr_key = as_bytes(encr_key, "encr_key")
        integ_key = as_bytes(integ_key, "integ_key")
        if is_aead(encr_id) and (integ_id != Integ.NONE or integ_key):
            raise ValueError("an AEAD cipher takes no integrity transform or key (RFC 5282 §8)")
        handle = ffi.new("ikc_sk **")
        check(lib.ikc_sk_new(encr_id, encr_key, len(encr_key), integ_id,
                             integ_key or ffi.NULL, len(integ_key), handle), "SK cipher")
        self._handle = ffi.gc(handle[0], lib.ikc_sk_free)
        self.encr_id = encr_id
        self.integ_id = integ_id
        iv, icv, block = ffi.new("size_t *"), ffi.new("size_t *"), ffi.new("size_t *")
        check(lib.ikc_sk_params(self._handle, iv, icv, block))
        self.iv_length, self.icv_length, self.block_length = iv[0], icv[0], block[0]

    def sealed_length(self, plaintext_length: int) -> int:
        """Octets ``seal`` returns for this much plaintext: the SK payload body length."""
        out = ffi.new("size_t *")
        check(lib.ikc_sk_sealed_len(self._handle, plaintext_length, out), "sealed length")
        return out[0]

    def seal(self, aad: bytes, plaintext: bytes, iv: bytes | None = None) -> bytes:
        """Encrypt and authenticate. ``iv`` is for known-answer tests only: by
        default AEAD IVs come from a counter and CBC IVs from the DRBG."""
        aad = as_bytes(aad, "aad")
        plaintext = as_bytes(plaintext, "plaintext")
        if len(plaintext) > _MAX_MESSAGE or len(aad) > _MAX_MESSAGE:
            raise ValueError("message too large")
        n = self.sealed_length(len(plaintext))
        out = ffi.new("uint8_t[]", n)
        if iv is None:
            iv_ptr, iv_len = ffi.NULL, 0
        else:
            iv_ptr = as_bytes(iv, "iv")
            iv_len = len(iv_ptr)
        check(lib.ikc_sk_seal(self._handle, aad, len(aad), plaintext, len(plaintext),
                              iv_ptr, iv_len, out, n), "SK seal")
        return ffi.buffer(out, n)[:]

    def open(self, aad: bytes, sealed: bytes) -> bytes:
        """Verify, decrypt and strip the padding; ``InvalidTag`` when the ICV fails."""
        aad = as_bytes(aad, "aad")
        sealed = as_bytes(sealed, "sealed")
        if len(sealed) > _MAX_MESSAGE or len(aad) > _MAX_MESSAGE:
            raise ValueError("message too large")
        out = ffi.new("uint8_t[]", max(len(sealed), 1))
        out_len = ffi.new("size_t *")
        check(lib.ikc_sk_open(self._handle, aad, len(aad), sealed, len(sealed), out, len(out), out_len),
              "SK open")
        return ffi.buffer(out, out_len[0])[:]


__all__ = ["SkCipher", "InvalidTag"]
