"""The OpenSSL library context behind the C core: providers and property queries.

A gateway selects hardware offload by loading its provider and steering an
operation class to it with a property query, e.g.
``configure(providers=["default", "myhw"], cipher_properties="provider=myhw")``.
"""
from __future__ import annotations

import os

from dataclasses import dataclass

from .._binding import check, ffi, lib

_CPU_FLAGS = {
    "aes-ni": lib.IKC_CPU_AESNI,
    "pclmulqdq": lib.IKC_CPU_PCLMULQDQ,
    "vaes": lib.IKC_CPU_VAES,
    "sha-ni": lib.IKC_CPU_SHANI,
    "avx2": lib.IKC_CPU_AVX2,
}


@dataclass(frozen=True)
class BackendReport:
    openssl_version: str
    loaded_providers: tuple[str, ...]
    mac_provider: str
    cipher_provider: str
    kdf_provider: str
    cpu_features: dict[str, bool]


def configure(providers: list[str] | tuple[str, ...] = ("default",), *, mac_properties: str = "",
              cipher_properties: str = "", kdf_properties: str = "") -> None:
    """Rebuild the library context. Objects created earlier keep their algorithms."""
    names = ",".join(providers)
    if not names or any("," in p or not p.strip() for p in providers):
        raise ValueError("providers must be a non-empty list of provider names")
    check(lib.ikc_ctx_configure(names.encode(), mac_properties.encode(), cipher_properties.encode(),
                                kdf_properties.encode()), f"loading providers {names!r}")


def cpu_features() -> dict[str, bool]:
    bits = lib.ikc_cpu_features()
    return {name: bool(bits & bit) for name, bit in _CPU_FLAGS.items()}


def report() -> BackendReport:
    buf = ffi.new("char[]", 512)
    check(lib.ikc_ctx_report(buf, len(buf)), "backend report")
    fields = dict(item.split("=", 1) for item in ffi.string(buf).decode().split(";"))
    return BackendReport(
        openssl_version=ffi.string(lib.ikc_openssl_version_text()).decode(),
        loaded_providers=tuple(p for p in fields["loaded"].split(",") if p),
        mac_provider=fields["mac"],
        cipher_provider=fields["cipher"],
        kdf_provider=fields["kdf"],
        cpu_features=cpu_features(),
    )


def loaded_libcrypto() -> str | None:
    """Path of the libcrypto ikecore runs on: the copy a manylinux wheel bundles
    in ikecore.libs/ when this process has it mapped (the stdlib's ssl and hashlib
    may have mapped the system's first), else the first one mapped; None where
    /proc is not there."""
    bundled = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))) + os.sep
    bundled += "ikecore.libs" + os.sep
    paths: list[str] = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split(None, 5)[-1].strip()
                if "/libcrypto" in path and path not in paths:
                    paths.append(path)
    except OSError:
        return None
    for path in paths:
        if path.startswith(bundled):
            return path
    return paths[0] if paths else None


def _openssl_version_tuple(text: str) -> tuple[int, ...]:
    for word in text.split():
        parts = word.split(".")
        if len(parts) >= 2 and all(p.isdigit() for p in parts[:2]):
            return tuple(int(p) for p in parts[:2])
    return ()


def _cpuinfo_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


# what OpenSSL's VAES AES-GCM (aes-gcm-avx512.pl, OpenSSL 3.1 onwards) asks of the CPU
_VAES_GCM_FLAGS = ("vaes", "vpclmulqdq", "avx512f", "avx512bw", "avx512vl")


def aes_gcm_vaes() -> tuple[bool | None, str]:
    """Whether the loaded OpenSSL's AES-GCM runs on VAES + VPCLMULQDQ (AVX-512),
    with the reason. OpenSSL picks its GCM code at run time from the CPU; the
    VAES code is in OpenSSL 3.1 onwards (3.0 stops at AES-NI + AVX), and needs
    the flags above, which /proc/cpuinfo lists only where the kernel enabled
    the AVX-512 state. None where it cannot be told (OPENSSL_ia32cap set, not
    Linux, not x86)."""
    import os
    import platform

    return vaes_verdict(ffi.string(lib.ikc_openssl_version_text()).decode(), _cpuinfo_flags(),
                        platform.machine(), os.environ.get("OPENSSL_ia32cap"))


def vaes_verdict(openssl_version: str, cpu_flags: set[str], machine: str,
                 ia32cap: str | None) -> tuple[bool | None, str]:
    """aes_gcm_vaes's decision from its inputs (kept apart so that it is tested)."""
    if machine not in ("x86_64", "AMD64", "i686"):
        return None, f"not x86 ({machine})"
    if ia32cap:
        return None, "OPENSSL_ia32cap overrides the CPU flags OpenSSL sees"
    version = _openssl_version_tuple(openssl_version)
    if not version:
        return None, "OpenSSL version not understood"
    if version < (3, 1):
        return False, f"OpenSSL {version[0]}.{version[1]} has no VAES AES-GCM (3.1 onwards)"
    if not cpu_flags:
        return None, "no /proc/cpuinfo"
    missing = [f for f in _VAES_GCM_FLAGS if f not in cpu_flags]
    if missing:
        return False, "the CPU lacks " + ", ".join(missing)
    return True, f"OpenSSL {version[0]}.{version[1]} and a CPU with " + ", ".join(_VAES_GCM_FLAGS)
