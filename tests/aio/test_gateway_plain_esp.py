"""Plain ESP (IP protocol 50, raw sockets) between two daemons in network
namespaces when no NAT is detected and ``encap = false``: ping between their
TUN devices; the Child SA is not encapsulated and its counters show the
traffic. Needs root, /dev/net/tun, ip and ping."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

import test_gateway_tun as tun_test
from aio_helpers import ikecore_command

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/dev/net/tun") or shutil.which("ip") is None
    or shutil.which("ping") is None, reason="needs root, /dev/net/tun, ip and ping")

namespaces = tun_test.namespaces
sh = tun_test.sh


def test_ping_over_plain_esp(namespaces, tmp_path):
    a, b = namespaces
    procs = []
    for ns, me, peer, inner, start, lts, rts in ((b, "192.0.2.2", "192.0.2.1", "10.2.0.1", "false",
                                                  "10.2.0.0/16", "10.1.0.0/16"),
                                                 (a, "192.0.2.1", "192.0.2.2", "10.1.0.1", "true",
                                                  "10.1.0.0/16", "10.2.0.0/16")):
        cfg = tmp_path / f"{ns}.toml"
        text = tun_test.CONFIG.format(me=me, peer=peer, inner=inner, start=start, local_ts=lts, remote_ts=rts)
        text = text.replace("dpd_delay = 0\n", "dpd_delay = 0\nencap = false\n")
        text = text.replace(f'listen = ["{me}"]', f'listen = ["{me}"]\ncontrol_socket = "{tmp_path}/{ns}.sock"')
        cfg.write_text(text)
        cfg.chmod(0o600)
        procs.append(tun_test._start(ns, cfg, tmp_path / f"{ns}.log"))
        time.sleep(0.3)
    try:
        ok = False
        for _ in range(30):
            r = sh("ip", "netns", "exec", a, "ping", "-c", "1", "-W", "1", "-I", "10.1.0.1", "10.2.0.1", check=False)
            if r.returncode == 0:
                ok = True
                break
            time.sleep(0.2)
        logs = "".join((tmp_path / f"{ns}.log").read_text() for ns in (a, b))
        assert ok, logs
        r = sh("ip", "netns", "exec", a, "ping", "-c", "5", "-i", "0.2", "-W", "2", "-I", "10.1.0.1", "10.2.0.1",
               check=False)
        assert " 0% packet loss" in r.stdout, r.stdout
        argv, env = ikecore_command("list-sas", "--json", "--socket", str(tmp_path / f"{a}.sock"))
        [sa] = json.loads(subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30).stdout)
        assert sa["local"].endswith(":500") and sa["child_sas"][0]["encap"] is False
        assert sa["child_sas"][0]["rx_packets"] >= 6 and sa["child_sas"][0]["tx_packets"] >= 6
        assert "ESP-in-UDP" not in logs and "Child SA net installed" in logs
    finally:
        codes = [tun_test._end(p) for p, _ in reversed(procs)]
        for _, log in procs:
            log.close()
    assert codes == [0, 0]
