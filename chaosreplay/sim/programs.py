"""Node programs of a run: found on disk for `record`, embedded in and read back from a
recording's manifest for `replay` (so a recording replays on a machine without them).

`builtin:demo` names the Raft demo (guest/src/raft.c) and `builtin:kv` the replicated
key-value store (guest/src/kvstore.c), which `pip install` compiles into the package as
chaosreplay/_demo/raft and chaosreplay/_demo/kvstore; in a source checkout, `make -C guest`
builds newer copies under guest/build, and the newest one wins.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

from chaosreplay.errors import GuestProgramError, RecordingError
from chaosreplay.recording.format import MAX_RAW, FrameKind
from chaosreplay.sim.scenario import BUILTIN_PROGRAMS, DEMO_PROGRAM, Scenario
from chaosreplay.vm.elf import ProgramImage, load_program, parse_program

PACKAGE_DIR = Path(__file__).resolve().parent.parent
MAX_PROGRAM_BYTES = 256 << 20
"""The largest program chaosreplay reads from disk."""
MAX_EMBEDDED_BYTES = MAX_RAW[FrameKind.MANIFEST] - (1 << 20)
"""A scenario's distinct programs together: they are embedded in the recording's manifest
frame, whose limit leaves room here for the scenario itself."""


def builtin_candidates(binary: str) -> tuple[Path, ...]:
    """Where a built-in program's binary may have been built: installed, then guest/build."""
    return (PACKAGE_DIR / "_demo" / binary,
            PACKAGE_DIR.parent / "guest" / "build" / "musl" / binary,
            PACKAGE_DIR.parent / "guest" / "build" / "glibc" / binary)


def builtin_program(program: str) -> Path:
    """A built-in program's binary (`builtin:demo`, `builtin:kv`): the most recently built."""
    binary = BUILTIN_PROGRAMS[program]
    built = [c for c in builtin_candidates(binary) if c.is_file()]
    if built:
        return max(built, key=lambda c: c.stat().st_mtime_ns)
    what = "demo program" if program == DEMO_PROGRAM else f"program {program} ({binary})"
    raise GuestProgramError(
        f"the built-in {what} is not built: reinstall chaosreplay (pip install .) "
        "or build the guests (make -C guest)")


def demo_program() -> Path:
    """The built Raft demo binary: in a source checkout, the most recently built copy."""
    return builtin_program(DEMO_PROGRAM)


def read_program(path: Path) -> ProgramImage:
    """Load a node program from disk: a regular file of at most MAX_PROGRAM_BYTES.

    Opened without blocking and checked with fstat before a byte is read, so a FIFO, a
    device such as /dev/zero or a huge file is one clear error, never a hang or a host
    out of memory."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return load_program(path)  # the loader names the reason (no such file, ...)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise GuestProgramError(f"{path}: is a directory, not a program")
        if not stat.S_ISREG(info.st_mode):
            raise GuestProgramError(f"{path}: not a regular file (a device, FIFO or socket "
                                    "cannot be a node program)")
        if info.st_size > MAX_PROGRAM_BYTES:
            raise GuestProgramError(f"{path}: {info.st_size:,} bytes, larger than the "
                                    f"{MAX_PROGRAM_BYTES >> 20} MiB a node program may be")
        chunks, left = [], MAX_PROGRAM_BYTES + 1  # the file may grow while it is read
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        if left <= 0:
            raise GuestProgramError(f"{path}: larger than the {MAX_PROGRAM_BYTES >> 20} MiB "
                                    "a node program may be")
    except OSError as exc:
        raise GuestProgramError(f"{path}: cannot be read ({exc.strerror})") from None
    finally:
        os.close(fd)
    return parse_program(b"".join(chunks), path)


def resolve_images(scenario: Scenario, base_dir: Path) -> list[ProgramImage]:
    """One loaded program per node group; relative paths start at the scenario's folder."""
    cache: dict[Path, ProgramImage] = {}
    images = []
    for group in scenario.nodes:
        path = (builtin_program(group.program) if group.program in BUILTIN_PROGRAMS
                else group.program_path(base_dir))
        if path not in cache:
            cache[path] = read_program(path)
        images.append(cache[path])
    total = sum(len(image.raw) for image in {image.sha256: image for image in images}.values())
    files = scenario.files_bytes()  # the disk files travel in the same manifest frame
    if total + files > MAX_EMBEDDED_BYTES:
        names = ", ".join(str(p) for p in cache)
        also = f" and {files:,} bytes of disk files" if files else ""
        raise GuestProgramError(f"{names}: {total:,} bytes of programs{also}, more than the "
                                f"{MAX_EMBEDDED_BYTES >> 20} MiB a recording embeds")
    return images


def embed_programs(images: list[ProgramImage]) -> dict[str, Any]:
    """The manifest's programs section: each distinct binary once, and one per group."""
    binaries: dict[str, dict[str, Any]] = {}
    for image in images:
        binaries.setdefault(image.sha256, {"name": image.path.name, "elf": image.raw})
    return {"binaries": binaries, "groups": [image.sha256 for image in images]}


def images_from_manifest(section: Any, where: str) -> list[ProgramImage]:
    """The programs embedded in a recording, checked against their SHA-256."""
    try:
        binaries, groups = section["binaries"], section["groups"]
        images: dict[str, ProgramImage] = {}
        out = []
        for sha in groups:
            if sha not in images:
                entry = binaries[sha]
                raw = bytes(entry["elf"])
                if hashlib.sha256(raw).hexdigest() != sha:
                    raise RecordingError(f"{where}: embedded program {entry['name']} does not "
                                         "match its SHA-256 (damaged recording)")
                images[sha] = parse_program(raw, f"/embedded/{entry['name']}")
            out.append(images[sha])
        return out
    except (KeyError, TypeError) as exc:
        raise RecordingError(f"{where}: the manifest's programs section is malformed "
                             f"({exc!r})") from None
