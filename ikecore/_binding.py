"""The one place that touches the native core directly.

Loads ``ikecore._native``, checks that it was built from this package and runs
on OpenSSL >= 3.0, and maps the C status codes to ikecore's exceptions.
Everything else imports ``ffi``/``lib`` and ``check`` from here.
"""
from __future__ import annotations

from . import __version__, errors

try:
    from ._native import ffi, lib
except ImportError as exc:  # pragma: no cover - exercised only on broken installs
    raise errors.BackendError(
        "ikecore's native core (ikecore._native) is not built: run `pip install .` "
        "(needs a C compiler, the Python headers and libssl-dev >= 3.0)"
    ) from exc

_OPENSSL_MIN = 0x30000000

_native_version = ffi.string(lib.ikc_version()).decode()
if _native_version != __version__:
    raise errors.BackendError(
        f"ikecore._native was built for ikecore {_native_version} but the package is "
        f"{__version__}: rebuild with `pip install .`")
if lib.ikc_openssl_version_num() < _OPENSSL_MIN:
    raise errors.BackendError(
        "ikecore needs OpenSSL >= 3.0 at run time, found "
        + ffi.string(lib.ikc_openssl_version_text()).decode())

_STATUS = {
    lib.IKC_ERR_ARG: (ValueError, "invalid argument"),
    lib.IKC_ERR_UNSUPPORTED: (errors.UnsupportedAlgorithm, "unsupported transform"),
    lib.IKC_ERR_KEYLEN: (errors.InvalidKey, "wrong key length"),
    lib.IKC_ERR_LIMIT: (errors.LimitExceeded, "limit exceeded"),
    lib.IKC_ERR_TAG: (errors.InvalidTag, "authentication tag did not verify"),
    lib.IKC_ERR_OPENSSL: (errors.BackendError, "OpenSSL operation failed"),
    lib.IKC_ERR_NOMEM: (MemoryError, "out of memory"),
    lib.IKC_ERR_BUFFER: (ValueError, "output buffer of the wrong size"),
    lib.IKC_ERR_TRUNCATED: (errors.MalformedPacket, "input truncated"),
    lib.IKC_ERR_PADDING: (errors.MalformedPacket, "malformed padding"),
    lib.IKC_ERR_REPLAY: (errors.ReplayError, "replayed packet"),
    lib.IKC_ERR_SEQ_EXHAUSTED: (errors.SequenceExhausted, "sequence numbers exhausted: rekey the SA"),
    lib.IKC_ERR_SPI: (errors.MalformedPacket, "packet for another SPI"),
    lib.IKC_ERR_STATE: (errors.IkeError, "operation not valid in this state"),
    lib.IKC_ERR_IO: (OSError, "socket or file descriptor I/O failed"),
    lib.IKC_ERR_POLICY: (errors.PolicyViolation, "outside the traffic selectors"),
}


def error_for(status: int, what: str = "") -> Exception:
    cls, text = _STATUS.get(status, (errors.BackendError, f"native status {status}"))
    return cls(f"{what}: {text}" if what else text)


def check(status: int, what: str = "") -> None:
    """Raise the exception for a non-zero C status."""
    if status != lib.IKC_OK:
        raise error_for(status, what)


def as_bytes(value, name: str) -> bytes:
    """Accept bytes-like input the way pyca does; reject everything else with TypeError."""
    if type(value) is bytes:   # the common case, checked first and fast
        return value
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{name} must be bytes-like, not {type(value).__name__}")
