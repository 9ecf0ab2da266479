"""The exploration loop: decide runs, carry them out in rounds, learn from what they found.

Each round the explorer decides `jobs` runs, one after the other, from its seeded
generator: with probability `root_share` (always while the frontier is empty) a new run
from the next seed of the sweep, otherwise a branch from a frontier entry drawn by energy
(energy.py) with a mutated future (mutator.py). The round runs (runner.py) and its
outcomes are taken in decision order: the corpus absorbs each run's signals; a run's
discoveries become frontier entries at the checkpoints before them (at most
`entries_per_run`, the most novel), focused on the strongest discovery there (branches
put their new faults just after it, on its node half of the time); the entry a branch
came from is credited or counted barren and retired when spent; a failing run is counted
as a bug and, the first few times, recorded from scratch into the output folder
(findings.py).

So every decision is a function of the seed and the job count: with a run limit instead
of a wall-clock budget, `explore --seed S --jobs N` makes the same runs and finds the same
bugs every time (the wall budget only decides how many rounds there are). With branching
off, the same loop is the plain seed sweep `--compare-random` measures against.
"""

from __future__ import annotations

import hashlib
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from chaosreplay.explore.energy import EnergyPolicy
from chaosreplay.explore.findings import Findings
from chaosreplay.explore.frontier import Corpus, Discovery, Frontier, FrontierEntry, novelty
from chaosreplay.explore.mutator import Mutator
from chaosreplay.explore.report import Decision, ExploreReport, ProgressPoint
from chaosreplay.explore.runner import BranchPoint, Outcome, RoundRunner, RunJob, Task
from chaosreplay.explore.signals import weight
from chaosreplay.runs.schedules import run_faults
from chaosreplay.sim.scenario import Scenario
from chaosreplay.sim.validation import NS_PER_TICK
from chaosreplay.vm.elf import ProgramImage

TICKS_PER_SECOND = 1_000_000_000 // NS_PER_TICK


@dataclass(frozen=True)
class ExploreConfig:
    """How to explore."""

    seed: int = 0
    jobs: int = 1
    budget_seconds: float | None = None  # wall time; None: only max_runs bounds it
    max_runs: int | None = None
    out: Path | None = None  # failing runs are recorded here (None: not saved)
    branching: bool = True  # False: the plain seed sweep
    root_share: float = 0.15
    entries_per_run: int = 2
    min_entry_novelty: float = 2.0  # a checkpoint needs discoveries worth this much
    checkpoint_interval: int = 500  # ticks between the checkpoints runs can branch from
    branch_horizon: int = 6000  # a branch runs this many ticks past its checkpoint at most
    save_per_bug: int = 3
    stop_after_bugs: int | None = None  # end the search once this many distinct failures
    hang_seconds: float = 10.0
    policy: EnergyPolicy = field(default_factory=EnergyPolicy)


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from the parts (the explorer's seed and what it is for)."""
    text = "/".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> 1


class Explorer:
    """One exploration of a scenario (see the module docstring)."""

    def __init__(self, scenario: Scenario, images: list[ProgramImage], config: ExploreConfig,
                 on_progress: Callable[[Explorer], None] | None = None) -> None:
        self.scenario = replace(scenario, checkpoint_interval=config.checkpoint_interval)
        self.images, self.config, self.on_progress = images, config, on_progress
        self.rng = random.Random(derive_seed("explore", config.seed))
        self.mutator = Mutator(scenario.node_count, scenario.duration, scenario.faults.random)
        self.corpus = Corpus()
        self.frontier = Frontier()
        self.findings = Findings(self.scenario, images, config.out, config.save_per_bug,
                                 config.hang_seconds)
        self.decisions: list[Decision] = []
        self.progress: list[ProgressPoint] = []
        self.runs = self.branches = self.roots = 0
        self.simulated_ticks = 0
        self.started = 0.0
        self._entries = 0
        self._final_live: int | None = None  # live entries when the search ended
        self._pending: dict[int, tuple[Task, FrontierEntry | None, tuple[str, ...]]] = {}

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> ExploreReport:
        """Explore until the budget or the run limit is spent; the report."""
        config = self.config
        self.begin()
        with tempfile.TemporaryDirectory(prefix="chaosreplay-explore-") as scratch:
            runner = RoundRunner(RunJob(self.scenario, self.images, config.hang_seconds),
                                 config.jobs)
            try:
                while not self.spent():
                    self.learn_round(runner.run_round(self.decide_round(scratch)))
                    runner.forget({e.path for e in self.frontier.live()})
            finally:
                runner.close()
                self.finish()
        return self.report()

    # -- the loop's steps (scaleout/explore.py drives them from a Ray actor) -----------------

    def begin(self) -> None:
        """Start the wall clock of the budget."""
        self.started = time.monotonic()

    def decide_round(self, scratch: str) -> list[Task]:
        """The next round's runs (`jobs` of them, fewer near the run limit)."""
        count = self.config.jobs
        if self.config.max_runs is not None:
            count = min(count, self.config.max_runs - self.runs)
        return [self._decide(scratch) for _ in range(count)]

    def learn_round(self, outcomes: list[Outcome]) -> None:
        """Learn from a round's outcomes, given in task order."""
        for outcome in outcomes:
            self._learn(outcome)
        self._note_progress()

    def finish(self) -> None:
        """Note the frontier as it ended and delete its checkpoint files."""
        self._final_live = len(self.frontier.live())
        self.frontier.close()

    def elapsed(self) -> float:
        """Wall seconds since the exploration started."""
        return time.monotonic() - self.started

    def spent(self) -> bool:
        """Whether the run limit, the bug limit or the wall budget is reached."""
        config = self.config
        if config.max_runs is not None and self.runs >= config.max_runs:
            return True
        if config.stop_after_bugs is not None and len(self.findings.bugs) >= \
                config.stop_after_bugs:
            return True
        return config.budget_seconds is not None and self.elapsed() >= config.budget_seconds

    # -- decisions ----------------------------------------------------------------------------

    def _decide(self, scratch: str) -> Task:
        """The next run: a branch from the frontier, or a run from the next seed."""
        number = self.runs + len(self._pending) + 1
        path = f"{scratch}/run-{number}.ccr"
        live = [e for e in self.frontier.live() if e.energy > 0]
        if self.config.branching and live and self.rng.random() >= self.config.root_share:
            entry = self.config.policy.pick(live, self.rng)
            self.config.policy.spend(entry)
            end = entry.tick + self.config.branch_horizon
            rng = random.Random(derive_seed(self.config.seed, "branch", number))
            mutation = self.mutator.mutate(entry.faults, entry.gate, entry.tick, rng, end,
                                           entry.focus_tick, entry.focus_node)
            start = BranchPoint(entry.path, entry.tick, entry.collector, entry.maps)
            task = Task(number, entry.seed, mutation.faults, start, path, end)
            self._pending[number] = (task, entry, mutation.edits)
        else:
            seed = self.scenario.seed + self.roots
            self.roots += 1
            faults = tuple(run_faults(self.scenario.with_seed(seed)))
            task = Task(number, seed, faults, None, path)
            self._pending[number] = (task, None, ())
        return task

    # -- learning -----------------------------------------------------------------------------

    def _learn(self, outcome: Outcome) -> None:
        task, parent, edits = self._pending.pop(outcome.run)
        self.runs += 1
        self.branches += parent is not None
        self.simulated_ticks += outcome.simulated_ticks
        found = self.corpus.absorb(outcome.signals, outcome.run)
        worth = novelty(found)
        made = 0
        if self.config.branching and outcome.error is None:
            made = self._add_entries(task, outcome, found, parent)
        if parent is not None:
            self.config.policy.credit(parent, worth)
            if self.config.policy.exhausted(parent):
                self.frontier.retire(parent)
        if not self.frontier.holds(task.scratch):
            Path(task.scratch).unlink(missing_ok=True)
        bug = None
        if outcome.failed:
            simulated = self.simulated_ticks / TICKS_PER_SECOND
            record = self.findings.note(outcome.summary, outcome.error, run=self.runs,
                                        end_tick=outcome.end_tick, wall=self.elapsed(),
                                        simulated_seconds=simulated)
            bug = record.key
            if self.findings.wants_recording(record):
                self.findings.save(record, task.seed, task.faults, {
                    "seed": self.config.seed, "run": outcome.run, "scenario_seed": task.seed,
                    "branch_tick": outcome.start_tick if parent else None,
                    "from_run": parent.run if parent else None, "edits": list(edits)})
        self.decisions.append(Decision(
            outcome.run, task.seed, parent.number if parent else None, outcome.start_tick,
            outcome.end_tick, len(found), round(worth, 3), made, bug, list(edits)))

    def _add_entries(self, task: Task, outcome: Outcome, found: list[Discovery],
                     parent: FrontierEntry | None) -> int:
        """Frontier entries for the run's discoveries: each at the last checkpoint before
        it, focused on the strongest discovery of the few most novel checkpoints."""
        if not found or outcome.gate is None:
            return 0
        ticks = [t for t, _ in outcome.checkpoints]
        usable = [i for i, t in enumerate(ticks) if outcome.gate <= t < outcome.end_tick]
        groups: dict[int, list[Discovery]] = {}
        for d in found:
            before = [i for i in usable if ticks[i] <= d.tick]
            if before:  # (a discovery before the first usable checkpoint has none)
                groups.setdefault(before[-1], []).append(d)
        worthy = [i for i in groups if novelty(groups[i]) >= self.config.min_entry_novelty]
        ranked = sorted(worthy, key=lambda i: (-novelty(groups[i]), ticks[i]))
        chosen = sorted(ranked[:self.config.entries_per_run])
        for i in chosen:
            tick, state = outcome.checkpoints[i]
            focus = max(groups[i], key=lambda d: (weight(d.signal), -d.tick))
            worth = novelty(groups[i])
            self._entries += 1
            self.frontier.add(FrontierEntry(
                self._entries, outcome.run, task.scratch, tick, focus.tick, focus.node,
                task.seed, task.faults, outcome.gate, state, dict(outcome.maps), worth,
                parent.depth + 1 if parent else 0, self.config.policy.initial(worth),
                discoveries=[repr(d.signal) for d in groups[i][:3]]))
        return len(chosen)

    def _note_progress(self) -> None:
        self.progress.append(ProgressPoint(
            round(self.elapsed(), 3), self.runs, round(self.simulated_ticks / TICKS_PER_SECOND,
                                                       3),
            len(self.corpus), self.corpus.count("edge"), self.corpus.count("sometimes"),
            len(self.frontier.live()), len(self.findings.bugs)))
        if self.on_progress is not None:
            self.on_progress(self)

    def report(self) -> ExploreReport:
        """What the exploration did and found so far."""
        return ExploreReport(
            mode="explore" if self.config.branching else "random",
            seed=self.config.seed, jobs=self.config.jobs, runs=self.runs,
            branches=self.branches, roots=self.roots,
            wall_seconds=round(self.elapsed(), 3),
            simulated_seconds=round(self.simulated_ticks / TICKS_PER_SECOND, 3),
            signals=len(self.corpus), signal_kinds=_kinds(self.corpus),
            frontier_live=(len(self.frontier.live()) if self._final_live is None
                           else self._final_live),
            frontier_total=len(self.frontier.entries),
            bugs=[b.to_dict() for b in self.findings.bugs.values()],
            progress=list(self.progress), decisions=list(self.decisions))


def _kinds(corpus: Corpus) -> dict[str, int]:
    counts: dict[str, int] = {}
    for signal in corpus.first_run:
        counts[signal[0]] = counts.get(signal[0], 0) + 1
    return dict(sorted(counts.items()))
