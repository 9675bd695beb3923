"""The TOML configuration: the documented example parses; every error names the file and the key."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from aio_helpers import ikecore_command
from ikecore.aio import load_config
from ikecore.aio.config import parse_config
from ikecore.errors import ConfigError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "gateway.md"

MINIMAL = """
[gateway]
listen = ["127.0.0.1"]
port = 0
natt_port = 0

[connections.b]
remote_addrs = ["127.0.0.1"]
psk = "secret secret"
[connections.b.local]
id = "a@test"
[connections.b.children.net]
local_ts = ["10.1.0.0/16"]
remote_ts = ["10.2.0.0/16"]
"""


def write(tmp_path, text, name="gw.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_documented_example_parses(tmp_path):
    block = re.search(r"```toml\n(.*?)```", DOCS.read_text(), re.S).group(1)
    cfg = load_config(write(tmp_path, block))
    spec = cfg.connection("site-b")
    ike = spec.ike
    assert spec.start and spec.remote_addrs == ["192.0.2.2"] and spec.initiator_target == "192.0.2.2"
    assert spec.restart is None and spec.keep_up            # restart follows start
    assert len(ike.proposals) == 2 and ike.rekey_time == 4 * 3600 and ike.life_time == pytest.approx(4 * 3600 * 1.1)
    assert ike.dpd_delay == 30 and ike.force_encap and not ike.mobike
    assert not ike.clone and ike.clone_limit == 4
    assert str(ike.local_id) == "gw-a.example.org" and str(ike.remote_id) == "gw-b.example.org"
    assert ike.local_auth.psk == b"a long random secret" == ike.remote_auth.psk
    [net] = ike.children
    assert net.rekey_time == 3600 and len(net.esp_proposals) == 2 and net.mode == "tunnel"
    rw = cfg.connection("roadwarriors")
    assert rw.remote_addrs == ["%any"] and rw.accepts("198.51.100.7") and len(rw.ike.address_pool) == 14
    assert cfg.tun.name == "ikc0" and cfg.tun.routes == "auto"
    assert cfg.key_export.directory.endswith("keys")
    assert cfg.logging.levels == {"ikecore.ike": "debug"}
    assert cfg.keepalive_interval == 20 and cfg.cookie_threshold == 100
    assert cfg.resumption.store == "memory" and cfg.resumption.mode == "value"
    assert not spec.ike.resumption and rw.ike.resumption          # site-b opts out of [resumption]


def test_minimal_defaults(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL))
    spec = cfg.connection("b")
    assert cfg.port == 0 and cfg.natt_port == 0 and spec.remote_port == 500 and spec.remote_natt_port == 4500
    assert spec.ike.remote_id is None and spec.ike.force_encap
    assert not spec.accepts("192.0.2.9") and spec.accepts("127.0.0.1")
    assert not spec.start and not spec.keep_up


@pytest.mark.parametrize("keys, keep_up", [("start = true", True), ("start = true\nrestart = false", False),
                                           ("restart = true", True), ("restart = false", False)])
def test_restart_follows_start_unless_given(tmp_path, keys, keep_up):
    cfg = load_config(write(tmp_path, MINIMAL.replace("[connections.b.local]", keys + "\n[connections.b.local]")))
    assert cfg.connection("b").keep_up is keep_up


def test_keys_never_in_repr(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL))
    assert "secret" not in repr(cfg)


BAD = [
    ('[gateway]\nprot = 500\n', "gateway.prot", "unknown key"),
    ('[gateway]\nport = 70000\n', "gateway.port", "0..65535"),
    ('[gateway]\nport = "500"\n', "gateway.port", "integer"),
    ('[gateway]\nlisten = ["localhost"]\n', "gateway.listen[0]", "not an IP"),
    ('[gateway]\nkeepalive_interval = "soon"\n', "gateway.keepalive_interval", "bad duration"),
    (MINIMAL.replace('local_ts = ["10.1.0.0/16"]', 'local_ts = ["10.1.0.0/33"]'),
     "connections.b.children.net.local_ts[0]", "traffic selector"),
    (MINIMAL.replace('remote_ts = ["10.2.0.0/16"]\n', ''), "connections.b.children.net.remote_ts", "required"),
    (MINIMAL.replace('psk = "secret secret"', 'proposals = ["aes256gcm16-prfsha256-x448"]\npsk = "s"'),
     "connections.b.proposals[0]", "x448"),
    (MINIMAL + 'esp_proposals = ["aes999"]\n', "connections.b.children.net.esp_proposals[0]", "aes999"),
    (MINIMAL.replace('psk = "secret secret"\n', ''), "connections.b.local.psk", "required"),
    (MINIMAL.replace('id = "a@test"', 'id = "a@test"\nauth = "eap"'), "connections.b.local.auth", "psk"),
    (MINIMAL.replace('id = "a@test"', 'id = "a@test"\nauth = "pubkey"\nkey = "nope.pem"'),
     "connections.b.local.key", "cannot read"),
    (MINIMAL.replace('[connections.b.local]', 'start = true\n[connections.b.local]')
     .replace('remote_addrs = ["127.0.0.1"]', 'remote_addrs = ["10.0.0.0/8"]'),
     "connections.b.start", "one host"),
    (MINIMAL.replace('[connections.b.local]', 'restart = true\n[connections.b.local]')
     .replace('remote_addrs = ["127.0.0.1"]', 'remote_addrs = ["%any"]'),
     "connections.b.restart", "one host"),
    (MINIMAL.replace('[connections.b.local]', 'restart = "yes"\n[connections.b.local]'),
     "connections.b.restart", "bool"),
    (MINIMAL + 'mode = "bridge"\n', "connections.b.children.net", "tunnel or transport"),
    (MINIMAL.replace('psk = "secret secret"', 'psk = "s"\nrekey_time = "2h"\nlife_time = "1h"'),
     "connections.b", "rekey_time"),
    (MINIMAL.replace('psk = "secret secret"', 'psk = "0xzz"'), "connections.b.psk", "hex"),
    (MINIMAL.replace('psk = "secret secret"', 'psk = "s"\nclone_limit = -1'), "connections.b", "clone_limit"),
    (MINIMAL.replace('psk = "secret secret"', 'psk = "s"\nclone_limit = "many"'),
     "connections.b.clone_limit", "int"),
    (MINIMAL + '[logging]\nlevel = "loud"\n', "logging.level", "one of"),
    ('[tun]\nname = "a-very-long-interface-name"\n', "tun.name", "15"),
    ('[key_export]\nike = true\n', "key_export.directory", "required"),
    ('[connections."b c"]\n', 'connections.b c', "names"),
]


@pytest.mark.parametrize("text,key,words", BAD, ids=[b[1] for b in BAD])
def test_errors_name_file_and_key(tmp_path, text, key, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: {key}:"), msg
    assert words.lower() in msg.lower(), msg


def test_toml_syntax_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"gw\.toml: TOML syntax"):
        load_config(write(tmp_path, "[gateway\n"))
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read"):
        load_config(tmp_path / "missing.toml")


def test_certificate_auth_files(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import datetime
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ca")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (tmp_path / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "a.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                       serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    (tmp_path / "a.key").chmod(0o600)
    text = MINIMAL.replace('psk = "secret secret"\n', '').replace(
        'id = "a@test"', 'id = "a@test"\nauth = "pubkey"\nkey = "a.key"\ncerts = ["ca.pem"]\n'
        '[connections.b.remote]\nauth = "pubkey"\ncacerts = ["ca.pem"]')
    cfg = load_config(write(tmp_path, text))
    ike = cfg.connection("b").ike
    assert ike.local_auth.private_key is not None and len(ike.local_auth.certificates) == 1
    assert ike.remote_auth.trust_store is not None
    (tmp_path / "bad.pem").write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigError, match=r"connections\.b\.remote\.cacerts"):
        load_config(write(tmp_path, text.replace('cacerts = ["ca.pem"]', 'cacerts = ["bad.pem"]')))
    # revocation: CRL files, checked for the peer's certificate or the whole chain
    crl = (x509.CertificateRevocationListBuilder().issuer_name(name).last_update(now)
           .next_update(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    (tmp_path / "ca.crl").write_bytes(crl.public_bytes(serialization.Encoding.DER))
    with_crl = text.replace('cacerts = ["ca.pem"]', 'cacerts = ["ca.pem"]\ncrls = ["ca.crl"]\ncrl_check = "chain"')
    store = load_config(write(tmp_path, with_crl)).connection("b").ike.remote_auth.trust_store
    assert store.crls == (crl,)
    for change, key_name, words in [('crls = ["bad.pem"]', "crls", "CRL"),
                                    ('crls = ["missing.crl"]', "crls[0]", "cannot read"),
                                    ('crl_check = "some"', "crl_check", "leaf"),
                                    ('crls = []', "crl_check", "needs crls")]:
        edited = with_crl.replace('crls = ["ca.crl"]' if "crls" in change else 'crl_check = "chain"', change)
        with pytest.raises(ConfigError, match=re.escape(f"connections.b.remote.{key_name}") + ".*" + words):
            load_config(write(tmp_path, edited))


def test_parse_config_from_dict():
    cfg = parse_config({"gateway": {"port": 0, "natt_port": 0}}, source="inline")
    assert cfg.source == "inline" and cfg.connections == {}
    with pytest.raises(ConfigError, match="^inline: connections: no connection named 'x'"):
        cfg.connection("x")


def test_cli_check_reports_errors(tmp_path):
    good = write(tmp_path, MINIMAL)
    argv, env = ikecore_command("gateway", "--config", str(good), "--check")
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "OK" in r.stdout
    bad = write(tmp_path, "[gateway]\nport = -1\n", "bad.toml")
    argv, env = ikecore_command("gateway", "--config", str(bad), "--check")
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and f"{bad}: gateway.port:" in r.stderr
