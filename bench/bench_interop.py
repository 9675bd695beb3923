"""Figures against strongSwan (needs root and strongSwan, like tests/interop):
full handshakes per second with ikecore as initiator and as responder, and
ICMP round trips through ikecore's ESP and strongSwan's kernel-libipsec."""
from __future__ import annotations

import statistics
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "interop"))
import sswan  # noqa: E402
from ikecore_side import IkecoreSide, icmp_echo, parse_icmp  # noqa: E402
from ikecore.protocol import events as ev  # noqa: E402
from ikecore.protocol.config import (ChildConfig, EspProposal, IkeProposal,  # noqa: E402
                                     TrafficSelectorSpec, psk_config)

pytestmark = pytest.mark.skipif(bool(sswan.available()), reason=str(sswan.available()))
HANDSHAKES = 40
RESPONDER_CYCLES = 8


def _config(initiator: bool):
    me, peer = ("init@test", "resp@test") if initiator else ("resp@test", "init@test")
    child = ChildConfig("net", [TrafficSelectorSpec.parse("10.88.1.1/32")],
                        [TrafficSelectorSpec.parse("10.88.2.1/32")], [EspProposal.parse("aes256gcm16")])
    return psk_config(me, peer, sswan.PSK.encode(), proposals=[IkeProposal.parse("aes256gcm16-prfsha256-x25519")],
                      children=[child], dpd_delay=0, retransmit_timeout=1.0)


@pytest.fixture
def peer(tmp_path):
    p = sswan.Peer(tmp_path / "charon", ike_proposals="aes256gcm16-prfsha256-x25519",
                   esp_proposals="aes256gcm16", extra_conn="unique = never")
    p.netns_up()
    try:
        p.start()
        yield p
    finally:
        p.stop()
        p.netns_down()


def test_handshakes_ikecore_initiator(peer, benchmark):
    side = IkecoreSide(_config(True), peer.host_addr)
    try:
        t0 = time.perf_counter()
        for i in range(HANDSHAKES):
            n = sum(isinstance(e, ev.ChildSaInstalled) for e in side.events)
            side.ep.connect(side.config, (peer.host_addr, 500), (peer.peer_addr, 500), time.monotonic())
            assert side.pump(lambda: sum(isinstance(e, ev.ChildSaInstalled) for e in side.events) > n, timeout=10)
        elapsed = time.perf_counter() - t0
        rate = HANDSHAKES / elapsed
        # ping round trips through the last Child SA
        rtts = []
        out = list(side.sas.values())[-1][0]
        for seq in range(1, 21):
            before = len(side.esp_in)
            t = time.perf_counter()
            side.socks[4500].sendto(out.encrypt(icmp_echo("10.88.1.1", "10.88.2.1", 7, seq), 4), (peer.peer_addr, 4500))
            assert side.pump(lambda: any((parse_icmp(p) or {}).get("seq") == seq for p, _ in side.esp_in[before:]),
                             timeout=3)
            rtts.append((time.perf_counter() - t) * 1000)
        benchmark.extra_info.update({"handshakes_per_s": rate, "handshakes": HANDSHAKES,
                                     "ping_rtt_ms_median": statistics.median(rtts), "ping_rtt_ms_max": max(rtts)})
        print(f"\nikecore initiator -> strongSwan responder: {rate:.1f} handshakes/s "
              f"(IKE_SA_INIT + IKE_AUTH + Child SA, {HANDSHAKES} in {elapsed:.2f}s); "
              f"ICMP RTT median {statistics.median(rtts):.3f} ms, max {max(rtts):.3f} ms")
        benchmark.pedantic(lambda: None, rounds=1)
    finally:
        side.close()


def test_handshakes_ikecore_responder(tmp_path, benchmark):
    peer = sswan.Peer(tmp_path / "charon-i", local_id="init@test", remote_id="resp@test",
                      ike_proposals="aes256gcm16-prfsha256-x25519", esp_proposals="aes256gcm16",
                      extra_conn="unique = never")
    peer.netns_up()
    side = None
    try:
        peer.start()
        side = IkecoreSide(_config(False), peer.host_addr)
        t0 = time.perf_counter()
        for _ in range(RESPONDER_CYCLES):
            result = {}
            th = threading.Thread(target=lambda: result.setdefault("r", peer.initiate()))
            th.start()
            side.pump(lambda: not th.is_alive(), timeout=15)
            th.join(5)
            assert "initiate completed successfully" in result["r"].stdout
            # strongSwan will not duplicate the Child SA: delete before the next round
            th = threading.Thread(target=peer.terminate_ike)
            th.start()
            side.pump(lambda: not th.is_alive(), timeout=15)
            th.join(5)
        elapsed = time.perf_counter() - t0
        rate = RESPONDER_CYCLES / elapsed
        benchmark.extra_info.update({"cycles_per_s": rate, "cycles": RESPONDER_CYCLES})
        print(f"\nstrongSwan initiator -> ikecore responder: {rate:.1f} establish+delete cycles/s "
              f"(each started and ended by swanctl processes, whose start-up is included)")
        benchmark.pedantic(lambda: None, rounds=1)
    finally:
        if side is not None:
            side.close()
        peer.stop()
        peer.netns_down()
