"""Mutating the future of a run: the fault schedule after a branch point.

A branch continues a run from a checkpoint at tick T with a schedule that differs only in
faults starting at or after T (the engine at the checkpoint has fired the rest already;
schedules.resume_with_faults). The operators, one to four stacked per branch as AFL's
havoc stage does:

- **add** a fault of one of the scenario's kinds (those its random plan enables, as often
  as its rates ask for them; else the node and network faults the demo reacts to),
  starting soon after the entry's focus (the discovery it was made for: the branch
  re-executes from the checkpoint before it exactly up to the first changed fault, so a
  fault can land right after the discovery; the near future is where a deep moment's
  consequences are), on the focus node half of the time,
  with a duration and parameters drawn from the kind's random ranges (sim/faults/model.py);
- **drop** a future fault (one starting before the branch ends: later ones cannot matter);
- **move** a future fault earlier or later (never before T);
- **retune** a future fault: a longer or shorter duration, another node, another parameter;
- **reseed** chance: add a `reseed` fault (sim/reseed.py) in the near future of the focus,
  for every node and the network or (half of the time) for the focus node alone, with a
  seed drawn here — from then on the guests' random numbers (election timeouts, say) and
  the network's jitter, loss and reordering are others, which no fault edit can change;
- **redraw** the random part of the future: drop every future fault and draw the scenario's
  random faults after T again from a new seed (the fault engine's "random stream", made
  explicit: a saved branch holds the list, so it replays from scratch).

Besides these, every branch reseeds every node's and the network's streams one tick after
its focus (a third of the branches change nothing else): children of one moment then
differ in chance as well as in faults — a sweep's new seed, but from a deep moment rather
than from tick 0. A reseed is a fault of the schedule like the others, so a branch stays
one scenario: a pure function of its parent's checkpoint and the edits (the reseed's seed
among them), replayable from tick 0.

Every draw comes from the `random.Random` the explorer hands in, so a branch is a function
of the explorer's seed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from typing import Any

from chaosreplay.sim.faults.model import KIND_SPECS, Fault, FaultKind
from chaosreplay.sim.faults.random import RandomFaults, expand_random
from chaosreplay.sim.validation import KeyPath

DEFAULT_KINDS = (FaultKind.KILL, FaultKind.PAUSE, FaultKind.PARTITION, FaultKind.RESTART,
                 FaultKind.LOSS)
NEAR_FUTURE = 3000  # ticks after the branch point new faults start within (biased early)
MAX_OPS = 4
PURE_CHANCE = 1 / 3  # branches whose only change is the reseed after the focus


@dataclass(frozen=True)
class Mutation:
    """A branch's new schedule and what was changed, in words."""

    faults: tuple[Fault, ...]
    edits: tuple[str, ...]


class Mutator:
    """Draws new futures for a scenario's runs."""

    def __init__(self, node_count: int, horizon: int, plan: RandomFaults | None) -> None:
        self.node_count = node_count
        self.horizon = horizon  # the run's duration in ticks
        self.plan = plan
        rates = {k: rate for k, rate in (plan.rates if plan else ()) if rate > 0}
        kinds = list(rates) or list(DEFAULT_KINDS)
        if node_count < 2:
            kinds = [k for k in kinds if k is not FaultKind.PARTITION] or [FaultKind.KILL]
        self.kinds = tuple(kinds)
        # as often as the scenario asks for each kind (evenly without random rates)
        self.kind_weights = tuple(rates.get(k, 1.0) if rates else 1.0 for k in kinds)
        self._focus_node = -1  # the node of the discovery being branched from

    def mutate(self, faults: tuple[Fault, ...], gate: int, tick: int, rng: random.Random,
               end_tick: int | None = None, focus_tick: int | None = None,
               focus_node: int = -1) -> Mutation:
        """A new schedule equal to `faults` before the branch point `tick` (absolute). New
        faults start in the near future of `focus_tick` (absolute; default: the branch
        point) and before `end_tick` (default: the run's end); a fault on a node picks
        `focus_node` half of the time (when it is a node)."""
        start = max(tick - gate, 0)  # the branch point in schedule (gate-relative) ticks
        end = min(self.horizon, end_tick if end_tick is not None else self.horizon) - gate
        focus = max(start, (focus_tick if focus_tick is not None else tick) - gate)
        window = max(1, min(NEAR_FUTURE, end - focus))
        self._focus_node = focus_node
        current = sorted(faults, key=lambda f: f.at)
        edits: list[str] = []
        ops = 0 if rng.random() < PURE_CHANCE else 1
        while 0 < ops < MAX_OPS and rng.random() < 0.5:
            ops += 1
        for _ in range(ops):
            # faults starting after the branch ends cannot change what it sees
            future = [i for i, f in enumerate(current) if start <= f.at < end]
            choices = ["add", "add", "reseed"] + (["drop", "move", "retune"] if future else [])
            if self.plan is not None:
                choices.append("redraw")
            op = rng.choice(choices)
            if op == "add":
                fault = self._new_fault(focus, window, rng)
                current.append(fault)
                edits.append(f"add {_describe(fault)}")
            elif op == "reseed":
                fault = self._new_reseed(focus, window, rng)
                current.append(fault)
                edits.append(_describe(fault))
            elif op == "drop":
                fault = current.pop(rng.choice(future))
                edits.append(f"drop {_describe(fault)}")
            elif op == "move":
                i = rng.choice(future)
                shift = int(rng.choice((-1, 1)) * 10 ** rng.uniform(1, 3.3))
                moved = replace(current[i], at=max(start, current[i].at + shift))
                edits.append(f"move {_describe(current[i])} to {moved.at}")
                current[i] = moved
            elif op == "retune":
                i = rng.choice(future)
                tuned = self._retune(current[i], rng)
                edits.append(f"retune {_describe(current[i])} -> {_describe(tuned)}")
                current[i] = tuned
            else:
                assert self.plan is not None
                seed = rng.getrandbits(63)
                drawn = [f for f in expand_random(self.plan, seed, self.node_count, self.horizon)
                         if f.at >= start]
                current = [f for f in current if f.at < start] + drawn
                edits.append(f"redraw the future faults ({len(drawn)} drawn, seed {seed})")
            current.sort(key=lambda f: f.at)
        # Chance diverges right after the discovery, always (and last, so no edit drops it):
        # the branch reaches the focus exactly as its parent did, then draws other numbers.
        if focus + 1 < end:
            fault = Fault(FaultKind.RESEED, focus + 1, params=(("seed", rng.getrandbits(63)),))
            current = sorted([*current, fault], key=lambda f: f.at)
            edits.append(_describe(fault))
        if current == sorted(faults, key=lambda f: f.at):  # nothing changed what it sees
            fault = self._new_fault(focus, window, rng)
            current = sorted([*current, fault], key=lambda f: f.at)
            edits.append(f"add {_describe(fault)}")
        return Mutation(tuple(current), tuple(edits))

    def _new_fault(self, start: int, window: int, rng: random.Random) -> Fault:
        kind = rng.choices(self.kinds, self.kind_weights)[0]
        at = start + int(window * rng.random() ** 2)
        return self._build(kind, at, rng)

    def _new_reseed(self, start: int, window: int, rng: random.Random) -> Fault:
        at = start + int(window * rng.random() ** 2)
        focused = 0 <= self._focus_node < self.node_count and rng.random() < 0.5
        return Fault(FaultKind.RESEED, at, node=self._focus_node if focused else None,
                     params=(("seed", rng.getrandbits(63)),))

    def _build(self, kind: FaultKind, at: int, rng: random.Random,
               keep: Fault | None = None) -> Fault:
        spec = KIND_SPECS[kind]
        data: dict[str, Any] = {"kind": kind.value, "at": at}
        if spec.duration != "none":
            low, high = spec.random_duration
            low = max(low // 4, 50)  # shorter than random faults too: precise moments
            data["duration"] = int(10 ** rng.uniform(math.log10(low), math.log10(high)))
        if spec.node == "required" or (spec.node == "optional" and rng.random() < 0.5):
            focused = 0 <= self._focus_node < self.node_count and rng.random() < 0.5
            data["node"] = self._focus_node if focused else rng.randrange(self.node_count)
        for param in spec.params:
            if param.name == "sides":
                nodes = list(range(self.node_count))
                rng.shuffle(nodes)
                cut = rng.randrange(1, self.node_count)
                data["sides"] = [sorted(nodes[:cut]), sorted(nodes[cut:])]
            elif param.random_range is not None:
                low, high = param.random_range
                value = rng.uniform(low, high)
                data[param.name] = int(value) if isinstance(low, int) else round(value, 4)
                if param.name in ("delta_ns", "rate") and data[param.name] == 0:
                    data[param.name] = high
            elif param.default is not None:
                data[param.name] = param.default
        # retune: keep the node half of the time (then a parameter or duration changed)
        if keep is not None and keep.node is not None and "node" in data and rng.random() < 0.5:
            data["node"] = keep.node
        return Fault.from_dict(data, KeyPath("explore mutation"), self.node_count)

    def _retune(self, fault: Fault, rng: random.Random) -> Fault:
        spec = KIND_SPECS[fault.kind]
        if spec.duration != "none" and fault.duration and rng.random() < 0.6:
            factor = rng.choice((0.25, 0.5, 0.75, 1.5, 2.0, 3.0))
            return replace(fault, duration=max(1, int(fault.duration * factor)))
        return self._build(fault.kind, fault.at, rng, keep=fault)


def _describe(fault: Fault) -> str:
    if fault.kind is FaultKind.RESEED:
        where = f"node {fault.node}" if fault.node is not None else "every node and the network"
        return f"reseed {where} at {fault.at} (seed {fault.param('seed')})"
    where = f" node {fault.node}" if fault.node is not None else ""
    lasting = f" for {fault.duration}" if fault.duration else ""
    return f"{fault.kind.value}{where} at {fault.at}{lasting}"
