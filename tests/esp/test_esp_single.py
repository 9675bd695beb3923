"""The single-packet API: round trips, framing, and hostile input."""
from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest

from esp_suites import SUITES, Suite, forge, trailer
from ikecore.errors import (IkeError, InvalidKey, InvalidTag, MalformedPacket, ReplayError,
                            UnsupportedAlgorithm)
from ikecore.esp import EspSA

SPI = 0x7001
ERRORS = (InvalidTag, ReplayError, MalformedPacket)

IPV4 = bytes.fromhex("45000054a6f200004001e778c6336405c0000205") + bytes(range(64))   # total length 84
IPV6 = bytes.fromhex("6000000000103a40") + bytes(16) + bytes(15) + b"\x01" + bytes(16)  # payload length 16


def _align(s):
    return 16 if s.encr_id == 12 else 4


@pytest.mark.parametrize("esn", [False, True])
def test_round_trip_all_sizes(suite, esn):
    tx, rx = suite.pair(SPI, esn=esn)
    for n in list(range(0, 70)) + [511, 512, 1400, 1500, 9000, 65000]:
        payload = os.urandom(n)
        pkt = tx.encrypt(payload, 17)
        assert len(pkt) == tx.packet_length(n)
        assert pkt[:4] == SPI.to_bytes(4, "big")
        assert (len(pkt) - tx.icv_length) % 4 == 0              # ICV 4-octet aligned
        assert (len(pkt) - 8 - tx.iv_length - tx.icv_length) % _align(suite) == 0
        assert rx.decrypt(pkt) == (payload, 17)


def test_sequence_numbers_and_ivs_are_unique(suite):
    tx = suite.sa(SPI, direction="out")
    pkts = [tx.encrypt(b"same payload", 6) for _ in range(200)]
    assert [int.from_bytes(p[4:8], "big") for p in pkts] == list(range(1, 201))
    ivs = {p[8:8 + tx.iv_length] for p in pkts}
    assert len(ivs) == 200
    assert len(set(pkts)) == 200


def test_bytes_like_inputs(suite):
    tx, rx = suite.pair(SPI)
    pkt = tx.encrypt(bytearray(b"abc"), 17)
    assert rx.decrypt(memoryview(pkt)) == (b"abc", 17)
    with pytest.raises(TypeError):
        tx.encrypt("text", 17)
    with pytest.raises(TypeError):
        rx.decrypt(12345)


def test_flipping_any_byte_fails(suite):
    tx, rx = suite.pair(SPI, replay_window=64)
    pkt = tx.encrypt(os.urandom(45), 4)
    for i in range(len(pkt)):
        for bit in (0x01, 0x80):
            bad = bytearray(pkt)
            bad[i] ^= bit
            with pytest.raises(ERRORS):
                rx.decrypt(bytes(bad))
    assert rx.replay_top == 0
    assert rx.decrypt(pkt)[1] == 4                  # the untouched packet still goes through


def test_truncated_at_every_length(suite):
    tx, rx = suite.pair(SPI)
    pkt = tx.encrypt(os.urandom(100), 17)
    for n in range(len(pkt)):
        with pytest.raises(ERRORS):
            rx.decrypt(pkt[:n])
    with pytest.raises(ERRORS):
        rx.decrypt(pkt + b"\x00")
    assert rx.decrypt(pkt)[0]


def test_wrong_spi(suite):
    tx = suite.sa(SPI, direction="out")
    rx = suite.sa(SPI + 1, direction="in")
    with pytest.raises(MalformedPacket):
        rx.decrypt(tx.encrypt(b"x", 17))
    assert rx.stats()["malformed"] == 1


def test_empty_payload_and_dummy_packets(suite):
    tx, rx = suite.pair(SPI)
    assert rx.decrypt(tx.encrypt(b"", 59)) == (b"", 59)
    assert rx.decrypt(tx.encrypt(b"", 6)) == (b"", 6)
    with pytest.raises(MalformedPacket):
        rx.decrypt(b"")


def test_oversized(suite):
    tx, rx = suite.pair(SPI)
    with pytest.raises(ValueError):
        tx.encrypt(bytes(70000), 17)
    with pytest.raises(ValueError):
        rx.decrypt(SPI.to_bytes(4, "big") + bytes(70000))
    with pytest.raises(ValueError):
        tx.encrypt(b"x", 256)


def test_bad_padding_is_refused_after_the_icv(suite):
    """Authentic packets whose padding is wrong: MalformedPacket, nothing released."""
    al = _align(suite)
    rx = suite.sa(SPI, direction="in")
    good = trailer(b"payload!", 17, al)
    assert rx.decrypt(forge(suite, SPI, 1, good)) == (b"payload!", 17)
    bad_bodies = []
    b = bytearray(trailer(b"payload!!", 17, al))       # padding 1,2,... changed
    if b[-2]:
        b[-3] ^= 0x55
        bad_bodies.append(bytes(b))
    bad_bodies.append(bytes(al - 2) + bytes([0xF0, 17]))   # pad length beyond the body
    bad_bodies.append(bytes(al * 2 - 2) + bytes([al * 2 - 1, 17]))
    for k, body in enumerate(bad_bodies, start=2):
        with pytest.raises(MalformedPacket):
            rx.decrypt(forge(suite, SPI, k, body))
    # the authentic-but-malformed packets still occupy their window slot
    with pytest.raises(ReplayError):
        rx.decrypt(forge(suite, SPI, 2, bad_bodies[0]))
    # misaligned encrypted part (not a multiple of 4 / the block)
    if suite.encr_id != 12:
        with pytest.raises(MalformedPacket):
            rx.decrypt(forge(suite, SPI, 20, b"abcde" + bytes([0, 17])))
    # padding check can be switched off for peers that pad otherwise
    lax = suite.sa(SPI, direction="in", check_padding=False)
    plen, pad = (6, 8) if suite.encr_id == 12 else (4, 2)
    body = b"\xaa" * plen + bytes(pad) + bytes([pad, 17])      # zero padding octets
    assert lax.decrypt(forge(suite, SPI, 1, body)) == (b"\xaa" * plen, 17)
    with pytest.raises(MalformedPacket):
        rx.decrypt(forge(suite, SPI, 30, body))


def test_random_garbage_never_crashes(suite):
    rx = suite.sa(SPI, direction="in")
    rnd = random.Random(1)
    for _ in range(1500):
        n = rnd.choice([rnd.randrange(0, 40), rnd.randrange(40, 300)])
        pkt = SPI.to_bytes(4, "big") + bytes(rnd.randrange(256) for _ in range(n))
        with pytest.raises(ERRORS):
            rx.decrypt(pkt)
    assert rx.replay_top == 0


def test_tfc_padding(suite):
    tx, rx = suite.pair(SPI)
    # tunnel mode: the inner IP length tells where TFC padding starts
    for inner, nh in ((IPV4, 4), (IPV6, 41)):
        pkt = tx.encrypt(inner, nh, tfc_pad=300)
        assert len(pkt) >= len(inner) + 300
        assert rx.decrypt(pkt) == (inner, nh)
    keep = suite.sa(SPI, direction="in", strip_tfc_padding=False)
    assert keep.decrypt(tx.encrypt(IPV4, 4, tfc_pad=10)) == (IPV4 + bytes(10), 4)
    # transport mode: ESP cannot know; the upper layer's length does
    assert rx.decrypt(tx.encrypt(b"udp", 17, tfc_pad=5)) == (b"udp" + bytes(5), 17)
    # a TFC-only dummy packet
    assert rx.decrypt(tx.encrypt(b"", 59, tfc_pad=64)) == (bytes(64), 59)


def test_construction_errors():
    with pytest.raises(InvalidKey):
        EspSA(SPI, 20, bytes(19))
    with pytest.raises(InvalidKey):
        EspSA(SPI, 28, bytes(32))
    with pytest.raises(InvalidKey):
        EspSA(SPI, 12, bytes(15), integ_id=12, integ_key=bytes(32))
    with pytest.raises(InvalidKey):
        EspSA(SPI, 12, bytes(16), integ_id=12, integ_key=bytes(20))
    with pytest.raises(UnsupportedAlgorithm):
        EspSA(SPI, 3, bytes(24))
    with pytest.raises(UnsupportedAlgorithm):
        EspSA(SPI, 12, bytes(16), integ_id=1, integ_key=bytes(16))     # HMAC-MD5-96: not implemented
    with pytest.raises(ValueError):
        EspSA(SPI, 20, bytes(20), integ_id=12, integ_key=bytes(32))
    with pytest.raises(ValueError):
        EspSA(-1, 20, bytes(20))
    with pytest.raises(ValueError):
        EspSA(SPI, 20, bytes(20), direction="sideways")


def test_direction_is_enforced(suite):
    out, inn = suite.pair(SPI)
    pkt = out.encrypt(b"x", 17)
    with pytest.raises(IkeError):
        out.decrypt(pkt)
    with pytest.raises(IkeError):
        inn.encrypt(b"x", 17)
    both = suite.sa(SPI)
    assert both.decrypt(both.encrypt(b"loop", 17)) == (b"loop", 17)


def test_stats(suite):
    tx, rx = suite.pair(SPI)
    for n in (10, 20, 30):
        rx.decrypt(tx.encrypt(bytes(n), 17))
    assert tx.stats()["packets"] == 3 and tx.stats()["octets"] == 60
    assert rx.stats() == {"packets": 3, "octets": 60, "auth_failed": 0, "replayed": 0, "malformed": 0}


def test_keys_as_ikev2_lays_them_out():
    """KEYMAT for AES-GCM-16/128: key_i2r 16 | salt_i2r 4 | key_r2i 16 | salt_r2i 4 (RFC 7296 §2.17)."""
    keymat = os.urandom(40)
    i2r_out = EspSA(SPI, 20, keymat[:20], direction="out")
    i2r_in = EspSA(SPI, 20, keymat[:20], direction="in")
    r2i_in = EspSA(SPI, 20, keymat[20:], direction="in")
    pkt = i2r_out.encrypt(b"hello", 17)
    assert i2r_in.decrypt(pkt) == (b"hello", 17)
    with pytest.raises(InvalidTag):
        r2i_in.decrypt(pkt)
    assert sorted(SUITES)   # keep the import used
    assert Suite("aes128gcm16").key


def test_gcm_iv_stays_the_sequence_number():
    """AES-GCM IVs come from OpenSSL's generator; they must still equal the
    sequence number after a packet with an explicit IV and after advance_seq."""
    from ikecore.esp import EspSA
    key = os.urandom(20)
    tx = EspSA(0x101, 20, key, direction="out")
    rx = EspSA(0x101, 20, key, direction="in", replay_window=0)
    packets = [tx.encrypt(b"a" * 10, 4) for _ in range(3)]
    packets.append(tx.encrypt_with_iv(b"b", 4, iv=(9).to_bytes(8, "big")))
    packets += [tx.encrypt(b"c", 4) for _ in range(2)]
    tx.advance_seq(1000)
    packets += [tx.encrypt(b"d", 4) for _ in range(2)]
    seqs = [int.from_bytes(p[4:8], "big") for p in packets]
    ivs = [int.from_bytes(p[8:16], "big") for p in packets]
    assert seqs == [1, 2, 3, 4, 5, 6, 1001, 1002]
    assert ivs == [1, 2, 3, 9, 5, 6, 1001, 1002]
    assert [rx.decrypt(p)[0] for p in packets] == [b"a" * 10] * 3 + [b"b", b"c", b"c", b"d", b"d"]


def test_fast_path_and_cffi_path_agree():
    """EspSA.encrypt/decrypt (C methods from ikecore._fastpath) and the cffi calls
    behind _encrypt_general/_decrypt_general are interchangeable: same packets,
    same errors."""
    from ikecore.errors import InvalidTag, MalformedPacket, ReplayError
    from ikecore.esp import sa as sa_module
    if sa_module._SinglePacketBase is sa_module._CffiSinglePacket:
        pytest.skip("ikecore._fastpath is not built")
    key = os.urandom(20)

    def pair():
        return (sa_module.EspSA(0x202, 20, key, direction="out"),
                sa_module.EspSA(0x202, 20, key, direction="in"))

    fast_tx, fast_rx = pair()
    fast = [fast_tx.encrypt(bytes([i]) * i, 4) for i in range(40)]
    slow_tx, slow_rx = pair()
    slow = [slow_tx._encrypt_general(bytes([i]) * i, 4) for i in range(40)]
    assert fast == slow                      # IV = sequence number on both paths
    assert [slow_rx._decrypt_general(p) for p in fast] == [(bytes([i]) * i, 4) for i in range(40)]
    assert [fast_rx.decrypt(p) for p in slow] == [(bytes([i]) * i, 4) for i in range(40)]
    for decrypt in (fast_rx.decrypt, slow_rx._decrypt_general):
        with pytest.raises(ReplayError):
            decrypt(slow[3])
    bad = bytearray(slow[5])
    bad[-1] ^= 1
    rx_fast, rx_slow = pair()[1], pair()[1]
    for decrypt in (rx_fast.decrypt, rx_slow._decrypt_general):
        with pytest.raises(InvalidTag):
            decrypt(bytes(bad))
    fresh_rx = pair()[1]
    for decrypt in (fresh_rx.decrypt, fresh_rx._decrypt_general):
        with pytest.raises(MalformedPacket):
            decrypt(b"\x00\x00\x02\x02")
    for encrypt in (fast_tx.encrypt, fast_tx._encrypt_general):
        with pytest.raises(ValueError):
            encrypt(b"x", 256)
    with pytest.raises(TypeError):
        fast_tx.encrypt("not bytes", 4)


def test_single_packet_calls_off_the_fast_path():
    """Keywords, TFC padding and non-bytes buffers leave the C method for the cffi
    path; the packets still open on the other side."""
    key = os.urandom(20)
    tx = EspSA(0x303, 20, key, direction="out")
    rx = EspSA(0x303, 20, key, direction="in")
    packets = [tx.encrypt(payload=b"kw", next_header=4),
               tx.encrypt(bytearray(b"ba"), 41),
               tx.encrypt(memoryview(b"mv"), 4, tfc_pad=7),
               tx.encrypt(b"big" * 1000, 4)]
    assert len(packets[2]) >= 8 + 8 + 2 + 7 + 2 + 16
    assert rx.decrypt(packet=packets[0]) == (b"kw", 4)
    assert rx.decrypt(bytearray(packets[1])) == (b"ba", 41)
    assert rx.decrypt(memoryview(packets[2])) == (b"mv" + bytes(7), 4)   # TFC stays: the inner header says where the payload ends
    assert rx.decrypt(packets[3]) == (b"big" * 1000, 4)
    with pytest.raises(TypeError):
        tx.encrypt(b"x")
    with pytest.raises(TypeError):
        rx.decrypt(b"x", b"y")


def test_esp_sa_without_the_fastpath_module():
    """Where ikecore._fastpath is not built, EspSA runs on cffi alone."""
    code = (
        "import sys, os; sys.modules['ikecore._fastpath'] = None\n"
        "from ikecore.esp import EspSA\n"
        "from ikecore.errors import ReplayError\n"
        "assert all(c.__module__ != 'ikecore._fastpath' for c in EspSA.__mro__)\n"
        "k = os.urandom(20); tx = EspSA(9, 20, k, direction='out'); rx = EspSA(9, 20, k, direction='in')\n"
        "p = tx.encrypt(b'abc', 4); assert rx.decrypt(p) == (b'abc', 4)\n"
        "try:\n    rx.decrypt(p)\nexcept ReplayError:\n    print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
