"""The gateway's datagram input (ikecore/aio/sockets.py): the IKE port read in
bursts, and IKE messages on the NAT-T port as large as an unfragmented
IKE_AUTH gets."""
from __future__ import annotations

import asyncio
import socket
import struct

from aio_helpers import NETS, ike_configs, pair, responder, run
from ikecore.protocol.config import ChildConfig, EspProposal, TrafficSelectorSpec


def _ike_sa_init_probe(spi: int) -> bytes:
    """An IKE_SA_INIT request header with no payload: enough for the endpoint to
    read and refuse (it counts it), nothing more."""
    return struct.pack("!QQBBBBII", spi, 0, 0, 0x20, 34, 0x08, 0, 28)


def test_a_burst_on_the_ike_port_is_read_in_one_callback_and_arms_the_timer_once():
    """Datagrams already waiting are all read by one readiness callback (asyncio's
    datagram transport took an event-loop round for each), and the IKE timer is
    re-armed once for the burst, not once per datagram."""
    _, cr = ike_configs()

    async def body():
        gr = await responder(cr)
        arms = []
        real_arm = gr._arm_timer
        gr._arm_timer = lambda: (arms.append(1), real_arm())[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                for n in range(20):              # loopback delivers before sendto returns
                    s.sendto(_ike_sa_init_probe(n + 1), ("127.0.0.1", gr.port))
                before = gr.counters["ike_rx"]
                await asyncio.sleep(0)           # one event-loop round
                await asyncio.sleep(0)
                assert gr.counters["ike_rx"] - before == 20
                assert len(arms) == 1
        finally:
            await gr.stop()
    run(body())


def test_an_unfragmented_ike_auth_larger_than_an_esp_slot_arrives_over_nat_t():
    """With fragmentation off, an IKE_AUTH carrying many traffic selectors is one
    datagram of over 3 KB on port 4500; the NAT-T reader must not drop it as an
    oversized ESP packet (its slots were 2 KB)."""
    host = "127.0.0.1"
    left, right, _, _ = NETS[host]
    ci, cr = ike_configs(host, fragmentation=False)
    many = [TrafficSelectorSpec.parse(f"10.1.{n // 250}.{n % 250 + 1}/32") for n in range(200)]
    ci.children = [ChildConfig("net", many, [TrafficSelectorSpec.parse(right)], [EspProposal.parse("aes256gcm16")])]

    async def body():
        gi, gr, conn = await pair(host, ci, cr)
        try:
            assert conn.established
            assert gr.dataplane.counters["oversized"] == 0
            assert gr.counters["natt_rx"] >= 1 and gr.endpoint.stats.get("fragments_received", 0) == 0
        finally:
            await gi.stop()
            await gr.stop()
    run(body())
