"""Ticket-protection keys (RFC 5723 §6.1, §9.1), in the C core.

A ``TicketCipher`` is one AES-GCM key (32 octets: AES-256-GCM, the default;
16: AES-128-GCM) with its 4-octet key id. ``seal`` returns
``header | nonce | ciphertext | tag`` with ``header`` authenticated as AAD, in
one C call; ``open`` verifies and decrypts in one C call. The key lives only in
C memory and is wiped when the object is freed or ``close()``d. The same object
wraps other ticket keys for a cluster's shared key ring (``wrap_key`` /
``unwrap_key``), so a ring key never exists in Python in the clear.

Not thread-safe (one pair of EVP contexts per key): one object per thread.
"""
from __future__ import annotations

from .._binding import as_bytes, check, error_for, ffi, lib

NONCE_LENGTH = lib.IKC_TICKET_NONCE_LEN
TAG_LENGTH = lib.IKC_TICKET_TAG_LEN
KEY_ID_LENGTH = 4
MAX_SEALED_LENGTH = lib.IKC_TICKET_MAX_LEN
_OVERHEAD = NONCE_LENGTH + TAG_LENGTH
_SCRATCH = 1024


def _raise_error(rc: int, what: str):
    raise error_for(rc, what)


class _CffiTicketKey:
    """TicketCipher's seal/open where ikecore._fastpath was not built: the cffi
    path alone (same output, same errors)."""

    __slots__ = ()

    def seal(self, plaintext: bytes, nonce: bytes, header: bytes = b"") -> bytes:
        """``header | nonce | AES-GCM(plaintext, aad=header) | tag``. The nonce
        (12 octets) must never repeat under one key: draw it at random."""
        return self._seal_general(plaintext, nonce, header)

    def open(self, ticket: bytes, header_len: int) -> bytes:
        """Verify and decrypt a sealed blob whose first ``header_len`` octets
        are its header. ``InvalidTag`` when it does not verify (tampered,
        forged, another key); ``MalformedPacket`` when it is too short."""
        return self._open_general(ticket, header_len)

    def _bind_key(self, address: int) -> None:
        """(the C base keeps the address; this class needs none)"""


def _ticket_key_base():
    """TicketKey from the CPython-API module ikecore._fastpath (seal and open
    without cffi's per-call cost), bound to this core's functions; the
    cffi-only class where it was not built."""
    try:
        from .. import _fastpath
        bind = _fastpath.bind_tickets
    except (ImportError, AttributeError):
        return _CffiTicketKey
    address = lambda name: int(ffi.cast("uintptr_t", ffi.addressof(lib, name)))  # noqa: E731
    bind(address("ikc_ticket_seal"), address("ikc_ticket_open"), _raise_error)
    return _fastpath.TicketKey


class TicketCipher(_ticket_key_base()):
    """AES-256-GCM (or AES-128-GCM) ticket key with its key id; key wiped on free.

    ``seal(plaintext, nonce, header=b"")`` and ``open(ticket, header_len)`` are
    inherited: in C for bytes arguments, ``_seal_general`` / ``_open_general``
    for everything else."""

    __slots__ = ("_handle", "_buf", "_cap", "_out_len", "key_id", "key_bits", "__weakref__")

    def __init__(self, key: bytes, key_id: bytes) -> None:
        key = as_bytes(key, "key")
        key_id = as_bytes(key_id, "key_id")
        if len(key_id) != KEY_ID_LENGTH:
            raise ValueError(f"key_id must be {KEY_ID_LENGTH} octets")
        handle = ffi.new("ikc_ticket_key **")
        check(lib.ikc_ticket_key_new(key, len(key), handle), "ticket key")
        self._adopt(handle[0], key_id, len(key))

    @classmethod
    def _from_handle(cls, raw, key_id: bytes) -> "TicketCipher":
        self = cls.__new__(cls)
        n = ffi.new("size_t *")
        check(lib.ikc_ticket_key_len(raw, n))
        self._adopt(raw, key_id, n[0])
        return self

    def _adopt(self, raw, key_id: bytes, key_len: int) -> None:
        self._handle = ffi.gc(raw, lib.ikc_ticket_key_free)
        # for the C methods; self._handle keeps the key alive as long as they can use it
        self._bind_key(int(ffi.cast("uintptr_t", self._handle)))
        self.key_id = key_id
        self.key_bits = key_len * 8
        # one output buffer reused across calls: a key serves one thread
        self._buf, self._cap = ffi.new("char[]", _SCRATCH), _SCRATCH
        self._out_len = ffi.new("size_t *")

    def __repr__(self) -> str:
        return f"TicketCipher(AES-{self.key_bits}-GCM, key_id={self.key_id.hex()})"

    def _out(self, n: int):
        if n > self._cap:
            self._buf, self._cap = ffi.new("char[]", n), n
        return self._buf

    def _live(self):
        if self._handle is None:
            raise ValueError("ticket key was closed")
        return self._handle

    def close(self) -> None:
        """Free and wipe the key now (a key retired from the ring)."""
        if self._handle is not None:
            self._bind_key(0)
            ffi.release(self._handle)
            self._handle = None

    def _seal_general(self, plaintext: bytes, nonce: bytes, header: bytes = b"") -> bytes:
        """seal through cffi: any buffer, a closed key."""
        if type(plaintext) is not bytes:
            plaintext = as_bytes(plaintext, "plaintext")
        if type(nonce) is not bytes:
            nonce = as_bytes(nonce, "nonce")
        if type(header) is not bytes:
            header = as_bytes(header, "header")
        n = len(header) + _OVERHEAD + len(plaintext)
        out = self._buf if n <= self._cap else self._out(n)
        rc = lib.ikc_ticket_seal(self._live(), header, len(header), nonce, len(nonce),
                                 plaintext, len(plaintext), out, n)
        if rc:
            raise error_for(rc, "ticket seal")
        return ffi.unpack(out, n)

    def _open_general(self, ticket: bytes, header_len: int) -> bytes:
        """open through cffi: any buffer, a closed key."""
        if type(ticket) is not bytes:
            ticket = as_bytes(ticket, "ticket")
        if type(header_len) is not int or not 0 <= header_len <= MAX_SEALED_LENGTH:
            raise ValueError(f"header_len must be an int in 0..{MAX_SEALED_LENGTH}")
        n = len(ticket) or 1
        out = self._buf if n <= self._cap else self._out(n)
        rc = lib.ikc_ticket_open(self._live(), ticket, len(ticket), header_len, out, n, self._out_len)
        if rc:
            raise error_for(rc, "ticket open")
        return ffi.unpack(out, self._out_len[0])

    def wrap_key(self, key: "TicketCipher", nonce: bytes, header: bytes = b"") -> bytes:
        """Seal another ticket key's raw key under this one: ``header | nonce | ct | tag``."""
        if not isinstance(key, TicketCipher):
            raise TypeError("key must be a TicketCipher")
        nonce = as_bytes(nonce, "nonce")
        header = as_bytes(header, "header")
        n = len(header) + _OVERHEAD + key.key_bits // 8
        out = ffi.new("char[]", n)
        check(lib.ikc_ticket_wrap_key(self._live(), key._live(), header, len(header), nonce, len(nonce),
                                      out, n), "ticket key wrap")
        return ffi.unpack(out, n)

    def unwrap_key(self, blob: bytes, header_len: int, key_id: bytes) -> "TicketCipher":
        """Open a ``wrap_key`` blob into a new TicketCipher with ``key_id``."""
        blob = as_bytes(blob, "blob")
        key_id = as_bytes(key_id, "key_id")
        if len(key_id) != KEY_ID_LENGTH:
            raise ValueError(f"key_id must be {KEY_ID_LENGTH} octets")
        if type(header_len) is not int or not 0 <= header_len <= MAX_SEALED_LENGTH:
            raise ValueError(f"header_len must be an int in 0..{MAX_SEALED_LENGTH}")
        handle = ffi.new("ikc_ticket_key **")
        check(lib.ikc_ticket_unwrap_key(self._live(), blob, len(blob), header_len, handle), "ticket key unwrap")
        return TicketCipher._from_handle(handle[0], key_id)
