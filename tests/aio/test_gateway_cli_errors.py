"""Command-line errors read like configuration errors (one line naming the
option, exit status 2, no traceback), and secrets stay out of argv and out of
files others can read."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from aio_helpers import PSK, ike_configs, ikecore_command, responder, run
from ikecore.aio.config import parse_config
from ikecore.errors import ConfigError


def cli(*args: str, env_extra: dict | None = None, prefix: tuple = ()) -> subprocess.CompletedProcess:
    argv, env = ikecore_command(*args)
    env.update(env_extra or {})
    return subprocess.run([*prefix, *argv], env=env, capture_output=True, text=True, timeout=60)


def assert_option_error(r: subprocess.CompletedProcess, *words: str) -> None:
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.mark.parametrize("args, words", [
    (("--ike", "bogus"), ("ikecore demo: --ike:", "'bogus'")),
    (("--esp", "aes256gcm16-nonsense"), ("--esp:", "'nonsense'")),
    (("--packets", "0"), ("--packets:", "at least 1")),
    (("--size", "100000"), ("--size:", "100000")),
    (("--size", "0"), ("--size:",)),
])
def test_demo_option_errors(args, words):
    assert_option_error(cli("demo", *args), *words)


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1)")
def test_tun_device_without_cap_net_admin_is_named(tmp_path):
    cfg = tmp_path / "tun.toml"
    cfg.write_text('[gateway]\nlisten = ["127.0.0.1"]\nport = 0\nnatt_port = 0\n'
                   f'control_socket = "{tmp_path}/c.sock"\n[tun]\nname = "ops-tun7"\n')
    # an unprivileged user namespace: no CAP_NET_ADMIN over the network namespace
    probe = subprocess.run(["unshare", "-U", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("user namespaces are not available")
    r = cli("gateway", "-c", str(cfg), prefix=("unshare", "-U"))
    assert_option_error(r, "tun.name", "ops-tun7", "CAP_NET_ADMIN")


def test_connect_psk_file_readable_by_others_is_refused(tmp_path):
    f = tmp_path / "psk"
    f.write_text("a secret")
    f.chmod(0o644)
    r = cli("connect", "127.0.0.1", "--psk-file", str(f), "--local-ts", "10.1.0.0/16", "--remote-ts", "10.2.0.0/16")
    assert_option_error(r, "--psk-file", "0644", "chmod 600")


def test_connect_psk_on_the_command_line_warns():
    r = cli("connect", "--psk", "visible")        # the missing options fail after the warning
    assert r.returncode == 2
    assert "--psk puts the key in the process list" in r.stderr


def test_connect_reads_the_psk_from_environment_and_file(tmp_path):
    async def body():
        _, cr = ike_configs()
        gr = await responder(cr)
        try:
            base = ("connect", "127.0.0.1", "--port", str(gr.port), "--natt-port", str(gr.natt_port),
                    "--listen", "127.0.0.1", "--local-ts", "10.1.0.0/16", "--remote-ts", "10.2.0.0/16", "--json")
            import asyncio
            r = await asyncio.to_thread(cli, *base, env_extra={"IKECORE_PSK": PSK.decode()})
            assert json.loads(r.stdout)["ok"], r.stderr
            assert "process list" not in r.stderr
            f = tmp_path / "psk"
            f.write_bytes(PSK + b"\n")
            f.chmod(0o600)
            r = await asyncio.to_thread(cli, *base, "--psk-file", str(f))
            assert json.loads(r.stdout)["ok"], r.stderr
            r = await asyncio.to_thread(cli, *base, env_extra={"IKECORE_PSK": "wrong key"})
            assert not json.loads(r.stdout)["ok"]
        finally:
            await gr.stop()
    run(body())


def test_config_psk_file_mode(tmp_path):
    table = {"connections": {"b": {"psk_file": "b.psk", "remote_addrs": ["127.0.0.1"],
                                   "local": {"id": "a@test"},
                                   "children": {"net": {"local_ts": ["10.1.0.0/16"], "remote_ts": ["10.2.0.0/16"]}}}}}
    (tmp_path / "b.psk").write_text("the key")
    (tmp_path / "b.psk").chmod(0o640)
    with pytest.raises(ConfigError, match=r"connections\.b\.psk_file: .*readable by group or others \(mode 0640\)"):
        parse_config(table, "gw.toml", tmp_path)
    (tmp_path / "b.psk").chmod(0o600)
    cfg = parse_config(table, "gw.toml", tmp_path)
    assert cfg.connections["b"].ike.local_auth.psk == b"the key"
