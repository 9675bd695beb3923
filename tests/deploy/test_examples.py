"""The deployment files: every example configuration passes ``ikecore gateway
--check`` with its key files in place (mode 0600), and the systemd unit reloads
with SIGHUP."""
from __future__ import annotations

import datetime
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "deploy" / "examples"


def check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ikecore", "gateway", "-c", str(path), "--check"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def _cert_files(directory: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA384()))
    key = ec.generate_private_key(ec.SECP384R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gw-a")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("gw-a.example.net")]), critical=False)
            .sign(ca_key, hashes.SHA384()))
    (directory / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "gw-a.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "gw-a.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    (directory / "gw-a.key").chmod(0o600)


@pytest.mark.parametrize("name, secrets", [
    ("site-to-site-psk.toml", ["site-b.psk"]),
    ("site-to-site-cert.toml", []),
    ("roadwarrior-gateway.toml", ["clients.psk"]),
    ("roadwarrior-client.toml", ["vpn.psk"]),
])
def test_example_passes_check(tmp_path, name, secrets):
    shutil.copy(EXAMPLES / name, tmp_path / name)
    (tmp_path / name).chmod(0o600)
    for s in secrets:
        (tmp_path / s).write_text("an example pre-shared key of some length\n")
        (tmp_path / s).chmod(0o600)
    if "cert" in name:
        _cert_files(tmp_path)
    r = check(tmp_path / name)
    assert r.returncode == 0 and ": OK" in r.stdout, r.stdout + r.stderr


def test_example_secret_readable_by_others_is_refused(tmp_path):
    shutil.copy(EXAMPLES / "site-to-site-psk.toml", tmp_path / "gw.toml")
    (tmp_path / "site-b.psk").write_text("k" * 32)
    (tmp_path / "site-b.psk").chmod(0o644)
    r = check(tmp_path / "gw.toml")
    assert r.returncode == 2 and "connections.site-b.psk_file" in r.stderr and "chmod 600" in r.stderr


def test_systemd_unit():
    unit = (ROOT / "deploy" / "systemd" / "ikecore.service").read_text()
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit
    assert "--config /etc/ikecore/ikecore.toml" in unit and "--syslog" in unit
    assert "RuntimeDirectory=ikecore" in unit and "UMask=0077" in unit
    if shutil.which("systemd-analyze"):
        r = subprocess.run(["systemd-analyze", "verify", str(ROOT / "deploy" / "systemd" / "ikecore.service")],
                           capture_output=True, text=True, timeout=60)
        assert "Unknown key" not in r.stderr and "Invalid" not in r.stderr, r.stderr
