# setuptools shim: cffi hooks its out-of-line build in through `cffi_modules`,
# which pyproject.toml alone cannot express; the CPython-API fast path for
# single ESP packets is an ordinary extension beside it. Both are abi3 (see
# build_ffi.py), so the wheel is tagged cp310-abi3.
import sys
from pathlib import Path

from setuptools import setup

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_ffi import LIMITED_API_TAG, fastpath_limited_api, fastpath_extension  # noqa: E402

options = {"bdist_wheel": {"py_limited_api": LIMITED_API_TAG}} if fastpath_limited_api() else {}
setup(cffi_modules=["build_ffi.py:ffibuilder"], ext_modules=[fastpath_extension()], options=options)
