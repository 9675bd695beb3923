"""One gateway's ticket side as its own OS process, for the multi-process Redis
tests: `python redis_node.py URL KEYFILE NOW START_AT COMMAND [ARG]`.

It syncs the shared key ring (SharedKeyRing) at NOW, waits until START_AT
(unix time, so several nodes act together), runs COMMAND and prints one JSON
line: issue-value / issue-ref -> {"ticket": hex}; redeem HEX -> {"ok": bool,
"error": name}; ring -> {"generation": n, "key_ids": [...]}."""
from __future__ import annotations

import asyncio
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "resumption"))

from ticket_helpers import sample_state  # noqa: E402

from ikecore.errors import IkeError  # noqa: E402
from ikecore.resumption import TicketAuthority  # noqa: E402
from ikecore.store import (RedisTicketStore, SharedKeyRing, issue_ticket, load_wrapping_key,  # noqa: E402
                           redeem_ticket)


async def main(url: str, keyfile: str, now: float, start_at: float, command: str, arg: str) -> dict:
    store = RedisTicketStore(url, deadline=2.0)
    try:
        shared = SharedKeyRing(store, load_wrapping_key(keyfile), rng=os.urandom, rotation=100, keep=1)
        delay = start_at - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        ring = await shared.sync(now)
        result: dict = {"pid": os.getpid(), "generation": ring.generation,
                        "key_ids": [k.hex() for k in ring.key_ids]}
        if command in ("issue-value", "issue-ref"):
            authority = TicketAuthority(ring, by_reference=command == "issue-ref", rng=os.urandom)
            state = sample_state(os.urandom, expires_at=int(now) + 60)
            before = store.round_trips
            result["ticket"] = (await issue_ticket(authority, store, state, now)).ticket.hex()
            result["round_trips"] = store.round_trips - before
        elif command == "redeem":
            authority = TicketAuthority(ring, rng=os.urandom)
            before = store.round_trips
            try:
                state = await redeem_ticket(authority, store, bytes.fromhex(arg), now)
                result.update(ok=True, idi=state.idi.decode())
            except IkeError as exc:
                result.update(ok=False, error=type(exc).__name__)
            result["round_trips"] = store.round_trips - before
        return result
    finally:
        await store.close()


if __name__ == "__main__":
    url, keyfile, now, start_at, command = sys.argv[1:6]
    arg = sys.argv[6] if len(sys.argv) > 6 else ""
    print(json.dumps(asyncio.run(main(url, keyfile, float(now), float(start_at), command, arg))))
