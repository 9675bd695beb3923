"""The daemon's garbage-collector policy (ikecore/aio/collector.py): it rests on
the SA lifecycle making no reference cycles, so that is tested here first."""
from __future__ import annotations

import asyncio
import dataclasses
import gc

from aio_helpers import run
from test_loadgen import _ticket_gateway, load_template

from ikecore.aio.collector import CollectorPolicy
from ikecore.aio.loadgen import LoadGenerator, LoadSpec


def test_the_sa_lifecycle_leaves_nothing_for_the_cycle_collector():
    """300 SAs established, Child-rekeyed, IKE-rekeyed, cloned, resumed with
    tickets and deleted, through a gateway and the load generator in this
    process: the collector then finds no unreachable object. Everything was
    freed by reference counting, which is what makes freezing survivors safe."""
    async def body():
        gr = await _ticket_gateway()
        gen = LoadGenerator(LoadSpec("127.0.0.1", dataclasses.replace(load_template(), resumption=True, clone=True),
                                     port=gr.port, natt_port=gr.natt_port, concurrency=16))
        await gen.start()
        was_enabled = gc.isenabled()
        try:
            await gen.establish(10, timeout=60)            # first-use caches
            await gen.delete_all(timeout=60)
            gc.collect()
            gc.disable()
            assert (await gen.establish(300, timeout=60)).completed == 300
            assert (await gen.rekey_children(0.2, timeout=60)).completed == 300
            assert (await gen.rekey_ike_sas(0.2, timeout=60)).completed == 300
            assert (await gen.clone_all(timeout=60)).completed == 300
            assert (await gen.resume_all(timeout=60)).completed == 300
            assert (await gen.delete_all(timeout=60)).completed == 600
            await asyncio.sleep(0.1)
            assert gr.endpoint.connections == {} and gen.endpoint.connections == {}
            assert gc.collect() == 0
        finally:
            if was_enabled:
                gc.enable()
            await gen.close()
            await gr.stop()
    run(body(), timeout=120)


def test_survivors_of_a_full_collection_are_frozen_and_the_periodic_one_unfreezes():
    policy = CollectorPolicy(full_interval=0)
    gc.collect()
    policy.install()
    try:
        frozen = gc.get_freeze_count()
        assert frozen > 0                                  # start-up objects
        keep = [[i] for i in range(5000)]                  # tracked objects that survive
        gc.collect(2)
        assert policy.freezes == 1 and gc.get_freeze_count() >= frozen + 5000
        gc.collect(0)                                      # a young collection freezes nothing
        assert policy.freezes == 1
        # a cycle frozen while alive, then dropped, is found by the periodic full collection
        a, b = [], []
        a.append(b)
        b.append(a)
        gc.collect(2)
        del a, b
        assert policy.collect_all() >= 2
        assert policy.full_collections == 1 and policy.status()["frozen_objects"] == gc.get_freeze_count()
        del keep
    finally:
        policy.uninstall()
    assert gc.get_freeze_count() == 0 and policy._after_collection not in gc.callbacks
