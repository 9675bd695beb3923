"""Plain ESP (IP protocol 50) against charon without forced encapsulation: no
NAT between the namespaces, ``encap = false`` here, the kernel's XFRM ESP on
charon's side (this strongSwan's kernel-libipsec always forces encapsulation); pings both ways through a Child SA that is not UDP-encapsulated."""
from __future__ import annotations

import asyncio

import pytest

import sswan
from ikecore.aio import Gateway, GatewayError
from ikecore.aio.config import parse_config
from test_strongswan_gateway import icmp_echo, parse_icmp

pytestmark = pytest.mark.interop
_why = sswan.available()
if _why:
    pytestmark = [pytest.mark.interop, pytest.mark.skip(reason=_why)]


class KernelEspPeer(sswan.Peer):
    """charon with the kernel's ESP (XFRM through kernel-netlink) instead of
    kernel-libipsec: this strongSwan's kernel-libipsec has no raw ESP and
    always claims a NAT to force UDP encapsulation."""

    def write_config(self) -> None:
        super().write_config()
        conf = self.workdir / "strongswan.conf"
        text = conf.read_text()
        assert "kernel-libipsec " in text
        conf.write_text(text.replace("kernel-libipsec ", ""))


def test_plain_esp_with_charon(tmp_path):
    peer = KernelEspPeer(tmp_path / "charon", ike_proposals="aes256gcm16-prfsha256-x25519", esp_proposals="aes256gcm16")
    replies: asyncio.Queue = asyncio.Queue()
    answered = []

    def on_packet(child, packet, next_header):
        icmp = parse_icmp(packet)
        if icmp and icmp["type"] == 8:
            answered.append(icmp["seq"])
            gw.send_packets([icmp_echo(icmp["dst"], icmp["src"], icmp["id"], icmp["seq"], reply=True,
                                       payload=icmp["payload"])], child)
        else:
            replies.put_nowait(packet)

    async def body():
        await gw.start()
        try:
            try:
                conn = await gw.initiate("sw", timeout=10)
            except GatewayError:
                if "unable to add SAD entry" in peer.log_text():
                    return "this kernel has no XFRM (charon cannot install its ESP SAs)"
                raise
            [child] = gw.child_sas(conn)
            assert child.udp_encap is False and conn.local[1] == 500, (conn.nat_local, conn.nat_remote, conn.local, conn.remote)
            for seq in range(1, 4):
                gw.send_packets([icmp_echo(sswan.INNER_LOCAL, sswan.INNER_REMOTE, 0x2B2B, seq,
                                           payload=b"plain-esp")], child)
                reply = parse_icmp(await asyncio.wait_for(replies.get(), 5))
                assert (reply["type"], reply["seq"]) == (0, seq)
            ping = await asyncio.get_running_loop().run_in_executor(None, lambda: peer.ping(3))
            assert " 0% packet loss" in ping.stdout, ping.stdout
            out = peer.swanctl("--list-sas").stdout
            assert "TUNNEL," in out and "in-UDP" not in out, out       # charon: plain ESP too
            assert gw.plain_esp.counters["rx"] >= 6
            return None
        finally:
            await gw.stop()

    peer.netns_up()
    try:
        peer.start()
        gw = Gateway(parse_config({
            "gateway": {"listen": [peer.host_addr], "port": 500, "natt_port": 4500},
            "connections": {"sw": {
                "remote_addrs": [peer.peer_addr], "proposals": [peer.ike_proposals], "dpd_delay": 0,
                "psk": sswan.PSK, "encap": False,
                "local": {"id": "init@test"}, "remote": {"id": "resp@test"},
                "children": {"net": {"local_ts": [f"{sswan.INNER_LOCAL}/32"], "remote_ts": [f"{sswan.INNER_REMOTE}/32"],
                                     "esp_proposals": [peer.esp_proposals]}}}},
        }, source="plain-esp"), on_packet=on_packet)
        skipped = asyncio.run(body())
    finally:
        peer.stop()
        peer.netns_down()
    if skipped:
        pytest.skip(skipped)
