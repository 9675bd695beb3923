"""The control socket (ikecore/aio/control.py) against two running gateways on
loopback configured from TOML files: list, initiate (every child marked to
start), rekey, terminate, reload (added, changed, removed connections while
traffic flows; a broken file refused), and the client commands' output."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import time

from aio_helpers import collect, ikecore_command, run, udp_packet
from ikecore.aio import Gateway
from ikecore.aio.control import ControlError, ControlServer, read_config, request
from ikecore.protocol import events as ev

PSK = "control-test-psk-0123456789"


def conn_toml(name: str, local_id: str, remote_id: str, children: dict, *, port: int | None = None,
              natt: int | None = None, start: bool = False, extra: str = "") -> str:
    text = f'\n[connections.{name}]\nremote_addrs = ["127.0.0.1"]\npsk = "{PSK}"\n{extra}'
    if port is not None:
        text += f"remote_port = {port}\nremote_natt_port = {natt}\n"
    if start:
        text += "start = true\n"
    text += f'[connections.{name}.local]\nid = "{local_id}"\n[connections.{name}.remote]\nid = "{remote_id}"\n'
    for cname, (lts, rts) in children.items():
        text += f'[connections.{name}.children.{cname}]\nlocal_ts = ["{lts}"]\nremote_ts = ["{rts}"]\n'
    return text


GATEWAY = '[gateway]\nlisten = ["127.0.0.1"]\nport = 0\nnatt_port = 0\nkeepalive_interval = 0\nroam_interval = 0\n'


def responder_toml() -> str:
    # the responder picks its connection by the peer's address: one for every initiator connection
    return GATEWAY + conn_toml("site-a", "b@ctl", "a@ctl", {"net": ("10.2.0.0/16", "10.1.0.0/16"),
                                                             "voice": ("10.2.5.0/24", "10.1.5.0/24"),
                                                             "other": ("10.4.0.0/16", "10.3.0.0/16")})


def initiator_toml(port: int, natt: int, *, other_ts: str = "10.3.0.0/16", with_spare: bool = True) -> str:
    text = GATEWAY + conn_toml("site-b", "a@ctl", "b@ctl", {"net": ("10.1.0.0/16", "10.2.0.0/16"),
                                                             "voice": ("10.1.5.0/24", "10.2.5.0/24")},
                               port=port, natt=natt)
    text += conn_toml("other", "a@ctl", "b@ctl", {"net": (other_ts, "10.4.0.0/16")}, port=port, natt=natt,
                      start=True)
    if with_spare:
        text += conn_toml("spare", "a@ctl", "b@ctl", {"net": ("10.5.0.0/16", "10.6.0.0/16")}, port=port,
                          natt=natt)
    return text


async def ctl(path: str, cmd: str, **args):
    return await asyncio.to_thread(request, path, cmd, **args)


async def _until(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


def test_control_commands_and_reload(tmp_path):
    async def body():
        (tmp_path / "r.toml").write_text(responder_toml())
        cfg_r, prints_r = read_config(tmp_path / "r.toml")
        gr = await Gateway(cfg_r).start()
        gr.config_fingerprints = prints_r
        ipath = tmp_path / "i.toml"
        ipath.write_text(initiator_toml(gr.port, gr.natt_port))
        cfg_i, prints_i = read_config(ipath)
        gi = Gateway(cfg_i)
        gi.config_fingerprints = prints_i
        sock = str(tmp_path / "run" / "i.sock")
        server = ControlServer(gi, sock, config_path=str(ipath))
        await gi.start()
        await server.start()
        try:
            assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600

            # "other" has start = true: up without a command
            await _until(lambda: any(c["state"] == "up" for c in gi.connections_status() if c["name"] == "other"))
            conns = {c["name"]: c for c in await ctl(sock, "list-conns")}
            assert conns["site-b"]["state"] == "down" and conns["spare"]["state"] == "down"
            assert conns["other"]["state"] == "up" and conns["other"]["children"] == ["net"]

            # initiate: the IKE SA and both children (every child marked to start)
            up = await ctl(sock, "initiate", name="site-b", timeout=10)
            assert up["child_sas"][0]["name"] == "net"
            await _until(lambda: len([s for s in gi.status()["ike_sas"] if s["name"] == "site-b"
                                      and len(s["child_sas"]) == 2]) == 1)
            sas = {s["name"]: s for s in await ctl(sock, "list-sas")}
            sb = sas["site-b"]
            assert sb["algorithms"] == "aes256gcm16-prfsha256-x25519"
            assert sb["local_id"] == "a@ctl" and sb["remote_id"] == "b@ctl" and sb["role"] == "initiator"
            assert sb["rekey_in_s"] > 0 and sb["expire_in_s"] >= sb["rekey_in_s"]
            kids = {c["name"]: c for c in sb["child_sas"]}
            assert set(kids) == {"net", "voice"}
            assert kids["net"]["algorithms"] == "aes256gcm16-noesn"
            assert kids["voice"]["local_ts"] == "10.1.5.0/24" and kids["net"]["rekey_in_s"] > 0
            with_error = None
            try:
                await ctl(sock, "initiate", name="site-b")
            except ControlError as exc:
                with_error = str(exc)
            assert with_error and "already up" in with_error

            # traffic through site-b is counted in list-sas
            conn_b = next(c for c in gi.connections if c.config.name == "site-b")
            net_b = next(c for c in gi.child_sas(conn_b) if c.name == "net")
            gi.send_packets([udp_packet("10.1.0.1", "10.2.0.1", b"x%d" % i) for i in range(5)], net_b)
            await collect(gr.packets, 5)
            sas = {s["name"]: s for s in await ctl(sock, "list-sas")}
            assert {c["name"]: c for c in sas["site-b"]["child_sas"]}["net"]["tx_packets"] == 5

            # rekey the IKE SA, then a Child SA: new SPIs
            r = await ctl(sock, "rekey", name="site-b", timeout=10)
            assert r["old"] != r["new"] and r["old"].split("_i")[0] == conn_b.spi_i.hex()
            r = await ctl(sock, "rekey", name="site-b", child="net", timeout=10)
            assert r["rekeyed"][0]["old"].split("/")[0] == net_b.spi_in.hex()
            assert r["rekeyed"][0]["new"] != r["rekeyed"][0]["old"]

            # terminate one Child SA: the other stays
            await ctl(sock, "terminate", name="site-b", child="voice")
            await _until(lambda: [c.name for c in gi.child_sas(conn_b)] == ["net"])

            # reload while traffic flows: "other" changed (its selector), "spare" removed,
            # "added" added, "site-b" unchanged keeps its IKE SA and Child SA
            before_b = {s["name"]: s for s in gi.status()["ike_sas"]}["site-b"]
            before_other = {s["name"]: s for s in gi.status()["ike_sas"]}["other"]
            ipath.write_text(initiator_toml(gr.port, gr.natt_port, other_ts="10.3.1.0/24", with_spare=False)
                             + conn_toml("added", "a@ctl", "b@ctl", {"net": ("10.1.7.0/24", "10.2.7.0/24")},
                                         port=gr.port, natt=gr.natt_port))
            flow = asyncio.ensure_future(_send_while(gi, conn_b, gr, 0.5))
            result = await ctl(sock, "reload")
            assert result == {"added": ["added"], "removed": ["spare"], "changed": ["other"],
                              "unchanged": ["site-b"], "restart_needed": False}
            sent, received = await flow
            assert sent > 0 and received == sent                    # no loss across the reload
            await _until(lambda: any(s["name"] == "other" and s["spi_i"] != before_other["spi_i"]
                                     and s["child_sas"] for s in gi.status()["ike_sas"]))
            after = {s["name"]: s for s in gi.status()["ike_sas"]}
            assert after["site-b"]["spi_i"] == before_b["spi_i"]
            assert after["site-b"]["child_sas"][0]["spi_in"] == before_b["child_sas"][0]["spi_in"]
            assert after["other"]["child_sas"][0]["local_ts"] == "10.3.1.0/24"
            assert {c["name"] for c in await ctl(sock, "list-conns")} == {"site-b", "other", "added"}

            # a broken file is refused; the running configuration stays
            ipath.write_text("[connections.x\n")
            try:
                await ctl(sock, "reload")
                raise AssertionError("a broken configuration was accepted")
            except ControlError as exc:
                assert "TOML syntax" in str(exc)
            assert set(gi.config.connections) == {"site-b", "other", "added"}

            # terminate the connection: the peer hears the Delete, it stays down
            gone = await ctl(sock, "terminate", name="site-b")
            spi_i = gone["deleted_ike_sas"][0].split("_i")[0]
            await _until(lambda: not any(c.spi_i.hex() == spi_i for c in gr.connections))
            conns = {c["name"]: c for c in await ctl(sock, "list-conns")}
            assert conns["site-b"]["state"] == "down"

            # unknown things are named
            for cmd, args, words in (("initiate", {"name": "nope"}, "no connection named 'nope'"),
                                     ("rekey", {"name": "site-b"}, "no established IKE SA"),
                                     ("initiate", {"name": "site-b", "child": "x"}, "no child named 'x'"),
                                     ("frobnicate", {"name": "site-b"}, "unknown command")):
                try:
                    await ctl(sock, cmd, **args)
                    raise AssertionError(f"{cmd} {args} succeeded")
                except ControlError as exc:
                    assert words in str(exc), str(exc)
        finally:
            await server.close()
            await gi.stop(timeout=2)
            await gr.stop(timeout=2)
        assert not os.path.exists(sock)
    run(body(), timeout=90)


async def _send_while(gi, conn, gr, seconds: float) -> tuple[int, int]:
    """Send packets through the ``net`` Child SA of ``conn`` for ``seconds``; (sent, received)."""
    sent = 0
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        kid = next(c for c in gi.child_sas(conn) if c.name == "net")
        sent += gi.send_packets([udp_packet("10.1.0.1", "10.2.0.1", b"flow")], kid)
        await asyncio.sleep(0.02)
    got = await collect(gr.packets, sent)
    return sent, len(got)


def test_daemon_sighup_reload_and_client_commands(tmp_path):
    """The daemon as a subprocess: the client commands' text and --json output,
    SIGHUP with a broken file (refused, logged) and with a good one."""
    async def body():
        (tmp_path / "r.toml").write_text(responder_toml())
        cfg_r, _ = read_config(tmp_path / "r.toml")
        gr = await Gateway(cfg_r).start()
        ipath = tmp_path / "i.toml"
        ipath.write_text(initiator_toml(gr.port, gr.natt_port))
        sock = str(tmp_path / "i.sock")
        argv, env = ikecore_command("gateway", "-c", str(ipath), "--control-socket", sock,
                                    "--log-level", "info", "--status-file", str(tmp_path / "status.json"))
        log = open(tmp_path / "daemon.log", "wb")
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            await _until(lambda: os.path.exists(sock), 20)

            def cli(*args):
                a, e = ikecore_command(*args, "--socket", sock)
                return subprocess.run(a, env=e, capture_output=True, text=True, timeout=60)

            await _until(lambda: json.loads(cli("list-conns", "--json").stdout)[1]["state"] == "up", 20)
            r = await asyncio.to_thread(cli, "initiate", "site-b")
            assert r.returncode == 0 and "site-b: IKE SA " in r.stdout, r.stderr
            r = await asyncio.to_thread(cli, "list-sas")
            assert "site-b: ESTABLISHED" in r.stdout and "aes256gcm16-prfsha256-x25519" in r.stdout
            assert "10.1.0.0/16 === 10.2.0.0/16" in r.stdout
            r = await asyncio.to_thread(cli, "rekey", "nope")
            assert r.returncode == 1 and "no connection named 'nope'" in r.stderr

            ipath.write_text("not toml [")
            proc.send_signal(signal.SIGHUP)
            await _until(lambda: b"reload refused" in (tmp_path / "daemon.log").read_bytes())
            r = await asyncio.to_thread(cli, "list-conns", "--json")
            assert [c["name"] for c in json.loads(r.stdout)] == ["site-b", "other", "spare"]

            ipath.write_text(initiator_toml(gr.port, gr.natt_port, with_spare=False))
            proc.send_signal(signal.SIGHUP)
            await _until(lambda: b"1 removed" in (tmp_path / "daemon.log").read_bytes())
            proc.send_signal(signal.SIGUSR1)
            await _until(lambda: (tmp_path / "status.json").exists())
            status = json.loads((tmp_path / "status.json").read_text())
            assert [c["name"] for c in status["connections"]] == ["site-b", "other"]
            assert {s["name"] for s in status["ike_sas"]} == {"site-b", "other"}
            assert all(s["algorithms"] for s in status["ike_sas"])
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.to_thread(proc.wait, 20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            log.close()
            await gr.stop(timeout=2)
        assert proc.returncode == 0, (tmp_path / "daemon.log").read_text()
        assert not os.path.exists(sock)
    run(body(), timeout=120)
