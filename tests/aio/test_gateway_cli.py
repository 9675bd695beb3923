"""The ``ikecore`` command: demo (human and --json), connect, and the gateway daemon
(started as a subprocess, ended by PID with SIGTERM: it deletes its SAs)."""
from __future__ import annotations

import asyncio
import json
import signal
import subprocess

from aio_helpers import PSK, collect, ike_configs, ikecore_command, responder, run
from ikecore.protocol import events as ev




def connect_command(gr, psk: str, *extra: str):
    """`ikecore connect` to the responder gateway ``gr`` on loopback."""
    return ikecore_command("connect", "127.0.0.1", "--port", str(gr.port), "--natt-port", str(gr.natt_port),
                           "--listen", "127.0.0.1", "--psk", psk, "--local-ts", "10.1.0.0/16",
                           "--remote-ts", "10.2.0.0/16", *extra)

async def run_cli(argv, env, timeout: float = 60):
    """Run an ``ikecore`` command; end it (by PID) if it outlives the timeout."""
    proc = await asyncio.create_subprocess_exec(*argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode, out, err

def test_demo_human_summary():
    argv, env = ikecore_command("demo", "--packets", "200")
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    for word in ("handshake", "ESP  i -> r", "ESP  r -> i", "rekey       Child SA", "rekey       IKE SA",
                 "delete", "cloned      in", "moved with MOBIKE to 127.0.0.2:", "ESP  both   parent 40/40, clone 40/40",
                 "deleted     the clone", "ticket      from A", "resumed     at B", "1 store round trip", "ESP  i -> B",
                 "refused with TICKET_NACK; fallback: full handshake", "OK"):
        assert word in out, out
    assert "200 received" in out


def test_demo_json_ipv6_with_capture_and_keys(tmp_path):
    argv, env = ikecore_command("demo", "--json", "--ipv6", "--packets", "50", "--key-export",
                                str(tmp_path / "k"), "--pcap", str(tmp_path / "d.pcap"))
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    s = json.loads(r.stdout)
    assert s["ok"] is True and s["family"] == "IPv6"
    st = s["steps"]
    assert st["handshake"]["ms"] > 0 and st["handshake"]["udp_encap"] is True
    for way in ("initiator_to_responder", "responder_to_initiator"):
        assert st["esp"][way]["sent"] == st["esp"][way]["received"] == 50
        assert st["esp"][way]["bytes_received"] > 0
    assert st["child_rekey"]["old_spi_in"] != st["child_rekey"]["new_spi_in"]
    assert st["ike_rekey"]["old_spis"] != st["ike_rekey"]["new_spis"]
    assert st["delete"]["child_sas_left"] == 0 and st["delete"]["responder"] == "deleted by peer"
    assert s["pcap"]["datagrams"] >= 2 * 50 + 4 * 10 + 8       # ESP both ways + IKE
    res = st["resumption"]
    assert res["ok"] and res["resume"]["resumed"] and res["resume"]["store_round_trips"] == 1
    for way in ("initiator_to_responder", "responder_to_initiator"):
        assert res["resume"]["traffic"][way]["sent"] == res["resume"]["traffic"][way]["received"] > 0
    assert res["replay"] == {**res["replay"], "refused": True, "notify": "TICKET_NACK", "fallback": "full handshake"}
    clone = st["clone"]
    assert clone["ok"] and clone["clone"]["moved"] is False          # no second IPv6 loopback address
    assert clone["traffic"]["clone"]["received"] == clone["traffic"]["clone"]["sent"] > 0
    assert clone["clone_deleted"]["parent_alive"] and clone["clone_deleted"]["clone_child_sas_left"] == 0
    # keys of every SA the client had: the first and its rekeys, the clone's parent and the
    # clone, A's, the resumed one at B, the fallback (a clone's IKE SA has no Child SA of its own
    # until one is made over it)
    assert (tmp_path / "k" / "esp_sa").read_text().count('"IPv6"') == 2 * 7
    ike_rows = (tmp_path / "k" / "ikev2_decryption_table").read_text()
    assert ike_rows.count("\n") == 7 and res["resume"]["spi_i"] in ike_rows
    assert clone["clone"]["spi_i"] in ike_rows


def test_connect_reports_and_sends_traffic():
    async def body():
        _, cr = ike_configs()
        gr = await responder(cr)
        try:
            argv, env = connect_command(gr, PSK.decode(), "--local-id", "cli@test",
                                        "--remote-id", "responder@test", "--send", "7", "--json")
            returncode, out, err = await run_cli(argv, env)
            assert returncode == 0, err.decode()
            report = json.loads(out)
            assert report["ok"] and report["remote_id"] == "responder@test" and report["sent"] == 7
            got = await collect(gr.packets, 7)       # sent just before its Delete, in one batch
            assert all(p[12:16] == bytes([10, 1, 0, 1]) for _, p in got)
            # it deleted its IKE SA before exiting
            await gr.wait_for(ev.IkeSaDeleted) if gr.connections else None
            assert gr.connections == []
        finally:
            await gr.stop()
    run(body())


def test_connect_failure_exit_status():
    async def body():
        _, cr = ike_configs()
        gr = await responder(cr)
        try:
            argv, env = connect_command(gr, "wrong key", "--timeout", "20")
            returncode, _, err = await run_cli(argv, env)
            assert returncode == 1 and b"failed" in err
        finally:
            await gr.stop()
    run(body())


def test_gateway_daemon_initiates_and_deletes_on_sigterm(tmp_path):
    async def body():
        _, cr = ike_configs()
        gr = await responder(cr)
        cfg = tmp_path / "gw.toml"
        cfg.write_text(f"""
[gateway]
listen = ["127.0.0.1"]
port = 0
natt_port = 0
[logging]
level = "info"
[connections.r]
remote_addrs = ["127.0.0.1"]
remote_port = {gr.port}
remote_natt_port = {gr.natt_port}
start = true
psk = "{PSK.decode()}"
dpd_delay = 0
[connections.r.local]
id = "daemon@test"
[connections.r.remote]
id = "responder@test"
[connections.r.children.net]
local_ts = ["10.1.0.0/16"]
remote_ts = ["10.2.0.0/16"]
""")
        status_file = tmp_path / "status.json"
        argv, env = ikecore_command("gateway", "--config", str(cfg), "--status-file", str(status_file))
        proc = await asyncio.create_subprocess_exec(*argv, env=env, stdout=subprocess.PIPE,
                                                    stderr=subprocess.PIPE)
        try:
            _, e = await gr.wait_for(ev.IkeSaEstablished, timeout=30)
            assert str(e.remote_id) == "daemon@test"
            await gr.wait_for(ev.ChildSaInstalled, timeout=30) if not gr.child_sas() else None
            # SIGUSR1: the daemon's view of its SAs, as JSON
            [rconn] = gr.connections
            [rchild] = gr.child_sas(rconn)
            status = None
            for _ in range(100):
                proc.send_signal(signal.SIGUSR1)            # by PID
                await asyncio.sleep(0.1)
                if status_file.exists():
                    status = json.loads(status_file.read_text())
                    if status["ike_sas"] and status["ike_sas"][0]["child_sas"]:
                        break
            [sa] = status["ike_sas"]
            assert (sa["name"], sa["role"], sa["remote_id"]) == ("r", "initiator", "responder@test")
            assert (sa["spi_i"], sa["spi_r"]) == (rconn.spi_i.hex(), rconn.spi_r.hex())
            [child] = sa["child_sas"]
            assert (child["spi_in"], child["spi_out"]) == (rchild.spi_out.hex(), rchild.spi_in.hex())
            assert child["local_ts"] == "10.1.0.0/16" and child["remote_ts"] == "10.2.0.0/16"
            assert "key" not in json.dumps(status).lower().replace("rekey_in_s", "")   # no key material
            gone = asyncio.ensure_future(gr.wait_for(ev.IkeSaDeleted, timeout=30))
            proc.send_signal(signal.SIGTERM)             # by PID
            _, d = await gone
            assert d.reason == "deleted by peer"
            _, err = await asyncio.wait_for(proc.communicate(), 30)
            assert proc.returncode == 0, err.decode()
            log = err.decode()
            assert "IKE SA established" in log and "gateway stopped" in log
            assert "status: 1 IKE SA(s), 1 Child SA(s); written to" in log
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await gr.stop()
    run(body())
