"""The ticket key ring: the current ticket-protection key plus ``keep`` previous
ones and the next one, rotated every ``rotation`` seconds (RFC 5723 §6.2, §9.5).

Sans-I/O: time and randomness are passed in. A key that leaves the ring is
closed, which wipes it in the C core. For a cluster the ring travels through
the store wrapped (``export_wrapped`` / ``import_wrapped``): every key is sealed
with AES-256-GCM under the gateway's wrapping key, in C, and the clear header
(generation, rotation, keep, key ids, creation times) is authenticated as AAD.
The flow that shares it lives in ``ikecore.store.ringsync``; docs/tickets.md
describes both.
"""
from __future__ import annotations

import struct
from typing import Callable, Iterable

from ..crypto.ticket import KEY_ID_LENGTH, NONCE_LENGTH, TAG_LENGTH, TicketCipher
from ..errors import InvalidKey, InvalidTag, KeyRingError, MalformedPacket

Rng = Callable[[int], bytes]

RING_MAGIC = b"IKR1"                       # format 1 of a wrapped ring
_RING_HEADER = struct.Struct(">4sQIBHB")   # magic, generation, rotation s, keep, key bits, count
_ENTRY_HEADER = struct.Struct(">B4sQ")     # index, key id, active_from s
WRAPPING_KEY_LENGTH = 32
MAX_KEEP = 16
_WRAP_KEY_ID = b"\0wrp"


class _RingKey:
    __slots__ = ("cipher", "active_from")

    def __init__(self, cipher: TicketCipher, active_from: int) -> None:
        self.cipher = cipher
        self.active_from = active_from   # when it became (or becomes) the current key


class TicketKeyRing:
    """The next key, the current key and ``keep`` previous ones, newest first.

    New tickets are sealed with the current key; tickets under any key of the
    ring open. The next key is made one period before it becomes current, so
    that in a cluster every gateway holds it before any gateway seals with it
    (docs/tickets.md, "Sharing the ring")."""

    def __init__(self, *, rng: Rng, now: float, rotation: float = 3600.0, keep: int = 2,
                 key_bits: int = 256, generation: int = 1,
                 _keys: list[_RingKey] | None = None) -> None:
        if not 1 <= rotation <= 0xFFFFFFFF:
            raise ValueError("rotation must be 1 .. 2**32-1 seconds")
        if type(keep) is not int or not 0 <= keep <= MAX_KEEP:
            raise ValueError(f"keep must be an int in 0..{MAX_KEEP}")
        if key_bits not in (128, 256):
            raise ValueError("key_bits must be 128 or 256 (AES-GCM)")
        if type(generation) is not int or not 0 < generation < (1 << 64):
            raise ValueError("generation must be a positive 64-bit int")
        self.rng = rng
        self.rotation = float(int(rotation))   # whole seconds: the wrapped format holds them so
        self.keep = keep
        self.key_bits = key_bits
        self.generation = generation
        if _keys is None:
            current = self._fresh_key(int(now), ())
            _keys = [self._fresh_key(int(now) + int(self.rotation), [current.cipher.key_id]), current]
        self._keys: list[_RingKey] = _keys

    # --- lookup -----------------------------------------------------------------

    def __repr__(self) -> str:
        ids = ",".join(k.cipher.key_id.hex() for k in self._keys)
        return f"TicketKeyRing(generation={self.generation}, keys=[{ids}])"

    @property
    def current(self) -> TicketCipher:
        """The key new tickets are sealed with."""
        return self._keys[1].cipher

    @property
    def next_key_id(self) -> bytes:
        return self._keys[0].cipher.key_id

    @property
    def key_ids(self) -> list[bytes]:
        """Next, current, then previous keys."""
        return [k.cipher.key_id for k in self._keys]

    def find(self, key_id: bytes) -> TicketCipher | None:
        for k in self._keys:
            if k.cipher.key_id == key_id:
                return k.cipher
        return None

    def usable_until(self, now: float) -> int:
        """The earliest time the current key may leave the ring (``keep`` more
        rotations after the next one): tickets sealed now expire by then."""
        return max(int(now), self._keys[0].active_from) + int(self.rotation) * self.keep

    # --- rotation ---------------------------------------------------------------

    def _fresh_key(self, active_from: int, taken: Iterable[bytes]) -> _RingKey:
        taken = set(taken)
        while True:
            key_id = self.rng(KEY_ID_LENGTH)
            if key_id not in taken:
                break
        return _RingKey(TicketCipher(self.rng(self.key_bits // 8), key_id), active_from)

    def due(self, now: float) -> bool:
        """The next key's time has come."""
        return now >= self._keys[0].active_from

    def _rotated_keys(self, now: float) -> list[_RingKey]:
        promoted = _RingKey(self._keys[0].cipher, int(now))
        fresh = self._fresh_key(int(now) + int(self.rotation), self.key_ids)
        return [fresh, promoted] + self._keys[1:self.keep + 1]

    def rotate(self, now: float) -> None:
        """The next key becomes current and a new next key is made; the oldest
        key beyond ``keep`` previous ones leaves the ring and is wiped."""
        keys = self._rotated_keys(now)
        kept = {id(k.cipher) for k in keys}
        for k in self._keys:
            if id(k.cipher) not in kept:
                k.cipher.close()
        self._keys = keys
        self.generation += 1

    def maybe_rotate(self, now: float) -> bool:
        """Rotate when the period has passed."""
        if self.due(now):
            self.rotate(now)
            return True
        return False

    def rotated(self, now: float) -> "TicketKeyRing":
        """The next generation as a new ring, this one untouched (a cluster's
        candidate: it becomes the ring only if the store takes it). The two
        share the keys they have in common; see ``adopt`` and ``discard``."""
        return TicketKeyRing(rng=self.rng, now=now, rotation=self.rotation, keep=self.keep,
                             key_bits=self.key_bits, generation=self.generation + 1,
                             _keys=self._rotated_keys(now))

    def adopt(self, other: "TicketKeyRing") -> None:
        """Become ``other`` (a newer generation from the store, or our own
        candidate): our keys it does not hold are wiped; it is left empty."""
        self.discard(keep=other)
        self._keys, other._keys = other._keys, []
        self.generation = other.generation
        self.rotation, self.keep, self.key_bits = other.rotation, other.keep, other.key_bits

    def discard(self, keep: "TicketKeyRing | None" = None) -> None:
        """Wipe every key of this ring that ``keep`` does not share."""
        shared = {id(k.cipher) for k in keep._keys} if keep is not None else set()
        for k in self._keys:
            if id(k.cipher) not in shared:
                k.cipher.close()
        self._keys = []

    # --- wrapping for a shared store ---------------------------------------------

    def export_wrapped(self, wrapping_key: bytes) -> bytes:
        """The ring sealed for a store: ``header | entry*count``, each entry
        ``header | index | key id | active_from | nonce | AES-256-GCM(key) | tag``
        with the ring header repeated in its AAD."""
        ring_header = _RING_HEADER.pack(RING_MAGIC, self.generation, int(self.rotation), self.keep,
                                        self.key_bits, len(self._keys))
        wrapper = _wrapper(wrapping_key)
        try:
            parts = [ring_header]
            for index, k in enumerate(self._keys):
                header = ring_header + _ENTRY_HEADER.pack(index, k.cipher.key_id, k.active_from)
                parts.append(wrapper.wrap_key(k.cipher, self.rng(NONCE_LENGTH), header))
            return b"".join(parts)
        finally:
            wrapper.close()

    @classmethod
    def import_wrapped(cls, blob: bytes, wrapping_key: bytes, *, rng: Rng) -> "TicketKeyRing":
        """Open an ``export_wrapped`` blob; ``KeyRingError`` when it does not
        verify under ``wrapping_key`` or is malformed."""
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise TypeError("blob must be bytes")
        blob = bytes(blob)
        if len(blob) < _RING_HEADER.size:
            raise KeyRingError("wrapped key ring truncated")
        magic, generation, rotation, keep, key_bits, count = _RING_HEADER.unpack_from(blob, 0)
        if magic != RING_MAGIC:
            raise KeyRingError("not a wrapped key ring of format 1")
        if key_bits not in (128, 256) or not 2 <= count <= keep + 2 or keep > MAX_KEEP \
                or rotation == 0 or generation == 0:
            raise KeyRingError("wrapped key ring header out of range")
        ring_header = blob[:_RING_HEADER.size]
        entry_header_len = _RING_HEADER.size + _ENTRY_HEADER.size
        entry_len = entry_header_len + NONCE_LENGTH + key_bits // 8 + TAG_LENGTH
        if len(blob) != _RING_HEADER.size + count * entry_len:
            raise KeyRingError("wrapped key ring length does not match its header")
        wrapper = _wrapper(wrapping_key)
        keys: list[_RingKey] = []
        try:
            for index in range(count):
                entry = blob[_RING_HEADER.size + index * entry_len:][:entry_len]
                if entry[:_RING_HEADER.size] != ring_header:
                    raise KeyRingError("wrapped key entry belongs to another ring")
                got_index, key_id, active_from = _ENTRY_HEADER.unpack_from(entry, _RING_HEADER.size)
                if got_index != index or any(k.cipher.key_id == key_id for k in keys):
                    raise KeyRingError("wrapped key entries out of order or repeated")
                try:
                    cipher = wrapper.unwrap_key(entry, entry_header_len, key_id)
                except InvalidTag:
                    raise KeyRingError("wrapped key ring does not verify: wrong wrapping key "
                                       "or tampered with") from None
                except (InvalidKey, MalformedPacket) as exc:
                    raise KeyRingError(f"wrapped key entry malformed: {exc}") from None
                keys.append(_RingKey(cipher, active_from))
        except BaseException:
            for k in keys:
                k.cipher.close()
            raise
        finally:
            wrapper.close()
        return cls(rng=rng, now=0, rotation=rotation, keep=keep, key_bits=key_bits,
                   generation=generation, _keys=keys)


def _wrapper(wrapping_key: bytes) -> TicketCipher:
    if not isinstance(wrapping_key, (bytes, bytearray)) or len(wrapping_key) != WRAPPING_KEY_LENGTH:
        raise ValueError(f"the wrapping key must be {WRAPPING_KEY_LENGTH} octets")
    return TicketCipher(bytes(wrapping_key), _WRAP_KEY_ID)
