"""A debug-level daemon run, grepped: its log holds no key and no PSK.

The daemon (``ikecore gateway``, logging at debug) initiates to a gateway in
this process, which rekeys its Child SA and its IKE SA; the daemon exports its
keys (key_export) so that the test knows every key it had. Not one of them, nor
the PSK (as text, hex or base64), may appear in the log."""
from __future__ import annotations

import asyncio
import base64
import signal
import subprocess

from aio_helpers import PSK, ike_configs, ikecore_command, responder, run
from ikecore.aio.keylog import ESP_TABLE, IKE_TABLE
from ikecore.protocol import events as ev


def _exported_keys(keydir) -> list[str]:
    keys = []
    for line in (keydir / IKE_TABLE).read_text().splitlines():
        if not line.startswith("#"):
            f = line.split(",")
            keys += [x for x in (f[2], f[3], f[5], f[6]) if x]       # SK_ei, SK_er, SK_ai, SK_ar
    for line in (keydir / ESP_TABLE).read_text().splitlines():
        f = [x.strip('"') for x in line.split(",")]
        keys += [x[2:] for x in (f[5], f[7]) if x.startswith("0x")]   # encryption, integrity
    return keys


def test_a_debug_level_daemon_run_logs_no_key_and_no_psk(tmp_path):
    keydir = tmp_path / "keys"

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
level = "debug"
[key_export]
directory = "{keydir}"
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
        argv, env = ikecore_command("gateway", "--config", str(cfg))
        proc = await asyncio.create_subprocess_exec(*argv, env=env, stdout=subprocess.PIPE,
                                                    stderr=subprocess.PIPE)
        try:
            await gr.wait_for(ev.IkeSaEstablished, timeout=30)
            if not gr.child_sas():
                await gr.wait_for(ev.ChildSaInstalled, timeout=30)
            [rconn] = gr.connections
            # unparsable input, so that the run has debug lines of its own to grep
            import socket
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as junk:
                for k in range(3):
                    junk.sendto(bytes(4) + rconn.spi_i + bytes(20 + k), rconn.remote)
            gr.rekey_child(rconn)
            await gr.wait_for(ev.ChildSaRekeyed, timeout=30)
            gr.rekey(rconn)
            await gr.wait_for(ev.IkeSaRekeyed, timeout=30)
            await asyncio.sleep(0.3)
            proc.send_signal(signal.SIGTERM)              # by PID
            _, err = await asyncio.wait_for(proc.communicate(), 30)
            return err.decode()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await gr.stop()
    log = run(body())
    print(f"\n{len(log.splitlines())} log lines, {len(_exported_keys(keydir))} keys checked")
    assert " DEBUG " in log
    assert "IKE SA established" in log
    keys = _exported_keys(keydir)
    assert len(keys) >= 2 * 2 + 2 * 2                     # two IKE SAs, two Child SAs (both directions)
    lower = log.lower()
    for k in keys:
        assert k.lower() not in lower, "a key is in the debug log"
    for form in (PSK.decode(), PSK.hex(), base64.b64encode(PSK).decode()):
        assert form.lower() not in lower, "the PSK is in the debug log"
