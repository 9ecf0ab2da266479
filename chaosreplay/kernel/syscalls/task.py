"""Process bookkeeping: exit_group, ids, TLS, limits, uname, randomness.

Threads and futexes are in syscalls/thread.py, signals in syscalls/signal.py.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.kernel import FIRST_PID
from chaosreplay.kernel.syscalls.numbers import NUMBERS

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

PID = FIRST_PID  # the node's program (kernel.kernel)
ARCH_SET_GS, ARCH_SET_FS, ARCH_GET_FS, ARCH_GET_GS = 0x1001, 0x1002, 0x1003, 0x1004
RLIM_INFINITY = (1 << 64) - 1
# stack, open files, pending signals (kernel/signals/queue.py), nice and real-time
# priority (0: no raising, as the scheduling calls enforce, syscalls/sched.py)
RLIMITS = {3: (8 << 20, RLIM_INFINITY), 7: (1024, 4096), 11: (31_615, 31_615), 13: (0, 0),
           14: (0, 0)}
MAX_GETRANDOM = (1 << 25) - 1


def sys_exit_group(p: GuestProcess, r: Any) -> int:
    p.exit(r.rdi)
    return 0


def sys_zero_id(p: GuestProcess, r: Any) -> int:
    return 0  # uid, gid, euid, egid: every node runs as root in its own machine


def sys_arch_prctl(p: GuestProcess, r: Any) -> int:
    code, addr = r.rdi, r.rsi
    if code == ARCH_SET_FS:
        if addr >= 1 << 47:
            return -errno.EPERM
        p.vm.fs_base = addr
        return 0
    if code == ARCH_SET_GS:
        if addr >= 1 << 47:
            return -errno.EPERM
        p.vm.set_gs_base(addr)
        return 0
    if code == ARCH_GET_FS:
        return 0 if p.space.write(addr, struct.pack("<Q", p.vm.fs_base)) else -errno.EFAULT
    return -errno.EINVAL




def sys_rseq(p: GuestProcess, r: Any) -> int:
    return -errno.ENOSYS  # libcs fall back cleanly; rseq needs preemption we never do


RLIMIT_NOFILE, NR_OPEN = 7, 1 << 20


def _rlimit(p: GuestProcess, resource: int) -> bytes:
    soft, hard = RLIMITS.get(resource, (RLIM_INFINITY, RLIM_INFINITY))
    if resource == RLIMIT_NOFILE:  # the descriptor table enforces it (kernel.fs.files)
        soft, hard = p.files.limit, max(hard, p.files.limit)
    return struct.pack("<QQ", soft, hard)


def _set_rlimit(p: GuestProcess, resource: int, address: int) -> int:
    """Only RLIMIT_NOFILE's soft limit is enforced; other new limits are accepted."""
    raw = p.space.read(address, 16)
    if raw is None:
        return -errno.EFAULT
    soft, hard = struct.unpack("<QQ", raw)
    if soft > hard:
        return -errno.EINVAL
    if resource == RLIMIT_NOFILE:
        if soft > NR_OPEN:
            return -errno.EPERM
        p.files.limit = soft
    return 0


def sys_prlimit64(p: GuestProcess, r: Any) -> int:
    pid, resource, new, old = r.rdi, r.rsi, r.rdx, r.r10
    if pid not in (0, p.pid):
        return -errno.ESRCH
    if resource > 15:
        return -errno.EINVAL
    if old and not p.space.write(old, _rlimit(p, resource)):
        return -errno.EFAULT
    return _set_rlimit(p, resource, new) if new else 0


def sys_getrlimit(p: GuestProcess, r: Any) -> int:
    if r.rdi > 15:
        return -errno.EINVAL
    return 0 if p.space.write(r.rsi, _rlimit(p, r.rdi)) else -errno.EFAULT


def sys_setrlimit(p: GuestProcess, r: Any) -> int:
    return -errno.EINVAL if r.rdi > 15 else _set_rlimit(p, r.rdi, r.rsi)


def sys_uname(p: GuestProcess, r: Any) -> int:
    host = (p.config.hostname or f"node{p.node_id}").encode()
    fields = [b"Linux", host, b"6.1.0-chaosreplay", b"#1 SMP PREEMPT_DYNAMIC", b"x86_64",
              b"(none)"]
    data = b"".join(f[:64].ljust(65, b"\0") for f in fields)
    return 0 if p.space.write(r.rdi, data) else -errno.EFAULT









def sys_sched_getaffinity(p: GuestProcess, r: Any) -> int:
    size, mask = r.rsi, r.rdx
    if size < 8:
        return -errno.EINVAL
    return 8 if p.space.write(mask, struct.pack("<Q", 1)) else -errno.EFAULT


def sys_getrandom(p: GuestProcess, r: Any) -> int:
    buf, count = r.rdi, min(r.rsi, MAX_GETRANDOM)
    if r.rdx & ~0x7:
        return -errno.EINVAL
    return count if p.space.write(buf, p.random["getrandom"].read(count)) else -errno.EFAULT



HANDLERS = {
    NUMBERS["exit_group"]: sys_exit_group,
    NUMBERS["getuid"]: sys_zero_id,
    NUMBERS["geteuid"]: sys_zero_id,
    NUMBERS["getgid"]: sys_zero_id,
    NUMBERS["getegid"]: sys_zero_id,
    NUMBERS["arch_prctl"]: sys_arch_prctl,
    NUMBERS["rseq"]: sys_rseq,
    NUMBERS["prlimit64"]: sys_prlimit64,
    NUMBERS["getrlimit"]: sys_getrlimit,
    NUMBERS["setrlimit"]: sys_setrlimit,
    NUMBERS["uname"]: sys_uname,
    NUMBERS["sched_getaffinity"]: sys_sched_getaffinity,
    NUMBERS["getrandom"]: sys_getrandom,
}
