"""``Gateway.clone`` (RFC 7791) between two gateways on loopback: the clone
carries its own Child SA and traffic beside the parent's, outlives the parent's
Delete, and every refusal arrives as a GatewayError with the peer's notify.

    gi: clone(conn)   HDR, SK {N(CLONE_IKE_SA), SA, Ni, KEi}  -->  gr
                                                         <--  HDR, SK {SA, Nr, KEr}
"""
from __future__ import annotations

import asyncio

import pytest

from aio_helpers import NETS, collect, ike_configs, pair, run, udp_packet
from ikecore.aio import GatewayError
from ikecore.protocol import events as ev
from ikecore.protocol.constants import NotifyType


async def traffic_through(gi, gr, child_i, child_r, host, n, tag):
    """n packets each way through one given Child SA pair (both SAs carry the same selectors)."""
    _, _, a, b = NETS[host]
    fwd = [udp_packet(a, b, tag + b"i2r-%d" % k) for k in range(n)]
    back = [udp_packet(b, a, tag + b"r2i-%d" % k) for k in range(n)]
    assert gi.send_packets(fwd, child_i) == n
    got = await collect(gr.packets, n)
    assert sorted(p for _, p in got) == sorted(fwd) and {c.spi_in for c, _ in got} == {child_r.spi_in}
    assert gr.send_packets(back, child_r) == n
    got = await collect(gi.packets, n)
    assert sorted(p for _, p in got) == sorted(back) and {c.spi_in for c, _ in got} == {child_i.spi_in}


def test_clone_carries_its_own_child_sa_and_outlives_the_parent():
    host = "127.0.0.1"

    async def body():
        ci, cr = ike_configs(host, clone=True)
        gi, gr, conn = await pair(host, ci, cr)
        try:
            [rconn] = gr.connections
            r_cloned = asyncio.ensure_future(gr.wait_for(ev.IkeSaCloned, rconn))
            clone = await gi.clone(conn)
            _, r_event = await r_cloned
            rclone = r_event.connection
            assert clone.established and clone.initiator and clone.spis == rclone.spis != conn.spis
            assert clone.keys == rclone.keys and not gi.child_sas(clone)
            assert {c.spis for c in gi.connections} == {conn.spis, clone.spis}
            assert gr.endpoint.ike_sas_of(ci.local_id) == 2

            # a Child SA over the clone; both pairs carry traffic, each its own
            gi.create_child(clone)
            await gi.wait_for(ev.ChildSaInstalled, clone)
            await asyncio.sleep(0.05)
            [child_ci] = gi.child_sas(clone)
            [child_cr] = gr.child_sas(rclone)
            [child_pi] = gi.child_sas(conn)
            [child_pr] = gr.child_sas(rconn)
            await traffic_through(gi, gr, child_ci, child_cr, host, 10, b"clone")
            await traffic_through(gi, gr, child_pi, child_pr, host, 10, b"parent")

            # the parent goes; the clone and its Child SA stay
            gi.delete(conn)
            await gi.wait_for(ev.IkeSaDeleted, conn)
            await asyncio.sleep(0.05)
            assert [c.spis for c in gi.connections] == [clone.spis]
            assert [c.spis for c in gr.connections] == [clone.spis]
            await traffic_through(gi, gr, child_ci, child_cr, host, 10, b"after")
            assert gi.stats()["gateway"]["internal_errors"] == gr.stats()["gateway"]["internal_errors"] == 0
        finally:
            await gi.stop()
            await gr.stop()
    run(body())


@pytest.mark.parametrize("case", ["not-negotiated", "over-the-cap", "move-without-mobike"])
def test_clone_refusals_raise_gateway_errors(case):
    host = "127.0.0.1"

    async def body():
        ci, cr = ike_configs(host, clone=case != "not-negotiated")
        if case == "over-the-cap":
            cr.clone_limit = 0
        if case == "not-negotiated":
            cr.clone = True                   # only the initiator lacks it
        gi, gr, conn = await pair(host, ci, cr)
        try:
            with pytest.raises(GatewayError) as info:
                if case == "move-without-mobike":
                    await gi.clone(conn, local_address="127.0.0.2")
                else:
                    await gi.clone(conn)
            if case == "over-the-cap":
                assert info.value.notify_type == NotifyType.NO_ADDITIONAL_SAS
            elif case == "not-negotiated":
                assert "not negotiated" in str(info.value)
            else:
                assert "MOBIKE" in str(info.value)
            # the parent is as it was
            assert [c.spis for c in gi.connections] == [conn.spis] and len(gi.child_sas(conn)) == 1
            gi.check_liveness(conn)
            await gi.wait_for(ev.PeerAlive, conn)
        finally:
            await gi.stop()
            await gr.stop()
    run(body())


def test_clone_moved_to_another_local_address_with_mobike():
    """RFC 7791 Appendix A: clone, then move the clone (MOBIKE) while the parent stays."""
    host, new = "127.0.0.1", "127.0.0.2"

    async def body():
        ci, cr = ike_configs(host, clone=True, mobike=True)
        gi, gr, conn = await pair(host, ci, cr)
        try:
            [rconn] = gr.connections
            r_cloned = asyncio.ensure_future(gr.wait_for(ev.IkeSaCloned, rconn))
            clone = await gi.clone(conn, local_address=new)
            _, r_event = await r_cloned
            rclone = r_event.connection
            assert clone.local == (new, gi.natt_port) and rclone.remote == (new, gi.natt_port)
            assert conn.local == (host, gi.natt_port) and rconn.remote == (host, gi.natt_port)
            gi.create_child(clone)
            await gi.wait_for(ev.ChildSaInstalled, clone)
            await asyncio.sleep(0.05)
            [child_ci] = gi.child_sas(clone)
            [child_cr] = gr.child_sas(rclone)
            [child_pi] = gi.child_sas(conn)
            [child_pr] = gr.child_sas(rconn)
            await traffic_through(gi, gr, child_ci, child_cr, host, 10, b"moved clone")
            await traffic_through(gi, gr, child_pi, child_pr, host, 10, b"parent")
        finally:
            await gi.stop()
            await gr.stop()
    run(body())
