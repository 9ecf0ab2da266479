"""The disk's hard links, whole-disk sync and extended attributes under the durability
model (kernel.fs.disk): what survives crash() and what a snapshot carries."""

from __future__ import annotations

import errno

import pytest

from chaosreplay.kernel.fs.disk import O_CREAT, O_RDWR, WRITE_ERROR, FileSystem, FsError
from chaosreplay.kernel.state_check import check_disk_state


def new_file(fs: FileSystem, path: str, data: bytes = b"x") -> int:
    ino = fs.open(path, O_CREAT | O_RDWR)
    fs.write(ino, 0, data)
    return ino


def test_a_hard_link_is_a_second_name_durable_once_its_directory_is_synced() -> None:
    fs = FileSystem(1, 0)
    ino = new_file(fs, "/data/a", b"payload")
    fs.fsync(ino)
    fs.fsync(fs.lookup("/data"))
    fs.link(ino, "/data/b")
    assert fs.lookup("/data/b") == ino and fs.stat(ino).nlink == 2
    fs.crash()
    assert fs.stat_path("/data/a").nlink == 1
    with pytest.raises(FsError):
        fs.lookup("/data/b")  # the new entry was never made durable
    ino = fs.lookup("/data/a")
    fs.link(ino, "/data/b")
    fs.fsync(fs.lookup("/data"))
    fs.unlink("/data/a")
    fs.crash()
    assert fs.read_file("/data/b") == b"payload" and fs.stat_path("/data/b").nlink == 2


def test_links_refuse_directories_existing_names_and_files_without_a_name() -> None:
    fs = FileSystem(1, 0)
    ino = new_file(fs, "/data/a")
    with pytest.raises(FsError) as e:
        fs.link(fs.lookup("/data"), "/data/d")
    assert e.value.errno == errno.EPERM
    with pytest.raises(FsError) as e:
        fs.link(ino, "/data/a")
    assert e.value.errno == errno.EEXIST
    fs.unlink("/data/a")
    with pytest.raises(FsError) as e:
        fs.link(ino, "/data/again")
    assert e.value.errno == errno.ENOENT


def test_sync_all_makes_every_file_and_entry_durable() -> None:
    fs = FileSystem(1, 0)
    fs.mkdir("/data/sub")
    new_file(fs, "/data/sub/f", b"kept")
    fs.sync_all()
    new_file(fs, "/data/sub/g", b"lost")
    fs.crash()
    assert fs.read_file("/data/sub/f") == b"kept"
    with pytest.raises(FsError):
        fs.lookup("/data/sub/g")


def test_a_failed_sync_all_makes_nothing_durable() -> None:
    fs = FileSystem(1, 0)
    new_file(fs, "/data/f", b"data")
    fs.set_fault("w", WRITE_ERROR, 1.0)
    with pytest.raises(FsError) as e:
        fs.sync_all()
    assert e.value.errno == errno.EIO
    fs.clear_fault("w")
    fs.crash()
    with pytest.raises(FsError):
        fs.lookup("/data/f")


def test_extended_attributes_are_durable_on_fsync_and_ride_in_snapshots() -> None:
    fs = FileSystem(1, 0)
    ino = new_file(fs, "/data/f")
    fs.fsync(ino)
    fs.fsync(fs.lookup("/data"))
    fs.set_xattr(ino, b"user.a", b"1", create=True, replace=False)
    fs.fsync(ino)
    fs.set_xattr(ino, b"user.b", b"2", create=False, replace=False)
    snap = fs.snapshot()
    check_disk_state(snap, "disk")
    copy = FileSystem.from_snapshot(snap)
    assert copy.list_xattrs(ino) == [b"user.a", b"user.b"]
    fs.crash()
    assert fs.list_xattrs(ino) == [b"user.a"] and fs.get_xattr(ino, b"user.a") == b"1"
    with pytest.raises(FsError) as e:
        fs.get_xattr(ino, b"user.b")
    assert e.value.errno == errno.ENODATA


def test_one_inode_holds_at_most_one_block_of_extended_attributes() -> None:
    fs = FileSystem(1, 0)
    ino = new_file(fs, "/data/f")
    fs.set_xattr(ino, b"user.big", bytes(3000), create=False, replace=False)
    with pytest.raises(FsError) as e:
        fs.set_xattr(ino, b"user.more", bytes(1500), create=False, replace=False)
    assert e.value.errno == errno.ENOSPC
    fs.set_xattr(ino, b"user.big", bytes(4000), create=False, replace=True)  # replaces itself


def test_a_snapshot_from_before_extended_attributes_still_loads() -> None:
    fs = FileSystem(1, 0)
    new_file(fs, "/data/f")
    snap = fs.snapshot()
    for node in snap["inodes"]:
        del node["xattrs"], node["durable_xattrs"], node["special"]
    check_disk_state(snap, "disk")
    assert FileSystem.from_snapshot(snap).read_file("/data/f") == b"x"


def test_mknod_makes_fifo_and_socket_nodes_that_snapshots_and_crashes_keep() -> None:
    fs = FileSystem(1, 0)
    fifo = fs.mknod("/data/fifo", 0o010000, 0o644)
    sock = fs.mknod("/data/sock", 0o140000, 0o600)
    assert fs.stat(fifo).mode == 0o010644 and fs.stat(sock).mode == 0o140600
    with pytest.raises(FsError) as e:
        fs.mknod("/data/fifo", 0o010000, 0o644)
    assert e.value.errno == errno.EEXIST
    with pytest.raises(FsError) as e:
        fs.mknod("/data/dev", 0o020000, 0o644)
    assert e.value.errno == errno.EINVAL
    snap = fs.snapshot()
    check_disk_state(snap, "disk")
    assert FileSystem.from_snapshot(snap).special(fifo) == 0o010000
    fs.fsync(fs.lookup("/data"))
    fs.crash()
    assert fs.stat_path("/data/fifo").mode == 0o010644
