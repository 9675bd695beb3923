# setuptools shim: cffi hooks its out-of-line build in through `cffi_modules`,
# which pyproject.toml alone cannot express.
from setuptools import setup

setup(cffi_modules=["build.py:ffibuilder"])
