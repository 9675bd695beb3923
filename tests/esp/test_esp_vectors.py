"""Published ESP known-answer vectors, each file carrying its source:

- tests/vectors/gcm_esp_mcgrew.json: draft-mcgrew-gcm-test-01 §4, AES-GCM-16 ESP
  packets (128/192/256-bit keys) incl. the 64-bit (ESN) sequence number cases;
- tests/vectors/rfc7634_chacha20poly1305.json: RFC 7634 Appendix A (ESP example);
- tests/vectors/rfc3602_aes_cbc_esp.json: RFC 3602 §4 sample ESP packets #5-#8
  (AES-128-CBC without an ICV: confidentiality-only ESP).

Each packet is rebuilt bit for bit by ``encrypt_with_iv`` (the KAT hook: the
draft's IVs are not sequence numbers) and opened by ``decrypt``, single and batch.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ikecore.errors import InvalidTag
from ikecore.esp import OK, EspSA, PacketVector

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def _load(name):
    return json.loads((VECTORS / name).read_text())


GCM = _load("gcm_esp_mcgrew.json")
CHACHA = _load("rfc7634_chacha20poly1305.json")
CBC = _load("rfc3602_aes_cbc_esp.json")


def _split_trailer(plain: bytes) -> tuple[bytes, int]:
    pad = plain[-2]
    return plain[:-2 - pad], plain[-1]


def test_sources_are_recorded():
    for d in (GCM, CHACHA, CBC):
        assert d["source"] and d["verified_with"]
    assert "draft-mcgrew-gcm-test" in GCM["source"]
    assert "RFC 7634" in CHACHA["source"]
    assert "RFC 3602" in CBC["source"]


@pytest.mark.parametrize("case", GCM["cases"], ids=lambda c: f"mcgrew-{c['case']}")
def test_mcgrew_gcm_encrypt(case):
    seq = int(case["seq"], 16)
    payload, nh = _split_trailer(bytes.fromhex(case["plaintext"]))
    sa = EspSA(int(case["spi"], 16), 20, bytes.fromhex(case["keymat"]), esn=case["esn"],
               direction="out")
    sa.advance_seq(seq - 1)
    pkt = sa.encrypt_with_iv(payload, nh, bytes.fromhex(case["iv"]))
    assert pkt.hex() == case["esp_packet"]
    assert sa.seq == seq


@pytest.mark.parametrize("case", GCM["cases"], ids=lambda c: f"mcgrew-{c['case']}")
def test_mcgrew_gcm_decrypt(case):
    seq = int(case["seq"], 16)
    payload, nh = _split_trailer(bytes.fromhex(case["plaintext"]))
    packet = bytes.fromhex(case["esp_packet"])
    assert int(case["seq_low32"], 16) == seq & 0xFFFFFFFF
    sa = EspSA(int(case["spi"], 16), 20, bytes.fromhex(case["keymat"]), esn=case["esn"],
               direction="in")
    if seq > 1:
        # the receiver has seen seq - 1: its ESN inference must yield the case's high half
        sa.resync_replay(seq - 1)
    assert sa.decrypt(packet) == (payload, nh)
    assert sa.last_decrypted_seq == seq
    assert sa.replay_top == seq
    # the batch path on a fresh receiver gives the same
    rx = EspSA(int(case["spi"], 16), 20, bytes.fromhex(case["keymat"]), esn=case["esn"],
               direction="in")
    if seq > 1:
        rx.resync_replay(seq - 1)
    vec = PacketVector(4)
    vec.load([packet])
    assert rx.decrypt_batch(vec) == 1
    assert vec.status[0] == OK
    assert bytes(vec[0]) == payload and vec.next_headers[0] == nh and vec.seqs[0] == seq


@pytest.mark.parametrize("case", [c for c in GCM["cases"] if c["esn"]][:4],
                         ids=lambda c: f"mcgrew-{c['case']}")
def test_mcgrew_esn_high_half_is_authenticated(case):
    """With ESN the high 32 bits enter the AAD: a receiver inferring another
    epoch must reject the packet."""
    seq = int(case["seq"], 16)
    sa = EspSA(int(case["spi"], 16), 20, bytes.fromhex(case["keymat"]), esn=True, direction="in")
    wrong = ((seq >> 32) ^ 1) << 32 | (seq & 0xFFFFFFFF)
    sa.resync_replay(max(wrong - 1, 1))
    with pytest.raises(InvalidTag):
        sa.decrypt(bytes.fromhex(case["esp_packet"]))
    assert sa.replay_top == max(wrong - 1, 1)   # the window did not move


def test_rfc7634_appendix_a():
    ex = CHACHA["esp_example"]
    assert ex["keymat"] == ex["key"] + ex["salt"]
    spi, seq = int(ex["spi"], 16), int(ex["seq"], 16)
    payload = bytes.fromhex(ex["inner_packet"])
    tx = EspSA(spi, 28, bytes.fromhex(ex["keymat"]), direction="out")
    tx.advance_seq(seq - 1)
    pkt = tx.encrypt_with_iv(payload, ex["next_header"], bytes.fromhex(ex["iv"]))
    assert pkt.hex() == ex["esp_packet_assembled"]
    assert pkt[8:16].hex() == ex["iv"]
    assert pkt[-16:].hex() == ex["tag"]
    rx = EspSA(spi, 28, bytes.fromhex(ex["keymat"]), direction="in")
    rx.resync_replay(seq - 1)
    assert rx.decrypt(pkt) == (payload, 4)


def test_rfc7634_iv_is_the_sequence_number():
    """RFC 7634 §2: a counter IV whose low 32 bits equal the ESP sequence number."""
    ex = CHACHA["esp_example"]
    tx = EspSA(int(ex["spi"], 16), 28, bytes.fromhex(ex["keymat"]))
    for expect in (1, 2, 3):
        pkt = tx.encrypt(b"x" * 10, 4)
        assert int.from_bytes(pkt[4:8], "big") == expect
        assert int.from_bytes(pkt[8:16], "big") == expect


CBC_PACKETS = [c for c in CBC["cases"] if "esp_packet_without_ip" in c]


@pytest.mark.parametrize("case", CBC_PACKETS, ids=lambda c: f"rfc3602-{c['case']}")
def test_rfc3602_sample_packets(case):
    key = bytes.fromhex(case["key"])
    spi, seq = int(case["spi_hex"], 16), case["seq"]
    payload, nh = _split_trailer(bytes.fromhex(case["plaintext_with_trailer"]))
    packet = bytes.fromhex(case["esp_packet_without_ip"])
    # RFC 3602's samples carry no ICV: confidentiality-only ESP (RFC 4303 §3.2)
    tx = EspSA(spi, 12, key, allow_no_integrity=True, direction="out")
    tx.advance_seq(seq - 1)
    assert tx.encrypt_with_iv(payload, nh, bytes.fromhex(case["iv"])) == packet
    rx = EspSA(spi, 12, key, allow_no_integrity=True, direction="in")
    assert rx.decrypt(packet) == (payload, nh)


def test_cbc_without_integrity_needs_opt_in():
    with pytest.raises(ValueError):
        EspSA(0x4321, 12, bytes(16))
