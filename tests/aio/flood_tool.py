"""An IKE_SA_INIT flood, run as its own process against a gateway on loopback
(tests/aio/test_attack_flood.py, bench/). Bounded in count and in time.

``answer``: one source address that answers cookies (RFC 7296 §2.6) and stops
after IKE_SA_INIT, leaving a half-open SA per request -- the attack of the
hardening issue. ``spoof``: many source addresses in 127.0.0.0/8 that never read
an answer, as spoofed sources cannot (they get cookies and make no state).

Prints one JSON line of counts when done: sent, cookies, half_open_made, silent.
"""
from __future__ import annotations

import argparse
import json
import random
import select
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ikecore.protocol.config import IkeProposal, psk_config  # noqa: E402
from ikecore.protocol.constants import ExchangeType, NotifyType  # noqa: E402
from ikecore.protocol.endpoint import IkeEndpoint  # noqa: E402
from ikecore.protocol.message import parse_message  # noqa: E402

_IKE_SA_INIT = int(ExchangeType.IKE_SA_INIT)


def _attacker_config(proposal: str):
    return psk_config("flood@attacker", None, b"not the psk of anyone here",
                      proposals=[IkeProposal.parse(proposal)], children=[], name="flood")


def answer_cookies(target, source: str, rate: float, count: int, duration: float, proposal: str) -> dict:
    cfg = _attacker_config(proposal)
    now = time.monotonic
    ep = IkeEndpoint(cfg, rng=random.Random(7).randbytes, now=now())
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    local = sock.getsockname()
    stats = {"sent": 0, "cookies": 0, "half_open_made": 0, "refused": 0}
    live = {}                                          # SPIi -> connection
    start = now()
    next_at = start
    while now() - start < duration and (stats["sent"] < count or live):
        if stats["sent"] < count and now() >= next_at:
            conn = ep.connect(cfg, local, target, now())
            live[conn.spi_i] = (conn, now())
            next_at += 1.0 / rate
        for data, remote, _ in ep.datagrams_to_send():
            if len(data) > 18 and data[18] == _IKE_SA_INIT:      # never an IKE_AUTH
                sock.sendto(data, remote)
                stats["sent"] += 1
        while ep.next_event() is not None:
            pass
        ready, _, _ = select.select([sock], [], [], max(0.0, min(0.01, next_at - now())))
        while ready:
            try:
                data, remote = sock.recvfrom(65535, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            try:
                msg = parse_message(data)
            except Exception:
                continue
            entry = live.get(msg.spi_i)
            if entry is None:
                continue
            if msg.notify(NotifyType.COOKIE) is not None:
                stats["cookies"] += 1
                ep.receive_datagram(data, remote, local, now())
                continue
            conn = entry[0]
            del live[msg.spi_i]
            if any(msg.spi_r):
                stats["half_open_made"] += 1
            conn.terminate("the attacker moves on", now())
            ep.collect(conn, now())
        # requests nobody answered (a cap refuses silently): give up on them
        for spi, (conn, t0) in list(live.items()):
            if now() - t0 > 1.0:
                stats["refused"] += 1
                del live[spi]
                conn.terminate("no answer", now())
                ep.collect(conn, now())
    sock.close()
    stats["seconds"] = round(now() - start, 2)
    return stats


def spoofed(target, sources: int, rate: float, count: int, duration: float, proposal: str) -> dict:
    cfg = _attacker_config(proposal)
    ep = IkeEndpoint(cfg, rng=random.Random(8).randbytes, now=0.0)
    socks = []
    for k in range(sources):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # answers are never read
        s.bind((f"127.0.{2 + k // 250}.{1 + k % 250}", 0))
        socks.append(s)
    rnd = random.Random(9)
    conn = ep.connect(cfg, socks[0].getsockname(), target, 0.0)
    [(template, _, _)] = ep.datagrams_to_send()
    stats = {"sent": 0}
    start = time.monotonic()
    while stats["sent"] < count and time.monotonic() - start < duration:
        # a fresh SPIi per request (the KE and nonce may repeat: the responder
        # cannot tell before doing the work the cookie saves)
        data = rnd.randbytes(8) + template[8:]
        socks[stats["sent"] % len(socks)].sendto(data, target)
        stats["sent"] += 1
        delay = start + stats["sent"] / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    del conn
    for s in socks:
        s.close()
    stats["seconds"] = round(time.monotonic() - start, 2)
    return stats


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", required=True, help="HOST:PORT of the gateway's IKE port (loopback)")
    ap.add_argument("--mode", choices=["answer", "spoof"], required=True)
    ap.add_argument("--source", default="127.0.0.66")
    ap.add_argument("--sources", type=int, default=200)
    ap.add_argument("--rate", type=float, default=130.0)
    ap.add_argument("--count", type=int, default=600)
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--proposal", default="aes256gcm16-prfsha256-x25519")
    a = ap.parse_args(argv)
    host, port = a.target.rsplit(":", 1)
    if not host.startswith("127."):
        ap.error("loopback targets only")
    target = (host, int(port))
    duration = min(a.duration, 60.0)
    if a.mode == "answer":
        out = answer_cookies(target, a.source, a.rate, a.count, duration, a.proposal)
    else:
        out = spoofed(target, a.sources, a.rate, a.count, duration, a.proposal)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
