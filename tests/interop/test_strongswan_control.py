"""The control commands against charon: the ``ikecore gateway`` daemon (a
subprocess, in the root namespace) and strongSwan in its namespace; list,
initiate, rekey (IKE and Child SA), terminate and reload, each checked on
charon's side with swanctl. With IKECORE_TRANSCRIPT=FILE the terminal
transcript is written there."""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time

import pytest

import sswan

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.interop
_why = sswan.available()
if _why:
    pytestmark = [pytest.mark.interop, pytest.mark.skip(reason=_why)]


def daemon_toml(peer: sswan.Peer, sock, *, extra: str = "") -> str:
    return f"""[gateway]
listen = ["{peer.host_addr}"]
control_socket = "{sock}"

[connections.sw]
remote_addrs = ["{peer.peer_addr}"]
proposals = ["{peer.ike_proposals}"]
psk_file = "sw.psk"
dpd_delay = 0
[connections.sw.local]
id = "init@test"
[connections.sw.remote]
id = "resp@test"
[connections.sw.children.net]
local_ts = ["{sswan.INNER_LOCAL}/32"]
remote_ts = ["{sswan.INNER_REMOTE}/32"]
esp_proposals = ["{peer.esp_proposals}"]
{extra}"""


def test_control_commands_against_strongswan(tmp_path):
    peer = sswan.Peer(tmp_path / "charon", ike_proposals="aes256gcm16-prfsha256-x25519", esp_proposals="aes256gcm16")
    sock = tmp_path / "ikecore.sock"
    cfg = tmp_path / "gw.toml"
    (tmp_path / "sw.psk").write_text(sswan.PSK + "\n")
    (tmp_path / "sw.psk").chmod(0o600)
    cfg.write_text(daemon_toml(peer, sock))
    cfg.chmod(0o600)
    env = dict(os.environ, PYTHONPATH=ROOT, IKECORE_SOCKET=str(sock))
    transcript: list[str] = []

    def ikecore(*args: str, ok: bool = True) -> str:
        r = subprocess.run(["python", "-m", "ikecore", *args], env=env, capture_output=True, text=True,
                           timeout=60, executable=os.sys.executable)
        transcript.append(f"$ ikecore {shlex.join(args)}\n{r.stdout}{r.stderr}")
        if ok:
            assert r.returncode == 0, r.stdout + r.stderr
            return r.stdout
        assert r.returncode != 0, r.stdout
        return r.stderr

    def charon_sas() -> list[dict]:
        sas = peer.list_sas()
        r = peer.swanctl("--list-sas")
        transcript.append(f"$ swanctl --list-sas   # on charon's side\n{r.stdout}")
        return sas

    peer.netns_up()
    proc = None
    try:
        peer.start()
        log = open(tmp_path / "daemon.log", "wb")
        proc = subprocess.Popen([os.sys.executable, "-m", "ikecore", "gateway", "-c", str(cfg), "--log-level",
                                 "info"], env=env, stdout=log, stderr=subprocess.STDOUT)
        for _ in range(100):
            if sock.exists():
                break
            assert proc.poll() is None, (tmp_path / "daemon.log").read_text()
            time.sleep(0.1)
        assert "sw: DOWN" in ikecore("list-conns")
        out = ikecore("initiate", "sw")
        assert "sw: IKE SA " in out and "Child SA net" in out
        out = ikecore("list-sas")
        assert "aes256gcm16-prfsha256-x25519" in out and "[resp@test]" in out
        [sa] = json.loads(ikecore("list-sas", "--json"))
        [csa] = charon_sas()
        assert csa["initiator-spi"] == sa["spi_i"] and csa["responder-spi"] == sa["spi_r"]

        out = ikecore("rekey", "sw")
        new_spis = out.split("rekeyed to ")[1].split()
        [csa] = charon_sas()
        assert csa["initiator-spi"] == new_spis[0].removesuffix("_i")
        out = ikecore("rekey", "sw", "--child", "net")
        new_in = out.split("rekeyed to ")[1].split("/")[0]
        [csa] = charon_sas()
        assert any(spi_out == new_in for _, spi_out in csa["children"])

        # reload: a second connection added, sw unchanged keeps its SA
        cfg.write_text(daemon_toml(peer, sock, extra=f"""
[connections.spare]
remote_addrs = ["{peer.peer_addr}"]
psk_file = "sw.psk"
[connections.spare.local]
id = "spare@test"
[connections.spare.children.net]
local_ts = ["10.88.9.0/24"]
remote_ts = ["10.88.8.0/24"]
"""))
        out = ikecore("reload")
        assert "added: spare" in out and "unchanged: sw" in out
        assert json.loads(ikecore("list-sas", "--json"))[0]["spi_i"] == new_spis[0].removesuffix("_i")
        out = ikecore("list-conns")
        assert "sw: UP" in out and "spare: DOWN" in out
        # a connection charon does not know: the refusal is named
        out = ikecore("initiate", "spare", "--timeout", "10", ok=False)
        assert "AUTHENTICATION_FAILED" in out or "authentication failed" in out, out
        out = ikecore("list-conns")

        out = ikecore("terminate", "sw")
        assert "deleting IKE SA" in out
        for _ in range(50):
            if not peer.list_sas():
                break
            time.sleep(0.1)
        assert charon_sas() == []
        ikecore("list-conns")
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)         # by PID
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        peer.stop()
        peer.netns_down()
        text = "\n".join(transcript)
        (tmp_path / "transcript.txt").write_text(text)
        if os.environ.get("IKECORE_TRANSCRIPT"):
            with open(os.environ["IKECORE_TRANSCRIPT"], "w") as f:
                f.write(text + "\n--- daemon log ---\n" + (tmp_path / "daemon.log").read_text())
    assert proc.returncode == 0
