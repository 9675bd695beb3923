"""``ikecore demo``: the whole job on loopback with an embedded configuration.

A responder and an initiator gateway on 127.0.0.1 (or ::1), ephemeral ports,
PSK: IKE_SA_INIT + IKE_AUTH, ESP-in-UDP traffic both ways through the Child
SA, a Child SA rekey and an IKE SA rekey (traffic after each), then a Delete.
Then cloning with MOBIKE (demo_clone.py) and session resumption across a
two-gateway cluster (demo_resumption.py).
:func:`run_demo` returns the summary as a dict; :func:`format_summary` makes
the human version.
"""
from __future__ import annotations

import asyncio
import functools
import ipaddress
import struct
import time

from .. import __version__
from ..crypto.transforms import Encr, Integ, Prf
from ..protocol import events as ev
from ..protocol.config import ChildConfig, EspProposal, IkeProposal, TrafficSelectorSpec, psk_config
from .config import ConnectionSpec, GatewayConfig, KeyExportSpec
from .demo_clone import clone_steps, format_clone
from .demo_resumption import format_resumption, resumption_steps
from .gateway import Gateway

DEMO_PSK = b"ikecore demo pre-shared key (loopback only)"
NETS = {4: ("10.1.0.0/16", "10.2.0.0/16", "10.1.0.1", "10.2.0.1"),
        6: ("fd00:1::/64", "fd00:2::/64", "fd00:1::1", "fd00:2::1")}
_DH_NAMES = {14: "MODP_2048", 15: "MODP_3072", 19: "ECP_256", 20: "ECP_384", 21: "ECP_521", 31: "CURVE_25519"}


@functools.lru_cache(maxsize=64)
def _pattern(size: int) -> bytes:
    """0, 1, .., 255, 0, 1, ..: long enough to cut any payload of ``size`` at any phase."""
    return bytes(range(256)) * (size // 256 + 2)


@functools.lru_cache(maxsize=64)
def _addresses(src: str, dst: str):
    return ipaddress.ip_address(src), ipaddress.ip_address(dst)


def udp_packet(src: str, dst: str, seq: int, size: int) -> bytes:
    """An IPv4/IPv6 UDP packet (port 9, discard) with a sequence number in its
    payload, then the octets seq, seq+1, ... (mod 256)."""
    n = max(0, size - 4)
    payload = struct.pack("!I", seq) + _pattern(n)[seq & 0xFF:(seq & 0xFF) + n]
    s, d = _addresses(src, dst)
    udp = struct.pack("!HHHH", 40000, 9, 8 + len(payload), 0) + payload
    if s.version == 4:
        return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), seq & 0xFFFF, 0, 64, 17, 0,
                           s.packed, d.packed) + udp
    return struct.pack("!IHBB16s16s", 6 << 28, len(udp), 17, 64, s.packed, d.packed) + udp


def _suite_text(suite) -> str:
    enc = Encr(suite.encr_id).name + (f"_{suite.key_bits}" if suite.key_bits else "")
    parts = [enc]
    if getattr(suite, "integ_id", 0):
        parts.append(Integ(suite.integ_id).name)
    if hasattr(suite, "prf_id"):
        parts.append("PRF_" + Prf(suite.prf_id).name)
    group = getattr(suite, "dh_group", None)
    if group:
        parts.append(_DH_NAMES.get(group, str(group)))
    return "/".join(parts)


def demo_configs(family: int = 4, ike: str = "aes256gcm16-prfsha256-x25519", esp: str = "aes256gcm16"):
    """(responder GatewayConfig, initiator ConnectionSpec factory) for the demo."""
    host = "127.0.0.1" if family == 4 else "::1"
    left, right, _, _ = NETS[family]
    kw = dict(proposals=[IkeProposal.parse(ike)], force_encap=True, dpd_delay=0, resumption=True,
              clone=True, mobike=True)
    ci = psk_config("initiator.demo.ikecore", "responder.demo.ikecore", DEMO_PSK, children=[
        ChildConfig("net", [TrafficSelectorSpec.parse(left)], [TrafficSelectorSpec.parse(right)],
                    [EspProposal.parse(esp)])], name="demo", **kw)
    cr = psk_config("responder.demo.ikecore", "initiator.demo.ikecore", DEMO_PSK, children=[
        ChildConfig("net", [TrafficSelectorSpec.parse(right)], [TrafficSelectorSpec.parse(left)],
                    [EspProposal.parse(esp)])], name="demo", **kw)
    return host, ci, cr


class _Counter:
    def __init__(self) -> None:
        self.packets = 0
        self.bytes = 0
        self.bad = 0
        self.event = asyncio.Event()
        self.target = 0
        self.by_spi: dict[bytes, int] = {}     # packets per receiving Child SA (its inbound SPI)

    def __call__(self, child, packet: bytes, next_header: int) -> None:
        self.packets += 1
        self.by_spi[child.spi_in] = self.by_spi.get(child.spi_in, 0) + 1
        self.bytes += len(packet)
        if self.packets >= self.target:
            self.event.set()


async def _traffic(src_gw: Gateway, sink: _Counter, src: str, dst: str, count: int, size: int,
                   child, timeout: float) -> dict:
    """Send ``count`` packets in batches; wait until the other side has them (or timeout)."""
    start_p, start_b = sink.packets, sink.bytes
    sink.target = start_p + count
    sink.event.clear()
    t0 = time.perf_counter()
    sent = sent_bytes = 0
    batch = src_gw.dataplane.batch_size
    for base in range(0, count, batch):
        pkts = [udp_packet(src, dst, base + i, size) for i in range(min(batch, count - base))]
        sent += src_gw.send_packets(pkts, child)
        sent_bytes += sum(map(len, pkts))
        # flow control: let the receiving side (same event loop) drain before the next burst
        window_end = time.perf_counter() + 0.5
        await asyncio.sleep(0)
        while sink.packets - start_p < sent - 4 * batch and time.perf_counter() < window_end:
            await asyncio.sleep(0.0005)
    try:
        await asyncio.wait_for(sink.event.wait(), timeout)
    except asyncio.TimeoutError:
        pass
    elapsed = time.perf_counter() - t0
    got = sink.packets - start_p
    return {"sent": sent, "bytes_sent": sent_bytes, "received": got, "bytes_received": sink.bytes - start_b,
            "ms": round(elapsed * 1000, 3),
            "packets_per_s": round(got / elapsed) if elapsed > 0 else None}


async def run_demo(*, packets: int = 1000, size: int = 512, family: int = 4,
                   ike: str = "aes256gcm16-prfsha256-x25519", esp: str = "aes256gcm16",
                   key_export: str | None = None, pcap: str | None = None, timeout: float = 10.0,
                   redis_url: str | None = None) -> dict:
    """Run the demo; returns the summary (``ok`` says whether every step passed)."""
    host, ci, cr = demo_configs(family, ike, esp)
    _, _, a_ip, b_ip = NETS[family]
    recv_r, recv_i = _Counter(), _Counter()
    ke = KeyExportSpec(key_export) if key_export else None
    gr = Gateway(GatewayConfig(connections={"demo": ConnectionSpec("demo", cr)}, listen=[host], port=0,
                               natt_port=0, keepalive_interval=0), on_packet=recv_r)
    t_total = time.perf_counter()
    steps: dict = {}
    out: dict = {"ikecore": __version__, "family": f"IPv{family}", "address": host, "ok": False,
                 "steps": steps}
    writer = None
    await gr.start()
    gi = None
    try:
        gi = Gateway(GatewayConfig(
            connections={"demo": ConnectionSpec("demo", ci, remote_addrs=[host], remote_port=gr.port,
                                                remote_natt_port=gr.natt_port)},
            listen=[host], port=0, natt_port=0, keepalive_interval=0, key_export=ke), on_packet=recv_i)
        await gi.start()
        if pcap:
            from .pcap import PcapWriter
            writer = PcapWriter(pcap)
            gi.set_capture(writer)
        out["ports"] = {"initiator": {"ike": gi.port, "natt": gi.natt_port},
                        "responder": {"ike": gr.port, "natt": gr.natt_port}}

        # -- handshake --
        t0 = time.perf_counter()
        conn = await gi.initiate("demo", timeout=timeout)
        hs = time.perf_counter() - t0
        child = gi.child_sas(conn)[0]
        steps["handshake"] = {"ms": round(hs * 1000, 3), "ike_suite": _suite_text(conn.suite),
                              "esp_suite": _suite_text(child.suite), "spi_i": conn.spi_i.hex(),
                              "spi_r": conn.spi_r.hex(), "child_spi_in": child.spi_in.hex(),
                              "child_spi_out": child.spi_out.hex(), "udp_encap": child.udp_encap,
                              "local_ts": NETS[family][0], "remote_ts": NETS[family][1]}
        await asyncio.sleep(0)   # the responder installs its SAs on the same loop turn

        # -- traffic both ways --
        r_conn = gr.connections[0]
        steps["esp"] = {
            "initiator_to_responder": await _traffic(gi, recv_r, a_ip, b_ip, packets, size, child, timeout),
            "responder_to_initiator": await _traffic(gr, recv_i, b_ip, a_ip, packets, size,
                                                     gr.child_sas(r_conn)[0], timeout)}

        # -- Child SA rekey --
        t0 = time.perf_counter()
        old_spi = child.spi_in.hex()
        gi.rekey_child(conn, child)
        await gi.wait_for(ev.ChildSaDeleted, conn, timeout=timeout)
        new_child = gi.child_sas(conn)[0]
        after = max(1, packets // 5)
        steps["child_rekey"] = {
            "ms": round((time.perf_counter() - t0) * 1000, 3), "old_spi_in": old_spi,
            "new_spi_in": new_child.spi_in.hex(),
            "traffic": {"initiator_to_responder": await _traffic(gi, recv_r, a_ip, b_ip, after, size,
                                                                 new_child, timeout),
                        "responder_to_initiator": await _traffic(gr, recv_i, b_ip, a_ip, after, size,
                                                                 None, timeout)}}

        # -- IKE SA rekey --
        t0 = time.perf_counter()
        old = conn.spis
        gi.rekey(conn)
        await gi.wait_for(ev.IkeSaDeleted, conn, predicate=lambda c, e: c is conn, timeout=timeout)
        conn2 = gi.current(conn)
        steps["ike_rekey"] = {
            "ms": round((time.perf_counter() - t0) * 1000, 3),
            "old_spis": [s.hex() for s in old], "new_spis": [s.hex() for s in conn2.spis],
            "traffic": {"initiator_to_responder": await _traffic(gi, recv_r, a_ip, b_ip, after, size,
                                                                 None, timeout),
                        "responder_to_initiator": await _traffic(gr, recv_i, b_ip, a_ip, after, size,
                                                                 None, timeout)}}

        # -- Delete --
        t0 = time.perf_counter()
        r_deleted = asyncio.ensure_future(gr.wait_for(ev.IkeSaDeleted, timeout=timeout))
        gi.delete(conn2)
        _, i_event = await gi.wait_for(ev.IkeSaDeleted, conn2, timeout=timeout)
        _, r_event = await r_deleted
        steps["delete"] = {"ms": round((time.perf_counter() - t0) * 1000, 3),
                           "initiator": i_event.reason, "responder": r_event.reason,
                           "child_sas_left": len(gi.child_sas()) + len(gr.child_sas())}
        flows = [steps["esp"][k] for k in steps["esp"]]
        flows += [steps[s]["traffic"][k] for s in ("child_rekey", "ike_rekey") for k in steps[s]["traffic"]]
        basics_ok = (all(f["received"] == f["sent"] and f["sent"] > 0 for f in flows)
                     and steps["delete"]["child_sas_left"] == 0)

        # -- cloning, and the clone moved with MOBIKE --
        steps["clone"] = await clone_steps(gi, gr, family=family, sink=recv_r, a_ip=a_ip, b_ip=b_ip,
                                           packets=after, size=size, timeout=timeout, make_packet=udp_packet)

        # -- resumption across a cluster of two gateways --
        steps["resumption"] = await resumption_steps(
            gi, host, cr, traffic=_traffic, gateway_sink=recv_r, client_sink=recv_i, a_ip=a_ip, b_ip=b_ip,
            packets=after, size=size, redis_url=redis_url, timeout=timeout)
        out["ok"] = basics_ok and steps["clone"]["ok"] and steps["resumption"]["ok"]
    except Exception as exc:       # the summary says what failed
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if gi is not None:
            await gi.stop(timeout=2.0)
        await gr.stop(timeout=2.0)
        if writer is not None:
            writer.close()
            out["pcap"] = {"path": str(pcap), "datagrams": writer.count}
        if ke is not None:
            out["key_export"] = {"directory": key_export}
    out["total_ms"] = round((time.perf_counter() - t_total) * 1000, 3)
    return out


def _flow(f: dict) -> str:
    rate = f" ({f['packets_per_s']:,} packets/s)" if f.get("packets_per_s") else ""
    return (f"{f['sent']:>6} packets {f['bytes_sent']:>9,} bytes sent, {f['received']:>6} received "
            f"in {f['ms']:.1f} ms{rate}")


def format_summary(s: dict) -> str:
    st = s.get("steps", {})
    lines = [f"ikecore {s['ikecore']} demo: responder and initiator gateways on {s['address']} "
             f"(ephemeral UDP ports), PSK, ESP-in-UDP"]
    if "ports" in s:
        p = s["ports"]
        lines.append(f"  ports       initiator IKE {p['initiator']['ike']} NAT-T {p['initiator']['natt']}, "
                     f"responder IKE {p['responder']['ike']} NAT-T {p['responder']['natt']}")
    if "handshake" in st:
        h = st["handshake"]
        lines.append(f"  handshake   IKE SA + Child SA up in {h['ms']:.1f} ms: {h['ike_suite']}, "
                     f"SPIs {h['spi_i']}_i {h['spi_r']}_r")
        lines.append(f"  Child SA    {h['local_ts']} <=> {h['remote_ts']}, ESP {h['esp_suite']}"
                     f"{' in UDP' if h['udp_encap'] else ''}, SPIs in {h['child_spi_in']} out {h['child_spi_out']}")
    if "esp" in st:
        lines.append(f"  ESP  i -> r {_flow(st['esp']['initiator_to_responder'])}")
        lines.append(f"  ESP  r -> i {_flow(st['esp']['responder_to_initiator'])}")
    def after(t) -> str:
        i2r, r2i = t["initiator_to_responder"], t["responder_to_initiator"]
        return f"then {i2r['received']}/{i2r['sent']} i->r, {r2i['received']}/{r2i['sent']} r->i"

    if "child_rekey" in st:
        c = st["child_rekey"]
        lines.append(f"  rekey       Child SA in {c['ms']:.1f} ms ({c['old_spi_in']} -> {c['new_spi_in']}); "
                     + after(c["traffic"]))
    if "ike_rekey" in st:
        c = st["ike_rekey"]
        lines.append(f"  rekey       IKE SA in {c['ms']:.1f} ms ({c['old_spis'][0]}_i -> {c['new_spis'][0]}_i); "
                     + after(c["traffic"]))
    if "delete" in st:
        d = st["delete"]
        lines.append(f"  delete      IKE SA and Child SAs deleted in {d['ms']:.1f} ms "
                     f"(initiator: {d['initiator']}, responder: {d['responder']})")
    if "clone" in st:
        lines += format_clone(st["clone"])
    if "resumption" in st:
        lines += format_resumption(st["resumption"], _flow)
    if "pcap" in s:
        lines.append(f"  capture     {s['pcap']['datagrams']} datagrams in {s['pcap']['path']}")
    if "key_export" in s:
        lines.append(f"  keys        {s['key_export']['directory']}/ikev2_decryption_table and esp_sa")
    if "error" in s:
        lines.append(f"  error       {s['error']}")
    lines.append(f"  total       {s['total_ms']:.0f} ms -- {'OK' if s['ok'] else 'FAILED'}")
    return "\n".join(lines)


__all__ = ["run_demo", "format_summary", "demo_configs", "udp_packet", "DEMO_PSK"]
