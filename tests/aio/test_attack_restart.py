"""kill -9 of a responder daemon (``ikecore gateway``) with clients established
and one client mid-handshake, then a restart on the same ports: every client
notices (DPD, retransmission limit) and connects again.

Clients are gateways in this process with ``start`` and ``restart``; the daemon
is killed by its PID, never by name."""
from __future__ import annotations

import asyncio
import signal
import socket
import subprocess

import pytest

from aio_helpers import PSK, ike_configs, ikecore_command, run
from ikecore.aio import ConnectionSpec, Gateway, GatewayConfig
from ikecore.protocol import events as ev

CLIENTS = 3


def _free_udp_ports(n: int) -> list[int]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _daemon_config(path, port: int, natt_port: int) -> None:
    path.write_text(f"""
[gateway]
listen = ["127.0.0.1"]
port = {port}
natt_port = {natt_port}
[logging]
level = "info"
[connections.from-i]
remote_addrs = ["%any"]
psk = "{PSK.decode()}"
dpd_delay = 0
[connections.from-i.local]
id = "responder@test"
[connections.from-i.children.net]
local_ts = ["10.2.0.0/16"]
remote_ts = ["10.1.0.0/16"]
""")


async def _client(k: int, port: int, natt_port: int) -> Gateway:
    # a dead peer is noticed in about 1 + 0.3 + 0.45 + 0.7 s (DPD, then two retransmissions)
    ci, _ = ike_configs(i_id=f"client-{k}@test", dpd_delay=1.0, retransmit_timeout=0.3,
                        retransmit_tries=2, retransmit_base=1.5)
    spec = ConnectionSpec("to-r", ci, remote_addrs=["127.0.0.1"], remote_port=port, remote_natt_port=natt_port,
                          start=True, restart=True)
    return await Gateway(GatewayConfig(connections={"to-r": spec}, listen=["127.0.0.1"], port=0,
                                       natt_port=0)).start()


@pytest.mark.slow
def test_clients_reconnect_after_kill_9_of_the_responder_mid_handshake(tmp_path):
    port, natt_port = _free_udp_ports(2)
    cfg = tmp_path / "gw.toml"
    _daemon_config(cfg, port, natt_port)
    argv, env = ikecore_command("gateway", "--config", str(cfg))

    async def daemon():
        return await asyncio.create_subprocess_exec(*argv, env=env, stdout=subprocess.DEVNULL,
                                                    stderr=subprocess.PIPE)

    async def body():
        procs, clients = [], []
        loop = asyncio.get_running_loop()
        try:
            procs.append(await daemon())
            for k in range(CLIENTS):
                gw = await _client(k, port, natt_port)
                clients.append(gw)
            for gw in clients:
                if not gw.connections or not any(c.established for c in gw.connections):
                    await gw.wait_for(ev.IkeSaEstablished, timeout=30)
            late = await _client(CLIENTS, port, natt_port)        # starts its IKE_SA_INIT now
            clients.append(late)
            # kill it with the late client's IKE_AUTH in flight if we can catch it, else
            # with its IKE_SA_INIT in flight
            t0 = loop.time()
            while loop.time() - t0 < 0.5 and not any(c.state.value == "init-done" for c in late.endpoint.connections.values()):
                await asyncio.sleep(0)
            states = [c.state.value for c in late.endpoint.connections.values()]
            procs[0].send_signal(signal.SIGKILL)                  # by PID
            await procs[0].wait()
            killed_at = loop.time()
            await asyncio.sleep(0.5)
            procs.append(await daemon())                          # the same ports
            # every client holds an SA made after the kill (with the new daemon)
            reconnect = [None] * len(clients)
            while None in reconnect and loop.time() - killed_at < 45:
                for k, gw in enumerate(clients):
                    if reconnect[k] is None and any(c.established and c.created_at > killed_at
                                                    for c in gw.connections):
                        reconnect[k] = loop.time() - killed_at
                await asyncio.sleep(0.05)
            established = [sum(1 for c in gw.connections if c.established) for gw in clients]
            return states, reconnect, established
        finally:
            for gw in clients:
                await gw.stop()
            for p in procs:
                if p.returncode is None:
                    p.send_signal(signal.SIGTERM)
                    try:
                        await asyncio.wait_for(p.wait(), 10)
                    except asyncio.TimeoutError:
                        p.kill()
                        await p.wait()
    states, reconnect, established = run(body(), timeout=90)
    print(f"\nkill -9: late client was {states or ['not started']} at the kill; clients established "
          f"again after (s): {reconnect}")
    assert None not in reconnect
    assert established == [1] * (CLIENTS + 1)
