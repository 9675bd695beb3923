"""Session resumption as a configured feature of the daemon: the ``[resumption]``
table (every error names the file and the key), ``ikecore keygen``, a gateway
built from the configuration, and a cluster of two ``ikecore gateway``
processes sharing a real redis-server and one wrapping key file:

    client (in-process) --full handshake--> daemon A  (ticket sealed with the shared ring)
    daemon A: SIGKILL
    client --IKE_SESSION_RESUME--> daemon B   (SET NX on Redis) --> ESP through B
    the spent ticket again --> B: TICKET_NACK, full handshake
    Redis stopped --> B: TICKET_NACK within the store deadline, full handshake
    Redis restarted (empty) --> B republishes its ring; resumptions work again
"""
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

from aio_helpers import PSK, ike_configs, ikecore_command, run, udp_packet
from ikecore.aio import ConnectionSpec, Gateway, GatewayConfig, load_config
from ikecore.errors import ConfigError
from ikecore.protocol import events as ev
from ikecore.protocol.constants import NotifyType
from ikecore.store import create_wrapping_key_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))
from redis_server import REDIS_SERVER, RedisServer  # noqa: E402

HOST = "127.0.0.1"

RESPONDER = """
[gateway]
listen = ["127.0.0.1"]
port = {port}
natt_port = {natt_port}
roam_interval = 0
keepalive_interval = 0
{extra_gateway}
[logging]
level = "info"
{log_file}
{resumption}
[connections.from-i]
remote_addrs = ["127.0.0.1"]
psk = "{psk}"
dpd_delay = 0
[connections.from-i.local]
id = "responder@test"
[connections.from-i.remote]
id = "initiator@test"
[connections.from-i.children.net]
local_ts = ["10.2.0.0/16"]
remote_ts = ["10.1.0.0/16"]
"""


def responder_toml(resumption: str, *, port: int = 0, natt_port: int = 0, log_file: str | None = None) -> str:
    return RESPONDER.format(port=port, natt_port=natt_port, extra_gateway="", psk=PSK.decode(),
                            log_file=f'file = "{log_file}"' if log_file else "", resumption=resumption)


def write(tmp_path, text, name="gw.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def key_file(tmp_path, name="ring.key") -> Path:
    path = tmp_path / name
    create_wrapping_key_file(path)
    return path


# ------------------------------------------------------------------ the loader --

def test_resumption_table_parses(tmp_path):
    key = key_file(tmp_path)
    cfg = load_config(write(tmp_path, responder_toml(f"""
[resumption]
mode = "reference"
ticket_lifetime = "2h"
key_rotation = "1h"
keep_keys = 3
store = "redis://127.0.0.1:6390/2"
store_deadline = "100ms"
wrapping_key_file = "{key.name}"
""")))
    res = cfg.resumption
    assert res.enabled and res.mode == "reference" and res.shared
    assert (res.ticket_lifetime, res.key_rotation, res.keep_keys, res.store_deadline) == (7200, 3600, 3, 0.1)
    assert res.wrapping_key == bytes.fromhex(key.read_text().strip())
    assert res.wrapping_key_file == str(key)                  # relative to the configuration file
    ike = cfg.connection("from-i").ike
    assert ike.resumption and ike.ticket_lifetime == 7200     # [resumption] on: every connection, by default
    assert key.read_text().strip() not in repr(cfg) and res.wrapping_key.hex() not in repr(cfg)


def test_resumption_defaults_and_connection_keys(tmp_path):
    cfg = load_config(write(tmp_path, responder_toml("[resumption]\n")))
    res = cfg.resumption
    assert (res.enabled, res.mode, res.store, res.ticket_lifetime, res.key_rotation, res.keep_keys,
            res.store_deadline, res.wrapping_key) == (True, "value", "memory", 3600, 3600, 2, 0.25, None)
    # absent table: no tickets issued, connections do not ask for them unless they say so
    cfg = load_config(write(tmp_path, responder_toml("")))
    assert cfg.resumption is None and not cfg.connection("from-i").ike.resumption
    text = responder_toml("[resumption]\nenabled = false\n").replace(
        'dpd_delay = 0', 'dpd_delay = 0\nresumption = true\nresumption_auth = "message"\nresume_tries = 1\n'
                         'reauth_time = "8h"')
    cfg = load_config(write(tmp_path, text))
    ike = cfg.connection("from-i").ike
    assert not cfg.resumption.enabled
    assert ike.resumption and ike.resumption_auth == "message" and ike.resume_tries == 1 and ike.reauth_time == 8 * 3600
    # a connection may opt out of an enabled [resumption]
    cfg = load_config(write(tmp_path, responder_toml("[resumption]\n").replace(
        'dpd_delay = 0', 'dpd_delay = 0\nresumption = false')))
    assert not cfg.connection("from-i").ike.resumption


BAD = [
    ('enabled = "yes"', "resumption.enabled", "boolean"),
    ('mode = "cookie"', "resumption.mode", '"value" or "reference"'),
    ('ticket_lifetime = "forever"', "resumption.ticket_lifetime", "bad duration"),
    ('ticket_lifetime = 0', "resumption.ticket_lifetime", "at least 1"),
    ('ticket_lifetime = "3h"\nkey_rotation = "1h"\nkeep_keys = 2', "resumption.ticket_lifetime", "outlives"),
    ('key_rotation = -5', "resumption.key_rotation", "negative"),
    ('key_rotation = 0', "resumption.key_rotation", "1 s"),
    ('keep_keys = 0', "resumption.keep_keys", "1..16"),
    ('keep_keys = 17', "resumption.keep_keys", "1..16"),
    ('keep_keys = 2.5', "resumption.keep_keys", "integer"),
    ('store = "memcached://127.0.0.1"', "resumption.store", "redis://"),
    ('store = "redis://"', "resumption.store", "no host"),
    ('store = "redis://127.0.0.1:99999/0"', "resumption.store", "bad url"),
    ('store = "redis://127.0.0.1:6379/zero"', "resumption.store", "must be a number"),
    ('store = "redis://127.0.0.1:6379/0"', "resumption.wrapping_key_file", "required with a shared store"),
    ('store_deadline = 0', "resumption.store_deadline", "more than 0"),
    ('store_deadline = "1m"', "resumption.store_deadline", "at most 10"),
    ('store_max_entries = 0', "resumption.store_max_entries", "positive"),
    ('store = "redis://127.0.0.1/0"\nstore_max_entries = 5\nwrapping_key_file = "ring.key"',
     "resumption.store_max_entries", "memory"),
    ('wrapping_key_file = "missing.key"', "resumption.wrapping_key_file", "cannot open"),
    ('rotation = "1h"', "resumption.rotation", "unknown key"),
]


@pytest.mark.parametrize("text,key,words", BAD, ids=[b[0].split("\n")[-1] for b in BAD])
def test_errors_name_file_and_key(tmp_path, text, key, words):
    key_file(tmp_path)
    path = write(tmp_path, responder_toml("[resumption]\n" + text + "\n"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: {key}:"), msg
    assert words.lower() in msg.lower(), msg


@pytest.mark.parametrize("text,key,words", [
    ('resumption_auth = "libreswan"', "connections.from-i.resumption_auth", '"rfc" or "message"'),
    ('resumption = "on"', "connections.from-i.resumption", "boolean"),
    ('resume_tries = -1', "connections.from-i.resume_tries", "negative"),
    ('reauth_time = "often"', "connections.from-i.reauth_time", "bad duration"),
])
def test_connection_key_errors(tmp_path, text, key, words):
    path = write(tmp_path, responder_toml("").replace("dpd_delay = 0", "dpd_delay = 0\n" + text))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: {key}:"), msg
    assert words.lower() in msg.lower(), msg


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_wrapping_key_file_readable_by_others_is_refused(tmp_path, mode):
    key = key_file(tmp_path)
    os.chmod(key, mode)
    path = write(tmp_path, responder_toml(
        f'[resumption]\nstore = "redis://127.0.0.1:6379/0"\nwrapping_key_file = "{key}"\n'))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: resumption.wrapping_key_file: {key}:"), msg
    assert f"{mode:04o}" in msg and "0600" in msg


def test_wrapping_key_file_with_bad_content(tmp_path):
    key = tmp_path / "short.key"
    key.write_text("abcd\n")
    os.chmod(key, 0o600)
    path = write(tmp_path, responder_toml(
        f'[resumption]\nstore = "redis://127.0.0.1:6379/0"\nwrapping_key_file = "{key}"\n'))
    with pytest.raises(ConfigError, match=r"resumption\.wrapping_key_file: .*32 raw octets or 64 hex"):
        load_config(path)


def test_cli_keygen_and_check(tmp_path):
    key = tmp_path / "ring.key"
    argv, env = ikecore_command("keygen", "--wrapping-key", str(key))
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (key.stat().st_mode & 0o777) == 0o600 and len(bytes.fromhex(key.read_text().strip())) == 32
    before = key.read_bytes()
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "exists" in r.stderr and key.read_bytes() == before   # never overwritten
    cfg = write(tmp_path, responder_toml(f'[resumption]\nstore = "redis://127.0.0.1:1/0"\n'
                                         f'wrapping_key_file = "{key}"\n'))
    argv, env = ikecore_command("gateway", "--config", str(cfg), "--check")
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "tickets by value in redis://127.0.0.1:1/0" in r.stdout
    os.chmod(key, 0o644)
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and f"{cfg}: resumption.wrapping_key_file:" in r.stderr


# ---------------------------------------------------- a gateway from the file --

async def _client(port: int, natt_port: int) -> Gateway:
    ci, _ = ike_configs(HOST, resumption=True)
    spec = ConnectionSpec("to-r", ci, remote_addrs=[HOST], remote_port=port, remote_natt_port=natt_port)
    return await Gateway(GatewayConfig(connections={"to-r": spec}, listen=[HOST], port=0, natt_port=0,
                                       roam_interval=0, keepalive_interval=0)).start()


async def _ticket(gi: Gateway, conn) -> object:
    if "to-r" not in gi.endpoint.tickets:
        await gi.wait_for(ev.TicketReceived, conn, timeout=10)
    return gi.endpoint.tickets["to-r"]


def _lose(gi: Gateway, conn) -> None:
    """The client's SA is gone without a Delete (as after DPD): the ticket stays."""
    gi._safe(conn, lambda c: c.suspend(gi.now()))
    gi._flush()


async def _initiate_watching(gi: Gateway, port: int, natt_port: int):
    """Initiate to-r at (port, natt_port); returns (conn, ResumeFailed event or None)."""
    failed = asyncio.ensure_future(gi.wait_for(ev.ResumeFailed, timeout=30))
    try:
        conn = await gi.initiate("to-r", remote_port=port, remote_natt_port=natt_port, timeout=20)
        await asyncio.sleep(0.05)
        return conn, (failed.result()[1] if failed.done() else None)
    finally:
        failed.cancel()


@pytest.mark.parametrize("mode", ["value", "reference"])
def test_gateway_from_config_memory_store(tmp_path, mode):
    async def body():
        cfg = load_config(write(tmp_path, responder_toml(f'[resumption]\nmode = "{mode}"\n'
                                                         'key_rotation = "1h"\n')))
        gr = await Gateway(cfg).start()
        assert gr.ticket_authority is not None and gr.ticket_authority.by_reference == (mode == "reference")
        assert cfg.connection("from-i").ike.ticket_authority is gr.ticket_authority
        store = gr.ticket_store
        gi = await _client(gr.port, gr.natt_port)
        try:
            conn = await gi.initiate("to-r", timeout=10)
            await _ticket(gi, conn)
            _lose(gi, conn)
            conn2, failed = await _initiate_watching(gi, gr.port, gr.natt_port)
            assert failed is None and conn2.resumed is not None
            assert gr.endpoint.stats["resumed"] == 1
        finally:
            await gi.stop()
            await gr.stop()
        assert gr.ticket_store is None and gr._ring_task is None and store is not None
    run(body())


def test_wrong_wrapping_key_refuses_to_start(tmp_path):
    """A gateway whose key does not open the cluster's ring stops at start,
    naming the key, instead of founding a ring of its own."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer().start()

    async def body():
        a = load_config(write(tmp_path, responder_toml(
            f'[resumption]\nstore = "{server.url}"\nwrapping_key_file = "{key_file(tmp_path, "a.key")}"\n'), "a.toml"))
        b = load_config(write(tmp_path, responder_toml(
            f'[resumption]\nstore = "{server.url}"\nwrapping_key_file = "{key_file(tmp_path, "b.key")}"\n'), "b.toml"))
        ga = await Gateway(a).start()
        try:
            with pytest.raises(ConfigError, match=r"b\.toml: resumption\.wrapping_key_file: .*same key file"):
                await Gateway(b).start()
        finally:
            await ga.stop()
    try:
        run(body())
    finally:
        server.stop()


# --------------------------------------------- two daemons sharing one Redis --

def free_udp_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((HOST, 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


class Daemon:
    """One ``ikecore gateway --config`` process, ended by its PID."""

    def __init__(self, tmp_path: Path, name: str, resumption: str) -> None:
        self.port, self.natt_port = free_udp_ports(2)
        self.log = tmp_path / f"{name}.log"
        self.status_file = tmp_path / f"{name}.status.json"
        self.config = write(tmp_path, responder_toml(resumption, port=self.port, natt_port=self.natt_port,
                                                     log_file=str(self.log)), f"{name}.toml")
        argv, env = ikecore_command("gateway", "--config", str(self.config), "--status-file", str(self.status_file))
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    async def ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log.exists() and "gateway listening" in self.log.read_text():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}: {self.proc.stderr.read().decode()}")
            await asyncio.sleep(0.05)
        raise AssertionError("daemon did not start")

    async def status(self, predicate, timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            self.status_file.unlink(missing_ok=True)
            self.proc.send_signal(signal.SIGUSR1)          # by PID
            await asyncio.sleep(0.1)
            if self.status_file.exists():
                status = json.loads(self.status_file.read_text())
                if predicate(status):
                    return status
        raise AssertionError(f"status never matched: {status}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()                               # SIGKILL by PID: a crash, no Delete
            self.proc.wait(10)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)          # by PID
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def _esp_in(status: dict) -> int:
    return sum(c.get("rx_packets", 0) for sa in status["ike_sas"] for c in sa["child_sas"])


async def _send_esp(gi: Gateway, conn, daemon: Daemon, n: int = 25) -> None:
    """n packets from the client through its Child SA; the daemon's status must
    count them in (authenticated and decrypted there)."""
    before = _esp_in(await daemon.status(lambda s: bool(s["ike_sas"])))
    child = gi.child_sas(conn)[0]
    assert gi.send_packets([udp_packet("10.1.0.1", "10.2.0.1", b"cluster-%d" % i) for i in range(n)], child) == n
    await daemon.status(lambda s: _esp_in(s) >= before + n)


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")
@pytest.mark.parametrize("mode", ["value", "reference"])
def test_two_daemons_share_tickets_through_redis(tmp_path, mode):
    server = RedisServer().start()
    key = key_file(tmp_path)
    table = (f'[resumption]\nmode = "{mode}"\nstore = "{server.url}"\nwrapping_key_file = "{key}"\n'
             'store_deadline = "250ms"\n')
    a = Daemon(tmp_path, "a", table)
    b = Daemon(tmp_path, "b", table)
    restarted: RedisServer | None = None

    async def body():
        nonlocal restarted
        await a.ready()
        await b.ready()
        gi = await _client(a.port, a.natt_port)
        try:
            # a full handshake at A, which grants a ticket sealed with the cluster's ring
            conn = await gi.initiate("to-r", timeout=20)
            assert conn.resumed is None
            ticket = await _ticket(gi, conn)
            if mode == "reference":
                # A writes the ticket's state while the ticket travels (docs/resumption.md); a
                # crash in between costs the client a full handshake, tested below: here, let it land
                await _until(lambda: _redis_command(server.port, b"KEYS", b"ikecore:tickets:ticket:*") != b"*0\r\n")
            a.kill()
            _lose(gi, conn)

            # B resumes it: one store round trip, ESP flows through B
            conn2, failed = await _initiate_watching(gi, b.port, b.natt_port)
            assert failed is None, failed
            assert conn2.resumed is not None and conn2.remote[1] in (b.port, b.natt_port)
            await _send_esp(gi, conn2, b)

            # the spent ticket again (a copy the client kept): refused, full handshake
            await _ticket(gi, conn2)
            gi.endpoint.tickets["to-r"] = ticket
            conn3, failed = await _initiate_watching(gi, b.port, b.natt_port)
            assert failed is not None and failed.notify_type == NotifyType.TICKET_NACK, failed
            assert conn3.resumed is None and conn3.established
            await _ticket(gi, conn3)
            gi.delete(conn3)
            gi.delete(conn2)

            # the store is down: B answers TICKET_NACK within its deadline, the client
            # completes a full handshake (by value B still issues tickets from the ring it holds)
            conn4 = await gi.initiate("to-r", remote_port=b.port, remote_natt_port=b.natt_port, timeout=20)
            await _ticket(gi, conn4)
            _lose(gi, conn4)
            server.stop()
            t0 = time.monotonic()
            conn5, failed = await _initiate_watching(gi, b.port, b.natt_port)
            elapsed = time.monotonic() - t0
            assert failed is not None and failed.notify_type == NotifyType.TICKET_NACK, failed
            assert conn5.established and conn5.resumed is None
            assert elapsed < 10, elapsed                   # no retransmission-long wait, let alone a hang
            await _send_esp(gi, conn5, b)

            # Redis back (empty: no persistence): B publishes its ring again, resumptions work
            restarted = RedisServer()
            restarted.port = server.port
            restarted.start()
            await _ticket(gi, conn5)
            _lose(gi, conn5)
            latest = None
            for _ in range(100):                           # B's ring loop retries every 2 s
                latest = _redis_get(restarted.port, b"ikecore:tickets:{ring}:latest")
                if latest:
                    break
                await asyncio.sleep(0.1)
            assert latest, "B did not republish its key ring"
            conn6, failed = await _initiate_watching(gi, b.port, b.natt_port)
            if mode == "value":
                assert failed is None, failed
                assert conn6.resumed is not None
            else:
                # by reference the ticket's state was lost with the store: TICKET_NACK, then a
                # fresh ticket whose state is in the new store resumes
                assert failed is not None and failed.notify_type == NotifyType.TICKET_NACK
                await _ticket(gi, conn6)
                _lose(gi, conn6)
                conn6, failed = await _initiate_watching(gi, b.port, b.natt_port)
                assert failed is None and conn6.resumed is not None
            await _send_esp(gi, conn6, b)
        finally:
            await gi.stop()

    try:
        run(body(), timeout=180)
        assert b.stop() == 0, b.proc.stderr.read().decode()
        log = b.log.read_text()
        assert "session resumption: tickets by" in log and "gateway stopped" in log
        assert "republished generation" in log          # the ring is back in the store
    finally:
        a.kill()
        b.kill()
        server.stop()
        if restarted is not None:
            restarted.stop()


async def _until(predicate, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never met"
        await asyncio.sleep(0.02)


def _redis_command(port: int, *args: bytes) -> bytes:
    """One command over a plain socket (RESP); the raw reply."""
    with socket.create_connection((HOST, port), timeout=2) as s:
        s.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
        return s.recv(65536)


def _redis_get(port: int, key: bytes) -> bytes | None:
    """GET over a plain socket (RESP), so the test does not share the daemon's client code."""
    with socket.create_connection((HOST, port), timeout=2) as s:
        s.sendall(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key))
        data = s.recv(4096)
    if data.startswith(b"$-1"):
        return None
    header, _, rest = data.partition(b"\r\n")
    return rest[:int(header[1:])]


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")
def test_daemon_with_a_stalled_redis_answers_within_its_deadline(tmp_path):
    """Redis stopped with SIGSTOP (accepts, never answers): the daemon answers
    TICKET_NACK once its store deadline passes, the client completes a full
    handshake; after SIGCONT resumptions work again."""
    server = RedisServer().start()
    key = key_file(tmp_path)
    b = Daemon(tmp_path, "b", f'[resumption]\nstore = "{server.url}"\nwrapping_key_file = "{key}"\n'
                              'store_deadline = "300ms"\n')

    async def body():
        await b.ready()
        gi = await _client(b.port, b.natt_port)
        try:
            conn = await gi.initiate("to-r", timeout=20)
            await _ticket(gi, conn)
            _lose(gi, conn)
            server.signal(signal.SIGSTOP)
            try:
                t0 = time.monotonic()
                conn2, failed = await _initiate_watching(gi, b.port, b.natt_port)
                elapsed = time.monotonic() - t0
            finally:
                server.signal(signal.SIGCONT)
            assert failed is not None and failed.notify_type == NotifyType.TICKET_NACK, failed
            assert conn2.established and conn2.resumed is None
            assert elapsed < 10, elapsed
            await _ticket(gi, conn2)
            _lose(gi, conn2)
            conn3, failed = await _initiate_watching(gi, b.port, b.natt_port)
            assert failed is None and conn3.resumed is not None, failed
            await _send_esp(gi, conn3, b)
        finally:
            await gi.stop()

    try:
        run(body(), timeout=120)
        assert b.stop() == 0
        assert "no answer within 0.3 s" in b.log.read_text()
    finally:
        b.kill()
        server.stop()


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")
def test_store_down_at_start_delays_only_the_ring(tmp_path):
    """The gateway starts without its store (TICKET_NACK, no tickets), and
    loads the ring by itself once the store answers."""
    server = RedisServer()                     # a port, nothing listening yet
    key = key_file(tmp_path)
    cfg = load_config(write(tmp_path, responder_toml(
        f'[resumption]\nstore = "{server.url}"\nwrapping_key_file = "{key}"\nstore_deadline = "200ms"\n')))

    async def body():
        gr = await Gateway(cfg).start()
        try:
            assert gr.running and gr.ticket_authority is None and gr.ticket_ring.ring is None
            assert cfg.connection("from-i").ike.ticket_authority is None
            server.start()
            await _until(lambda: gr.ticket_authority is not None, timeout=15)   # retried every 2 s
            assert cfg.connection("from-i").ike.ticket_authority is gr.ticket_authority
            assert gr.counters["ticket_ring_sync_errors"] >= 1
            assert _redis_get(server.port, b"ikecore:tickets:{ring}:latest") == b"1"
        finally:
            await gr.stop()
    try:
        run(body())
    finally:
        server.stop()


def test_store_url_password_stays_out_of_logs():
    from ikecore.aio.resumption import _safe_url
    assert _safe_url("redis://ike:s3cret@10.0.0.5:6379/0") == "redis://ike:***@10.0.0.5:6379/0"
    assert _safe_url("rediss://:s3cret@cache/1") == "rediss://:***@cache/1"
    assert _safe_url("redis://10.0.0.5:6379/0") == "redis://10.0.0.5:6379/0"
