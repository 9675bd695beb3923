"""``ikecore demo``'s cloning steps (RFC 7791 with RFC 4555):

1. a fresh authenticated IKE SA (with its Child SA) is cloned: CREATE_CHILD_SA
   with N(CLONE_IKE_SA), a new key exchange, no re-authentication;
2. MOBIKE moves the clone to a second address pair (the initiator's 127.0.0.2
   instead of 127.0.0.1), while the parent stays where it was;
3. a Child SA is created over the clone, and ESP flows through both IKE SAs'
   Child SAs, on both address pairs, batch for batch;
4. the clone is deleted; the parent answers a liveness check and carries traffic.

Over IPv6 there is no second loopback address: the clone stays on ::1.
"""
from __future__ import annotations

import asyncio
import time

from ..protocol import events as ev
from .gateway import Gateway

SECOND_ADDRESS = {4: "127.0.0.2", 6: None}


def _path(conn) -> str:
    (lh, lp), (rh, rp) = conn.local, conn.remote
    return f"{lh}:{lp} <=> {rh}:{rp}"


async def _both_paths(gi: Gateway, sink, paths, *, src: str, dst: str, count: int, size: int,
                      timeout: float, make_packet) -> dict:
    """``count`` packets through each (name, Child SA) in ``paths``, one batch on
    each in turn; how many of each arrived (``sink.by_spi`` counts per Child SA)."""
    batch = gi.dataplane.batch_size
    base = {name: sink.by_spi.get(peer_spi, 0) for name, _, peer_spi in paths}
    sent = dict.fromkeys(base, 0)
    for start in range(0, count, batch):
        for name, child, _ in paths:
            pkts = [make_packet(src, dst, start + i, size) for i in range(min(batch, count - start))]
            sent[name] += gi.send_packets(pkts, child)
        await asyncio.sleep(0)
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if all(sink.by_spi.get(spi, 0) - base[name] >= sent[name] for name, _, spi in paths):
            break
        await asyncio.sleep(0.002)
    return {name: {"sent": sent[name], "received": sink.by_spi.get(spi, 0) - base[name]}
            for name, _, spi in paths}


async def clone_steps(gi: Gateway, gr: Gateway, *, family: int, sink, a_ip: str, b_ip: str, packets: int,
                      size: int, timeout: float, make_packet) -> dict:
    out: dict = {}
    try:
        t0 = time.perf_counter()
        parent = await gi.initiate("demo", timeout=timeout)
        r_parent = gr.current(next(c for c in gr.connections if c.spi_i == parent.spi_i))
        out["parent"] = {"spi_i": parent.spi_i.hex(), "spi_r": parent.spi_r.hex(), "path": _path(parent),
                         "ms": round((time.perf_counter() - t0) * 1000, 3)}

        # 1 + 2: clone, then move the clone with MOBIKE
        r_cloned = asyncio.ensure_future(gr.wait_for(ev.IkeSaCloned, r_parent, timeout=timeout))
        t0 = time.perf_counter()
        clone = await gi.clone(parent, local_address=SECOND_ADDRESS[family])
        _, r_event = await r_cloned
        r_clone = r_event.connection
        out["clone"] = {"ms": round((time.perf_counter() - t0) * 1000, 3), "spi_i": clone.spi_i.hex(),
                        "spi_r": clone.spi_r.hex(), "path": _path(clone),
                        "moved": SECOND_ADDRESS[family] is not None and clone.local[0] == SECOND_ADDRESS[family],
                        "responder_sees": f"{r_clone.remote[0]}:{r_clone.remote[1]}",
                        "parent_path": _path(parent), "ike_suite": None}

        # 3: a Child SA over the clone; traffic through both at once
        t0 = time.perf_counter()
        gi.create_child(clone)
        await gi.wait_for(ev.ChildSaInstalled, clone, timeout=timeout)
        for _ in range(200):
            if gr.child_sas(r_clone):
                break
            await asyncio.sleep(0.005)
        [c_child] = gi.child_sas(clone)
        p_child = gi.child_sas(parent)[0]
        out["clone_child"] = {"ms": round((time.perf_counter() - t0) * 1000, 3),
                              "spi_in": c_child.spi_in.hex(), "spi_out": c_child.spi_out.hex()}
        # the responder counts arrivals by its own inbound SPI: our outbound one
        paths = [("parent", p_child, p_child.spi_out), ("clone", c_child, c_child.spi_out)]
        out["traffic"] = await _both_paths(gi, sink, paths, src=a_ip, dst=b_ip, count=packets, size=size,
                                           timeout=timeout, make_packet=make_packet)

        # 4: delete the clone; the parent keeps working
        t0 = time.perf_counter()
        gi.delete(clone)
        _, deleted = await gi.wait_for(ev.IkeSaDeleted, clone, timeout=timeout)
        gi.check_liveness(parent)
        await gi.wait_for(ev.PeerAlive, parent, timeout=timeout)
        after = await _both_paths(gi, sink, paths[:1], src=a_ip, dst=b_ip, count=max(1, packets // 2),
                                  size=size, timeout=timeout, make_packet=make_packet)
        out["clone_deleted"] = {"ms": round((time.perf_counter() - t0) * 1000, 3), "reason": deleted.reason,
                                "parent_alive": True, "parent_traffic": after["parent"],
                                "clone_child_sas_left": len(gr.child_sas(r_clone))}
        flows = list(out["traffic"].values()) + [after["parent"]]
        out["ok"] = (all(f["received"] == f["sent"] > 0 for f in flows)
                     and (out["clone"]["moved"] or SECOND_ADDRESS[family] is None)
                     and out["clone_deleted"]["clone_child_sas_left"] == 0)
    except Exception as exc:          # the summary says what failed
        out["ok"] = False
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        for c in list(gi.connections):
            gi.delete(c)
        await asyncio.sleep(0.05)
    return out


def format_clone(c: dict) -> list[str]:
    lines = []
    if "parent" in c:
        lines.append(f"  clone       of a fresh IKE SA {c['parent']['spi_i']}_i on {c['parent']['path']}")
    if "clone" in c:
        x = c["clone"]
        moved = f"moved with MOBIKE to {x['path']}" if x["moved"] else f"on {x['path']}"
        lines.append(f"  cloned      in {x['ms']:.1f} ms (no re-authentication), SPIs {x['spi_i']}_i {x['spi_r']}_r, "
                     f"{moved}; the parent stays on {x['parent_path']}")
    if "clone_child" in c:
        lines.append(f"  Child SA    over the clone in {c['clone_child']['ms']:.1f} ms, SPIs in "
                     f"{c['clone_child']['spi_in']} out {c['clone_child']['spi_out']}")
    if "traffic" in c:
        t = c["traffic"]
        lines.append(f"  ESP  both   parent {t['parent']['received']}/{t['parent']['sent']}, "
                     f"clone {t['clone']['received']}/{t['clone']['sent']} packets, batch for batch")
    if "clone_deleted" in c:
        d = c["clone_deleted"]
        lines.append(f"  deleted     the clone in {d['ms']:.1f} ms; the parent answers DPD and carries "
                     f"{d['parent_traffic']['received']}/{d['parent_traffic']['sent']} packets")
    if "error" in c:
        lines.append(f"  error       {c['error']}")
    return lines


__all__ = ["clone_steps", "format_clone"]
