"""What a program asks about its machine and itself at start-up: getrusage, times,
sysinfo, prctl (the task name and a few flags), personality, getgroups, membarrier.

CPU time is virtual time: compute between system calls is free (DESIGN §3a), so a
program's user time is the virtual time it has run, and its system time is zero.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.fs.procfs import _memory, uptime_seconds_ns
from chaosreplay.kernel.syscalls.args import int32
from chaosreplay.kernel.syscalls.numbers import NUMBERS
from chaosreplay.kernel.task_attributes import attributes_of

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

RUSAGE_SELF, RUSAGE_CHILDREN, RUSAGE_THREAD = 0, -1, 1
PR_SET_PDEATHSIG, PR_GET_PDEATHSIG, PR_GET_DUMPABLE, PR_SET_DUMPABLE = 1, 2, 3, 4
PR_SET_NAME, PR_GET_NAME, PR_CAPBSET_READ = 15, 16, 23
PR_SET_TIMERSLACK, PR_GET_TIMERSLACK, PR_SET_NO_NEW_PRIVS, PR_GET_NO_NEW_PRIVS = 29, 30, 38, 39
PR_SET_VMA = 0x53564D41
TASK_COMM_LEN = 16
MEMBARRIER_CMD_QUERY = 0
MEMBARRIER_COMMANDS = 0x7F  # GLOBAL .. REGISTER_PRIVATE_EXPEDITED_SYNC_CORE


def sys_getrusage(p: GuestProcess, r: Any) -> int:
    who = int32(r.rdi)
    if who not in (RUSAGE_SELF, RUSAGE_CHILDREN, RUSAGE_THREAD):
        return -errno.EINVAL
    user_us = p.vtime_ns // 1000 if who != RUSAGE_CHILDREN else 0
    maxrss_kb = _memory(p)[1] // 1024 if who != RUSAGE_CHILDREN else 0
    fields = [user_us // 1_000_000, user_us % 1_000_000, 0, 0, maxrss_kb] + [0] * 13
    return 0 if p.space.write(r.rsi, struct.pack("<18q", *fields)) else -errno.EFAULT


HZ, USER_HZ = 1000, 100
INITIAL_JIFFIES = (1 << 32) - 300 * HZ  # jiffies at boot: wraps 5 minutes in, on purpose
PERSONALITY_QUERY = 0xFFFFFFFF


def sys_times(p: GuestProcess, r: Any) -> int:
    """The process's CPU time in clock ticks (its virtual time, all of it user time) and the
    ticks since boot counted the way Linux counts jiffies."""
    tick_ns = 1_000_000_000 // USER_HZ
    if r.rdi and not p.space.write(r.rdi, struct.pack("<4q", p.vtime_ns // tick_ns, 0, 0, 0)):
        return -errno.EFAULT
    jiffies = INITIAL_JIFFIES + uptime_seconds_ns(p) * HZ // 1_000_000_000
    return jiffies // (HZ // USER_HZ)


def sys_personality(p: GuestProcess, r: Any) -> int:
    """The execution domain: stored and read back (0xffffffff only reads). No flag changes
    what the VMM does (ADDR_NO_RANDOMIZE is always true here: nothing is randomised)."""
    attributes = attributes_of(p)
    old = attributes.personality
    if r.rdi & 0xFFFFFFFF != PERSONALITY_QUERY:
        attributes.personality = r.rdi & 0xFFFFFFFF
    return old


def sys_sysinfo(p: GuestProcess, r: Any) -> int:
    total, used = _memory(p)
    uptime = uptime_seconds_ns(p) // 1_000_000_000
    data = struct.pack("<q3Q6QH2x4xQQI", uptime, 0, 0, 0, total, total - used, 0, 0, 0, 0,
                       1, 0, 0, 1)
    return 0 if p.space.write(r.rdi, data.ljust(112, b"\0")) else -errno.EFAULT


def sys_prctl(p: GuestProcess, r: Any) -> int:
    option, arg2 = int32(r.rdi), r.rsi
    if option == PR_SET_NAME:
        raw = p.space.read_cstring(arg2, TASK_COMM_LEN)
        if raw is None:
            raw = p.space.read(arg2, TASK_COMM_LEN)  # no NUL within 16 bytes: first 15 count
            if raw is None:
                return -errno.EFAULT
        p.comm = raw.split(b"\0")[0][: TASK_COMM_LEN - 1]
        return 0
    if option == PR_GET_NAME:
        return 0 if p.space.write(arg2, p.comm.ljust(TASK_COMM_LEN, b"\0")) else -errno.EFAULT
    if option == PR_GET_DUMPABLE:
        return 1
    if option in (PR_SET_DUMPABLE, PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_SET_TIMERSLACK,
                  PR_SET_VMA):
        return 0  # nothing here depends on them: no core dumps, no parent, no setuid
    if option == PR_GET_PDEATHSIG:
        return 0 if p.space.write(arg2, struct.pack("<i", 0)) else -errno.EFAULT
    if option == PR_GET_NO_NEW_PRIVS:
        return 0
    if option == PR_GET_TIMERSLACK:
        return 50_000
    if option == PR_CAPBSET_READ:
        return 1 if arg2 <= 40 else -errno.EINVAL
    return -errno.EINVAL


def sys_getgroups(p: GuestProcess, r: Any) -> int:
    return 0 if int32(r.rdi) >= 0 else -errno.EINVAL  # root, no supplementary groups


def sys_membarrier(p: GuestProcess, r: Any) -> int:
    """One vCPU runs one task at a time: every barrier is already complete."""
    cmd = int32(r.rdi)
    if cmd == MEMBARRIER_CMD_QUERY:
        return MEMBARRIER_COMMANDS
    return 0 if cmd > 0 and cmd & MEMBARRIER_COMMANDS == cmd and cmd & (cmd - 1) == 0 \
        else -errno.EINVAL


HANDLERS = {
    NUMBERS["getrusage"]: sys_getrusage,
    NUMBERS["sysinfo"]: sys_sysinfo,
    NUMBERS["times"]: sys_times,
    135: sys_personality,
    NUMBERS["prctl"]: sys_prctl,
    115: sys_getgroups,
    324: sys_membarrier,
}
