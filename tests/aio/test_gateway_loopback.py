"""ikecore to ikecore through the asyncio gateway over UDP loopback (IPv4 and
IPv6, ephemeral ports): handshake, ESP-in-UDP both ways through the batch path,
Child SA and IKE SA rekeys, deletes, graceful shutdown, keepalives.

    initiator gateway                          responder gateway
    IKE_SA_INIT  (IKE port)        -->
                                   <--         IKE_SA_INIT (NAT detected: forced)
    IKE_AUTH     (NAT-T, marker)   -->
                                   <--         IKE_AUTH (responder floats to NAT-T)
    ESP-in-UDP   (NAT-T)           <->         ESP-in-UDP
"""
from __future__ import annotations

import asyncio
import json

import pytest

from aio_helpers import NETS, collect, exchange_traffic, ike_configs, initiator, pair, responder, run, udp_packet
from ikecore.aio import GatewayError
from ikecore.protocol import events as ev

HOSTS = ["127.0.0.1", "::1"]


@pytest.mark.parametrize("host", HOSTS)
def test_handshake_traffic_rekeys_delete(host):
    async def body():
        gi, gr, conn = await pair(host)
        try:
            assert conn.established
            assert conn.local == (host, gi.natt_port) and conn.remote == (host, gr.natt_port)
            [rconn] = gr.connections
            assert rconn.remote == (host, gi.natt_port)           # the responder floated to NAT-T
            [child] = gi.child_sas(conn)
            [rchild] = gr.child_sas(rconn)
            assert child.udp_encap and child.spi_in == rchild.spi_out and child.spi_out == rchild.spi_in
            await exchange_traffic(gi, gr, host, 50, b"first")

            # Child SA rekey through the gateway: the old SA is deleted, traffic moves to the new one
            gi.rekey_child(conn)
            await gi.wait_for(ev.ChildSaDeleted, conn)
            [child2] = gi.child_sas(conn)
            assert child2.spi_in != child.spi_in
            assert gi.child_state(child) is None or gi.child_state(child).removed
            await exchange_traffic(gi, gr, host, 20, b"after-child-rekey")
            assert gi.child_state(child2).stats()["tx_packets"] == 20

            # IKE SA rekey started by the responder: the Child SA moves to the new IKE SA
            gr.rekey(rconn)
            await gi.wait_for(ev.IkeSaRekeyed, conn)
            await gr.wait_for(ev.IkeSaDeleted, rconn)
            conn2 = gi.current(conn)
            assert conn2 is not conn and conn2.established and conn2.spi_i != conn.spi_i
            assert [c.spi_in for c in gi.child_sas(conn2)] == [child2.spi_in]
            await exchange_traffic(gi, gr, host, 20, b"after-ike-rekey")

            # a second Child SA, then delete it alone
            gi.create_child(conn2)
            _, inst = await gi.wait_for(ev.ChildSaInstalled, conn2)
            assert len(gi.child_sas(conn2)) == 2
            gi.delete_child(conn2, inst.child)
            await gi.wait_for(ev.ChildSaDeleted, conn2)
            assert [c.spi_in for c in gi.child_sas(conn2)] == [child2.spi_in]

            # delete the IKE SA: both sides forget it and its Child SAs
            r_gone = asyncio.ensure_future(gr.wait_for(ev.IkeSaDeleted))
            gi.delete(conn2)
            _, e = await gi.wait_for(ev.IkeSaDeleted, conn2)
            _, re = await r_gone
            assert e.reason == "deleted" and re.reason == "deleted by peer"
            assert gi.child_sas() == [] and gr.child_sas() == []
            assert gi.connections == [] and gr.connections == []
            assert gi.stats()["gateway"]["internal_errors"] == 0
            assert gr.stats()["gateway"]["internal_errors"] == 0
        finally:
            await gi.stop()
            await gr.stop()
    run(body())


def test_events_queue_reports_the_lifecycle():
    async def body():
        gi, gr, conn = await pair(i_kw={"event_queue_size": 100})
        assert gr.events is None                    # kept only when asked for
        kinds = []
        while not gi.events.empty():
            c, e = gi.events.get_nowait()
            kinds.append(type(e))
        assert kinds[:2] == [ev.IkeSaEstablished, ev.ChildSaInstalled]
        await gi.stop()
        await gr.stop()
    run(body())


def test_status_reports_both_sides_and_their_traffic():
    async def body():
        gi, gr, conn = await pair()
        try:
            [child] = gi.child_sas(conn)
            sent = gi.send_packets([udp_packet("10.1.0.1", "10.2.0.1", b"x" * 100)] * 5, child)
            for _ in range(100):
                if gr.dataplane.counters["rx_ok"] >= sent:
                    break
                await asyncio.sleep(0.01)
            si, sr = gi.status(), gr.status()
            [a], [b] = si["ike_sas"], sr["ike_sas"]
            assert (a["role"], b["role"]) == ("initiator", "responder")
            assert a["spi_i"] == b["spi_i"] == conn.spi_i.hex() and a["spi_r"] == b["spi_r"]
            assert a["remote_id"] == "responder@test" and b["remote_id"] == "initiator@test"
            [ca], [cb] = a["child_sas"], b["child_sas"]
            assert ca["spi_out"] == cb["spi_in"] and ca["spi_in"] == cb["spi_out"]
            assert ca["tx_packets"] == sent == 5 and cb["rx_packets"] == 5 and cb["rx_bytes"] == 5 * 128
            assert cb["policy_drops"] == 0 and sr["dataplane"]["rx_ok"] == 5
            json.dumps(si), json.dumps(sr)            # JSON-ready
        finally:
            await gi.stop()
            await gr.stop()
    run(body())


def test_stop_deletes_the_sas_at_the_peer():
    async def body():
        gi, gr, conn = await pair()
        r_gone = asyncio.ensure_future(gr.wait_for(ev.IkeSaDeleted))
        await gi.stop()
        _, e = await r_gone
        assert e.reason == "deleted by peer"
        assert gr.connections == [] and gr.child_sas() == []
        assert not gi.running
        await gr.stop()
    run(body())


def test_routing_by_traffic_selectors_and_policy_check():
    async def body():
        host = "127.0.0.1"
        gi, gr, conn = await pair(host)
        try:
            # outside every selector: not sent
            assert gi.send_packets([udp_packet("10.9.0.1", "10.2.0.1", b"x")]) == 0
            assert gi.dataplane.counters["no_route"] == 1
            # forced through the Child SA although outside its selectors: the peer drops it
            [child] = gi.child_sas(conn)
            assert gi.send_packets([udp_packet("10.9.0.1", "10.2.0.1", b"x")], child) == 1
            await exchange_traffic(gi, gr, host, 1)       # later traffic still flows
            assert gr.dataplane.counters["policy_drops"] == 1
        finally:
            await gi.stop()
            await gr.stop()
    run(body())


def test_wrong_psk_fails_initiation():
    async def body():
        ci, cr = ike_configs(psk_i=b"not the responder's key")
        gr = await responder(cr)
        gi = await initiator(ci, gr)
        try:
            with pytest.raises(GatewayError, match="IKE SA failed"):
                await gi.initiate("to-r", timeout=10)
            assert gi.connections == [] and gr.connections == []
        finally:
            await gi.stop()
            await gr.stop()
    run(body())


def test_no_answer_times_out():
    async def body():
        ci, cr = ike_configs(retransmit_timeout=0.05, retransmit_tries=1)
        gr = await responder(cr)
        port, natt = gr.port, gr.natt_port
        gr.abort()                                   # nobody answers there any more
        from ikecore.aio import ConnectionSpec, Gateway, GatewayConfig
        gi = await Gateway(GatewayConfig(connections={"x": ConnectionSpec(
            "x", ci, remote_addrs=["127.0.0.1"], remote_port=port, remote_natt_port=natt)},
            listen=["127.0.0.1"], port=0, natt_port=0)).start()
        try:
            with pytest.raises(GatewayError):
                await gi.initiate("x", timeout=20)
        finally:
            await gi.stop()
    run(body())


def test_nat_keepalives_are_sent_and_counted():
    async def body():
        gi, gr, conn = await pair(i_kw={"keepalive_interval": 0.02})
        try:
            for _ in range(500):
                if gr.stats()["gateway"]["keepalives_rx"] >= 2:
                    break
                await asyncio.sleep(0.01)
            assert gi.stats()["gateway"]["keepalives_tx"] >= 2
            assert gr.stats()["gateway"]["keepalives_rx"] >= 2
            await exchange_traffic(gi, gr, "127.0.0.1", 5)
        finally:
            await gi.stop()
            await gr.stop()
    run(body())


def test_many_packets_in_batches():
    async def body():
        host = "127.0.0.1"
        gi, gr, conn = await pair(host)
        try:
            _, _, a, b = NETS[host]
            pkts = [udp_packet(a, b, bytes([k & 0xFF]) * 1000) for k in range(300)]
            sent = 0
            for k in range(0, len(pkts), 50):
                sent += gi.send_packets(pkts[k:k + 50])
                await asyncio.sleep(0)
            got = await collect(gr.packets, sent)
            assert sent == 300 and sorted(p for _, p in got) == sorted(pkts)
        finally:
            await gi.stop()
            await gr.stop()
    run(body())
