"""The state of a recorded run at any event, by re-execution from the nearest checkpoint.

`Reconstructor.state(seq)` restores the latest checkpoint at or before event `seq` into a
Simulation (or reuses a live one that is already closer), runs it to just after that event
(`Simulation.run_to`, which never changes the schedule) and reads it into a
`SimulationState`. While it runs, every event it produces is compared with the recording,
so a reconstruction that would show a state the recorded run never had is an error, not a
picture.

Caching: finished states are kept in an LRU by event number, and a few live simulations
stay paused where they stopped, so stepping forward costs only the steps in between and
stepping back costs at most one checkpoint interval of re-execution.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaosreplay.debugger.core_file import PROT_EXEC, PROT_READ, Region, write_core
from chaosreplay.debugger.program_state import ProgramInspector
from chaosreplay.debugger.symbols import Symbolizer
from chaosreplay.debugger.views import (
    REGISTERS,
    NodeViewCache,
    SimulationState,
    capture_state,
    memory_reader,
)
from chaosreplay.debugger.watch import parse
from chaosreplay.errors import RecordingError
from chaosreplay.kernel.loader import AT_SYSINFO_EHDR
from chaosreplay.recording import RecordingReader
from chaosreplay.runs.record_replay import same_row
from chaosreplay.sim.scenario import Scenario
from chaosreplay.sim.simulation import Simulation
from chaosreplay.vm.elf import ProgramImage
from chaosreplay.vm.vmm import PAGE_SIZE
from chaosreplay.vm.watchdog import Watchdog

STATE_CACHE = 256
LIVE_SIMULATIONS = 3


class ReconstructionError(RecordingError):
    """The recording cannot be re-executed to the requested point (or did not match)."""


@dataclass
class _Live:
    """A simulation paused after event `position - 1`, checking events from `position`.

    It was paused by asking for event `asked`; the pause comes after the whole system call
    (or controller step) that recorded it, so it shows the state for every event from
    `asked` to `position - 1` alike."""

    sim: Simulation
    checker: _Checker
    asked: int

    @property
    def position(self) -> int:
        return self.sim.event_count


class _Checker:
    """The sink of a reconstructing simulation: each event must equal the recorded one."""

    def __init__(self, reader: RecordingReader, start: int) -> None:
        self.reader = reader
        self.seq = start
        self.expected = reader.events(from_seq=start)
        self.mismatch: str | None = None

    def __call__(self, tick: int, vtime_ns: int, node: int, kind: str,
                 fields: dict[str, Any]) -> None:
        if self.mismatch is not None:
            return
        recorded = next(self.expected, None)
        if recorded is None:
            if self.seq >= self.reader.event_count and not self.reader.complete:
                self.seq += 1
                return  # re-executing past the end of a damaged recording: nothing to check
            self.mismatch = f"event {self.seq} ({kind}) is not in the recording"
        elif not same_row((recorded.tick, recorded.vtime_ns, recorded.node, recorded.kind,
                           recorded.fields), (tick, vtime_ns, node, kind, fields)):
            self.mismatch = (f"event {self.seq}: recorded {recorded.kind} at tick "
                             f"{recorded.tick} on node {recorded.node}, re-executed {kind} at "
                             f"tick {tick} on node {node}")
        self.seq += 1


class Reconstructor:
    """States of one recorded run at any event number (see the module docstring)."""

    def __init__(self, reader: RecordingReader, scenario: Scenario,
                 images: list[ProgramImage], hang_seconds: float = 10.0,
                 keep_going: bool = False) -> None:
        self.reader = reader
        self.scenario = scenario
        self.images = images
        self.hang_seconds = hang_seconds
        self.keep_going = keep_going
        self.symbolizers = [Symbolizer(image) for image in images]
        self.programs = [ProgramInspector(symbolizer) for symbolizer in self.symbolizers]
        self.watches: dict[int, tuple[str, ...]] = {}  # node -> watch expressions
        self._states: OrderedDict[int, SimulationState] = OrderedDict()
        self._node_views: NodeViewCache = {}  # each node's last view (capture_state)
        self._live: list[_Live] = []
        self.runs = 0  # re-executions started (from a checkpoint or from the start)

    def state(self, seq: int) -> SimulationState:
        """The whole simulation just after event `seq`."""
        if not 0 <= seq < self.reader.event_count:
            raise IndexError(f"event {seq} out of range (0..{self.reader.event_count - 1})")
        cached = self._states.get(seq)
        if cached is not None:
            self._states.move_to_end(seq)
            return cached
        live = self._advance(seq)
        state = capture_state(live.sim, seq, self.programs, self.watches, self._node_views)
        self._states[seq] = state
        if len(self._states) > STATE_CACHE:
            self._states.popitem(last=False)
        return state

    def set_watches(self, node: int, expressions: list[str]) -> None:
        """A node's watch list (WatchError: one does not parse); states show them."""
        if not 0 <= node < len(self.scenario.node_specs()):
            raise IndexError(f"node {node} does not exist")
        for text in expressions:
            parse(text)
        self.watches[node] = tuple(expressions)
        self._states.clear()  # captured without them

    def walk(self, first: int, last: int, visit: Callable[[int, Simulation], None]) -> None:
        """visit(seq, sim) with the simulation paused just after event `first`, then after
        each following step through event `last` (seq: the step's first event).

        The change search steps thousands of times; `run_to` per step would start a
        watchdog thread each time (~0.4 ms, three times the step), so this loop keeps one
        watchdog for the walk and sets the simulation's pause point itself."""
        live = self._advance(first)
        sim = live.sim
        visit(first, sim)
        with Watchdog(lambda: sim.event_count, self.hang_seconds):
            while live.position <= last:
                seq = live.position
                sim._pause_after = seq  # what run_to(seq) sets
                try:
                    while sim.event_count <= seq and sim.stop_reason is None:
                        sim.step()
                finally:
                    sim._pause_after = None
                live.asked = seq
                if live.checker.mismatch is not None or live.position <= seq:
                    self._run(live, seq)  # raises the reconstruction error
                visit(seq, sim)

    def simulation_at(self, seq: int) -> Simulation:
        """The live simulation paused just after event seq (valid until the next call)."""
        return self._advance(seq).sim

    def detach(self, seq: int) -> tuple[Simulation, Any]:
        """A simulation paused just after event seq that the caller owns from now on (with
        its checker as sink): it leaves the cache, so whatever drives it cannot change a
        state this reconstructor shows later (the gdb server steps it, execution_hooks.py)."""
        if not 0 <= seq < self.reader.event_count:
            raise IndexError(f"event {seq} out of range (0..{self.reader.event_count - 1})")
        live = self._advance(seq)
        self._live.remove(live)
        return live.sim, live.checker

    def memory(self, seq: int, node: int, address: int, size: int) -> bytes | None:
        """`size` bytes of a node's memory just after event `seq`: untouched pages of a
        mapping read as zeros (as Linux gives them); None when the range is not mapped."""
        if not 0 <= node < len(self.scenario.node_specs()):
            raise IndexError(f"node {node} does not exist")
        return memory_reader(self._advance(seq).sim.nodes[node].process)(address, size)

    def core_file(self, seq: int, node: int, path: str | Path) -> None:
        """Write a node's registers and memory just after event `seq` as an ELF core file
        (core_file.py): gdb on the program and this file sees the node as it was."""
        if not 0 <= node < len(self.scenario.node_specs()):
            raise IndexError(f"node {node} does not exist")
        p = self._advance(seq).sim.nodes[node].process
        registers = {name: int(getattr(p.regs, name)) for name in REGISTERS}
        registers["fs_base"] = p.vm.fs_base
        read = memory_reader(p)
        regions = []
        for vma in p.space.vmas():
            data = read(vma.start, vma.end - vma.start)
            if data is not None:
                regions.append(Region(vma.start, vma.prot, data))
        auxv = []
        if p.vdso_address:  # as Linux dumps it: the page, and where it is
            regions.append(Region(p.vdso_address, PROT_READ | PROT_EXEC,
                                  p.vm.read(p.vdso_address, PAGE_SIZE)))
            auxv.append((AT_SYSINFO_EHDR, p.vdso_address))
        write_core(path, registers, regions, auxv)

    def symbol_address(self, node: int, name: str) -> int | None:
        """The address of a symbol in a node's program."""
        group = self.scenario.node_specs()[node].group
        return self.symbolizers[group].address_of(name)

    def _advance(self, seq: int) -> _Live:
        """A live simulation paused just after event seq (the closest one, or a new one)."""
        for live in self._live:
            if live.asked <= seq < live.position:
                return self._use(live)
        start = self.reader.checkpoint_before(seq=seq)
        start_seq = start.seq if start is not None else 0
        # A live one between the checkpoint and seq is closer than the checkpoint.
        usable = [live for live in self._live
                  if start_seq <= live.position <= seq and live.sim.stop_reason is None]
        if usable:
            live = max(usable, key=lambda item: item.position)
        else:
            live = self._start(start.index if start is not None else None)
        self._run(live, seq)
        return self._use(live)

    def _use(self, live: _Live) -> _Live:
        self._live.remove(live)
        self._live.append(live)  # most recently used last
        return live

    def _start(self, checkpoint: int | None) -> _Live:
        """A simulation at a checkpoint (or at the start of the run)."""
        self.runs += 1
        kwargs: dict[str, Any] = {"keep_going": self.keep_going,
                                  "hang_seconds": self.hang_seconds}
        try:
            if checkpoint is None:
                checker = _Checker(self.reader, 0)
                sim = Simulation(self.scenario, self.images, sink=checker, **kwargs)
            else:
                loaded = self.reader.load_checkpoint(checkpoint)
                checker = _Checker(self.reader, loaded.info.seq)
                sim = Simulation.resume(self.scenario, self.images, loaded.blobs, loaded.pages,
                                        sink=checker, **kwargs)
        except (ValueError, KeyError) as exc:
            raise ReconstructionError(f"{self.reader.path}: checkpoint {checkpoint} cannot be "
                                      f"restored ({exc})") from None
        live = _Live(sim, checker, sim.event_count)
        self._live.append(live)
        if len(self._live) > LIVE_SIMULATIONS:
            self._live.pop(0)  # least recently used; its VMs close with it
        return live

    def _run(self, live: _Live, seq: int) -> None:
        live.sim.run_to(seq)
        live.asked = seq
        if live.checker.mismatch is not None:
            self._live.remove(live)
            raise ReconstructionError(f"{self.reader.path}: re-execution differs from the "
                                      f"recording: {live.checker.mismatch}")
        if live.position <= seq:
            raise ReconstructionError(f"{self.reader.path}: the run ended after "
                                      f"{live.position} events; event {seq} was never reached")

    def close(self) -> None:
        """Release every live simulation (their VMs)."""
        self._live.clear()
        self._states.clear()
        self._node_views.clear()
