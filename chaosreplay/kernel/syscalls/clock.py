"""Time system calls, all answered from the node's virtual clock.

CLOCK_REALTIME starts at a fixed epoch so dates are the same in every run; the monotonic
clocks start near zero like a freshly booted machine.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.syscalls.args import timespec_ns
from chaosreplay.kernel.syscalls.numbers import NUMBERS

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

REALTIME_EPOCH_NS = 1_704_067_200 * 1_000_000_000  # 2024-01-01T00:00:00Z
BOOT_OFFSET_NS = 1_000_000_000                       # monotonic time at program start
CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID = 0, 1, 2, 3
CLOCK_MONOTONIC_RAW, CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE, CLOCK_BOOTTIME = 4, 5, 6, 7
TIMER_ABSTIME = 1
_REALTIME = {CLOCK_REALTIME, CLOCK_REALTIME_COARSE}
_KNOWN = {0, 1, 2, 3, 4, 5, 6, 7}
NS = 1_000_000_000


def clock_value(p: GuestProcess, clock_id: int) -> int | None:
    """The reading of a clock in ns, or None for an unknown clock."""
    if clock_id not in _KNOWN:
        return None
    if clock_id in (CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID):
        return p.vtime_ns
    if clock_id in _REALTIME:
        return REALTIME_EPOCH_NS + p.realtime_ns()
    return BOOT_OFFSET_NS + p.guest_time_ns()


def _timespec(ns: int) -> bytes:
    return struct.pack("<qq", ns // NS, ns % NS)


def sys_clock_gettime(p: GuestProcess, r: Any) -> int:
    value = clock_value(p, r.rdi)
    if value is None:
        return -errno.EINVAL
    return 0 if p.space.write(r.rsi, _timespec(value)) else -errno.EFAULT


def sys_clock_getres(p: GuestProcess, r: Any) -> int:
    if r.rdi not in _KNOWN:
        return -errno.EINVAL
    if r.rsi and not p.space.write(r.rsi, _timespec(1)):
        return -errno.EFAULT
    return 0


def sys_gettimeofday(p: GuestProcess, r: Any) -> int:
    now = REALTIME_EPOCH_NS + p.realtime_ns()
    if r.rdi and not p.space.write(r.rdi, struct.pack("<qq", now // NS, (now % NS) // 1000)):
        return -errno.EFAULT
    if r.rsi and not p.space.write(r.rsi, struct.pack("<ii", 0, 0)):
        return -errno.EFAULT
    return 0


def sys_time(p: GuestProcess, r: Any) -> int:
    seconds = (REALTIME_EPOCH_NS + p.realtime_ns()) // NS
    if r.rdi and not p.space.write(r.rdi, struct.pack("<q", seconds)):
        return -errno.EFAULT
    return seconds



def _sleep(p: GuestProcess, duration_ns: int | None) -> int:
    if duration_ns is None:
        return -errno.EFAULT
    if duration_ns < 0:
        return -errno.EINVAL
    p.block_for(duration_ns)
    return 0


def sys_nanosleep(p: GuestProcess, r: Any) -> int:
    return _sleep(p, timespec_ns(p, r.rdi))


def sys_clock_nanosleep(p: GuestProcess, r: Any) -> int:
    clock_id, flags, request = r.rdi, r.rsi, r.rdx
    now = clock_value(p, clock_id)
    if now is None or clock_id in (CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID):
        return -errno.EINVAL
    value = timespec_ns(p, request)
    if value is None or value < 0 or not flags & TIMER_ABSTIME:
        return _sleep(p, value)
    return _sleep(p, max(0, value - now))


HANDLERS = {
    NUMBERS["clock_gettime"]: sys_clock_gettime,
    NUMBERS["clock_getres"]: sys_clock_getres,
    NUMBERS["gettimeofday"]: sys_gettimeofday,
    NUMBERS["time"]: sys_time,
    NUMBERS["nanosleep"]: sys_nanosleep,
    NUMBERS["clock_nanosleep"]: sys_clock_nanosleep,
}
