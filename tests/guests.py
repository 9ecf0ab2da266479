"""Builds the guest programs under guest/ once per test session (not a test module).

The build goes to guest/build (gitignored) through guest/Makefile, so tests use exactly
what users build. make is incremental and the build holds a file lock, so test sessions
running side by side in one tree neither rebuild needlessly nor read half-written files.
"""

from __future__ import annotations

import fcntl
import functools
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GUEST_DIR = REPO / "guest"
BUILD_DIR = GUEST_DIR / "build"
COMPILERS = {"glibc": "gcc", "musl": "musl-gcc"}
"""The compiler each libc flavour of the guests is built with."""


def missing_compiler(libc: str) -> str | None:
    """Why guests for this libc cannot be built here, or None when they can."""
    if libc not in COMPILERS:
        raise ValueError(f"unknown libc {libc!r} (expected one of {sorted(COMPILERS)})")
    if shutil.which("make") is None:
        return "make is not installed"
    compiler = COMPILERS[libc]
    if shutil.which(compiler) is None:
        hint = " (apt-get install musl-tools)" if libc == "musl" else ""
        return f"{compiler} is not installed, cannot build the {libc} guests{hint}"
    return None


@functools.cache
def build_guests() -> Path:
    """Build every guest for each libc whose compiler exists; return the build directory."""
    targets = [libc for libc in COMPILERS if missing_compiler(libc) is None]
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    if not targets:
        return BUILD_DIR
    with open(BUILD_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = subprocess.run(
            ["make", "-s", "-C", str(GUEST_DIR), f"BUILD={BUILD_DIR}", *targets],
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(
            f"building the guest programs failed (make exit {result.returncode}):\n"
            f"{result.stdout}{result.stderr}"
        )
    return BUILD_DIR


def guest_path(libc: str, name: str) -> Path:
    """The built guest program libc/name (building first); FileNotFoundError if unknown."""
    path = build_guests() / libc / name
    if not path.is_file():
        raise FileNotFoundError(f"no guest program {libc}/{name} in {BUILD_DIR}")
    return path


def compile_with_sdk(source_text: str, directory: Path, name: str) -> Path:
    """Build a C99 program against the SDK header with gcc (strict warnings); its path.

    Raises FileNotFoundError when gcc is missing, so callers can skip.
    """
    source = directory / f"{name}.c"
    source.write_text(source_text)
    binary = directory / name
    subprocess.run(
        ["gcc", "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror",
         f"-I{GUEST_DIR / 'include'}", "-o", str(binary), str(source)],
        check=True,
    )  # fmt: skip
    return binary
