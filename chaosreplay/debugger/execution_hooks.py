"""Driving one node of a reconstructing simulation an instruction or a breakpoint at a time.

A debugger that stops a node between two of its system calls must not change what the
recorded run does. So every instruction still runs inside the node's own run loop
(`GuestProcess.run`, called by the simulation's scheduler), with the program's exceptions
handled and charged exactly as before; the driver only adds its own traps and takes them
back out:

- a single step sets the trap flag, and the #DB it raises ends the step;
- a software breakpoint is an `int3` written over the instruction only while the node's run
  loop runs (memory reads between stops, checkpoints and the other nodes never see it); its
  #BP is the driver's, and passing one puts the byte back for one trap-flag step;
- "after the system call" stops once the node has recorded an event of its own and
  returned from that call.

The driver's own exits cost the guest no virtual time (their charge is taken back) and it
stops a node the way `Simulation.run_to` pauses one, so the rest of the run continues as if
there had been no stop. Every event is still compared with the recording by the
reconstruction's checker; a difference is an error, never a silent picture.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

from chaosreplay.sim.simulation import ENDED, Simulation
from chaosreplay.vm.vmm import VmmError
from chaosreplay.vm.watchdog import Watchdog

TF = 1 << 8
INT3 = b"\xcc"
SYSCALL_INSN = b"\x0f\x05"
VECTOR_DB, VECTOR_BP = 1, 3


class Stop(Enum):
    """Why a drive ended."""

    STEPPED = "stepped"  # one instruction ran
    BREAKPOINT = "breakpoint"  # the node is about to execute a breakpoint's address
    SYSCALL = "syscall"  # the node's system call was answered
    ENDED = "ended"  # the node exited, crashed, hung or the run ended


class ReplayDiverged(Exception):
    """Re-execution under the driver recorded something the recording does not hold."""


Sink = Callable[[int, int, int, str, dict[str, Any]], None]


class NodeDriver:
    """The hooks on one node of one simulation (see the module docstring)."""

    def __init__(self, sim: Simulation, node: int, checker: Any, hang_seconds: float) -> None:
        self.sim = sim
        self.node = node
        self.checker = checker
        self.hang_seconds = hang_seconds
        self.process = sim.nodes[node].process
        # Breakpoints armed for the next native run, and whether a hit of each stops it.
        self.armed: set[int] = set()
        self.stop_on_hit: Callable[[int], bool] = lambda pc: True
        self.on_own_event: Callable[[int, int], None] = lambda seq, syscalls: None
        self._inserted: dict[int, bytes] = {}  # address -> the byte the int3 covers
        self._passing: int | None = None  # a breakpoint stepped over with TF
        self._stepping = False
        self._until_syscall = False
        self._stopped: Stop | None = None
        self.hit_pc: int | None = None
        process = self.process
        self._run = process.run
        self._handle = process._handle_exception
        process.run = self._hooked_run  # type: ignore[method-assign]
        process._handle_exception = self._hooked_exception  # type: ignore[method-assign]
        self._sink: Sink = sim.sink  # type: ignore[assignment]
        sim.sink = self._hooked_sink

    # -- what the driver can do ----------------------------------------------------------------

    @property
    def ended(self) -> bool:
        """The node can run no more instructions in this run."""
        return self.sim.stop_reason is not None or self.sim.nodes[self.node].status in ENDED

    @property
    def in_syscall(self) -> bool:
        """The node is blocked in a system call (its next step is that call's answer); a
        node that only sleeps until a virtual time is past its call and steps normally."""
        return self.process.waiting is not None

    def at_syscall(self) -> bool:
        """The next instruction is a `syscall`."""
        try:
            return self.process.vm.read(self.process.regs.rip, 2) == SYSCALL_INSN
        except VmmError:
            return False

    def step(self) -> Stop:
        """Run one instruction (a `syscall` counts as one: up to its answer)."""
        if self.ended:
            return Stop.ENDED
        if self.in_syscall or self.at_syscall():
            return self.finish_syscall()
        self._stepping = True
        self.process.regs.rflags |= TF
        try:
            return self._drive()
        finally:
            self._stepping = False
            self.process.regs.rflags &= ~TF

    def finish_syscall(self) -> Stop:
        """Run until the node's current or next system call has been answered."""
        self._until_syscall = True
        try:
            return self._drive()
        finally:
            self._until_syscall = False

    def run(self, breakpoints: set[int], until_syscall: bool = False) -> Stop:
        """Run natively until a breakpoint whose hit `stop_on_hit` accepts (or the end)."""
        self.armed = set(breakpoints)
        self._until_syscall = until_syscall
        try:
            return self._drive()
        finally:
            self.armed = set()
            self._until_syscall = False

    # -- the loop ------------------------------------------------------------------------------

    def _drive(self) -> Stop:
        sim = self.sim
        self._stopped = None
        self.hit_pc = None
        with Watchdog(sim._exit_count, self.hang_seconds):
            while self._stopped is None:
                if self.ended:
                    self._stopped = Stop.ENDED
                    break
                sim.step()
                if self._stopped is not None:
                    sim._pause_after = None  # the stop's pause is taken; run_to sets its own
                self._check()
        return self._stopped

    def _check(self) -> None:
        mismatch = getattr(self.checker, "mismatch", None)
        if mismatch is not None:
            raise ReplayDiverged(mismatch)

    def _pause_here(self) -> None:
        """Make the simulation keep this node as the one to resume (as run_to does)."""
        self.sim._pause_after = self.sim.event_count - 1

    # -- the hooks -----------------------------------------------------------------------------

    def _hooked_sink(self, tick: int, vtime_ns: int, node: int, kind: str,
                     fields: dict[str, Any]) -> None:
        self._sink(tick, vtime_ns, node, kind, fields)
        running = self.sim._running
        if running is not None and running.index == self.node and node == self.node:
            # An event of the node's own system call: the boundary after it is an anchor.
            self.on_own_event(self.sim.event_count - 1, self.process.syscalls)
            if self._until_syscall:
                self._pause_here()  # _on_process_event preempts the call once answered
                self._stopped = Stop.SYSCALL

    def _hooked_run(self, deadline_ns: int | None = None) -> Any:
        # Every call of the driven node exits (no fast path, the vDSO makes its syscall):
        # a step or a position then means the same instructions however it is reached.
        self.process.kernel.fast_hold = True
        if self.armed and self._stopped is None:
            self._insert()
        try:
            return self._run(deadline_ns)
        finally:
            self._remove()

    def _hooked_exception(self) -> bool:
        process = self.process
        vm, regs = process.vm, process.regs
        vector = vm.exit.vector
        code = process.space.code
        if vector == VECTOR_BP and regs.rip - 1 in self._inserted:
            pc = regs.rip - 1
            process.vtime_ns -= process.config.exception_cost_ns  # the driver's trap
            regs.rip = pc
            if self.stop_on_hit(pc):
                self.hit_pc = pc
                self._stopped = Stop.BREAKPOINT
                self._pause_here()
                return False
            vm.write(pc, self._inserted[pc])  # pass it: one trap-flag step without the int3
            self._passing = pc
            regs.rflags |= TF
            return True
        if vector == VECTOR_DB and not code.stepping and code.write_step is None:
            if self._passing is not None:
                process.vtime_ns -= process.config.exception_cost_ns
                vm.write(self._passing, INT3)
                self._passing = None
                if not self._stepping:
                    regs.rflags &= ~TF
                    return True
            if self._stepping:
                process.vtime_ns -= process.config.exception_cost_ns
                regs.rflags &= ~TF
                self._stopped = Stop.STEPPED
                self._pause_here()
                return False
        rip = regs.rip
        resumed = self._handle()
        if resumed and self._stepping and regs.rip != rip and vector != VECTOR_DB:
            # An emulated instruction (a patched rdtsc, cpuid...) completed without a trap.
            regs.rflags &= ~TF
            self._stopped = Stop.STEPPED
            self._pause_here()
            return False
        return resumed

    def _insert(self) -> None:
        vm = self.process.vm
        for address in sorted(self.armed):
            try:
                original = vm.read(address, 1)
                vm.write(address, INT3)
            except VmmError:
                continue  # not mapped (yet): nothing there to stop at
            self._inserted[address] = original

    def _remove(self) -> None:
        vm = self.process.vm
        for address, original in self._inserted.items():
            vm.write(address, original)
        self._inserted.clear()
        if self._passing is not None:
            self._passing = None
            if not self._stepping:
                self.process.regs.rflags &= ~TF
