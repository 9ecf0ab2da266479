"""Futexes: tasks sleeping on a 32-bit word of their process's memory until woken.

The queue of a word is the set of tasks whose `FutexWait` names it, oldest enqueue first
(Linux wakes in FIFO order among equal priorities). Nothing else is stored, so a checkpoint
of the tasks is a checkpoint of every futex. Keys are virtual addresses: the tasks of one
process share one address space; futexes shared between processes come with fork.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from chaosreplay.kernel.task import FutexWait, Task

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

FUTEX_BITSET_MATCH_ANY = 0xFFFFFFFF
FUTEX_WAITERS = 0x80000000
FUTEX_OWNER_DIED = 0x40000000
FUTEX_TID_MASK = 0x3FFFFFFF


def read_word(p: GuestProcess, address: int) -> int | None:
    if address & 3:
        return None
    raw = p.space.read(address, 4)
    return None if raw is None else struct.unpack("<I", raw)[0]


def write_word(p: GuestProcess, address: int, value: int) -> bool:
    return p.space.write(address, struct.pack("<I", value & 0xFFFFFFFF))


def enqueue(p: GuestProcess, task: Task, address: int, bitset: int) -> None:
    """Put task at the back of the word's queue."""
    p.futex_sequence += 1
    task.futex = FutexWait(address, bitset, p.futex_sequence)


def waiters(p: GuestProcess, address: int, bitset: int = FUTEX_BITSET_MATCH_ANY) -> list[Task]:
    """The tasks asleep on the word whose bitset meets `bitset`, in queue order."""
    found = [t for t in p.tasks.values() if t.futex is not None and not t.futex.woken
             and t.futex.address == address and t.futex.bitset & bitset]
    found.sort(key=lambda t: t.futex.sequence)  # type: ignore[union-attr]
    return found


def wake(p: GuestProcess, address: int, count: int,
         bitset: int = FUTEX_BITSET_MATCH_ANY) -> int:
    """Wake up to count sleepers of the word; the number woken."""
    woken = 0
    for task in waiters(p, address, bitset)[: max(0, count)]:
        assert task.futex is not None
        task.futex.woken = True
        woken += 1
    return woken


def requeue(p: GuestProcess, address: int, wake_count: int, target: int,
            move_count: int) -> int:
    """Wake up to wake_count sleepers and move up to move_count others to target."""
    queue = waiters(p, address)
    woken = wake(p, address, wake_count)
    moved = 0
    for task in queue[woken:][: max(0, move_count)]:
        assert task.futex is not None
        task.futex.address = target
        moved += 1
    return woken + moved


_OPS = {0: lambda old, arg: arg, 1: lambda old, arg: old + arg, 2: lambda old, arg: old | arg,
        3: lambda old, arg: old & ~arg, 4: lambda old, arg: old ^ arg}
_CMPS = {0: lambda a, b: a == b, 1: lambda a, b: a != b, 2: lambda a, b: a < b,
         3: lambda a, b: a <= b, 4: lambda a, b: a > b, 5: lambda a, b: a >= b}


def _signed12(value: int) -> int:
    return value - 0x1000 if value & 0x800 else value


def wake_op(p: GuestProcess, address: int, count: int, address2: int, count2: int,
            encoded: int) -> int:
    """FUTEX_WAKE_OP: update the second word, wake the first's sleepers, and the second's
    when the old value of the second word passes the encoded comparison."""
    op, cmp = (encoded >> 28) & 0xF, (encoded >> 24) & 0xF
    oparg, cmparg = _signed12((encoded >> 12) & 0xFFF), _signed12(encoded & 0xFFF)
    if op & 8:  # FUTEX_OP_OPARG_SHIFT
        if not 0 <= oparg <= 31:
            return -errno.EINVAL
        oparg, op = 1 << oparg, op & 7
    if op not in _OPS or cmp not in _CMPS:
        return -errno.ENOSYS
    old = read_word(p, address2)
    if old is None:
        return -errno.EFAULT
    if not write_word(p, address2, _OPS[op](old, oparg & 0xFFFFFFFF)):
        return -errno.EFAULT
    woken = wake(p, address, count)
    signed_old = old - (1 << 32) if old & 0x80000000 else old
    if _CMPS[cmp](signed_old, cmparg):
        woken += wake(p, address2, count2)
    return woken


def release_robust_list(p: GuestProcess, task: Task, limit: int = 2048) -> None:
    """A thread died: mark the robust futexes it held OWNER_DIED and wake one waiter each
    (Linux's exit_robust_list, bounded the same way against a looping list)."""
    head = task.robust_list
    if not head:
        return
    raw = p.space.read(head, 24)
    if raw is None:
        return
    first, offset, pending = struct.unpack("<QqQ", raw)
    entry, seen = first, 0
    while entry != head and seen < limit:
        _mark_dead(p, task, entry + offset)
        raw = p.space.read(entry, 8)
        if raw is None:
            return
        entry = struct.unpack("<Q", raw)[0]
        seen += 1
    if pending:
        _mark_dead(p, task, pending + offset)


def _mark_dead(p: GuestProcess, task: Task, address: int) -> None:
    word = read_word(p, address)
    if word is None or word & FUTEX_TID_MASK != task.tid:
        return
    write_word(p, address, (word & FUTEX_WAITERS) | FUTEX_OWNER_DIED)
    if word & FUTEX_WAITERS:
        wake(p, address, 1)
