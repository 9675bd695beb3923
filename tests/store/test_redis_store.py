"""RedisTicketStore against a real redis-server (started per test session on a
free loopback port, stopped by its PID), with gateways in separate OS
processes: a ticket spent at one is refused at the other, the key ring is
shared and rotated once. ikecore/store/redis_store.py, ringsync.py."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis_server import REDIS_SERVER, RedisServer, free_port

from ikecore.errors import StoreTimeout, StoreUnavailable
from ikecore.store import RedisTicketStore, SharedKeyRing

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed (apt redis-server)")

NODE = Path(__file__).with_name("redis_node.py")
NOW = 1_800_000_000


@pytest.fixture(scope="module")
def redis_server():
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def url(redis_server):
    """A clean database for each test."""
    with socket.create_connection(("127.0.0.1", redis_server.port), timeout=2) as s:
        s.sendall(b"FLUSHALL\r\n")
        assert s.recv(16).startswith(b"+OK")
    return redis_server.url


@pytest.fixture
def keyfile(tmp_path):
    path = tmp_path / "ring.key"
    path.write_bytes(os.urandom(32))
    path.chmod(0o600)
    return path


def run(coro):
    return asyncio.run(coro)


def node(url, keyfile, command, arg="", *, now=NOW, start_at=0.0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(NODE), url, str(keyfile), str(now), str(start_at), command, arg],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen) -> dict:
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    return json.loads(out)


def node_run(*args, **kw) -> dict:
    return result(node(*args, **kw))


# --- the store's calls -----------------------------------------------------------------

def test_calls_against_redis(url):
    async def main():
        store = RedisTicketStore(url)
        try:
            await store.put(b"ticket:1", b"state", 10)
            assert await store.take(b"ticket:1") == b"state"
            assert await store.take(b"ticket:1") is None
            assert await store.set_once(b"spent:1", 10) is True
            assert await store.set_once(b"spent:1", 10) is False
            assert await store.put_ring(1, b"ring one", 100) is True
            assert await store.put_ring(1, b"ring two", 100) is False
            assert await store.get_ring(1) == b"ring one"
            assert await store.put_ring(3, b"three", 100) and await store.put_ring(2, b"two", 100)
            assert await store.latest_ring_generation() == 3
            assert store.round_trips == 11
        finally:
            await store.close()
    run(main())


def test_keys_carry_the_prefix_and_a_ttl(url, redis_server):
    import redis
    async def main():
        store = RedisTicketStore(url, prefix=b"gw-test:")
        try:
            await store.set_once(b"spent:abc", 30)
        finally:
            await store.close()
    run(main())
    client = redis.Redis(port=redis_server.port)
    try:
        assert client.keys("*") == [b"gw-test:spent:abc"]
        assert 0 < client.ttl(b"gw-test:spent:abc") <= 30
    finally:
        client.close()


def test_a_down_store_fails_fast():
    async def main():
        store = RedisTicketStore(f"redis://127.0.0.1:{free_port()}/0", deadline=0.5)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            with pytest.raises(StoreUnavailable):
                await store.set_once(b"spent:x", 10)
            with pytest.raises(StoreUnavailable):
                await store.take(b"ticket:x")
        finally:
            await store.close()
        assert loop.time() - t0 < 2.0
    run(main())


def test_a_server_that_never_answers_times_out():
    """A listener that accepts and reads but never replies."""
    async def main():
        async def blackhole(reader, writer):
            try:
                while await reader.read(4096):
                    pass
            finally:
                writer.close()
        server = await asyncio.start_server(blackhole, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        store = RedisTicketStore(f"redis://127.0.0.1:{port}/0", deadline=0.2)
        loop = asyncio.get_running_loop()
        try:
            for call in (store.set_once(b"spent:x", 10), store.take(b"ticket:x"), store.put(b"t", b"v", 5)):
                t0 = loop.time()
                with pytest.raises(StoreTimeout):
                    await call
                assert loop.time() - t0 < 1.0
        finally:
            await store.close()
            server.close()
            await server.wait_closed()
    run(main())


def test_a_stalled_redis_times_out_and_recovers():
    """A real redis-server stopped (SIGSTOP) past the deadline: the call fails
    at its deadline; once the server runs again the same store works."""
    server = RedisServer().start()
    try:
        async def main():
            store = RedisTicketStore(server.url, deadline=0.2)
            try:
                assert await store.set_once(b"spent:a", 10)
                server.signal(signal.SIGSTOP)
                loop = asyncio.get_running_loop()
                t0 = loop.time()
                with pytest.raises(StoreTimeout):
                    await store.set_once(b"spent:b", 10)
                assert loop.time() - t0 < 1.0
                server.signal(signal.SIGCONT)
                await asyncio.sleep(0.05)
                assert not await store.set_once(b"spent:a", 10)
                assert await store.set_once(b"spent:c", 10)
            finally:
                await store.close()
        run(main())
    finally:
        server.stop()


# --- gateways in separate processes -------------------------------------------------------

def test_ticket_spent_at_one_gateway_is_refused_at_another(url, keyfile):
    issued = node_run(url, keyfile, "issue-value")
    assert issued["round_trips"] == 0           # by value: nothing stored at issue
    first = node_run(url, keyfile, "redeem", issued["ticket"])
    assert first["ok"] and first["idi"] == "alice.example.org" and first["round_trips"] == 1
    second = node_run(url, keyfile, "redeem", issued["ticket"])
    assert second == {**second, "ok": False, "error": "TicketReplayed", "round_trips": 1}
    assert first["pid"] != second["pid"] and first["key_ids"] == second["key_ids"]


def test_by_reference_ticket_is_taken_once_across_processes(url, keyfile):
    issued = node_run(url, keyfile, "issue-ref")
    assert issued["round_trips"] == 1                          # the state, SET EX
    first = node_run(url, keyfile, "redeem", issued["ticket"])
    assert first["ok"] and first["round_trips"] == 1           # one GETDEL
    second = node_run(url, keyfile, "redeem", issued["ticket"])
    assert not second["ok"] and second["error"] == "TicketReplayed" and second["round_trips"] == 1


@pytest.mark.parametrize("command", ["issue-value", "issue-ref"])
def test_concurrent_redemptions_let_exactly_one_in(url, keyfile, command):
    ticket = node_run(url, keyfile, command)["ticket"]
    start_at = time.time() + 1.5
    procs = [node(url, keyfile, "redeem", ticket, start_at=start_at) for _ in range(4)]
    outcomes = [result(p) for p in procs]
    assert sorted(o["ok"] for o in outcomes) == [False, False, False, True]
    assert {o.get("error") for o in outcomes if not o["ok"]} == {"TicketReplayed"}


def test_a_gateway_with_another_wrapping_key_cannot_load_the_ring(url, keyfile, tmp_path):
    node_run(url, keyfile, "ring")
    other = tmp_path / "other.key"
    other.write_bytes(os.urandom(32))
    other.chmod(0o600)
    proc = node(url, other, "ring")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "KeyRingError" in err


def test_ring_created_and_rotated_once_by_racing_gateways(url, keyfile):
    """Gateways that start together agree on generation 1; gateways that see
    the rotation period pass together publish exactly one generation 2."""
    start_at = time.time() + 1.5
    starts = [result(p) for p in [node(url, keyfile, "ring", start_at=start_at) for _ in range(3)]]
    assert len({tuple(s["key_ids"]) for s in starts}) == 1 and starts[0]["generation"] == 1
    start_at = time.time() + 1.5
    later = [result(p) for p in [node(url, keyfile, "ring", now=NOW + 100, start_at=start_at) for _ in range(3)]]
    assert {s["generation"] for s in later} == {2}
    assert len({tuple(s["key_ids"]) for s in later}) == 1
    # the key that became current is the one every gateway already held as next
    assert later[0]["key_ids"][1] == starts[0]["key_ids"][0]


def test_a_ticket_from_a_rotated_gateway_opens_at_one_that_has_not_synced(url, keyfile):
    async def main():
        key = keyfile.read_bytes()
        a_store, b_store = RedisTicketStore(url), RedisTicketStore(url)
        try:
            a = SharedKeyRing(a_store, key, rng=os.urandom, rotation=100)
            b = SharedKeyRing(b_store, key, rng=os.urandom, rotation=100)
            await a.sync(NOW)
            await b.sync(NOW + 1)
            await a.sync(NOW + 100)                      # a rotates; b has not synced since
            assert a.ring.generation == 2 and b.ring.generation == 1
            from ikecore.resumption import TicketAuthority
            from ticket_helpers import sample_state
            ticket = TicketAuthority(a.ring, rng=os.urandom).issue(
                sample_state(os.urandom, expires_at=NOW + 160), NOW + 100).ticket
            assert TicketAuthority(b.ring, rng=os.urandom).open(ticket, NOW + 100).state is not None
        finally:
            await a_store.close()
            await b_store.close()
    run(main())
