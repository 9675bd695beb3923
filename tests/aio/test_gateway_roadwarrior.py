"""A road-warrior client in a network namespace: it asks the gateway (another
namespace) for a virtual IP, puts it on its TUN device with the routes for its
selectors, pings through it, and removes address and routes when its IKE SA
is terminated (control socket). Needs root, /dev/net/tun, ip and ping."""
from __future__ import annotations

import json
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

GATEWAY = """
[gateway]
listen = ["192.0.2.2"]
control_socket = "{sock}"
[tun]
name = "ikc0"
addresses = ["10.2.0.1/32"]
routes = ["10.10.0.0/24"]
[connections.clients]
remote_addrs = ["%any"]
psk_file = "rw.psk"
pools = ["10.10.0.0/24"]
dpd_delay = 0
[connections.clients.local]
id = "vpn@ops"
[connections.clients.children.net]
local_ts = ["10.2.0.0/16"]
remote_ts = ["10.10.0.0/24"]
"""

CLIENT = """
[gateway]
listen = ["192.0.2.1"]
control_socket = "{sock}"
[tun]
name = "ikc0"
routes = []
[connections.vpn]
remote_addrs = ["192.0.2.2"]
psk_file = "rw.psk"
request_virtual_ip = true
start = true
dpd_delay = 0
[connections.vpn.local]
id = "alice@ops"
[connections.vpn.remote]
id = "vpn@ops"
[connections.vpn.children.net]
local_ts = ["0.0.0.0/0"]
remote_ts = ["10.2.0.0/16"]
"""


def sh(*args, check=True, timeout=30):
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=timeout)


@pytest.fixture
def namespaces():
    tag = f"{os.getpid() % 100000}"
    a, b = f"opsrwa{tag}", f"opsrwb{tag}"
    created = []
    try:
        for ns in (a, b):
            r = sh("ip", "netns", "add", ns, check=False)
            if r.returncode != 0:
                pytest.skip(f"cannot create network namespaces: {r.stderr.strip()}")
            created.append(ns)
        sh("ip", "link", "add", f"orwa{tag}", "netns", a, "type", "veth", "peer", "name", f"orwb{tag}", "netns", b)
        for ns, dev, addr in ((a, f"orwa{tag}", "192.0.2.1/24"), (b, f"orwb{tag}", "192.0.2.2/24")):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        yield a, b
    finally:
        for ns in created:
            sh("ip", "netns", "delete", ns, check=False)


def _start(ns, cfg_path, log_path):
    argv, env = ikecore_command("gateway", "--config", str(cfg_path), "--log-level", "info")
    log = open(log_path, "w")
    return subprocess.Popen(["ip", "netns", "exec", ns, *argv], env=env, stdout=log, stderr=subprocess.STDOUT), log


def _end(proc, timeout=15.0) -> int | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)          # by PID
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def test_client_gets_its_virtual_ip_on_tun_and_pings_through_it(namespaces, tmp_path):
    a, b = namespaces
    (tmp_path / "rw.psk").write_text("road warrior pre-shared key\n")
    (tmp_path / "rw.psk").chmod(0o600)
    sock_a, sock_b = tmp_path / "a.sock", tmp_path / "b.sock"
    (tmp_path / "b.toml").write_text(GATEWAY.format(sock=sock_b))
    (tmp_path / "a.toml").write_text(CLIENT.format(sock=sock_a))
    procs = []

    def ctl(sock, *args):
        argv, env = ikecore_command(*args, "--socket", str(sock))
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)

    def addrs(ns):
        return sh("ip", "-n", ns, "-4", "addr", "show", "dev", "ikc0", check=False).stdout

    try:
        procs.append(_start(b, tmp_path / "b.toml", tmp_path / "b.log"))
        time.sleep(0.5)
        procs.append(_start(a, tmp_path / "a.toml", tmp_path / "a.log"))
        ok = False
        for _ in range(40):                       # bounded
            if "10.10.0." in addrs(a):
                r = sh("ip", "netns", "exec", a, "ping", "-c", "1", "-W", "1", "10.2.0.1", check=False)
                if r.returncode == 0:
                    ok = True
                    break
            if any(p.poll() is not None for p, _ in procs):
                break
            time.sleep(0.25)
        assert ok, (tmp_path / "a.log").read_text() + (tmp_path / "b.log").read_text()
        [sa] = json.loads(ctl(sock_a, "list-sas", "--json").stdout)
        vip = sa["virtual_ip"]
        assert vip.startswith("10.10.0.") and f"inet {vip}/32" in addrs(a)
        route = sh("ip", "-n", a, "route", "show", "10.2.0.0/16").stdout
        assert "dev ikc0" in route and f"src {vip}" in route
        [gsa] = json.loads(ctl(sock_b, "list-sas", "--json").stdout)
        assert gsa["assigned_ip"] == vip and gsa["child_sas"][0]["remote_ts"] == f"{vip}/32"
        # ping from the virtual IP: the gateway sees it come out of its TUN
        r = sh("ip", "netns", "exec", a, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.2.0.1", check=False)
        assert " 0% packet loss" in r.stdout, r.stdout

        # the SA goes: so do the address and the route
        assert ctl(sock_a, "terminate", "vpn").returncode == 0
        for _ in range(40):
            if vip not in addrs(a):
                break
            time.sleep(0.1)
        assert vip not in addrs(a)
        assert sh("ip", "-n", a, "route", "show", "10.2.0.0/16").stdout.strip() == ""
    finally:
        codes = [_end(p) for p, _ in reversed(procs)]
        for _, log in procs:
            log.close()
    assert codes == [0, 0][:len(codes)], (tmp_path / "a.log").read_text()
    assert "virtual IP" in (tmp_path / "a.log").read_text()
