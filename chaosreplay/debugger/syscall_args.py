"""A recorded system call's arguments as a reader wants them: descriptors, open flags,
protections, `AT_FDCWD` — from the event alone (paths live in guest memory, which the
event does not hold; the state at the event shows them)."""

from __future__ import annotations

from collections.abc import Callable

AT_FDCWD = -100
# Linux x86-64 values (include/uapi/asm-generic/fcntl.h, mman-common.h), not the host's.
OPEN_ACCESS = {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR"}
OPEN_FLAGS = ((0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o400, "O_NOCTTY"), (0o1000, "O_TRUNC"),
              (0o2000, "O_APPEND"), (0o4000, "O_NONBLOCK"), (0o10000, "O_DSYNC"),
              (0o200000, "O_DIRECTORY"), (0o400000, "O_NOFOLLOW"), (0o2000000, "O_CLOEXEC"),
              (0o4010000, "O_SYNC"), (0o20200000, "O_TMPFILE"))
PROT_FLAGS = ((1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC"))
MAP_FLAGS = ((0x01, "MAP_SHARED"), (0x02, "MAP_PRIVATE"), (0x10, "MAP_FIXED"),
             (0x20, "MAP_ANONYMOUS"), (0x100000, "MAP_FIXED_NOREPLACE"))


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _fd(value: int) -> str:
    value = _signed(value)
    return "AT_FDCWD" if value == AT_FDCWD else f"fd {value}"


def _bits(table: tuple[tuple[int, str], ...], value: int, zero: str) -> str:
    names, rest = [], value
    for bit, name in table:
        if value & bit == bit and bit & rest:
            names.append(name)
            rest &= ~bit
    if rest:
        names.append(f"{rest:#x}")
    return "|".join(names) or zero


def _open_flags(value: int) -> str:
    access = OPEN_ACCESS.get(value & 3, f"{value & 3:#x}")
    rest = _bits(OPEN_FLAGS, value & ~3 & 0xFFFFFFFF, "")
    return f"{access}|{rest}" if rest else access


def _address(value: int) -> str:
    return f"{value:#x}" if value > 0xFFFF else str(value)


def _plain(value: int) -> str:
    return str(_signed(value))


Shown = Callable[[int], str]
# (argument renderers in order) for calls whose arguments mean something without memory.
SHAPES: dict[str, tuple[Shown, ...]] = {
    **{name: (_fd, _address, _plain) for name in ("read", "write", "pread64", "pwrite64",
                                                  "readv", "writev", "getdents64")},
    **{name: (_fd,) for name in ("close", "fsync", "fdatasync", "dup", "fchdir")},
    "lseek": (_fd, _plain, _plain),
    "fstat": (_fd, _address),
    "ftruncate": (_fd, _plain),
    "dup2": (_fd, _fd), "dup3": (_fd, _fd, _open_flags),
    "fcntl": (_fd, _plain, _plain),
    "open": (_address, _open_flags, lambda v: f"{v:#o}"),
    "openat": (_fd, _address, _open_flags, lambda v: f"{v:#o}"),
    "mkdirat": (_fd, _address, lambda v: f"{v:#o}"),
    "unlinkat": (_fd, _address, _plain),
    "renameat": (_fd, _address, _fd, _address),
    "mmap": (_address, _address, lambda v: _bits(PROT_FLAGS, v, "PROT_NONE"),
             lambda v: _bits(MAP_FLAGS, v, "0"), _fd, _address),
    "mprotect": (_address, _address, lambda v: _bits(PROT_FLAGS, v, "PROT_NONE")),
    "munmap": (_address, _address),
}


def describe_arguments(name: str, args: list[int], shown: int = 3) -> str:
    """`fd 3, 0x40d480, 528` for a call this module knows, else the first `shown` raw
    arguments (addresses in hex)."""
    shape = SHAPES.get(name)
    if shape is None:
        return ", ".join(_address(a) if isinstance(a, int) else str(a) for a in args[:shown])
    return ", ".join(render(a) if isinstance(a, int) else str(a)
                     for render, a in zip(shape, args, strict=False))
