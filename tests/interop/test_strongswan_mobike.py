"""MOBIKE (RFC 4555) between the asyncio gateway and strongSwan (charon with
``mobike = yes``), in a network namespace of the test's own (prefix ``mob``):

1. the gateway initiates, takes a second address on its veth and moves to it
   (UPDATE_SA_ADDRESSES); charon follows and pings keep crossing the tunnel,
   also once the first address is gone; and without a command, the gateway
   roams by itself when its address goes away;
2. charon initiates, then its address changes inside its namespace; charon
   moves with UPDATE_SA_ADDRESSES and the gateway (responder) follows after its
   return-routability check;
3. a gateway that offers CLONE_IKE_SA_SUPPORTED (``clone = true``) against
   charon, which does not: it interoperates, rekeys, and never tries to clone.
"""
from __future__ import annotations

import asyncio
import os
import time

import pytest

import sswan
from ikecore_side import icmp_echo, parse_icmp
from ikecore.aio import Gateway, parse_config
from ikecore.protocol import events as ev
from ikecore.protocol.constants import ExchangeType, NotifyType
from ikecore.protocol.message import parse_message

pytestmark = pytest.mark.interop
_why = sswan.available()
if _why:
    pytestmark = [pytest.mark.interop, pytest.mark.skip(reason=_why)]


class MobPeer(sswan.Peer):
    """A strongSwan peer in a ``mob*`` namespace, with MOBIKE and a second address
    for each side on the test's own subnet."""

    def __init__(self, *args, mobike: bool = True, **kw) -> None:
        self.mobike = mobike
        super().__init__(*args, **kw)

    def __post_init__(self) -> None:
        super().__post_init__()
        tag = f"{os.getpid() % 10000}{self.index}"
        self.ns, self.host_if, self.peer_if = f"mob{tag}", f"mobh{tag}", f"mobp{tag}"
        subnet = 20 + (os.getpid() + self.index) % 200
        self.host_addr, self.peer_addr = f"10.79.{subnet}.1", f"10.79.{subnet}.2"
        self.host_addr2, self.peer_addr2 = f"10.79.{subnet}.3", f"10.79.{subnet}.4"

    def _wire_up(self) -> None:
        super()._wire_up()
        # removing a subnet's first address must keep the second one (and its route)
        sswan.run("sysctl", "-qw", f"net.ipv4.conf.{self.host_if}.promote_secondaries=1")
        sswan.run("ip", "netns", "exec", self.ns, "sysctl", "-qw",
                  f"net.ipv4.conf.{self.peer_if}.promote_secondaries=1")

    def write_config(self) -> None:
        super().write_config()
        path = self.workdir / "swanctl.conf"
        text = path.read_text()
        text = text.replace("mobike = no", f"mobike = {'yes' if self.mobike else 'no'}")
        # charon picks (and may change) its source address by route, as a roaming host does
        text = text.replace(f"local_addrs = {self.peer_addr}", "local_addrs = %any")
        path.write_text(text)

    # our side (root namespace, the test's veth) and charon's side of the move
    def add_host_address(self) -> None:
        sswan.run("ip", "addr", "add", f"{self.host_addr2}/24", "dev", self.host_if)

    def del_host_address(self, addr: str) -> None:
        sswan.run("ip", "addr", "del", f"{addr}/24", "dev", self.host_if)

    def move_peer_address(self) -> None:
        sswan.run("ip", "-n", self.ns, "addr", "add", f"{self.peer_addr2}/24", "dev", self.peer_if)
        sswan.run("ip", "-n", self.ns, "addr", "del", f"{self.peer_addr}/24", "dev", self.peer_if)


def gateway_config(peer: MobPeer, *, initiator: bool, roam_interval: float = 0, **extra):
    me, them = ("init@test", "resp@test") if initiator else ("resp@test", "init@test")
    return parse_config({
        "gateway": {"listen": [peer.host_addr], "port": 500, "natt_port": 4500, "roam_interval": roam_interval},
        "connections": {"sw": {
            "remote_addrs": [peer.peer_addr],
            "proposals": [peer.ike_proposals],
            "dpd_delay": 0,
            "psk": sswan.PSK,
            "local": {"id": me, "auth": "psk"},
            "remote": {"id": them, "auth": "psk"},
            "children": {"net": {"local_ts": [f"{sswan.INNER_LOCAL}/32"],
                                 "remote_ts": [f"{sswan.INNER_REMOTE}/32"],
                                 "esp_proposals": [peer.esp_proposals]}},
            **extra,
        }},
    }, source="interop-mobike")


async def _in_thread(fn):
    return await asyncio.get_running_loop().run_in_executor(None, fn)


def answering(gw_ref: list):
    """An on_packet callback that answers strongSwan's pings from our side of the tunnel."""
    def on_packet(child, packet, next_header):
        icmp = parse_icmp(packet)
        if icmp and icmp["type"] == 8:
            gw_ref[0].send_packets([icmp_echo(icmp["dst"], icmp["src"], icmp["id"], icmp["seq"], reply=True,
                                              payload=icmp["payload"])], child)
    return on_packet


def with_peer(tmp_path, body, **peer_kw):
    peer = MobPeer(tmp_path / "charon", ike_proposals="aes256gcm16-prfsha256-x25519",
                   esp_proposals="aes256gcm16", **peer_kw)
    peer.netns_up()
    try:
        peer.start()
        body(peer)
    except BaseException:
        print(sswan.dump(peer))
        raise
    finally:
        peer.stop()
        peer.netns_down()


def _wait_sas(peer, predicate, timeout: float = 10.0) -> list:
    deadline = time.monotonic() + timeout
    while True:
        sas = peer.list_sas()
        if predicate(sas) or time.monotonic() > deadline:
            return sas
        time.sleep(0.2)


def test_gateway_moves_and_strongswan_follows(tmp_path):
    def body(peer):
        gw_ref: list = []
        gw = Gateway(gateway_config(peer, initiator=True, mobike=True), on_packet=answering(gw_ref))
        gw_ref.append(gw)

        async def run():
            await gw.start()
            try:
                conn = await gw.initiate("sw", timeout=10)
                assert conn.peer_mobike, "charon did not announce MOBIKE_SUPPORTED"
                assert conn.local == (peer.host_addr, 4500)        # MOBIKE: NAT-T port from IKE_AUTH on
                ping = await _in_thread(lambda: peer.ping(3))
                assert " 0% packet loss" in ping.stdout, ping.stdout
                peer.add_host_address()
                moved = await gw.update_addresses(conn, local=peer.host_addr2)
                assert moved.local == (peer.host_addr2, 4500)
                [sa] = await _in_thread(lambda: _wait_sas(peer, lambda s: s and s[0].get("remote-host") == peer.host_addr2))
                assert sa["remote-host"] == peer.host_addr2, sa
                assert (sa["initiator-spi"], sa["responder-spi"]) == (conn.spi_i.hex(), conn.spi_r.hex())
                ping = await _in_thread(lambda: peer.ping(3))
                assert " 0% packet loss" in ping.stdout, ping.stdout
                # the old address goes: the tunnel does not need it any more
                peer.del_host_address(peer.host_addr)
                ping = await _in_thread(lambda: peer.ping(3))
                assert " 0% packet loss" in ping.stdout, ping.stdout
                # (charon with kernel-libipsec cannot change an ESP SA's addresses: it rekeys the
                # Child SA after the update instead, so count over the gateway's data path)
                counters = gw.dataplane.counters
                assert counters["rx_ok"] >= 9 and counters["tx_packets"] >= 9
                assert counters["auth_failed"] == 0
            finally:
                await gw.stop()
        asyncio.run(run())
        assert peer.list_sas() == []          # our Delete reached charon from the new address
        assert "parsed INFORMATIONAL request 2 [ N(UPD_SA_ADDR) N(NATD_S_IP) N(NATD_D_IP) N(COOKIE2) ]" in peer.log_text()
    with_peer(tmp_path, body, local_id="resp@test", remote_id="init@test")


def test_gateway_roams_when_its_address_goes_away(tmp_path):
    def body(peer):
        gw_ref: list = []
        gw = Gateway(gateway_config(peer, initiator=True, mobike=True, roam_interval=0.3),
                     on_packet=answering(gw_ref))
        gw_ref.append(gw)

        async def run():
            await gw.start()
            try:
                conn = await gw.initiate("sw", timeout=10)
                moved = asyncio.ensure_future(gw.wait_for(ev.IkeSaMoved, conn, timeout=20))
                peer.add_host_address()
                peer.del_host_address(peer.host_addr)          # no command: the gateway notices
                _, event = await moved
                assert event.local == (peer.host_addr2, 4500) and event.previous_local == (peer.host_addr, 4500)
                [sa] = await _in_thread(lambda: _wait_sas(peer, lambda s: s and s[0].get("remote-host") == peer.host_addr2))
                assert sa["remote-host"] == peer.host_addr2, sa
                # charon (kernel-libipsec) rekeys the Child SA after an address update: pings
                # may fall into that exchange, so allow it a few seconds to settle
                for _ in range(6):
                    ping = await _in_thread(lambda: peer.ping(3))
                    if " 0% packet loss" in ping.stdout:
                        break
                    await asyncio.sleep(0.5)
                assert " 0% packet loss" in ping.stdout, ping.stdout
            finally:
                await gw.stop()
        asyncio.run(run())
        assert peer.list_sas() == []
    with_peer(tmp_path, body, local_id="resp@test", remote_id="init@test")


def test_strongswan_moves_and_the_gateway_follows(tmp_path):
    def body(peer):
        gw_ref: list = []
        gw = Gateway(gateway_config(peer, initiator=False, mobike=True), on_packet=answering(gw_ref))
        gw_ref.append(gw)

        async def run():
            await gw.start()
            try:
                result = await _in_thread(peer.initiate)
                assert "initiate completed successfully" in result.stdout, result.stdout
                [conn] = gw.connections
                assert conn.peer_mobike and not conn.initiator
                assert conn.remote == (peer.peer_addr, 4500)
                ping = await _in_thread(lambda: peer.ping(3))
                assert " 0% packet loss" in ping.stdout, ping.stdout
                moved = asyncio.ensure_future(gw.wait_for(ev.IkeSaMoved, conn, timeout=30))
                await _in_thread(peer.move_peer_address)
                _, event = await moved
                assert event.remote == (peer.peer_addr2, 4500) and event.previous_remote == (peer.peer_addr, 4500)
                assert conn.remote == (peer.peer_addr2, 4500)
                ping = await _in_thread(lambda: peer.ping(3))
                assert " 0% packet loss" in ping.stdout, ping.stdout
                [sa] = await _in_thread(peer.list_sas)
                assert sa["local-host"] == peer.peer_addr2
            finally:
                await gw.stop()
        asyncio.run(run())
        assert peer.list_sas() == []
    with_peer(tmp_path, body, local_id="init@test", remote_id="resp@test")


def test_clone_offering_gateway_interoperates_and_never_clones(tmp_path):
    def body(peer):
        gw_ref: list = []
        gw = Gateway(gateway_config(peer, initiator=True, clone=True), on_packet=answering(gw_ref))
        gw_ref.append(gw)
        sent: list = []

        class Capture:
            def write(self, data, src, dst):
                if src[0] == peer.host_addr:
                    sent.append(bytes(data))

        async def run():
            await gw.start()
            gw.set_capture(Capture())
            try:
                conn = await gw.initiate("sw", timeout=10)
                # the SK ciphers as the SAs used them: a dead SA drops its keys
                ciphers = {conn.spis: conn.sk_out}
                assert conn.config.clone and not conn.peer_clone
                ping = await _in_thread(lambda: peer.ping(3))
                assert " 0% packet loss" in ping.stdout, ping.stdout
                rekeyed = asyncio.ensure_future(gw.wait_for(ev.IkeSaRekeyed, conn, timeout=15))
                gw.rekey(conn)
                _, event = await rekeyed
                new = event.connection
                ciphers[new.spis] = new.sk_out
                sas = await _in_thread(lambda: _wait_sas(peer, lambda s: len(s) == 1))
                assert [(s["initiator-spi"], s["responder-spi"]) for s in sas] == [(new.spi_i.hex(), new.spi_r.hex())]
                ping = await _in_thread(lambda: peer.ping(3))
                assert " 0% packet loss" in ping.stdout, ping.stdout
                return ciphers
            finally:
                await gw.stop()
        ciphers = asyncio.run(run())
        # what we sent, opened with our own keys: the offer went out, a clone request never did
        offered, clone_requests, opened = False, 0, 0
        for data in sent:
            if data[:4] == bytes(4):
                data = data[4:]
            try:
                msg = parse_message(data)
            except Exception:
                continue                       # ESP
            sk_out = ciphers.get((msg.spi_i, msg.spi_r))
            if sk_out is None or msg.sk is None or msg.is_fragment:
                continue
            msg.decrypt(sk_out)
            opened += 1
            types = [n.notify_type for n in msg.notifies()]
            if msg.exchange_type == ExchangeType.IKE_AUTH and not msg.is_response:
                offered |= NotifyType.CLONE_IKE_SA_SUPPORTED in types
            clone_requests += NotifyType.CLONE_IKE_SA in types
        assert opened >= 3 and offered and clone_requests == 0
        assert peer.list_sas() == []
    with_peer(tmp_path, body, mobike=False, local_id="resp@test", remote_id="init@test")
