# setuptools shim: cffi hooks its out-of-line build in through `cffi_modules`,
# which pyproject.toml alone cannot express; the CPython-API fast path for
# single ESP packets is an ordinary extension beside it.
import sys
from pathlib import Path

from setuptools import setup

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build import fastpath_extension  # noqa: E402

setup(cffi_modules=["build.py:ffibuilder"], ext_modules=[fastpath_extension()])
