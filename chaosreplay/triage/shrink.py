"""Shrinking a failing recording to a minimal fault schedule that still fails the same way.

A run is the list of faults it injected plus the network's defaults, the way a Hypothesis
test case is the sequence of choices it drew: shrinking edits that list, re-runs it, and
keeps an edit only if the run still fails the same way (`still_fails` on its summary).

1. **baseline**: the original re-run from scratch must still fail; the faults that had not
   started by the failure are dropped (one run confirms it).
2. **ddmin** over the faults, complements first, down to a 1-minimal schedule: removing
   any single fault makes the run pass.
3. **single faults**: the remaining set replaced by one fault of a kind present, spanning
   the set's time (one partition instead of three), or the faults of one kind merged.
4. **simpler faults**: later starts (toward the failure), shorter durations, milder
   parameters.
5. **simpler network**: the defaults without the fabric's random choices (jitter, loss,
   corruption, reordering, duplication) or a bandwidth limit or per-node overrides.
6. **earlier failure**: the whole schedule moved earlier, kept when the run then fails
   sooner (a shorter run).
7. 1-minimality checked again under the final network and parameters; then the minimal run
   is recorded from scratch to `out`, ending at its failure, and must fail `still_fails`.

Candidates are run by `shrink_runs.CandidateRunner`: each starts from the nearest checkpoint
before its first change, stops at its first failure and ends at the *bound*, the original
failure tick: a candidate failing later counts as passing, so the minimal run is never
longer than the original. A step takes the first failing candidate in candidate order, so
the result is the same with any number of jobs. docs/shrinking.md has the why.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from chaosreplay.errors import RecordingError
from chaosreplay.recording import RecordingReader
from chaosreplay.runs.record_replay import RunOptions, load_run, record_run
from chaosreplay.runs.schedules import run_faults, with_faults
from chaosreplay.sim.faults.model import KIND_SPECS, Fault
from chaosreplay.sim.network.datagrams import NEVER
from chaosreplay.sim.scenario import NetworkConfig, Scenario
from chaosreplay.sim.simulation import Simulation
from chaosreplay.triage.shrink_runs import (
    HANG_SECONDS,
    Base,
    Candidate,
    CandidateRunner,
    ExitWatch,
    OutOfBudget,
    RunJob,
    StillFails,
)
from chaosreplay.vm.elf import ProgramImage

# The steps whose successes ShrinkReport.steps counts, in the order they run.
STEP_NAMES = ("ddmin", "single fault", "later start", "shorter", "milder", "network",
              "earlier failure")
# Link parameters that draw on the fabric's random stream or limit it; "simpler" is 0.
RANDOM_LINK_PARAMS = ("jitter_ns", "loss", "corrupt", "reorder", "duplicate", "bandwidth_bps")
# Fault parameters and which way is milder: smaller (toward 0) or larger.
MILDER_LARGER = frozenset({"bandwidth_bps", "limit_bytes"})
NUMERIC_PARAMS = frozenset({"latency_ns", "jitter_ns", "probability", "rate", "delta_ns",
                            "bandwidth_bps", "limit_bytes"})
# A value is tried divided (or multiplied) by 4 and by 2 at once, and again from the new value
# while the stronger step holds, at most DESCENT times.
STEPS = (4, 2)
DESCENT = 3


@dataclass
class ShrinkReport:
    """What a shrink did: sizes before and after, effort, the minimal schedule."""

    original: Path
    output: Path | None
    faults_before: int  # faults the original run had started by its failure
    faults_after: int
    ticks_before: int
    ticks_after: int
    events_before: int
    events_after: int
    candidates: int  # candidate runs executed (cancelled ones included)
    seconds: float
    schedule: list[dict[str, Any]]
    log: list[str]
    faults_scheduled: int = 0  # every fault of the original schedule, started or not
    cancelled: int = 0  # candidate runs cut short because an earlier candidate decided
    cache_hits: int = 0  # candidates not run because the same schedule had been run
    one_minimal: bool = False  # every single removal was run and passed
    budget_exhausted: bool = False
    network: dict[str, Any] | None = None  # the simplified network defaults, if changed
    bound_tick: int = 0  # where candidate runs ended
    cpu_seconds: float = 0.0  # CPU time of this process and its workers (others may share)
    # per step of STEP_NAMES: candidate runs it made and how often it kept a candidate
    steps: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (paths as strings)."""
        out = asdict(self)
        out["original"] = str(self.original)
        out["output"] = None if self.output is None else str(self.output)
        return out


def _canonical(faults: Sequence[Fault]) -> tuple[Fault, ...]:
    """Faults in the order a schedule fires them (with_faults sorts the same way)."""
    return tuple(sorted(faults, key=lambda f: f.at))


# -- the phases --------------------------------------------------------------------------------

def _split(items: list[Fault], n: int) -> list[list[Fault]]:
    """n contiguous chunks of nearly equal size (the first ones one longer)."""
    size, extra = divmod(len(items), n)
    chunks, start = [], 0
    for i in range(n):
        end = start + size + (i < extra)
        chunks.append(items[start:end])
        start = end
    return chunks


def _unique(values: list[Any], current: Any) -> list[Any]:
    """The values in order, without repeats or the current one."""
    out: list[Any] = []
    for value in values:
        if value != current and value not in out:
            out.append(value)
    return out


def _simpler(fault: Fault, attribute: str, fail_at: int, bound_at: int) -> list[Fault]:
    """Variants of one fault, simpler in one attribute, most simplified first.

    `fail_at`/`bound_at`: the failure tick and the bound, relative to the gate like `at`."""
    if attribute == "at":
        gap = fail_at - fault.at  # later starts: toward the failure
        values = [fault.at + gap - gap // k for k in STEPS] if gap >= 2 else []
        return [replace(fault, at=v) for v in _unique(values, fault.at)]
    if attribute == "duration":
        if KIND_SPECS[fault.kind].duration == "none":
            return []
        length = fault.duration or max(1, bound_at - fault.at)  # 0: until the run ends
        values = [max(1, length // k) for k in STEPS]
        return [replace(fault, duration=v) for v in _unique(values, fault.duration) if v < length]
    value = fault.param(attribute)
    if attribute in MILDER_LARGER:
        values = [value * k for k in STEPS]
    elif isinstance(value, int):
        values = [int(value / k) for k in STEPS]  # toward zero, also for negative jumps
    else:
        values = [value / k for k in STEPS]
    params = dict(fault.params)
    return [replace(fault, params=tuple({**params, attribute: v}.items()))
            for v in _unique(values, value) if v != 0]


def _attributes(fault: Fault) -> list[str]:
    """What `_simpler` can change in a fault: start, duration, numeric parameters."""
    return ["at", "duration"] + [name for name, _ in fault.params if name in NUMERIC_PARAMS]


class _Shrinker:
    """The current best schedule and network, and the phases that improve them."""

    def __init__(self, job: RunJob, runner: CandidateRunner, faults: list[Fault],
                 say: Callable[[str], None]) -> None:
        self.job, self.runner, self.say = job, runner, say
        self.faults = faults
        self.network: NetworkConfig | None = None  # None: the recording's
        self.one_minimal = False
        gate = job.gate or 0
        self.fail_at, self.bound_at = job.failure_tick - gate, job.bound_tick - gate
        self.steps = {name: {"runs": 0, "helped": 0} for name in STEP_NAMES}

    def _step(self, name: str, runs_before: int, helped: bool) -> None:
        """Count one step's candidate runs and whether it kept one."""
        self.steps[name]["runs"] += getattr(self.runner, "runs", 0) - runs_before
        self.steps[name]["helped"] += helped

    def failure_tick(self) -> int:
        """Where the current schedule's run fails (the original's tick until one is kept)."""
        ticks = getattr(self.runner, "ticks", {})
        return ticks.get(self.cand(self.faults), self.job.failure_tick)

    def cand(self, faults: Sequence[Fault], network: NetworkConfig | None = None) -> Candidate:
        """A candidate with these faults and the current (or the given) network."""
        return Candidate(_canonical(faults), network or self.network)

    def ddmin(self, granularity: int = 2) -> None:
        """Delta debugging over the faults (complements first) down to a 1-minimal list."""
        items, n, start = list(self.faults), granularity, 0
        self.one_minimal = False
        # The bug may need no fault at all: one more candidate in the first step says so.
        empty = bool(items) and (granularity == 2 or len(items) == 1)
        while len(items) > 1 or empty:
            options: list[list[Fault]] = [[]] if empty else []
            if len(items) > 1:
                n = min(n, len(items))
                chunks = _split(items, n)
                # Complements only, beyond n = 2 (where each chunk is the other's complement):
                # a bug's faults are spread over the run, so one chunk rarely holds them all,
                # and keeping one chunk changes the run from its first fault, a nearly full
                # run. After a removal the next step starts at the same place: the chunks
                # before it have just been tried (1-minimality is checked at n = len).
                order = [(start + k) % n for k in range(n)]
                options += [[f for j, c in enumerate(chunks) if j != i for f in c]
                            for i in order]
                self.say(f"ddmin: {len(items)} faults in {n} chunks, {len(options)} candidates")
            found = self.runner.first_failing([self.cand(o) for o in options])
            if found is None:
                if len(items) <= 1 or n == len(items):
                    break  # every single removal was tried and passes
                n, start, empty = min(2 * n, len(items)), 0, False
                continue
            items = self.faults = options[found]
            if empty and found == 0:
                break
            start = order[found - empty] % max(1, n - 1)
            n, empty = max(n - 1, 2), len(items) == 1
        self.faults, self.one_minimal = items, True

    def simplify_faults(self) -> None:
        """Per fault and attribute, the most simplified variant that still fails."""
        for index in range(len(self.faults)):
            for attribute in _attributes(self.faults[index]):
                before = self.faults[index]
                runs_before = getattr(self.runner, "runs", 0)
                for _ in range(DESCENT):
                    variants = _simpler(self.faults[index], attribute, self.fail_at,
                                        self.bound_at)
                    others = self.faults[:index] + self.faults[index + 1:]
                    found = (self.runner.first_failing([self.cand([*others, v])
                                                        for v in variants])
                             if variants else None)
                    if found is None:
                        break
                    self.faults = [*others[:index], variants[found], *others[index:]]
                    if found > 0:
                        break  # the stronger step did not hold: nothing between to try
                after = self.faults[index]
                step = {"at": "later start", "duration": "shorter"}.get(attribute, "milder")
                self._step(step, runs_before, after != before)
                if after != before:
                    self.say(f"simpler {before.kind.value} (fault {index + 1}): {attribute} "
                             f"{_value(before, attribute)} -> {_value(after, attribute)}")

    def simplify_network(self) -> None:
        """Network defaults without the fabric's random choices, all at once or one by one."""
        base = self.job.scenario.network
        zero = {name: type(getattr(base.defaults, name))(0) for name in RANDOM_LINK_PARAMS}
        simplest = NetworkConfig(replace(base.defaults, **zero), ())
        if simplest == base:
            return
        runs_before = getattr(self.runner, "runs", 0)
        if self.runner.first_failing([self.cand(self.faults, simplest)]) == 0:
            self.network = simplest
        else:
            current = base
            for name in (*RANDOM_LINK_PARAMS, "overrides"):
                trial = (replace(current, overrides=()) if name == "overrides" else
                         replace(current, defaults=replace(current.defaults,
                                                           **{name: zero[name]})))
                if trial != current and self.runner.first_failing(
                        [self.cand(self.faults, trial)]) == 0:
                    current = trial
            self.network = None if current == base else current
        self._step("network", runs_before, self.network is not None)
        if self.network is not None:
            changed = [k for k, v in self.network.defaults.to_dict().items()
                       if v != getattr(base.defaults, k)]
            self.say(f"simpler network: {', '.join(changed) or 'no overrides'} set to 0"
                     + (", per-node overrides dropped" if base.overrides
                        and not self.network.overrides else ""))


    def single_faults(self) -> None:
        """Replace the remaining faults by fewer of the kinds present, while that fails."""
        for _ in range(DESCENT):
            runs_before = getattr(self.runner, "runs", 0)
            options = _single_fault_options(self.faults, self.fail_at)
            found = self.runner.first_failing([self.cand(o) for o in options]) if options \
                else None
            self._step("single fault", runs_before, found is not None)
            if found is None:
                return
            before = len(self.faults)
            self.faults = options[found]
            self.say(f"single fault: {before} faults -> {len(self.faults)} "
                     f"({', '.join(f.kind.value for f in _canonical(self.faults))})")

    def earlier_failure(self) -> None:
        """Move the whole schedule earlier, kept when the run then fails sooner."""
        for _ in range(DESCENT):
            first = min((f.at for f in self.faults), default=0)
            if first < 2:
                return
            runs_before, kept = getattr(self.runner, "runs", 0), False
            for shift in _unique([first, first // 2], 0):
                moved = [replace(f, at=f.at - shift) for f in self.faults]
                current = self.failure_tick()
                ticks = getattr(self.runner, "ticks", {})
                if (self.runner.first_failing([self.cand(moved)]) == 0
                        and ticks.get(self.cand(moved), current) < current):
                    self.faults, kept = moved, True
                    self.say(f"earlier failure: faults {shift} ticks earlier, failure at tick "
                             f"{self.failure_tick()} (was {current})")
                    break
            self._step("earlier failure", runs_before, kept)
            if not kept:
                return


def _fault_end(fault: Fault, fail_at: int) -> int:
    """Where a fault ends, relative to the gate (0 duration: at the failure, for merging)."""
    return fault.at + (fault.duration or max(1, fail_at - fault.at))


def _single_fault_options(faults: list[Fault], fail_at: int) -> list[list[Fault]]:
    """Smaller sets of the kinds present: the whole set as one fault of each kind (spanning
    the set's time), then per kind with several faults those merged into one."""
    if len(faults) < 2:
        return []
    out: list[list[Fault]] = []

    def add(option: list[Fault]) -> None:
        if option not in out and len(option) < len(faults):
            out.append(option)

    def spanning(fault: Fault, start: int, stop: int) -> Fault:
        if KIND_SPECS[fault.kind].duration == "none":
            return fault  # instantaneous: it has no time to span
        return replace(fault, at=start, duration=max(1, stop - start))

    ordered = _canonical(faults)
    start, stop = ordered[0].at, max(_fault_end(f, fail_at) for f in ordered)
    for fault in ordered:
        add([spanning(fault, start, stop)])
    for kind in dict.fromkeys(f.kind for f in ordered):
        same = [f for f in ordered if f.kind == kind]
        if len(same) < 2:
            continue
        low, high = same[0].at, max(_fault_end(f, fail_at) for f in same)
        others = [f for f in ordered if f.kind != kind]
        for fault in same:
            add([*others, spanning(fault, low, high)])
    return out


def _value(fault: Fault, attribute: str) -> Any:
    """One attribute of a fault, as `_attributes` names it."""
    return getattr(fault, attribute) if attribute in ("at", "duration") else fault.param(
        attribute)


# -- the entry point ---------------------------------------------------------------------------

def _failure_tick(summary: dict[str, Any]) -> int:
    """The tick of the run's first failure (its end if it names none)."""
    ticks = [int(b["tick"]) for b in summary.get("bugs", [])]
    ticks += [int(f["tick"]) for f in summary.get("failures", [])]
    return min(ticks, default=int(summary["end_tick"]))


def failure_tick_of(still_fails: StillFails) -> Callable[[dict[str, Any]], int]:
    """How to find the failure in a summary: still_fails' own `failure_tick` when it has one
    (triage's judge knows exits and stderr writes), else the first bug or failure."""
    own = getattr(still_fails, "failure_tick", None)
    return own if callable(own) else _failure_tick


def _what(summary: dict[str, Any]) -> str:
    """The first failure of a summary in words."""
    if summary.get("bugs"):
        bug = summary["bugs"][0]
        return f"bug at tick {bug['tick']}: {bug['message']}"
    if summary.get("failures"):
        failure = summary["failures"][0]
        return f"{failure['kind']} at tick {failure['tick']} on node {failure['node']}"
    return f"no failure (ended by {summary.get('reason')} at tick {summary.get('end_tick')})"


def _cpu_seconds() -> float:
    """CPU time used so far by this process and its waited-for children."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def _baseline(scenario: Scenario, images: list[ProgramImage]) -> tuple[dict[str, Any], int | None]:
    """The original run again, lean and from scratch: (summary, gate tick)."""
    watch = ExitWatch()
    sim = Simulation(scenario, images, sink=watch, trace_syscalls=False,
                     hang_seconds=HANG_SECONDS)
    sim.next_checkpoint_ns = NEVER  # nothing keeps them; they do not change the run
    return watch.summary(sim.run().summary()), sim.engine.origin_tick


def shrink_recording(path: Path, still_fails: StillFails, out: Path, *, jobs: int = 1,
                     budget_seconds: float | None = None,
                     on_progress: Callable[[str], None] | None = None) -> ShrinkReport:
    """Shrink a failing recording's fault schedule; write the minimal run to `out`."""
    started, cpu = time.monotonic(), _cpu_seconds()
    deadline = None if budget_seconds is None else started + budget_seconds
    path, out = Path(path), Path(out)
    log: list[str] = []

    def say(line: str) -> None:
        log.append(line)
        if on_progress is not None:
            on_progress(line)

    try:
        reader = RecordingReader(path)
    except RecordingError as exc:
        if str(path) in str(exc):
            raise
        raise RecordingError(f"{path}: {exc}") from None
    with reader:
        scenario, images, _ = load_run(reader)
        if reader.damage:
            say(f"{path} is damaged ({reader.damage[0]}); its readable checkpoints are used")
        recorded = reader.summary or {"end_tick": reader.last_tick or 0,
                                      "events": reader.event_count}
        # Candidates stop at the first failure, so the baseline and the result do too.
        scenario = replace(scenario, stop_on_first_bug=True)
        original = tuple(run_faults(scenario))
        summary, gate = _baseline(scenario, images)
        if not still_fails(summary):
            raise RecordingError(f"{path}: re-run from scratch, the recorded run does not fail "
                                 f"the same way ({_what(summary)})")
        tick_of = failure_tick_of(still_fails)
        failure = tick_of(summary)
        # The bound is the failure itself: a candidate failing later is another path to the
        # bug, and keeping it would make the minimal run longer than the original.
        job = RunJob(scenario, images, gate, failure, min(scenario.duration, failure + 1))
        started_faults = [f for f in original if gate is not None and gate + f.at <= failure]
        say(f"baseline: {_what(summary)}; {len(original)} faults scheduled, "
            f"{len(started_faults)} started by then; candidates end at tick {job.bound_tick}")
        with tempfile.TemporaryDirectory(prefix="chaosreplay-shrink-") as scratch:
            runner = CandidateRunner(job, Base(str(path), original, None), still_fails,
                                     max(1, jobs), deadline, scratch, tick_of)
            shrinker = _Shrinker(job, runner, list(original), say)
            try:
                exhausted = _shrink(shrinker, started_faults, say)
            finally:
                runner.close()
        if exhausted:
            say(f"time budget of {budget_seconds:g} s spent: keeping the best schedule so far "
                f"({len(shrinker.faults)} faults)")
        # The minimal run ends at its failure also where the failure does not stop the run
        # (an exit status, a write to stderr): its duration ends one tick after it.
        result_scenario = with_faults(
            replace(scenario, network=shrinker.network or scenario.network,
                    duration=min(scenario.duration, shrinker.failure_tick() + 1)),
            shrinker.faults)
        result = _record_minimal(path, result_scenario, images, out, still_fails)
    report = ShrinkReport(
        original=path, output=out, faults_before=len(started_faults),
        faults_after=len(shrinker.faults), ticks_before=int(recorded["end_tick"]),
        ticks_after=int(result["end_tick"]), events_before=int(recorded["events"]),
        events_after=int(result["events"]), candidates=runner.runs,
        seconds=time.monotonic() - started,
        schedule=[f.to_dict() for f in _canonical(shrinker.faults)], log=log,
        faults_scheduled=len(original), cancelled=runner.cancelled, cache_hits=runner.hits,
        one_minimal=shrinker.one_minimal, budget_exhausted=exhausted,
        network=None if shrinker.network is None else shrinker.network.defaults.to_dict(),
        bound_tick=job.bound_tick, cpu_seconds=_cpu_seconds() - cpu, steps=shrinker.steps)
    say(f"recorded {out}: faults {report.faults_before} -> {report.faults_after}, ticks "
        f"{report.ticks_before} -> {report.ticks_after}, events {report.events_before} -> "
        f"{report.events_after}; {report.candidates} candidate runs in {report.seconds:.1f} s "
        f"({report.cpu_seconds:.0f} CPU s)")
    return report


def _shrink(shrinker: _Shrinker, started_faults: list[Fault],
            say: Callable[[str], None]) -> bool:
    """The phases, in order; whether the budget ran out first."""
    try:
        dropped = len(shrinker.faults) - len(started_faults)
        if dropped and shrinker.runner.first_failing([shrinker.cand(started_faults)]) == 0:
            shrinker.faults = started_faults
            say(f"dropped the {dropped} faults that start after the failure")
        before, runs_before = len(shrinker.faults), shrinker.runner.runs
        shrinker.ddmin()
        shrinker._step("ddmin", runs_before, len(shrinker.faults) < before)
        say(f"ddmin: {before} -> {len(shrinker.faults)} faults "
            f"({shrinker.runner.runs} runs so far)")
        shrinker.single_faults()
        shrinker.simplify_faults()
        shrinker.simplify_network()
        shrinker.earlier_failure()
        before, runs_before = len(shrinker.faults), shrinker.runner.runs
        shrinker.ddmin(granularity=max(2, len(shrinker.faults)))  # 1-minimal as it ends
        shrinker._step("ddmin", runs_before, len(shrinker.faults) < before)
    except OutOfBudget:
        shrinker.one_minimal = False
        return True
    return False


def _with_exits(summary: dict[str, Any], path: Path) -> dict[str, Any]:
    """A recorded run's summary with its exits and stderr writes, as lean runs give them."""
    watch = ExitWatch()
    with RecordingReader(path) as reader:
        for event in reader.events(kinds=("exit", "output")):
            watch(event.tick, event.vtime_ns, event.node, event.kind, event.fields)
    return watch.summary(summary)


def _record_minimal(path: Path, scenario: Scenario, images: list[ProgramImage], out: Path,
                    still_fails: StillFails) -> dict[str, Any]:
    """Record the minimal run from scratch next to `out`, check it, then rename it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.shrinking")
    try:
        summary = record_run(scenario, images, staging,
                             RunOptions(keep_going=False, hang_seconds=HANG_SECONDS)).summary()
        summary = _with_exits(summary, staging)
        if not still_fails(summary):
            raise RecordingError(f"{path}: the minimal schedule, recorded from scratch, does not "
                                 f"fail the same way ({_what(summary)}); nothing written")
        os.replace(staging, out)
    finally:
        staging.unlink(missing_ok=True)
    return summary
