"""Real test programs (C, C++, Go, Rust) compiled once per source digest into a cache.

Not a test module. `build_program("pthreads.c", "glibc")` compiles tests/programs/pthreads.c
into guest/build/cache/<digest>/pthreads and returns the path; the digest covers the
source, the toolchain's version line and the flags, so an edit or a new compiler builds
anew and anything else is reused (across test sessions too). Builds hold a file lock, so
sessions side by side in one tree neither build twice nor read half-written files.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCES = REPO / "tests" / "programs"
CACHE = REPO / "guest" / "build" / "cache"


@dataclass(frozen=True)
class Toolchain:
    """How one language/flavour is compiled into an x86-64 executable (static, except the
    `dynamic` flavours: glibc's ld.so and shared libraries, host_closure puts them on a
    node's disk)."""

    compiler: str
    version_args: tuple[str, ...]
    command: tuple[str, ...]  # {src} and {out} are filled in
    env: tuple[tuple[str, str], ...] = ()
    install_hint: str = ""


TOOLCHAINS = {
    ("c", "glibc"): Toolchain("gcc", ("--version",),
                              ("gcc", "-static", "-O2", "-g", "-pthread", "-o", "{out}", "{src}")),
    ("c", "musl"): Toolchain("musl-gcc", ("--version",),
                             ("musl-gcc", "-static", "-O2", "-g", "-o", "{out}", "{src}"),
                             install_hint="apt-get install musl-tools"),
    ("c", "dynamic"): Toolchain("gcc", ("--version",),
                                ("gcc", "-O2", "-g", "-pthread", "-o", "{out}", "{src}")),
    ("cpp", "dynamic"): Toolchain("g++", ("--version",),
                                  ("g++", "-O2", "-g", "-pthread", "-o", "{out}", "{src}"),
                                  install_hint="apt-get install g++"),
    ("cpp", "glibc"): Toolchain("g++", ("--version",),
                                ("g++", "-static", "-O2", "-g", "-pthread", "-o", "{out}", "{src}"),
                                install_hint="apt-get install g++"),
    ("go", "go"): Toolchain("go", ("version",),
                            ("go", "build", "-trimpath", "-o", "{out}", "{src}"),
                            env=(("CGO_ENABLED", "0"),),
                            install_hint="apt-get install golang-go"),
    ("rs", "rust"): Toolchain("rustc", ("--version",),
                              ("rustc", "-O", "-C", "target-feature=+crt-static",
                               "--remap-path-prefix", f"{SOURCES}=.", "-o", "{out}", "{src}"),
                              install_hint="apt-get install rustc"),
}
LANGUAGES = {".c": "c", ".cpp": "cpp", ".go": "go", ".rs": "rs"}


def toolchain_for(source: str, flavour: str | None = None) -> Toolchain:
    """The toolchain for a source file name and flavour (default: glibc, go or rust)."""
    lang = LANGUAGES[Path(source).suffix]
    default = {"c": "glibc", "cpp": "glibc", "go": "go", "rs": "rust"}[lang]
    return TOOLCHAINS[(lang, flavour or default)]


def missing_toolchain(source: str, flavour: str | None = None) -> str | None:
    """Why this program cannot be built here, or None when it can."""
    chain = toolchain_for(source, flavour)
    if shutil.which(chain.compiler) is None:
        return f"{chain.compiler} is not installed ({chain.install_hint or 'see README'})"
    return None


def built(source: str, flavour: str | None = None) -> Path:
    """build_program, or the calling test skipped (with the install hint) when this host
    lacks the toolchain."""
    reason = missing_toolchain(source, flavour)
    if reason is not None:
        import pytest

        pytest.skip(reason)
    return build_program(source, flavour)


@functools.cache
def _version(compiler: str, args: tuple[str, ...]) -> str:
    result = subprocess.run([compiler, *args], capture_output=True, text=True, check=True)
    return (result.stdout or result.stderr).splitlines()[0]


def build_program(source: str, flavour: str | None = None) -> Path:
    """The cached static executable built from tests/programs/<source>; builds on a miss."""
    chain = toolchain_for(source, flavour)
    src = SOURCES / source
    digest = hashlib.sha256()
    headers = [h.read_bytes() for h in sorted(SOURCES.glob("*.h"))]  # what sources include
    for part in (src.read_bytes(), *headers,
                 _version(chain.compiler, chain.version_args).encode(),
                 repr((chain.command, chain.env)).encode()):
        digest.update(len(part).to_bytes(8, "little") + part)
    out_dir = CACHE / digest.hexdigest()[:24]
    out = out_dir / Path(source).stem
    if out.is_file():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if out.is_file():
            return out
        tmp_dir = out_dir.with_name(out_dir.name + ".tmp")
        shutil.rmtree(tmp_dir, ignore_errors=True)
        tmp_dir.mkdir(parents=True)
        tmp_out = tmp_dir / out.name
        command = [part.format(src=src, out=tmp_out) for part in chain.command]
        env = {**os.environ, **dict(chain.env)}
        env.setdefault("GOCACHE", str(CACHE / "go-build"))
        env.setdefault("HOME", str(CACHE))
        result = subprocess.run(command, capture_output=True, text=True, env=env,
                                cwd=SOURCES, check=False)
        if result.returncode != 0:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise RuntimeError(f"building {source} failed ({' '.join(command)}):\n"
                               f"{result.stdout}{result.stderr}")
        tmp_dir.rename(out_dir)  # whole directory at once: a reader never sees half a build
    return out
