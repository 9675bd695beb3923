"""The OpenSSL library context behind the C core: providers and property queries.

A gateway selects hardware offload by loading its provider and steering an
operation class to it with a property query, e.g.
``configure(providers=["default", "myhw"], cipher_properties="provider=myhw")``.
"""
from __future__ import annotations

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
