"""Anti-replay window (RFC 4303 §3.4.3, RFC 6479 bitmap), ESN inference
(RFC 4303 Appendix A2.2) and sequence-number exhaustion."""
from __future__ import annotations

import random

import pytest

from esp_suites import Suite, forge, trailer
from ikecore.errors import IkeError, InvalidTag, ReplayError, SequenceExhausted
from ikecore.esp import EspSA, PacketVector

SPI = 0x5000
S = Suite("aes128gcm16")
CBC = Suite("aes128-sha256")


def _packets(s: Suite, seqs, *, esn=False, payload=b"p" * 20):
    """{seq: packet} built by ikecore (the counter only moves forward)."""
    tx = s.sa(SPI, esn=esn, direction="out")
    out = {}
    for q in sorted(seqs):
        if q - 1 > tx.seq:
            tx.advance_seq(q - 1)
        out[q] = tx.encrypt(payload + q.to_bytes(8, "big"), 17)
    return out


class Model:
    """The RFC 4303 §3.4.3 receiver, in plain Python."""

    def __init__(self, w):
        self.w, self.top, self.seen = w, 0, set()

    def accept(self, s):
        if s == 0:
            return False
        if self.w and s <= self.top and (self.top - s >= self.w or s in self.seen):
            return False
        self.seen.add(s)
        self.top = max(self.top, s)
        return True


def test_first_packet_and_duplicate():
    pk = _packets(S, [1, 2])
    rx = S.sa(SPI, direction="in")
    assert rx.replay_top == 0
    assert rx.decrypt(pk[2])[1] == 17      # the first packet need not be seq 1
    assert rx.decrypt(pk[1])[1] == 17
    for q in (1, 2):
        with pytest.raises(ReplayError):
            rx.decrypt(pk[q])
    assert rx.stats()["replayed"] == 2 and rx.stats()["packets"] == 2


def test_sequence_zero_is_never_valid():
    rx = S.sa(SPI, direction="in")
    with pytest.raises(ReplayError):
        rx.decrypt(forge(S, SPI, 0, trailer(b"x", 17, 4)))


@pytest.mark.parametrize("w", [32, 64, 100, 1024, 4096])
def test_window_edges(w):
    top = w + 500
    pk = _packets(S, [top, top - w + 1, top - w, top - w - 1, top + 1])
    rx = S.sa(SPI, direction="in", replay_window=w)
    rx.decrypt(pk[top])
    rx.decrypt(pk[top - w + 1])            # the left edge: still inside
    for q in (top - w, top - w - 1):        # left of the window
        with pytest.raises(ReplayError):
            rx.decrypt(pk[q])
    with pytest.raises(ReplayError):
        rx.decrypt(pk[top - w + 1])
    rx.decrypt(pk[top + 1])                 # slides by one: top - w + 1 falls out
    assert rx.replay_top == top + 1


def test_far_ahead_and_back():
    far = 5 + 10**6
    pk = _packets(S, [5, 6, far - 63, far - 64, far])
    rx = S.sa(SPI, direction="in", replay_window=64)
    rx.decrypt(pk[5])
    rx.decrypt(pk[far])
    assert rx.replay_top == far
    for q in (6, far - 64):
        with pytest.raises(ReplayError):
            rx.decrypt(pk[q])
    rx.decrypt(pk[far - 63])                # inside: the jump cleared the old bits


def test_window_off_accepts_duplicates():
    pk = _packets(S, [3, 4])
    rx = S.sa(SPI, direction="in", replay_window=0)
    for _ in range(3):
        rx.decrypt(pk[4])
        rx.decrypt(pk[3])
    assert rx.replay_top == 4


@pytest.mark.parametrize("s", [S, CBC], ids=["gcm", "cbc"])
def test_window_moves_only_after_icv(s):
    pk = _packets(s, [10, 11])
    rx = s.sa(SPI, direction="in", replay_window=32)
    rx.decrypt(pk[10])
    forged = forge(s, SPI, 10**6, trailer(b"evil", 17, 4 if s.encr_id != 12 else 16), tamper_icv=True)
    with pytest.raises(InvalidTag):
        rx.decrypt(forged)
    assert rx.replay_top == 10
    rx.decrypt(pk[11])                      # not pushed out by the forgery
    # a verified-bad packet at a fresh number does not burn that number
    bad = bytearray(_packets(s, [12])[12])
    bad[-1] ^= 0x80
    with pytest.raises(InvalidTag):
        rx.decrypt(bytes(bad))
    assert rx.replay_top == 11
    assert rx.stats()["auth_failed"] == 2


@pytest.mark.parametrize("w", [32, 64, 256, 4096])
@pytest.mark.parametrize("esn", [False, True])
def test_random_reordering_matches_the_model(w, esn):
    rnd = random.Random(w * 7 + esn)
    base = (1 << 32) - 3 * w if esn else 1000   # ESN: run across the 2^32 boundary
    n = 6 * w
    seqs = list(range(base, base + n))
    pk = _packets(S, seqs, esn=esn)
    # reorder with bounded displacement (< w, so ESN inference is unambiguous), add duplicates
    order = sorted(seqs, key=lambda q: q + rnd.randrange(w))
    order += rnd.sample(seqs, n // 10)
    rnd.shuffle(order[-n // 5:])
    rx = S.sa(SPI, direction="in", replay_window=w, esn=esn)
    rx.resync_replay(base - 1)
    model = Model(w)
    model.top = base - 1
    model.seen.add(base - 1)
    for q in order:
        left_of_window = model.top - q >= w
        expect = model.accept(q)
        try:
            rx.decrypt(pk[q])
            got = True
            assert rx.last_decrypted_seq == q
        except ReplayError:
            got = False
        except InvalidTag:
            # RFC 4303 A2.2: with ESN, a low half left of the window is taken for
            # the next epoch, so the packet fails its ICV instead
            assert esn and left_of_window, q
            got = False
        assert got == expect, q
    assert rx.replay_top == model.top


def test_esn_rollover():
    edge = 1 << 32
    seqs = list(range(edge - 3, edge + 3))
    pk = _packets(S, seqs, esn=True)
    assert [int.from_bytes(pk[q][4:8], "big") for q in seqs] == [2**32 - 3, 2**32 - 2, 2**32 - 1, 0, 1, 2]
    rx = S.sa(SPI, direction="in", esn=True)
    rx.resync_replay(edge - 4)
    for q in (edge - 3, edge - 1, edge, edge + 2):
        rx.decrypt(pk[q])
        assert rx.last_decrypted_seq == q
    assert rx.replay_top == edge + 2
    # late packets from the old epoch (case B: Seqh = Th - 1) and the new one
    rx.decrypt(pk[edge - 2])
    assert rx.last_decrypted_seq == edge - 2
    rx.decrypt(pk[edge + 1])
    for q in seqs:
        with pytest.raises(ReplayError):
            rx.decrypt(pk[q])


def test_esn_previous_epoch_before_the_first_is_rejected():
    rx = S.sa(SPI, direction="in", esn=True)
    # top = 0, a low half near 2^32 would be epoch -1
    with pytest.raises(ReplayError):
        rx.decrypt(forge(S, SPI, 0xFFFFFFF0, trailer(b"x", 17, 4), esn=True))


def test_esn_without_window_infers_over_half_the_space():
    pk = _packets(S, [(1 << 32) + 5], esn=True)
    rx = S.sa(SPI, direction="in", esn=True, replay_window=0)
    rx.resync_replay((1 << 32) - 1000)
    rx.decrypt(pk[(1 << 32) + 5])
    assert rx.last_decrypted_seq == (1 << 32) + 5


@pytest.mark.parametrize("esn", [False, True])
def test_exhaustion_raises_never_wraps(esn):
    last = (1 << 64) - 1 if esn else (1 << 32) - 1
    tx = S.sa(SPI, esn=esn, direction="out")
    tx.advance_seq(last - 1)
    pkt = tx.encrypt(b"last", 17)
    assert tx.seq == last
    with pytest.raises(SequenceExhausted):
        tx.encrypt(b"one more", 17)
    assert tx.seq == last
    vec = PacketVector(4)
    vec.load([b"a", b"b"])
    assert tx.encrypt_batch(vec, next_header=17) == 0
    assert list(vec.status[:2]) == [-12, -12]
    rx = S.sa(SPI, esn=esn, direction="in")
    rx.resync_replay(last - 1)
    assert rx.decrypt(pkt) == (b"last", 17)
    with pytest.raises(ValueError):
        tx.advance_seq(last + 1)


def test_counter_only_moves_forward():
    tx = S.sa(SPI, direction="out")
    tx.advance_seq(100)
    with pytest.raises(IkeError):
        tx.advance_seq(99)
    assert int.from_bytes(tx.encrypt(b"", 59)[4:8], "big") == 101


def test_window_bounds():
    with pytest.raises(ValueError):
        S.sa(SPI, replay_window=-1)
    with pytest.raises(ValueError):
        S.sa(SPI, replay_window=(1 << 20) + 1)
    big = S.sa(SPI, direction="in", replay_window=1 << 20)
    pk = _packets(S, [1, (1 << 20)])
    big.decrypt(pk[1 << 20])
    big.decrypt(pk[1])                       # exactly at the left edge
    assert isinstance(big, EspSA)


@pytest.mark.parametrize("s", [S, CBC], ids=["gcm", "cbc"])
def test_sas_without_a_window_keep_their_replay_state(s):
    """Outbound SAs and SAs with the window off hold no bitmap (memory per SA):
    moving their replay state still works, and a both-ways SA still checks."""
    pk = _packets(s, [5, 6, 9])
    for rx in (s.sa(SPI, direction="out", replay_window=0), s.sa(SPI, direction="in", replay_window=0)):
        rx.resync_replay(7)
        assert rx.replay_top == 7
    rx = s.sa(SPI, direction="in", replay_window=0)
    rx.resync_replay(7)
    rx.decrypt(pk[5])                       # no window: left of the top is accepted
    both = s.sa(SPI, replay_window=64)      # one SA, both directions
    both.resync_replay(7)
    both.decrypt(pk[9])
    with pytest.raises(ReplayError):
        both.decrypt(pk[9])
    assert both.replay_top == 9
    assert both.decrypt(both.encrypt(b"x" * 10, 17))[0] == b"x" * 10
