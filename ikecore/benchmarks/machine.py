"""What a benchmark ran on: CPU model and flags, cores, the OpenSSL ikecore
loaded (path, version, providers, whether AES-GCM runs on VAES) and the
libraries the baselines run on (`cryptography` bundles its own OpenSSL, the
stdlib's hashlib links the system's)."""
from __future__ import annotations

import os
import platform
import sys

# the flags that decide which crypto code OpenSSL and the core run
CRYPTO_FLAGS = ("aes", "pclmulqdq", "vaes", "vpclmulqdq", "avx", "avx2", "avx512f", "avx512bw",
                "avx512vl", "sha_ni", "bmi2", "adx",       # x86
                "pmull", "sha2", "sha512", "sve", "sve2")   # arm64 ("aes" too)


def _cpuinfo() -> tuple[str, set[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model", "CPU part") and model in ("", platform.machine()):
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model, flags


def cryptography_version() -> str:
    import cryptography
    try:
        from cryptography.hazmat.backends.openssl import backend
        return f"{cryptography.__version__} ({backend.openssl_version_text()})"
    except Exception:   # a cryptography without that attribute: the version alone
        return cryptography.__version__


def stdlib_hmac_version() -> str:
    import ssl
    return f"Python {platform.python_version()} hashlib ({ssl.OPENSSL_VERSION})"


def baseline_libraries() -> dict[str, str]:
    """What each kind of baseline runs on, by the name the reports use."""
    return {"cryptography": cryptography_version(), "stdlib hmac": stdlib_hmac_version()}


def machine_info() -> dict:
    """The machine record of `ikecore bench` (pytest-benchmark's machine_info keys first)."""
    from .. import __version__
    from ..crypto import backend

    model, flags = _cpuinfo()
    rep = backend.report()
    vaes, vaes_why = backend.aes_gcm_vaes()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "node": platform.node(),
        "processor": platform.processor(),
        "machine": platform.machine(),
        "python_compiler": platform.python_compiler(),
        "python_implementation": platform.python_implementation(),
        "python_version": platform.python_version(),
        "release": platform.release(),
        "system": platform.system(),
        "cpu": {"brand_raw": model, "count": os.cpu_count(), "usable": usable,
                "crypto_flags": sorted(f for f in CRYPTO_FLAGS if f in flags)},
        "ikecore": {"version": __version__, "module": os.path.dirname(os.path.dirname(__file__)),
                    "abi3_fastpath": _fastpath_is_abi3()},
        "openssl": {"version": rep.openssl_version, "libcrypto": backend.loaded_libcrypto(),
                    "providers": list(rep.loaded_providers),
                    "provider_by_class": {"mac": rep.mac_provider, "cipher": rep.cipher_provider,
                                          "kdf": rep.kdf_provider},
                    "aes_gcm_vaes": vaes, "aes_gcm_vaes_reason": vaes_why},
        "baselines": baseline_libraries(),
        "python_executable": sys.executable,
    }


def _fastpath_is_abi3() -> bool | None:
    try:
        from .. import _fastpath
    except ImportError:
        return None
    return ".abi3." in os.path.basename(_fastpath.__file__)
