"""One node of a recorded run as a program that runs forward and backward, instruction by
instruction: what the gdb server (gdb_remote.py) serves.

A position in the node's history is an anchor and a path. The anchor is an event the node
recorded in one of its own system calls (or event 0, the run's start, where the node stands
at its program's entry): `Reconstructor.detach(anchor)` gives a simulation paused right
after that call. The path says how far the node got after it without another system call,
as steps (one instruction each) and breakpoint hits ("the nth time it was about to execute
this address"). Replaying a path is deterministic, so any position can be rebuilt from the
nearest checkpoint; that is how execution goes backward:

- reverse-stepi counts the position's instructions since its anchor (by stepping) and
  rebuilds the one before; at an anchor it goes to the previous call's `syscall`
  instruction, found by re-executing from a checkpoint and watching the node's own events;
- reverse-continue looks for the last breakpoint hit before the position: stepping through
  the current stretch, then re-executing the checkpoint intervals before it natively with
  every breakpoint counting hits, one interval further back at a time.

Forward execution drives the live simulation (execution_hooks.py) and keeps the position up
to date as it goes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chaosreplay.debugger.execution_hooks import NodeDriver, Stop
from chaosreplay.debugger.reconstruct import Reconstructor
from chaosreplay.debugger.views import memory_reader

# The x86-64 registers gdb's remote protocol sends in a `g` packet, in its order (eflags and
# the segment selectors are 4 bytes each, the rest 8).
GDB_REGISTERS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10",
                 "r11", "r12", "r13", "r14", "r15", "rip", "eflags", "cs", "ss", "ds", "es",
                 "fs", "gs")
USER_CS, USER_SS = 0x33, 0x2B  # the selectors a CPL3 program runs with (vmm_internal.h)
TF = 1 << 8


@dataclass(frozen=True)
class Position:
    """Where the node is: after its system call that recorded `anchor`, then `path`."""

    anchor: int
    # ("step", count, 0) | ("hit", pc, n): the nth time it is about to run pc | ("end", 0, 0)
    path: tuple[tuple[str, int, int], ...] = ()

    def then(self, op: tuple[str, int, int]) -> Position:
        """This position followed by one more step or hit (consecutive steps merged)."""
        path = self.path
        if op[0] == "step" and path and path[-1][0] == "step":
            return Position(self.anchor, (*path[:-1], ("step", path[-1][1] + op[1], 0)))
        return Position(self.anchor, (*path, op))

    @property
    def steps(self) -> int | None:
        """Instructions since the anchor, when the path says (steps only)."""
        if all(op[0] == "step" for op in self.path):
            return sum(op[1] for op in self.path)
        return None


def _stepped(anchor: int, steps: int) -> Position:
    return Position(anchor, (("step", steps, 0),) if steps else ())


@dataclass
class _Scan:
    """What a re-execution saw of the node: its own events and its breakpoint hits."""

    own: list[tuple[int, int]] = field(default_factory=list)  # (seq, calls answered before)
    hits: list[tuple[int | None, int, int]] = field(default_factory=list)  # (anchor, pc, n)


class NodeHistory:
    """Forward and reverse execution of one node (see the module docstring)."""

    def __init__(self, reconstructor: Reconstructor, node: int,
                 hang_seconds: float = 10.0) -> None:
        if not 0 <= node < len(reconstructor.scenario.node_specs()):
            raise IndexError(f"node {node} does not exist")
        self.rec = reconstructor
        self.node = node
        self.hang_seconds = hang_seconds
        self.breakpoints: set[int] = set()
        self.rebuilds = 0  # positions rebuilt from a checkpoint (reverse execution)
        self.position = Position(0)
        self.driver = self._materialize(self.position)
        self.driver.on_own_event = self._own_event

    # -- the state at the position -------------------------------------------------------------

    @property
    def process(self):  # type: ignore[no-untyped-def]
        """The node's process in the live simulation."""
        return self.driver.process

    def threads(self) -> list[int]:
        """The tids of the node's program's threads, in order."""
        return list(self.process.tasks)

    def current_thread(self) -> int:
        """The tid of the thread on the vCPU (the one that steps and stops)."""
        return int(self.process.current.tid)

    def registers(self, tid: int | None = None) -> dict[str, int]:
        """The registers gdb asks for, by name: of thread `tid` (None: the one on the
        vCPU; another thread's come from its saved context)."""
        p = self.process
        task = p.tasks.get(tid) if tid is not None else None
        regs = p.regs if task is None else p.task_regs(task)
        values = {name: int(getattr(regs, name)) for name in GDB_REGISTERS[:17]}
        values["eflags"] = int(regs.rflags) & ~TF & 0xFFFFFFFF
        values.update(cs=USER_CS, ss=USER_SS, ds=0, es=0, fs=0, gs=0)
        return values

    def fs_base(self) -> int:
        return self.process.vm.fs_base

    def read_memory(self, address: int, size: int) -> bytes | None:
        """Memory as the program sees it (unpopulated pages of a mapping read as zeros);
        None where it is not mapped."""
        return memory_reader(self.process)(address, size)

    @property
    def ended(self) -> bool:
        return self.driver.ended

    def crash_signal(self) -> int | None:
        """The signal the node died of, if it crashed."""
        crash = self.process.crash
        return crash.signal if crash is not None else None

    # -- forward -------------------------------------------------------------------------------

    def stepi(self) -> Stop:
        """One instruction forward (a system call is one: up to its answer)."""
        before = self.position
        stop = self.driver.step()
        if stop is Stop.STEPPED:
            self.position = before.then(("step", 1, 0))
        elif stop is Stop.ENDED and before.path[-1:] != (("end", 0, 0),):
            self.position = self.position.then(("end", 0, 0))
        return stop

    def cont(self) -> Stop:
        """Forward until a breakpoint, the node's end or the run's end."""
        if self.driver.ended:
            return Stop.ENDED
        if self.process.regs.rip in self.breakpoints and not self.driver.in_syscall:
            stop = self.stepi()  # off the breakpoint it stands on, as gdb expects
            if stop is Stop.ENDED:
                return stop
            if self.process.regs.rip in self.breakpoints:
                return Stop.BREAKPOINT
        self.driver.stop_on_hit = lambda pc: True
        stop = self.driver.run(self.breakpoints)
        if stop is Stop.BREAKPOINT:
            assert self.driver.hit_pc is not None
            self.position = self.position.then(("hit", self.driver.hit_pc, 1))
        elif stop is Stop.ENDED:
            self.position = self.position.then(("end", 0, 0))
        return stop

    # -- backward ------------------------------------------------------------------------------

    def reverse_stepi(self) -> bool:
        """One instruction back; False at the start of the history (nothing moved)."""
        count, _ = self._count(self.position, set())
        if count > 0:
            self._go(_stepped(self.position.anchor, count - 1))
            return True
        previous = self._previous_anchor(self.position.anchor)
        if previous is None:
            return False
        driver = self._materialize(Position(previous))
        steps = 0
        while not driver.in_syscall and not driver.ended and not driver.at_syscall():
            if driver.step() is not Stop.STEPPED:
                break
            steps += 1
        driver.on_own_event = self._own_event
        self.driver = driver
        self.position = _stepped(previous, steps)
        return True

    def reverse_cont(self) -> bool:
        """Back to the last breakpoint hit before the position; False when there is none
        (the node is then at the start of its history)."""
        anchor = self.position.anchor
        _, last = self._count(self.position, self.breakpoints)
        if last is not None:
            self._go(_stepped(anchor, last))
            return True
        if anchor > 0 and self.breakpoints:
            checkpoint = self.rec.reader.checkpoint_before(seq=anchor)
            while True:
                start = checkpoint.seq if checkpoint is not None else 0
                scan = self._scan(start, anchor, self.breakpoints)
                anchored = [hit for hit in scan.hits if hit[0] is not None]
                if anchored and anchored[-1] == scan.hits[-1]:
                    hit_anchor, pc, n = anchored[-1]
                    assert hit_anchor is not None
                    self._go(Position(hit_anchor, (("hit", pc, n),)))
                    return True
                if checkpoint is None:
                    break
                checkpoint = self.rec.reader.checkpoint_before(seq=checkpoint.seq - 1)
        self._go(Position(0))
        return False

    # -- rebuilding positions ------------------------------------------------------------------

    def _go(self, position: Position) -> None:
        self.driver = self._materialize(position)
        self.driver.on_own_event = self._own_event
        self.position = position

    def _own_event(self, seq: int, answered: int) -> None:
        """The live node recorded an event in its own system call: a new anchor."""
        self.position = Position(seq)

    def _materialize(self, position: Position) -> NodeDriver:
        """A fresh simulation with the node at `position` (no position tracking)."""
        self.rebuilds += 1
        sim, checker = self.rec.detach(position.anchor)
        driver = NodeDriver(sim, self.node, checker, self.hang_seconds)
        for kind, a, b in position.path:
            if kind == "end":
                driver.run(set())
            elif kind == "step":
                for _ in range(a):
                    driver.step()
            else:
                seen = {a: 0}

                def nth(pc: int, seen: dict[int, int] = seen, n: int = b) -> bool:
                    seen[pc] += 1
                    return seen[pc] == n

                driver.stop_on_hit = nth
                driver.run({a})
        return driver

    def _count(self, position: Position, breakpoints: set[int]) -> tuple[int, int | None]:
        """Instructions from the anchor to `position`, and the last of those positions
        (< the count) at a breakpoint. Known step counts without breakpoints cost nothing."""
        known = position.steps
        if known is not None and not breakpoints:
            return known, None
        driver = self._materialize(Position(position.anchor))
        count, last = 0, None

        def visit() -> None:
            nonlocal last
            if driver.process.regs.rip in breakpoints:
                last = count

        for kind, a, b in position.path:
            if kind == "step":
                for _ in range(a):
                    visit()
                    driver.step()
                    count += 1
            elif kind == "end":
                while not driver.ended:
                    visit()
                    if driver.step() is not Stop.STEPPED:
                        break
                    count += 1
            else:
                hits = 0
                while True:
                    if driver.process.regs.rip == a:
                        hits += 1
                        if hits == b:
                            break
                    visit()
                    if driver.step() is not Stop.STEPPED:
                        break
                    count += 1
        return count, last

    def _scan(self, start: int, upto: int, breakpoints: set[int]) -> _Scan:
        """Re-execute from the state after event `start` to the one after `upto`, noting
        the node's own events and its breakpoint hits (hits before its first own event have
        no anchor unless `start` is the run's start, where the node is at its entry)."""
        self.rebuilds += 1
        sim, checker = self.rec.detach(start)
        driver = NodeDriver(sim, self.node, checker, self.hang_seconds)
        scan = _Scan()
        anchor: int | None = 0 if start == 0 else None
        counts: dict[int, int] = {}

        def own(seq: int, answered: int) -> None:
            nonlocal anchor
            scan.own.append((seq, answered))
            anchor = seq
            counts.clear()

        def hit(pc: int) -> bool:
            counts[pc] = counts.get(pc, 0) + 1
            scan.hits.append((anchor, pc, counts[pc]))
            return False  # count it and go on

        driver.on_own_event = own
        driver.stop_on_hit = hit
        driver.armed = set(breakpoints)
        sim.run_to(upto)
        driver.armed = set()
        driver._check()
        return scan

    def _previous_anchor(self, anchor: int) -> int | None:
        """The anchor of the node's system call before the one that recorded `anchor`."""
        if anchor <= 0:
            return None
        checkpoint = self.rec.reader.checkpoint_before(seq=anchor)
        while True:
            start = checkpoint.seq if checkpoint is not None else 0
            scan = self._scan(start, anchor, set())
            answered = next((calls for seq, calls in scan.own if seq == anchor), None)
            earlier = [seq for seq, calls in scan.own
                       if seq < anchor and (answered is None or calls < answered)]
            if earlier:
                return earlier[-1]
            if checkpoint is None:
                return 0  # before its first system call: the program's entry
            checkpoint = self.rec.reader.checkpoint_before(seq=checkpoint.seq - 1)
