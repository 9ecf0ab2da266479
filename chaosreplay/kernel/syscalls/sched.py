"""Scheduling settings: nice (get/setpriority), policies and priorities (sched_*), the
I/O priority (ioprio_get/set).

The settings are stored and read back as Linux does; the one-vCPU scheduler does not
consult them (tasks switch only at deterministic points, DESIGN §3a). Permission follows
Linux for a task without CAP_SYS_NICE in the initial namespace (the guest's identity, see
credentials.py) and with Linux's default limits RLIMIT_NICE = RLIMIT_RTPRIO = 0: a task may
raise its nice value but not lower it (EACCES), may not take a real-time or deadline policy
(EPERM), and may not leave SCHED_IDLE; the idle and best-effort I/O classes are open to it,
the real-time one is not.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.syscalls.args import int32, timespec
from chaosreplay.kernel.task_attributes import SCHED_OTHER, attributes_of, names_this_process

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

PRIO_PROCESS, PRIO_PGRP, PRIO_USER = 0, 1, 2
NICE_MIN, NICE_MAX = -20, 19
RLIMIT_NICE_CUR = RLIMIT_RTPRIO_CUR = 0  # Linux's defaults for every task (init_task)
SCHED_FIFO, SCHED_RR, SCHED_BATCH, SCHED_IDLE, SCHED_DEADLINE = 1, 2, 3, 5, 6
POLICIES = (SCHED_OTHER, SCHED_FIFO, SCHED_RR, SCHED_BATCH, SCHED_IDLE, SCHED_DEADLINE)
REAL_TIME = (SCHED_FIFO, SCHED_RR)
SCHED_RESET_ON_FORK = 0x40000000
SETPARAM_POLICY = -1
MAX_RT_PRIO = 100
RR_TIMESLICE_NS = 100_000_000  # sched_rr_timeslice_ms's default
SCHED_FLAG_RESET_ON_FORK, SCHED_FLAG_KEEP_POLICY, SCHED_FLAG_KEEP_PARAMS = 0x1, 0x8, 0x10
SCHED_FLAGS_KNOWN = 0x7F  # RESET_ON_FORK .. UTIL_CLAMP_MAX
SCHED_ATTR_SIZE_VER0, SCHED_ATTR_SIZE = 48, 56
PAGE_SIZE = 4096
IOPRIO_WHO_PROCESS, IOPRIO_WHO_PGRP, IOPRIO_WHO_USER = 1, 2, 3
IOPRIO_CLASS_NONE, IOPRIO_CLASS_RT, IOPRIO_CLASS_BE, IOPRIO_CLASS_IDLE = 0, 1, 2, 3
IOPRIO_CLASS_SHIFT, IOPRIO_NR_LEVELS = 13, 8


# -- nice ------------------------------------------------------------------------------------
def _who_is_self(p: GuestProcess, which: int, who: int) -> int:
    """0 when (which, who) names this process, -EINVAL or -ESRCH otherwise."""
    if which not in (PRIO_PROCESS, PRIO_PGRP, PRIO_USER):
        return -errno.EINVAL
    if which == PRIO_USER:
        return 0 if who == 0 else -errno.ESRCH  # uid 0 is the only user: ours
    return 0 if names_this_process(p, who) else -errno.ESRCH


def _can_nice(nice: int) -> bool:
    """Linux's can_nice(): whether RLIMIT_NICE allows this nice value at all."""
    return 20 - nice <= RLIMIT_NICE_CUR


def sys_getpriority(p: GuestProcess, r: Any) -> int:
    found = _who_is_self(p, int32(r.rdi), int32(r.rsi))
    return found if found else 20 - attributes_of(p).nice  # the syscall answers 20 - nice


def sys_setpriority(p: GuestProcess, r: Any) -> int:
    found = _who_is_self(p, int32(r.rdi), int32(r.rsi))
    if found:
        return found
    nice = min(max(int32(r.rdx), NICE_MIN), NICE_MAX)
    attributes = attributes_of(p)
    if nice < attributes.nice and not _can_nice(nice):
        return -errno.EACCES
    attributes.nice = nice
    return 0


# -- policies ---------------------------------------------------------------------------------
def _set_scheduler(p: GuestProcess, policy: int, priority: int, nice: int | None,
                   reset_on_fork: bool | None) -> int:
    """Linux's __sched_setscheduler for an unprivileged task: checks, then the change."""
    a = attributes_of(p)
    if policy == SETPARAM_POLICY:
        policy = a.policy
    if policy not in POLICIES:
        return -errno.EINVAL
    if not 0 <= priority < MAX_RT_PRIO or (policy in REAL_TIME) != (priority != 0):
        return -errno.EINVAL
    if policy == SCHED_DEADLINE:
        return -errno.EINVAL if nice is None else -errno.EPERM  # no runtime: never valid
    if policy in REAL_TIME:
        if policy != a.policy and not RLIMIT_RTPRIO_CUR:
            return -errno.EPERM
        if priority > max(a.rt_priority, RLIMIT_RTPRIO_CUR):
            return -errno.EPERM
    elif nice is not None and nice < a.nice and not _can_nice(nice):
        return -errno.EPERM
    if a.policy == SCHED_IDLE and policy != SCHED_IDLE and not _can_nice(a.nice):
        return -errno.EPERM
    if reset_on_fork is False and a.reset_on_fork:
        return -errno.EPERM  # only CAP_SYS_NICE may clear it
    a.policy, a.rt_priority = policy, priority
    if nice is not None and policy not in REAL_TIME:
        a.nice = nice
    if reset_on_fork is not None:
        a.reset_on_fork = reset_on_fork
    return 0


def _param(p: GuestProcess, pid: int, param: int) -> int:
    """The priority in a struct sched_param, or -errno (EINVAL, EFAULT, ESRCH, in order)."""
    if not param or pid < 0:
        return -errno.EINVAL
    raw = p.space.read(param, 4)
    if raw is None:
        return -errno.EFAULT
    if not names_this_process(p, pid):
        return -errno.ESRCH
    return struct.unpack("<I", raw)[0]  # a negative priority is a huge one: EINVAL later


def sys_sched_setscheduler(p: GuestProcess, r: Any) -> int:
    pid, policy = int32(r.rdi), int32(r.rsi)
    if policy < 0:
        return -errno.EINVAL
    priority = _param(p, pid, r.rdx)
    if priority < 0:
        return priority
    reset = bool(policy & SCHED_RESET_ON_FORK)
    return _set_scheduler(p, policy & ~SCHED_RESET_ON_FORK, priority, None, reset)


def sys_sched_setparam(p: GuestProcess, r: Any) -> int:
    pid = int32(r.rdi)
    priority = _param(p, pid, r.rsi)
    if priority < 0:
        return priority
    return _set_scheduler(p, SETPARAM_POLICY, priority, None, None)


def sys_sched_getscheduler(p: GuestProcess, r: Any) -> int:
    pid = int32(r.rdi)
    if pid < 0:
        return -errno.EINVAL
    if not names_this_process(p, pid):
        return -errno.ESRCH
    a = attributes_of(p)
    return a.policy | (SCHED_RESET_ON_FORK if a.reset_on_fork else 0)


def sys_sched_getparam(p: GuestProcess, r: Any) -> int:
    pid = int32(r.rdi)
    if not r.rsi or pid < 0:
        return -errno.EINVAL
    if not names_this_process(p, pid):
        return -errno.ESRCH
    priority = attributes_of(p).rt_priority
    return 0 if p.space.write(r.rsi, struct.pack("<i", priority)) else -errno.EFAULT


def sys_sched_get_priority_max(p: GuestProcess, r: Any) -> int:
    policy = int32(r.rdi)
    if policy not in POLICIES:
        return -errno.EINVAL
    return MAX_RT_PRIO - 1 if policy in REAL_TIME else 0


def sys_sched_get_priority_min(p: GuestProcess, r: Any) -> int:
    policy = int32(r.rdi)
    if policy not in POLICIES:
        return -errno.EINVAL
    return 1 if policy in REAL_TIME else 0


def sys_sched_rr_get_interval(p: GuestProcess, r: Any) -> int:
    """SCHED_RR's time slice; 0 for the others (a fair slice on one CPU is under a tick)."""
    pid = int32(r.rdi)
    if pid < 0:
        return -errno.EINVAL
    if not names_this_process(p, pid):
        return -errno.ESRCH
    slice_ns = RR_TIMESLICE_NS if attributes_of(p).policy == SCHED_RR else 0
    return 0 if p.space.write(r.rsi, timespec(slice_ns)) else -errno.EFAULT


def sys_sched_setattr(p: GuestProcess, r: Any) -> int:
    pid, attr, flags = int32(r.rdi), r.rsi, r.rdx & 0xFFFFFFFF
    if not attr or pid < 0 or flags:
        return -errno.EINVAL
    raw = p.space.read(attr, 4)
    if raw is None:
        return -errno.EFAULT
    size = struct.unpack("<I", raw)[0] or SCHED_ATTR_SIZE_VER0
    if size < SCHED_ATTR_SIZE_VER0 or size > PAGE_SIZE:
        p.space.write(attr, struct.pack("<I", SCHED_ATTR_SIZE))
        return -errno.E2BIG
    raw = p.space.read(attr, size)
    if raw is None:
        return -errno.EFAULT
    if any(raw[SCHED_ATTR_SIZE:]):
        p.space.write(attr, struct.pack("<I", SCHED_ATTR_SIZE))
        return -errno.E2BIG  # fields this kernel does not know are set
    _, policy, sched_flags, nice, priority = struct.unpack_from("<IIQiI", raw)
    if policy > 0x7FFFFFFF:
        return -errno.EINVAL
    if not names_this_process(p, pid):
        return -errno.ESRCH
    a = attributes_of(p)
    if sched_flags & SCHED_FLAG_KEEP_POLICY:
        policy = a.policy
    if sched_flags & ~SCHED_FLAGS_KNOWN or sched_flags & 0x60:
        return -errno.EINVAL if sched_flags & ~SCHED_FLAGS_KNOWN else -errno.EOPNOTSUPP
    if sched_flags & SCHED_FLAG_KEEP_PARAMS:
        priority, nice = a.rt_priority, a.nice
    nice = min(max(nice, NICE_MIN), NICE_MAX)
    return _set_scheduler(p, policy, priority, nice,
                          bool(sched_flags & SCHED_FLAG_RESET_ON_FORK))


def sys_sched_getattr(p: GuestProcess, r: Any) -> int:
    pid, attr, size, flags = int32(r.rdi), r.rsi, r.rdx & 0xFFFFFFFF, r.r10 & 0xFFFFFFFF
    if not attr or pid < 0 or size > PAGE_SIZE or size < SCHED_ATTR_SIZE_VER0 or flags:
        return -errno.EINVAL
    if not names_this_process(p, pid):
        return -errno.ESRCH
    a = attributes_of(p)
    real_time = a.policy in REAL_TIME
    data = struct.pack("<IIQiIQQQII", min(size, SCHED_ATTR_SIZE), a.policy,
                       SCHED_FLAG_RESET_ON_FORK if a.reset_on_fork else 0,
                       0 if real_time else a.nice, a.rt_priority if real_time else 0,
                       0, 0, 0, 0, 0)
    return 0 if p.space.write(attr, data[:size]) else -errno.EFAULT


# -- I/O priority -----------------------------------------------------------------------------
def _io_who(p: GuestProcess, which: int, who: int) -> int:
    if which not in (IOPRIO_WHO_PROCESS, IOPRIO_WHO_PGRP, IOPRIO_WHO_USER):
        return -errno.EINVAL
    if which == IOPRIO_WHO_USER:
        return 0 if who == 0 else -errno.ESRCH
    return 0 if names_this_process(p, who) else -errno.ESRCH


def sys_ioprio_get(p: GuestProcess, r: Any) -> int:
    found = _io_who(p, int32(r.rdi), int32(r.rsi))
    return found if found else attributes_of(p).ioprio


def sys_ioprio_set(p: GuestProcess, r: Any) -> int:
    which, who, ioprio = int32(r.rdi), int32(r.rsi), int32(r.rdx)
    klass = (ioprio >> IOPRIO_CLASS_SHIFT) & 0x7
    data = ioprio & ((1 << IOPRIO_CLASS_SHIFT) - 1)
    if ioprio < 0 or ioprio > 0xFFFF:
        return -errno.EINVAL
    if klass == IOPRIO_CLASS_RT:
        return -errno.EPERM  # needs CAP_SYS_NICE or CAP_SYS_ADMIN in the initial namespace
    if klass == IOPRIO_CLASS_BE:
        if data >= IOPRIO_NR_LEVELS:
            return -errno.EINVAL
    elif klass == IOPRIO_CLASS_IDLE:
        pass
    elif klass == IOPRIO_CLASS_NONE:
        if data:
            return -errno.EINVAL
    else:
        return -errno.EINVAL
    found = _io_who(p, which, who)
    if found:
        return found
    attributes_of(p).ioprio = ioprio
    return 0


HANDLERS = {
    140: sys_getpriority,
    141: sys_setpriority,
    142: sys_sched_setparam,
    143: sys_sched_getparam,
    144: sys_sched_setscheduler,
    145: sys_sched_getscheduler,
    146: sys_sched_get_priority_max,
    147: sys_sched_get_priority_min,
    148: sys_sched_rr_get_interval,
    314: sys_sched_setattr,
    315: sys_sched_getattr,
    251: sys_ioprio_set,
    252: sys_ioprio_get,
}
