"""The batch path: packet vectors, per-packet status, SPI demultiplexing, UDP
encapsulation and socket/fd I/O in C."""
from __future__ import annotations

import os
import socket

import pytest

from esp_suites import Suite, forge, trailer
from ikecore.esp import (DUMMY, EMPTY, IKE, KEEPALIVE, OK, PENDING, SENT, InboundSATable,
                         PacketVector, decrypt_batch, status_error, udpencap)
from ikecore.esp import batch as B
from ikecore.errors import InvalidTag, MalformedPacket, ReplayError

SPI = 0x9001
IPV4 = bytes.fromhex("45000054a6f200004001e778c6336405c0000205") + bytes(range(64))
IPV6 = bytes.fromhex("6000000000103a40") + bytes(32) + bytes(16)


def _payloads(n, seed=0):
    rnd = __import__("random").Random(seed)
    sizes = [0, 1, 2, 3, 15, 16, 17, 64, 512, 1400] + [rnd.randrange(0, 1500) for _ in range(n)]
    return [os.urandom(k) for k in sizes[:n]]


def test_batch_equals_single_bytes(suite):
    """Same keys, same sequence numbers: identical packets (AEAD IV = seq; for
    CBC the IV generator key is per SA, so compare lengths and cross-decrypt)."""
    payloads = _payloads(40)
    single_tx, single_rx = suite.pair(SPI)
    batch_tx, batch_rx = suite.pair(SPI)
    singles = [single_tx.encrypt(p, 17) for p in payloads]
    vec = PacketVector(64)
    vec.load(payloads, next_header=17)
    assert batch_tx.encrypt_batch(vec) == len(payloads)
    batched = [bytes(vec[i]) for i in range(len(payloads))]
    assert list(vec.seqs[:len(payloads)]) == list(range(1, len(payloads) + 1))
    if suite.encr_id != 12:
        assert batched == singles
    else:
        assert [len(b) for b in batched] == [len(s) for s in singles]
    # single decrypts batch output, batch decrypts single output
    assert [single_rx.decrypt(b) for b in batched] == [(p, 17) for p in payloads]
    vec2 = PacketVector(64)
    vec2.load(singles)
    assert batch_rx.decrypt_batch(vec2) == len(payloads)
    assert vec2.ok_packets() == payloads
    assert all(vec2.next_headers[i] == 17 for i in range(len(payloads)))


def test_in_place_equals_out_of_place(suite):
    payloads = _payloads(20, seed=3)
    a_tx, a_rx = suite.pair(SPI)
    b_tx, b_rx = suite.pair(SPI)
    src, dst = PacketVector(32), PacketVector(32)
    src.load(payloads, next_header=6)
    b_tx.encrypt_batch(src, out=dst)
    assert src.ok_packets() == [] and src.count_status(PENDING) == len(payloads)
    assert [bytes(src[i]) for i in range(len(payloads))] == payloads   # source untouched
    a_tx.encrypt_batch(src)
    if suite.encr_id != 12:
        assert src.ok_packets() == dst.ok_packets()
    # decrypt out of place into a third vector, in place in the other
    plain = PacketVector(32)
    assert src.mark_pending() == len(payloads)
    assert dst.mark_pending() == len(payloads)
    assert a_rx.decrypt_batch(src, out=plain) == len(payloads)
    assert plain.ok_packets() == payloads
    assert b_rx.decrypt_batch(dst) == len(payloads)
    assert dst.ok_packets() == payloads


def test_per_packet_status_for_bad_input(suite):
    tx, rx = suite.pair(SPI, replay_window=64)
    good = [tx.encrypt(b"packet %d" % i, 17) for i in range(6)]
    other = suite.sa(SPI + 5, direction="out").encrypt(b"other", 17)
    flipped = bytearray(good[2])
    flipped[-3] ^= 1
    packets = [
        good[0],                     # 0 ok
        good[0],                     # 1 replay (within one batch)
        bytes(flipped),              # 2 bad ICV
        good[3][:11],                # 3 truncated
        b"",                         # 4 empty
        other,                       # 5 wrong SPI
        good[4],                     # 6 ok
        bytes(3000),                 # 7 larger than the slot
        good[2],                     # 8 ok: the forgery did not burn its number
        forge(suite, SPI, 40, trailer(b"dummy", 59, 16 if suite.encr_id == 12 else 4)),   # 9 dummy
    ]
    vec = PacketVector(16, slot_size=2048)
    vec.load(packets)
    assert vec.status[7] == B.ERR_BUFFER
    assert rx.decrypt_batch(vec) == 3
    st = list(vec.status[:len(packets)])
    assert st[0] == OK and st[6] == OK and st[8] == OK
    assert st[1] == B.ERR_REPLAY
    assert st[2] == B.ERR_TAG
    assert st[3] in (B.ERR_TRUNCATED, B.ERR_PADDING)
    assert st[4] == B.ERR_TRUNCATED
    assert st[5] == B.ERR_SPI
    assert st[7] == B.ERR_BUFFER
    assert st[9] == DUMMY and bytes(vec[9]) == b"dummy" and vec.next_headers[9] == 59
    assert isinstance(status_error(st[1]), ReplayError)
    assert isinstance(status_error(st[2]), InvalidTag)
    assert isinstance(status_error(st[5]), MalformedPacket)
    assert status_error(OK) is None
    assert vec.ok_packets() == [b"packet 0", b"packet 4", b"packet 2"]
    assert rx.replay_top == 40
    # the bad ICV packet left no plaintext behind in the buffer
    assert b"packet 2" not in bytes(vec.slot(2))


def test_encrypt_status_when_slot_too_small(suite):
    tx = suite.sa(SPI, direction="out")
    vec = PacketVector(4, slot_size=256, headroom=64)
    vec.load([bytes(100), bytes(192), bytes(150)], next_header=17)
    tx.encrypt_batch(vec)
    assert vec.status[0] == OK
    assert vec.status[1] == B.ERR_BUFFER    # no tailroom left for padding and ICV
    assert vec.status[2] in (OK, B.ERR_BUFFER)
    nohead = PacketVector(2, slot_size=256, headroom=8)
    nohead.load([b"x"], next_header=17)
    tx.encrypt_batch(nohead)
    assert nohead.status[0] == B.ERR_BUFFER  # no headroom for SPI/seq/IV
    # failed packets consumed no sequence numbers
    assert tx.seq == vec.count_status(OK)


def test_next_header_from_ip_version():
    s = Suite("aes256gcm16")
    tx, rx = s.pair(SPI)
    vec = PacketVector(8)
    vec.load([IPV4, IPV6, b"\x10junk"])
    assert tx.encrypt_batch(vec, next_header="ip") == 2
    assert vec.status[2] < 0
    vec.status[2] = EMPTY
    for i in range(2):
        vec.status[i] = PENDING
    rx.decrypt_batch(vec)
    assert (bytes(vec[0]), vec.next_headers[0]) == (IPV4, 4)
    assert (bytes(vec[1]), vec.next_headers[1]) == (IPV6, 41)


def test_inbound_table_demultiplexes_by_spi():
    suites = [Suite(n) for n in ("aes128gcm16", "chacha20poly1305", "aes256-sha512")]
    pairs = [s.pair(SPI + k) for k, s in enumerate(suites)]
    packets, expect = [], []
    for i in range(30):
        k = i % 3
        p = b"to sa %d #%d" % (k, i)
        packets.append(pairs[k][0].encrypt(p, 6))
        expect.append(p)
    packets.append(suites[0].sa(0xDEAD, direction="out").encrypt(b"?", 6))
    vec = PacketVector(64)
    vec.load(packets)
    table = InboundSATable(rx for _, rx in pairs)
    assert len(table) == 3 and table.get(SPI + 1) is pairs[1][1]
    assert table.decrypt_batch(vec) == 30
    assert vec.ok_packets() == expect
    assert vec.status[30] == B.ERR_SPI
    vec.load(packets[:3])
    assert decrypt_batch(vec, [rx for _, rx in pairs]) == 0       # all replays now
    assert list(vec.status[:3]) == [B.ERR_REPLAY] * 3
    table.remove(SPI)
    vec.load(packets[:1])
    assert table.decrypt_batch(vec) == 0 and vec.status[0] == B.ERR_SPI


def test_classify_udpencap():
    s = Suite("aes128gcm16")
    tx, rx = s.pair(SPI)
    esp = tx.encrypt(b"inner", 4)
    ike = udpencap.add_non_esp_marker(b"\x11" * 28)
    vec = PacketVector(8)
    vec.load([b"\xff", ike, esp, b"\x00\x00", b"\x01\x02\x03"])
    vec.classify_udpencap()
    assert list(vec.status[:5]) == [KEEPALIVE, IKE, PENDING, B.ERR_TRUNCATED, B.ERR_TRUNCATED]
    assert bytes(vec[1]) == b"\x11" * 28        # marker stripped
    assert rx.decrypt_batch(vec) == 1
    assert vec.ok_packets() == [b"inner"]
    assert vec.status[1] == IKE                 # left for the IKE stack


def test_single_udpencap_helpers():
    assert udpencap.classify(b"\xff") == (udpencap.Kind.KEEPALIVE, b"")
    assert udpencap.classify(b"\x00\x00\x00\x00IKE!") == (udpencap.Kind.IKE, b"IKE!")
    assert udpencap.classify(b"\x00\x00\x12\x34" + bytes(10))[0] == udpencap.Kind.ESP
    with pytest.raises(MalformedPacket):
        udpencap.classify(b"\x01\x02")
    d = udpencap.wrap(b"espdata!", 4500, 4501)
    assert d[:8] == bytes.fromhex("1194119500100000")
    assert udpencap.unwrap(d + b"trailing") == (4500, 4501, b"espdata!")
    with pytest.raises(MalformedPacket):
        udpencap.unwrap(d[:7])
    with pytest.raises(MalformedPacket):
        udpencap.unwrap(d[:12])


def test_vector_udp_wrap_unwrap():
    s = Suite("chacha20poly1305")
    tx, rx = s.pair(SPI)
    vec = PacketVector(4)
    vec.load([b"a" * 10, b"b" * 20], next_header=17)
    tx.encrypt_batch(vec)
    esp = vec.ok_packets()
    vec.udp_wrap(4500, 4500)
    wrapped = vec.ok_packets()
    assert wrapped == [udpencap.wrap(e) for e in esp]
    vec.mark_pending()
    vec.udp_unwrap()
    vec.classify_udpencap()
    assert rx.decrypt_batch(vec) == 2
    assert vec.ok_packets() == [b"a" * 10, b"b" * 20]


@pytest.mark.parametrize("family,host", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_udp_socket_round_trip(family, host):
    """Fill the vector with recvmmsg and drain it with sendmmsg: no Python object per packet."""
    s = Suite("aes128gcm16")
    tx, rx = s.pair(SPI)
    try:
        a = socket.socket(family, socket.SOCK_DGRAM)
        b = socket.socket(family, socket.SOCK_DGRAM)
    except OSError:
        pytest.skip("address family unavailable")
    with a, b:
        a.bind((host, 0))
        b.bind((host, 0))
        b.settimeout(None)
        bport = b.getsockname()[1]
        payloads = _payloads(32, seed=9)
        out = PacketVector(64)
        out.load(payloads, next_header=17)
        assert tx.encrypt_batch(out) == 32
        out.set_address(None, (host, bport))
        assert out.address(5) == (host, bport)
        # a keepalive and an IKE message share the port
        a.sendto(b"\xff", (host, bport))
        assert out.send(a) == 32
        a.sendto(udpencap.add_non_esp_marker(b"IKE message"), (host, bport))
        assert out.count_status(SENT) == 32
        inv = PacketVector(64)
        got = 0
        kinds = []
        plain = []
        while got < 34:
            n = inv.recv(b)
            assert n >= 1
            got += n
            assert inv.address(0)[1] == a.getsockname()[1]
            inv.classify_udpencap()
            kinds += [inv.status[i] for i in range(n)]
            rx.decrypt_batch(inv)
            plain += inv.ok_packets()
        assert plain == payloads
        assert kinds.count(KEEPALIVE) == 1 and kinds.count(IKE) == 1
        assert inv.recv(b, wait=False) == 0          # nothing left, never blocks


def test_recv_truncates_large_datagrams_to_a_status():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, \
         socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
        b.bind(("127.0.0.1", 0))
        a.sendto(bytes(1500), b.getsockname())
        a.sendto(bytes(100), b.getsockname())
        vec = PacketVector(4, slot_size=1024, headroom=64)
        n = 0
        while n < 2:
            n += vec.recv(b, wait=True) if n == 0 else vec.recv(b, wait=False)
        assert vec.status[0] == B.ERR_BUFFER


def test_fd_io_with_datagram_socketpair():
    s = Suite("aes128-sha256")
    tx, rx = s.pair(SPI)
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with left, right:
        vec = PacketVector(16)
        vec.load([IPV4, IPV6, IPV4[:40]])
        # a TUN device hands out IP packets: encrypt them with the next header from the IP version
        tx.encrypt_batch(vec, next_header="ip")
        assert vec.write_fd(left.fileno()) == 3
        inv = PacketVector(16)
        assert inv.read_fd(right.fileno()) == 3
        assert rx.decrypt_batch(inv) == 3
        assert inv.ok_packets() == [IPV4, IPV6, IPV4[:40]]
        assert inv.read_fd(right.fileno(), wait=False) == 0


def test_socket_errors_raise_oserror():
    vec = PacketVector(2)
    r, w = os.pipe()
    os.close(w)
    with pytest.raises(OSError):
        vec.recv(r)
    os.close(r)


def test_vector_argument_checks():
    with pytest.raises(ValueError):
        PacketVector(0)
    with pytest.raises(ValueError):
        PacketVector(4, slot_size=256, headroom=256)
    vec = PacketVector(2, slot_size=256)
    with pytest.raises(ValueError):
        vec.load([b"a", b"b", b"c"])
    with pytest.raises(ValueError):
        vec.set_packet(0, bytes(300))
    vec.set_packet(1, b"xyz", next_header=6)
    assert vec.count == 2 and bytes(vec[1]) == b"xyz" and vec.status[1] == PENDING
    with pytest.raises(IndexError):
        vec.packet(2)
    # hostile offsets written through the views are caught in C, not followed
    s = Suite("aes128gcm16")
    tx, rx = s.pair(SPI)
    vec.offsets[1] = 250
    vec.lengths[1] = 100
    tx.encrypt_batch(vec, next_header=6)
    assert vec.status[1] == B.ERR_BUFFER or vec.status[1] < 0
    vec.status[1] = PENDING
    rx.decrypt_batch(vec)
    assert vec.status[1] < 0
    with pytest.raises(ValueError):
        vec.set_address(0, ("not an address", 1))
    vec.set_address(0, None)
    assert vec.address(0) is None
