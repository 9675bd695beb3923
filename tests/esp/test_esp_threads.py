"""Different SAs driven from several threads at once (the C calls release the GIL)."""
from __future__ import annotations

import os
import threading

from esp_suites import SUITES, Suite
from ikecore.esp import PacketVector


def _worker(name, k, rounds, errors):
    try:
        s = Suite(name, seed=k)
        tx, rx = s.pair(0x100 + k)
        payloads = [os.urandom(n) for n in (0, 64, 512, 1400)] * 8
        enc, dec = PacketVector(32), PacketVector(32)
        for _ in range(rounds):
            # not 4/41: random octets labelled IPv4 that happen to start with 0x4X
            # would be cut at their "IP length" (TFC padding removal), 1 run in 60
            enc.load(payloads, next_header=17)
            assert tx.encrypt_batch(enc, out=dec) == len(payloads)
            assert dec.mark_pending() == len(payloads)
            assert rx.decrypt_batch(dec) == len(payloads)
            assert dec.ok_packets() == payloads
            p = os.urandom(100)
            assert rx.decrypt(tx.encrypt(p, 17)) == (p, 17)
    except Exception as exc:  # pragma: no cover - reported below
        errors.append((name, k, exc))


def test_threads_on_separate_sas():
    errors = []
    names = sorted(SUITES)
    threads = [threading.Thread(target=_worker, args=(names[k % len(names)], k, 60, errors))
               for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_c_calls_release_the_gil():
    """A thread blocked inside C (recvmmsg) must not stop Python on the main thread."""
    import socket
    import struct
    import time

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, \
         socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
        b.bind(("127.0.0.1", 0))
        # kernel-side receive timeout: if the GIL were held the test ends, not hangs
        b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 5, 0))
        vec = PacketVector(8)
        got = []
        t = threading.Thread(target=lambda: got.append(vec.recv(b)))
        t0 = time.monotonic()
        t.start()
        time.sleep(0.2)
        assert sum(range(100000)) > 0          # Python runs while the thread sits in C
        a.sendto(b"\xff", b.getsockname())
        t.join(10)
        assert got == [1]
        assert time.monotonic() - t0 < 4
