"""What a dynamically linked host program needs on a node's disk: its interpreter and the
shared libraries it loads, found the way ld.so finds them, as disk entries.

`host_closure([program, ...])` reads each program's PT_INTERP and DT_NEEDED, searches each
library in the program's DT_RPATH (when it has no DT_RUNPATH), its DT_RUNPATH and then the
system directories of Debian's multiarch ld.so, recursively, and returns DiskEntry items
that rebuild those paths on the node as the host has them: every file at its real path,
and every symbolic link met on the way (`/lib -> usr/lib`, `/lib64/ld-linux-x86-64.so.2`
-> ...) as a link, so the names a program and its loader use resolve on the node too.
The host is read once, here; the entries carry the bytes (a recording holds them).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSegment
from elftools.elf.elffile import ELFFile

from chaosreplay.errors import ConfigError
from chaosreplay.kernel.fs.install import DiskEntry, EntryKind

SYSTEM_DIRECTORIES = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib")
"""Where Debian's ld.so looks after a library's own search path (its built-in list)."""
MAX_LINKS = 40  # symbolic links followed resolving one path (Linux: 40, then ELOOP)


def _dynamic_facts(path: Path, raw: bytes) -> tuple[str | None, list[str], list[str]]:
    """(PT_INTERP, DT_NEEDED names, search directories from DT_RPATH/DT_RUNPATH)."""
    try:
        elf = ELFFile(io.BytesIO(raw))
        interp, needed, rpath, runpath = None, [], [], []
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_INTERP":
                interp = str(seg.get_interp_name())
            if isinstance(seg, DynamicSegment):
                for tag in seg.iter_tags():
                    if tag.entry.d_tag == "DT_NEEDED":
                        needed.append(str(tag.needed))
                    elif tag.entry.d_tag == "DT_RPATH":
                        rpath += str(tag.rpath).split(":")
                    elif tag.entry.d_tag == "DT_RUNPATH":
                        runpath += str(tag.runpath).split(":")
    except ELFError as exc:
        raise ConfigError(f"{path}: not a readable ELF file ({exc})") from None
    origin = str(path.parent)
    dirs = [d.replace("$ORIGIN", origin).replace("${ORIGIN}", origin)
            for d in (runpath or rpath) if d]
    return interp, needed, dirs


def _walk(path: str) -> tuple[str, list[tuple[str, str]]]:
    """The real path of a host path and each symbolic link met resolving it, as (the link's
    path with its parents real, its target as written)."""
    links: list[tuple[str, str]] = []
    parts = [p for p in path.split("/") if p]
    real = "/"
    followed = 0
    while parts:
        name = parts.pop(0)
        if name == ".":
            continue
        if name == "..":
            real = os.path.dirname(real.rstrip("/")) or "/"
            continue
        candidate = os.path.join(real, name)
        if os.path.islink(candidate):
            followed += 1
            if followed > MAX_LINKS:
                raise ConfigError(f"{path}: too many symbolic links")
            target = os.readlink(candidate)
            links.append((candidate, target))
            if target.startswith("/"):
                real = "/"
            parts = [p for p in target.split("/") if p] + parts
            continue
        real = candidate
    return real, links


def _find(name: str, dirs: Iterable[str]) -> str | None:
    """The first directory's path to a library name that exists on the host."""
    if "/" in name:
        return name if os.path.isfile(name) else None
    for directory in dirs:
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate):
            return candidate
    return None


def host_closure(programs: Iterable[str | Path],
                 on_disk: Iterable[str | Path] = ()) -> list[DiskEntry]:
    """Disk entries for every interpreter and shared library the programs load (static
    programs need none), and for the on_disk programs themselves and what they load;
    ConfigError names a library the host does not have."""
    files: dict[str, DiskEntry] = {}
    links: dict[str, DiskEntry] = {}
    pending: list[tuple[Path, bool]] = [(Path(p), False) for p in programs]
    pending += [(Path(p), True) for p in on_disk]
    seen: set[str] = set()

    def add(path: str) -> str:
        real, met = _walk(path)
        for link, target in met:
            links.setdefault(link, DiskEntry(link, EntryKind.SYMLINK, target=target))
        if real not in files:
            data = Path(real).read_bytes()
            files[real] = DiskEntry(real, EntryKind.FILE, data, mode=os.stat(real).st_mode & 0o7777)
        return real

    while pending:
        path, on_disk = pending.pop(0)
        if str(path) in seen:
            continue
        seen.add(str(path))
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
        interp, needed, dirs = _dynamic_facts(path, raw)
        if on_disk:
            add(str(path))
        if interp is not None:
            if not os.path.isfile(interp):
                raise ConfigError(f"{path}: its interpreter {interp} is not on this host")
            pending.append((Path(interp), True))
        for name in needed:
            found = _find(name, [*dirs, *SYSTEM_DIRECTORIES])
            if found is None:
                raise ConfigError(f"{path}: needs {name}, which is not in its search path "
                                  f"or {', '.join(SYSTEM_DIRECTORIES)} on this host")
            pending.append((Path(found), True))
    return sorted(files.values(), key=lambda e: e.path) + sorted(links.values(),
                                                                 key=lambda e: e.path)
