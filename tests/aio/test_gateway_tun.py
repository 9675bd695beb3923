"""A TUN data plane in network namespaces: two ``ikecore gateway`` daemons, one
in each namespace created here (joined by a veth pair), carry real IP packets
(ping) through ESP-in-UDP between their TUN devices.

    ns A: ping -I 10.1.0.1 10.2.0.1           ns B
      ikc0 (10.1.0.1) -> gateway A  == ESP-in-UDP over veth 192.0.2.1 <-> 192.0.2.2 ==  gateway B -> ikc0 (10.2.0.1)

Needs root, /dev/net/tun and ``ip``; skipped otherwise. Every process is ended
by PID and both namespaces are deleted.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest

from aio_helpers import ikecore_command

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/dev/net/tun") or shutil.which("ip") is None
    or shutil.which("ping") is None, reason="needs root, /dev/net/tun, ip and ping")

CONFIG = """
[gateway]
listen = ["{me}"]
[logging]
level = "info"
[tun]
name = "ikc0"
addresses = ["{inner}/32"]
routes = "auto"
[connections.peer]
remote_addrs = ["{peer}"]
start = {start}
psk = "tun test pre-shared key"
dpd_delay = 0
[connections.peer.local]
id = "{me}"
[connections.peer.children.net]
local_ts = ["{local_ts}"]
remote_ts = ["{remote_ts}"]
"""


def sh(*args, check=True, timeout=30):
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=timeout)


@pytest.fixture
def namespaces():
    tag = f"{os.getpid() % 100000}"
    a, b = f"ikcta{tag}", f"ikctb{tag}"
    created = []
    try:
        for ns in (a, b):
            r = sh("ip", "netns", "add", ns, check=False)
            if r.returncode != 0:
                pytest.skip(f"cannot create network namespaces: {r.stderr.strip()}")
            created.append(ns)
        sh("ip", "link", "add", f"va{tag}", "netns", a, "type", "veth", "peer", "name", f"vb{tag}", "netns", b)
        for ns, dev, addr in ((a, f"va{tag}", "192.0.2.1/24"), (b, f"vb{tag}", "192.0.2.2/24")):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        yield a, b
    finally:
        for ns in created:
            sh("ip", "netns", "delete", ns, check=False)


def _start(ns, cfg_path, log_path):
    argv, env = ikecore_command("gateway", "--config", str(cfg_path))
    log = open(log_path, "w")
    return subprocess.Popen(["ip", "netns", "exec", ns, *argv], env=env, stdout=log, stderr=subprocess.STDOUT), log


def _end(proc, timeout=15.0) -> int | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)          # by PID: a graceful stop deletes the SAs
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def test_ping_through_esp_between_tun_devices(namespaces, tmp_path):
    a, b = namespaces
    cfg_b = tmp_path / "b.toml"
    cfg_b.write_text(CONFIG.format(me="192.0.2.2", peer="192.0.2.1", inner="10.2.0.1", start="false",
                                   local_ts="10.2.0.0/16", remote_ts="10.1.0.0/16"))
    cfg_a = tmp_path / "a.toml"
    cfg_a.write_text(CONFIG.format(me="192.0.2.1", peer="192.0.2.2", inner="10.1.0.1", start="true",
                                   local_ts="10.1.0.0/16", remote_ts="10.2.0.0/16"))
    procs = []
    try:
        procs.append(_start(b, cfg_b, tmp_path / "b.log"))
        procs.append(_start(a, cfg_a, tmp_path / "a.log"))
        ok = False
        for _ in range(30):                       # bounded: the tunnel comes up within a few tries
            r = sh("ip", "netns", "exec", a, "ping", "-c", "1", "-W", "1", "-I", "10.1.0.1", "10.2.0.1",
                   check=False)
            if r.returncode == 0:
                ok = True
                break
            if any(p.poll() is not None for p, _ in procs):
                break
            time.sleep(0.2)
        assert ok, (tmp_path / "a.log").read_text() + (tmp_path / "b.log").read_text()
        r = sh("ip", "netns", "exec", a, "ping", "-c", "5", "-i", "0.2", "-W", "2", "-I", "10.1.0.1", "10.2.0.1",
               check=False)
        assert " 0% packet loss" in r.stdout, r.stdout
        # and the other way, IPv4 ICMP from B's inner address
        r = sh("ip", "netns", "exec", b, "ping", "-c", "2", "-W", "2", "-I", "10.2.0.1", "10.1.0.1", check=False)
        assert r.returncode == 0, r.stdout
    finally:
        codes = [_end(p) for p, _ in reversed(procs)]
        for _, log in procs:
            log.close()
    assert codes == [0, 0][:len(codes)]
    log_a, log_b = (tmp_path / "a.log").read_text(), (tmp_path / "b.log").read_text()
    assert "TUN device ikc0 attached" in log_a and "Child SA net installed" in log_a
    assert "Child SA net installed" in log_b
    assert "IKE SA deleted" in log_a and "gateway stopped" in log_a
