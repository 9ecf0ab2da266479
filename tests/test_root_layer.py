"""A node group's root as a read-only lower layer under each node's disk
(chaosreplay.kernel.fs.root_layer, merged by chaosreplay.kernel.fs.disk): copy-up on change,
whiteouts on removal, crash semantics of the upper layer only, snapshots without the
root's contents."""

from __future__ import annotations

import errno
import itertools
import lzma
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import program_cache
import pytest
from click.testing import CliRunner
from test_hostile_checkpoints import TARGET, edit_part, rewrite

from chaosreplay.cli import main
from chaosreplay.kernel.fs.disk import (
    O_CREAT,
    O_RDONLY,
    O_RDWR,
    O_TRUNC,
    O_WRONLY,
    WHITEOUT,
    FileSystem,
    FsError,
)
from chaosreplay.kernel.fs.install import DiskEntry, EntryKind
from chaosreplay.kernel.fs.root_layer import LOWER_BASE, RootLayer, tree_digest
from chaosreplay.recording import RecordingReader
from chaosreplay.recording.format import packb, unpackb
from chaosreplay.runs.record_replay import load_run, record_run, replay_run
from chaosreplay.sim.scenario import Scenario, loads_scenario
from chaosreplay.sim.simulation import Simulation
from chaosreplay.vm.elf import load_program

LIB = bytes(range(256)) * 4096  # 1 MiB
ROOT = [
    DiskEntry("/usr/lib/libx.so", EntryKind.FILE, LIB, mode=0o755),
    DiskEntry("/usr/lib/conf", EntryKind.FILE, b"port 1\n"),
    DiskEntry("/usr/share", EntryKind.DIRECTORY, mode=0o711),
    DiskEntry("/usr/share/only", EntryKind.FILE, b"x"),
    DiskEntry("/lib", EntryKind.SYMLINK, target="usr/lib"),
]


def _disks(count: int = 2) -> tuple[RootLayer, list[FileSystem]]:
    layer = RootLayer(ROOT)
    return layer, [FileSystem(7, node, root=layer) for node in range(count)]


def _names(fs: FileSystem, path: str) -> list[bytes]:
    return [name for name, _, _ in fs.listdir(fs.lookup(path))][2:]


def _fingerprint(layer: RootLayer) -> list[dict]:
    """Every root inode as its snapshot form: what no disk may ever change."""
    return [layer.nodes[i].to_dict() for i in sorted(layer.nodes)]


def _write(fs: FileSystem, path: str, data: bytes, sync: bool = False) -> None:
    ino = fs.open(path, O_WRONLY | O_TRUNC)
    fs.write(ino, 0, data)
    if sync:
        fs.fsync(ino)
    fs.close(ino)


def test_the_root_shows_through_every_disk_with_its_modes_links_and_merged_directories() -> None:
    _, (fs, _) = _disks()
    assert _names(fs, "/") == [b"data", b"lib", b"tmp", b"usr"]
    assert _names(fs, "/usr/lib") == [b"conf", b"libx.so"]
    assert fs.read_file("/usr/lib/libx.so") == LIB
    assert fs.readlink(fs.lookup("/lib")) == b"usr/lib"
    assert fs.stat_path("/usr/share").mode & 0o7777 == 0o711
    assert fs.stat_path("/usr/lib/libx.so").ino >= LOWER_BASE
    fs.open("/usr/lib/new", O_WRONLY | O_CREAT)  # a name made in a root directory
    assert _names(fs, "/usr/lib") == [b"conf", b"libx.so", b"new"]


def test_reading_and_read_only_opens_copy_nothing_and_the_root_takes_no_disk_space() -> None:
    _, (fs, _) = _disks()
    free = fs.statfs()
    ino = fs.open("/usr/lib/libx.so", O_RDONLY)
    assert fs.read(ino, 4096, 8)[0] == LIB[4096:4104]
    assert fs.peek(ino, 0, 4) == LIB[:4]  # what a file mapping fills its pages from
    fs.close(ino)
    assert ino not in fs.inodes and fs.statfs() == free
    assert len(packb(fs.snapshot())) < 4096


def test_a_write_copies_the_file_up_and_leaves_the_root_unchanged_for_another_node() -> None:
    layer, (a, b) = _disks()
    before = _fingerprint(layer)
    _write(a, "/usr/lib/conf", b"port 2\n")
    assert a.read_file("/usr/lib/conf") == b"port 2\n"
    assert b.read_file("/usr/lib/conf") == b"port 1\n"
    assert layer.nodes[a.lookup("/usr/lib/conf")].data == b"port 1\n"
    assert a.lookup("/usr/lib/conf") == b.lookup("/usr/lib/conf")  # the copy keeps its number
    assert set(a.inodes) >= {a.lookup("/usr"), a.lookup("/usr/lib")}  # parents first
    a.chmod(b.lookup("/usr/share/only"), 0o600)
    assert a.stat_path("/usr/share/only").mode & 0o777 == 0o600
    assert b.stat_path("/usr/share/only").mode & 0o777 == 0o644
    held = b.open("/usr/lib/libx.so", O_RDONLY)  # opens of root inodes are the disk's count
    a.unlink("/usr/lib/libx.so")
    a.rename("/usr/share/only", "/data/only")
    a.crash()
    b.close(held)
    assert _fingerprint(layer) == before


def test_a_restart_keeps_only_what_was_synced_on_top_of_the_root() -> None:
    fs = _disks(1)[1][0]
    _write(fs, "/usr/lib/conf", b"unsynced\n")
    fs.crash()
    assert fs.read_file("/usr/lib/conf") == b"port 1\n"  # the root's, as before the write
    _write(fs, "/usr/lib/conf", b"synced\n", sync=True)
    fs.crash()
    assert fs.read_file("/usr/lib/conf") == b"synced\n"


def test_unlink_of_a_root_file_leaves_a_whiteout_that_is_durable_once_its_directory_is() -> None:
    _, (fs, other) = _disks()
    fs.unlink("/usr/lib/libx.so")
    with pytest.raises(FsError) as err:
        fs.lookup("/usr/lib/libx.so")
    assert err.value.errno == errno.ENOENT
    assert _names(fs, "/usr/lib") == [b"conf"] and other.read_file("/usr/lib/libx.so") == LIB
    lib = fs.inodes[fs.lookup("/usr/lib")]
    assert lib.entries[b"libx.so"] == WHITEOUT
    fs.crash()  # the directory was not synced: the removal is lost
    assert fs.read_file("/usr/lib/libx.so") == LIB
    fs.unlink("/usr/lib/libx.so")
    fs.fsync(fs.lookup("/usr/lib"))
    fs.crash()
    assert _names(fs, "/usr/lib") == [b"conf"]
    fs.open("/usr/lib/libx.so", O_WRONLY | O_CREAT)  # a new file over the whiteout
    assert fs.read_file("/usr/lib/libx.so") == b""


def test_a_directory_made_over_a_removed_root_directory_hides_what_the_root_had() -> None:
    fs = _disks(1)[1][0]
    with pytest.raises(FsError) as err:
        fs.rmdir("/usr/share")
    assert err.value.errno == errno.ENOTEMPTY  # the merged view is what counts
    fs.unlink("/usr/share/only")
    fs.rmdir("/usr/share")
    fs.mkdir("/usr/share")
    assert _names(fs, "/usr/share") == []


def test_rename_copies_a_root_file_up_and_whites_out_its_old_name_a_root_directory_is_exdev(
        ) -> None:
    fs = _disks(1)[1][0]
    fs.rename("/usr/lib/conf", "/data/conf")
    assert fs.read_file("/data/conf") == b"port 1\n" and _names(fs, "/usr/lib") == [b"libx.so"]
    fs.crash()  # neither directory synced: the file is back at its old name only
    assert _names(fs, "/usr/lib") == [b"conf", b"libx.so"] and _names(fs, "/data") == []
    with pytest.raises(FsError) as err:
        fs.rename("/usr/share", "/data/share")
    assert err.value.errno == errno.EXDEV  # as on overlayfs without redirect_dir


def test_a_snapshot_holds_the_upper_layer_and_the_root_digest_never_the_root_contents() -> None:
    layer, (fs,) = _disks(1)
    ino = fs.open("/usr/lib/libx.so", O_RDWR)  # copied up, its content still the root's
    fs.write(fs.open("/data/own", O_WRONLY | O_CREAT), 0, b"mine")
    snap = fs.snapshot()
    assert snap["root"] == layer.digest == tree_digest(ROOT)
    assert len(packb(snap)) < 8192, "a snapshot must not carry the root's 1 MiB library"
    copy = FileSystem.from_snapshot(snap, layer)
    assert copy.snapshot() == snap and copy.read_file("/usr/lib/libx.so") == LIB
    assert copy.read_file("/data/own") == b"mine"
    copy.write(ino, 0, b"patched")  # the open descriptor still names the copy
    assert copy.read_file("/usr/lib/libx.so")[:8] == b"patched" + LIB[7:8]


def test_a_snapshot_does_not_load_over_another_root_or_over_none() -> None:
    layer, (fs,) = _disks(1)
    snap = fs.snapshot()
    other = RootLayer([DiskEntry("/etc2/x", EntryKind.FILE, b"x")])
    assert "names root" in (FileSystem(7, 0, root=other).root_problem(snap) or "")
    with pytest.raises(ValueError, match="the node group has no root"):
        FileSystem.from_snapshot(snap)
    with pytest.raises(ValueError, match="lower_opens names inode 2, which is not the root's"):
        FileSystem.from_snapshot({**snap, "lower_opens": [[2, 1]]}, layer)
    assert FileSystem(7, 0).root_problem(FileSystem(7, 0).snapshot()) is None
    assert "names no root" in (FileSystem(7, 0, root=layer).root_problem(
        FileSystem(7, 0).snapshot()) or "")


def _record_motd(base: Path, duration: str, interval: int) -> tuple[Scenario, Path]:
    """Record root_motd on two nodes over base/tree (/srv/motd) and the program's host
    libraries: the scenario and the recording."""
    program = program_cache.built("root_motd.c", "dynamic")
    (base / "tree" / "srv").mkdir(parents=True)
    (base / "tree" / "srv" / "motd").write_text("from the root\n")
    sc = loads_scenario(f"""
duration = "{duration}"
checkpoint_interval = {interval}
memory_per_node = "64MiB"
[[nodes]]
program = "{program}"
count = 2
root = {{ dir = "tree", host = [] }}
""", "root.toml", base_dir=base)
    path = base / "run.ccr"
    record_run(sc, [load_program(program)], path)
    return sc, path


@pytest.mark.kvm
def test_a_recorded_run_over_a_root_resumes_from_its_checkpoints_with_the_root_gone(
        tmp_path: Path) -> None:
    """Two nodes of a dynamically linked program over a directory root (plus its host
    libraries): node 0 rewrites a root file (copied up onto its own disk), node 1 still reads
    the root's; the checkpoints hold none of the root's libraries, and with the tree removed
    and the recording moved, every checkpoint resumes to the next one's digest and the
    recording replays."""
    sc, path = _record_motd(tmp_path, "1s", 150)
    shutil.rmtree(tmp_path / "tree")
    alone = tmp_path / "elsewhere"
    alone.mkdir()
    path = path.rename(alone / "root.ccr")
    libc = next(e.data for e in sc.nodes[0].root if e.path.endswith("/libc.so.6"))
    with RecordingReader(path) as reader:
        scenario, loaded_images, _ = load_run(reader)
        out = [b"".join(e.fields["data"] for e in reader.events(kinds=["output"], nodes=[n])
                        if e.fields["fd"] == 1) for n in (0, 1)]
        assert out == [b"from the root\nmine\n", b"from the root\nfrom the root\n"], out
        infos = reader.checkpoints
        assert len(infos) >= 3
        copies: list[int] = []
        for info, following in itertools.pairwise(infos):
            loaded = reader.load_checkpoint(info.index)
            assert not any(libc in blob for blob in loaded.blobs.values()), info.index
            assert sum(map(len, loaded.blobs.values())) < len(libc) // 4, info.index
            # loading and mapping the libraries copied nothing up: node 1 only reads, node 0
            # has copied up /srv/motd (and /srv above it) once it wrote
            copied = [sorted(d["ino"] for d in unpackb(loaded.blobs[f"node{n}.disk"], "disk")
                             ["inodes"] if d["ino"] >= LOWER_BASE) for n in (0, 1)]
            assert copied[1] == [] and len(copied[0]) in (0, 2), (info.index, copied)
            copies.append(len(copied[0]))
            taken: list = []
            sim = Simulation.resume(scenario, loaded_images, loaded.blobs, loaded.pages,
                                    on_checkpoint=taken.append)
            while not taken and sim.stop_reason is None:
                sim.step()
            assert taken and taken[0].digest == following.digest, info.index
        assert copies[0] == 0 and copies[-1] == 2, copies  # before and after the write
    assert replay_run(path).identical


@pytest.fixture(scope="module")
def root_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A recording of root_motd on two nodes over a root (the tree and its libraries)."""
    return _record_motd(tmp_path_factory.mktemp("root_run"), "700ms", 200)[1]


def _group_root(manifest: dict[str, Any]) -> str:
    return manifest["scenario"]["nodes"][0]["root"]


def _edit_root_files(manifest: dict[str, Any]) -> dict[str, Any]:
    tree = manifest["scenario"]["roots"][_group_root(manifest)]
    next(e for e in tree["files"] if "mode" in e)["mode"] = 0o777
    return manifest


def _contents_row(edit: Callable[[dict[str, Any]], None]) -> Callable[[dict], dict]:
    def apply(manifest: dict[str, Any]) -> dict[str, Any]:
        edit(next(iter(manifest["contents"].values())))
        return manifest
    return apply


def _other_content(row: dict[str, Any]) -> None:
    row["size"], row["xz"] = 5, lzma.compress(b"other", format=lzma.FORMAT_XZ)


def _root_of_disk(value: Any) -> Callable[[dict], dict]:
    def apply(part: dict[str, Any]) -> dict[str, Any]:
        part["root"] = value
        return part
    return apply


ROOT_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "a group naming a root the manifest lacks": (
        {"manifest": lambda m: {**m, "scenario": {**m["scenario"], "nodes": [
            {**m["scenario"]["nodes"][0], "root": "ab" * 32}]}}},
        'nodes[0].root: names no root of roots: "abab'),
    "a root edited under its digest": (
        {"manifest": _edit_root_files}, "is not a root whose digest is its key"),
    "a content that is not xz": (
        {"manifest": _contents_row(lambda row: row.update(xz=b"\xfd7zXZ\0not xz at all"))},
        "not a readable xz stream"),
    "a content cut short": (
        {"manifest": _contents_row(lambda row: row.update(xz=row["xz"][:-40]))},
        "xz stream is not exactly one stream of"),
    "a content of another size": (
        {"manifest": _contents_row(lambda row: row.update(size=row["size"] + 1))},
        "is not exactly one stream of"),
    "a content that is not its digest's": (
        {"manifest": _contents_row(_other_content)}, "does not match its SHA-256"),
    "a content row of the wrong type": (
        {"manifest": _contents_row(lambda row: row.update(xz=7))},
        "field "),
    "a checkpoint over another root": (
        {"blobs": edit_part("node0.disk", _root_of_disk("cd" * 32))},
        "part node0.disk: names root cdcdcdcdcdcd…, but the node group's is"),
    "a checkpoint with a malformed root reference": (
        {"blobs": edit_part("node1.disk", _root_of_disk(17))},
        "has a malformed root reference"),
}


@pytest.mark.kvm
@pytest.mark.parametrize("case", sorted(ROOT_CASES))
def test_a_corrupt_or_inconsistent_root_reference_is_a_one_line_refusal(
        root_run: Path, tmp_path: Path, case: str) -> None:
    edit, words = ROOT_CASES[case]
    path = rewrite(root_run, tmp_path / "hostile.ccr", **edit)
    with RecordingReader(path) as reader:
        infos = reader.checkpoints
        assert len(infos) > TARGET + 1
        event = infos[TARGET].seq  # state loads the edited checkpoint to show it
    command = (["state", str(path), "--event", str(event)] if "blobs" in edit
               else ["replay", str(path)])
    result = CliRunner().invoke(main, command)
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == 2, result.output
    assert words in result.output and str(path) in result.output, result.output
