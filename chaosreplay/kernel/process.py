"""A node program running in its own VM, with the VMM acting as its Linux kernel.

GuestProcess owns the VM, the address space, the virtual clock and the seeded streams a
program can observe. `run()` executes the program until it blocks, passes a deadline in
virtual time, or ends; the simulation controller interleaves nodes with it.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from chaosreplay.errors import GuestProgramError
from chaosreplay.events import EventKind
from chaosreplay.kernel import sdk_abi
from chaosreplay.kernel.clock import NodeClock
from chaosreplay.kernel.fs.disk import FileSystem
from chaosreplay.kernel.loader import build_stack, map_segments
from chaosreplay.kernel.mm.address_space import AddressSpace
from chaosreplay.kernel.syscalls import HANDLERS
from chaosreplay.kernel.syscalls.files import files_state, load_files_state
from chaosreplay.kernel.syscalls.numbers import syscall_name
from chaosreplay.rng import DeterministicStream
from chaosreplay.vm import nonvirt
from chaosreplay.vm.elf import ProgramImage
from chaosreplay.vm.vmm import DEFAULT_MEM_SIZE, ExitReason, Snapshot, Vm

_MASK64 = (1 << 64) - 1
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


class Status(StrEnum):
    """Where a process stands after run() returns."""

    RUNNING = "running"   # passed its deadline; run again
    BLOCKED = "blocked"   # sleeping until wake_at_ns (or a delivery)
    EXITED = "exited"
    CRASHED = "crashed"
    HUNG = "hung"         # the host watchdog fired: no exit for too long in wall time


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
        name = signal.Signals(self.signal).name
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
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.signal_actions: dict[int, bytes] = {}
        self.signal_mask = 0
        self.tid_address = 0
        self.network: Any = None  # the simulation attaches a messaging endpoint
        self.files: dict[int, Any] = {}  # descriptor -> syscalls.files.Descriptor
        self.fs = FileSystem(config.seed, config.node_id)  # the node's disk: outlives restarts
        self.incarnation = 0  # restarts so far: each life draws fresh random numbers
        self.random = self._streams()

        sites = nonvirt.find_sites(image)
        if sites and not config.patch:
            listed = ", ".join(f"{s.text} at {s.address:#x} ({s.symbol})" for s in sites[:5])
            more = f" and {len(sites) - 5} more" if len(sites) > 5 else ""
            raise GuestProgramError(
                f"{image.path}: uses non-virtualizable instructions ({listed}{more}); "
                "run without --no-patch to emulate them"
            )
        self.sites = {s.address: s for s in sites}
        self.emulator = nonvirt.NonVirtEmulator(config.seed, config.node_id, config.node_count)

        self.vm = Vm(config.mem_size)
        self.space = AddressSpace(self.vm)
        map_segments(self.space, image, nonvirt.patch_segments(image, sites))
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
        (self.stdout if fd == 1 else self.stderr).extend(data)
        if self.on_output is not None:
            self.on_output(fd, data)
        self.emit(EventKind.OUTPUT, fd=fd, data=data)

    def _streams(self) -> dict[str, DeterministicStream]:
        """The seeded streams of this life of the process (auxv is fixed by the image)."""
        config, life = self.config, self.incarnation
        return {name: DeterministicStream(config.seed, name if life == 0 or name == "auxv"
                                          else f"{name}#{life}", config.node_id)
                for name in ("getrandom", "sdk", "auxv")}

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
        self.wake_at_ns = max(wake_ns, self.vtime_ns)

    def block_for(self, guest_ns: int) -> None:
        """Block for guest_ns as measured by the guest's own (possibly skewed) clock."""
        self.block_until(self.vtime_ns + self.clock.to_virtual(guest_ns))

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
        while True:
            reason = vm.run()
            if reason == ExitReason.SYSCALL:
                number = regs.rax
                handler = handlers.get(number)
                result = handler(self, regs) if handler else self._unknown_syscall(number)
                self.syscalls += 1
                self.vtime_ns += syscall_cost
                if self.trace_syscalls and (number not in SELF_RECORDING or result < 0):
                    # the hottest event: straight to the sink
                    self.on_event(self, EventKind.SYSCALL, {  # type: ignore[misc]
                        "nr": number, "name": syscall_name(number),
                        "args": [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9],
                        "ret": result})
                if self.status is not Status.RUNNING:
                    return self.status
                regs.rax = result & _MASK64
                if self.wake_at_ns is not None:
                    self.status = Status.BLOCKED
                    return self._blocked()
            elif reason == ExitReason.EXCEPTION:
                self.vtime_ns += self.config.exception_cost_ns
                if not self._handle_exception():
                    return self.status
            elif reason == ExitReason.INTERRUPTED:
                self.status = Status.HUNG
                # Where the watchdog caught the guest depends on wall time: record no rip.
                self.emit(EventKind.CRASH, signal=0, reason="hang")
                return self.status
            else:
                exit_ = vm.exit
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

    def _blocked(self) -> Status:
        # The controller decides when the node runs again; a lone process just sleeps.
        self.status = Status.RUNNING
        return Status.BLOCKED

    def _unknown_syscall(self, number: int) -> int:
        self.unknown_syscalls[number] = self.unknown_syscalls.get(number, 0) + 1
        return -ENOSYS

    def _handle_exception(self) -> bool:
        """Emulate, populate or crash; True when the guest can continue."""
        exit_, regs = self.vm.exit, self.regs
        vector = exit_.vector
        if vector == 14 and self.space.populate(exit_.fault_addr, bool(exit_.error_code & 2)):
            return True
        if vector == 6:
            site = self.sites.get(regs.rip)
            if site is not None:
                fault = self.emulator.emulate(site, regs, self.guest_time_ns())
                if fault is None:
                    return True
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
            "stdout": bytes(self.stdout), "stderr": bytes(self.stderr),
            "signal_actions": sorted(self.signal_actions.items()),
            "signal_mask": self.signal_mask, "tid_address": self.tid_address,
            "random": sorted((name, s.position) for name, s in self.random.items()),
            "rdrand": self.emulator.rdrand.position, "rdseed": self.emulator.rdseed.position,
            "vmas": [[v.start, v.end, v.prot, v.name] for v in space.vmas()],
            "brk_start": space.brk_start, "brk": space.brk,
            "memory_limit": space.memory_limit,
            "files": files_state(self),
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
        self.stdout = bytearray(state["stdout"])
        self.stderr = bytearray(state["stderr"])
        self.signal_actions = dict(state["signal_actions"])
        self.signal_mask = state["signal_mask"]
        self.tid_address = state["tid_address"]
        for name, position in state["random"]:
            self.random[name].seek(position)
        self.emulator.rdrand.seek(state["rdrand"])
        self.emulator.rdseed.seek(state["rdseed"])
        self.space._vmas = [Vma(*v) for v in state["vmas"]]
        self.space.brk_start = state["brk_start"]
        self.space.brk = state["brk"]
        self.space.memory_limit = state["memory_limit"]
        load_files_state(self, state["files"])

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
