"""A node program running in its own VM, with the VMM acting as its Linux kernel.

GuestProcess owns the VM, the address space, the virtual clock and the seeded streams a
program can observe, and the program's tasks (threads, kernel/task.py), which share the
one vCPU: the scheduler (kernel/scheduler.py) switches them at system calls and trapped
instructions. `run()` executes the program until every task blocks, it passes a deadline
in virtual time, or it ends; the simulation controller interleaves nodes with it.
"""

from __future__ import annotations

import errno
import hashlib
import re
import signal
import sysconfig
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from chaosreplay.errors import GuestProgramError
from chaosreplay.events import EventKind
from chaosreplay.kernel import futex, sdk_abi, signalling
from chaosreplay.kernel.clock import NodeClock
from chaosreplay.kernel.exec import load_image, plan_load
from chaosreplay.kernel.fastpath import FastPath
from chaosreplay.kernel.fs.files import Refs, save_tables
from chaosreplay.kernel.fs.install import DiskEntry, install
from chaosreplay.kernel.fs.paths import ROOT
from chaosreplay.kernel.fs.root_layer import RootLayer
from chaosreplay.kernel.fs.waiters import WAIT, Wait, end_wait
from chaosreplay.kernel.kernel import Kernel, Shared
from chaosreplay.kernel.mm import page_cache
from chaosreplay.kernel.mm.address_space import AddressSpace, GuestOutOfMemory
from chaosreplay.kernel.processes import INIT_PID, ChildEvents, ProcessTable, wait_status
from chaosreplay.kernel.scheduler import Scheduler, SchedulerConfig
from chaosreplay.kernel.signalling import PosixTimer
from chaosreplay.kernel.signals.actions import SigAction
from chaosreplay.kernel.signals.delivery import GroupSignals, TaskSignals
from chaosreplay.kernel.syscalls import HANDLERS
from chaosreplay.kernel.syscalls.args import KTIME_MAX
from chaosreplay.kernel.syscalls.files import UMASK, files_state, load_files_state, stdio_table
from chaosreplay.kernel.syscalls.numbers import syscall_name
from chaosreplay.kernel.syscalls.task import PID
from chaosreplay.kernel.task import FutexWait, Task
from chaosreplay.kernel.task_attributes import TaskAttributes, attributes_of
from chaosreplay.rng import DeterministicStream
from chaosreplay.vm import nonvirt
from chaosreplay.vm.elf import ProgramImage
from chaosreplay.vm.vmm import (
    DEFAULT_MEM_SIZE,
    VDSO_ADDRESS,
    ExitReason,
    Snapshot,
    TaskContext,
    Vm,
    VmmError,
)

_MASK64 = (1 << 64) - 1
KVM_EXIT_IO = 2
USER_END = 1 << 47
ENOSYS = 38
# SDK calls whose own event (assert, setup_complete, sdk.event) says all a syscall event
# would: traced as syscalls only when they fail.
NR_RT_SIGRETURN = 15  # its result is the restored rax: never a call to restart
EXEC_CALLS = frozenset((59, 322))  # execve, execveat
KERNEL_STATE_KEYS = (  # kernel_state()'s fields in their order (the part's bytes keep it)
    "vtime_ns", "clock", "incarnation", "status", "exit_code", "wake_at_ns", "syscalls",
    "unknown_syscalls", "unknown_syscalls_other", "stdout", "stderr", "output_dropped",
    "signals", "itimer_real", "posix_timers", "next_timer_id", "tasks", "current_tid",
    "next_tid", "futex_sequence", "scheduler", "random", "rdrand", "rdseed", "vmas",
    "code_pages", "brk_start", "brk", "memory_limit", "framed_chunks", "files", "comm",
    "coverage_map")
SELF_RECORDING = frozenset({sdk_abi.CR_SYS_ASSERT, sdk_abi.CR_SYS_SETUP_COMPLETE,
                            sdk_abi.CR_SYS_SEND_EVENT})

# CPU exception vector -> the signal Linux would deliver for it.
VECTOR_SIGNALS = {0: signal.SIGFPE, 1: signal.SIGTRAP, 3: signal.SIGTRAP, 6: signal.SIGILL,
                  7: signal.SIGFPE, 12: signal.SIGBUS, 13: signal.SIGSEGV, 14: signal.SIGSEGV,
                  16: signal.SIGFPE, 17: signal.SIGBUS, 19: signal.SIGFPE}
VECTOR_NAMES = {0: "#DE divide error", 1: "#DB debug", 3: "#BP breakpoint", 4: "#OF overflow",
                5: "#BR bound range", 6: "#UD invalid opcode", 7: "#NM device not available",
                8: "#DF double fault", 11: "#NP segment not present", 12: "#SS stack fault",
                13: "#GP general protection", 14: "#PF page fault", 16: "#MF x87 error",
                17: "#AC alignment check", 19: "#XM SIMD error"}


OUTPUT_EVENT_BYTES = 1 << 20  # the most output one event carries
UNKNOWN_SYSCALLS_KEPT = 256  # distinct unknown numbers counted one by one; then in one sum
MAX_BUG_MESSAGE = 300
_HOST_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")  # object reprs name host addresses
# Code whose exceptions the guard owns: the kernel and what it stands on. Frames of the
# standard library and installed packages count as the caller's.
_KERNEL_MODULES = ("chaosreplay.kernel", "chaosreplay.vm", "chaosreplay.events",
                   "chaosreplay.rng", "chaosreplay.errors")
_LIBRARY_DIRS = tuple(sorted({sysconfig.get_paths()[k] for k in ("stdlib", "purelib",
                                                                  "platlib")}))


def _raised_by_kernel(exc: BaseException) -> bool:
    """Whether every frame between the guard and the raise belongs to the kernel (or to
    libraries it called): then the exception is a VMM bug, not someone else's signal."""
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        module = frame.f_globals.get("__name__", "")
        if module == "chaosreplay" or module.startswith("chaosreplay."):
            if not module.startswith(_KERNEL_MODULES):
                return False
        elif not frame.f_code.co_filename.startswith(_LIBRARY_DIRS):
            return False
        tb = tb.tb_next
    return True


class Status(StrEnum):
    """Where a process stands after run() returns."""

    RUNNING = "running"   # passed its deadline; run again
    BLOCKED = "blocked"   # sleeping until wake_at_ns (or a delivery)
    EXITED = "exited"
    CRASHED = "crashed"
    HUNG = "hung"         # the host watchdog fired: no exit for too long in wall time


def signal_name(signo: int) -> str:
    """SIGSEGV, SIGRTMIN+6, ...: a name for every signal a guest can die of (1-64)."""
    try:
        return signal.Signals(signo).name
    except ValueError:
        rtmin = int(signal.SIGRTMIN)
        if 32 <= signo <= 64:
            return f"SIGRTMIN{signo - rtmin:+d}"
        return f"signal {signo}"


@dataclass(frozen=True, slots=True)
class Crash:
    """Why a guest died: the signal, where, and what it touched."""

    signal: int
    vector: int
    rip: int
    symbol: str
    fault_address: int
    reason: str

    def describe(self) -> str:
        name = signal_name(self.signal)
        where = f"at {self.rip:#x} ({self.symbol})"
        fault = f", address {self.fault_address:#x}" if self.vector == 14 else ""
        return f"{name} ({self.reason}) {where}{fault}"


@dataclass(slots=True)
class ProcessConfig:
    """What a node program sees of the world; everything here derives from the scenario."""

    argv: list[bytes]
    envp: list[bytes] = field(default_factory=list)
    seed: int = 0
    node_id: int = 0
    node_count: int = 1
    mem_size: int = DEFAULT_MEM_SIZE
    syscall_cost_ns: int = 1_000
    exception_cost_ns: int = 2_000
    patch: bool = True
    hostname: str = ""
    node_names: tuple[str, ...] = ()  # every node's hostname, by index (for /etc/hosts)
    output_tail_bytes: int = 1 << 20  # stdout/stderr kept per stream; all of it is in events
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    disk_durability: str = "posix"  # when names become durable (kernel/fs/disk.py journal)
    fast_path: bool = False  # the guest answers the clocks and ids itself (kernel/fastpath.py)
    vdso: bool = False  # a vDSO at AT_SYSINFO_EHDR: libcs read the clock without a syscall
    root: RootLayer | None = None  # the read-only root under the disk, shared by the group


EventSink = Callable[["GuestProcess", EventKind, dict[str, Any]], None]
OutputSink = Callable[[int, bytes], None]


class GuestProcess:
    """One process of a node (a thread group) in its own VM; the node's first process is
    its program, built here, and the node's kernel (`kernel`) comes with it."""

    # What every process of the node shares: the node's kernel's (kernel/kernel.py).
    on_event, on_output, trace_syscalls = Shared(), Shared(), Shared()
    next_tid, table, clock, incarnation = Shared(), Shared(), Shared(), Shared()
    fs, net, network, random, emulator = Shared(), Shared(), Shared(), Shared(), Shared()
    images, stdout, stderr, output_dropped = Shared(), Shared(), Shared(), Shared()

    def __init__(self, image: ProgramImage, config: ProcessConfig,
                 on_event: EventSink | None = None, on_output: OutputSink | None = None,
                 files: Iterable[DiskEntry] = ()) -> None:
        self.kernel = Kernel(config, on_event, on_output)
        install(self.kernel.fs, files)  # the node's disk, before its program is loaded
        self.image = image
        self.config = config
        self.node_id = config.node_id
        self.vtime_ns = 0
        self.preempt = False  # set by an event handler: return to the controller now
        self.status = Status.RUNNING
        self.exit_code: int | None = None
        self.crash: Crash | None = None
        self.wake_at_ns: int | None = None
        self.syscalls = 0
        self.unknown_syscalls: dict[int, int] = {}
        self.unknown_syscalls_other = 0  # calls of unknown numbers past the first 256 kept
        self.pid = PID
        self.ppid = INIT_PID
        self.pgid = self.sid = PID  # the node's program leads its own group and session
        self.exit_signal = signal.SIGCHLD  # what the parent gets when this process ends
        self.child_events = ChildEvents()  # wait4 and waitid sleep here
        self.reaped = False  # a zombie its parent collected (or nobody would)
        self.yielded = False  # run_process gave the vCPU to another process of the node
        self.stopped = False  # by a stop signal, until a SIGCONT (kernel/processes.py)
        self.stop_report: int | None = None  # the stop (signal) or SIGCONT wait reports
        self.exec_call_args: list[int] = []  # a successful execve's arguments, for its event
        self.signals = GroupSignals()  # the actions the threads share, process-wide pending
        self.signals_dirty = False  # some thread has a signal to take (signalling.recheck)
        self.itimer_real: tuple[int | None, int] = (None, 0)  # SIGALRM at (vtime, interval)
        self.itimer_cpu: dict[int, tuple[int, int]] = {}  # ITIMER_VIRTUAL/PROF when armed
        self.posix_timers: dict[int, PosixTimer] = {}  # timer_create's, by timer id
        self.next_timer_id = 0
        self.timer_due_ns: int | None = None  # the earliest armed timer (signalling.rearm)
        self.on_recv_timeout: Callable[[], None] | None = None  # cr_recv ended by timeout
        self.files = stdio_table()  # the descriptor table (kernel.fs.files.FdTable)
        self.cwd = ROOT
        self.umask = UMASK
        self.current = Task(PID)  # the task on the vCPU; the main thread is the process id
        self.tasks: dict[int, Task] = {PID: self.current}  # live tasks in tid order
        self.futex_sequence = 0  # futex enqueues so far (kernel/futex.py orders queues by it)
        self.scheduler = Scheduler(config.scheduler,
                                   DeterministicStream(config.seed, "sched", config.node_id))
        self.scheduler.admit(self.current)
        self._switch = False  # the scheduler decided the current task gives up the vCPU
        self._yielding = False  # ... because it yielded (sched_yield, pause)
        self.comm = image.path.name.encode()[:15]  # the task name (prctl PR_SET_NAME)
        self.coverage_map: tuple[int, int] | None = None  # SDK edge bitmap (address, size)

        plan = plan_load(image, config.patch)

        self.vm = Vm(config.mem_size)
        self.fast = self.fast_path_of(self.vm)
        self.vdso_address = self.vdso_of(self.vm)
        self.space = AddressSpace(self.vm)
        self.space.oom_kill = self._oom_kill
        self.space.drop_hold = self._drop_hold
        exe_name = b"/chaosreplay/" + image.path.name.encode()
        loaded = load_image(self.space, plan, config.argv, config.envp,
                            self.random["auxv"].read(16), exe_name,
                            self._boot_interpreter(image), self.vdso_address)
        self.sites = self.space.code.sites  # every patched site, the program's and run-time
        self.exe_name = exe_name
        self.boot_image, self.boot_exe_name = image, exe_name  # what execve replaces
        self.exe_ino: int | None = None  # the exec'd program's inode (None: boot image)
        self.argv, self.envp = config.argv, config.envp  # what execve gave the program
        self.vm.start(loaded.entry, loaded.stack_pointer)
        self.regs = self.vm.regs

    def _boot_interpreter(self, image: ProgramImage) -> ProgramImage | None:
        """The dynamic loader of a dynamically linked node program, from the node's disk;
        GuestProgramError (one line for the user) when the disk does not hold it."""
        if image.interpreter is None:
            return None
        from chaosreplay.kernel.syscalls.process import read_interpreter

        found = read_interpreter(self, image.interpreter)
        if isinstance(found, int):
            why = {errno.ENOENT: "is not on the node's disk"}.get(
                -found, f"cannot be loaded ({errno.errorcode.get(-found, -found)})")
            raise GuestProgramError(
                f"{image.path}: is dynamically linked and its interpreter {image.interpreter} "
                f"{why}: put it and the libraries the program needs on the disk with the "
                "node group's `files`, or build the program with -static")
        return found

    # -- events ----------------------------------------------------------------------------
    def emit(self, kind: EventKind, **fields: Any) -> None:
        """An event of the current task (its tid named unless it is the main thread)."""
        if self.on_event is not None:
            if self.current.tid != PID:
                fields["tid"] = self.current.tid
            self.on_event(self, kind, fields)

    def output(self, fd: int, data: bytes) -> None:
        """Record output: the whole of it as an event, its last bytes in a bounded tail."""
        tail, limit = (self.stdout if fd == 1 else self.stderr), self.config.output_tail_bytes
        total = len(tail) + len(data)
        tail.extend(data[max(0, len(data) - limit):])
        if len(tail) > limit:  # a ring: keep the newest bytes (front deletion is cheap)
            del tail[: len(tail) - limit]
        self.output_dropped[fd != 1] += total - len(tail)
        if self.on_output is not None:
            self.on_output(fd, data)
        # One event per MiB: a recording frame holds at most 4 MiB, a write up to 16 MiB.
        for at in range(0, len(data), OUTPUT_EVENT_BYTES) if data else (0,):
            self.emit(EventKind.OUTPUT, fd=fd, data=data[at : at + OUTPUT_EVENT_BYTES])

    def begin_incarnation(self, incarnation: int) -> None:
        """Start life number `incarnation` (after a restart): fresh random streams."""
        self.incarnation = incarnation
        self.random = self.kernel.streams()
        self.emulator.reseed(incarnation)

    # -- clocks ----------------------------------------------------------------------------
    def guest_time_ns(self) -> int:
        """The monotonic time the guest reads: virtual time bent by clock faults."""
        return self.clock.read(self.vtime_ns)

    def realtime_ns(self) -> int:
        """CLOCK_REALTIME as the guest reads it (since the epoch), jumps included."""
        return self.clock.realtime(self.vtime_ns)

    def block_until(self, wake_ns: int) -> None:
        """Put the current task to sleep until virtual time wake_ns."""
        self.current.wake_at_ns = max(min(wake_ns, KTIME_MAX), self.vtime_ns)

    def block_for(self, guest_ns: int) -> None:
        """Block for guest_ns as measured by the guest's own (possibly skewed) clock; a
        wake-up past KTIME_MAX saturates there, as Linux's hrtimers do."""
        self.block_until(self.vtime_ns + self.clock.to_virtual(min(guest_ns, KTIME_MAX)))

    # -- tasks -----------------------------------------------------------------------------
    @property
    def waiting(self) -> Wait | None:
        """The call the current task is blocked in (being retried), if any."""
        return self.current.waiting

    @waiting.setter
    def waiting(self, wait: Wait | None) -> None:
        self.current.waiting = wait

    @property
    def signal_mask(self) -> int:
        return self.current.signal_mask

    @signal_mask.setter
    def signal_mask(self, mask: int) -> None:
        self.current.signal_mask = mask

    def find_task(self, tid: int) -> Task | None:
        return self.tasks.get(tid)

    def others_alive(self) -> bool:
        """Whether something other than the current task could still wake it: another
        task, or the interval timer's signal."""
        return (len(self.tasks) > 1 or self.timer_due_ns is not None
                or (self.table is not None and self.table.others_alive(self)))

    def task_regs(self, task: Task) -> Any:
        """A task's registers: live on the vCPU, or in its saved context."""
        if task is self.current:
            return self.regs
        assert task.context is not None
        return task.context.regs

    def spawn_task(self, stack: int, tls: int | None) -> Task:
        """A new thread that starts where the current task's clone returns, with rax 0."""
        context = TaskContext()
        self.vm.save_context(context)
        context.regs.rax = 0
        if stack:
            context.regs.rsp = stack
        if tls is not None:
            context.fs_base = tls
        task = Task(self.kernel.new_id(), context, signals=self.current.signals.for_thread())
        self.scheduler.admit(task)
        self.tasks[task.tid] = task
        self.emit(EventKind.TASK_START, child=task.tid)
        return task

    def forget_task(self, task: Task) -> None:
        """Undo spawn_task for a clone that failed after it (its tid stays used)."""
        del self.tasks[task.tid]

    def exit_task(self, task: Task, code: int) -> None:
        """One thread ends (exit); the last one's exit ends the process."""
        if len(self.tasks) <= 1:
            self.exit(code)
            return
        futex.release_robust_list(self, task)
        if task.clear_child_tid and futex.write_word(self, task.clear_child_tid, 0):
            futex.wake(self, task.clear_child_tid, 1)  # pthread_join waits on this word
        if task is self.current:
            end_wait(self)
        task.exited = True
        del self.tasks[task.tid]
        self.emit(EventKind.TASK_EXIT, code=code & 0xFF)

    def emit_signal_delivered(self, signo: int, frame: int) -> None:
        """A handler is entered: the signal and where its frame went."""
        action = self.signals.actions.get(signo)
        self.emit(EventKind.SIGNAL, signo=signo, handler=action.handler, frame=frame)

    def yield_cpu(self) -> None:
        """The current task offers the vCPU to another ready task (sched_yield, pause)."""
        if len(self.tasks) > 1:
            self._switch = self._yielding = True

    def _node_processes(self) -> list[GuestProcess]:
        return self.table.live() if self.table is not None else [self]

    def in_datagram_recv(self) -> bool:
        """Whether a task of the node sleeps in cr_recv (a delivery may complete it)."""
        return any(t.in_sdk_recv for q in self._node_processes() for t in q.tasks.values())

    def datagram_receiver(self) -> GuestProcess:
        """The process of the node whose thread sleeps in cr_recv (self if none does)."""
        return next((q for q in self._node_processes()
                     if any(t.in_sdk_recv for t in q.tasks.values())), self)

    def complete_datagram_recv(self, result: int, at_ns: int) -> None:
        """A datagram completes the cr_recv a task of the node sleeps in (the node has one
        endpoint: one such call at a time): its result, and it wakes."""
        q = self.datagram_receiver()
        task = next(t for t in q.tasks.values() if t.in_sdk_recv)
        task.in_sdk_recv = False
        q.task_regs(task).rax = result & _MASK64
        wake = max(at_ns, self.vtime_ns)
        task.wake_at_ns = wake
        if self.wake_at_ns is None or wake < self.wake_at_ns:
            self.wake_at_ns = wake

    def _switch_to(self, task: Task) -> bool:
        """Put task on the vCPU (saving the current one's state); False if it died."""
        old = self.current
        self.space.code.suspend(self.regs)  # no trap step or W+X page outlives its task
        if old.tid in self.tasks and not old.exited:
            old.context = TaskContext()
            self.vm.save_context(old.context)
        assert task.context is not None
        try:
            self.vm.load_context(task.context)
        except VmmError as exc:  # a thread created with a stack the CPU refuses
            self.current = task
            self._die(signal.SIGSEGV, 13, 0, f"thread {task.tid} cannot start: {exc}")
            return False
        task.context = None
        self.current = task
        task.ran_since_ns = self.vtime_ns
        return True

    def _next_task(self) -> Task | None:
        """The task to run now, put on the vCPU; None when every task is blocked."""
        current, now = self.current, self.vtime_ns
        if len(self.tasks) == 1 and not current.exited:
            self._switch = False
            return current if current.ready(now) else None
        if not self._switch and not current.exited and current.ready(now):
            return current  # resuming (after a deadline or a pause) never reschedules
        task = self.scheduler.pick(list(self.tasks.values()), current, now, self._yielding)
        self._switch = self._yielding = False
        if task is not None and task is not current and not self._switch_to(task):
            return None
        return task

    def _sleep(self) -> Status:
        """Every task is blocked: the node sleeps until the first wakes by itself."""
        if self.status is not Status.RUNNING:
            return self.status
        wakes = [w for w in (t.wake_time() for t in self.tasks.values()) if w is not None]
        if self.timer_due_ns is not None:
            wakes.append(self.timer_due_ns)
        if not wakes and self.table is not None:
            return Status.BLOCKED  # another process may wake it: the node loop decides
        if not wakes:
            reasons = [t.waiting.reason if t.waiting else "a wait" for t in self.tasks.values()]
            if len(reasons) == 1:
                why = f"{reasons[0]} blocks forever (no timeout, no other task to wake it)"
            else:
                why = "every task blocks forever (" + ", ".join(
                    f"tid {t.tid} in {r}" for t, r in zip(self.tasks.values(), reasons,
                                                          strict=True)) + ")"
            self._die(signal.SIGKILL, 0, 0, f"deadlock: {why}")
            return self.status
        self.wake_at_ns = max(min(wakes), self.vtime_ns)
        return Status.BLOCKED

    def _give_way(self) -> bool:
        """At a switch: whether the vCPU goes to another process (the node loop picks it)
        rather than to another task of this one."""
        current, now = self.current, self.vtime_ns
        if current.exited or not current.ready(now):
            return False  # blocked: the process runs its other tasks or sleeps first
        if not self.table.others_ready(self, now):  # type: ignore[union-attr]
            return False
        self._switch = self._yielding = False  # when it resumes, it resumes this task
        self.yielded = True
        return True

    def _switch_point(self) -> bool:
        """After a call or trap the current task survives: whether it gives up the vCPU."""
        current = self.current
        if current.exited or current.blocked() or self.stopped:
            return True
        if len(self.tasks) == 1 and self.table is None:
            return False
        if self._switch:
            return True
        now = self.vtime_ns
        others = any(t is not current and t.ready(now) for t in self.tasks.values())
        if not others and self.table is not None:
            others = self.table.others_ready(self, now)
        self._switch = self.scheduler.should_switch(current, now, others)
        return self._switch

    # -- running ---------------------------------------------------------------------------
    def run(self, deadline_ns: int | None = None) -> Status:
        """Run until every task is blocked, it ended, or virtual time passes deadline_ns
        (with several processes, the node's: they take turns, kernel/processes.py)."""
        if self.table is not None:
            return self.table.run(deadline_ns)
        return self.run_process(deadline_ns)

    def run_process(self, deadline_ns: int | None = None) -> Status:
        """Run this process's tasks until all block, it ends, virtual time passes
        deadline_ns, or (yielded set) another process of the node is to have the vCPU."""
        if self.status in (Status.EXITED, Status.CRASHED, Status.HUNG):
            return self.status
        if self.wake_at_ns is not None:
            self.vtime_ns = max(self.vtime_ns, self.wake_at_ns)
            self.wake_at_ns = None
        first = True
        while True:
            if self.timer_due_ns is not None and self.vtime_ns >= self.timer_due_ns:
                signalling.fire_timers(self)
            if (self._switch and self.table is not None and self._give_way()) \
                    or self.stopped:
                self.yielded = True
                return Status.RUNNING
            task = self._next_task()
            if task is None:
                return self._sleep()
            if not first and (self.preempt or (deadline_ns is not None
                                               and self.vtime_ns > deadline_ns)):
                self.preempt = False
                return Status.RUNNING  # switched: the new task goes on when run again
            first = False
            if task.interrupted_nr is not None:  # a signal ended its call
                number, task.interrupted_nr, task.blocked_nr = task.interrupted_nr, None, None
                signalling.deliver(self, number)
                if self.status is not Status.RUNNING:
                    return self.status
            elif task.blocked():  # it woke: its sleep is over, or its call runs again
                task.wake_at_ns = None
                task.blocked_nr = None
                if task.in_sdk_recv:  # by its timeout: no delivery may complete it now
                    task.in_sdk_recv = False
                    if self.on_recv_timeout is not None:
                        self.on_recv_timeout()
                if task.waiting is not None:
                    resumed = self._retry_wait()
                    if resumed is not None:
                        return resumed
                    if self._switch_point():
                        continue
            elif self.signals_dirty:  # switched in with a signal to take
                signalling.deliver(self, -1)
                if self.status is not Status.RUNNING:
                    return self.status
            if self.stopped:  # a stop signal taken on the way: another process goes on
                self.yielded = True
                return Status.RUNNING
            status = self._run_current(deadline_ns)
            if status is not None:
                return status

    def _run_current(self, deadline_ns: int | None) -> Status | None:
        """Run the task on the vCPU until it gives up the vCPU (None) or run() returns."""
        vm, regs, handlers = self.vm, self.regs, HANDLERS
        syscall_cost = self.config.syscall_cost_ns
        tasks, current = self.tasks, self.current  # clone adds to tasks; a switch returns
        fast = self.fast
        while True:
            if fast is not None:
                fast.arm(self, deadline_ns)
            reason = vm.run()
            if fast is not None and fast.granted and not fast.drain(self):
                return self.status  # the guest forged its fast-path ring
            if reason == ExitReason.SYSCALL:
                number = regs.rax
                handler = handlers.get(number)
                try:
                    if self.space.shares or (self.table is not None
                                             and page_cache.active(self)):
                        # shared file mappings in the node: synchronised around the call
                        result = self._cached_syscall(handler, number)
                    else:
                        result = handler(self, regs) if handler else self._unknown_syscall(number)
                    rax = result & _MASK64
                except Exception as exc:  # the one guard: nothing a guest does escapes
                    self.syscalls += 1
                    self.vtime_ns += syscall_cost
                    self._contain(exc, f"syscall {syscall_name(number)}", nr=number)
                    return self.status
                self.vtime_ns += syscall_cost
                if result == WAIT:  # blocked (kernel.fs.waiters): answered when it wakes
                    if self.status is not Status.RUNNING:
                        return self.status
                    return None
                self.syscalls += 1
                if self.trace_syscalls and (number not in SELF_RECORDING or result < 0):
                    self._syscall_event(number, result)
                if self.status is not Status.RUNNING:
                    return self.status
                regs.rax = rax
                if current.wake_at_ns is not None:
                    current.blocked_nr = number  # a plain sleep: a signal may end it
                elif self.signals_dirty or self.timer_due_ns is not None:
                    self._user_return(number if number != NR_RT_SIGRETURN else -1)
                    if self.status is not Status.RUNNING:
                        return self.status
                # one thread that did not sleep goes straight on (the hot path)
                if (len(tasks) > 1 or current.wake_at_ns is not None or current.exited
                        or self.table is not None) and self._switch_point():
                    return None
            elif reason == ExitReason.EXCEPTION:
                self.vtime_ns += self.config.exception_cost_ns
                try:
                    resumed = self._handle_exception()
                except Exception as exc:
                    self._contain(exc, f"exception vector {vm.exit.vector}",
                                  vector=vm.exit.vector)
                    return self.status
                if not resumed:
                    return self.status
                if self.signals_dirty or self.timer_due_ns is not None:
                    self._user_return(-1)
                    if self.status is not Status.RUNNING:
                        return self.status
                if self._switch_point():
                    return None
            elif reason == ExitReason.INTERRUPTED:
                self.status = Status.HUNG
                # Where the watchdog caught the guest depends on wall time: record no rip.
                self.emit(EventKind.CRASH, signal=0, reason="hang")
                return self.status
            else:
                exit_ = vm.exit
                if exit_.kvm_exit == KVM_EXIT_IO and regs.rip < USER_END:
                    # The I/O bitmap opens the VMM's ports to CPL3 for the entry page; the
                    # program itself using one is what Linux answers with #GP.
                    self._die(signal.SIGSEGV, 13, 0, "#GP general protection (I/O to port "
                              f"{exit_.detail:#x}, which only the VMM's entry code may use)")
                else:
                    self._die(signal.SIGKILL, 0, 0, f"VM failure (kvm exit {exit_.kvm_exit}, "
                              f"detail {exit_.detail:#x})")
                return self.status
            if self.preempt or (deadline_ns is not None and self.vtime_ns > deadline_ns):
                self.preempt = False
                return Status.RUNNING

    def fast_path_of(self, vm: Vm) -> FastPath | None:
        """Turn on vm's fast path when the scenario has it (None: every call exits)."""
        if not self.config.fast_path:
            return None
        vm.set_fastpath(True)
        return FastPath(vm.fastpath)

    def vdso_of(self, vm: Vm) -> int:
        """Map vm's vDSO when the scenario has it: its address for AT_SYSINFO_EHDR (0: none)."""
        if not self.config.vdso:
            return 0
        vm.set_vdso(True)
        return VDSO_ADDRESS

    @property
    def switch_pending(self) -> bool:
        """The scheduler decided the current task gives up the vCPU at its next chance."""
        return self._switch

    def kill_forged(self, reason: str) -> None:
        """The guest wrote the VMM's fast-path page into something the VMM never writes."""
        self._die(signal.SIGKILL, 0, 0, reason)

    def run_to_completion(self, hang_seconds: float = 0) -> Status:
        """Run a lone process until it ends; sleeping just moves its clock forward."""
        from chaosreplay.vm.watchdog import Watchdog

        with Watchdog(self.exit_count, hang_seconds):
            status = self.run()
            while status in (Status.RUNNING, Status.BLOCKED):
                status = self.run()
        return status

    def _cached_syscall(self, handler: Any, number: int) -> int:
        """A system call with shared file mappings about: the mappings' stores reach the
        files first, and mappings of a file the call changed show it after."""
        if number not in page_cache.NO_FILE_CALLS:
            page_cache.flush(self)
        files = page_cache.mapped_files(self)
        before = page_cache.stamps(self, files)
        result = handler(self, self.regs) if handler else self._unknown_syscall(number)
        page_cache.refresh_changed(self, files, before)
        return result

    def _syscall_event(self, number: int, result: int) -> None:
        """The hottest event: straight to the sink (the tid only off the main thread)."""
        regs = self.regs
        args = [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9]
        if number in EXEC_CALLS and result == 0:  # the new program's registers are zero
            args = self.exec_call_args
        self.syscall_event(number, args, result)

    def syscall_event(self, number: int, args: list[int], result: int) -> None:
        """A system call's event from its number, six argument registers and result."""
        fields = {"nr": number, "name": syscall_name(number), "args": args, "ret": result}
        if self.current.tid != PID:
            fields["tid"] = self.current.tid
        self.on_event(self, EventKind.SYSCALL, fields)  # type: ignore[misc]

    def _retry_wait(self) -> Status | None:
        """Run the current task's blocked call again now that it woke: None when it finished
        or went back to sleep, a Status when run() must return."""
        wait = self.waiting
        assert wait is not None
        regs = self.regs
        try:
            result = HANDLERS[wait.number](self, regs)
            rax = result & _MASK64
        except Exception as exc:  # the same guard as the dispatch seam's
            self._contain(exc, f"syscall {syscall_name(wait.number)}", nr=wait.number)
            return self.status
        if result == WAIT:
            return self.status if self.status is not Status.RUNNING else None
        end_wait(self)
        self.syscalls += 1
        if self.trace_syscalls:
            self._syscall_event(wait.number, result)
        if self.status is not Status.RUNNING:
            return self.status
        regs.rax = rax
        if self.signals_dirty or self.timer_due_ns is not None:
            self._user_return(wait.number)
            if self.status is not Status.RUNNING:
                return self.status
        if self.preempt:
            self.preempt = False
            return Status.RUNNING
        return None

    def _user_return(self, orig_rax: int) -> None:
        """On the way back to user mode: an expired interval timer fires, signals are
        taken (`orig_rax`: the call that returns, -1 after an exception)."""
        if self.timer_due_ns is not None and self.vtime_ns >= self.timer_due_ns:
            signalling.fire_timers(self)
        if self.signals_dirty:
            signalling.deliver(self, orig_rax)

    def _unknown_syscall(self, number: int) -> int:
        counts = self.unknown_syscalls
        if number in counts or len(counts) < UNKNOWN_SYSCALLS_KEPT:
            counts[number] = counts.get(number, 0) + 1
        else:
            self.unknown_syscalls_other += 1  # bounded: a fuzzer's random numbers
        return -ENOSYS

    def _drop_hold(self, file: Any) -> None:
        """A mapping's hold on a description ends: closed once nothing refers to it."""
        file.refs -= 1
        if file.refs == 0:
            file.release(self)

    def _oom_kill(self, reason: str) -> None:
        """The OOM killer: guest RAM is exhausted, so the node dies of SIGKILL."""
        if self.status is not Status.CRASHED:
            self._die(signal.SIGKILL, 0, 0, reason)

    def _contain(self, exc: Exception, where: str, **ids: int) -> None:
        """Turn an exception from answering the guest into the end of this node.

        Out of guest memory is the OOM killer's SIGKILL. Anything else is a bug of the VMM:
        recorded as a `vmm.bug` event (type and message only; nothing host-specific) and
        the node dies, which fails the run. Exceptions raised by code outside the kernel
        (an event sink ending a replay, say) are not the guest's doing and pass through.
        """
        if isinstance(exc, GuestOutOfMemory):
            self._oom_kill(str(exc))
            return
        if not _raised_by_kernel(exc):
            raise exc
        message = _HOST_ADDRESS.sub("", str(exc))[:MAX_BUG_MESSAGE]
        error = type(exc).__name__
        self.emit(EventKind.VMM_BUG, where=where, **ids, error=error, message=message)
        self._die(signal.SIGKILL, ids.get("vector", 0), 0,
                  f"VMM bug in {where}: {error}: {message}")

    def _handle_exception(self) -> bool:
        """Emulate, populate or crash; True when the guest can continue."""
        exit_, regs = self.vm.exit, self.regs
        vector = exit_.vector
        if vector in (1, 3, 14):  # W^X: scan code before it runs; trapped and stepped code
            handled = self._code_fault(vector)
            if handled is not None:
                return handled
        if vector == 14 and self.space.populate(exit_.fault_addr, bool(exit_.error_code & 2)):
            return True
        if vector == 6:
            site = self.sites.get(regs.rip)
            if site is not None:
                fault = self.emulator.emulate(site, regs, self.guest_time_ns())
                if isinstance(fault, nonvirt.SpinYield):
                    self.yield_cpu()  # pause: a spin-wait lets another ready task run
                if fault is None or isinstance(fault, nonvirt.SpinYield):
                    return True
                self._die(fault.signal, fault.vector, 0, fault.reason)
                return False
        signo = VECTOR_SIGNALS.get(vector, signal.SIGSEGV)
        handled = signalling.exception_to_handler(self, vector, exit_.error_code,
                                                  exit_.fault_addr, signo)
        if handled is not None:  # the program's own handler takes it
            return handled
        reason = VECTOR_NAMES.get(vector, f"vector {vector}")
        if vector == 14:
            access = "write" if exit_.error_code & 2 else (
                "execute" if exit_.error_code & 16 else "read")
            present = "protection" if exit_.error_code & 1 else "unmapped"
            reason = f"{reason}, {access} of {present} memory"
        self._die(VECTOR_SIGNALS.get(vector, signal.SIGSEGV), vector, exit_.fault_addr, reason)
        return False

    def _code_fault(self, vector: int) -> bool | None:
        """Let the W^X policy handle a #PF or #DB: None when it is not about code pages."""
        regs, code = self.regs, self.space.code

        def emulate(site: nonvirt.Site) -> nonvirt.Emulated:
            return self.emulator.emulate(site, regs, self.guest_time_ns())

        if vector == 1:
            result = code.on_debug_trap(regs, emulate)
        elif vector == 3:
            result = code.on_breakpoint(regs, emulate)
        else:
            result = code.on_page_fault(self.vm.exit.fault_addr, self.vm.exit.error_code, regs,
                                        emulate)
        if isinstance(result, nonvirt.GuestFault):
            self._die(result.signal, result.vector, 0, result.reason)
            return False
        if isinstance(result, nonvirt.SpinYield):
            self.yield_cpu()  # a pause emulated in a stepped page or a trap
        # Scans and single-steps cost virtual time like any exception: a loop that keeps
        # stepping or rewriting a page must still move the clock (and reach deadlines).
        return True if result else None

    @property
    def alive(self) -> bool:
        return self.status is Status.RUNNING

    @property
    def is_child(self) -> bool:
        """A process the node's program (or its children) forked."""
        return self.table is not None and self is not self.table.init

    def _die(self, signo: int, vector: int, fault_address: int, reason: str) -> None:
        rip = self.regs.rip
        self.crash = Crash(int(signo), vector, rip, self.image.symbols.describe(rip),
                           fault_address, reason)
        self.status = Status.CRASHED
        if self.is_child:  # its parent learns it through wait4; the node goes on
            self.table.process_ended(self)  # type: ignore[union-attr]
            return
        self.emit(EventKind.CRASH, signal=int(signo), vector=vector, rip=rip,
                  symbol=self.crash.symbol, fault_address=fault_address, reason=reason)

    def exit(self, code: int) -> None:
        self.exit_code = code & 0xFF
        self.status = Status.EXITED
        if self.is_child:
            self.table.process_ended(self)  # type: ignore[union-attr]
            return
        self.emit(EventKind.EXIT, code=self.exit_code)

    def kill_quietly(self, reason: str) -> None:
        """SIGKILL as the node ends: no parent is told, nothing more runs."""
        self.crash = Crash(signal.SIGKILL, 0, 0, "", 0, reason)
        self.status = Status.CRASHED
        self.emit(EventKind.PROCESS_EXIT, pid=self.pid, signal=int(signal.SIGKILL),
                  reason=reason)

    def drop_vm(self) -> None:
        """An ended child's VM goes back to the host; its wait status stays."""
        if self.space is not None:
            self.space.release_holds()
        self.vm = self.space = self.regs = None  # type: ignore[assignment]
        self.tasks = {}

    def exit_count(self) -> int:
        """VM exits of every process of the node: progress for the hang watchdog."""
        if self.table is not None:
            return self.table.exit_count()
        return self.own_exit_count()

    def own_exit_count(self) -> int:
        """This process's VM exits as if every call exited: the fast path's answered calls
        count, the vDSO's internal resumes do not, so the count (the watchdog's progress,
        kept in checkpoints once a VM is gone) is the same with the fast path and without."""
        vm = self.vm
        if vm is None:
            return 0
        stats = vm.stats()
        fast = self.fast
        return stats.exits - stats.vdso_resumes + (fast.calls if fast is not None else 0)

    def fork(self, pid: int) -> GuestProcess:
        """A copy of this process for fork: its memory (a cloned VM), the calling thread
        alone as the child's main thread, shared open descriptions, the same handlers;
        no pending signals or timers. It resumes from the same call with rax 0."""
        child = self.sibling(pid)
        child.signals = GroupSignals(self.signals.actions.copy())
        child.task_attributes = TaskAttributes.from_state(  # type: ignore[attr-defined]
            attributes_of(self).to_state())
        child.files = self.files.fork()
        child.current = Task(pid, signals=self.current.signals.for_fork())
        child.current.ran_since_ns = self.vtime_ns
        child.tasks = {pid: child.current}
        child.scheduler.admit(child.current)
        self.space.code.suspend(self.regs)  # no trap step or W+X page is copied mid-way
        child.vm = self.vm.clone()  # the fast path comes with it, on or off
        child.fast = None if self.fast is None else FastPath(child.vm.fastpath)
        child.regs = child.vm.regs
        child.space = self.space.fork(child.vm)
        child.space.oom_kill = child._oom_kill
        child.space.drop_hold = child._drop_hold
        child.sites = child.space.code.sites
        child.regs.rax = 0
        return child

    def sibling(self, pid: int) -> GuestProcess:
        """A new process of this node, this one its parent: the node's clock, disk,
        network, streams and output shared, this process's program, directory and
        names copied; no VM, threads, descriptors, handlers or timers yet."""
        child = GuestProcess.__new__(GuestProcess)
        child.kernel = self.kernel
        for name in ("image", "boot_image", "boot_exe_name", "config", "node_id", "vtime_ns",
                     "cwd", "umask", "comm", "coverage_map", "exe_name", "exe_ino", "argv",
                     "envp", "pgid", "sid"):
            setattr(child, name, getattr(self, name))
        child.preempt = child.yielded = child.reaped = child.stopped = False
        child.fast = None  # comes with its VM
        child.vdso_address = self.vdso_address
        child.stop_report = None
        child.exec_call_args = []
        child.status, child.exit_code, child.crash = Status.RUNNING, None, None
        child.wake_at_ns = None
        child.syscalls, child.unknown_syscalls, child.unknown_syscalls_other = 0, {}, 0
        child.pid, child.ppid, child.exit_signal = pid, self.pid, signal.SIGCHLD
        child.child_events = ChildEvents()
        child.signals, child.signals_dirty = GroupSignals(), False
        child.itimer_real, child.posix_timers, child.next_timer_id = (None, 0), {}, 0
        child.itimer_cpu = {}
        child.timer_due_ns = None
        child.on_recv_timeout = None
        child.tasks, child.futex_sequence = {}, 0
        child.scheduler = Scheduler(self.config.scheduler, DeterministicStream(
            self.config.seed, f"sched.{pid}", self.config.node_id))
        child._switch = child._yielding = False
        return child

    def _process_digest(self) -> bytes:
        """This process's VM digest (registers + memory), and the saved state of every
        task off the vCPU when there are several."""
        digest = self.vm.digest()
        if len(self.tasks) == 1:
            return digest
        h = hashlib.sha256(digest)
        for task in self.tasks.values():
            h.update(task.tid.to_bytes(4, "little"))
            if task.context is not None:
                h.update(task.context.to_bytes())
        return h.digest()

    def digest(self) -> bytes:
        """The node's state digest: this process's, or every process's once one forked
        (a zombie by its wait status)."""
        if self.table is None:
            return self._process_digest()
        h = hashlib.sha256()
        for proc in self.table.procs.values():
            h.update(proc.pid.to_bytes(4, "little"))
            h.update(proc._process_digest() if proc.alive else
                     wait_status(proc).to_bytes(4, "little"))
        return h.digest()

    @property
    def can_checkpoint(self) -> bool:
        """Whether a checkpoint can cover the node: not while one of its processes runs
        an exec'd program that is no longer on the node's disk to load back."""
        procs = self.table.live() if self.table is not None else [self]
        return all(q.image is q.boot_image or q._exec_image(
            q.exe_ino, hashlib.sha256(q.image.raw).digest()) is not None for q in procs)

    def _exec_image(self, ino: int | None, digest: bytes) -> bytes | None:
        """The bytes of an exec'd program by its inode and SHA-256: the booted program's
        own, or the file's on the node's disk if it still holds them."""
        raw = self.boot_image.raw
        if hashlib.sha256(raw).digest() == digest:
            return raw
        if ino is None or not self.fs.has(ino) or self.fs.is_dir(ino):
            return None
        raw = self.fs.read_file_inode(ino)
        return raw if hashlib.sha256(raw).digest() == digest else None

    def _load_exec_image(self, exe: list[Any] | None) -> None:
        """Put back the program a checkpoint's process was running (kernel_state's exe)."""
        from chaosreplay.recording.schema import SchemaError

        if exe is None:
            self.image, self.exe_name, self.exe_ino = (self.boot_image, self.boot_exe_name,
                                                        None)
            self.argv, self.envp = self.config.argv, self.config.envp
            return
        path, ino, digest = bytes(exe[0]), exe[1], bytes(exe[2])
        self.argv, self.envp = [bytes(a) for a in exe[3]], [bytes(e) for e in exe[4]]
        raw = self._exec_image(ino, digest)
        where = f"part node{self.node_id}.kernel.exe"
        if raw is None:
            raise SchemaError(f"{where}: the exec'd program {path!r} is not on the node's "
                              "disk with the bytes it had")
        try:
            plan = self.images.plan(raw, path.decode(errors="replace"), self.config.patch)
        except GuestProgramError as exc:
            raise SchemaError(f"{where}: {exc}") from None
        self.image, self.exe_name, self.exe_ino = plan.image, path, ino

    # -- checkpoints -----------------------------------------------------------------------
    def kernel_state(self) -> dict[str, Any]:
        """Everything the VMM keeps for this node outside its VMs, as plain data: this
        process's state, the node's, and (once it forked) every other process's."""
        others = self.table.others_in_order(self) if self.table is not None else []
        # one table of descriptions for all: forks share them, and mappings hold some
        mapped = [d for q in [self, *(q for q in others if q.alive)] if q.space is not None
                  for d in q.space.mapped_files()]
        refs, tables = save_tables([self.files] + [q.files for q in others if q.alive],
                                   mapped)
        files = files_state(self, (refs, tables[0]))
        node = {
            "vtime_ns": self.vtime_ns, "clock": self.clock.to_dict(),
            "incarnation": self.incarnation,
            "stdout": bytes(self.stdout), "stderr": bytes(self.stderr),
            "output_dropped": list(self.output_dropped), "next_tid": self.next_tid,
            "random": sorted((name, s.position) for name, s in self.random.items()),
            "rdrand": self.emulator.rdrand.position, "rdseed": self.emulator.rdseed.position,
            "files": files,
        }
        own = self.process_state(refs)
        state = {key: own[key] if key in own else node[key] for key in KERNEL_STATE_KEYS}
        for key in ("exe", "stop", "itimer_cpu"):  # only when set: older states keep bytes
            if key in own:
                state[key] = own[key]
        if others:
            live = iter(tables[1:])
            state["processes"] = self.table.save(  # type: ignore[union-attr]
                refs, {q.pid: next(live) for q in others if q.alive})
        return state

    def process_state(self, refs: Refs | None = None) -> dict[str, Any]:
        """This process's own part of kernel_state(): status, signals, timers, tasks,
        scheduler, address space (file mappings name their descriptions by index in
        refs), name (and the exec'd program, if any)."""
        space = self.space
        index = None if refs is None else refs.index
        state = {
            "status": self.status.value, "exit_code": self.exit_code,
            "wake_at_ns": self.wake_at_ns, "syscalls": self.syscalls,
            "unknown_syscalls": sorted(self.unknown_syscalls.items()),
            "unknown_syscalls_other": self.unknown_syscalls_other,
            "signals": self.signals.to_state(), "itimer_real": list(self.itimer_real),
            "posix_timers": [[i, *t.to_list()] for i, t in self.posix_timers.items()],
            "next_timer_id": self.next_timer_id,
            "tasks": [_task_state(t) for t in self.tasks.values()],
            "current_tid": self.current.tid,
            "futex_sequence": self.futex_sequence, "scheduler": self.scheduler.to_state(),
            "vmas": [v.saved(index) for v in space.vmas()],
            "code_pages": space.code.to_state(),
            "brk_start": space.brk_start, "brk": space.brk,
            "memory_limit": space.memory_limit,
            "framed_chunks": None if space.framed is None else sorted(space.framed),
            "comm": self.comm,
            "coverage_map": None if self.coverage_map is None else list(self.coverage_map),
        }
        if self.image is not self.boot_image:
            state["exe"] = [self.exe_name, self.exe_ino, hashlib.sha256(self.image.raw).digest(),
                            list(self.argv), list(self.envp)]
        if self.stopped or self.stop_report is not None:
            state["stop"] = [self.stopped, self.stop_report]
        if self.itimer_cpu:
            state["itimer_cpu"] = [[which, at, interval]
                                   for which, (at, interval) in sorted(self.itimer_cpu.items())]
        return state

    def load_kernel_state(self, state: dict[str, Any]) -> None:
        """Adopt kernel_state() output (the VMs themselves are restored separately; the
        other processes come back with fresh VMs, for the caller to load); state from a
        file is checked first (SchemaError naming the field)."""
        from chaosreplay.kernel.state_check import check_kernel_state

        check_kernel_state(state, f"node{self.node_id}.kernel")

        if self.table is not None:
            self.table.kill_all("the node went back to a checkpoint")
            self.table = None
        self.vtime_ns = state["vtime_ns"]
        self.clock = NodeClock.from_dict(state["clock"])
        if state["incarnation"] != self.incarnation:
            self.begin_incarnation(state["incarnation"])
        self.stdout = bytearray(state["stdout"])
        self.stderr = bytearray(state["stderr"])
        self.output_dropped = list(state.get("output_dropped", (0, 0)))
        if "tasks" in state:
            self.next_tid = state["next_tid"]
        for name, position in state["random"]:
            self.random[name].seek(position)
        self.emulator.rdrand.seek(state["rdrand"])
        self.emulator.rdseed.seek(state["rdseed"])
        self.load_process_state(state)
        refs = load_files_state(self, state["files"])
        self.space.adopt_files(refs.descriptions, f"node{self.node_id}.kernel.vmas")
        if "processes" in state:
            ProcessTable.load(self, state["processes"], refs)

    def load_process_state(self, state: dict[str, Any]) -> None:
        """Adopt process_state() output (also found inside a whole kernel_state())."""
        from chaosreplay.kernel.mm.address_space import Vma

        self.status = Status(state["status"])
        self.exit_code = state["exit_code"]
        self.crash = None
        self.wake_at_ns = state["wake_at_ns"]
        self.syscalls = state["syscalls"]
        self.unknown_syscalls = dict(state["unknown_syscalls"])
        self.unknown_syscalls_other = state.get("unknown_syscalls_other", 0)
        if "signals" in state:
            self.signals = GroupSignals.from_state(state["signals"])
        else:  # before signal delivery: the actions as rt_sigaction stored them
            self.signals = GroupSignals()
            for signo, raw in state["signal_actions"]:
                self.signals.actions.sigaction(signo, SigAction.unpack(raw))
        at, interval = state.get("itimer_real", (None, 0))
        self.itimer_real = (at, interval)
        self.itimer_cpu = {which: (at, interval)
                           for which, at, interval in state.get("itimer_cpu", [])}
        self.posix_timers = {row[0]: PosixTimer(*row[1:]) for row in state.get("posix_timers", [])}
        self.next_timer_id = state.get("next_timer_id", 0)
        signalling.rearm(self)
        if "tasks" in state:
            self.tasks = {row[0]: _task_from_state(row) for row in state["tasks"]}
            current = state["current_tid"]
            # an exited current (state_check._current_on_cpu) is only a tid: the next
            # switch puts a task on the vCPU without saving the exited one's registers
            self.current = self.tasks.get(current) or Task(current, exited=True)
            self.futex_sequence = state["futex_sequence"]
            self.scheduler.load_state(state["scheduler"])
        else:  # a checkpoint from before threads: one task, the main thread
            self.current = Task(PID, signals=TaskSignals(state["signal_mask"]),
                                clear_child_tid=state["tid_address"])
            self.tasks = {PID: self.current}
        self._switch = self._yielding = False
        signalling.recheck(self)
        self.space._vmas = [Vma(*v[:5], v[5] if len(v) > 5 else None, bool(v[6]))
                            if len(v) > 5 else Vma(*v) for v in state["vmas"]]
        self.space.held, self.space.shares = {}, False  # holds: adopt_files, once loaded
        if "code_pages" in state:  # absent in checkpoints from before W^X
            self.space.code.load_state(state["code_pages"])
        self.space.brk_start = state["brk_start"]
        self.space.brk = state["brk"]
        self.space.memory_limit = state["memory_limit"]
        framed = state.get("framed_chunks")  # absent in older recordings: walk everything
        self.space.framed = None if framed is None else set(framed)
        self.comm = bytes(state.get("comm", self.image.path.name.encode()[:15]))
        coverage = state.get("coverage_map")
        self.coverage_map = None if coverage is None else (coverage[0], coverage[1])
        self._load_exec_image(state.get("exe"))  # (the node's disk is restored first)
        self.stopped, self.stop_report = state.get("stop", (False, None))

    def checkpoint(self, snapshot: Snapshot | None = None, incremental: bool = True) -> Checkpoint:
        """Capture VM + kernel state; reuse `snapshot`'s buffer when given."""
        snap = snapshot if snapshot is not None else self.vm.snapshot()
        snap.take(incremental=incremental)
        return Checkpoint(snap, self.kernel_state())

    def restore(self, checkpoint: Checkpoint) -> None:
        """Return to a checkpoint taken from this process (load_kernel_state ends its
        other processes and puts back the program the checkpoint ran)."""
        checkpoint.snapshot.restore()
        self.load_kernel_state(checkpoint.kernel)


def _task_state(task: Task) -> list[Any]:
    """A task as plain data (its blocked call is saved with the descriptor table)."""
    return [task.tid, None if task.context is None else task.context.to_bytes(),
            task.signals.to_state(), task.clear_child_tid, task.robust_list,
            task.robust_list_len, task.wake_at_ns,
            None if task.futex is None else task.futex.to_list(), task.priority,
            task.ran_since_ns, task.in_sdk_recv, task.blocked_nr, task.interrupted_nr,
            task.sigwait_set]


def _task_from_state(row: list[Any]) -> Task:
    (tid, context, signals, clear_tid, robust, robust_len, wake, sleep, priority, ran_since,
     in_recv, blocked_nr, interrupted_nr, sigwait_set) = row
    return Task(tid, None if context is None else TaskContext(context),
                TaskSignals.from_state(signals), clear_tid, robust, robust_len, wake, None,
                None if sleep is None else FutexWait(*sleep), False, priority, ran_since,
                in_recv, blocked_nr, interrupted_nr, sigwait_set)


@dataclass(slots=True)
class Checkpoint:
    """A process checkpoint: the VM snapshot and the VMM-side kernel state."""

    snapshot: Snapshot
    kernel: dict[str, Any]
