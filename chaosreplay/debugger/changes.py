"""Where did it change: the event after which a watched value of a node became what it is.

`last_change(rec, node, expr, at)` finds the last event at or before `at` after which the
value differs from its value before it; `next_change` the first one after `at`. A value
"after event e" is the value in the state the debugger shows for e (the pause after the
whole system call that recorded e), so the answer is always the first event of a step.

How, without re-executing the whole run: the interval from the nearest checkpoint to `at`
is re-executed step by step, comparing the value's bytes after each step. Beyond it, the
value is sampled at checkpoints (a restore and one step each): galloping away from `at`
(1, 2, 4, … checkpoints) to the first sample that differs, then bisecting between it and
the last sample that does not, and finally re-executing only that one interval step by
step. The samples cannot see a value that leaves and comes back between two of them, so a
change older than the newest interval is found exactly when the value does not return to
its current bytes in between — true of counters, terms, indices and most state worth
watching; the interval re-executed step by step is always exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from chaosreplay.debugger.reconstruct import Reconstructor
from chaosreplay.debugger.views import REGISTERS, memory_reader
from chaosreplay.debugger.watch import Evaluator, Node, WatchView, parse, watch_key, watch_view
from chaosreplay.sim.simulation import Simulation

Key = bytes | str
EXACT_INTERVALS = 2  # checkpoint intervals next to `at` re-executed step by step


@dataclass(frozen=True)
class Change:
    """A watched value changed at event `seq`: from `before` (as shown at `previous`, the
    last event before the step) to `after`."""

    node: int
    expression: str
    seq: int
    previous: int
    before: WatchView
    after: WatchView
    exact: bool  # found by re-executing every step up to `at` (else: through samples)


class ChangeSearch:
    """Finds changes of one expression on one node (see the module docstring)."""

    def __init__(self, rec: Reconstructor, node: int, expression: str) -> None:
        if not 0 <= node < len(rec.scenario.node_specs()):
            raise IndexError(f"node {node} does not exist")
        self.rec = rec
        self.node = node
        self.expression = expression
        self.tree = parse(expression)  # WatchError for a bad expression
        self.program = rec.programs[rec.scenario.node_specs()[node].group]
        self.needs_frames = _names(self.tree) & self._local_names() != set() or any(
            self.program.global_variable(name) is None for name in _names(self.tree))
        self.samples: dict[int, Key] = {}  # value after event seq, at sampled points
        self.steps = 0  # steps re-executed (tests and benchmarks read it)
        self._last: tuple[tuple[object, ...], Simulation, Key] | None = None
        self.exact = True  # the last answer (a change or none) came from step-by-step runs

    # -- the two questions -----------------------------------------------------------------

    def last_change(self, at: int) -> Change | None:
        """The last event ≤ at after which the value differs from before it (None: it has
        been the same since the first event)."""
        self.exact = True
        points = sorted({0} | {c.seq for c in self.rec.reader.checkpoints if c.seq <= at})
        hi = at
        index = len(points) - 1
        for _ in range(EXACT_INTERVALS):
            found = self._last_in(self._scan(points[index], hi))
            if found is not None:
                return self._change(*found, exact=True)
            if index == 0:
                return None
            hi, index = points[index], index - 1
        points = points[:index + 2]  # up to the oldest point scanned, which equals `at`
        self.exact = False
        bracket = self._gallop(points, len(points) - 1, -1, self.key(points[-1]))
        if bracket is None:
            return None
        lo, up = self._bisect(*bracket, points, self.key(points[-1]))
        found = self._last_in(self._scan(points[lo], points[up]))
        return None if found is None else self._change(*found, exact=False)

    def next_change(self, at: int) -> Change | None:
        """The first event > at after which the value differs from before it (None: it stays
        the same to the end of the recording)."""
        last = self.rec.reader.event_count - 1
        self.exact = True
        if at >= last:
            return None
        points = sorted({at, last} | {c.seq for c in self.rec.reader.checkpoints
                                      if at < c.seq <= last})
        index = 0
        for _ in range(EXACT_INTERVALS):
            if index == len(points) - 1:
                return None
            found = self._first_in(self._scan(points[index], points[index + 1]))
            if found is not None:
                return self._change(*found, exact=True)
            index += 1
        points = points[index:]
        self.exact = False
        bracket = self._gallop(points, 0, 1, self.key(points[0]))
        if bracket is None:
            return None
        lo, up = self._bisect(*bracket, points, self.key(points[0]))
        found = self._first_in(self._scan(points[lo], points[up]))
        return None if found is None else self._change(*found, exact=False)

    # -- values ----------------------------------------------------------------------------

    def key(self, seq: int) -> Key:
        """The value's bytes just after event seq (sampled points are kept)."""
        known = self.samples.get(seq)
        if known is None:
            known = self._key_of(self.rec.simulation_at(seq))
            self.samples[seq] = known
        return known

    def view(self, seq: int) -> WatchView:
        """The value as shown just after event seq."""
        return watch_view(self._evaluator(self.rec.simulation_at(seq)), self.expression)

    def _key_of(self, sim: Simulation) -> Key:
        p = sim.nodes[self.node].process
        # Only the node itself changes its memory: a step of another node leaves the value
        # as it was (the node's process, syscall count and clock tell whether it ran).
        mark = (id(p), p.incarnation, p.syscalls, p.vtime_ns, sim.nodes[self.node].status)
        if self._last is not None and self._last[0] == mark and self._last[1] is sim:
            return self._last[2]
        key = watch_key(self._evaluator(sim), self.tree)
        self._last = (mark, sim, key)
        return key

    def _evaluator(self, sim: Simulation) -> Evaluator:
        p = sim.nodes[self.node].process
        read = memory_reader(p)
        frames = []
        if self.needs_frames:
            registers = {name: int(getattr(p.regs, name)) for name in REGISTERS}
            frames = self.program.frames(registers, read)
        return Evaluator(self.program, frames, read)

    def _local_names(self) -> set[str]:
        out: set[str] = set()
        stack = list(self.program.debug.functions)
        while stack:
            scope = stack.pop()
            out.update(v.name for v in scope.variables)
            stack += scope.children
        return out

    # -- search ----------------------------------------------------------------------------

    def _scan(self, lo: int, hi: int) -> list[tuple[int, Key]]:
        """(first event of the step, value after it) for every pause from lo through hi."""
        out: list[tuple[int, Key]] = []

        def visit(seq: int, sim: Simulation) -> None:
            self.steps += 1
            out.append((seq, self._key_of(sim)))

        self.rec.walk(lo, hi, visit)
        return out

    def _gallop(self, points: list[int], known: int, direction: int,
                target: Key) -> tuple[int, int] | None:
        """Moving away from sample `known` (equal to `target`) by doubling steps: the first
        sample found that differs and the last one seen that does not (None: none differs
        up to the end of `points`)."""
        step = 1
        while True:
            i = max(0, min(len(points) - 1, known + direction * step))
            if i == known:
                return None
            if self.key(points[i]) != target:
                return i, known
            known, step = i, step * 2

    def _bisect(self, differ: int, equal: int, points: list[int],
                target: Key) -> tuple[int, int]:
        """Adjacent sample indices between `differ` and `equal` where the value goes from
        different to equal, in increasing order."""
        while abs(equal - differ) > 1:
            mid = (differ + equal) // 2
            if self.key(points[mid]) != target:
                differ = mid
            else:
                equal = mid
        return (differ, equal) if differ < equal else (equal, differ)

    @staticmethod
    def _last_in(keys: list[tuple[int, Key]]) -> tuple[int, int] | None:
        """(previous pause, first event of the step) of the last change among the keys."""
        changes = [(prev, seq) for (prev, before), (seq, after) in pairwise(keys)
                   if before != after]
        return changes[-1] if changes else None

    @staticmethod
    def _first_in(keys: list[tuple[int, Key]]) -> tuple[int, int] | None:
        """The first change among the keys."""
        return next(((prev, seq) for (prev, before), (seq, after) in pairwise(keys)
                     if before != after), None)

    def _change(self, previous: int, seq: int, exact: bool) -> Change:
        return Change(self.node, self.expression, seq, previous, self.view(previous),
                      self.view(seq), exact)


def _names(tree: Node) -> set[str]:
    if tree.op == "name":
        return {str(tree.args[0])}
    out: set[str] = set()
    for arg in tree.args:
        if isinstance(arg, Node):
            out |= _names(arg)
    return out
