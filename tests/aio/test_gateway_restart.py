"""``start``/``restart`` connections: the gateway initiates again when the IKE SA
ends by the peer's hand, and not when the operator deleted it, an IKE rekey
replaced it, or the gateway stops."""
from __future__ import annotations

import asyncio
import contextlib

import pytest

from aio_helpers import ike_configs, responder, run
from ikecore.aio import ConnectionSpec, Gateway, GatewayConfig
from ikecore.protocol import events as ev

QUIET = 1.0   # seconds in which no re-initiation may show up (loopback answers in milliseconds)


async def kept_initiator(gr: Gateway, ci, **spec_kw) -> Gateway:
    spec = ConnectionSpec("to-r", ci, remote_addrs=["127.0.0.1"], remote_port=gr.port,
                          remote_natt_port=gr.natt_port, **spec_kw)
    cfg = GatewayConfig(connections={"to-r": spec}, listen=["127.0.0.1"], port=0, natt_port=0)
    return await Gateway(cfg).start()


@contextlib.asynccontextmanager
async def kept_pair(**spec_kw):
    """(initiator whose connection "to-r" has spec_kw, responder); both stopped
    on the way out."""
    ci, cr = ike_configs()
    gr = await responder(cr)
    gi = await kept_initiator(gr, ci, **spec_kw)
    try:
        yield gi, gr
    finally:
        await gi.stop()
        await gr.stop()


async def up(gi: Gateway, gr: Gateway):
    """Both sides' (IKE SA, Child SA installed) once the initiator's start is through."""
    i_child = asyncio.ensure_future(gi.wait_for(ev.ChildSaInstalled, timeout=20))
    r_child = asyncio.ensure_future(gr.wait_for(ev.ChildSaInstalled, timeout=20))
    (iconn, _), (rconn, _) = await asyncio.gather(i_child, r_child)
    return iconn, rconn


async def no_initiation(gr: Gateway) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await gr.wait_for(ev.IkeSaEstablished, timeout=QUIET)


def test_start_connection_comes_back_after_the_peer_deletes_it():
    async def body():
        async with kept_pair(start=True) as (gi, gr):        # restart follows start
            first_i, first_r = await up(gi, gr)
            gone = asyncio.ensure_future(gi.wait_for(ev.IkeSaDeleted, timeout=20))
            again = asyncio.ensure_future(up(gi, gr))
            gr.delete(first_r)
            _, deleted = await gone
            assert deleted.reason == "deleted by peer"
            second_i, second_r = await again
            assert second_i is not first_i and second_i.spi_i != first_i.spi_i
            assert second_r.spi_i == second_i.spi_i
            assert gi.counters["ike_sas_established"] == 2
            # and once more: the new SA is kept up as well
            again = asyncio.ensure_future(up(gi, gr))
            gr.delete(second_r)
            third_i, _ = await again
            assert third_i.spi_i not in (first_i.spi_i, second_i.spi_i)
    run(body())


def test_operator_delete_and_ike_rekey_do_not_restart():
    async def body():
        async with kept_pair(start=True) as (gi, gr):
            conn, _ = await up(gi, gr)
            rekeyed = asyncio.ensure_future(gi.wait_for(ev.IkeSaRekeyed, timeout=20))
            gi.rekey(conn)
            await rekeyed
            await no_initiation(gr)                 # the old SA's delete is no failure
            gone = asyncio.ensure_future(gi.wait_for(ev.IkeSaDeleted, timeout=20))
            gi.delete(conn)                         # follows the rekey to the current SA
            await gone
            await no_initiation(gr)
            assert gi.connections == []
    run(body())


@pytest.mark.parametrize("spec_kw, deleted_by", [({"start": True, "restart": False}, "peer"),
                                                 ({"start": True}, "own stop")])
def test_started_connection_stays_down(spec_kw, deleted_by):
    """restart = false leaves the connection down after the peer's Delete; the
    initiator's own stop deletes it without initiating again."""
    async def body():
        async with kept_pair(**spec_kw) as (gi, gr):
            _, rconn = await up(gi, gr)
            gone = asyncio.ensure_future(gr.wait_for(ev.IkeSaDeleted, timeout=20))
            if deleted_by == "peer":
                gr.delete(rconn)
                await gone
                await no_initiation(gr)
            else:
                await gi.stop()                     # the initiator's own shutdown deletes, no restart
                await gone
                await no_initiation(gr)
            assert gi.connections == []
    run(body())


def test_restart_without_start_keeps_an_initiated_connection_up():
    async def body():
        async with kept_pair(restart=True) as (gi, gr):
            await no_initiation(gr)                 # not started by itself
            conn = await gi.initiate("to-r", timeout=10)
            again = asyncio.ensure_future(up(gi, gr))
            gr.delete(gr.connections[0])
            new, _ = await again
            assert new.spi_i != conn.spi_i
    run(body())


def test_peer_that_vanished_is_found_dead_and_reconnected_when_back():
    """The responder crashes (no Delete); DPD gives it up; the initiator keeps
    trying and connects to the responder that comes back on the same ports."""
    async def body():
        quick = dict(dpd_delay=0.3, retransmit_timeout=0.2, retransmit_base=1.0, retransmit_tries=2)
        ci, cr = ike_configs(**quick)
        gr = await responder(cr)
        port, natt_port = gr.port, gr.natt_port
        gi = await kept_initiator(gr, ci, start=True)
        gr2 = None
        try:
            first, _ = await up(gi, gr)
            gone = asyncio.ensure_future(gi.wait_for(ev.IkeSaDeleted, timeout=20))
            gr.abort()                                     # a crash: nothing sent
            _, deleted = await gone
            assert deleted.reason == "peer unresponsive"
            gr2 = await Gateway(GatewayConfig(connections={"from-i": ConnectionSpec("from-i", cr)},
                                              listen=["127.0.0.1"], port=port, natt_port=natt_port)).start()
            new, _ = await up(gi, gr2)
            assert new.spi_i != first.spi_i
            assert gr2.connections and gr2.connections[0].spi_i == new.spi_i
        finally:
            await gi.stop()
            if gr2 is not None:
                await gr2.stop()
    run(body())
