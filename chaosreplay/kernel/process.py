"""A node program running in its own VM, with the VMM acting as its Linux kernel.

GuestProcess owns the VM, the address space, the virtual clock and the seeded streams a
program can observe. `run()` executes the program until it blocks, passes a deadline in
virtual time, or ends; the simulation controller interleaves nodes with it.
"""

from __future__ import annotations

import re
import signal
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from chaosreplay.errors import GuestProgramError
from chaosreplay.events import EventKind
from chaosreplay.kernel import sdk_abi
from chaosreplay.kernel.clock import NodeClock
from chaosreplay.kernel.fs.disk import FileSystem
from chaosreplay.kernel.fs.paths import ROOT
from chaosreplay.kernel.fs.waiters import WAIT, Wait, end_wait
from chaosreplay.kernel.loader import build_stack, map_segments
from chaosreplay.kernel.mm.address_space import AddressSpace, GuestOutOfMemory
from chaosreplay.kernel.syscalls import HANDLERS
from chaosreplay.kernel.syscalls.args import KTIME_MAX
from chaosreplay.kernel.syscalls.files import UMASK, files_state, load_files_state, stdio_table
from chaosreplay.kernel.syscalls.numbers import syscall_name
from chaosreplay.rng import DeterministicStream
from chaosreplay.vm import nonvirt
from chaosreplay.vm.elf import ProgramImage
from chaosreplay.vm.vmm import DEFAULT_MEM_SIZE, ExitReason, Snapshot, Vm

_MASK64 = (1 << 64) - 1
KVM_EXIT_IO = 2
USER_END = 1 << 47
ENOSYS = 38
# SDK calls whose own event (assert, setup_complete, sdk.event) says all a syscall event
# would: traced as syscalls only when they fail.
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


EventSink = Callable[["GuestProcess", EventKind, dict[str, Any]], None]
OutputSink = Callable[[int, bytes], None]


class GuestProcess:
    """One node program in its own VM."""

    def __init__(self, image: ProgramImage, config: ProcessConfig,
                 on_event: EventSink | None = None, on_output: OutputSink | None = None) -> None:
        self.image = image
        self.config = config
        self.node_id = config.node_id
        self.on_event = on_event
        self.on_output = on_output
        self.trace_syscalls = on_event is not None
        self.vtime_ns = 0
        self.clock = NodeClock()  # clock faults bend what the guest reads, not its schedule
        self.preempt = False  # set by an event handler: return to the controller now
        self.status = Status.RUNNING
        self.exit_code: int | None = None
        self.crash: Crash | None = None
        self.wake_at_ns: int | None = None
        self.syscalls = 0
        self.unknown_syscalls: dict[int, int] = {}
        self.unknown_syscalls_other = 0  # calls of unknown numbers past the first 256 kept
        self.stdout = bytearray()  # the last output_tail_bytes of each stream
        self.stderr = bytearray()
        self.output_dropped = [0, 0]  # bytes of stdout, stderr that fell out of the tails
        self.signal_actions: dict[int, bytes] = {}
        self.signal_mask = 0
        self.tid_address = 0
        self.network: Any = None  # the simulation attaches a messaging endpoint
        self.files = stdio_table()  # the descriptor table (kernel.fs.files.FdTable)
        self.cwd = ROOT
        self.umask = UMASK
        self.waiting: Wait | None = None  # the call this process is blocked in, if any
        self.comm = image.path.name.encode()[:15]  # the task name (prctl PR_SET_NAME)
        self.coverage_map: tuple[int, int] | None = None  # SDK edge bitmap (address, size)
        self.fs = FileSystem(config.seed, config.node_id)  # the node's disk: outlives restarts
        self.incarnation = 0  # restarts so far: each life draws fresh random numbers
        self.random = self._streams()

        sites, all_strays = nonvirt.scan_program(image)
        sites = nonvirt.refuse_unpatchable(image, sites)
        if sites and not config.patch:
            listed = ", ".join(f"{s.text} at {s.address:#x} ({s.symbol})" for s in sites[:5])
            more = f" and {len(sites) - 5} more" if len(sites) > 5 else ""
            raise GuestProgramError(
                f"{image.path}: uses non-virtualizable instructions ({listed}{more}); "
                "run without --no-patch to emulate them"
            )
        self.emulator = nonvirt.NonVirtEmulator(config.seed, config.node_id, config.node_count)

        self.vm = Vm(config.mem_size)
        self.space = AddressSpace(self.vm)
        self.space.oom_kill = self._oom_kill
        strays, rewrites = [], []
        for stray in all_strays:  # hidden patterns: defuse, else single-step
            rewrite = nonvirt.defuse(image, stray)
            (strays if rewrite is None else rewrites).append(rewrite or stray)
        contents = nonvirt.apply_rewrites(image, nonvirt.patch_segments(image, sites), rewrites)
        map_segments(self.space, image, contents)
        self.space.code.describe = image.symbols.describe
        self.space.code.adopt_image(image, sites, strays)
        self.sites = self.space.code.sites  # every patched site, the program's and run-time
        exe_name = b"/chaosreplay/" + image.path.name.encode()
        sp = build_stack(self.space, image, config.argv, config.envp,
                         self.random["auxv"].read(16), exe_name)
        self.exe_name = exe_name
        self.vm.start(image.entry, sp)
        self.regs = self.vm.regs

    # -- events ----------------------------------------------------------------------------
    def emit(self, kind: EventKind, **fields: Any) -> None:
        if self.on_event is not None:
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

    def _streams(self) -> dict[str, DeterministicStream]:
        """The seeded streams of this life of the process (auxv is fixed by the image)."""
        config, life = self.config, self.incarnation
        return {name: DeterministicStream(config.seed, name if life == 0 or name == "auxv"
                                          else f"{name}#{life}", config.node_id)
                for name in ("getrandom", "sdk", "auxv", "urandom")}

    def begin_incarnation(self, incarnation: int) -> None:
        """Start life number `incarnation` (after a restart): fresh random streams."""
        self.incarnation = incarnation
        self.random = self._streams()
        self.emulator.reseed(incarnation)

    # -- clocks ----------------------------------------------------------------------------
    def guest_time_ns(self) -> int:
        """The monotonic time the guest reads: virtual time bent by clock faults."""
        return self.clock.read(self.vtime_ns)

    def realtime_ns(self) -> int:
        """CLOCK_REALTIME as the guest reads it (since the epoch), jumps included."""
        return self.clock.realtime(self.vtime_ns)

    def block_until(self, wake_ns: int) -> None:
        self.wake_at_ns = max(min(wake_ns, KTIME_MAX), self.vtime_ns)

    def block_for(self, guest_ns: int) -> None:
        """Block for guest_ns as measured by the guest's own (possibly skewed) clock; a
        wake-up past KTIME_MAX saturates there, as Linux's hrtimers do."""
        self.block_until(self.vtime_ns + self.clock.to_virtual(min(guest_ns, KTIME_MAX)))

    # -- running ---------------------------------------------------------------------------
    def run(self, deadline_ns: int | None = None) -> Status:
        """Run until blocked, ended, or virtual time passes deadline_ns."""
        if self.status in (Status.EXITED, Status.CRASHED, Status.HUNG):
            return self.status
        if self.wake_at_ns is not None:
            self.vtime_ns = max(self.vtime_ns, self.wake_at_ns)
            self.wake_at_ns = None
        vm, regs, handlers = self.vm, self.regs, HANDLERS
        syscall_cost = self.config.syscall_cost_ns
        if self.waiting is not None:
            resumed = self._retry_wait()
            if resumed is not None:
                return resumed
        while True:
            reason = vm.run()
            if reason == ExitReason.SYSCALL:
                number = regs.rax
                handler = handlers.get(number)
                try:
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
                    self.status = Status.BLOCKED
                    return self._blocked()
                self.syscalls += 1
                if self.trace_syscalls and (number not in SELF_RECORDING or result < 0):
                    # the hottest event: straight to the sink
                    self.on_event(self, EventKind.SYSCALL, {  # type: ignore[misc]
                        "nr": number, "name": syscall_name(number),
                        "args": [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9],
                        "ret": result})
                if self.status is not Status.RUNNING:
                    return self.status
                regs.rax = rax
                if self.wake_at_ns is not None:
                    self.status = Status.BLOCKED
                    return self._blocked()
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

    def run_to_completion(self, hang_seconds: float = 0) -> Status:
        """Run a lone process until it ends; sleeping just moves its clock forward."""
        from chaosreplay.vm.watchdog import Watchdog

        with Watchdog(lambda: self.vm.stats().exits, hang_seconds):
            status = self.run()
            while status in (Status.RUNNING, Status.BLOCKED):
                status = self.run()
        return status

    def _retry_wait(self) -> Status | None:
        """Run the blocked call again now that it woke; a Status when run() must return."""
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
            if self.status is not Status.RUNNING:
                return self.status
            return self._blocked()
        end_wait(self)
        self.syscalls += 1
        if self.trace_syscalls:
            self.on_event(self, EventKind.SYSCALL, {  # type: ignore[misc]
                "nr": wait.number, "name": syscall_name(wait.number),
                "args": [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9],
                "ret": result})
        if self.status is not Status.RUNNING:
            return self.status
        regs.rax = rax
        if self.preempt:
            self.preempt = False
            return Status.RUNNING
        return None

    def _blocked(self) -> Status:
        # The controller decides when the node runs again; a lone process just sleeps.
        self.status = Status.RUNNING
        return Status.BLOCKED

    def _unknown_syscall(self, number: int) -> int:
        counts = self.unknown_syscalls
        if number in counts or len(counts) < UNKNOWN_SYSCALLS_KEPT:
            counts[number] = counts.get(number, 0) + 1
        else:
            self.unknown_syscalls_other += 1  # bounded: a fuzzer's random numbers
        return -ENOSYS

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
                if fault is None or isinstance(fault, nonvirt.SpinYield):
                    return True  # SpinYield (pause): where a scheduler would switch tasks
                self._die(fault.signal, fault.vector, 0, fault.reason)
                return False
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
        # Scans and single-steps cost virtual time like any exception: a loop that keeps
        # stepping or rewriting a page must still move the clock (and reach deadlines).
        return True if result else None

    def _die(self, signo: int, vector: int, fault_address: int, reason: str) -> None:
        rip = self.regs.rip
        self.crash = Crash(int(signo), vector, rip, self.image.symbols.describe(rip),
                           fault_address, reason)
        self.status = Status.CRASHED
        self.emit(EventKind.CRASH, signal=int(signo), vector=vector, rip=rip,
                  symbol=self.crash.symbol, fault_address=fault_address, reason=reason)

    def exit(self, code: int) -> None:
        self.exit_code = code & 0xFF
        self.status = Status.EXITED
        self.emit(EventKind.EXIT, code=self.exit_code)

    def digest(self) -> bytes:
        """The VM's state digest (registers + memory)."""
        return self.vm.digest()

    # -- checkpoints -----------------------------------------------------------------------
    def kernel_state(self) -> dict[str, Any]:
        """Everything the VMM keeps for this process outside the VM, as plain data."""
        space = self.space
        return {
            "vtime_ns": self.vtime_ns, "clock": self.clock.to_dict(),
            "incarnation": self.incarnation,
            "status": self.status.value, "exit_code": self.exit_code,
            "wake_at_ns": self.wake_at_ns, "syscalls": self.syscalls,
            "unknown_syscalls": sorted(self.unknown_syscalls.items()),
            "unknown_syscalls_other": self.unknown_syscalls_other,
            "stdout": bytes(self.stdout), "stderr": bytes(self.stderr),
            "output_dropped": list(self.output_dropped),
            "signal_actions": sorted(self.signal_actions.items()),
            "signal_mask": self.signal_mask, "tid_address": self.tid_address,
            "random": sorted((name, s.position) for name, s in self.random.items()),
            "rdrand": self.emulator.rdrand.position, "rdseed": self.emulator.rdseed.position,
            "vmas": [[v.start, v.end, v.prot, v.name] for v in space.vmas()],
            "code_pages": space.code.to_state(),
            "brk_start": space.brk_start, "brk": space.brk,
            "memory_limit": space.memory_limit,
            "framed_chunks": None if space.framed is None else sorted(space.framed),
            "files": files_state(self), "comm": self.comm,
            "coverage_map": None if self.coverage_map is None else list(self.coverage_map),
        }

    def load_kernel_state(self, state: dict[str, Any]) -> None:
        """Adopt kernel_state() output (the VM itself is restored separately); state from a
        file is checked first (SchemaError naming the field)."""
        from chaosreplay.kernel.mm.address_space import Vma
        from chaosreplay.kernel.state_check import check_kernel_state

        check_kernel_state(state, f"node{self.node_id}.kernel")

        self.vtime_ns = state["vtime_ns"]
        self.clock = NodeClock.from_dict(state["clock"])
        if state["incarnation"] != self.incarnation:
            self.begin_incarnation(state["incarnation"])
        self.status = Status(state["status"])
        self.exit_code = state["exit_code"]
        self.crash = None
        self.wake_at_ns = state["wake_at_ns"]
        self.syscalls = state["syscalls"]
        self.unknown_syscalls = dict(state["unknown_syscalls"])
        self.unknown_syscalls_other = state.get("unknown_syscalls_other", 0)
        self.stdout = bytearray(state["stdout"])
        self.stderr = bytearray(state["stderr"])
        self.output_dropped = list(state.get("output_dropped", (0, 0)))
        self.signal_actions = dict(state["signal_actions"])
        self.signal_mask = state["signal_mask"]
        self.tid_address = state["tid_address"]
        for name, position in state["random"]:
            self.random[name].seek(position)
        self.emulator.rdrand.seek(state["rdrand"])
        self.emulator.rdseed.seek(state["rdseed"])
        self.space._vmas = [Vma(*v) for v in state["vmas"]]
        if "code_pages" in state:  # absent in checkpoints from before W^X
            self.space.code.load_state(state["code_pages"])
        self.space.brk_start = state["brk_start"]
        self.space.brk = state["brk"]
        self.space.memory_limit = state["memory_limit"]
        framed = state.get("framed_chunks")  # absent in older recordings: walk everything
        self.space.framed = None if framed is None else set(framed)
        load_files_state(self, state["files"])
        self.comm = bytes(state.get("comm", self.image.path.name.encode()[:15]))
        coverage = state.get("coverage_map")
        self.coverage_map = None if coverage is None else (coverage[0], coverage[1])

    def checkpoint(self, snapshot: Snapshot | None = None, incremental: bool = True) -> Checkpoint:
        """Capture VM + kernel state; reuse `snapshot`'s buffer when given."""
        snap = snapshot if snapshot is not None else self.vm.snapshot()
        snap.take(incremental=incremental)
        return Checkpoint(snap, self.kernel_state())

    def restore(self, checkpoint: Checkpoint) -> None:
        """Return to a checkpoint taken from this process."""
        checkpoint.snapshot.restore()
        self.load_kernel_state(checkpoint.kernel)


@dataclass(slots=True)
class Checkpoint:
    """A process checkpoint: the VM snapshot and the VMM-side kernel state."""

    snapshot: Snapshot
    kernel: dict[str, Any]
