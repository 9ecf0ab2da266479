"""`chaosreplay rootfs PROGRAM... -o root.tar`: the host closure of programs as a tar."""

from __future__ import annotations

import os
from pathlib import Path

import click

from chaosreplay.errors import ConfigError
from chaosreplay.kernel.fs.install import EntryKind
from chaosreplay.kernel.fs.root_layer import with_directories
from chaosreplay.sim.disk_files import MAX_FILES_BYTES
from chaosreplay.sim.host_root import host_closure
from chaosreplay.sim.root_tree import write_tar


@click.command("rootfs")
@click.argument("programs", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              required=True, help="The tar archive to write (replaced if it exists).")
def rootfs(programs: tuple[Path, ...], output: Path) -> None:
    """Write PROGRAMS and what they load from this host as a tar archive.

    Each program at its real path, its interpreter and shared libraries found the way
    ld.so finds them, and every symbolic link met on the way (/lib64 -> ...), plus their
    parent directories: what `root = { host = [...] }` would put on a node's disk. The
    archive is deterministic (members sorted, mtime 0, owner 0:0 without names), so
    `root = { tar = "root.tar" }` runs the same programs on any machine.
    """
    try:
        entries = host_closure([], [Path(os.path.abspath(p)) for p in programs])
    except ConfigError as exc:
        raise ConfigError(f"rootfs: {exc}") from None
    try:
        size = write_tar(entries, output)
    except OSError as exc:
        raise ConfigError(f"rootfs: cannot write {output}: {exc.strerror or exc}") from None
    tree = with_directories(entries)
    count = {kind: sum(1 for e in tree if e.kind is kind) for kind in EntryKind}
    content = sum(len(e.data) for e in tree)
    note = (f" (more than the {MAX_FILES_BYTES:,} bytes a scenario's root and files may hold)"
            if content > MAX_FILES_BYTES else "")
    click.echo(f"{output}: {count[EntryKind.FILE]} files, {count[EntryKind.SYMLINK]} symbolic "
               f"links, {count[EntryKind.DIRECTORY]} directories; {content:,} bytes of file "
               f"content{note}; archive {size:,} bytes")
