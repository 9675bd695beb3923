"""MOBIKE through two gateways on loopback: the initiator moves from 127.0.0.1
to 127.0.0.2 (a listener is opened there), the responder follows after its
return-routability check, and ESP keeps flowing both ways on the new pair."""
from __future__ import annotations

import asyncio

import pytest

from aio_helpers import NETS, collect, exchange_traffic, ike_configs, pair, run, udp_packet
from ikecore.aio import GatewayError, parse_config
from ikecore.aio import mobility
from ikecore.errors import ConfigError
from ikecore.protocol import events as ev
from ikecore.protocol.exchanges import mobike

HOST, NEW = "127.0.0.1", "127.0.0.2"


class Recorder:
    """A capture writer that keeps (src, dst, first octets) of every datagram."""

    def __init__(self):
        self.seen = []

    def write(self, data, src, dst):
        self.seen.append((tuple(src), tuple(dst), bytes(data[:4])))

    def esp(self, since=0):
        # ESP-in-UDP: a non-zero SPI where IKE has the non-ESP marker (RFC 3948 §2.2)
        return [(s, d) for s, d, head in self.seen[since:] if len(head) == 4 and head != bytes(4)]


def mobike_pair(**kw):
    ci, cr = ike_configs(HOST, mobike=True, **kw)
    return pair(HOST, ci, cr)


def test_initiator_moves_to_another_loopback_address_and_esp_follows():
    async def body():
        gi, gr, conn = await mobike_pair()
        try:
            [conn_r] = gr.connections
            assert conn.peer_mobike and conn_r.peer_mobike
            await exchange_traffic(gi, gr, HOST, 10, b"before")
            rec = Recorder()
            gr.set_capture(rec)
            moved_r = asyncio.ensure_future(gr.wait_for(ev.IkeSaMoved, timeout=10))
            event = await gi.update_addresses(conn, local=NEW)
            assert event.local == (NEW, gi.natt_port) and event.previous_local == (HOST, gi.natt_port)
            _, event_r = await moved_r
            assert event_r.remote == (NEW, gi.natt_port)
            assert conn_r.remote == (NEW, gi.natt_port)
            assert {lst.host for lst in gi.listeners} == {HOST, NEW}
            mark = len(rec.seen)
            await exchange_traffic(gi, gr, HOST, 20, b"after")
            # the responder received ESP from the new address only, and sent it there
            esp = rec.esp(mark)
            inbound = [s for s, d in esp if d[0] == HOST]
            outbound = [d for s, d in esp if s[0] == HOST]
            assert len(inbound) == 20 and {s[0] for s in inbound} == {NEW}
            assert len(outbound) == 20 and {d[0] for d in outbound} == {NEW}
            for c in (conn, conn_r):
                assert mobike.esp_addresses(c) == (c.local, c.remote)
            assert gi.counters["ike_sas_moved"] == 1 and gr.counters["ike_sas_moved"] == 1
            # and back again
            await gi.update_addresses(conn, local=HOST)
            await exchange_traffic(gi, gr, HOST, 5, b"back")
            assert conn_r.remote[0] == HOST
        finally:
            await gi.stop()
            await gr.stop()
        assert gr.connections == [] and gi.connections == []      # the Delete found the moved SA
    run(body())


def test_esp_keeps_flowing_while_the_initiator_moves():
    async def body():
        gi, gr, conn = await mobike_pair()
        try:
            moving = asyncio.ensure_future(gi.update_addresses(conn, local=NEW))
            sent = 0
            _, _, a, b = NETS[HOST]
            while not moving.done():
                sent += gi.send_packets([udp_packet(a, b, b"during-%d" % sent)])
                await asyncio.sleep(0.001)
            await moving
            assert sent > 0
            # every packet sent during the move arrived (ESP stayed on the old pair until the answer)
            got = await collect(gr.packets, sent)
            assert sorted(p for _, p in got) == sorted(udp_packet(a, b, b"during-%d" % k) for k in range(sent))
            await exchange_traffic(gi, gr, HOST, 10, b"after")
            assert gr.dataplane.counters["auth_failed"] == 0
            assert gr.dataplane.counters["replayed"] == 0
        finally:
            await gi.stop()
            await gr.stop()
    run(body())


def test_roaming_moves_an_sa_whose_local_address_is_gone(monkeypatch):
    async def body():
        gi, gr, conn = await mobike_pair()
        try:
            monkeypatch.setattr(mobility, "address_present", lambda host: host != HOST)
            monkeypatch.setattr(mobility, "source_toward", lambda remote: NEW)
            moved = asyncio.ensure_future(gr.wait_for(ev.IkeSaMoved, timeout=10))
            assert await gi.roam_check() == 1
            await moved
            assert conn.local[0] == NEW and gr.connections[0].remote[0] == NEW
            await exchange_traffic(gi, gr, HOST, 5, b"roamed")
            assert await gi.roam_check() == 0        # the new address is present: nothing to do
        finally:
            await gi.stop()
            await gr.stop()
    run(body())


def test_update_refused_where_mobike_cannot_move():
    async def body():
        gi, gr, conn = await mobike_pair()
        try:
            [conn_r] = gr.connections
            with pytest.raises(GatewayError, match="original initiator"):
                await gr.update_addresses(conn_r, local=NEW)
            with pytest.raises(GatewayError, match="not an IP address"):
                await gi.update_addresses(conn, local="nowhere")
            await exchange_traffic(gi, gr, HOST, 3)
        finally:
            await gi.stop()
            await gr.stop()
        gi, gr, conn = await pair(HOST)        # no MOBIKE configured
        try:
            with pytest.raises(GatewayError, match="MOBIKE was not negotiated"):
                await gi.update_addresses(conn, local=NEW)
            assert conn.local[0] == HOST
        finally:
            await gi.stop()
            await gr.stop()
    run(body())


def test_key_export_follows_the_move(tmp_path):
    async def body():
        from ikecore.aio.config import KeyExportSpec
        ci, cr = ike_configs(HOST, mobike=True)
        gi, gr, conn = await pair(HOST, ci, cr, i_kw={"key_export": KeyExportSpec(str(tmp_path))})
        try:
            await gi.update_addresses(conn, local=NEW)
        finally:
            await gi.stop()
            await gr.stop()
    run(body())
    rows = (tmp_path / "esp_sa").read_text().splitlines()
    assert any(f'"{NEW}","{HOST}"' in r for r in rows) and any(f'"{HOST}","{NEW}"' in r for r in rows)


# ------------------------------------------------------------------- config --

def _conf(**conn):
    return {"gateway": {"listen": ["127.0.0.1"]},
            "connections": {"c": {"local": {"id": "a@test"}, "remote": {"id": "b@test"}, "psk": "x" * 20,
                                  **conn}}}


def test_mobike_config_keys():
    cfg = parse_config({**_conf(mobike=True, mobike_return_routability=False,
                                mobike_addresses=["192.0.2.7", "2001:db8::7"]),
                        "gateway": {"listen": ["127.0.0.1"], "roam_interval": "2s"}}, source="gw.toml")
    ike = cfg.connections["c"].ike
    assert ike.mobike and not ike.mobike_return_routability
    assert list(ike.mobike_addresses) == ["192.0.2.7", "2001:db8::7"]
    assert cfg.roam_interval == 2.0
    assert parse_config(_conf(), source="gw.toml").connections["c"].ike.mobike_return_routability


@pytest.mark.parametrize("conn, gateway, message", [
    ({"mobike": True, "mobike_addresses": ["not-an-ip"]}, {}, "gw.toml: connections.c.mobike_addresses[0]: not an IP"),
    ({"mobike_addresses": ["192.0.2.7"]}, {}, "gw.toml: connections.c.mobike_addresses: needs mobike = true"),
    ({"mobike_return_routability": "yes"}, {}, "gw.toml: connections.c.mobike_return_routability: must be a boolean"),
    ({}, {"roam_interval": -1}, "gw.toml: gateway.roam_interval: must not be negative"),
])
def test_mobike_config_errors_name_file_and_key(conn, gateway, message):
    data = _conf(**conn)
    data["gateway"].update(gateway)
    with pytest.raises(ConfigError) as info:
        parse_config(data, source="gw.toml")
    assert message in str(info.value)


# ------------------------------------------------------------------ command --

def test_connect_command_moves_with_mobike():
    from test_gateway_cli import connect_command, run_cli
    import json

    async def body():
        _, cr = ike_configs(HOST, mobike=True)
        from aio_helpers import responder
        gr = await responder(cr)
        try:
            moved = asyncio.ensure_future(gr.wait_for(ev.IkeSaMoved, timeout=30))
            argv, env = connect_command(gr, "gateway test pre-shared key", "--remote-id", "responder@test",
                                        "--send", "5", "--move-to", NEW, "--json")
            returncode, out, err = await run_cli(argv, env)
            assert returncode == 0, err.decode()
            report = json.loads(out)
            assert report["ok"] and report["moved"]["local"][0] == NEW
            assert report["moved"]["previous_local"][0] == HOST
            assert report["sent"] == report["sent_after_move"] == 5
            _, event = await moved
            assert event.remote[0] == NEW and event.previous_remote[0] == HOST
            got = await collect(gr.packets, 10)
            assert len(got) == 10
        finally:
            await gr.stop()
    run(body())


def test_wildcard_listener_cannot_move_to_an_address_the_kernel_does_not_pick():
    async def body():
        ci, cr = ike_configs(HOST, mobike=True)
        from aio_helpers import initiator, responder
        gr = await responder(cr)
        gi = await initiator(ci, gr)
        gi.listeners[0].host = "0.0.0.0"        # as if it listened on the wildcard
        try:
            conn = await gi.initiate("to-r", timeout=10)
            with pytest.raises(GatewayError, match="wildcard"):
                await gi.update_addresses(conn, local=NEW)
            assert conn.local[0] == HOST and not conn.outstanding
        finally:
            await gi.stop()
            await gr.stop()
    run(body())
