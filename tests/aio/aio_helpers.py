"""Helpers for the gateway tests: two gateways on loopback with ephemeral ports,
IP packet builders, and a bounded ``run`` for async test bodies."""
from __future__ import annotations

import asyncio
import ipaddress
import struct

from ikecore.aio import ConnectionSpec, Gateway, GatewayConfig
from ikecore.protocol.config import ChildConfig, EspProposal, IkeProposal, TrafficSelectorSpec, psk_config

PSK = b"gateway test pre-shared key"
NETS = {"127.0.0.1": ("10.1.0.0/16", "10.2.0.0/16", "10.1.0.1", "10.2.0.1"),
        "::1": ("fd00:1::/64", "fd00:2::/64", "fd00:1::1", "fd00:2::1")}
TEST_TIMEOUT = 60.0


def run(coro, timeout: float = TEST_TIMEOUT):
    """Run an async test body with an upper bound, so that nothing hangs."""
    async def bounded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


def udp_packet(src: str, dst: str, payload: bytes, sport: int = 4000, dport: int = 5000) -> bytes:
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    if s.version == 4:
        return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, s.packed, d.packed) + udp
    return struct.pack("!IHBB16s16s", 6 << 28, len(udp), 17, 64, s.packed, d.packed) + udp


def child(local: str, remote: str, esp: str = "aes256gcm16", name: str = "net") -> ChildConfig:
    return ChildConfig(name, [TrafficSelectorSpec.parse(local)], [TrafficSelectorSpec.parse(remote)],
                       [EspProposal.parse(esp)])


def ike_configs(host: str = "127.0.0.1", *, ike: str = "aes256gcm16-prfsha256-x25519", esp: str = "aes256gcm16",
                psk_i: bytes = PSK, psk_r: bytes = PSK, i_id: str = "initiator@test", **kw):
    left, right, _, _ = NETS[host]
    kw.setdefault("force_encap", True)
    kw.setdefault("dpd_delay", 0)
    ci = psk_config(i_id, "responder@test", psk_i, proposals=[IkeProposal.parse(ike)],
                    children=[child(left, right, esp)], name="to-r", **kw)
    cr = psk_config("responder@test", None, psk_r, proposals=[IkeProposal.parse(ike)],
                    children=[child(right, left, esp)], name="from-i", **kw)
    return ci, cr


async def responder(cr, host: str = "127.0.0.1", **gw_kw) -> Gateway:
    cfg = GatewayConfig(connections={"from-i": ConnectionSpec("from-i", cr)}, listen=[host], port=0, natt_port=0,
                        **{k: v for k, v in gw_kw.items() if k in GatewayConfig.__dataclass_fields__})
    return await Gateway(cfg, **{k: v for k, v in gw_kw.items()
                                 if k not in GatewayConfig.__dataclass_fields__}).start()


async def initiator(ci, gr: Gateway, host: str = "127.0.0.1", name: str = "to-r", **gw_kw) -> Gateway:
    spec = ConnectionSpec(name, ci, remote_addrs=[host], remote_port=gr.port, remote_natt_port=gr.natt_port)
    cfg = GatewayConfig(connections={name: spec}, listen=[host], port=0, natt_port=0,
                        **{k: v for k, v in gw_kw.items() if k in GatewayConfig.__dataclass_fields__})
    return await Gateway(cfg, **{k: v for k, v in gw_kw.items()
                                 if k not in GatewayConfig.__dataclass_fields__}).start()


async def pair(host: str = "127.0.0.1", ci=None, cr=None, r_kw=None, i_kw=None):
    """(initiator gateway, responder gateway, initiator's IKE SA), established."""
    if ci is None:
        ci, cr = ike_configs(host)
    gr = await responder(cr, host, **(r_kw or {}))
    gi = await initiator(ci, gr, host, **(i_kw or {}))
    conn = await gi.initiate("to-r", timeout=10)
    await asyncio.sleep(0)
    return gi, gr, conn


async def collect(queue: asyncio.Queue, n: int, timeout: float = 10.0) -> list:
    """n items from a queue (fails the test after ``timeout``)."""
    out = []
    async def take():
        while len(out) < n:
            out.append(await queue.get())
    await asyncio.wait_for(take(), timeout)
    return out


async def exchange_traffic(gi: Gateway, gr: Gateway, host: str, n: int = 20, tag: bytes = b"") -> None:
    """n packets each way through the Child SAs; asserts every one arrives intact."""
    _, _, a, b = NETS[host]
    fwd = [udp_packet(a, b, tag + b"i2r-%d" % k) for k in range(n)]
    back = [udp_packet(b, a, tag + b"r2i-%d" % k) for k in range(n)]
    assert gi.send_packets(fwd) == n
    got = await collect(gr.packets, n)
    assert sorted(p for _, p in got) == sorted(fwd)
    assert gr.send_packets(back) == n
    got = await collect(gi.packets, n)
    assert sorted(p for _, p in got) == sorted(back)


ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def ikecore_command(*args: str) -> tuple[list[str], dict]:
    """argv and environment that run this checkout's ``ikecore`` command."""
    import os
    import sys
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return [sys.executable, "-m", "ikecore", *args], env
