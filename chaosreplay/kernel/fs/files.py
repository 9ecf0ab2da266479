"""The one descriptor interface: file descriptions and the descriptor table.

Every open file — a disk file or directory, the tty, a pipe end, an eventfd, a timerfd,
an epoll instance, a /dev or /proc file — is a `FileDescription` with read, write,
readiness and waiter registration, ioctl and stat. System calls (kernel/syscalls/) are
written once against this interface, so poll, select and epoll work on all of them alike.
A description is shared by the descriptors dup() makes of it (offset and status flags
are shared, FD_CLOEXEC is per descriptor), as on Linux. Descriptions serialise to plain
data (`save`/`load`, keyed by `kind`) so the table survives checkpoints.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from chaosreplay.kernel.fs.waiters import Notifiable, WaitQueue
from chaosreplay.recording.schema import I64_MAX, Anything, Bytes, Check, Int, Row, Str, Where

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

NS = 1_000_000_000
O_ACCMODE, O_RDONLY, O_WRONLY, O_RDWR = 0o3, 0o0, 0o1, 0o2
O_CREAT, O_EXCL, O_NOCTTY, O_TRUNC, O_APPEND = 0o100, 0o200, 0o400, 0o1000, 0o2000
O_NONBLOCK, O_DSYNC, O_DIRECT, O_LARGEFILE = 0o4000, 0o10000, 0o40000, 0o100000
O_DIRECTORY, O_NOFOLLOW, O_NOATIME, O_CLOEXEC, O_PATH = (0o200000, 0o400000, 0o1000000,
                                                         0o2000000, 0o10000000)
O_SYNC, O_ASYNC, O_TMPFILE = 0o4010000, 0o20000, 0o20200000
# Linux's VALID_OPEN_FLAGS: open(2) drops every other bit, so no description holds one.
VALID_OPEN_FLAGS = (O_ACCMODE | O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_APPEND | O_NONBLOCK
                    | O_DSYNC | O_ASYNC | O_DIRECT | O_LARGEFILE | O_DIRECTORY | O_NOFOLLOW
                    | O_NOATIME | O_CLOEXEC | O_SYNC | O_PATH | O_TMPFILE)
PATH_MAX = 4096
SETFL_MASK = O_APPEND | O_NONBLOCK | O_DIRECT | O_NOATIME  # what F_SETFL may change
OPEN_ONLY = O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW  # not in F_GETFL

# poll(2) / epoll(7) event bits (the same values for both).
POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20
POLLRDNORM, POLLRDBAND, POLLWRNORM, POLLWRBAND, POLLRDHUP = 0x40, 0x80, 0x100, 0x200, 0x2000
READABLE = POLLIN | POLLRDNORM
WRITABLE = POLLOUT | POLLWRNORM
ALWAYS_REPORTED = POLLERR | POLLHUP  # reported whether asked for or not

S_IFMT, S_IFIFO, S_IFCHR, S_IFDIR, S_IFREG, S_IFLNK = (0o170000, 0o010000, 0o020000,
                                                        0o040000, 0o100000, 0o120000)
FIONREAD, FIONBIO, FIOCLEX, FIONCLEX = 0x541B, 0x5421, 0x5451, 0x5450
ANON_DEV = 0xE  # st_dev of anonymous inodes (pipefs, eventfd, ...), a fixed made-up number


@dataclass(frozen=True, slots=True)
class StatInfo:
    """What fstat/stat report about a file, host-independent."""

    dev: int
    ino: int
    mode: int
    nlink: int = 1
    uid: int = 0
    gid: int = 0
    rdev: int = 0
    size: int = 0
    blksize: int = 4096
    blocks: int = 0
    atime_ns: int = 0
    mtime_ns: int = 0
    ctime_ns: int = 0

    def pack(self) -> bytes:
        """struct stat (x86-64)."""
        a, m, c = divmod(self.atime_ns, NS), divmod(self.mtime_ns, NS), divmod(self.ctime_ns, NS)
        return struct.pack("<QQQIIIIQqqq6q3q", self.dev, self.ino, self.nlink, self.mode,
                           self.uid, self.gid, 0, self.rdev, self.size, self.blksize,
                           self.blocks, *a, *m, *c, 0, 0, 0)

    def pack_statx(self) -> bytes:
        """struct statx (256 bytes) with the basic stats; no birth time."""
        head = struct.pack("<IIQIIIHHQQQQ", 0x7FF, self.blksize, 0, self.nlink, self.uid,
                           self.gid, self.mode, 0, self.ino, self.size, self.blocks, 0)
        a, m, c = divmod(self.atime_ns, NS), divmod(self.mtime_ns, NS), divmod(self.ctime_ns, NS)
        times = struct.pack("<qIi qIi qIi qIi", *a, 0, 0, 0, 0, *c, 0, *m, 0)
        devs = struct.pack("<IIII", self.rdev >> 8, self.rdev & 0xFF, self.dev >> 8,
                           self.dev & 0xFF)
        return (head + times + devs).ljust(256, b"\0")


class FileDescription:
    """An open file: what a descriptor refers to. Subclasses override what they support."""

    kind: ClassVar[str] = "?"
    registry: ClassVar[dict[str, type[FileDescription]]] = {}
    seekable: ClassVar[bool] = False
    blocking: ClassVar[bool] = False  # read/write may wait (pipes, eventfd, timerfd)
    pollable: ClassVar[bool] = True  # epoll accepts it (Linux refuses regular files: EPERM)
    # The shape of save()'s output, checked before load() sees data from a file: every kind
    # must define it next to its save/load (a kind without one is refused at class creation).
    STATE: ClassVar[Check]

    def __init__(self, flags: int, path: bytes) -> None:
        self.flags = flags
        self.path = path  # what /proc/self/fd and the debugger show
        self.offset = 0
        self.refs = 0
        self.queue = WaitQueue()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind != "?":
            if "STATE" not in cls.__dict__:
                raise TypeError(f"description kind {cls.kind!r} defines no STATE (the shape of "
                                "its save() output)")
            FileDescription.registry[cls.kind] = cls

    # -- access ----------------------------------------------------------------------------
    @property
    def readable(self) -> bool:
        return self.flags & O_ACCMODE in (O_RDONLY, O_RDWR) and not self.flags & O_PATH

    @property
    def writable(self) -> bool:
        return self.flags & O_ACCMODE in (O_WRONLY, O_RDWR) and not self.flags & O_PATH

    @property
    def nonblocking(self) -> bool:
        return bool(self.flags & O_NONBLOCK)

    # -- data ------------------------------------------------------------------------------
    def read(self, p: GuestProcess, size: int) -> bytes | int:
        """Up to size bytes at the offset, or -errno (-EAGAIN: would block)."""
        return -errno.EINVAL

    def write(self, p: GuestProcess, data: bytes) -> int:
        """Bytes written, or -errno (-EAGAIN: would block)."""
        return -errno.EINVAL

    def pread(self, p: GuestProcess, size: int, offset: int) -> bytes | int:
        return -errno.ESPIPE

    def pwrite(self, p: GuestProcess, data: bytes, offset: int) -> int:
        return -errno.ESPIPE

    def seek(self, p: GuestProcess, offset: int, whence: int) -> int:
        return -errno.ESPIPE

    def getdents(self, p: GuestProcess) -> list[tuple[bytes, int, int]] | int:
        """(name, inode, DT_* type) of every entry of a directory, or -ENOTDIR."""
        return -errno.ENOTDIR

    def fsync(self, p: GuestProcess, data_only: bool) -> int:
        return 0

    def io_timeout_ns(self, write: bool) -> int | None:
        """How long a blocking read (write) of this description may wait, None for ever:
        a socket's SO_RCVTIMEO (SO_SNDTIMEO), which bound read and write too."""
        return None

    def map_contents(self, p: GuestProcess, offset: int, length: int) -> bytes | int:
        """The bytes a private mapping of [offset, offset+length) starts with (shorter at
        the end of the file), or -ENODEV for a description mmap cannot map."""
        return -errno.ENODEV

    # -- readiness -------------------------------------------------------------------------
    def readiness(self, p: GuestProcess, mask: int) -> int:
        """The events of mask (plus POLLERR/POLLHUP) that are true now."""
        return mask & (READABLE | WRITABLE)  # ordinary files are always ready

    def next_change_ns(self, p: GuestProcess) -> int | None:
        """The virtual time this file's readiness changes by itself (a timer), if any."""
        return None

    def generation(self, p: GuestProcess, mask: int) -> Any:
        """Changes whenever an event in mask happens (edge-triggered epoll compares it)."""
        return 0

    def register(self, party: Notifiable, mask: int) -> None:
        self.queue.register(party, mask)

    def unregister(self, party: Notifiable) -> None:
        self.queue.unregister(party)

    # -- control ---------------------------------------------------------------------------
    def ioctl(self, p: GuestProcess, request: int, arg: int) -> int:
        return -errno.ENOTTY

    def pending_bytes(self, p: GuestProcess) -> int | None:
        """What FIONREAD answers, or None when it does not apply (ENOTTY)."""
        return None

    def stat(self, p: GuestProcess) -> StatInfo | int:
        return StatInfo(ANON_DEV, id_of(self.path), S_IFREG | 0o600)

    def release(self, p: GuestProcess) -> None:
        """The last descriptor referring to this description was closed."""

    def reopen(self, p: GuestProcess, flags: int) -> FileDescription | int:
        """A new description of the same file, as open(/proc/self/fd/N) makes."""
        return -errno.ENXIO

    # -- checkpoints -----------------------------------------------------------------------
    def references(self) -> list[FileDescription]:
        """Other descriptions this one holds (epoll interest lists)."""
        return []

    def save(self, refs: Refs) -> Any:
        """This description's own state as plain data (flags, path, offset are kept apart)."""
        return None

    @classmethod
    def load(cls, flags: int, path: bytes, data: Any, refs: Refs) -> FileDescription:
        return cls(flags, path)

    def link(self, data: Any, refs: Refs) -> None:
        """Second pass of loading: resolve references to other descriptions."""

    @classmethod
    def referenced(cls, data: Any) -> tuple[list[int], list[int]]:
        """The (description, shared object) indexes that save() output names, for the checks
        that they exist before load() and link() look them up."""
        return [], []


def open_flags(flags: int) -> str | None:
    """A Where condition: the flags are among Linux's open flags."""
    if flags & ~VALID_OPEN_FLAGS:
        return f"has flags {flags & ~VALID_OPEN_FLAGS:#o} outside Linux's open flags"
    return None


class SavedDescription(Check):
    """One entry of FdTable.save()'s descriptions, [kind, flags, path, offset, own state]; the
    own state is checked by its kind's STATE (looked up when checked: every kind registered)."""

    HEAD = Row(Str(64), Where(Int(0, 2**32 - 1), open_flags), Bytes(PATH_MAX),
               Int(0, I64_MAX), Anything())

    def describe(self) -> str:
        return self.HEAD.describe()

    def __call__(self, value: Any, path: str) -> None:
        self.HEAD(value, path)
        kind = FileDescription.registry.get(value[0])
        if kind is None:
            self._fail(path, problem=f"has an unknown kind {value[0]!r}")
        kind.STATE(value[4], f"{path}[4]")


def id_of(path: bytes) -> int:
    """A stable inode number for a file that has none of its own (from its name)."""
    import zlib

    return 0x1000000 + zlib.crc32(path)


class Refs:
    """Index of descriptions and shared objects (pipes) while saving or loading a table;
    `external` is what descriptions name outside the table (the node's socket stack)."""

    def __init__(self, external: Any = None) -> None:
        self.external = external
        self.descriptions: list[FileDescription] = []
        self.shared: list[Any] = []
        self._index: dict[int, int] = {}
        self._shared_index: dict[int, int] = {}

    def add(self, d: FileDescription) -> None:
        if id(d) not in self._index:
            self._index[id(d)] = len(self.descriptions)
            self.descriptions.append(d)
            for other in d.references():
                self.add(other)

    def index(self, d: FileDescription) -> int:
        return self._index[id(d)]

    def share(self, obj: Any) -> int:
        """The index of a shared object (saved once, however many descriptions hold it)."""
        key = id(obj)
        if key not in self._shared_index:
            self._shared_index[key] = len(self.shared)
            self.shared.append(obj)
        return self._shared_index[key]


@dataclass(slots=True)
class Descriptor:
    """One slot of the descriptor table."""

    file: FileDescription
    cloexec: bool = False


DEFAULT_NOFILE = 1024  # RLIMIT_NOFILE's soft limit


class FdTable:
    """fd -> description + FD_CLOEXEC; the lowest free number goes first, as on Linux."""

    def __init__(self) -> None:
        self.slots: dict[int, Descriptor] = {}
        self.limit = DEFAULT_NOFILE
        self.next_ino = 1  # inode numbers of anonymous files (pipes), in creation order

    def anon_ino(self) -> int:
        self.next_ino += 1
        return self.next_ino

    def get(self, fd: int) -> FileDescription | None:
        slot = self.slots.get(fd)
        return slot.file if slot is not None else None

    def install(self, file: FileDescription, cloexec: bool = False, lowest: int = 0) -> int:
        """Put file at the lowest free fd >= lowest; the fd or -EMFILE."""
        fd = max(0, lowest)
        while fd in self.slots:
            fd += 1
        if fd >= self.limit:
            return -errno.EMFILE
        file.refs += 1
        self.slots[fd] = Descriptor(file, cloexec)
        return fd

    def install_at(self, p: GuestProcess, file: FileDescription, fd: int, cloexec: bool) -> int:
        """Put file at exactly fd (closing what was there first), as dup2 does."""
        if not 0 <= fd < self.limit:
            return -errno.EBADF
        file.refs += 1  # before the close, in case fd already refers to file
        if fd in self.slots:
            self.close(p, fd)
        self.slots[fd] = Descriptor(file, cloexec)
        return fd

    def close(self, p: GuestProcess, fd: int) -> int:
        slot = self.slots.pop(fd, None)
        if slot is None:
            return -errno.EBADF
        slot.file.refs -= 1
        if slot.file.refs == 0:
            slot.file.release(p)
        return 0

    def items(self) -> list[tuple[int, Descriptor]]:
        return sorted(self.slots.items())

    def fork(self) -> FdTable:
        """A fork child's table: the same open descriptions (shared offsets, pipe ends),
        each referenced once more, and the same close-on-exec flags."""
        twin = FdTable()
        twin.limit, twin.next_ino = self.limit, self.next_ino
        for fd, slot in self.items():
            slot.file.refs += 1
            twin.slots[fd] = Descriptor(slot.file, slot.cloexec)
        return twin

    # -- checkpoints -----------------------------------------------------------------------
    def save(self) -> tuple[Refs, dict[str, Any]]:
        refs, (table,) = save_tables([self])
        return refs, table

    def slots_state(self, refs: Refs) -> dict[str, Any]:
        """The descriptors alone, naming descriptions by their index in refs."""
        return {"fds": [[fd, refs.index(slot.file), slot.cloexec] for fd, slot in self.items()],
                "limit": self.limit, "next_ino": self.next_ino}

    @classmethod
    def adopt(cls, data: dict[str, Any], refs: Refs) -> FdTable:
        """A table from slots_state() over descriptions already loaded into refs."""
        table = cls()
        table.limit, table.next_ino = data["limit"], data["next_ino"]
        for fd, i, cloexec in data["fds"]:
            d = refs.descriptions[i]
            d.refs += 1
            table.slots[fd] = Descriptor(d, cloexec)
        return table

    @classmethod
    def load(cls, data: dict[str, Any], shared_loader: Any,
             external: Any = None) -> tuple[FdTable, Refs]:
        refs = Refs(external)
        refs.shared = [shared_loader(s) for s in data["shared"]]
        for kind, flags, path, offset, own in data["descriptions"]:
            d = FileDescription.registry[kind].load(flags, bytes(path), own, refs)
            d.offset = offset
            refs.add(d)
        for d, (_, _, _, _, own) in zip(refs.descriptions, data["descriptions"], strict=True):
            d.link(own, refs)
        return cls.adopt(data, refs), refs


def save_tables(tables: list[FdTable], mapped: list[FileDescription] | None = None
                ) -> tuple[Refs, list[dict[str, Any]]]:
    """Descriptor tables that share open descriptions (a node's processes after fork) as
    plain data: every description and shared object once, in the first table's data; the
    others hold only their descriptors (slots_state). `mapped`: descriptions file mappings
    hold (saved too, after the tables' own, even with no descriptor left)."""
    refs = Refs()
    for table in tables:
        for _, slot in table.items():
            refs.add(slot.file)
    for d in mapped or ():
        refs.add(d)
    descriptions = [[d.kind, d.flags, d.path, d.offset, d.save(refs)] for d in refs.descriptions]
    shared = [obj.save() for obj in refs.shared]
    first = {"descriptions": descriptions, "shared": shared, **tables[0].slots_state(refs)}
    return refs, [first] + [t.slots_state(refs) for t in tables[1:]]
