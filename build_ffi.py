"""cffi build script (API mode, out-of-line) for ikecore._native, and the
Extension of ikecore._fastpath.

The cdef is the region of csrc/ikecore.h between the CDEF markers: that header
is the whole FFI contract. Used by setuptools through `cffi_modules` (setup.py),
and runnable directly (`python build_ffi.py`) for an in-place developer build.
Named build_ffi.py, not build.py, so that it does not shadow the `build`
package (`python -m build` from the repository root).

Both modules are built on the limited API (abi3, CPython 3.10 onwards: cffi
does that for _native itself): one wheel serves every CPython from 3.10.
IKECORE_FASTPATH_ABI=full builds _fastpath per Python version instead (the
comparison in docs/packaging.md).

IKECORE_SANITIZE=1 builds with AddressSanitizer and UBSan (see README).
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent
CSRC = ROOT / "csrc"
# ikecore._fastpath: a CPython-API shim for the single-packet ESP calls (see the
# file); every other C file is the core, built into ikecore._native by cffi.
FASTPATH_SOURCE = "fastpath.c"


def _package_version() -> str:
    text = (ROOT / "ikecore" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"', text, re.M)
    if not match:
        raise RuntimeError("ikecore/__init__.py has no __version__")
    return match.group(1)


def _cdef_text() -> str:
    header = (CSRC / "ikecore.h").read_text()
    match = re.search(r"/\* CDEF BEGIN \*/(.*?)/\* CDEF END \*/", header, re.S)
    if not match:
        raise RuntimeError("csrc/ikecore.h lacks the CDEF markers")
    return match.group(1)


def _compile_args() -> tuple[list[str], list[str]]:
    cflags = ["-O2", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Wno-unused-parameter",
              "-fno-strict-aliasing"]
    ldflags: list[str] = []
    if os.environ.get("IKECORE_SANITIZE") == "1":
        sanitize = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
                    "-fno-sanitize-recover=undefined", "-O1", "-g"]
        cflags += sanitize
        ldflags += ["-fsanitize=address,undefined"]
    return cflags, ldflags


ffibuilder = FFI()
ffibuilder.cdef(_cdef_text())
_cflags, _ldflags = _compile_args()
ffibuilder.set_source(
    "ikecore._native",
    '#include "ikecore.h"',
    sources=[str(p) for p in sorted(CSRC.glob("*.c")) if p.name != FASTPATH_SOURCE],
    include_dirs=[str(CSRC)],
    libraries=["crypto"],
    define_macros=[("IKC_VERSION", '"%s"' % _package_version())],
    extra_compile_args=_cflags,
    extra_link_args=_ldflags,
)

# the oldest CPython the abi3 modules serve (METH_FASTCALL is in the stable ABI from 3.10)
LIMITED_API_VERSION = 0x030A0000
LIMITED_API_TAG = "cp310"


def fastpath_limited_api() -> bool:
    """Whether _fastpath is built on the limited API (the default; not on a
    free-threaded CPython, which has no abi3)."""
    import sysconfig
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        return False
    return os.environ.get("IKECORE_FASTPATH_ABI", "abi3") != "full"


def fastpath_extension():
    """The setuptools Extension of ikecore._fastpath (setup.py adds it)."""
    from setuptools import Extension
    limited = fastpath_limited_api()
    macros = [("Py_LIMITED_API", hex(LIMITED_API_VERSION))] if limited else []
    return Extension("ikecore._fastpath", [f"csrc/{FASTPATH_SOURCE}"], define_macros=macros,
                     py_limited_api=limited, extra_compile_args=_cflags, extra_link_args=_ldflags)


def _build_fastpath_inplace() -> None:
    from setuptools import Distribution
    # an in-place build of the other flavour would sit beside this one, and
    # Python prefers the version-tagged name: keep one
    for old in (ROOT / "ikecore").glob("_fastpath.*.so"):
        old.unlink()
    dist = Distribution({"name": "ikecore-fastpath", "ext_modules": [fastpath_extension()],
                         "script_args": ["build_ext", "--inplace", "--build-temp", "build/fastpath"]})
    dist.parse_command_line()
    dist.run_commands()


if __name__ == "__main__":
    # in-place build: the extensions land next to ikecore/__init__.py
    os.chdir(ROOT)
    target = ffibuilder.compile(tmpdir=str(ROOT / "build" / "cffi"), verbose="-v" in sys.argv)
    built = Path(target)
    dest = ROOT / "ikecore" / built.name
    built.replace(dest)
    print(dest)
    _build_fastpath_inplace()
