"""Bad input: garbage datagrams, an IKE_SA_INIT flood (cookies engage above the
half-open threshold and a legitimate peer still connects), a peer that
vanishes (liveness checks delete its SAs). In every case the gateway keeps
serving every other peer."""
from __future__ import annotations

import asyncio
import os
import socket
import struct

from aio_helpers import exchange_traffic, ike_configs, initiator, pair, responder, run
from ikecore.protocol import events as ev
from ikecore.protocol.endpoint import IkeEndpoint


def _udp_to(addr, family=socket.AF_INET):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


def test_garbage_is_dropped_and_service_continues():
    async def body():
        gi, gr, conn = await pair()
        s = _udp_to(None)
        try:
            rng = os.urandom
            [rchild] = gr.child_sas()
            junk = [b"", b"\x00", b"\xff\xff", rng(3), rng(27), rng(28), rng(200), rng(1500),
                    # an IKE header claiming a huge length / unknown next payload / version 3
                    bytes(8) + bytes(8) + bytes([41, 0x20, 34, 0x08]) + struct.pack("!II", 0, 0xFFFFFFF0),
                    rng(16) + bytes([0xEE, 0x20, 35, 0x08]) + struct.pack("!II", 1, 28),
                    rng(16) + bytes([33, 0x30, 34, 0x08]) + struct.pack("!II", 0, 28),
                    # IKE_AUTH for the live SA's SPIs with a garbage SK payload
                    conn.spi_i + conn.spi_r + bytes([46, 0x20, 35, 0x08]) + struct.pack("!II", 7, 60) +
                    bytes([0, 0, 0, 32]) + rng(28)]
            for d in junk:
                s.sendto(d, ("127.0.0.1", gr.port))
            natt_junk = [b"\x00\x00\x00\x00" + d for d in junk] + [rng(5), rng(40), rng(1400),
                                                                    b"\x00\x00\x00\x00",
                                                                    rchild.spi_in + rng(60),   # bad ICV
                                                                    b"\x00\x00\x00\x07" + rng(60)]
            for d in natt_junk:
                s.sendto(d, ("127.0.0.1", gr.natt_port))
            # let the gateway read all of it
            for _ in range(200):
                st = gr.stats()
                if st["gateway"]["ike_rx"] + st["gateway"]["natt_rx"] >= len(junk) + len(natt_junk) + 2:
                    break
                await asyncio.sleep(0.005)
            st = gr.stats()
            assert st["gateway"]["internal_errors"] == 0
            assert st["endpoint"]["dropped"] > 0
            assert st["dataplane"]["counters"]["auth_failed"] >= 1
            assert st["dataplane"]["counters"]["unknown_spi"] >= 1
            # the tunnel still works, and a new peer still connects
            await exchange_traffic(gi, gr, "127.0.0.1", 10)
            ci2, _ = ike_configs(i_id="second@test")
            g2 = await initiator(ci2, gr)
            try:
                c2 = await g2.initiate("to-r", timeout=10)
                assert c2.established and len(gr.connections) == 2
            finally:
                await g2.stop()
        finally:
            s.close()
            await gi.stop()
            await gr.stop()
    run(body())


def _init_requests(n: int, ci, target) -> list[bytes]:
    """n distinct IKE_SA_INIT requests (fresh SPIs, nonces, key shares), never continued."""
    ep = IkeEndpoint(None, rng=os.urandom, now=0.0)
    out = []
    for _ in range(n):
        ep.connect(ci, ("127.0.0.1", 1), target, 0.0)
        out += [d for d, _, _ in ep.datagrams_to_send()]
    return out


def test_init_flood_engages_cookies_and_legitimate_peers_connect():
    async def body():
        threshold = 5
        ci, cr = ike_configs()
        gr = await responder(cr, cookie_threshold=threshold)
        s = _udp_to(None)
        try:
            flood = _init_requests(40, ci, ("127.0.0.1", gr.port))
            for d in flood:
                s.sendto(d, ("127.0.0.1", gr.port))
            for _ in range(400):
                if gr.stats()["gateway"]["ike_rx"] >= len(flood):
                    break
                await asyncio.sleep(0.005)
            ep_stats = gr.stats()["endpoint"]
            assert gr.endpoint.half_open == threshold          # no state beyond the threshold
            assert ep_stats["cookies_sent"] == len(flood) - threshold
            # what the flooder got back: COOKIE notifies (stateless) beyond the threshold
            replies = []
            while True:
                try:
                    replies.append(s.recv(2048))
                except BlockingIOError:
                    break
            cookie_replies = [r for r in replies if len(r) < 100 and struct.unpack_from("!H", r, 28 + 6)[0] == 16390]
            assert len(cookie_replies) == len(flood) - threshold
            # a legitimate initiator answers the cookie challenge and gets in
            gi = await initiator(ci, gr)
            try:
                conn = await gi.initiate("to-r", timeout=10)
                assert conn.established
                assert gr.stats()["endpoint"]["cookies_sent"] > len(flood) - threshold
                await exchange_traffic(gi, gr, "127.0.0.1", 10)
            finally:
                await gi.stop()
        finally:
            s.close()
            await gr.stop()
    run(body())


def test_vanished_peer_is_deleted_by_liveness_checks_others_unaffected():
    async def body():
        ci, cr = ike_configs(dpd_delay=0.2, retransmit_timeout=0.05, retransmit_tries=2)
        gr = await responder(cr)
        ga = await initiator(ike_configs(i_id="alive@test")[0], gr)
        gb = await initiator(ike_configs(i_id="vanishing@test")[0], gr)
        try:
            await ga.initiate("to-r", timeout=10)
            await gb.initiate("to-r", timeout=10)
            assert len(gr.connections) == 2
            b_natt = gb.natt_port
            gb.abort()                     # gone without a Delete
            _, e = await gr.wait_for(ev.IkeSaDeleted, timeout=30,
                                     predicate=lambda c, e: c.remote[1] == b_natt)
            assert e.reason == "peer unresponsive"
            [left] = gr.connections
            assert left.remote[1] == ga.natt_port
            # the live peer answered its checks and still has its tunnel
            await gr.wait_for(ev.PeerAlive, left, timeout=30)
            await exchange_traffic(ga, gr, "127.0.0.1", 10)
            assert all(s.conn is not None and s.conn.remote[1] != b_natt
                       for s in gr.dataplane.states.values())
            assert gr.stats()["gateway"]["internal_errors"] == 0
        finally:
            await ga.stop()
            await gr.stop()
    run(body())
