"""Node programs of a run: found on disk for `record`, embedded in and read back from a
recording's manifest for `replay` (so a recording replays on a machine without them).

`builtin:demo` names the Raft demo (guest/src/raft.c), which `pip install` compiles into
the package as chaosreplay/_demo/raft; in a source checkout, `make -C guest` builds newer
copies under guest/build, and the newest one wins.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from chaosreplay.errors import GuestProgramError, RecordingError
from chaosreplay.sim.scenario import DEMO_PROGRAM, Scenario
from chaosreplay.vm.elf import ProgramImage, load_program, parse_program

PACKAGE_DIR = Path(__file__).resolve().parent.parent
DEMO_CANDIDATES = (
    PACKAGE_DIR / "_demo" / "raft",
    PACKAGE_DIR.parent / "guest" / "build" / "musl" / "raft",
    PACKAGE_DIR.parent / "guest" / "build" / "glibc" / "raft",
)


def demo_program() -> Path:
    """The built Raft demo binary: in a source checkout, the most recently built copy."""
    built = [c for c in DEMO_CANDIDATES if c.is_file()]
    if built:
        return max(built, key=lambda c: c.stat().st_mtime_ns)
    raise GuestProgramError(
        "the built-in demo program is not built: reinstall chaosreplay (pip install .) "
        "or build the guests (make -C guest)")


def resolve_images(scenario: Scenario, base_dir: Path) -> list[ProgramImage]:
    """One loaded program per node group; relative paths start at the scenario's folder."""
    cache: dict[Path, ProgramImage] = {}
    images = []
    for group in scenario.nodes:
        path = demo_program() if group.program == DEMO_PROGRAM else group.program_path(base_dir)
        if path not in cache:
            cache[path] = load_program(path)
        images.append(cache[path])
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
