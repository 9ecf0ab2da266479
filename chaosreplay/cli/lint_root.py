"""The ELF files `chaosreplay lint --root` scans: a program's host closure, or every ELF
file of a directory or tar root, read exactly as a scenario's `root` reads it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from chaosreplay.errors import ConfigError, GuestProgramError
from chaosreplay.kernel.fs.install import DiskEntry, EntryKind
from chaosreplay.sim.disk_files import MAX_DISK_PATHS, MAX_FILES_BYTES
from chaosreplay.sim.host_root import host_closure
from chaosreplay.sim.root_tree import read_dir_root, read_tar_root
from chaosreplay.sim.validation import KeyPath
from chaosreplay.vm.elf import ProgramImage, parse_shared_object

ELF_MAGIC = b"\x7fELF"


@dataclass(frozen=True)
class RootFile:
    """One ELF file of a root: its path on the node's disk and its parsed image."""

    path: str
    image: ProgramImage


NOT_CODE = "ELF files that are not x86-64 executables or shared objects"


def _entries(root: str, program: Path) -> tuple[list[DiskEntry], Counter[str]]:
    """The root's disk entries and what it left out (reason: count)."""
    at = KeyPath("--root")
    if root == "host":
        try:
            return host_closure([program]), Counter()
        except ConfigError as exc:
            at.fail(str(exc))
    path = Path(root)
    read = read_dir_root if path.is_dir() else read_tar_root
    tree = read(path, at, MAX_FILES_BYTES, MAX_DISK_PATHS)
    return tree.entries, tree.skipped


def root_files(root: str, program: Path) -> tuple[list[RootFile], dict[str, int]]:
    """The root's x86-64 ELF files with code, by path (others, e.g. object files or
    another machine's, are not loaded by the program and are passed over)."""
    entries, skipped = _entries(root, program)
    files = []
    for entry in entries:
        if entry.kind is not EntryKind.FILE or not entry.data.startswith(ELF_MAGIC):
            continue
        try:
            files.append(RootFile(entry.path, parse_shared_object(entry.data, entry.path)))
        except GuestProgramError:
            skipped[NOT_CODE] += 1
    return files, dict(skipped)
