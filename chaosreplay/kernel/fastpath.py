"""The syscall fast path from the kernel's side: what a guest may answer itself before it
must exit, and the events its answers become.

With the fast path on, a VM's `syscall` first runs vmm_native/fastpath/fastpath.S. It
answers clock_gettime, gettimeofday, time, getpid, gettid and getppid from values
published here, appends a record per call to a ring, and exits only for any other call,
or once the budget published here is spent. The run stays the same call for call as a
run where every call exits:

- virtual time: an answered call costs `syscall_cost_ns`, as an exit does. The guest
  reads `now_ns` and adds the cost, so call k of a stretch sees vtime + k * cost;
- events: `drain` turns each record into the syscall event the exit would have made, at
  the virtual time it would have had;
- nothing else may happen between those calls. `budget` stops the guest before the call
  after which the exit path would have done anything but go straight on (the run's
  deadline, a due timer, a switch to another task or process) and is 0 whenever the exit
  path does work of its own at every call: a pending signal, shared file mappings, a
  skewed clock (the guest adds no rate), a pause at an event (run_to), a preempt.

The data page is guest-writable. A program that forges records or the count misleads
only its own run: `drain` takes at most the budget it published, recomputes every result
from the call's number and arguments, and ends the node at a record the code never
writes. Nothing read back from the page reaches a recording unchecked.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from chaosreplay.kernel.mm import page_cache
from chaosreplay.kernel.syscalls.clock import (
    BOOT_OFFSET_NS,
    CLOCK_REALTIME,
    NS,
    REALTIME_EPOCH_NS,
    clock_value,
)
from chaosreplay.kernel.syscalls.numbers import NUMBERS
from chaosreplay.vm.vmm import ffi

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

DEFAULT = True
"""Whether simulations use the fast path unless told not to (`--no-fast-path`)."""
RING = 188  # VMM_FASTPATH_RING (vmm.h)
_RECORD = struct.Struct("<8Q")  # struct vmm_fastpath_record: nr, six arguments, result
_MASK64 = (1 << 64) - 1
NR_CLOCK_GETTIME = NUMBERS["clock_gettime"]
NR_GETTIMEOFDAY = NUMBERS["gettimeofday"]
NR_TIME = NUMBERS["time"]
NR_GETPID, NR_GETTID, NR_GETPPID = NUMBERS["getpid"], NUMBERS["gettid"], NUMBERS["getppid"]


class FastPath:
    """One VM's fast path: publishes before each run, drains after it."""

    __slots__ = ("calls", "granted", "page", "ring")

    def __init__(self, page: object) -> None:
        self.page = page  # struct vmm_fastpath * into the VM's memory
        self.ring = page.ring  # type: ignore[attr-defined]
        self.granted = 0  # the budget of the run in progress
        self.calls = 0  # calls answered in the guest so far (each one an exit it saved)

    def arm(self, p: GuestProcess, deadline_ns: int | None) -> None:
        """Publish the values and the budget for the run about to start."""
        n = budget(p, deadline_ns)
        page = self.page
        if n == 0:
            if self.granted:
                page.budget = 0  # type: ignore[attr-defined]
                self.granted = 0
            return
        clock = p.clock
        # All of it every time: a restore may have put any bytes on the page.
        page.cost_ns = p.config.syscall_cost_ns  # type: ignore[attr-defined]
        page.mono_base = (BOOT_OFFSET_NS + clock.offset_ns) & _MASK64  # type: ignore[attr-defined]
        page.real_base = (REALTIME_EPOCH_NS + clock.offset_ns  # type: ignore[attr-defined]
                          + clock.realtime_offset_ns) & _MASK64
        page.pid, page.tid, page.ppid = p.pid, p.current.tid, p.ppid  # type: ignore[attr-defined]
        page.count = 0  # type: ignore[attr-defined]
        page.now_ns = p.vtime_ns  # type: ignore[attr-defined]
        page.budget = n  # type: ignore[attr-defined]
        self.granted = n

    def drain(self, p: GuestProcess) -> bool:
        """Turn the calls the guest answered into their events and their virtual time;
        False when a forged record ended the node."""
        granted = self.granted
        page = self.page
        count = page.count  # type: ignore[attr-defined]
        page.budget = 0  # type: ignore[attr-defined]
        self.granted = 0
        if not count:
            return True
        page.count = 0  # type: ignore[attr-defined]
        n = min(count, granted)
        self.calls += n
        cost = p.config.syscall_cost_ns
        emit = p.syscall_event if p.trace_syscalls else None
        records = _RECORD.iter_unpack(ffi.buffer(self.ring, n * _RECORD.size)[:])
        for i, (nr, a0, a1, a2, a3, a4, a5, claimed) in enumerate(records):
            ret = _result(p, nr, a0, a1)
            if ret is None or ret != claimed:
                p.kill_forged(f"the fast path's ring holds a record its code never writes "
                              f"(call {nr}, entry {i})")
                return False
            p.vtime_ns += cost
            p.syscalls += 1
            if emit is not None:
                emit(nr, [a0, a1, a2, a3, a4, a5], ret)
        return True


def _result(p: GuestProcess, nr: int, a0: int, a1: int) -> int | None:
    """What the exit path answers for a call the fast path took (None: it takes no such)."""
    if nr == NR_CLOCK_GETTIME:
        return 0 if a0 <= 7 and a1 >> 47 == 0 else None
    if nr == NR_GETTIMEOFDAY:
        return 0 if a1 == 0 and a0 >> 47 == 0 else None
    if nr == NR_TIME:
        if a0 >> 47:
            return None
        return clock_value(p, CLOCK_REALTIME) // NS  # what sys_time answers
    if nr == NR_GETPID:
        return p.pid
    if nr == NR_GETTID:
        return p.current.tid
    if nr == NR_GETPPID:
        return p.ppid
    return None


def budget(p: GuestProcess, deadline_ns: int | None) -> int:
    """How many fast-path calls the guest may answer before it must exit: every one of
    them would have been an exit that went straight on."""
    if (p.preempt or p.signals_dirty or p.stopped or p.kernel.fast_hold
            or p.clock.rate_ppb or page_cache.active(p)):
        return 0
    now = p.vtime_ns
    clock = p.clock
    if BOOT_OFFSET_NS + clock.offset_ns + now < 0 or (
            REALTIME_EPOCH_NS + clock.offset_ns + clock.realtime_offset_ns + now < 0):
        return 0  # the guest divides unsigned: negative readings take the exit
    limit = deadline_ns
    if p.timer_due_ns is not None:  # fires once vtime reaches it
        limit = p.timer_due_ns - 1 if limit is None else min(limit, p.timer_due_ns - 1)
    horizon = _switch_horizon(p, now)
    if horizon is not None:
        limit = horizon - 1 if limit is None else min(limit, horizon - 1)
    if limit is None:
        return RING
    cost = p.config.syscall_cost_ns
    if limit < now + cost:
        return 0
    return RING if cost == 0 else min(RING, (limit - now) // cost)


def _switch_horizon(p: GuestProcess, now: int) -> int | None:
    """The earliest virtual time after a call at which the scheduler could take the vCPU
    from the current task (None: never, while only fast calls run)."""
    if len(p.tasks) == 1 and p.table is None:
        return None
    if p.switch_pending:
        return now
    current = p.current
    earliest: int | None = None
    for task in p.tasks.values():
        if task is current:
            continue
        at = now if task.ready(now) else task.wake_time()
        if at is not None and (earliest is None or at < earliest):
            earliest = at
    if p.table is not None:
        at = p.table.earliest_other_ready(p, now)
        if at is not None and (earliest is None or at < earliest):
            earliest = at
    if earliest is None:
        return None
    if p.scheduler.random:  # it draws at every switch point with another task ready
        return earliest
    return max(earliest, current.ran_since_ns + p.scheduler.config.quantum_ns)

