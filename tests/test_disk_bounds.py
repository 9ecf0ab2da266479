"""The disk bounds host memory (issue 11, item 5): synced versions and unsynced write logs count
against its size, inodes are limited, and the accounting always matches a recount."""

from __future__ import annotations

import errno
import random

import pytest

from chaosreplay.kernel.fs.disk import (
    MIN_INODES,
    O_CREAT,
    O_RDWR,
    TORN_WRITE,
    FileSystem,
    FsError,
)

NEW = O_CREAT | O_RDWR


def _recount(fs: FileSystem) -> tuple[int, int]:
    used = sum(max(len(n.data), len(n.durable)) for n in fs.inodes.values())
    logged = sum(len(c) for n in fs.inodes.values() for _, c in n.ops if c is not None)
    return used, logged


def test_a_synced_version_keeps_its_space_until_the_next_fsync() -> None:
    """Truncating a synced file frees nothing until it is synced again: the synced bytes are
    what a crash would bring back, and they are held in host memory."""
    fs = FileSystem(0, 0, capacity_bytes=1000)
    a = fs.open("/data/a", NEW)
    fs.write(a, 0, b"a" * 600)
    fs.fsync(a)
    fs.truncate(a, 0)
    assert fs.used_bytes == 600
    b = fs.open("/data/b", NEW)
    assert fs.write(b, 0, b"b" * 600) == 400, "only the space the synced version left"
    with pytest.raises(FsError) as exc:
        fs.write(b, 400, b"b")
    assert exc.value.errno == errno.ENOSPC
    fs.fsync(a)
    assert fs.used_bytes == 400 and fs.write(b, 400, b"b" * 600) == 600


def test_overwrites_cost_no_space() -> None:
    """Rewriting bytes a file already has needs no space, full disk or not."""
    fs = FileSystem(0, 0, capacity_bytes=100)
    f = fs.open("/data/f", NEW)
    assert fs.write(f, 0, b"x" * 100) == 100
    for _ in range(50):
        assert fs.write(f, 10, b"y" * 80) == 80
    assert fs.used_bytes == 100


def test_inodes_are_limited_by_the_disk_size() -> None:
    """One inode per 16 KiB of disk (at least 64): creating past that is ENOSPC."""
    fs = FileSystem(0, 0, capacity_bytes=1 << 20)
    assert fs.max_inodes == MIN_INODES
    created, refused = 0, None
    for i in range(1000):  # bounded, so a disk without the limit fails instead of hanging
        try:
            fs.close(fs.open(f"/tmp/f{i}", NEW))
        except FsError as exc:
            refused = exc.errno
            break
        created += 1
    assert refused == errno.ENOSPC
    assert len(fs.inodes) == MIN_INODES and created == MIN_INODES - 3  # /, /data, /tmp
    fs.unlink("/tmp/f0")
    fs.close(fs.open("/tmp/again", NEW))
    assert FileSystem(0, 0, capacity_bytes=64 << 20).max_inodes == 4096


def test_unsynced_logs_are_compacted_once_they_outgrow_the_disk() -> None:
    """Rewriting a file in place without fsync used to keep every write in its log (host
    memory without bound); past the disk size each log becomes one write of the content,
    and a torn write at a crash still yields only sectors that were synced or written."""
    fs = FileSystem(0, 0, capacity_bytes=1 << 20)
    f = fs.open("/data/f", NEW)
    synced = b"\xee" * (256 << 10)
    fs.write(f, 0, synced)
    fs.fsync(f)
    fs.fsync(fs.open("/data", 0))
    chunk = bytes(range(256)) * 256  # 64 KiB
    for i in range(200):
        fs.write(f, (i % 4) * len(chunk), bytes([i]) * len(chunk))
        assert fs.log_bytes <= fs.capacity_bytes + len(chunk)
    assert (fs.used_bytes, fs.log_bytes) == _recount(fs)
    assert len(fs.inodes[f].ops) < 10, "200 writes were compacted"
    fs.set_fault("torn", TORN_WRITE, 1.0)
    fs.crash()
    survived = fs.read_file("/data/f")
    assert len(survived) == len(synced)
    for at in range(0, len(survived), 512):  # each sector: synced, or one the program wrote
        sector = survived[at:at + 512]
        written = {bytes([i]) * 512 for i in range(200) if i % 4 == at // len(chunk)}
        assert sector == synced[:512] or sector in written, at


def test_compaction_is_deterministic() -> None:
    """The same writes give the same state, compaction included."""
    def run() -> dict:
        fs = FileSystem(3, 1, capacity_bytes=1 << 16)
        f = fs.open("/data/f", NEW)
        for i in range(100):
            fs.write(f, i * 100 % 5000, bytes([i]) * 1000)
        return fs.snapshot()
    assert run() == run()


def test_accounting_matches_a_recount_after_random_operations() -> None:
    """used_bytes and log_bytes are kept incrementally; they always equal a recount."""
    rng = random.Random(11)
    fs = FileSystem(0, 0, capacity_bytes=20_000)
    fs.set_fault("torn", TORN_WRITE, 0.5)
    files: dict[str, int] = {}
    for step in range(3000):
        op = rng.randrange(7)
        name = f"/data/f{rng.randrange(6)}"
        try:
            if op == 0 or name not in files:
                files[name] = fs.open(name, NEW)
            elif op == 1:
                fs.write(files[name], rng.randrange(6000), bytes(rng.randrange(3000)))
            elif op == 2:
                fs.truncate(files[name], rng.randrange(6000))
            elif op == 3:
                fs.fsync(files[name])
            elif op == 4:
                fs.unlink(name)
                fs.close(files.pop(name))
            elif op == 5:
                fs.fsync(fs.open("/data", 0))
            elif step % 50 == 0:
                fs.crash()
                files.clear()
        except FsError:
            pass
        assert (fs.used_bytes, fs.log_bytes) == _recount(fs), step
        assert fs.used_bytes <= fs.capacity_bytes, step
