"""Threads: clone/clone3 of threads, thread exit, futexes, tids and the scheduler's calls."""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel import futex
from chaosreplay.kernel.fs.waiters import WAIT, Wait, retrying
from chaosreplay.kernel.syscalls import process
from chaosreplay.kernel.syscalls.args import KTIME_MAX, int32, timespec_ns
from chaosreplay.kernel.syscalls.clock import clock_value
from chaosreplay.kernel.syscalls.numbers import NUMBERS

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND = 0x100, 0x200, 0x400, 0x800
CLONE_PIDFD, CLONE_PTRACE, CLONE_VFORK, CLONE_PARENT = 0x1000, 0x2000, 0x4000, 0x8000
CLONE_THREAD, CLONE_SYSVSEM, CLONE_SETTLS = 0x10000, 0x40000, 0x80000
CLONE_PARENT_SETTID, CLONE_CHILD_CLEARTID, CLONE_DETACHED = 0x100000, 0x200000, 0x400000
CLONE_UNTRACED, CLONE_CHILD_SETTID, CLONE_IO = 0x800000, 0x1000000, 0x80000000
CLONE_NAMESPACES = 0x7E020000  # NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET
THREAD_FLAGS = CLONE_VM | CLONE_SIGHAND | CLONE_THREAD
# What a thread may add to THREAD_FLAGS here: every flag glibc, musl, Go and Rust pass.
THREAD_OPTIONS = (CLONE_FS | CLONE_FILES | CLONE_SYSVSEM | CLONE_SETTLS | CLONE_PARENT_SETTID
                  | CLONE_CHILD_CLEARTID | CLONE_DETACHED | CLONE_CHILD_SETTID | CLONE_UNTRACED
                  | CLONE_IO | CLONE_PTRACE)
CLONE_ARGS_SIZE_VER0 = 64
CLONE_ARGS_FIELDS = 11  # flags ... cgroup (clone_args of Linux 5.7+)

FUTEX_WAIT, FUTEX_WAKE, FUTEX_FD, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE = 0, 1, 2, 3, 4
FUTEX_WAKE_OP, FUTEX_LOCK_PI, FUTEX_UNLOCK_PI, FUTEX_TRYLOCK_PI = 5, 6, 7, 8
FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET = 9, 10
FUTEX_PRIVATE_FLAG, FUTEX_CLOCK_REALTIME = 128, 256
CLOCK_REALTIME, CLOCK_MONOTONIC = 0, 1


THREAD_SIZE = 16 << 10  # x86-64's kernel stack per thread, which Linux sizes threads-max by


def max_threads(mem_size: int) -> int:
    """Linux's threads-max for a machine of mem_size bytes (kernel/fork.c set_max_threads:
    an eighth of memory in kernel stacks), at least 20 as there."""
    return max(20, mem_size // (THREAD_SIZE * 8))


def _clone(p: GuestProcess, flags: int, stack: int, parent_tid: int, child_tid: int,
           tls: int, exit_signal: int) -> int:
    """A thread, or a process (no CLONE_THREAD, and no CLONE_VM or a vfork)."""
    if not flags & CLONE_THREAD and (not flags & CLONE_VM or flags & CLONE_VFORK):
        if flags & (CLONE_SIGHAND | CLONE_FILES):
            return -errno.EINVAL if flags & CLONE_SIGHAND and not flags & CLONE_VM \
                else -errno.ENOSYS  # a process sharing descriptors or handlers: not yet
        return process.fork_process(p, flags, stack, parent_tid, child_tid, tls,
                                    exit_signal)
    return _new_thread(p, flags | exit_signal, stack, parent_tid, child_tid, tls)


def _new_thread(p: GuestProcess, flags: int, stack: int, parent_tid: int, child_tid: int,
                tls: int) -> int:
    """Create a thread of the calling process; its tid (the parent's return value)."""
    if flags & CLONE_SIGHAND and not flags & CLONE_VM:
        return -errno.EINVAL
    if flags & CLONE_THREAD and not flags & CLONE_SIGHAND:
        return -errno.EINVAL
    if flags & CLONE_NAMESPACES:
        return -errno.EPERM  # an unprivileged user's answer
    if flags & THREAD_FLAGS != THREAD_FLAGS or flags & ~(THREAD_FLAGS | THREAD_OPTIONS | 0xFF):
        return -errno.ENOSYS  # processes (no CLONE_VM/THREAD) come with fork
    if flags & CLONE_SETTLS and tls >= 1 << 47:
        return -errno.EPERM
    if len(p.tasks) >= max_threads(p.config.mem_size):
        return -errno.EAGAIN  # threads-max: a guest cannot grow the host without bound
    task = p.spawn_task(stack, tls if flags & CLONE_SETTLS else None)
    tid = struct.pack("<I", task.tid)
    if flags & CLONE_PARENT_SETTID and not p.space.write(parent_tid, tid):
        p.forget_task(task)
        return -errno.EFAULT
    if flags & CLONE_CHILD_SETTID and not p.space.write(child_tid, tid):
        p.forget_task(task)
        return -errno.EFAULT
    if flags & CLONE_CHILD_CLEARTID:
        task.clear_child_tid = child_tid
    return task.tid


def sys_clone(p: GuestProcess, r: Any) -> int:
    # x86-64 argument order: flags, stack, parent_tid, child_tid, tls
    return _clone(p, r.rdi & ~0xFF, r.rsi, r.rdx, r.r10, r.r8, r.rdi & 0xFF)


def sys_clone3(p: GuestProcess, r: Any) -> int:
    address, size = r.rdi, r.rsi
    if size < CLONE_ARGS_SIZE_VER0 or size > 4096:
        return -errno.EINVAL
    raw = p.space.read(address, size)
    if raw is None:
        return -errno.EFAULT
    known = CLONE_ARGS_FIELDS * 8
    if any(raw[known:]):
        return -errno.E2BIG  # a newer struct using fields this kernel does not know
    fields = list(struct.unpack_from(f"<{min(size, known) // 8}Q", raw)) + [0] * 11
    flags, _pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls = fields[:8]
    set_tid_size = fields[9]
    if flags & 0xFF or exit_signal > 64 or set_tid_size:
        return -errno.EINVAL  # CSIGNAL goes in exit_signal; set_tid needs CAP_SYS_ADMIN
    if (stack == 0) != (stack_size == 0):
        return -errno.EINVAL
    return _clone(p, flags, stack + stack_size if stack else 0, parent_tid, child_tid, tls,
                  exit_signal)


def sys_exit(p: GuestProcess, r: Any) -> int:
    """exit: end the calling thread; the last thread's exit ends the process."""
    p.exit_task(p.current, int32(r.rdi))
    return 0


def sys_gettid(p: GuestProcess, r: Any) -> int:
    return p.current.tid


def sys_set_tid_address(p: GuestProcess, r: Any) -> int:
    p.current.clear_child_tid = r.rdi
    return p.current.tid


def sys_set_robust_list(p: GuestProcess, r: Any) -> int:
    if r.rsi != 24:  # sizeof(struct robust_list_head)
        return -errno.EINVAL
    p.current.robust_list, p.current.robust_list_len = r.rdi, r.rsi
    return 0


def sys_get_robust_list(p: GuestProcess, r: Any) -> int:
    task = p.find_task(int32(r.rdi)) if r.rdi else p.current
    if task is None:
        return -errno.ESRCH
    if not p.space.write(r.rsi, struct.pack("<Q", task.robust_list)):
        return -errno.EFAULT
    if not p.space.write(r.rdx, struct.pack("<Q", task.robust_list_len)):
        return -errno.EFAULT
    return 0


def sys_sched_yield(p: GuestProcess, r: Any) -> int:
    p.yield_cpu()
    return 0


def sys_sched_setaffinity(p: GuestProcess, r: Any) -> int:
    pid, size, mask = int32(r.rdi), r.rsi, r.rdx
    if pid and p.find_task(pid) is None:
        return -errno.ESRCH
    raw = p.space.read(mask, min(size, 128)) if size else b""
    if raw is None:
        return -errno.EFAULT
    return 0 if raw and raw[0] & 1 else -errno.EINVAL  # the one CPU must stay in the set


def sys_getcpu(p: GuestProcess, r: Any) -> int:
    for address in (r.rdi, r.rsi):  # cpu, node: both 0 on the one vCPU
        if address and not p.space.write(address, bytes(4)):
            return -errno.EFAULT
    return 0


def _wait_deadline(p: GuestProcess, command: int, op: int, timeout: int) -> int | None:
    """The virtual deadline of a futex wait (None: none), or -1 for a bad timespec, -2 for
    an unreadable one. FUTEX_WAIT's timeout is relative; FUTEX_WAIT_BITSET's absolute on
    CLOCK_MONOTONIC, or CLOCK_REALTIME with FUTEX_CLOCK_REALTIME."""
    if not timeout:
        return None
    value = timespec_ns(p, timeout)
    if value is None:
        return -2
    if value < 0:
        return -1
    if command == FUTEX_WAIT:
        remaining = value
    else:
        now = clock_value(p, CLOCK_REALTIME if op & FUTEX_CLOCK_REALTIME else CLOCK_MONOTONIC)
        remaining = max(0, value - (now or 0))
    return min(p.vtime_ns + p.clock.to_virtual(min(remaining, KTIME_MAX)), KTIME_MAX)


def _futex_wait(p: GuestProcess, r: Any, command: int, op: int) -> int:
    task = p.current
    if retrying(p) is not None:  # woken, timed out, or still asleep
        return _finish_wait(p)
    bitset = 0xFFFFFFFF if command == FUTEX_WAIT else r.r9 & 0xFFFFFFFF
    if bitset == 0:
        return -errno.EINVAL
    if command == FUTEX_WAIT and op & FUTEX_CLOCK_REALTIME:
        return -errno.ENOSYS  # Linux allows CLOCK_REALTIME only with the bitset wait
    word = futex.read_word(p, r.rdi)
    if word is None:
        return -errno.EINVAL if r.rdi & 3 else -errno.EFAULT
    if word != r.rdx & 0xFFFFFFFF:
        return -errno.EAGAIN
    deadline = _wait_deadline(p, command, op, r.r10)
    if deadline is not None and deadline < 0:
        return -errno.EFAULT if deadline == -2 else -errno.EINVAL
    futex.enqueue(p, task, r.rdi, bitset)
    task.waiting = Wait(int(r.rax), f"futex wait at {r.rdi:#x}", deadline)
    task.wake_at_ns = deadline
    return WAIT


def _finish_wait(p: GuestProcess) -> int:
    task = p.current
    wait, sleep = task.waiting, task.futex
    assert wait is not None and sleep is not None
    if sleep.woken:
        task.futex = None
        return 0
    if wait.expired(p.vtime_ns):
        task.futex = None
        return -errno.ETIMEDOUT
    return WAIT  # not woken yet: keep sleeping


def sys_futex(p: GuestProcess, r: Any) -> int:
    op = r.rsi & 0xFFFFFFFF
    command = op & ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME)
    if op & FUTEX_CLOCK_REALTIME and command not in (FUTEX_WAIT, FUTEX_WAIT_BITSET):
        return -errno.ENOSYS
    if command in (FUTEX_WAIT, FUTEX_WAIT_BITSET):
        return _futex_wait(p, r, command, op)
    uaddr, count = r.rdi, int32(r.rdx)
    if uaddr & 3:
        return -errno.EINVAL
    if command == FUTEX_WAKE:
        return futex.wake(p, uaddr, count)
    if command == FUTEX_WAKE_BITSET:
        bitset = r.r9 & 0xFFFFFFFF
        return -errno.EINVAL if bitset == 0 else futex.wake(p, uaddr, count, bitset)
    if command in (FUTEX_REQUEUE, FUTEX_CMP_REQUEUE):
        move = int32(r.r10)  # val2 travels in the timeout slot
        if count < 0 or move < 0 or r.r8 & 3:
            return -errno.EINVAL
        if command == FUTEX_CMP_REQUEUE:
            word = futex.read_word(p, uaddr)
            if word is None:
                return -errno.EFAULT
            if word != r.r9 & 0xFFFFFFFF:
                return -errno.EAGAIN
        return futex.requeue(p, uaddr, count, r.r8, move)
    if command == FUTEX_WAKE_OP:
        if r.r8 & 3:
            return -errno.EINVAL
        return futex.wake_op(p, uaddr, count, r.r8, int32(r.r10), r.r9 & 0xFFFFFFFF)
    return -errno.ENOSYS  # FUTEX_FD (removed in 2.6.26) and the PI futexes


HANDLERS = {
    NUMBERS["clone"]: sys_clone,
    435: sys_clone3,
    NUMBERS["exit"]: sys_exit,
    NUMBERS["gettid"]: sys_gettid,
    NUMBERS["set_tid_address"]: sys_set_tid_address,
    NUMBERS["set_robust_list"]: sys_set_robust_list,
    NUMBERS["get_robust_list"]: sys_get_robust_list,
    NUMBERS["sched_yield"]: sys_sched_yield,
    NUMBERS["sched_setaffinity"]: sys_sched_setaffinity,
    NUMBERS["getcpu"]: sys_getcpu,
    NUMBERS["futex"]: sys_futex,
}
