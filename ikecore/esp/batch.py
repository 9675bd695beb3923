"""Packet vectors: the batch data path.

A :class:`PacketVector` is one contiguous C buffer of ``capacity`` slots of
``slot_size`` octets, plus per-packet ``offsets``, ``lengths``, ``status``,
``next_headers`` and ``seqs`` arrays. Python sees all of them as writable
memoryviews (no copy); an SA encrypts or decrypts the whole vector in one C
call with the GIL released, and the vector is filled from / drained to a UDP
socket with recvmmsg/sendmmsg in C (a TUN-style fd with read/write), so no
Python object is created per packet on the data path::

    rx, tx = PacketVector(64), PacketVector(64)
    while True:
        rx.recv(esp_sock)                       # recvmmsg: up to 64 datagrams
        rx.classify_udpencap()                  # port 4500: IKE / keepalives / ESP
        inbound.decrypt_batch(rx)               # every PENDING ESP packet, by SPI
        rx.write_fd(tun_fd)                     # plaintext packets with status OK

The views are valid while their PacketVector lives: keep the vector referenced.
"""
from __future__ import annotations

import errno as _errno
import os
from collections.abc import Iterable, Iterator

from .._binding import error_for, ffi, lib

# per-packet status values (status[i]); negative values are IKC_ERR_* codes
OK = lib.IKC_OK
PENDING = lib.IKC_PKT_PENDING
IKE = lib.IKC_PKT_IKE
KEEPALIVE = lib.IKC_PKT_KEEPALIVE
DUMMY = lib.IKC_PKT_DUMMY
SENT = lib.IKC_PKT_SENT
EMPTY = lib.IKC_PKT_EMPTY
ERR_TAG = lib.IKC_ERR_TAG
ERR_REPLAY = lib.IKC_ERR_REPLAY
ERR_SPI = lib.IKC_ERR_SPI
ERR_TRUNCATED = lib.IKC_ERR_TRUNCATED
ERR_PADDING = lib.IKC_ERR_PADDING
ERR_BUFFER = lib.IKC_ERR_BUFFER
ERR_SEQ_EXHAUSTED = lib.IKC_ERR_SEQ_EXHAUSTED

_ALL = 0xFFFFFFFF


def _check(rc: int, what: str) -> None:
    if rc:
        raise error_for(rc, what)


def _nh_arg(next_header: int | None) -> int:
    if next_header is None:
        return -1
    if not 0 <= next_header <= 255:
        raise ValueError("next_header must be 0..255")
    return next_header


def status_error(status: int) -> Exception | None:
    """The exception the single-packet API would raise for a per-packet status."""
    return error_for(status) if status < 0 else None


class PacketVector:
    """``capacity`` packets in one buffer, each in a ``slot_size``-octet slot.

    Fresh packets go in at ``headroom`` so that ESP (and a UDP header) can be
    put in front in place; the slot's tail takes padding and ICV. Packet ``i``
    is ``buffer[i*slot_size + offsets[i] :][: lengths[i]]``.
    """

    __slots__ = ("_v", "_n", "capacity", "slot_size", "headroom", "buffer", "offsets",
                 "lengths", "status", "next_headers", "seqs", "_host", "_port", "__weakref__")

    def __init__(self, capacity: int = 64, slot_size: int = 2048, headroom: int = 64) -> None:
        handle = ffi.new("ikc_pktvec **")
        _check(lib.ikc_vec_new(capacity, slot_size, headroom, handle), "packet vector")
        v = self._v = ffi.gc(handle[0], lib.ikc_vec_free)
        self._n = ffi.new("uint32_t *")
        self.capacity, self.slot_size, self.headroom = capacity, slot_size, headroom
        self.buffer = memoryview(ffi.buffer(lib.ikc_vec_buf(v), capacity * slot_size))
        self.offsets = memoryview(ffi.buffer(lib.ikc_vec_offsets(v), 4 * capacity)).cast("I")
        self.lengths = memoryview(ffi.buffer(lib.ikc_vec_lengths(v), 4 * capacity)).cast("I")
        self.status = memoryview(ffi.buffer(lib.ikc_vec_status(v), 4 * capacity)).cast("i")
        self.next_headers = memoryview(ffi.buffer(lib.ikc_vec_next_headers(v), capacity))
        self.seqs = memoryview(ffi.buffer(lib.ikc_vec_seqs(v), 8 * capacity)).cast("Q")
        self._host = ffi.new("char[]", 64)
        self._port = ffi.new("uint16_t *")

    # ---- size and access ----

    @property
    def count(self) -> int:
        """Packets in use (slots 0 .. count-1)."""
        return lib.ikc_vec_count(self._v)

    @count.setter
    def count(self, value: int) -> None:
        _check(lib.ikc_vec_set_count(self._v, value), "packet count")

    def __len__(self) -> int:
        return lib.ikc_vec_count(self._v)

    def packet(self, i: int) -> memoryview:
        """Packet ``i`` as a writable view into the buffer (no copy)."""
        if not 0 <= i < self.capacity:
            raise IndexError(i)
        start = i * self.slot_size + self.offsets[i]
        return self.buffer[start:start + self.lengths[i]]

    __getitem__ = packet

    def slot(self, i: int) -> memoryview:
        """The whole slot ``i`` (write payloads at ``headroom``)."""
        if not 0 <= i < self.capacity:
            raise IndexError(i)
        return self.buffer[i * self.slot_size:(i + 1) * self.slot_size]

    # ---- filling and draining from Python ----

    def reset(self, count: int, length: int, next_header: int | None = None) -> None:
        """``count`` PENDING packets of ``length`` octets at ``headroom``; their
        contents are whatever the slots hold (write them through ``slot``)."""
        _check(lib.ikc_vec_reset(self._v, count, length, _nh_arg(next_header)), "reset")

    def load(self, packets: Iterable[bytes], next_header: int | None = None) -> None:
        """Copy packets in (one C call); each becomes PENDING, or ERR_BUFFER if it
        does not fit its slot."""
        packets = list(packets)
        if len(packets) > self.capacity:
            raise ValueError(f"{len(packets)} packets for a vector of {self.capacity}")
        lens = ffi.new("uint32_t[]", [len(p) for p in packets] or [0])
        data = b"".join(packets)
        _check(lib.ikc_vec_load(self._v, data, len(data), lens, len(packets),
                                _nh_arg(next_header)), "load")

    def set_packet(self, i: int, data: bytes, next_header: int | None = None) -> None:
        """Put one packet in slot ``i`` (at headroom, PENDING); grows ``count`` to i+1."""
        if not 0 <= i < self.capacity:
            raise IndexError(i)
        if len(data) > self.slot_size - self.headroom:
            raise ValueError("packet larger than the slot")
        start = i * self.slot_size + self.headroom
        self.buffer[start:start + len(data)] = data
        self.offsets[i] = self.headroom
        self.lengths[i] = len(data)
        self.status[i] = PENDING
        if next_header is not None:
            self.next_headers[i] = _nh_arg(next_header)
        if self.count <= i:
            self.count = i + 1

    def ok_packets(self) -> list[bytes]:
        """Copies of the packets with status OK, in order (one C gather call)."""
        n = self.count
        total = sum(self.lengths[i] for i in range(n) if self.status[i] == OK)
        out = ffi.new("uint8_t[]", max(total, 1))
        lens = ffi.new("uint32_t[]", max(n, 1))
        k, tot = ffi.new("uint32_t *"), ffi.new("size_t *")
        _check(lib.ikc_vec_gather(self._v, out, total, lens, n, k, tot), "gather")
        data = ffi.buffer(out, tot[0])[:]
        res, pos = [], 0
        for j in range(k[0]):
            res.append(data[pos:pos + lens[j]])
            pos += lens[j]
        return res

    def iter_status(self, status: int = OK) -> Iterator[int]:
        """Indices of the packets with this status."""
        st = self.status
        return (i for i in range(self.count) if st[i] == status)

    def mark_pending(self, status: int = OK) -> int:
        """Packets with ``status`` (default OK) become PENDING again, e.g. to hand
        packets an SA just encrypted to a decrypting SA. Returns how many."""
        _check(lib.ikc_vec_restatus(self._v, status, PENDING, self._n), "restatus")
        return self._n[0]

    def restatus(self, from_status: int, to_status: int) -> int:
        """Every packet with ``from_status`` gets ``to_status``; returns how many."""
        _check(lib.ikc_vec_restatus(self._v, from_status, to_status, self._n), "restatus")
        return self._n[0]

    def count_status(self, status: int) -> int:
        _check(lib.ikc_vec_count_status(self._v, status, self._n), "count")
        return self._n[0]

    # ---- UDP encapsulation (RFC 3948) ----

    def classify_udpencap(self) -> None:
        """For datagrams received on UDP 4500: keepalives (0xFF) become KEEPALIVE,
        IKE messages (non-ESP marker) become IKE with the marker stripped, ESP
        stays PENDING."""
        _check(lib.ikc_vec_classify_udpencap(self._v), "classify")

    def udp_wrap(self, src_port: int = 4500, dst_port: int = 4500) -> None:
        """Prepend an 8-octet UDP header (checksum 0) to every OK packet (raw sockets)."""
        _check(lib.ikc_vec_udp_wrap(self._v, src_port, dst_port), "UDP wrap")

    def udp_unwrap(self) -> None:
        """Strip the UDP header from every PENDING packet (raw sockets)."""
        _check(lib.ikc_vec_udp_unwrap(self._v), "UDP unwrap")

    # ---- socket / fd I/O in C ----

    def _io(self, rc: int, what: str) -> None:
        if rc == lib.IKC_ERR_IO:
            e = lib.ikc_vec_errno(self._v)
            raise OSError(e, f"{what}: {os.strerror(e)}")
        _check(rc, what)

    def recv(self, sock, max_packets: int = 0, *, wait: bool = True) -> int:
        """recvmmsg up to ``max_packets`` (0: capacity) datagrams into slots 0..;
        they become PENDING with their source address. ``wait``: block until
        at least one arrives (a blocking socket); False never blocks."""
        fd = sock if isinstance(sock, int) else sock.fileno()
        return self._read_retrying(lib.ikc_vec_recv, fd, max_packets, wait, "recvmmsg")

    def send(self, sock) -> int:
        """sendmmsg every OK packet to its address (or the connected peer); sent
        ones become SENT, so calling again retries only the rest."""
        fd = sock if isinstance(sock, int) else sock.fileno()
        self._io(lib.ikc_vec_send(self._v, fd, self._n), "sendmmsg")
        return self._n[0]

    def read_fd(self, fd: int, max_packets: int = 0, *, wait: bool = True) -> int:
        """Read packets from a TUN-style fd, one per read(), into slots 0..."""
        return self._read_retrying(lib.ikc_vec_read_fd, fd, max_packets, wait, "read")

    def _read_retrying(self, call, fd: int, max_packets: int, wait: bool, what: str) -> int:
        """One C read call, repeated when a signal interrupted it (EINTR)."""
        while True:
            rc = call(self._v, fd, max_packets, 1 if wait else 0, self._n)
            if rc == lib.IKC_ERR_IO and lib.ikc_vec_errno(self._v) == _errno.EINTR:
                continue
            self._io(rc, what)
            return self._n[0]

    def write_fd(self, fd: int) -> int:
        """Write every OK packet to a TUN-style fd, one per write()."""
        self._io(lib.ikc_vec_write_fd(self._v, fd, self._n), "write")
        return self._n[0]

    def address(self, i: int) -> tuple[str, int] | None:
        """Peer address of packet ``i`` (source after recv, destination for send)."""
        _check(lib.ikc_vec_get_addr(self._v, i, self._host, 64, self._port), "address")
        host = ffi.string(self._host).decode()
        return (host, self._port[0]) if host else None

    def set_address(self, i: int | None, addr: tuple[str, int] | None) -> None:
        """Destination of packet ``i`` (None: every slot); addr None clears it."""
        idx = _ALL if i is None else i
        if addr is None:
            _check(lib.ikc_vec_set_addr(self._v, idx, ffi.NULL, 0), "address")
        else:
            _check(lib.ikc_vec_set_addr(self._v, idx, addr[0].encode(), addr[1]), "address")

    def __repr__(self) -> str:
        return f"PacketVector(capacity={self.capacity}, slot_size={self.slot_size}, count={self.count})"


class InboundSATable:
    """Inbound SAs demultiplexed by SPI in C: one call decrypts a whole vector
    received on a shared socket. Packets for an unknown SPI get ERR_SPI.

    The C call compares each packet's SPI with the table's SAs in turn: right
    for a handful of SAs. A gateway's thousands go into a SelectorTable with
    ``bind`` instead, which finds each packet's SA by hash (ikecore.aio's
    DataPlane does)."""

    __slots__ = ("_sas", "_arr", "_n")

    def __init__(self, sas: Iterable = ()) -> None:
        self._sas: dict[int, object] = {}
        self._arr = None
        self._n = ffi.new("uint32_t *")
        for sa in sas:
            self.add(sa)

    def add(self, sa) -> None:
        self._sas[sa.spi] = sa
        self._arr = None

    def remove(self, spi: int) -> None:
        self._sas.pop(spi, None)
        self._arr = None

    def get(self, spi: int):
        return self._sas.get(spi)

    def __len__(self) -> int:
        return len(self._sas)

    def _handles(self):
        """(ikc_esp *[] of the SAs, how many) for the C calls; the SAs stay
        referenced by this table while they are in it."""
        if self._arr is None:
            handles = [sa._h for sa in self._sas.values()]
            self._arr = ffi.new("ikc_esp *[]", handles or 1)
        return self._arr, len(self._sas)

    def decrypt_batch(self, vec: PacketVector, *, out: PacketVector | None = None) -> int:
        arr, n = self._handles()
        rc = lib.ikc_esp_decrypt_vec_multi(arr, n, vec._v, out._v if out is not None else ffi.NULL, self._n)
        if rc:
            raise error_for(rc, "ESP decrypt batch")
        return self._n[0]


def decrypt_batch(vec: PacketVector, sas: Iterable, *, out: PacketVector | None = None) -> int:
    """Decrypt a vector whose packets belong to several SAs (chosen by SPI)."""
    return InboundSATable(sas).decrypt_batch(vec, out=out)
