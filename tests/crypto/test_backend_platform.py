"""`ikecore info`'s platform facts: which libcrypto is loaded, and whether its
AES-GCM runs on VAES (decided from the OpenSSL version and the CPU flags)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from ikecore.crypto import backend

VAES_CPU = {"aes", "pclmulqdq", "avx2", "vaes", "vpclmulqdq", "avx512f", "avx512bw", "avx512vl"}


def test_loaded_libcrypto_is_a_mapped_libcrypto_file():
    path = backend.loaded_libcrypto()
    assert path is not None, "no libcrypto in /proc/self/maps"
    assert os.path.basename(path).startswith("libcrypto") and os.path.isfile(path)


def test_openssl_3_0_never_has_vaes_gcm():
    vaes, why = backend.vaes_verdict("OpenSSL 3.0.22 25 Aug 2026", VAES_CPU, "x86_64", None)
    assert vaes is False and "3.1" in why


def test_openssl_3_5_on_a_vaes_avx512_cpu_has_it():
    vaes, _ = backend.vaes_verdict("OpenSSL 3.5.9 29 Sep 2026", VAES_CPU, "x86_64", None)
    assert vaes is True


def test_each_missing_flag_rules_it_out_and_is_named():
    for flag in ("vaes", "vpclmulqdq", "avx512f", "avx512bw", "avx512vl"):
        vaes, why = backend.vaes_verdict("OpenSSL 3.5.9", VAES_CPU - {flag}, "x86_64", None)
        assert vaes is False and flag in why


def test_unknowable_cases_say_so():
    assert backend.vaes_verdict("OpenSSL 3.5.9", VAES_CPU, "aarch64", None)[0] is None
    assert backend.vaes_verdict("OpenSSL 3.5.9", VAES_CPU, "x86_64", "~0x200000200000000")[0] is None
    assert backend.vaes_verdict("OpenSSL 3.5.9", set(), "x86_64", None)[0] is None
    assert backend.vaes_verdict("LibreSSL", VAES_CPU, "x86_64", None)[0] is None


def test_info_json_reports_them():
    # run from where this process's ikecore lives: from the repository root, `-m`
    # would import the source tree even when the tests run against an installed wheel
    here = os.path.dirname(os.path.dirname(os.path.abspath(backend.__file__)))
    out = subprocess.run([sys.executable, "-m", "ikecore", "info", "--json"], capture_output=True, text=True,
                         cwd=os.path.dirname(here),
                         check=True).stdout
    data = json.loads(out)
    assert data["libcrypto"] == backend.loaded_libcrypto()
    assert data["aes_gcm_vaes"] == backend.aes_gcm_vaes()[0]
    assert data["aes_gcm_vaes_reason"]
