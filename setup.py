"""The one piece pyproject.toml cannot express: building the C core with cffi."""

from setuptools import setup

setup(cffi_modules=["vmm_native/build_ffi.py:ffibuilder"])
