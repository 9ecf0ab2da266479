"""The shape of a node's kernel-side state as read back from a checkpoint: the process's
(`GuestProcess.kernel_state()`) and its disk's (`FileSystem.snapshot()`), each one table of
field -> check, run before anything is adopted.

A field added to kernel_state() or the disk snapshot gets one line here: test_state_check
compares the tables with real states, so a missing line fails there. The tables are open
(a key they do not name is ignored, as the loaders ignore it), so a field added elsewhere
never makes honest checkpoints unloadable before its line is here.
"""

from __future__ import annotations

from typing import Any

from chaosreplay.kernel.fs.disk import FAULT_KINDS, ROOT_INO
from chaosreplay.kernel.fs.disk import SNAPSHOT_VERSION as DISK_VERSION
from chaosreplay.kernel.process import Status
from chaosreplay.kernel.syscalls.files import STATE_VERSION as FILES_STATE_VERSION
from chaosreplay.recording.schema import (
    I64_MAX,
    I64_MIN,
    U64_MAX,
    Bool,
    Bytes,
    Float,
    Int,
    ListOf,
    Maybe,
    OneOf,
    Record,
    Row,
    Str,
    Where,
    unique,
    validate,
)

PAGE = 4096
USER_VA_END = 1 << 47  # the user half: every VMA and brk lies below it
NS = Int(0, I64_MAX)  # a virtual time in ns (292 years)
STREAMS = ("auxv", "getrandom", "sdk")  # GuestProcess._streams (a test checks the mirror)


def _vmas_in_order(vmas: list[list[Any]]) -> str | None:
    """VMAs are page-aligned, non-empty, sorted and disjoint, as AddressSpace keeps them."""
    end = 0
    for i, (start, stop, _, _) in enumerate(vmas):
        if start % PAGE or stop % PAGE or not start < stop:
            return f"item {i} [{start:#x}, {stop:#x}) is not a page-aligned range"
        if start < end:
            return f"item {i} at {start:#x} overlaps or precedes the one before"
        end = stop
    return None


def _brk_in_order(state: dict[str, Any]) -> str | None:
    if state["brk"] < state["brk_start"]:
        return f"has brk {state['brk']:#x} below brk_start {state['brk_start']:#x}"
    return None


def _fds_name_descriptions(files: dict[str, Any]) -> str | None:
    count = len(files["open"])
    for fd, index, _ in files["fds"]:
        if index >= count:
            return f"has fd {fd} naming description {index} of {count}"
    return None


VMA = Row(Int(0, USER_VA_END), Int(0, USER_VA_END), Int(0, 7), Str(4096))

FILES = Where(Record({
    "version": OneOf(FILES_STATE_VERSION),
    "open": ListOf(Row(Int(0, U64_MAX), Int(0, 2**32 - 1), Bytes(4096), Int(0, I64_MAX)),
                   max_len=1 << 16),
    "fds": Where(ListOf(Row(Int(0, 2**31 - 1), Int(0, 1 << 16), Bool()), max_len=1 << 16),
                 unique(lambda row: row[0], "fd")),
}), _fds_name_descriptions)

KERNEL_STATE = Where(Record({
    "vtime_ns": NS,
    "clock": Record({"anchor_ns": NS, "offset_ns": Int(I64_MIN, I64_MAX),
                     # the clock runs at (1e9 + rate_ppb) / 1e9: it must move forward
                     "rate_ppb": Int(-999_999_999, 10**12),
                     "realtime_offset_ns": Int(I64_MIN, I64_MAX)}),
    "incarnation": Int(0, 2**32),
    "status": OneOf(*(s.value for s in Status)),
    "exit_code": Maybe(Int(0, 255)),
    "wake_at_ns": Maybe(NS),
    "syscalls": Int(0, U64_MAX),
    "unknown_syscalls": ListOf(Row(Int(0, U64_MAX), Int(0, U64_MAX)), max_len=1 << 16),
    "stdout": Bytes(),
    "stderr": Bytes(),
    "signal_actions": Where(ListOf(Row(Int(1, 64), Where(Bytes(32), lambda b: None if len(b)
                                                          == 32 else "is not 32 bytes")),
                                   max_len=64),
                            unique(lambda row: row[0], "signal")),
    "signal_mask": Int(0, U64_MAX),
    "tid_address": Int(0, U64_MAX),
    "random": Where(ListOf(Row(OneOf(*STREAMS), Int(0, I64_MAX)), max_len=len(STREAMS)),
                    unique(lambda row: row[0], "stream")),
    "rdrand": Int(0, I64_MAX),
    "rdseed": Int(0, I64_MAX),
    "vmas": Where(ListOf(VMA, max_len=1 << 16), _vmas_in_order),
    "brk_start": Int(0, USER_VA_END),
    "brk": Int(0, USER_VA_END),
    "memory_limit": Maybe(Int(0, U64_MAX)),
    "files": FILES,
}, open=True), _brk_in_order)


def _disk_is_a_tree(snap: dict[str, Any]) -> str | None:
    """Inode numbers unique, every entry names an inode, and the directories (current and
    durable) form one tree under the root: crash recovery and lookups walk it recursively."""
    inodes = {}
    for node in snap["inodes"]:
        if node["ino"] in inodes:
            return f"names inode {node['ino']} twice"
        inodes[node["ino"]] = node
    root = inodes.get(ROOT_INO)
    if root is None or not root["dir"]:
        return f"has no root directory (inode {ROOT_INO})"
    for field in ("entries", "durable_entries"):
        seen, todo = {ROOT_INO}, [ROOT_INO]
        while todo:
            for name, ino in inodes[todo.pop()][field]:
                child = inodes.get(ino)
                if child is None:
                    return f"has a {field} entry {name!r} naming missing inode {ino}"
                if child["dir"]:
                    if ino in seen:
                        return f"has directory inode {ino} twice in its {field} tree"
                    seen.add(ino)
                    todo.append(ino)
    return None


ENTRY = Row(Bytes(255), Int(1, U64_MAX))
TIME = Int(I64_MIN, I64_MAX)
INODE = Record({
    "ino": Int(1, U64_MAX), "dir": Bool(), "mode": Int(0, 0o7777), "data": Bytes(),
    "durable": Bytes(), "ops": ListOf(Row(Int(0, I64_MAX), Maybe(Bytes()))),
    "entries": ListOf(ENTRY), "durable_entries": ListOf(ENTRY),
    "parent": Int(1, U64_MAX), "links": Int(0, 2**32), "durable_links": Int(0, 2**32),
    "opens": Int(0, 2**32), "mtime": TIME, "ctime": TIME, "durable_mtime": TIME,
})

DISK_STATE = Where(Record({
    "version": OneOf(DISK_VERSION),
    "seed": Int(0, U64_MAX),
    "node": Int(0, 1 << 16),
    "capacity_bytes": Int(0, U64_MAX),
    "position": Int(0, I64_MAX),
    "next_ino": Int(1, U64_MAX),
    "faults": ListOf(Row(Str(256), OneOf(*FAULT_KINDS), Float(0.0, 1.0)), max_len=1 << 10),
    "inodes": ListOf(INODE, max_len=1 << 20),
}, open=True), _disk_is_a_tree)


def check_disk_state(snap: Any, part: str) -> None:
    """Raise SchemaError (naming `part` and the field) unless snap fits DISK_STATE."""
    validate(snap, DISK_STATE, part)


def check_kernel_state(state: Any, part: str) -> None:
    """Raise SchemaError (naming `part` and the field) unless state fits KERNEL_STATE."""
    validate(state, KERNEL_STATE, part)
