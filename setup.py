"""What pyproject.toml cannot express: the C core (cffi) and the built-in demo program.

The demo (guest/src/raft.c, the Raft cluster `chaosreplay record` runs by default) is a
static x86-64 executable compiled at install time into chaosreplay/_demo/raft, with
musl-gcc when it exists (a smaller binary to embed in recordings), else gcc, with the
SDK's edge coverage (CR_COVERAGE; trace-pc-guard for clang, trace-pc for gcc), which
`chaosreplay explore` reads; guest/Makefile builds it the same way.
"""

import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
DEMO_SOURCE = ROOT / "guest" / "src" / "raft.c"


class BuildWithDemo(build_ext):
    """build_ext that also compiles the demo guest next to the package's modules."""

    def run(self) -> None:
        super().run()
        package = ROOT / "chaosreplay" if self.inplace else Path(self.build_lib) / "chaosreplay"
        target = package / "_demo" / "raft"
        target.parent.mkdir(parents=True, exist_ok=True)
        compiler = shutil.which("musl-gcc") or shutil.which("gcc") or "cc"
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True)
        coverage = "trace-pc-guard" if "clang" in version.stdout else "trace-pc"
        # Built from guest/ with relative paths, as guest/Makefile does, so the assertion
        # locations the binary reports (__FILE__) do not depend on where it was built.
        subprocess.run(
            [compiler, "-static", "-O2", "-g", "-std=gnu11", "-Wall", "-Wextra", "-Werror",
             f"-ffile-prefix-map={DEMO_SOURCE.parent.parent.resolve()}=.",  # debug info too
             "-DCR_COVERAGE", f"-fsanitize-coverage={coverage}",
             "-Iinclude", "-o", str(target.resolve()), "src/raft.c"],
            check=True, cwd=DEMO_SOURCE.parent.parent,
        )


setup(cffi_modules=["vmm_native/build_ffi.py:ffibuilder"], cmdclass={"build_ext": BuildWithDemo})
