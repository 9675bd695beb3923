"""The daemon's cyclic garbage collector at 100,000 SAs.

CPython's collector examines every tracked object of the oldest generation in
a full collection, and starts one whenever the objects that survived younger
collections reach a quarter of that generation. A gateway holding 100,000 SAs
has over two million such objects: a full collection stalled the event loop
for up to a second, about every 15,000 new SAs (14 of them, 4.3 s in all,
while 95,000 SAs came up), and a rate probe that met one lost a third of its
handshakes.

The SA lifecycle makes no reference cycles: establishing, rekeying, cloning,
resuming and deleting SAs leaves nothing for the collector to find
(tests/aio/test_gateway_collector.py), so SAs are freed by reference counting
alone. After each full collection, :class:`CollectorPolicy` therefore freezes
what survived (``gc.freeze()``): later collections look only at objects made
since. A cycle that becomes garbage after it was frozen would stay; every
``full_interval`` seconds the frozen objects are unfrozen and collected once,
which bounds that to what one interval makes. This is the daemon's policy
(``[gateway] gc_full_interval``); an application that embeds the Gateway keeps
its own collector settings.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import time

log = logging.getLogger("ikecore.gateway")


class CollectorPolicy:
    """Freeze after every full collection; unfreeze and collect every ``full_interval``."""

    def __init__(self, full_interval: float = 3600.0) -> None:
        self.full_interval = full_interval
        self.freezes = 0
        self.full_collections = 0          # the periodic ones, with their pause
        self.last_full_pause = 0.0
        self._installed = False

    def install(self) -> None:
        if self._installed:
            return
        gc.collect()
        gc.freeze()                       # start-up: modules, configuration
        gc.callbacks.append(self._after_collection)
        self._installed = True

    def uninstall(self) -> None:
        if self._installed:
            gc.callbacks.remove(self._after_collection)
            gc.unfreeze()
            self._installed = False

    def _after_collection(self, phase: str, info: dict) -> None:
        # "stop" comes while the collector still holds its lock against a nested
        # collection; freeze() only moves lists, it allocates nothing
        if phase == "stop" and info["generation"] == 2:
            gc.freeze()
            self.freezes += 1

    def collect_all(self) -> int:
        """Unfreeze, collect everything once, freeze again: the bounded pause."""
        t0 = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        self.last_full_pause = time.perf_counter() - t0
        self.full_collections += 1
        log.info("full garbage collection: %d unreachable objects, %.0f ms", found, self.last_full_pause * 1000)
        return found

    async def run(self, running) -> None:
        """Every ``full_interval`` while ``running()``; 0: never."""
        if self.full_interval <= 0:
            return
        while running():
            await asyncio.sleep(self.full_interval)
            if running():
                self.collect_all()

    def status(self) -> dict:
        return {"frozen_objects": gc.get_freeze_count(), "freezes": self.freezes,
                "full_collections": self.full_collections,
                "last_full_pause_ms": round(self.last_full_pause * 1000, 1)}


__all__ = ["CollectorPolicy"]
