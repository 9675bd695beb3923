"""Protection of the IKEv2 Encrypted (SK) payload, in the C core.

``aad`` is the message from the first octet of the IKE header through the SK
payload's 4-octet generic header (RFC 5282 §5.1; for CBC + HMAC the same octets
start the ICV input, RFC 7296 §3.14). ``seal`` returns IV | ciphertext | ICV.
"""
from __future__ import annotations

import threading

from .._binding import as_bytes, check, error_for, ffi, lib
from .transforms import Integ, is_aead

_MAX_MESSAGE = 1 << 20
# (encr_id, integ_id, encr key length) -> (IV, ICV, block length): a few hundred
# entries at most (ikc_sk_new refuses unknown transforms and key lengths first)
_PARAMS: dict = {}
_SCRATCH = 2048     # most IKE messages fit; a larger one grows the buffer once


class _Scratch(threading.local):
    """Output buffers reused across calls: allocating one per message costs
    about a tenth of sealing it, and one per SkCipher costs 2 KB for each
    direction of every IKE SA a gateway holds. So one per thread; each call
    copies its result out before returning."""

    def __init__(self) -> None:
        self.out_len = ffi.new("size_t *")
        self.handle = ffi.new("ikc_sk **")     # ikc_sk_new's out-parameter (four a resumption)
        self.grow(_SCRATCH)

    def grow(self, n: int) -> None:
        self.buf, self.cap = ffi.new("char[]", n), n
        self.buf8 = ffi.cast("uint8_t *", self.buf)    # the same memory, for the split forms

    def get(self, n: int):
        if n > self.cap:
            self.grow(n)
        return self.buf


_scratch = _Scratch()


class SkCipher:
    """One key, one direction: SK_ei/SK_ai for the initiator's messages, SK_er/SK_ar for the responder's."""

    __slots__ = ("_handle", "_fixed", "encr_id", "integ_id", "iv_length", "icv_length", "block_length")

    def __init__(self, encr_id: int, encr_key: bytes, integ_id: int = Integ.NONE,
                 integ_key: bytes = b"") -> None:
        # two per IKE SA, made while its first exchange runs: bytes go straight through
        if type(encr_key) is not bytes:
            encr_key = as_bytes(encr_key, "encr_key")
        if type(integ_key) is not bytes:
            integ_key = as_bytes(integ_key, "integ_key")
        if (integ_id or integ_key) and is_aead(encr_id):     # Integ.NONE is 0
            raise ValueError("an AEAD cipher takes no integrity transform or key (RFC 5282 §8)")
        handle = _scratch.handle      # read back at once, before anything else runs
        rc = lib.ikc_sk_new(encr_id, encr_key, len(encr_key), integ_id, integ_key or ffi.NULL, len(integ_key),
                            handle)
        if rc:
            check(rc, "SK cipher")
        # freed by __del__: an ffi.gc wrapper would cost 80 bytes more per cipher
        self._handle = handle[0]
        self.encr_id = encr_id
        self.integ_id = integ_id
        shape = (encr_id, integ_id, len(encr_key))
        params = _PARAMS.get(shape)
        if params is None:       # they follow from the transforms alone: asked once per suite
            iv, icv, block = ffi.new("size_t *"), ffi.new("size_t *"), ffi.new("size_t *")
            check(lib.ikc_sk_params(self._handle, iv, icv, block))
            params = _PARAMS[shape] = (iv[0], icv[0], block[0])
        self.iv_length, self.icv_length, self.block_length = params
        self._fixed = self.iv_length + self.icv_length

    def __del__(self, _free=lib.ikc_sk_free) -> None:
        handle = getattr(self, "_handle", None)     # unset when __init__ failed
        if handle is not None:
            self._handle = None
            _free(handle)       # wipes the keys

    def idle(self) -> None:
        """Free the cipher contexts until the next call (which keys one again,
        about a microsecond): an IKE SA holds two SkCiphers for hours and uses
        them for a few messages an exchange."""
        lib.ikc_sk_idle(self._handle)

    def sealed_length(self, plaintext_length: int) -> int:
        """Octets ``seal`` returns for this much plaintext: the SK payload body
        less its generic header (IV, padded ciphertext, ICV)."""
        if not isinstance(plaintext_length, int) or not 0 <= plaintext_length <= _MAX_MESSAGE:
            raise ValueError("plaintext length out of range")
        block = self.block_length
        return self.iv_length + (plaintext_length + block) // block * block + self.icv_length

    def seal(self, aad: bytes, plaintext: bytes, iv: bytes | None = None) -> bytes:
        """Encrypt and authenticate. ``iv`` is for known-answer tests only: by
        default AEAD IVs come from a counter, CBC IVs from AES under a random
        per-object key applied to that counter (unpredictable, never repeated)."""
        if type(aad) is not bytes:
            aad = as_bytes(aad, "aad")
        if type(plaintext) is not bytes:
            plaintext = as_bytes(plaintext, "plaintext")
        if len(plaintext) > _MAX_MESSAGE or len(aad) > _MAX_MESSAGE:
            raise ValueError("message too large")
        n = self.sealed_length(len(plaintext))
        scratch = _scratch
        out = scratch.get(n)
        out8 = scratch.buf8
        if iv is None:
            iv_ptr, iv_len = ffi.NULL, 0
        else:
            iv_ptr = as_bytes(iv, "iv")
            iv_len = len(iv_ptr)
        rc = lib.ikc_sk_seal(self._handle, aad, len(aad), plaintext, len(plaintext), iv_ptr, iv_len, out8, n)
        if rc:
            raise error_for(rc, "SK seal")
        return ffi.unpack(out, n)

    def open(self, aad: bytes, sealed: bytes) -> bytes:
        """Verify, decrypt and strip the padding; ``InvalidTag`` when the ICV fails."""
        if type(aad) is not bytes:
            aad = as_bytes(aad, "aad")
        if type(sealed) is not bytes:
            sealed = as_bytes(sealed, "sealed")
        if len(sealed) > _MAX_MESSAGE or len(aad) > _MAX_MESSAGE:
            raise ValueError("message too large")
        scratch = _scratch
        out = scratch.get(len(sealed) or 1)
        rc = lib.ikc_sk_open(self._handle, aad, len(aad), sealed, len(sealed), scratch.buf8, len(sealed),
                             scratch.out_len)
        if rc:
            raise error_for(rc, "SK open")
        return ffi.unpack(out, scratch.out_len[0])

    def seal_message(self, prefix: bytes, inner: bytes) -> bytes:
        """The whole protected message: ``prefix`` is the IKE header, any clear
        payloads and the SK generic header; the IKE Length and SK Payload
        Length fields are filled in here."""
        if type(prefix) is not bytes:
            prefix = as_bytes(prefix, "prefix")
        if type(inner) is not bytes:
            inner = as_bytes(inner, "inner")
        block = self.block_length
        n = len(prefix) + self._fixed + (len(inner) + block) // block * block
        out = _scratch.get(n)
        # the C core bounds every length (message size, 16-bit SK length)
        rc = lib.ikc_sk_seal_message(self._handle, prefix, len(prefix), inner, len(inner), out, n)
        if rc:
            raise error_for(rc, "SK seal")
        return ffi.unpack(out, n)

    def open_message(self, message: bytes, sk_offset: int) -> bytes:
        """Verify and decrypt the SK payload whose generic header starts at
        ``sk_offset`` (it must be the last payload); returns the inner payloads."""
        if type(message) is not bytes:
            message = as_bytes(message, "message")
        if type(sk_offset) is not int or sk_offset < 0:
            raise ValueError("sk_offset must be a non-negative int")
        scratch = _scratch
        out = scratch.get(len(message))
        rc = lib.ikc_sk_open_message(self._handle, message, len(message), sk_offset, out, len(message),
                                     scratch.out_len)
        if rc:
            raise error_for(rc, "SK open")
        return ffi.unpack(out, scratch.out_len[0])
