"""A node group's `files`: what a scenario puts on its nodes' disks before they start.

Each entry is a table with `path` and exactly one source: `content` (text), `from` (a host
file, relative to the scenario's folder), `symlink` (a link target), `directory = true`, or
`busybox` (a host busybox binary: installed as `<path>/busybox` with one symbolic link per
applet). Host files are read once, when the scenario file is loaded, and the scenario then
holds their bytes: its canonical form (`files_to_dict`) has only `content` (bytes),
`symlink` and `directory` entries, so a recording's manifest replays with nothing from the
host, and a manifest can never make a replay read a host file.

The busybox applets are the ones the binary itself lists: busybox keeps the applet names
sorted and NUL-separated (`applet_names`, which its own `--list` prints), so reading them
from the bytes is deterministic and needs no native run. `applets = [...]` picks a subset.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chaosreplay.kernel.fs.disk import NAME_MAX, PATH_MAX
from chaosreplay.kernel.fs.install import DiskEntry, EntryKind
from chaosreplay.kernel.fs.paths import MOUNTS
from chaosreplay.sim.validation import KeyPath, check_keys, expect_list, expect_str, show

FILE_KEYS = ("path", "content", "from", "symlink", "directory", "busybox", "applets", "mode")
SOURCE_KEYS = ("content", "from", "symlink", "directory", "busybox")
MAX_FILES_BYTES = 48 << 20
"""Content of a scenario's files together: the recording's manifest embeds them."""
MAX_DISK_PATHS = 2048
"""Paths one group's files create (entries and the directories above them): inodes of a
node's 64 MiB disk (4096) with room left for the program's own files."""
EXISTING_DIRECTORIES = ("/data", "/tmp")  # every disk has them (kernel/fs/disk.py)
BUSYBOX_NAME = "busybox"
FILE_MODE = 0o644
DIRECTORY_MODE = 0o755
BUSYBOX_MODE = 0o755
_APPLET_NAME = re.compile(rb"^[A-Za-z0-9_.\[\]-]{1,64}$")
_APPLETS_START = b"\0[\0[[\0"  # the list begins with the test applets `[` and `[[`
MAX_APPLETS = 1024


def busybox_applets(raw: bytes) -> list[str] | None:
    """The applet names a busybox binary lists, in its (sorted) order; None if not found."""
    start = raw.find(_APPLETS_START)
    if start < 0:
        return None
    names: list[bytes] = []
    at = start + 1
    while len(names) <= MAX_APPLETS:
        end = raw.find(b"\0", at)
        if end < 0:
            return None
        name = raw[at:end]
        if not name:  # the list ends with an empty name
            break
        if not _APPLET_NAME.match(name) or (names and name <= names[-1]):
            return None
        names.append(name)
        at = end + 1
    else:
        return None
    return [n.decode() for n in names] if len(names) > 2 else None


def read_host_file(path: Path, at: KeyPath, limit: int) -> bytes:
    """A regular host file of at most `limit` bytes (opened without blocking and checked
    with fstat first, so a FIFO or a device is one clear error, never a hang)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        at.fail(f"cannot read host file {path}: {exc.strerror}")
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            at.fail(f"host file {path} is not a regular file")
        if info.st_size > limit:
            at.fail(f"host file {path} has {info.st_size:,} bytes, more than the "
                    f"{limit:,} a scenario's files may still hold")
        chunks, size = [], 0
        while size <= limit:  # the file may grow while it is read
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
    except OSError as exc:
        at.fail(f"cannot read host file {path}: {exc.strerror}")
    finally:
        os.close(fd)
    if len(data) > limit:
        at.fail(f"host file {path} grew past the {limit:,} bytes a scenario's files may hold")
    return data


def _disk_path(value: Any, at: KeyPath) -> str:
    """An absolute, normalised guest path outside the synthetic trees."""
    path = expect_str(value, at, nonempty=True)
    parts = path.split("/")
    if not path.startswith("/") or path == "/" or "\0" in path \
            or any(p in ("", ".", "..") for p in parts[1:]):
        at.fail(f'expected an absolute path like "/bin/sh" without empty, "." or ".." '
                f"components, got {show(path)}")
    if len(path.encode()) >= PATH_MAX or any(len(p.encode()) > NAME_MAX for p in parts):
        at.fail(f"path too long ({PATH_MAX - 1} bytes at most, {NAME_MAX} per component)")
    top = parts[1].encode()
    if top in MOUNTS:
        at.fail(f"/{parts[1]} is a synthetic directory the kernel provides; files put there "
                "would be hidden by it")
    return path


def _mode(value: Any, at: KeyPath) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o7777:
        at.fail(f"expected permission bits from 0 to 0o7777 (e.g. 0o755), got {show(value)}")
    return value


def _host_path(value: Any, at: KeyPath, base_dir: Path | None) -> Path:
    name = expect_str(value, at, nonempty=True)
    if base_dir is None:
        at.fail("names a host file, which only a scenario file may do (a recording carries "
                "the content itself)")
    path = Path(name)
    return path if path.is_absolute() else base_dir / path


def _entries(table: Mapping[str, Any], at: KeyPath, base_dir: Path | None,
             budget: int) -> tuple[list[DiskEntry], list[DiskEntry]]:
    """(entries, busybox applet links that give way to explicit entries) of one table."""
    check_keys(table, FILE_KEYS, at)
    given = [k for k in SOURCE_KEYS if k in table]
    if "path" not in table:
        at.key("path").fail("missing (where on the node's disk the entry goes)")
    if len(given) != 1:
        listed = ", ".join(SOURCE_KEYS)
        at.fail(f"expected exactly one of {listed}, got "
                f"{', '.join(given) if given else 'none'}")
    source = given[0]
    path = _disk_path(table["path"], at.key("path"))
    if "mode" in table and source == "symlink":
        at.key("mode").fail("a symbolic link has no mode of its own")
    if "applets" in table and source != "busybox":
        at.key("applets").fail("only a busybox entry has applets")
    default_mode = {"directory": DIRECTORY_MODE, "busybox": BUSYBOX_MODE}.get(source, FILE_MODE)
    mode = _mode(table.get("mode", default_mode), at.key("mode"))
    value, value_at = table[source], at.key(source)
    if path in EXISTING_DIRECTORIES and source != "directory":
        at.key("path").fail(f"{path} is a directory on every node's disk")
    if source == "content":
        # bytes: the canonical form (a recording's manifest); TOML has only text
        data = value if isinstance(value, bytes) else expect_str(value, value_at).encode()
        return [DiskEntry(path, EntryKind.FILE, data=data, mode=mode)], []
    if source == "from":
        data = read_host_file(_host_path(value, value_at, base_dir), value_at, budget)
        return [DiskEntry(path, EntryKind.FILE, data=data, mode=mode)], []
    if source == "symlink":
        target = expect_str(value, value_at, nonempty=True)
        if "\0" in target or len(target.encode()) >= PATH_MAX:
            value_at.fail(f"expected a link target without NUL, under {PATH_MAX} bytes")
        return [DiskEntry(path, EntryKind.SYMLINK, target=target)], []
    if source == "directory":
        if value is not True:
            value_at.fail(f"expected true (a directory entry), got {show(value)}")
        return [DiskEntry(path, EntryKind.DIRECTORY, mode=mode)], []
    host = _host_path(value, value_at, base_dir)
    raw = read_host_file(host, value_at, budget)
    applets = busybox_applets(raw)
    if "applets" in table:
        a_at = at.key("applets")
        chosen = [expect_str(a, a_at.index(j), nonempty=True)
                  for j, a in enumerate(expect_list(table["applets"], a_at))]
        for j, name in enumerate(chosen):
            if "/" in name or name in (".", "..", BUSYBOX_NAME) or "\0" in name:
                a_at.index(j).fail(f"not an applet name: {show(name)}")
            if applets is not None and name not in applets:
                a_at.index(j).fail(f"{host} has no applet {show(name)}"
                                   f" ({len(applets)} applets, e.g. {', '.join(applets[:3])})")
        applets = list(dict.fromkeys(chosen))
    elif applets is None:
        value_at.fail(f"{host}: no busybox applet list found in the binary; list the "
                      "applets to link with applets = [...]")
    binary = DiskEntry(f"{path}/{BUSYBOX_NAME}", EntryKind.FILE, data=raw, mode=mode)
    links = [DiskEntry(f"{path}/{name}", EntryKind.SYMLINK, target=BUSYBOX_NAME)
             for name in applets]
    return [binary], links


def parse_files(value: Any, at: KeyPath, base_dir: Path | None,
                budget: int = MAX_FILES_BYTES, root: tuple[DiskEntry, ...] = (),
                root_at: KeyPath | None = None) -> tuple[DiskEntry, ...]:
    """A group's `files`, checked and complete (host files read; busybox expanded), after
    the group's root entries (`root`, from `root_at`) that no file entry replaces.

    base_dir is the scenario file's folder; None (a manifest) refuses host files.
    `budget` is how many content bytes the scenario's files may still take. The paths
    checks (nothing under a file or a link, MAX_DISK_PATHS) cover root and files together.
    """
    explicit: dict[str, tuple[int, DiskEntry]] = {}
    ordered: list[tuple[int, DiskEntry, bool]] = []  # (entry index, entry, gives way)
    used = 0
    for i, raw in enumerate(expect_list(value, at)):
        e_at = at.index(i)
        if not isinstance(raw, Mapping):
            e_at.fail(f"expected a table with path and a source, got {show(raw)}")
        entries, links = _entries(raw, e_at, base_dir, budget - used)
        for entry in entries:
            if entry.path in explicit:
                e_at.key("path").fail(f"{entry.path} is already given by "
                                      f"{at.index(explicit[entry.path][0]).path}")
            explicit[entry.path] = (i, entry)
            used += len(entry.data)
            if used > budget:
                e_at.fail(f"the scenario's files take more than {budget:,} bytes "
                          f"(at most {MAX_FILES_BYTES:,} in all: a recording embeds them)")
        ordered += [(i, e, False) for e in entries] + [(i, e, True) for e in links]
    # a file entry replaces the root's entry at its path (a config file over the image's)
    out: list[DiskEntry] = [e for e in root if e.path not in explicit]
    kinds: dict[str, tuple[int, EntryKind]] = {e.path: (-1, e.kind) for e in out}
    for i, entry, gives_way in ordered:
        if gives_way and entry.path in explicit:
            continue  # an explicit entry replaces the applet's link
        if gives_way and entry.path in kinds:
            continue  # two busybox entries: the first one's link stays
        kinds[entry.path] = (i, entry.kind)
        out.append(entry)
    def where(index: int) -> KeyPath:
        """A file entry's key path, or the root's for a root entry (index -1)."""
        return root_at if index < 0 and root_at is not None else at.index(index)

    paths: set[str] = set()
    for entry in out:
        parts = entry.path.split("/")
        for depth in range(2, len(parts)):
            above = "/".join(parts[:depth])
            paths.add(above)
            found = kinds.get(above)
            if found is not None and found[1] is not EntryKind.DIRECTORY:
                index = kinds[entry.path][0]
                place = where(index) if index < 0 else where(index).key("path")
                place.fail(f"{above} is a {found[1].value} ({where(found[0]).path}); nothing "
                           "can be put under it")
        paths.add(entry.path)
    if len(paths) > MAX_DISK_PATHS:
        what = "the root and files create" if root else "the files create"
        (where(-1) if root else at).fail(
            f"{what} {len(paths):,} paths on each node's disk, more than {MAX_DISK_PATHS:,} "
            "(the disk's 4,096 inodes, half left for the program)")
    return tuple(out)


def files_to_dict(entries: tuple[DiskEntry, ...]) -> list[dict[str, Any]]:
    """The canonical, msgpack-ready form: content as bytes, no host path, busybox expanded."""
    out: list[dict[str, Any]] = []
    for e in entries:
        if e.kind is EntryKind.FILE:
            out.append({"path": e.path, "content": e.data, "mode": e.mode})
        elif e.kind is EntryKind.SYMLINK:
            out.append({"path": e.path, "symlink": e.target})
        else:
            out.append({"path": e.path, "directory": True, "mode": e.mode})
    return out


def files_bytes(entries: tuple[DiskEntry, ...]) -> int:
    """Content bytes of the entries."""
    return sum(len(e.data) for e in entries)
