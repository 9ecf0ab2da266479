"""Processes: fork/vfork/clone of a process, execve/execveat, wait4/waitid, and the ids
of a process, its group and its session (kernel/processes.py runs them)."""

from __future__ import annotations

import errno
import signal
import struct
from typing import TYPE_CHECKING, Any

from chaosreplay.errors import GuestProgramError
from chaosreplay.events import EventKind
from chaosreplay.kernel.exec import load_image, reset_address_space
from chaosreplay.kernel.fs.paths import AT_FDCWD, resolve, synth
from chaosreplay.kernel.fs.waiters import block
from chaosreplay.kernel.loader import exec_arguments_problem
from chaosreplay.kernel.processes import (
    CLD_CONTINUED,
    CLD_STOPPED,
    MAX_PROCESSES,
    ProcessTable,
    wait_status,
)
from chaosreplay.kernel.signals.siginfo import child_exit_info, child_info
from chaosreplay.kernel.syscalls.args import int32, path_arg
from chaosreplay.kernel.syscalls.numbers import NUMBERS

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess
    from chaosreplay.vm.elf import ProgramImage

CLONE_VM, CLONE_FS, CLONE_VFORK, CLONE_PARENT, CLONE_THREAD = 0x100, 0x200, 0x4000, 0x8000, 0x10000
CLONE_SYSVSEM, CLONE_SETTLS, CLONE_PARENT_SETTID = 0x40000, 0x80000, 0x100000
CLONE_CHILD_CLEARTID, CLONE_DETACHED, CLONE_UNTRACED = 0x200000, 0x400000, 0x800000
CLONE_CHILD_SETTID, CLONE_IO = 0x1000000, 0x80000000
# What a process clone may ask for besides its exit signal: glibc's fork passes
# CHILD_SETTID|CHILD_CLEARTID; posix_spawn and Go's os/exec CLONE_VM|CLONE_VFORK, which
# gets a copy of the memory too (the parent does not wait; nothing it reads is shared).
PROCESS_OPTIONS = (CLONE_VM | CLONE_FS | CLONE_VFORK | CLONE_PARENT | CLONE_SYSVSEM
                   | CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID
                   | CLONE_DETACHED | CLONE_UNTRACED | CLONE_CHILD_SETTID | CLONE_IO)
WNOHANG, WUNTRACED, WEXITED, WCONTINUED, WNOWAIT = 1, 2, 4, 8, 0x01000000
WSTOPPED = WUNTRACED
WAIT_FLAGS = 0x20000000 | 0x40000000 | 0x80000000  # __WNOTHREAD, __WALL, __WCLONE
P_ALL, P_PID, P_PGID = 0, 1, 2
AT_EMPTY_PATH, AT_SYMLINK_NOFOLLOW = 0x1000, 0x100
MAX_ARGS = 1 << 16  # pointers in one argv or envp
MAX_SCRIPT_DEPTH = 4  # "#!" interpreters that are scripts themselves (Linux allows 4)
S_IXUSR_ANY = 0o111
GENERAL_REGISTERS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11",
                     "r12", "r13", "r14", "r15")
RFLAGS_IF = 0x202  # interrupts on, and the always-one bit


# -- fork --------------------------------------------------------------------------------
def fork_process(p: GuestProcess, flags: int, stack: int, parent_tid: int, child_tid: int,
                 tls: int, exit_signal: int) -> int:
    """A child process, copied from p (vfork is a fork: the parent goes on at once, as
    under qemu-user; the child has its own copy of the memory)."""
    if flags & ~(PROCESS_OPTIONS | 0xFF):
        return -errno.EINVAL
    if flags & CLONE_SETTLS and tls >= 1 << 47:
        return -errno.EPERM
    if p.table is None:
        p.table = ProcessTable(p)
    table = p.table
    if len(table.procs) >= MAX_PROCESSES:
        return -errno.EAGAIN
    pid = p.kernel.new_id()
    child = p.fork(pid)
    if flags & CLONE_PARENT:
        child.ppid = p.ppid
    child.exit_signal = exit_signal
    if stack:
        child.regs.rsp = stack
    if flags & CLONE_SETTLS:
        child.vm.fs_base = tls
    packed = struct.pack("<I", pid)
    if flags & CLONE_PARENT_SETTID and not p.space.write(parent_tid, packed):
        return -errno.EFAULT
    if flags & CLONE_CHILD_SETTID and not child.space.write(child_tid, packed):
        return -errno.EFAULT
    if flags & CLONE_CHILD_CLEARTID:
        child.current.clear_child_tid = child_tid
    table.procs[pid] = child
    p.emit(EventKind.PROCESS_START, pid=pid, parent=child.ppid)
    return pid


def sys_fork(p: GuestProcess, r: Any) -> int:
    return fork_process(p, 0, 0, 0, 0, 0, signal.SIGCHLD)


def sys_vfork(p: GuestProcess, r: Any) -> int:
    return fork_process(p, CLONE_VFORK, 0, 0, 0, 0, signal.SIGCHLD)


# -- execve ------------------------------------------------------------------------------
def _strings(p: GuestProcess, address: int) -> list[bytes] | int:
    """A NULL-terminated array of C strings (argv, envp); NULL itself is empty."""
    out: list[bytes] = []
    if not address:
        return out
    for i in range(MAX_ARGS):
        raw = p.space.read(address + 8 * i, 8)
        if raw is None:
            return -errno.EFAULT
        pointer = int.from_bytes(raw, "little")
        if not pointer:
            return out
        text = p.space.read_cstring(pointer, 1 << 17)
        if text is None:
            return -errno.EFAULT
        out.append(text)
    return -errno.E2BIG


def _program_bytes(p: GuestProcess, dirfd: int, path: bytes,
                   flags: int) -> tuple[bytes, int | None] | int:
    """The bytes of the file execve names, if it may be run, and its inode on the disk
    (None: the running program's own image)."""
    resolved = resolve(p, dirfd, path, follow=not flags & AT_SYMLINK_NOFOLLOW)
    if isinstance(resolved, int):
        return resolved
    place = resolved.place
    if place is None:
        return -errno.ENOENT
    if not place.on_disk:
        node = synth(p, place)
        if node is not None and node.device == "exe":
            return p.image.raw, p.exe_ino  # /proc/self/exe: the program runs itself again
        return -errno.EACCES  # /proc, /dev and /etc hold no programs
    fs = p.fs
    if fs.is_link(place.ino):
        return -errno.ELOOP
    if fs.is_dir(place.ino):
        return -errno.EACCES
    if not fs.stat(place.ino).mode & S_IXUSR_ANY:
        return -errno.EACCES
    return fs.read_file_inode(place.ino), place.ino


def read_interpreter(p: GuestProcess, path: str) -> ProgramImage | int:
    """The dynamic loader at path on the node's disk (symbolic links followed), parsed;
    -ENOENT when it is missing (what Linux's execve says then), -ELIBBAD when it is not
    a loader."""
    resolved = resolve(p, AT_FDCWD, path.encode(), follow=True)
    if isinstance(resolved, int):
        return resolved
    place = resolved.place
    if place is None or not place.on_disk:
        return -errno.ENOENT
    if p.fs.is_dir(place.ino):
        return -errno.EISDIR
    try:
        return p.images.interpreter(p.fs.read_file_inode(place.ino), path)
    except GuestProgramError:
        return -errno.ELIBBAD


def _interpreter(raw: bytes, path: bytes, argv: list[bytes]) -> tuple[bytes, list[bytes]] | None:
    """A "#!" script: the interpreter to run and its argv (Linux's binfmt_script)."""
    if not raw.startswith(b"#!"):
        return None
    line = raw[2:].split(b"\n", 1)[0][:255].strip(b" \t")
    if not line:
        return None
    interp, _, arg = line.partition(b" ")
    arg = arg.strip(b" \t")
    return interp, [interp, *([arg] if arg else []), path, *argv[1:]]


def exec_program(p: GuestProcess, dirfd: int, path_ptr: int, argv_ptr: int, envp_ptr: int,
                 flags: int) -> int:
    """execve: replace p's program with the static ELF at path (from the node's disk)."""
    if flags & ~(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW):
        return -errno.EINVAL
    path = path_arg(p, path_ptr)
    if isinstance(path, int):
        return path
    argv = _strings(p, argv_ptr)
    if isinstance(argv, int):
        return argv
    envp = _strings(p, envp_ptr)
    if isinstance(envp, int):
        return envp
    if not path:
        if not flags & AT_EMPTY_PATH:
            return -errno.ENOENT
        return -errno.ENOSYS  # fexecve of an open descriptor: not yet
    found = _program_bytes(p, dirfd, path, flags)
    if isinstance(found, int):
        return found
    for _ in range(MAX_SCRIPT_DEPTH):
        script = _interpreter(found[0], path, argv)
        if script is None:
            break
        path, argv = script
        found = _program_bytes(p, AT_FDCWD, path, 0)
        if isinstance(found, int):
            return found
    else:
        return -errno.ELOOP
    raw, ino = found
    if exec_arguments_problem(argv, envp) is not None:
        return -errno.E2BIG
    try:
        plan = p.images.plan(raw, path.decode(errors="replace"), p.config.patch)
    except GuestProgramError:
        return -errno.ENOEXEC
    interpreter = None
    if plan.image.interpreter is not None:
        interpreter = read_interpreter(p, plan.image.interpreter)
        if isinstance(interpreter, int):
            return interpreter
    _begin_new_exec(p)
    space = p.space
    reset_address_space(space)
    loaded = load_image(space, plan, argv, envp, p.random["auxv"].read(16), path, interpreter,
                        p.vdso_address)
    p.sites = space.code.sites
    p.image = plan.image
    p.exe_name, p.exe_ino = path, ino
    p.argv, p.envp = argv, envp
    p.comm = path.rsplit(b"/", 1)[-1][:15]
    p.vm.fs_base = 0
    p.vm.set_gs_base(0)
    regs = p.regs
    p.exec_call_args = [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9]
    _start_thread(regs, loaded.entry, loaded.stack_pointer)
    p.emit(EventKind.PROCESS_EXEC, pid=p.pid, path=path, argv=argv)
    return 0


def _start_thread(regs: Any, entry: int, stack_pointer: int) -> None:
    """The new program's registers, returned to through the execve call's own way back
    to user mode (Linux's start_thread): all zero but rip, rsp and IF."""
    for name in GENERAL_REGISTERS:
        setattr(regs, name, 0)
    regs.rip, regs.rsp, regs.rflags = entry, stack_pointer, RFLAGS_IF


def _begin_new_exec(p: GuestProcess) -> None:
    """The point of no return: the other threads die, close-on-exec descriptors close,
    handled signals go back to their defaults, POSIX timers are deleted."""
    current = p.current
    for task in list(p.tasks.values()):
        if task is not current:
            task.exited = True
            del p.tasks[task.tid]
    if current.tid != p.pid:  # exec from a thread: it takes the leader's id (de_thread)
        del p.tasks[current.tid]
        current.tid = p.pid
        p.tasks[p.pid] = current
    current.clear_child_tid = current.robust_list = current.robust_list_len = 0
    current.signals.altstack = current.signals.altstack.for_exec()
    for fd, slot in p.files.items():
        if slot.cloexec:
            p.files.close(p, fd)
    p.signals.actions.reset_for_exec()
    p.posix_timers.clear()
    from chaosreplay.kernel.signalling import rearm

    rearm(p)


def sys_execve(p: GuestProcess, r: Any) -> int:
    return exec_program(p, AT_FDCWD, r.rdi, r.rsi, r.rdx, 0)


def sys_execveat(p: GuestProcess, r: Any) -> int:
    return exec_program(p, int32(r.rdi), r.rsi, r.rdx, r.r10, int32(r.r8))


# -- wait ----------------------------------------------------------------------------------
def _waitable(p: GuestProcess, idtype: int, ident: int) -> list[GuestProcess] | int:
    """The children a wait may collect, in pid order; -ECHILD when there are none."""
    children = p.table.children(p) if p.table is not None else []
    if idtype == P_PID:
        children = [c for c in children if c.pid == ident]
    elif idtype == P_PGID:
        children = [c for c in children if c.pgid == (ident or p.pgid)]
    return children or -errno.ECHILD


def sys_wait4(p: GuestProcess, r: Any) -> int:
    pid, status_ptr, options, rusage = int32(r.rdi), r.rsi, int32(r.rdx), r.r10
    if options & ~(WNOHANG | WUNTRACED | WCONTINUED | WAIT_FLAGS):
        return -errno.EINVAL
    if pid > 0:
        children = _waitable(p, P_PID, pid)
    elif pid == -1:
        children = _waitable(p, P_ALL, 0)
    else:
        children = _waitable(p, P_PGID, -pid)
    if isinstance(children, int):
        return children
    found = _reportable(children, options & WUNTRACED, options & WCONTINUED)
    if found is None:
        if options & WNOHANG:
            return 0
        return block(p, [(p.child_events, 1)], None, "wait4 for a child")
    child, status = found
    if status_ptr and not p.space.write(status_ptr, struct.pack("<i", status)):
        return -errno.EFAULT
    if rusage and not p.space.write(rusage, bytes(144)):
        return -errno.EFAULT
    _consume(p, child)
    return child.pid


def _reportable(children: list[GuestProcess], stopped: int, continued: int
                ) -> tuple[GuestProcess, int] | None:
    """The first child with something for wait to report, and its status word: an end,
    a stop (with WUNTRACED: 0x7f | signal << 8) or a continue (with WCONTINUED: 0xffff)."""
    for child in children:
        if not child.alive:
            return child, wait_status(child)
        report = child.stop_report
        if report is None:
            continue
        if child.stopped and stopped:
            return child, 0x7F | report << 8
        if not child.stopped and report == signal.SIGCONT and continued:
            return child, 0xFFFF
    return None


def _consume(p: GuestProcess, child: GuestProcess) -> None:
    """A wait collected child's report: a zombie is gone, a stop or continue is told."""
    if child.alive:
        child.stop_report = None
    else:
        p.table.reap(child)  # type: ignore[union-attr]


def sys_waitid(p: GuestProcess, r: Any) -> int:
    idtype, ident, infop, options = int32(r.rdi), int32(r.rsi), r.rdx, int32(r.r10)
    if idtype not in (P_ALL, P_PID, P_PGID) or options & ~(
            WNOHANG | WEXITED | WSTOPPED | WCONTINUED | WNOWAIT | WAIT_FLAGS):
        return -errno.EINVAL
    if not options & (WEXITED | WSTOPPED | WCONTINUED):
        return -errno.EINVAL
    children = _waitable(p, idtype, ident)
    if isinstance(children, int):
        return children
    if not options & WEXITED:
        children = [c for c in children if c.alive]
    found = _reportable(children, options & WSTOPPED, options & WCONTINUED)
    if found is None:
        if options & WNOHANG:
            if infop and not p.space.write(infop, bytes(128)):
                return -errno.EFAULT
            return 0
        return block(p, [(p.child_events, 1)], None, "waitid for a child")
    child, status = found
    if infop:
        if status == 0xFFFF:
            info = child_info(CLD_CONTINUED, child.pid, 0, signal.SIGCONT, 0, 0)
        elif status & 0xFF == 0x7F:
            info = child_info(CLD_STOPPED, child.pid, 0, status >> 8, 0, 0)
        else:
            info = child_exit_info(child.pid, 0, status, 0, 0)
        if not p.space.write(infop, info.pack()):
            return -errno.EFAULT
    if not options & WNOWAIT:
        _consume(p, child)
    return 0


# -- ids -----------------------------------------------------------------------------------
def _process(p: GuestProcess, pid: int) -> GuestProcess | None:
    """A live or zombie process of the node by pid (0: the caller)."""
    if pid in (0, p.pid):
        return p
    return p.table.procs.get(pid) if p.table is not None else None


def sys_getpid(p: GuestProcess, r: Any) -> int:
    return p.pid


def sys_getppid(p: GuestProcess, r: Any) -> int:
    return p.ppid


def sys_getpgrp(p: GuestProcess, r: Any) -> int:
    return p.pgid


def sys_getpgid(p: GuestProcess, r: Any) -> int:
    target = _process(p, int32(r.rdi))
    return -errno.ESRCH if target is None else target.pgid


def sys_getsid(p: GuestProcess, r: Any) -> int:
    target = _process(p, int32(r.rdi))
    return -errno.ESRCH if target is None else target.sid


def sys_setpgid(p: GuestProcess, r: Any) -> int:
    pid, pgid = int32(r.rdi), int32(r.rsi)
    if pgid < 0:
        return -errno.EINVAL
    target = _process(p, pid)
    if target is None or (target is not p and target.ppid != p.pid):
        return -errno.ESRCH  # only the caller and its children
    if target.sid != p.sid:
        return -errno.EPERM
    if target.pid == target.sid:
        return -errno.EPERM  # a session leader's group cannot change
    pgid = pgid or target.pid
    if pgid != target.pid and not any(
            q.pgid == pgid and q.sid == p.sid for q in _all(p)):
        return -errno.EPERM  # joining a group that does not exist in the session
    target.pgid = pgid
    return 0


def sys_setsid(p: GuestProcess, r: Any) -> int:
    if any(q.pgid == p.pid for q in _all(p)):
        return -errno.EPERM  # already a group leader
    p.sid = p.pgid = p.pid
    return p.sid


def _all(p: GuestProcess) -> list[GuestProcess]:
    return list(p.table.procs.values()) if p.table is not None else [p]


def signal_targets(p: GuestProcess, pid: int) -> list[GuestProcess] | int:
    """kill()'s pid argument: the live processes it names, or -ESRCH."""
    if pid > 0:
        target = _process(p, pid)
        return [target] if target is not None and target.alive else -errno.ESRCH
    if pid == 0:
        pgid = p.pgid
    elif pid == -1:  # everyone but init (not on the node); Linux spares the caller too
        return [q for q in _all(p) if q.alive and q is not p] or -errno.ESRCH
    else:
        pgid = -pid
    group = [q for q in _all(p) if q.alive and q.pgid == pgid]
    return group or -errno.ESRCH


HANDLERS = {
    NUMBERS["fork"]: sys_fork,
    NUMBERS["vfork"]: sys_vfork,
    NUMBERS["execve"]: sys_execve,
    322: sys_execveat,
    NUMBERS["wait4"]: sys_wait4,
    247: sys_waitid,
    NUMBERS["getpid"]: sys_getpid,
    NUMBERS["getppid"]: sys_getppid,
    NUMBERS["getpgrp"]: sys_getpgrp,
    121: sys_getpgid,
    NUMBERS["setpgid"]: sys_setpgid,
    NUMBERS["setsid"]: sys_setsid,
    124: sys_getsid,
}
