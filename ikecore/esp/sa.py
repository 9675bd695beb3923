"""One ESP security association (RFC 4303), in the C core.

The packet that ``encrypt`` returns and ``decrypt`` takes runs from the SPI to
the ICV: the outer IP header (and, with NAT traversal, the UDP header) belong to
the caller or to :mod:`ikecore.esp.udpencap`.
"""
from __future__ import annotations

import threading

from .._binding import error_for, ffi, lib
from ..crypto.transforms import Encr, Integ

_MAX_PACKET = lib.IKC_ESP_MAX_PACKET
_SLACK = 128              # >= the largest ESP overhead (8 + 16 + 15 + 2 + 32)
_SCRATCH = 2048            # per-SA output buffer; larger packets allocate per call
_FAST_PAYLOAD = lib.IKC_ESP_SCRATCH - _SLACK   # encrypt1: the whole packet must fit
_FAST_PACKET = lib.IKC_ESP_SCRATCH
_DIRECTIONS = {None: 0, "both": 0, "out": lib.IKC_ESP_F_OUTBOUND, "in": lib.IKC_ESP_F_INBOUND}
_STAT_NAMES = ("packets", "octets", "auth_failed", "replayed", "malformed")

_encrypt = lib.ikc_esp_encrypt
_decrypt = lib.ikc_esp_decrypt
_encrypt1 = lib.ikc_esp_encrypt1
_decrypt1 = lib.ikc_esp_decrypt1
_thread_scratch = lib.ikc_esp_scratch     # the calling thread's buffer: read it right after the call
_unpack = ffi.unpack


def _raise_error(rc: int, what: str):
    raise error_for(rc, what)


class _CffiSinglePacket:
    """EspSA's single-packet calls where ikecore._fastpath was not built: the
    cffi path alone (same packets, same errors)."""

    __slots__ = ()

    def encrypt(self, payload: bytes, next_header: int, *, tfc_pad: int = 0) -> bytes:
        """ESP-protect ``payload`` (an IP packet in tunnel mode, the transport
        payload otherwise); returns SPI .. ICV. ``tfc_pad`` zero octets of TFC
        padding go after the payload (RFC 4303 §2.7). Raises
        :class:`~ikecore.errors.SequenceExhausted` when the counter is used up."""
        return self._encrypt_general(payload, next_header, tfc_pad=tfc_pad)

    def decrypt(self, packet: bytes) -> tuple[bytes, int]:
        """Verify and decrypt SPI .. ICV; returns (payload, next_header).

        A dummy packet (next header 59, RFC 4303 §2.6) is returned as such: drop
        it. Raises :class:`~ikecore.errors.InvalidTag` (ICV), :class:`~ikecore.errors.ReplayError`
        (replayed or left of the window) or :class:`~ikecore.errors.MalformedPacket`
        (truncated, bad padding, other SPI)."""
        return self._decrypt_general(packet)

    def _bind_sa(self, address: int, framing: int) -> None:
        """(the C base keeps the address; this class needs none)"""


def _single_packet_base():
    """SinglePacketESP from the CPython-API module ikecore._fastpath, bound to this
    core's functions; the cffi-only class where it was not built."""
    try:
        from .. import _fastpath
    except ImportError:
        return _CffiSinglePacket
    address = lambda name: int(ffi.cast("uintptr_t", ffi.addressof(lib, name)))  # noqa: E731
    _fastpath.bind(address("ikc_esp_packet_len"), address("ikc_esp_encrypt"), address("ikc_esp_decrypt"),
                   _raise_error)
    return _fastpath.SinglePacketESP


_SinglePacketBase = _single_packet_base()
_buffer = ffi.buffer
_from_buffer = ffi.from_buffer
_new = ffi.new


class _Scratch(threading.local):
    """The cffi path's output buffer and out-parameters, one set per thread:
    per SA they cost 2 KB each, and a gateway holds two SAs per Child SA."""

    def __init__(self) -> None:
        self.out = _new("uint8_t[]", _SCRATCH)
        self.length = _new("size_t *")
        self.nh = _new("int *")
        self.seq = _new("uint64_t *")


_scratch = _Scratch()


def _c_bytes(value, name):
    """bytes pass to C as they are; other buffers through ffi.from_buffer."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return _from_buffer(value)
    raise TypeError(f"{name} must be bytes-like, not {type(value).__name__}")


def _check_u64(value) -> None:
    if not isinstance(value, int) or not 0 <= value < 1 << 64:
        raise ValueError("sequence numbers are 0 .. 2^64 - 1")


class EspSA(_SinglePacketBase):
    """An ESP SA keyed from IKEv2 KEYMAT.

    ``encr_id``: 20 (ENCR_AES_GCM_16, 128/256-bit key), 28 (ENCR_CHACHA20_POLY1305)
    or 12 (ENCR_AES_CBC, 128/256-bit key). For the AEADs, ``key`` is the KEYMAT
    slice *with the 4-octet salt at its end* (20/36 octets for AES-GCM-128/256, 36
    for ChaCha20-Poly1305). AES-CBC needs ``integ_id`` 12/13/14
    (AUTH_HMAC_SHA2_256_128/384_192/512_256) and its ``integ_key``.

    ``esn``: extended sequence numbers (the IKEv2 ESN transform 1 was chosen).
    ``replay_window``: anti-replay window in packets, 0 = off, up to 1048576.
    ``direction``: "out", "in" or None (both; handy in tests, a gateway builds one
    SA per direction). Not thread-safe: drive each SA from one thread at a time;
    different SAs may run on different threads concurrently.
    """

    __slots__ = ("_h", "spi", "encr_id", "integ_id", "esn",
                 "replay_window", "direction", "iv_length", "icv_length", "block_length",
                 "__weakref__")

    def __init__(self, spi: int, encr_id: int, key: bytes, *, integ_id: int | None = None,
                 integ_key: bytes | None = None, esn: bool = False, replay_window: int = 64,
                 direction: str | None = None, check_padding: bool = True,
                 strip_tfc_padding: bool = True, allow_no_integrity: bool = False) -> None:
        if not isinstance(spi, int) or not 0 <= spi <= 0xFFFFFFFF:
            raise ValueError("spi must be a 32-bit unsigned integer")
        if not isinstance(replay_window, int) or not 0 <= replay_window <= lib.IKC_ESP_MAX_WINDOW:
            raise ValueError(f"replay_window must be 0..{lib.IKC_ESP_MAX_WINDOW}")
        if direction not in _DIRECTIONS:
            raise ValueError("direction must be 'out', 'in' or None")
        key = bytes(_c_bytes(key, "key")) if not isinstance(key, bytes) else key
        ikey = b"" if integ_key is None else integ_key
        ikey = bytes(_c_bytes(ikey, "integ_key")) if not isinstance(ikey, bytes) else ikey
        iid = Integ.NONE if integ_id is None else int(integ_id)
        flags = _DIRECTIONS[direction]
        if esn:
            flags |= lib.IKC_ESP_F_ESN
        if not check_padding:
            flags |= lib.IKC_ESP_F_NO_PAD_CHECK
        if not strip_tfc_padding:
            flags |= lib.IKC_ESP_F_KEEP_TFC
        if allow_no_integrity:
            flags |= lib.IKC_ESP_F_NO_INTEGRITY
        encr_id = int(encr_id)
        if encr_id == Encr.AES_CBC and iid == Integ.NONE and not allow_no_integrity:
            raise ValueError("AES-CBC needs an integrity transform (integ_id), "
                             "or allow_no_integrity=True for confidentiality-only ESP")
        handle = ffi.new("ikc_esp **")
        rc = lib.ikc_esp_new(spi, encr_id, key, len(key), iid, ikey or ffi.NULL, len(ikey),
                             flags, replay_window, handle)
        if rc:
            raise error_for(rc, "ESP SA")
        # freed by __del__: an ffi.gc wrapper would cost 80 bytes more per SA
        self._h = handle[0]
        self.spi = spi
        self.encr_id = encr_id
        self.integ_id = iid
        self.esn = bool(esn)
        self.replay_window = replay_window
        self.direction = direction
        iv, icv, block = ffi.new("size_t *"), ffi.new("size_t *"), ffi.new("size_t *")
        lib.ikc_esp_params(self._h, iv, icv, block)
        self.iv_length, self.icv_length, self.block_length = iv[0], icv[0], block[0]
        # for the C methods; self._h keeps the SA alive as long as they can use it
        self._bind_sa(int(ffi.cast("uintptr_t", self._h)), 8 + self.iv_length + self.icv_length + 2)

    def __del__(self, _free=lib.ikc_esp_free) -> None:
        handle = getattr(self, "_h", None)     # unset when __init__ failed
        if handle is not None:
            self._h = None
            _free(handle)       # wipes the keys

    # ---- single packets ----

    def packet_length(self, payload_length: int, tfc_pad: int = 0) -> int:
        """Octets ``encrypt`` returns for a payload of this length."""
        out = ffi.new("size_t *")
        rc = lib.ikc_esp_packet_len(self._h, payload_length, tfc_pad, out)
        if rc:
            raise error_for(rc, "ESP packet length")
        return out[0]

    @property
    def overhead(self) -> int:
        """Largest number of octets ESP adds to a payload (header, IV, padding, ICV)."""
        return 8 + self.iv_length + self.block_length + 1 + self.icv_length

    # encrypt(payload, next_header, *, tfc_pad=0) -> bytes and decrypt(packet) ->
    # (payload, next_header) are inherited: in C (ikecore._fastpath) for bytes,
    # the two methods below for everything else.

    def _encrypt_general(self, payload: bytes, next_header: int, *, tfc_pad: int = 0) -> bytes:
        """encrypt through cffi: any buffer, TFC padding."""
        if type(payload) is bytes and not tfc_pad:
            n = len(payload)
            if n <= _FAST_PAYLOAD:
                r = _encrypt1(self._h, payload, n, next_header)
                if r < 0:
                    raise error_for(r, "ESP encrypt")
                return _unpack(_thread_scratch(self._h), r)
        else:
            payload = _c_bytes(payload, "payload")
        n = len(payload)
        cap = n + tfc_pad + _SLACK
        scratch = _scratch
        out = scratch.out if cap <= _SCRATCH else _new("uint8_t[]", min(cap, _MAX_PACKET + _SLACK))
        rc = _encrypt(self._h, payload, n, next_header, tfc_pad, out, len(out), scratch.length)
        if rc:
            raise error_for(rc, "ESP encrypt")
        return _buffer(out, scratch.length[0])[:]

    def _decrypt_general(self, packet: bytes) -> tuple[bytes, int]:
        """decrypt through cffi: any buffer."""
        if type(packet) is bytes:
            if len(packet) <= _FAST_PACKET:
                r = _decrypt1(self._h, packet, len(packet))
                if r < 0:
                    raise error_for(r, "ESP decrypt")
                return _unpack(_thread_scratch(self._h), r >> 8), r & 255
        else:
            packet = _c_bytes(packet, "packet")
        n = len(packet)
        scratch = _scratch
        out = scratch.out if n <= _SCRATCH else _new("uint8_t[]", n)
        rc = _decrypt(self._h, packet, n, out, len(out), scratch.length, scratch.nh, scratch.seq)
        if rc:
            raise error_for(rc, "ESP decrypt")
        return _buffer(out, scratch.length[0])[:], scratch.nh[0]

    @property
    def last_decrypted_seq(self) -> int:
        """The full (ESN-inferred) sequence number of the last packet ``decrypt`` returned."""
        return lib.ikc_esp_last_seq(self._h)

    def encrypt_with_iv(self, payload: bytes, next_header: int, iv: bytes, *, tfc_pad: int = 0) -> bytes:
        """Known-answer tests only: encrypt with a caller-chosen IV. Reusing an
        IV under one key breaks AES-GCM and ChaCha20-Poly1305: never in production."""
        payload = _c_bytes(payload, "payload")
        iv = bytes(_c_bytes(iv, "iv"))
        out = _new("uint8_t[]", len(payload) + tfc_pad + _SLACK)
        rc = lib.ikc_esp_encrypt_iv(self._h, iv, len(iv), payload, len(payload), next_header,
                                    tfc_pad, out, len(out), _scratch.length)
        if rc:
            raise error_for(rc, "ESP encrypt")
        return _buffer(out, _scratch.length[0])[:]

    # ---- sequence numbers and the replay window ----

    @property
    def seq(self) -> int:
        """The last sequence number sent (0: none yet). Compare it against your
        rekey threshold; at 2^32 - 1 (2^64 - 1 with ESN) ``encrypt`` refuses."""
        out = ffi.new("uint64_t *")
        lib.ikc_esp_get_seq(self._h, out)
        return out[0]

    def advance_seq(self, last_sent: int) -> None:
        """Move the outbound counter forward (SA migration, tests); never back,
        so that no IV repeats."""
        _check_u64(last_sent)
        rc = lib.ikc_esp_set_seq(self._h, last_sent)
        if rc:
            raise error_for(rc, "ESP sequence number")

    @property
    def replay_top(self) -> int:
        """Highest authenticated sequence number received (0: none yet)."""
        out = ffi.new("uint64_t *")
        lib.ikc_esp_get_replay_top(self._h, out)
        return out[0]

    def resync_replay(self, top: int) -> None:
        """Set the inbound state as if ``top`` was the highest packet received
        (SA migration, tests): the window is emptied except for ``top``."""
        _check_u64(top)
        rc = lib.ikc_esp_set_replay_top(self._h, top)
        if rc:
            raise error_for(rc, "ESP replay window")

    def stats(self) -> dict[str, int]:
        """Counters: packets, octets (payload), auth_failed, replayed, malformed."""
        out = ffi.new("uint64_t[]", len(_STAT_NAMES))
        lib.ikc_esp_stats(self._h, out, len(_STAT_NAMES))
        return dict(zip(_STAT_NAMES, out))

    # ---- batches (see ikecore.esp.batch.PacketVector) ----

    def encrypt_batch(self, vec, *, next_header: int | None = None, out=None, tfc_pad: int = 0) -> int:
        """Encrypt every packet of ``vec`` with status OK or PENDING in one C call
        (GIL released). ``next_header``: one value for all, None = per packet
        (``vec.next_headers``), ``"ip"`` = 4/41 from each packet's IP version.
        In place unless ``out`` (another PacketVector) is given. Returns how many
        succeeded; the others carry their error in ``status``."""
        if next_header is None:
            nh = lib.IKC_ESP_NH_PER_PACKET
        elif next_header == "ip":
            nh = lib.IKC_ESP_NH_FROM_IP
        else:
            nh = int(next_header)
            if not 0 <= nh <= 255:
                raise ValueError("next_header must be 0..255")
        n = vec._n
        rc = lib.ikc_esp_encrypt_vec(self._h, vec._v, out._v if out is not None else ffi.NULL,
                                     nh, tfc_pad, n)
        if rc:
            raise error_for(rc, "ESP encrypt batch")
        return n[0]

    def decrypt_batch(self, vec, *, out=None) -> int:
        """Verify and decrypt every PENDING packet of ``vec`` in one C call (GIL
        released); in place unless ``out`` is given. Each packet ends with status
        OK (payload at its offset/length, ``next_headers``/``seqs`` set),
        IKC_PKT_DUMMY, or a negative error (ICV, replay, SPI, ...). Returns the
        number of OK packets."""
        n = vec._n
        rc = lib.ikc_esp_decrypt_vec(self._h, vec._v, out._v if out is not None else ffi.NULL, n)
        if rc:
            raise error_for(rc, "ESP decrypt batch")
        return n[0]

    def __repr__(self) -> str:
        return (f"EspSA(spi=0x{self.spi:08x}, encr_id={self.encr_id}, integ_id={self.integ_id}, "
                f"esn={self.esn}, replay_window={self.replay_window}, direction={self.direction!r})")
