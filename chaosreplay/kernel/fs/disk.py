"""A node's disk: an in-memory POSIX-like file system with crash semantics and disk faults.

The tree holds directories, regular files (one or more names each: hard links), symbolic
links and mknod's FIFO and socket nodes, starting with `/`, `/data` and `/tmp`.
Inode numbers are handed out in creation order and never reused, so the same operations
give the same numbers.

Durability model (strict POSIX, the weakest any real file system promises):

- A file's *content* (its bytes and size) becomes durable on fsync or fdatasync of that
  file; fsync also makes its modification time durable.
- *Directory entries* (create, unlink, rename, mkdir, rmdir) become durable only on fsync
  of the parent directory (a directory fd opened O_RDONLY|O_DIRECTORY). A new file whose
  directory was never fsynced disappears on a crash even if the file itself was fsynced;
  a rename across directories is durable in each directory separately, so a crash can
  leave the file under both names or under neither, as fsync ordering allows.
- `sync_all()` (sync, syncfs) makes every file's content and every directory's entries
  durable at once. Extended attributes become durable with an fsync of their inode.
- `crash()` keeps exactly what is durable: inodes reachable from `/` over durable entries,
  each with its durable content. Everything else is lost, as are open handles.
- With a `torn_write` fault active, a file's unsynced writes may partially survive: every
  file keeps the writes (and truncates) issued since its last fsync as an ordered log; at
  the crash each such file is torn with the fault's probability: a seeded number of the
  logged ops are applied whole on top of the durable content, then a 512-byte-sector-
  aligned prefix of the next one (see `vfs_crash.torn_content`).
- A failed fsync (disk_write_error) makes nothing durable; the unsynced log stays.

Disk faults are layered by fault id, like the network fabric's link parameters; for each
kind the highest probability among its active faults applies:

- `disk_read_error`: read fails with EIO (one chance() draw per read);
- `disk_write_error`: write and fsync fail with EIO (one draw per call);
- `disk_full`: a write or truncate that needs more space fails with ENOSPC (no draw);
- `disk_corrupt_read`: a read that returns data has one seeded bit flipped in what it
  returns (one chance() draw, then below(bits)); the stored data stays intact;
- `torn_write`: see above; drawn only at `crash()`.

Space: every live file takes the larger of its current and its durable size against
`capacity_bytes` (the blocks of the last synced version stay allocated until the next
fsync); a write that does not fit is cut short where the space ends, and fails with ENOSPC
when not one byte fits. Each inode also takes one of `capacity_bytes // BYTES_PER_INODE`
inodes (ext4's default ratio); creating a file past that is ENOSPC. The unsynced write
logs are bounded too: when they hold more than `capacity_bytes` in all, each file's log is
compacted to one write of its current content (then a truncate to its size): a torn write
then tears that one write (a coarser tear than the full log would give: a sector-aligned
prefix of the current content over the durable one). So the host holds at most about three
times the disk size, whatever the guest writes.

Every random draw comes from DeterministicStream(seed, "disk", node) in a fixed order, and
everything that iterates a mapping sorts it first.

A root (kernel/fs/root_layer.py) is a read-only lower layer under the disk, merged as
overlayfs merges: the disk's directories are the upper layer; a name the upper directory
does not hold falls through to the root's directory of the same inode (the upper's `/`
lies over the root's `/`, and a copied-up directory keeps its root inode number). The
root's inodes are read-only views: reading, mapping, stat and readdir use them as they
are. Anything that changes one (open for writing, truncate, chmod, chown, utimes, xattrs,
link, rename, creating a name in a root directory) first copies it up: a disk inode of the
same number with the same content, metadata and name, its parents copied up before it.
A copy-up changes nothing a crash could show, so the copy and its name are durable at
once (with the root's content); what is written to it afterwards follows the rules above.
Removing a root entry leaves a whiteout (WHITEOUT as the entry's inode), durable as any
removal is; a directory made over a whiteout hides the root's directory there (it is
opaque: a new inode, with nothing merged under it). Renaming a root directory is EXDEV,
as on overlayfs without redirect_dir (`mv` then copies). The root takes none of the disk's
space or inodes; a copy-up takes what its content needs. Snapshots hold the upper layer
only: the root's digest, whiteouts, and for copies whose durable content is still the
root's, a reference instead of the bytes.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.fs.durability import WHITEOUT, Inode, WriteOp, crash_tree
from chaosreplay.rng import DeterministicStream

if TYPE_CHECKING:  # root_layer imports install, which imports this module
    from chaosreplay.kernel.fs.root_layer import RootLayer

SNAPSHOT_VERSION = 1
ROOT_INO = 1
PATH_MAX = 4096  # including the terminating NUL
NAME_MAX = 255
S_IFDIR, S_IFREG, S_IFLNK = 0o040000, 0o100000, 0o120000
S_IFIFO, S_IFSOCK = 0o010000, 0o140000
O_ACCMODE, O_RDONLY, O_WRONLY, O_RDWR = 0o3, 0o0, 0o1, 0o2
O_CREAT, O_EXCL, O_TRUNC, O_APPEND = 0o100, 0o200, 0o1000, 0o2000
O_DIRECTORY, O_TMPFILE = 0o200000, 0o20200000
DIR_SIZE = 4096
BYTES_PER_INODE = 16384  # mke2fs's default inode_ratio
XATTR_BLOCK, XATTR_ENTRY = 4096 - 32, 20  # an ext4 xattr block less its header; entry header
MIN_INODES = 64

# The disk faults this file system carries out, named as the simulation's fault kinds name
# them (the kernel does not import the simulation; test_vfs checks the two agree).
READ_ERROR = "disk_read_error"
WRITE_ERROR = "disk_write_error"
DISK_FULL = "disk_full"
TORN_WRITE = "torn_write"
CORRUPT_READ = "disk_corrupt_read"
FAULT_KINDS = (READ_ERROR, WRITE_ERROR, DISK_FULL, TORN_WRITE, CORRUPT_READ)

Path = str | bytes


class FsError(Exception):
    """A file-system call failed with a Linux errno; `fault` names the disk fault that hit."""

    def __init__(self, err: int, fault: str | None = None) -> None:
        super().__init__(f"{errno.errorcode.get(err, err)}" + (f" ({fault})" if fault else ""))
        self.errno = err
        self.fault = fault


@dataclass(frozen=True, slots=True)
class Stat:
    """What stat reports about an inode (times are the guest's realtime clock, in ns)."""

    ino: int
    mode: int
    nlink: int
    size: int
    blocks: int
    mtime_ns: int
    ctime_ns: int
    atime_ns: int = 0
    uid: int = 0
    gid: int = 0

    @property
    def is_dir(self) -> bool:
        return self.mode & S_IFDIR == S_IFDIR


def _log_size(node: Inode) -> int:
    """Bytes of data in a file's unsynced write log."""
    return sum(len(chunk) for _, chunk in node.ops if chunk is not None)


def _encode(path: Path) -> bytes:
    return path.encode() if isinstance(path, str) else bytes(path)


class FileSystem:
    """One node's disk (see the module docstring for the durability and fault model)."""

    def __init__(self, seed: int, node: int, capacity_bytes: int = 64 << 20,
                 journal: bool = False, root: RootLayer | None = None) -> None:
        self.seed = seed
        self.node = node
        self.capacity_bytes = capacity_bytes
        # The durability of names (a scenario's disk.durability, configuration: not state).
        # False, "posix": a directory's entries are durable only when it is fsynced. True,
        # "journal": any fsync also commits every name created, removed or renamed before
        # it, as ext4's one journal does; file contents still need their own fsync.
        self.journal = journal
        self.stream = DeterministicStream(seed, "disk", node)
        self.faults: dict[str, tuple[str, float]] = {}
        self.inodes: dict[int, Inode] = {}
        self.next_ino = ROOT_INO
        self.used_bytes = 0  # sum of every inode's footprint (see _footprint)
        self.log_bytes = 0  # bytes held by every file's unsynced write log
        # Bumped by every content change: shared file mappings (kernel/mm/page_cache.py)
        # look at it to learn whether a call changed a file under them. Never saved: it is
        # only compared across one system call.
        self.changes = 0
        # The read-only root under this disk (configuration, like the journal: a snapshot
        # names its digest), and how many opens hold each of its inodes not copied up.
        self.lower = root
        self.lower_opens: dict[int, int] = {}
        top = self._new_inode(True, 0o755, 0)
        top.links = top.durable_links = 1
        for name in (b"data", b"tmp"):
            if root is not None and self._child(top, name) is not None:
                continue  # the root's own directory shows through
            child = self._new_inode(True, 0o1777 if name == b"tmp" else 0o755, 0)
            self._link(top, name, child)
        self._sync_dir(top)

    # -- faults ----------------------------------------------------------------------------
    def set_fault(self, fault_id: str, kind: str, probability: float = 1.0) -> None:
        """Add (or replace) the fault layer `fault_id`."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown disk fault kind {kind!r} (expected one of {FAULT_KINDS})")
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {probability!r}")
        self.faults[fault_id] = (kind, float(probability))

    def clear_fault(self, fault_id: str) -> None:
        """Remove the fault layer `fault_id` (no-op when it is not there)."""
        self.faults.pop(fault_id, None)

    def active_faults(self) -> list[tuple[str, str, float]]:
        """The active fault layers as (fault id, kind, probability), by fault id."""
        return [(fid, kind, p) for fid, (kind, p) in sorted(self.faults.items())]

    def fault_probability(self, kind: str) -> float:
        """The effective probability of a fault kind: the max over its layers (0 if none)."""
        return max((p for k, p in self.faults.values() if k == kind), default=0.0)

    def _hit(self, kind: str) -> bool:
        return self.stream.chance(self.fault_probability(kind))

    def _free(self) -> int:
        if any(k == DISK_FULL for k, _ in self.faults.values()):
            return 0
        return max(0, self.capacity_bytes - self.used_bytes)

    @staticmethod
    def _footprint(node: Inode) -> int:
        """The space an inode takes: its current or its durable content, whichever is larger."""
        return max(len(node.data), len(node.durable))

    def _recount(self) -> None:
        self.used_bytes = sum(self._footprint(n) for n in self.inodes.values())
        self.log_bytes = sum(_log_size(n) for n in self.inodes.values())

    def _log(self, node: Inode, op: WriteOp) -> None:
        """Append to a file's unsynced log, compacting every log when they grow too big."""
        self.changes += 1
        node.ops.append(op)
        if op[1] is not None:
            self.log_bytes += len(op[1])
        if self.log_bytes > self.capacity_bytes:
            for ino in sorted(self.inodes):
                other = self.inodes[ino]
                if other.ops:
                    other.ops = [(0, bytes(other.data)), (len(other.data), None)]
            self.log_bytes = sum(_log_size(n) for n in self.inodes.values())

    @property
    def max_inodes(self) -> int:
        return max(MIN_INODES, self.capacity_bytes // BYTES_PER_INODE)

    def _no_space(self) -> FsError:
        full = any(k == DISK_FULL for k, _ in self.faults.values())
        return FsError(errno.ENOSPC, DISK_FULL if full else None)

    # -- paths -----------------------------------------------------------------------------
    def _split(self, path: Path) -> tuple[list[bytes], bool, bool]:
        raw = _encode(path)
        if len(raw) >= PATH_MAX:
            raise FsError(errno.ENAMETOOLONG)
        if not raw:
            raise FsError(errno.ENOENT)
        parts = [c for c in raw.split(b"/") if c]
        if any(len(c) > NAME_MAX for c in parts):
            raise FsError(errno.ENAMETOOLONG)
        return parts, raw.startswith(b"/"), raw.endswith(b"/")

    def _child(self, directory: Inode, name: bytes) -> int | None:
        if name in (b"", b"."):
            return directory.ino
        if name == b"..":
            return directory.parent
        ino = directory.entries.get(name)
        if ino is not None:
            return None if ino == WHITEOUT else ino
        lower = self._lower_dir(directory.ino)
        return lower.entries.get(name) if lower is not None else None

    def _lower_dir(self, ino: int) -> Inode | None:
        """The root's directory merged under directory `ino` (None: nothing under it)."""
        return self.lower.directory(ino) if self.lower is not None else None

    def _merged(self, directory: Inode) -> dict[bytes, int]:
        """A directory's entries as lookups see them: the upper's over the root's."""
        lower = self._lower_dir(directory.ino)
        out = dict(lower.entries) if lower is not None and lower is not directory else {}
        for name, ino in directory.entries.items():
            if ino == WHITEOUT:
                out.pop(name, None)
            else:
                out[name] = ino
        return out

    def has(self, ino: int) -> bool:
        """Whether an inode exists (on the disk or in the root under it)."""
        return ino in self.inodes or (self.lower is not None and ino in self.lower.nodes)

    def _upper(self, ino: int) -> Inode:
        """The disk's inode `ino`, copying a root inode up first (see the module docstring)."""
        node = self.inodes.get(ino)
        if node is not None:
            return node
        view = self._inode(ino)
        assert self.lower is not None  # _inode found it in the root
        parent = self._upper(view.parent)
        if len(self.inodes) >= self.max_inodes:
            raise FsError(errno.ENOSPC)
        if len(view.data) > self._free():
            raise self._no_space()
        node = Inode(ino, view.is_dir, view.mode, view.mtime_ns)
        node.data = bytearray(view.data)
        node.durable = view.durable  # the root's bytes, shared until the next fsync
        node.target, node.parent = view.target, view.parent
        node.opens = self.lower_opens.pop(ino, 0)
        self.inodes[ino] = node
        self.used_bytes += self._footprint(node)
        name = self.lower.names[ino]
        if name not in parent.entries:  # shown through from the root until now
            parent.entries[name] = parent.durable_entries[name] = ino
            node.links = node.durable_links = 1
        return node

    def _hold(self, ino: int) -> None:
        """One more open of an inode (of the root's, counted here: its views are shared)."""
        node = self.inodes.get(ino)
        if node is not None:
            node.opens += 1
        else:
            self.lower_opens[ino] = self.lower_opens.get(ino, 0) + 1

    def _walk(self, start: int, parts: list[bytes]) -> int:
        current = start
        for name in parts:
            node = self._inode(current)
            if not node.is_dir:
                raise FsError(errno.ENOTDIR)
            found = self._child(node, name)
            if found is None:
                raise FsError(errno.ENOENT)
            current = found
        return current

    def lookup(self, path: Path, at: int = ROOT_INO) -> int:
        """The inode a path names; relative paths start at directory `at` (the root)."""
        parts, absolute, trailing = self._split(path)
        ino = self._walk(ROOT_INO if absolute else at, parts)
        if trailing and not self.inodes[ino].is_dir:
            raise FsError(errno.ENOTDIR)
        return ino

    def _parent(self, path: Path, at: int) -> tuple[Inode, bytes, bool]:
        """(parent directory, last component, trailing slash); b"" as name for "/"."""
        parts, absolute, trailing = self._split(path)
        start = ROOT_INO if absolute else at
        if not parts:
            return self._inode(self._walk(start, [])), b"", trailing
        directory = self._inode(self._walk(start, parts[:-1]))
        if not directory.is_dir:
            raise FsError(errno.ENOTDIR)
        return directory, parts[-1], trailing

    def _inode(self, ino: int) -> Inode:
        """The disk's inode, else the root's read-only view of it (never to be changed)."""
        node = self.inodes.get(ino)
        if node is None:
            node = self.lower.nodes.get(ino) if self.lower is not None else None
            if node is None:
                raise FsError(errno.EBADF)
        return node

    def _file(self, ino: int) -> Inode:
        node = self._inode(ino)
        if node.is_dir:
            raise FsError(errno.EISDIR)
        return node

    # -- tree changes ----------------------------------------------------------------------
    def _new_inode(self, is_dir: bool, mode: int, now_ns: int) -> Inode:
        if len(self.inodes) >= self.max_inodes:
            raise FsError(errno.ENOSPC)
        node = Inode(self.next_ino, is_dir, mode, now_ns)
        self.inodes[node.ino] = node
        self.next_ino += 1
        return node

    def _link(self, directory: Inode, name: bytes, node: Inode) -> None:
        directory.entries[name] = node.ino
        node.links += 1
        if node.is_dir:
            node.parent = directory.ino

    def _create(self, directory: Inode, name: bytes, is_dir: bool, mode: int,
                now_ns: int) -> Inode:
        if directory.links == 0:
            raise FsError(errno.ENOENT)  # the directory itself was removed
        directory = self._upper(directory.ino)
        node = self._new_inode(is_dir, mode, now_ns)
        self._link(directory, name, node)
        directory.mtime_ns = directory.ctime_ns = now_ns
        return node

    def _unlink_entry(self, directory: Inode, name: bytes, now_ns: int) -> None:
        ino = self._child(directory, name)
        directory = self._upper(directory.ino)
        directory.entries.pop(name, None)
        self._whiteout(directory, name)
        directory.mtime_ns = directory.ctime_ns = now_ns
        node = self.inodes.get(ino) if ino is not None else None
        if node is not None:  # a root inode not copied up has no links to drop
            node.links -= 1
            node.ctime_ns = now_ns
            self._collect(node.ino)

    def _whiteout(self, directory: Inode, name: bytes) -> None:
        """Hide the root's entry `name` under an upper directory whose entry just went."""
        lower = self._lower_dir(directory.ino)
        if lower is not None and name in lower.entries:
            directory.entries[name] = WHITEOUT

    def _collect(self, ino: int) -> None:
        """Drop inodes nothing names or holds any more (current, durable or open)."""
        work = [ino]
        while work:
            node = self.inodes.get(work.pop())
            if node is None or node.ino == ROOT_INO or node.links or node.durable_links \
                    or node.opens:
                continue
            del self.inodes[node.ino]
            self.used_bytes -= self._footprint(node)
            self.log_bytes -= _log_size(node)
            for child in sorted(node.durable_entries.values()):
                if child != WHITEOUT:
                    self.inodes[child].durable_links -= 1
                    work.append(child)
            for child in sorted(node.entries.values()):
                if child != WHITEOUT:
                    self.inodes[child].links -= 1
                    work.append(child)

    def _sync_dir(self, directory: Inode) -> None:
        old = directory.durable_entries
        directory.durable_entries = dict(directory.entries)
        for child in directory.durable_entries.values():
            if child != WHITEOUT:
                self.inodes[child].durable_links += 1
        for child in old.values():
            if child != WHITEOUT:
                self.inodes[child].durable_links -= 1
        directory.durable_mtime_ns = directory.mtime_ns
        for child in sorted(old.values()):
            if child != WHITEOUT:
                self._collect(child)

    # -- the path API ----------------------------------------------------------------------
    def open(self, path: Path, flags: int, mode: int = 0o644, now_ns: int = 0,
             at: int = ROOT_INO) -> int:
        """Open (maybe create) a file or directory; its inode, now held until `close`.

        O_CLOEXEC, O_NOFOLLOW, O_LARGEFILE and other flags are accepted and ignored.
        """
        access = flags & O_ACCMODE
        if access == O_ACCMODE:
            raise FsError(errno.EINVAL)
        if flags & O_TMPFILE == O_TMPFILE:
            raise FsError(errno.EOPNOTSUPP)
        directory, name, trailing = self._parent(path, at)
        ino = self._child(directory, name)
        if ino is None:
            if not flags & O_CREAT:
                raise FsError(errno.ENOENT)
            if trailing:
                raise FsError(errno.EISDIR)
            if flags & O_DIRECTORY:
                raise FsError(errno.EINVAL)
            ino = self._create(directory, name, False, mode, now_ns).ino
        else:
            if flags & O_CREAT and flags & O_EXCL:
                raise FsError(errno.EEXIST)
            node = self._inode(ino)
            if node.is_dir and (access != O_RDONLY or flags & O_CREAT):
                raise FsError(errno.EISDIR)
            if not node.is_dir and (flags & O_DIRECTORY or trailing):
                raise FsError(errno.ENOTDIR)
            if access != O_RDONLY and node.special == 0:
                self._upper(ino)  # a root file opened for writing is copied up first
            if flags & O_TRUNC and access != O_RDONLY and not node.is_dir:
                self.truncate(ino, 0, now_ns)
        self._hold(ino)
        return ino

    def reopen(self, ino: int, flags: int, now_ns: int = 0) -> None:
        """Open an inode again by number (open of /proc/self/fd/N), with open's checks."""
        access = flags & O_ACCMODE
        node = self._inode(ino)
        if access == O_ACCMODE:
            raise FsError(errno.EINVAL)
        if node.is_dir and access != O_RDONLY:
            raise FsError(errno.EISDIR)
        if access != O_RDONLY and node.special == 0:
            self._upper(ino)
        if flags & O_TRUNC and access != O_RDONLY and not node.is_dir:
            self.truncate(ino, 0, now_ns)
        self._hold(ino)

    def close(self, ino: int) -> None:
        """Release one open of an inode (an unlinked file goes once nothing holds it)."""
        node = self.inodes.get(ino)
        if node is None:
            self._inode(ino)  # EBADF unless it is the root's
            held = self.lower_opens.pop(ino, 0) - 1
            if held > 0:
                self.lower_opens[ino] = held
            return
        node.opens = max(0, node.opens - 1)
        self._collect(ino)

    def release_all(self) -> None:
        """Drop every open hold (the process owning the handles is gone)."""
        self.lower_opens.clear()
        for ino in sorted(self.inodes):
            if ino in self.inodes:
                self.inodes[ino].opens = 0
                self._collect(ino)

    def read(self, ino: int, offset: int, size: int) -> tuple[bytes, str | None]:
        """Up to size bytes at offset, and the fault that corrupted them (or None)."""
        node = self._file(ino)
        if self._hit(READ_ERROR):
            raise FsError(errno.EIO, READ_ERROR)
        data = bytes(node.data[offset : offset + size])
        if data and self._hit(CORRUPT_READ):
            bit = self.stream.below(len(data) * 8)
            flipped = bytearray(data)
            flipped[bit // 8] ^= 1 << (bit % 8)
            return bytes(flipped), CORRUPT_READ
        return data, None

    def write(self, ino: int, offset: int, data: bytes, now_ns: int = 0) -> int:
        """Write at offset (a hole before it reads as zeros); the bytes written."""
        self._file(ino)
        node = self._upper(ino)
        if self._hit(WRITE_ERROR):
            raise FsError(errno.EIO, WRITE_ERROR)
        if not data:
            return 0
        before = self._footprint(node)
        limit = before + self._free()  # the file may reach this size
        if offset + len(data) > max(before, limit):
            if offset >= limit:
                raise self._no_space()
            data = data[: limit - offset]
        size = len(node.data)
        if offset > size:
            node.data.extend(bytes(offset - size))
        node.data[offset : offset + len(data)] = data
        self.used_bytes += self._footprint(node) - before
        self._log(node, (offset, bytes(data)))
        node.mtime_ns = node.ctime_ns = now_ns
        return len(data)

    def peek(self, ino: int, offset: int, size: int) -> bytes:
        """Up to size bytes at offset, fault-free: what the page cache holds (a shared
        mapping's pages are filled from it; no disk read happens on Linux either)."""
        return bytes(self._file(ino).data[offset : offset + size])

    def write_back(self, ino: int, offset: int, data: bytes, now_ns: int = 0) -> None:
        """Stores through a shared mapping reaching the page cache: within the file's size
        (never growing it), fault-free (a write-back error would show at fsync, which
        consults the faults itself), dirty until fsync as any write."""
        self._file(ino)
        node = self._upper(ino)
        data = data[: max(0, len(node.data) - offset)]
        if not data:
            return
        node.data[offset : offset + len(data)] = data
        self._log(node, (offset, bytes(data)))
        node.mtime_ns = node.ctime_ns = now_ns

    def truncate(self, ino: int, size: int, now_ns: int = 0) -> None:
        """Set a file's size (growing with zeros)."""
        self._file(ino)
        if size < 0:
            raise FsError(errno.EINVAL)
        node = self._upper(ino)
        old, before = len(node.data), self._footprint(node)
        if size > before and size - before > self._free():
            raise self._no_space()
        if size < old:
            del node.data[size:]
        else:
            node.data.extend(bytes(size - old))
        self.used_bytes += self._footprint(node) - before
        self._log(node, (size, None))
        node.mtime_ns = node.ctime_ns = now_ns

    def fsync(self, ino: int, data_only: bool = False) -> None:
        """Make a file's content (a directory's entries) durable."""
        node = self._inode(ino)
        if self._hit(WRITE_ERROR):
            raise FsError(errno.EIO, WRITE_ERROR)
        if self.journal:
            self._commit_names()
        if ino not in self.inodes:
            return  # the root's: durable as it is
        if node.is_dir:
            self._sync_dir(node)
            node.durable_xattrs = dict(node.xattrs)
            return
        self.fsync_content(node, data_only)

    def _commit_names(self) -> None:
        """The journal's commit: every directory's entries durable as they are now."""
        for ino in sorted(i for i, n in self.inodes.items() if n.is_dir):
            node = self.inodes.get(ino)  # an earlier directory's sync may collect this one
            if node is not None:
                self._sync_dir(node)

    def mkdir(self, path: Path, mode: int = 0o755, now_ns: int = 0, at: int = ROOT_INO) -> int:
        """Create a directory; its inode."""
        directory, name, _ = self._parent(path, at)
        if self._child(directory, name) is not None:
            raise FsError(errno.EEXIST)
        return self._create(directory, name, True, mode, now_ns).ino

    def unlink(self, path: Path, now_ns: int = 0, at: int = ROOT_INO) -> None:
        """Remove a file's directory entry."""
        directory, name, trailing = self._parent(path, at)
        ino = self._child(directory, name)
        if ino is None:
            raise FsError(errno.ENOENT)
        if self._inode(ino).is_dir:
            raise FsError(errno.EISDIR)
        if trailing:
            raise FsError(errno.ENOTDIR)
        self._unlink_entry(directory, name, now_ns)

    def rmdir(self, path: Path, now_ns: int = 0, at: int = ROOT_INO) -> None:
        """Remove an empty directory."""
        directory, name, _ = self._parent(path, at)
        if name == b".":
            raise FsError(errno.EINVAL)
        ino = self._child(directory, name)
        if ino is None:
            raise FsError(errno.ENOENT)
        node = self._inode(ino)
        if not node.is_dir:
            raise FsError(errno.ENOTDIR)
        if name == b"..":
            raise FsError(errno.ENOTEMPTY)
        if ino == ROOT_INO or name == b"":
            raise FsError(errno.EBUSY)
        if self._merged(node):
            raise FsError(errno.ENOTEMPTY)
        self._unlink_entry(directory, name, now_ns)

    def rename(self, old: Path, new: Path, now_ns: int = 0, old_at: int = ROOT_INO,
               new_at: int = ROOT_INO) -> None:
        """Move an entry, atomically replacing a file or an empty directory at `new`."""
        src_dir, src_name, src_trailing = self._parent(old, old_at)
        dst_dir, dst_name, dst_trailing = self._parent(new, new_at)
        if src_name in (b"", b".", b"..") or dst_name in (b"", b".", b".."):
            raise FsError(errno.EBUSY if b"" in (src_name, dst_name) else errno.EINVAL)
        src = self._child(src_dir, src_name)
        if src is None:
            raise FsError(errno.ENOENT)
        node = self._inode(src)
        if (src_trailing or dst_trailing) and not node.is_dir:
            raise FsError(errno.ENOTDIR)
        dst = self._child(dst_dir, dst_name)
        if dst == src:
            return
        if dst_dir.links == 0:
            raise FsError(errno.ENOENT)
        if node.is_dir:
            if self._lower_dir(src) is not None:
                raise FsError(errno.EXDEV)  # a root directory moves only by copying
            up = dst_dir.ino
            while up != ROOT_INO:
                if up == src:
                    raise FsError(errno.EINVAL)  # into its own subtree
                up = self._inode(up).parent
        if dst is not None:
            target = self._inode(dst)
            if node.is_dir and not target.is_dir:
                raise FsError(errno.ENOTDIR)
            if not node.is_dir and target.is_dir:
                raise FsError(errno.EISDIR)
            if self._merged(target):
                raise FsError(errno.ENOTEMPTY)
        node = self._upper(src)  # copies its directory up too; then both are the disk's
        src_dir, dst_dir = self._upper(src_dir.ino), self._upper(dst_dir.ino)
        if dst is not None:
            dst_dir.entries.pop(dst_name, None)
            replaced = self.inodes.get(dst)
            if replaced is not None:  # a root entry replaced has no links to drop
                replaced.links -= 1
                replaced.ctime_ns = now_ns
        del src_dir.entries[src_name]
        self._whiteout(src_dir, src_name)
        dst_dir.entries[dst_name] = src
        if node.is_dir:
            node.parent = dst_dir.ino
        node.ctime_ns = now_ns
        for d in (src_dir, dst_dir):
            d.mtime_ns = d.ctime_ns = now_ns
        if dst is not None:
            self._collect(dst)

    def link(self, ino: int, path: Path, now_ns: int = 0, at: int = ROOT_INO) -> None:
        """Give a file one more name (a hard link); durable, like any entry, once its
        directory is fsynced. A directory cannot get one (EPERM), nor a file that has
        lost its last name (ENOENT: only O_TMPFILE files may be linked back)."""
        node = self._inode(ino)
        if node.is_dir:
            raise FsError(errno.EPERM)
        directory, name, trailing = self._parent(path, at)
        if not name or self._child(directory, name) is not None:
            raise FsError(errno.EEXIST)
        if trailing:
            raise FsError(errno.ENOENT)
        if node.links == 0 or directory.links == 0:
            raise FsError(errno.ENOENT)
        node, directory = self._upper(ino), self._upper(directory.ino)
        self._link(directory, name, node)
        node.ctime_ns = directory.mtime_ns = directory.ctime_ns = now_ns

    def sync_all(self) -> None:
        """sync(2)/syncfs(2): make every file's content and every directory's entries
        durable at once; one disk_write_error draw for the whole flush (EIO: nothing)."""
        if self._hit(WRITE_ERROR):
            raise FsError(errno.EIO, WRITE_ERROR)
        for ino in sorted(self.inodes):
            node = self.inodes.get(ino)
            if node is not None and not node.is_dir:
                self.fsync_content(node)
        for ino in sorted(self.inodes):
            node = self.inodes.get(ino)
            if node is not None and node.is_dir:
                self._sync_dir(node)
                node.durable_xattrs = dict(node.xattrs)

    def fsync_content(self, node: Inode, data_only: bool = False) -> None:
        """Make a file's current content durable (no fault draw: the caller made it)."""
        self.used_bytes += len(node.data) - self._footprint(node)
        self.log_bytes -= _log_size(node)
        node.durable = bytes(node.data)
        node.ops = []
        if not data_only:
            node.durable_mtime_ns = node.mtime_ns
            node.durable_xattrs = dict(node.xattrs)

    def statfs(self) -> tuple[int, int, int, int]:
        """(total bytes, free bytes, total inodes, free inodes), as statfs counts them."""
        free = self._free()
        return (self.capacity_bytes, free, self.max_inodes,
                max(0, self.max_inodes - len(self.inodes)))

    # -- extended attributes (durable with the inode's metadata, on fsync) -------------------
    def get_xattr(self, ino: int, name: bytes) -> bytes:
        value = self._inode(ino).xattrs.get(name)
        if value is None:
            raise FsError(errno.ENODATA)
        return value

    def list_xattrs(self, ino: int) -> list[bytes]:
        return list(self._inode(ino).xattrs)

    def set_xattr(self, ino: int, name: bytes, value: bytes, create: bool, replace: bool,
                  now_ns: int = 0) -> None:
        """Set one attribute; all of an inode's names and values share one 4 KiB block, as
        on ext4 without large extended attributes (ENOSPC past it)."""
        node = self._inode(ino)
        exists = name in node.xattrs
        if create and exists:
            raise FsError(errno.EEXIST)
        if replace and not exists:
            raise FsError(errno.ENODATA)
        others = sum(XATTR_ENTRY + len(n) + len(v) for n, v in node.xattrs.items() if n != name)
        if others + XATTR_ENTRY + len(name) + len(value) > XATTR_BLOCK:
            raise FsError(errno.ENOSPC)
        node = self._upper(ino)
        node.xattrs[name] = bytes(value)
        node.ctime_ns = now_ns

    def remove_xattr(self, ino: int, name: bytes, now_ns: int = 0) -> None:
        if name not in self._inode(ino).xattrs:
            raise FsError(errno.ENODATA)
        node = self._upper(ino)
        del node.xattrs[name]
        node.ctime_ns = now_ns

    def stat(self, ino: int) -> Stat:
        """stat of an inode."""
        node = self._inode(ino)
        owner = (node.atime_ns, node.uid, node.gid)
        if node.is_dir:
            subdirs = sum(1 for i in self._merged(node).values() if self._inode(i).is_dir)
            return Stat(ino, S_IFDIR | node.mode, 2 + subdirs, DIR_SIZE, DIR_SIZE // 512,
                        node.mtime_ns, node.ctime_ns, *owner)
        size = len(node.data)
        kind = node.special or (S_IFREG if node.target is None else S_IFLNK)
        return Stat(ino, kind | node.mode, node.links, size, (size + 511) // 512,
                    node.mtime_ns, node.ctime_ns, *owner)

    # -- links, owners, modes, times (the resolver in kernel.fs.paths walks with these) -----
    def child(self, directory: int, name: bytes) -> int | None:
        """The inode one name in a directory refers to (`.` and `..` included), or None."""
        node = self._inode(directory)
        if not node.is_dir:
            raise FsError(errno.ENOTDIR)
        return self._child(node, name)

    def parent_of(self, directory: int) -> int:
        return self._inode(directory).parent

    def name_of(self, directory: int) -> bytes:
        """The name a directory has in its parent (b"" for the root)."""
        node = self._inode(directory)
        parent = self._inode(node.parent)
        for name, ino in sorted(self._merged(parent).items()):
            if ino == directory:
                return name
        return b""

    def symlink(self, path: Path, target: bytes, now_ns: int = 0, at: int = ROOT_INO) -> int:
        """Create a symbolic link; its inode. The target is durable with the entry."""
        directory, name, _ = self._parent(path, at)
        if not name or self._child(directory, name) is not None:
            raise FsError(errno.EEXIST)
        if not target:
            raise FsError(errno.ENOENT)
        node = self._create(directory, name, False, 0o777, now_ns)
        node.target = bytes(target)
        node.data = bytearray(target)
        node.durable = bytes(target)
        self.used_bytes += len(target)
        return node.ino

    def mknod(self, path: Path, kind: int, mode: int, now_ns: int = 0,
              at: int = ROOT_INO) -> int:
        """Create a FIFO or a socket node (kind S_IFIFO or S_IFSOCK) holding no data; its
        inode. A regular file comes from open with O_CREAT instead."""
        if kind not in (S_IFIFO, S_IFSOCK):
            raise FsError(errno.EINVAL)
        directory, name, _ = self._parent(path, at)
        if not name or self._child(directory, name) is not None:
            raise FsError(errno.EEXIST)
        node = self._create(directory, name, False, mode, now_ns)
        node.special = kind
        return node.ino

    def special(self, ino: int) -> int:
        """S_IFIFO or S_IFSOCK for a node mknod made, else 0."""
        return self._inode(ino).special

    def readlink(self, ino: int) -> bytes:
        target = self._inode(ino).target
        if target is None:
            raise FsError(errno.EINVAL)
        return target

    def is_link(self, ino: int) -> bool:
        return self._inode(ino).target is not None

    def chmod(self, ino: int, mode: int, now_ns: int = 0) -> None:
        node = self._upper(ino)
        node.mode = mode & 0o7777
        node.ctime_ns = now_ns

    def chown(self, ino: int, uid: int, gid: int, now_ns: int = 0) -> None:
        """Change owner and group; -1 (as an unsigned 32-bit value) keeps one."""
        node = self._upper(ino)
        if uid != 0xFFFFFFFF:
            node.uid = uid
        if gid != 0xFFFFFFFF:
            node.gid = gid
        node.ctime_ns = now_ns

    def set_times(self, ino: int, atime_ns: int | None, mtime_ns: int | None,
                  now_ns: int = 0) -> None:
        """utimensat: set access and/or modification time (None keeps one)."""
        node = self._upper(ino)
        if atime_ns is not None:
            node.atime_ns = atime_ns
        if mtime_ns is not None:
            node.mtime_ns = mtime_ns
        node.ctime_ns = now_ns

    def stat_path(self, path: Path, at: int = ROOT_INO) -> Stat:
        return self.stat(self.lookup(path, at))

    def is_dir(self, ino: int) -> bool:
        return self._inode(ino).is_dir

    def size(self, ino: int) -> int:
        node = self._inode(ino)
        return DIR_SIZE if node.is_dir else len(node.data)

    def listdir(self, ino: int) -> list[tuple[bytes, int, bool]]:
        """(name, inode, is directory) of every entry, `.` and `..` first, then by name."""
        node = self._inode(ino)
        if not node.is_dir:
            raise FsError(errno.ENOTDIR)
        out = [(b".", ino, True), (b"..", node.parent, True)]
        out += [(n, i, self._inode(i).is_dir) for n, i in sorted(self._merged(node).items())]
        return out

    def read_file_inode(self, ino: int) -> bytes:
        """The current content of a file by inode, fault-free (for calls that move data
        inside the disk: fallocate's collapse and insert)."""
        return bytes(self._file(ino).data)

    def read_file(self, path: Path) -> bytes:
        """The current content of a file, fault-free (for tests and tools)."""
        return bytes(self._file(self.lookup(path)).data)

    # -- crashes and checkpoints -----------------------------------------------------------
    def crash(self) -> None:
        """Power cut: keep only the durable state (torn by an active torn_write fault)."""
        self.inodes = crash_tree(self.inodes, ROOT_INO, self.fault_probability(TORN_WRITE),
                                 self.stream)
        self.lower_opens = {}
        self._recount()

    def snapshot(self) -> dict[str, Any]:
        """The complete state as msgpack-serialisable data (equal states, equal dicts).

        With a root: its digest ("root"), the opens of its inodes ("lower_opens"), and each
        copied-up file's content that is still the root's as a flag ("data_root",
        "durable_root") instead of the bytes: a snapshot never holds the root again.
        """
        snap: dict[str, Any] = {
            "version": SNAPSHOT_VERSION, "seed": self.seed, "node": self.node,
            "capacity_bytes": self.capacity_bytes, "position": self.stream.position,
            "next_ino": self.next_ino,
            "faults": [[fid, kind, p] for fid, kind, p in self.active_faults()],
            "inodes": [self.inodes[i].to_dict() for i in sorted(self.inodes)],
        }
        if self.lower is None:
            return snap  # as before roots: recordings without one keep their digests
        snap["root"] = self.lower.digest
        snap["lower_opens"] = [[i, n] for i, n in sorted(self.lower_opens.items())]
        for d in snap["inodes"]:
            view = self.lower.nodes.get(d["ino"])
            if view is None or view.is_dir or d["dir"]:
                continue
            for key in ("data", "durable"):
                if d[key] == view.data:
                    d[key] = b""
                    d[f"{key}_root"] = True
        return snap

    def restore(self, snap: dict[str, Any]) -> None:
        """Replace this file system's state with a snapshot's."""
        if snap.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported file-system snapshot version {snap.get('version')!r}")
        problem = self.root_problem(snap)
        if problem is not None:
            raise ValueError(problem)
        self.seed, self.node = snap["seed"], snap["node"]
        self.capacity_bytes = snap["capacity_bytes"]
        self.stream = DeterministicStream(self.seed, "disk", self.node, snap["position"])
        self.next_ino = snap["next_ino"]
        self.faults = {fid: (kind, float(p)) for fid, kind, p in snap["faults"]}
        self.inodes = {d["ino"]: self._inode_from(d) for d in snap["inodes"]}
        self.lower_opens = {i: n for i, n in snap.get("lower_opens", [])}
        for ino in sorted(self.lower_opens):
            if ino in self.inodes or self.lower is None or ino not in self.lower.nodes:
                raise ValueError(f"lower_opens names inode {ino}, which is not the root's")
        self._recount()

    def _inode_from(self, d: dict[str, Any]) -> Inode:
        """One snapshot inode, its content taken from the root where the snapshot says so."""
        if any(d.get(f"{key}_root") for key in ("data", "durable")):
            view = self.lower.nodes.get(d["ino"]) if self.lower is not None else None
            if view is None or view.is_dir:
                raise ValueError(f"inode {d['ino']} takes its content from a root file the "
                                 "root does not have")
            d = {**d, **{key: view.data for key in ("data", "durable") if d.get(f"{key}_root")}}
        return Inode.from_dict(d)

    def root_problem(self, snap: dict[str, Any]) -> str | None:
        """Why a snapshot does not fit this disk's root (it names another, or none), or None."""
        named = snap.get("root")
        have = self.lower.digest if self.lower is not None else None
        if named == have:
            return None
        if have is None:
            return f"names root {str(named)[:12]}…, but the node group has no root"
        if named is None:
            return f"names no root, but the node group has root {have[:12]}…"
        return f"names root {str(named)[:12]}…, but the node group's is {have[:12]}…"

    @classmethod
    def from_snapshot(cls, snap: dict[str, Any], root: RootLayer | None = None) -> FileSystem:
        """A new file system in a snapshot's state (over `root`, the one it names)."""
        fs = cls(snap["seed"], snap["node"], snap["capacity_bytes"], root=root)
        fs.restore(snap)
        return fs
