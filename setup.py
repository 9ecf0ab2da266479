"""What pyproject.toml cannot express: the C core (cffi) and the built-in demo programs.

The demos (guest/src/raft.c, the Raft cluster `chaosreplay record` runs by default, and
guest/src/kvstore.c, the replicated key-value store of `builtin:kv`) are static x86-64
executables compiled at install time into chaosreplay/_demo/, with musl-gcc when it exists
(a smaller binary to embed in recordings), else gcc. They are built
without the SDK's edge coverage: gcc's trace-pc calls can hide an rdtsc pattern inside a
call's displacement, whose page then runs single-stepped (docs/guests.md); guest/Makefile
builds a coverage variant, raft_cov, for `chaosreplay explore`.
"""

import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
GUEST_DIR = ROOT / "guest"
DEMOS = ("raft", "kvstore")  # guest/src/NAME.c -> chaosreplay/_demo/NAME


class BuildWithDemo(build_ext):
    """build_ext that also compiles the demo guests next to the package's modules."""

    def run(self) -> None:
        super().run()
        package = ROOT / "chaosreplay" if self.inplace else Path(self.build_lib) / "chaosreplay"
        (package / "_demo").mkdir(parents=True, exist_ok=True)
        compiler = shutil.which("musl-gcc") or shutil.which("gcc") or "cc"
        for name in DEMOS:
            target = package / "_demo" / name
            # Built from guest/ with relative paths, as guest/Makefile does, so the assertion
            # locations the binary reports (__FILE__) do not depend on where it was built.
            subprocess.run(
                [compiler, "-static", "-O2", "-g", "-std=gnu11", "-Wall", "-Wextra", "-Werror",
                 f"-ffile-prefix-map={GUEST_DIR.resolve()}=.",  # debug info too
                 "-Iinclude", "-o", str(target.resolve()), f"src/{name}.c"],
                check=True, cwd=GUEST_DIR,
            )


setup(cffi_modules=["vmm_native/build_ffi.py:ffibuilder"], cmdclass={"build_ext": BuildWithDemo})
