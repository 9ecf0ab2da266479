"""FileSystem: path operations and their errors, durability on crash, disk faults, checkpoints."""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chaosreplay.kernel.fs.disk import (
    CORRUPT_READ,
    DISK_FULL,
    O_APPEND,
    O_CREAT,
    O_DIRECTORY,
    O_EXCL,
    O_RDONLY,
    O_RDWR,
    O_TRUNC,
    O_WRONLY,
    READ_ERROR,
    ROOT_INO,
    TORN_WRITE,
    WRITE_ERROR,
    FileSystem,
    FsError,
)
from chaosreplay.kernel.fs.durability import torn_content

NEW = O_CREAT | O_RDWR


def raises(err: int, call: Callable[..., Any], *args: Any, **kwargs: Any) -> FsError:
    """Run call and check it fails with errno `err`; the error."""
    with pytest.raises(FsError) as info:
        call(*args, **kwargs)
    assert info.value.errno == err, (errno.errorcode[info.value.errno], errno.errorcode[err])
    return info.value


def names(fs: FileSystem, path: str) -> list[bytes]:
    return [n for n, _, _ in fs.listdir(fs.lookup(path))]


def make_file(fs: FileSystem, path: str, data: bytes, sync: bool = False) -> int:
    ino = fs.open(path, NEW)
    fs.write(ino, 0, data)
    if sync:
        fs.fsync(ino)
    return ino


def sync_dir(fs: FileSystem, path: str) -> None:
    ino = fs.open(path, O_RDONLY | O_DIRECTORY)
    fs.fsync(ino)
    fs.close(ino)


# -- the tree and path resolution ----------------------------------------------------------

def test_initial_tree_has_root_data_tmp_with_stable_inodes() -> None:
    """/, /data and /tmp exist as inodes 1, 2, 3; listings are sorted with . and .. first."""
    fs = FileSystem(0, 0)
    assert fs.listdir(ROOT_INO) == [(b".", 1, True), (b"..", 1, True), (b"data", 2, True),
                                    (b"tmp", 3, True)]
    assert (fs.lookup("/data"), fs.lookup("/tmp"), fs.lookup("/")) == (2, 3, 1)


def test_inode_numbers_follow_creation_order() -> None:
    fs = FileSystem(0, 0)
    inos = [fs.open(f"/data/f{i}", NEW) for i in range(3)] + [fs.mkdir("/data/d")]
    assert inos == [4, 5, 6, 7]
    fs.unlink("/data/f0")
    assert fs.open("/data/again", NEW) == 8, "inode numbers are never reused"


def test_path_resolution_handles_dot_dotdot_relative_and_trailing_slash() -> None:
    fs = FileSystem(0, 0)
    ino = make_file(fs, "/data/a", b"x")
    assert fs.lookup("/data/./a") == ino
    assert fs.lookup("/tmp/../data/a") == ino
    assert fs.lookup("/../../data//a") == ino
    assert fs.lookup("data/a") == ino, "relative paths start at /"
    assert fs.lookup("a", at=fs.lookup("/data")) == ino
    assert fs.lookup("/data/") == fs.lookup("/data")
    raises(errno.ENOTDIR, fs.lookup, "/data/a/")
    raises(errno.ENOTDIR, fs.lookup, "/data/a/b")
    raises(errno.ENOENT, fs.lookup, "/data/missing")
    raises(errno.ENOENT, fs.lookup, "")


def test_long_names_and_paths_fail_with_enametoolong() -> None:
    fs = FileSystem(0, 0)
    raises(errno.ENAMETOOLONG, fs.open, "/data/" + "n" * 256, NEW)
    fs.open("/data/" + "n" * 255, NEW)
    raises(errno.ENAMETOOLONG, fs.lookup, "/" + "a/" * 2048)
    deep = "/data" + "/." * 2045  # 4095 bytes: allowed
    assert len(deep) == 4095 and fs.lookup(deep) == fs.lookup("/data")


# -- open, read, write, truncate -----------------------------------------------------------

def test_open_flags_create_excl_trunc_and_directory_rules() -> None:
    fs = FileSystem(0, 0)
    raises(errno.ENOENT, fs.open, "/data/x", O_RDONLY)
    ino = fs.open("/data/x", O_CREAT | O_WRONLY | 0o2000000 | 0o400000 | 0o100000)
    fs.write(ino, 0, b"hello")
    raises(errno.EEXIST, fs.open, "/data/x", O_CREAT | O_EXCL | O_WRONLY)
    assert fs.open("/data/x", O_CREAT | O_RDWR) == ino
    assert fs.size(ino) == 5
    fs.open("/data/x", O_RDONLY | O_TRUNC)
    assert fs.size(ino) == 5, "O_TRUNC needs write access"
    fs.open("/data/x", O_WRONLY | O_TRUNC)
    assert fs.size(ino) == 0
    raises(errno.ENOTDIR, fs.open, "/data/x", O_RDONLY | O_DIRECTORY)
    raises(errno.EISDIR, fs.open, "/data", O_WRONLY)
    raises(errno.EISDIR, fs.open, "/data", O_CREAT | O_RDONLY)
    raises(errno.EISDIR, fs.open, "/data/new/", O_CREAT | O_WRONLY)
    raises(errno.EINVAL, fs.open, "/data/x", 3)
    raises(errno.ENOENT, fs.open, "/nodir/x", NEW)
    assert fs.open("/data", O_RDONLY | O_DIRECTORY) == fs.lookup("/data")


def test_read_and_write_at_offsets_fill_holes_with_zeros() -> None:
    fs = FileSystem(0, 0)
    ino = fs.open("/tmp/f", NEW)
    assert fs.write(ino, 0, b"abcdef") == 6
    assert fs.write(ino, 2, b"XY") == 2
    assert fs.read(ino, 0, 100) == (b"abXYef", None)
    assert fs.write(ino, 10, b"z") == 1
    assert fs.read(ino, 4, 100) == (b"ef\0\0\0\0z", None)
    assert fs.read(ino, 50, 10) == (b"", None)
    assert fs.write(ino, 0, b"") == 0
    raises(errno.EISDIR, fs.read, fs.lookup("/tmp"), 0, 1)
    raises(errno.EISDIR, fs.write, fs.lookup("/tmp"), 0, b"x")
    assert O_APPEND  # appending is the syscall layer's offset choice


def test_truncate_shrinks_and_grows_with_zeros() -> None:
    fs = FileSystem(0, 0)
    ino = make_file(fs, "/tmp/f", b"abcdef")
    fs.truncate(ino, 3)
    assert fs.read_file("/tmp/f") == b"abc"
    fs.truncate(ino, 5)
    assert fs.read_file("/tmp/f") == b"abc\0\0"
    raises(errno.EINVAL, fs.truncate, ino, -1)
    assert fs.used_bytes == 5


def test_stat_reports_type_size_blocks_links_and_times() -> None:
    fs = FileSystem(0, 0)
    ino = fs.open("/data/f", NEW, 0o640, now_ns=7)
    fs.write(ino, 0, b"x" * 513, now_ns=9)
    st = fs.stat(ino)
    assert (st.ino, oct(st.mode), st.nlink, st.size, st.blocks) == (ino, "0o100640", 1, 513, 2)
    assert (st.mtime_ns, st.ctime_ns, st.is_dir) == (9, 9, False)
    fs.mkdir("/data/sub", now_ns=11)
    d = fs.stat_path("/data")
    assert d.is_dir and d.nlink == 3 and d.mtime_ns == 11
    fs.unlink("/data/f")
    assert fs.stat(ino).nlink == 0, "an open unlinked file is still readable"
    assert fs.read(ino, 0, 1) == (b"x", None)


def test_unlinked_open_file_lives_until_closed() -> None:
    fs = FileSystem(0, 0)
    ino = make_file(fs, "/tmp/f", b"data")
    fs.unlink("/tmp/f")
    assert fs.used_bytes == 4
    fs.close(ino)
    assert fs.used_bytes == 0 and ino not in fs.inodes
    raises(errno.EBADF, fs.read, ino, 0, 1)


# -- directory operations ------------------------------------------------------------------

def test_mkdir_rmdir_unlink_errors() -> None:
    fs = FileSystem(0, 0)
    fs.mkdir("/data/d")
    raises(errno.EEXIST, fs.mkdir, "/data/d")
    raises(errno.EEXIST, fs.mkdir, "/")
    raises(errno.ENOENT, fs.mkdir, "/data/x/y")
    make_file(fs, "/data/d/f", b"")
    raises(errno.ENOTDIR, fs.mkdir, "/data/d/f/g")
    raises(errno.ENOTEMPTY, fs.rmdir, "/data/d")
    raises(errno.EISDIR, fs.unlink, "/data/d")
    raises(errno.ENOTDIR, fs.rmdir, "/data/d/f")
    raises(errno.ENOTDIR, fs.unlink, "/data/d/f/")
    raises(errno.ENOENT, fs.unlink, "/data/d/nothing")
    raises(errno.EINVAL, fs.rmdir, "/data/d/.")
    raises(errno.ENOTEMPTY, fs.rmdir, "/data/d/..")
    raises(errno.EBUSY, fs.rmdir, "/")
    fs.unlink("/data/d/f")
    fs.rmdir("/data/d")
    assert names(fs, "/data") == [b".", b".."]


def test_creating_inside_a_removed_directory_fails() -> None:
    fs = FileSystem(0, 0)
    fs.mkdir("/tmp/d")
    d = fs.open("/tmp/d", O_RDONLY | O_DIRECTORY)
    fs.rmdir("/tmp/d")
    raises(errno.ENOENT, fs.open, "f", NEW, at=d)


def test_rename_replaces_files_atomically_and_follows_linux_rules() -> None:
    fs = FileSystem(0, 0)
    old = make_file(fs, "/data/a", b"new")
    replaced = make_file(fs, "/data/b", b"old")
    fs.close(replaced)
    fs.rename("/data/a", "/data/b")
    assert names(fs, "/data") == [b".", b"..", b"b"]
    assert fs.lookup("/data/b") == old and replaced not in fs.inodes
    assert fs.read_file("/data/b") == b"new"
    fs.mkdir("/data/d")
    fs.mkdir("/data/e")
    make_file(fs, "/data/e/f", b"")
    raises(errno.EISDIR, fs.rename, "/data/b", "/data/d")
    raises(errno.ENOTDIR, fs.rename, "/data/d", "/data/b")
    raises(errno.ENOTEMPTY, fs.rename, "/data/d", "/data/e")
    raises(errno.EINVAL, fs.rename, "/data/d", "/data/d/sub")
    raises(errno.ENOENT, fs.rename, "/data/none", "/data/z")
    raises(errno.ENOTDIR, fs.rename, "/data/b/", "/data/z")
    fs.rename("/data/b", "/data/b")
    fs.rename("/data/e", "/tmp/e")
    assert fs.lookup("/tmp/e/f") and fs.lookup("/tmp/e/..") == fs.lookup("/tmp")
    fs.rename("/data/d", "/tmp/e2")
    assert names(fs, "/data") == [b".", b"..", b"b"]


# -- durability ----------------------------------------------------------------------------

def test_unsynced_data_is_lost_on_crash() -> None:
    fs = FileSystem(0, 0)
    ino = make_file(fs, "/data/f", b"v1", sync=True)
    sync_dir(fs, "/data")
    fs.write(ino, 0, b"v2-longer")
    fs.crash()
    assert fs.read_file("/data/f") == b"v1"


def test_fsynced_content_survives_once_the_directory_is_synced() -> None:
    fs = FileSystem(0, 0)
    make_file(fs, "/data/f", b"kept", sync=True)
    sync_dir(fs, "/data")
    fs.crash()
    assert fs.read_file("/data/f") == b"kept"
    assert fs.stat_path("/data/f").nlink == 1


def test_new_file_without_directory_fsync_disappears_even_if_fsynced() -> None:
    fs = FileSystem(0, 0)
    make_file(fs, "/data/f", b"gone", sync=True)
    fs.crash()
    raises(errno.ENOENT, fs.lookup, "/data/f")
    assert fs.used_bytes == 0 and sorted(fs.inodes) == [1, 2, 3]


def test_directory_fsync_without_file_fsync_keeps_an_empty_file() -> None:
    fs = FileSystem(0, 0)
    make_file(fs, "/data/f", b"unsynced")
    sync_dir(fs, "/data")
    fs.crash()
    assert fs.read_file("/data/f") == b""


def test_rename_is_durable_only_after_the_directory_fsync() -> None:
    fs = FileSystem(0, 0)
    make_file(fs, "/data/tmp", b"state-2", sync=True)
    make_file(fs, "/data/state", b"state-1", sync=True)
    sync_dir(fs, "/data")
    fs.rename("/data/tmp", "/data/state")
    snap = fs.snapshot()
    fs.crash()
    assert fs.read_file("/data/state") == b"state-1"
    assert fs.read_file("/data/tmp") == b"state-2"
    fs.restore(snap)
    sync_dir(fs, "/data")
    fs.crash()
    assert fs.read_file("/data/state") == b"state-2"
    raises(errno.ENOENT, fs.lookup, "/data/tmp")


def test_unlink_and_mkdir_are_durable_only_after_the_directory_fsync() -> None:
    fs = FileSystem(0, 0)
    make_file(fs, "/data/f", b"x", sync=True)
    sync_dir(fs, "/data")
    fs.unlink("/data/f")
    fs.mkdir("/data/d")
    fs.crash()
    assert names(fs, "/data") == [b".", b"..", b"f"]
    fs.unlink("/data/f")
    fs.mkdir("/data/d")
    sync_dir(fs, "/data")
    fs.crash()
    assert names(fs, "/data") == [b".", b"..", b"d"]


def test_a_journal_commits_every_earlier_name_at_any_fsync() -> None:
    """durability = "journal" (ext4's one journal): the fsync of a file in a directory
    made without a sync keeps the directory, the file and a rename done elsewhere before
    it; an unsynced file's content is still lost, and a name made after it is too."""
    fs = FileSystem(0, 0, journal=True)
    fs.mkdir("/data/aof")
    make_file(fs, "/data/other", b"not synced")
    make_file(fs, "/tmp/a", b"renamed", sync=True)
    fs.rename("/tmp/a", "/tmp/b")
    make_file(fs, "/data/aof/log", b"synced", sync=True)
    make_file(fs, "/data/late", b"after")
    fs.crash()
    assert fs.read_file("/data/aof/log") == b"synced"
    assert fs.read_file("/data/other") == b""  # its name was committed, its data was not
    assert fs.read_file("/tmp/b") == b"renamed"
    raises(errno.ENOENT, fs.lookup, "/tmp/a")
    raises(errno.ENOENT, fs.lookup, "/data/late")
    strict = FileSystem(0, 0)  # the default: the same steps lose the directory
    strict.mkdir("/data/aof")
    make_file(strict, "/data/aof/log", b"synced", sync=True)
    strict.crash()
    raises(errno.ENOENT, strict.lookup, "/data/aof")


def test_fdatasync_keeps_content_but_not_the_modification_time() -> None:
    fs = FileSystem(0, 0)
    ino = fs.open("/data/f", NEW, now_ns=1)
    fs.fsync(ino)
    sync_dir(fs, "/data")
    fs.write(ino, 0, b"abc", now_ns=50)
    fs.fsync(ino, data_only=True)
    fs.crash()
    st = fs.stat_path("/data/f")
    assert (fs.read_file("/data/f"), st.mtime_ns) == (b"abc", 1)


def test_crash_drops_open_holds_and_orphans() -> None:
    fs = FileSystem(0, 0)
    ino = make_file(fs, "/data/f", b"x", sync=True)
    sync_dir(fs, "/data")
    fs.unlink("/data/f")
    sync_dir(fs, "/data")
    assert ino in fs.inodes, "still open"
    fs.crash()
    assert ino not in fs.inodes and fs.used_bytes == 0


# -- disk faults ---------------------------------------------------------------------------

def test_read_error_fails_reads_with_eio() -> None:
    fs = FileSystem(0, 0)
    ino = make_file(fs, "/data/f", b"abc")
    fs.set_fault("f1", READ_ERROR)
    err = raises(errno.EIO, fs.read, ino, 0, 3)
    assert err.fault == READ_ERROR
    fs.clear_fault("f1")
    assert fs.read(ino, 0, 3) == (b"abc", None)


def test_write_error_fails_writes_and_fsync_and_keeps_nothing() -> None:
    fs = FileSystem(0, 0)
    ino = make_file(fs, "/data/f", b"abc")
    fs.set_fault("w", WRITE_ERROR, 1.0)
    assert raises(errno.EIO, fs.write, ino, 0, b"zzz").fault == WRITE_ERROR
    raises(errno.EIO, fs.fsync, ino)
    assert fs.read_file("/data/f") == b"abc"
    assert fs.inodes[ino].durable == b"", "a failed fsync makes nothing durable"


def test_fault_probability_is_the_max_of_overlapping_layers() -> None:
    fs = FileSystem(3, 0)
    ino = make_file(fs, "/data/f", b"abc")
    fs.set_fault("low", READ_ERROR, 0.1)
    fs.set_fault("high", READ_ERROR, 0.6)
    fs.set_fault("other", WRITE_ERROR, 0.9)
    assert fs.fault_probability(READ_ERROR) == 0.6
    assert fs.active_faults() == [("high", READ_ERROR, 0.6), ("low", READ_ERROR, 0.1),
                                  ("other", WRITE_ERROR, 0.9)]
    failures = 0
    for _ in range(400):
        try:
            fs.read(ino, 0, 3)
        except FsError:
            failures += 1
    assert 200 < failures < 280, failures
    fs.clear_fault("high")
    assert fs.fault_probability(READ_ERROR) == 0.1
    with pytest.raises(ValueError):
        fs.set_fault("x", "disk_melted")
    with pytest.raises(ValueError):
        fs.set_fault("x", READ_ERROR, 1.5)


def test_disk_full_fails_growth_but_allows_overwrites() -> None:
    fs = FileSystem(0, 0)
    ino = make_file(fs, "/data/f", b"abcd")
    fs.set_fault("full", DISK_FULL, 0.0)
    assert raises(errno.ENOSPC, fs.write, ino, 4, b"e").fault == DISK_FULL
    assert fs.write(ino, 2, b"XYZ") == 2, "a write cut short where the space ends"
    raises(errno.ENOSPC, fs.truncate, ino, 10)
    assert fs.read_file("/data/f") == b"abXY"
    fs.clear_fault("full")
    assert fs.write(ino, 4, b"e") == 1


def test_capacity_limits_file_data_with_enospc() -> None:
    fs = FileSystem(0, 0, capacity_bytes=1000)
    ino = fs.open("/data/f", NEW)
    assert fs.write(ino, 0, b"a" * 600) == 600
    other = fs.open("/data/g", NEW)
    assert fs.write(other, 0, b"b" * 600) == 400
    err = raises(errno.ENOSPC, fs.write, other, 400, b"b")
    assert err.fault is None
    raises(errno.ENOSPC, fs.write, fs.open("/data/h", NEW), 5000, b"x")
    fs.truncate(ino, 0)
    assert fs.write(other, 400, b"b" * 600) == 600


def test_corrupt_read_flips_one_bit_of_the_returned_data_only() -> None:
    fs = FileSystem(5, 0)
    payload = bytes(range(64))
    ino = make_file(fs, "/data/f", payload)
    fs.set_fault("c", CORRUPT_READ)
    data, fault = fs.read(ino, 0, 64)
    assert fault == CORRUPT_READ
    diff = sum(bin(a ^ b).count("1") for a, b in zip(data, payload, strict=True))
    assert diff == 1
    assert fs.read_file("/data/f") == payload
    assert fs.read(ino, 64, 10) == (b"", None), "an empty read has nothing to corrupt"


def torn_after_crash(seed: int) -> bytes:
    fs = FileSystem(seed, 1)
    ino = make_file(fs, "/data/log", b"D" * 1000, sync=True)
    sync_dir(fs, "/data")
    for i in range(6):
        fs.write(ino, 1000 + i * 700, bytes([65 + i]) * 700)
    fs.set_fault("t", TORN_WRITE, 1.0)
    fs.crash()
    return fs.read_file("/data/log")


def test_torn_writes_keep_whole_ops_then_a_sector_aligned_prefix() -> None:
    """Every torn result is the durable content plus k whole ops plus a sector prefix."""
    results = {torn_after_crash(seed) for seed in range(40)}
    assert len(results) > 5, "torn results vary with the seed"
    for data in results:
        assert data[:1000] == b"D" * 1000
        assert len(data) == 1000 or len(data) % 512 == 0 or (len(data) - 1000) % 700 == 0
        assert len(data) < 1000 + 6 * 700, "the last op is never complete"
        for i, byte in enumerate(data[1000:]):
            assert byte == 65 + i // 700


def test_torn_writes_are_deterministic_for_a_seed_and_differ_across_seeds() -> None:
    assert torn_after_crash(7) == torn_after_crash(7)
    assert len({torn_after_crash(s) for s in (1, 2, 3, 4, 5, 6)}) > 1


def test_without_torn_write_fault_unsynced_writes_are_all_lost() -> None:
    fs = FileSystem(0, 0)
    ino = make_file(fs, "/data/f", b"base", sync=True)
    sync_dir(fs, "/data")
    fs.write(ino, 4, b"more")
    position = fs.stream.position
    fs.crash()
    assert fs.read_file("/data/f") == b"base" and fs.stream.position == position


def test_torn_content_handles_truncates_and_single_ops() -> None:
    class Fixed:
        def __init__(self, *values: int) -> None:
            self.values = list(values)

        def below(self, n: int) -> int:
            return min(self.values.pop(0), n - 1)

    ops: list[tuple[int, bytes | None]] = [(0, b"a" * 1100), (2, None), (0, b"b" * 10)]
    assert torn_content(b"", ops, Fixed(1, 0)) == b"a" * 1100  # type: ignore[arg-type]
    assert torn_content(b"", ops, Fixed(2, 1)) == b"aa"  # type: ignore[arg-type]
    assert torn_content(b"", ops, Fixed(0, 2)) == b"a" * 1024  # type: ignore[arg-type]


# -- checkpoints ---------------------------------------------------------------------------

def busy_fs(seed: int) -> FileSystem:
    fs = FileSystem(seed, 2, capacity_bytes=1 << 20)
    make_file(fs, "/data/a", b"alpha", sync=True)
    sync_dir(fs, "/data")
    fs.mkdir("/data/d")
    b = make_file(fs, "/data/d/b", b"beta")
    fs.write(b, 2, b"TA")
    fs.truncate(b, 3)
    fs.set_fault("r", CORRUPT_READ, 0.5)
    fs.set_fault("t", TORN_WRITE, 0.7)
    fs.read(b, 0, 3)
    return fs


def test_snapshot_is_plain_msgpack_data_and_round_trips() -> None:
    fs = busy_fs(4)
    snap = fs.snapshot()
    assert msgpack.unpackb(msgpack.packb(snap), raw=False) == snap
    clone = FileSystem.from_snapshot(msgpack.unpackb(msgpack.packb(snap), raw=False))
    assert clone.snapshot() == snap
    assert busy_fs(4).snapshot() == snap, "identical states give identical snapshots"
    with pytest.raises(ValueError):
        FileSystem.from_snapshot({**snap, "version": 99})


OPS = st.lists(st.tuples(st.sampled_from(["write", "read", "fsync", "trunc", "crash", "sync"]),
                         st.integers(0, 3000), st.binary(max_size=700)), max_size=25)


@settings(max_examples=40, deadline=None)
@given(OPS)
def test_restore_gives_the_identical_continuation(ops: list[tuple[str, int, bytes]]) -> None:
    """After restore, any sequence of operations gives the same results as the original."""

    def play(fs: FileSystem) -> list[Any]:
        out: list[Any] = []
        for op, n, data in ops:
            try:
                ino = fs.open("/data/a", O_CREAT | O_RDWR)
                if op == "write":
                    out.append(fs.write(ino, n, data))
                elif op == "read":
                    out.append(fs.read(ino, n, 100))
                elif op == "fsync":
                    fs.fsync(ino)
                elif op == "trunc":
                    fs.truncate(ino, n)
                elif op == "sync":
                    sync_dir(fs, "/data")
                else:
                    fs.crash()
                    out.append(fs.read_file("/data/a") if b"a" in names(fs, "/data") else 0)
            except FsError as e:
                out.append(e.errno)
        out.append(fs.snapshot())
        return out

    original = busy_fs(9)
    original.set_fault("w", WRITE_ERROR, 0.2)
    snap = original.snapshot()
    assert play(original) == play(FileSystem.from_snapshot(snap))


def test_disk_fault_names_mirror_the_simulations_fault_kinds() -> None:
    """The disk names its faults itself (the kernel never imports sim); they must agree."""
    from chaosreplay.kernel.fs import disk
    from chaosreplay.sim.faults.model import FaultKind

    assert disk.READ_ERROR == FaultKind.DISK_READ_ERROR
    assert disk.WRITE_ERROR == FaultKind.DISK_WRITE_ERROR
    assert disk.DISK_FULL == FaultKind.DISK_FULL
    assert disk.TORN_WRITE == FaultKind.TORN_WRITE
    assert disk.CORRUPT_READ == FaultKind.DISK_CORRUPT_READ
