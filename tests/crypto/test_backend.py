"""The library context: providers by name, property queries, the report."""
import os
import subprocess
import sys

import pytest

import ikecore
from ikecore.crypto import Encr, SkCipher, backend, prf
from ikecore.errors import BackendError


@pytest.fixture(autouse=True)
def default_context():
    yield
    backend.configure()


def test_report_names_the_default_provider():
    rep = backend.report()
    assert rep.loaded_providers == ("default",)
    assert (rep.mac_provider, rep.cipher_provider, rep.kdf_provider) == ("default",) * 3
    assert rep.openssl_version.startswith("OpenSSL 3.")
    assert set(rep.cpu_features) == {"aes-ni", "pclmulqdq", "vaes", "sha-ni", "avx2"}


def test_cpu_flags_agree_with_the_kernel():
    flags = open("/proc/cpuinfo").read().split()
    assert backend.cpu_features()["aes-ni"] == ("aes" in flags)
    assert backend.cpu_features()["pclmulqdq"] == ("pclmulqdq" in flags)


def test_property_query_steers_a_class():
    backend.configure(["default", "base"], cipher_properties="provider=default")
    rep = backend.report()
    assert rep.loaded_providers == ("default", "base")
    assert rep.cipher_provider == "default"


def test_query_nothing_satisfies_is_reported_and_old_context_kept():
    key = os.urandom(36)
    before = SkCipher(Encr.AES_GCM_16, key)
    with pytest.raises(BackendError):
        backend.configure(["default"], mac_properties="provider=nonexistent")
    with pytest.raises(BackendError):
        backend.configure(["no-such-provider"])
    # a failed reconfiguration leaves the working context in place
    assert len(prf(5, b"k", b"d")) == 32
    sealed = before.seal(b"a" * 32, b"x")
    assert SkCipher(Encr.AES_GCM_16, key).open(b"a" * 32, sealed) == b"x"


def test_objects_survive_reconfiguration():
    key = os.urandom(36)
    sk = SkCipher(Encr.AES_GCM_16, key)
    backend.configure(["default", "base"])
    assert sk.open(b"a" * 32, sk.seal(b"a" * 32, b"still keyed")) == b"still keyed"


@pytest.mark.parametrize("providers", [[], [""], ["a,b"]])
def test_bad_provider_lists(providers):
    with pytest.raises(ValueError):
        backend.configure(providers)


def test_info_command():
    out = subprocess.run([sys.executable, "-m", "ikecore", "info"], capture_output=True, text=True, check=True)
    assert f"ikecore {ikecore.__version__}" in out.stdout
    assert "mac     served by default" in out.stdout
    assert "aes-ni" in out.stdout


def test_import_refuses_a_mismatched_extension():
    code = ("import ikecore, sys\n"
            "ikecore.__version__ = '9.9.9'\n"
            "try:\n"
            "    import ikecore._binding\n"
            "except ikecore.errors.BackendError as exc:\n"
            "    print('refused:', exc); sys.exit(0)\n"
            "sys.exit(1)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "built for ikecore 0.1.0" in out.stdout and "9.9.9" in out.stdout
