"""The asyncio gateway (ikecore.aio) against strongSwan: the daemon's own data
path (ESP-in-UDP through packet vectors) carries ICMP echo both ways, a
capture of the session decrypts in tshark with the exported keys (every ICV
[correct]), stopping the gateway deletes the SAs at strongSwan, and a started
connection comes back after strongSwan deletes it."""
from __future__ import annotations

import asyncio
import shutil
import subprocess

import pytest

import sswan
from ikecore_side import icmp_echo, parse_icmp
from ikecore.aio import Gateway, parse_config
from ikecore.aio.keylog import tshark_options
from ikecore.aio.pcap import PcapWriter
from ikecore.protocol import events as ev

pytestmark = pytest.mark.interop
_why = sswan.available()
if _why:
    pytestmark = [pytest.mark.interop, pytest.mark.skip(reason=_why)]


def gateway_config(peer: sswan.Peer, keydir, *, initiator: bool, start: bool = False):
    me, them = ("init@test", "resp@test") if initiator else ("resp@test", "init@test")
    return parse_config({
        "gateway": {"listen": [peer.host_addr], "port": 500, "natt_port": 4500},
        "key_export": {"directory": str(keydir)},
        "connections": {"sw": {
            "remote_addrs": [peer.peer_addr],
            "start": start,
            "proposals": [peer.ike_proposals],
            "dpd_delay": 0,
            "psk": sswan.PSK,
            "local": {"id": me, "auth": "psk"},
            "remote": {"id": them, "auth": "psk"},
            "children": {"net": {"local_ts": [f"{sswan.INNER_LOCAL}/32"],
                                 "remote_ts": [f"{sswan.INNER_REMOTE}/32"],
                                 "esp_proposals": [peer.esp_proposals]}},
        }},
    }, source="interop-test")


async def _in_thread(fn):
    """A blocking swanctl/ping call while the event loop keeps the gateway running."""
    return await asyncio.get_running_loop().run_in_executor(None, fn)


@pytest.mark.parametrize("ikecore_initiates", [True, False], ids=["gateway-initiates", "strongswan-initiates"])
def test_gateway_against_strongswan(tmp_path, ikecore_initiates):
    peer = sswan.Peer(tmp_path / "charon", ike_proposals="aes256gcm16-prfsha256-x25519",
                      esp_proposals="aes256gcm16",
                      local_id="resp@test" if ikecore_initiates else "init@test",
                      remote_id="init@test" if ikecore_initiates else "resp@test")
    keydir, pcap = tmp_path / "keys", tmp_path / "session.pcap"
    answered = []

    def on_packet(child, packet, next_header):
        icmp = parse_icmp(packet)
        if icmp and icmp["type"] == 8:      # answer strongSwan's pings from our side of the tunnel
            answered.append(icmp["seq"])
            gw.send_packets([icmp_echo(icmp["dst"], icmp["src"], icmp["id"], icmp["seq"], reply=True,
                                       payload=icmp["payload"])], child)
        else:
            replies.put_nowait(packet)

    async def body():
        await gw.start()
        writer = PcapWriter(pcap)
        gw.set_capture(writer)
        try:
            if ikecore_initiates:
                conn = await gw.initiate("sw", timeout=10)
            else:
                result = await _in_thread(peer.initiate)
                assert "initiate completed successfully" in result.stdout, result.stdout
                [conn] = gw.connections     # swanctl returned: the SA is up here too
            [child] = gw.child_sas(conn)
            # ikecore -> strongSwan: echo requests out of the gateway's data path
            for seq in range(1, 4):
                gw.send_packets([icmp_echo(sswan.INNER_LOCAL, sswan.INNER_REMOTE, 0x2A2A, seq,
                                           payload=b"gateway-interop")], child)
                reply = parse_icmp(await asyncio.wait_for(replies.get(), 5))
                assert (reply["type"], reply["seq"], reply["src"]) == (0, seq, sswan.INNER_REMOTE)
            # strongSwan -> ikecore
            ping = await _in_thread(lambda: peer.ping(3))
            assert " 0% packet loss" in ping.stdout, ping.stdout
            assert sorted(answered)[-3:] == [1, 2, 3]
            [sa] = peer.list_sas()
            assert (sa["initiator-spi"], sa["responder-spi"]) == (conn.spi_i.hex(), conn.spi_r.hex())
        finally:
            await gw.stop()
            writer.close()

    peer.netns_up()
    try:
        peer.start()
        gw = Gateway(gateway_config(peer, keydir, initiator=ikecore_initiates), on_packet=on_packet)
        replies: asyncio.Queue = asyncio.Queue()
        asyncio.run(body())
        # stop() sent a Delete: strongSwan holds no SA any more
        assert peer.list_sas() == []
    finally:
        peer.stop()
        peer.netns_down()

    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    out = subprocess.run(["tshark", "-r", str(pcap), *tshark_options(keydir), "-V"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    # IKE_AUTH opened with the exported SK_e keys: the identities are readable
    assert "init@test" in text and "resp@test" in text
    # ESP opened with the exported Child SA keys, both directions, ICVs checked
    assert text.count("Echo (ping) request") >= 6 and text.count("Echo (ping) reply") >= 6
    assert "[correct]" in text and "[incorrect]" not in text.lower()


def test_started_connection_comes_back_after_strongswan_deletes_it(tmp_path):
    peer = sswan.Peer(tmp_path / "charon", ike_proposals="aes256gcm16-prfsha256-x25519",
                      esp_proposals="aes256gcm16", local_id="resp@test", remote_id="init@test")
    async def body():
        up = asyncio.ensure_future(gw.wait_for(ev.ChildSaInstalled, timeout=20))
        await gw.start()                             # start = true: the gateway initiates
        try:
            first, _ = await up
            [sa] = await _in_thread(peer.list_sas)
            assert sa["initiator-spi"] == first.spi_i.hex()
            gone = asyncio.ensure_future(gw.wait_for(ev.IkeSaDeleted, timeout=20))
            again = asyncio.ensure_future(gw.wait_for(ev.ChildSaInstalled, timeout=30))
            result = await _in_thread(peer.terminate_ike)
            assert "terminate completed successfully" in result.stdout, result.stdout
            _, deleted = await gone
            assert deleted.reason == "deleted by peer"
            second, _ = await again                  # restart follows start
            assert second.spi_i != first.spi_i
            sas = await _in_thread(peer.list_sas)
            assert [(x["initiator-spi"], x["state"]) for x in sas] == [(second.spi_i.hex(), "ESTABLISHED")]
            ping = await _in_thread(lambda: peer.ping(3))
            assert " 0% packet loss" in ping.stdout, ping.stdout
        finally:
            await gw.stop()

    def on_packet(child, packet, next_header):
        icmp = parse_icmp(packet)
        if icmp and icmp["type"] == 8:
            gw.send_packets([icmp_echo(icmp["dst"], icmp["src"], icmp["id"], icmp["seq"], reply=True,
                                       payload=icmp["payload"])], child)

    peer.netns_up()
    try:
        peer.start()
        gw = Gateway(gateway_config(peer, tmp_path / "keys", initiator=True, start=True), on_packet=on_packet)
        asyncio.run(body())
        assert peer.list_sas() == []
    finally:
        peer.stop()
        peer.netns_down()
