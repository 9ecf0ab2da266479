"""`explore --ray`: the frontier and the coverage map in one Ray actor, runs as Ray tasks.

The actor (`ExploreState`) holds an `Explorer` — its corpus (the coverage map of every
signal seen), its frontier of checkpoints, its findings — and makes the same decisions a
local exploration makes, round by round (explore/explorer.py). Each round's runs go to
workers as tasks (`run_branch`, explore/runner.py's own `run_task`); a task's checkpoint
file comes back as an object reference the driver hands straight to the actor, which
writes the file where the local explorer would have and learns from the outcomes in task
order. Only the small outcome passes through the driver, which runs a run again when its
worker died. A branch gets the checkpoint file it starts from content-addressed: the
actor puts each frontier file into the object store once and a worker fetches it once.

A round has one run per unit of `kvm` in the cluster, so with a run limit an exploration
on a cluster of N slots makes the runs `explore -j N` makes on one machine. The actor is
placed on the driver's node: the failing runs it records go into the driver's --out.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

from chaosreplay.explore.explorer import ExploreConfig, Explorer
from chaosreplay.explore.report import ExploreReport
from chaosreplay.explore.runner import Outcome, Readers, RunJob, Task, run_task
from chaosreplay.scaleout.cluster import KVM, ScaleOutError
from chaosreplay.scaleout.shipment import Shipment, ship, unpack
from chaosreplay.scaleout.tasks import TaskPool
from chaosreplay.sim.scenario import Scenario
from chaosreplay.vm.elf import ProgramImage

KEPT_STARTS = 64  # branch-point files a worker keeps (the newest)


class ExploreState:
    """The Ray actor of an exploration: decides rounds, learns from their outcomes."""

    def __init__(self, scenario: Scenario, images: list[ProgramImage],
                 config: ExploreConfig) -> None:
        import ray

        self.explorer = Explorer(scenario, images, config)
        self.scratch = tempfile.mkdtemp(prefix="chaosreplay-explore-")
        self.shipped = ship(ray, self.explorer.scenario, images)
        self.starts: dict[str, tuple[str, Any]] = {}  # frontier file -> (digest, reference)
        self.scratch_of: dict[int, str] = {}  # run number -> its checkpoint file
        self.explorer.begin()

    def shipment(self) -> Shipment:
        """The scenario (with the explorer's checkpoint interval) and programs, shipped."""
        return self.shipped

    def next_round(self) -> list[tuple[Task, tuple[str, Any] | None]] | None:
        """The next round's tasks, each with its branch point's file; None when spent."""
        import ray

        if self.explorer.spent():
            return None
        live = {e.path for e in self.explorer.frontier.live()}
        self.starts = {p: ref for p, ref in self.starts.items() if p in live}
        out = []
        for task in self.explorer.decide_round(self.scratch):
            self.scratch_of[task.run] = task.scratch
            start = None
            if task.start is not None:
                if task.start.path not in self.starts:
                    data = Path(task.start.path).read_bytes()
                    self.starts[task.start.path] = (hashlib.sha256(data).hexdigest(),
                                                    ray.put(data))
                start = self.starts[task.start.path]
            out.append((task, start))
        return out

    def learn_round(self, outcomes: list[Outcome], *files: bytes | None) -> ExploreReport:
        """Store each run's checkpoint file and learn from the outcomes (in task order);
        the report so far."""
        for outcome, data in zip(outcomes, files, strict=True):
            path = self.scratch_of.pop(outcome.run)
            if data is not None:
                Path(path).write_bytes(data)
        self.explorer.learn_round(outcomes)
        return self.explorer.report()

    def finish(self) -> ExploreReport:
        """End the search: the report (the frontier's files are deleted)."""
        self.explorer.finish()
        for name in os.listdir(self.scratch):
            os.unlink(os.path.join(self.scratch, name))
        os.rmdir(self.scratch)
        return self.explorer.report()


_READERS = Readers()  # in a worker process: open branch-point files
_STARTS = Path(tempfile.gettempdir()) / f"chaosreplay-starts-{os.getpid()}"


def run_branch(shipment: Shipment, hang_seconds: float, task: Task,
               start: tuple[str, Any] | None) -> tuple[Outcome, bytes | None]:
    """On a worker: one run, from its branch point's file; the outcome and its checkpoints
    (two return values: the driver fetches only the outcome)."""
    import ray

    scenario, images = unpack(shipment)
    if task.start is not None and start is not None:
        digest, ref = start
        _STARTS.mkdir(exist_ok=True)
        local = _STARTS / f"{digest}.ccr"
        if not local.exists():
            local.write_bytes(ray.get(ref))
            _forget_old_starts()
        task = replace(task, start=replace(task.start, path=str(local)))
    with tempfile.TemporaryDirectory(prefix="chaosreplay-run-") as scratch:
        task = replace(task, scratch=os.path.join(scratch, "run.ccr"))
        outcome = run_task(RunJob(scenario, images, hang_seconds), _READERS, task)
        data = Path(task.scratch).read_bytes() if os.path.exists(task.scratch) else None
    return outcome, data


def _forget_old_starts() -> None:
    """Keep the newest KEPT_STARTS branch-point files of this worker."""
    files = sorted(_STARTS.iterdir(), key=lambda p: p.stat().st_mtime)
    keep = {str(p) for p in files[-KEPT_STARTS:]}
    _READERS.forget(keep)
    for path in files[:-KEPT_STARTS]:
        path.unlink(missing_ok=True)


def ray_explore(ray: ModuleType, scenario: Scenario, images: list[ProgramImage],
                config: ExploreConfig,
                on_report: Callable[[ExploreReport], Any] | None = None) -> ExploreReport:
    """Explore on the cluster (see the module docstring); the report."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    slots = max(1, int(ray.cluster_resources().get(KVM, 1)))
    config = replace(config, jobs=slots)
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    actor = ray.remote(num_cpus=0)(ExploreState).options(scheduling_strategy=here).remote(
        scenario, images, config)
    remote = ray.remote(num_cpus=1, resources={KVM: 1}, max_retries=3,
                        num_returns=2)(run_branch)
    shipment = ray.get(actor.shipment.remote())
    while (round_ := ray.get(actor.next_round.remote())) is not None:
        outcomes, files = _carry_out(ray, remote, shipment, config.hang_seconds, round_)
        report = ray.get(actor.learn_round.remote(outcomes, *files))
        if on_report is not None:
            on_report(report)
    return ray.get(actor.finish.remote())


def _carry_out(ray: ModuleType, remote: Any, shipment: Shipment, hang_seconds: float,
               round_: list[tuple[Task, tuple[str, Any] | None]]
               ) -> tuple[list[Outcome], list[Any]]:
    """A round's outcomes, in task order, and references to their checkpoint files (left in
    the object store for the actor); a run whose worker died is run again."""
    files: dict[int, Any] = {}

    def submit(i: int) -> Any:
        outcome, data = remote.remote(shipment, hang_seconds, *round_[i])
        files[i] = data  # the latest submission's: the one whose outcome comes back
        return outcome

    outcomes: dict[int, Outcome] = {}
    for i, outcome in TaskPool(ray, submit).run(deque(range(len(round_)))):
        if outcome is None:
            raise ScaleOutError(f"explore run {round_[i][0].run}: its Ray worker died on "
                                "every attempt")
        outcomes.setdefault(i, outcome)
    order = range(len(round_))
    return [outcomes[i] for i in order], [files[i] for i in order]
