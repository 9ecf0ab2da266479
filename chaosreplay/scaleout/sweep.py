"""`record --seeds --ray`: one Ray task per seed, results as a local sweep gives them.

Each task runs `runs.sweep.run_seed`, the local sweep's own code, on a worker with one
unit of `kvm`; a failing seed's recording is made in the worker's scratch folder and its
bytes come back with the outcome, to be written into the driver's --keep-failing folder
under the name the local sweep uses. The driver keeps a bounded window of tasks in flight
(so 100,000 seeds are not 100,000 queued tasks), takes each seed's first outcome only, and
resubmits a seed whose worker or node died (after Ray's own retries), so a cluster fault
neither loses a seed nor counts one twice. Ctrl-C disconnects the driver, which ends
every task in flight (tasks.py).
"""

from __future__ import annotations

import tempfile
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

from chaosreplay.runs.sweep import SeedOutcome, SweepJob, make_keep_folder, run_seed
from chaosreplay.scaleout.cluster import KVM, worker_name
from chaosreplay.scaleout.shipment import Shipment, ship, unpack
from chaosreplay.scaleout.tasks import TaskPool, write_atomically
from chaosreplay.sim.scenario import Scenario
from chaosreplay.vm.elf import ProgramImage

OnOutcome = Callable[[SeedOutcome, str], Any]  # (outcome, the worker that ran it)


def seed_task(shipment: Shipment, keep: bool, hang_seconds: float, keep_going: bool,
              seed: int) -> tuple[SeedOutcome, bytes | None, str]:
    """On a worker: one seed, its recording's bytes if it failed and one was asked for."""
    scenario, images = unpack(shipment)
    with tempfile.TemporaryDirectory(prefix="chaosreplay-seed-") as scratch:
        job = SweepJob(scenario, images, scratch if keep else None, hang_seconds, keep_going)
        outcome = run_seed(job, seed)
        data = Path(outcome.recording).read_bytes() if outcome.recording else None
    return outcome, data, worker_name()


def ray_sweep(ray: ModuleType, scenario: Scenario, images: list[ProgramImage],
              seeds: Iterable[int], keep_failing: Path | None = None,
              hang_seconds: float = 10.0, keep_going: bool = False,
              on_outcome: OnOutcome | None = None) -> list[SeedOutcome]:
    """Every seed as a Ray task (see the module docstring); outcomes in seed order."""
    if keep_failing is not None:
        make_keep_folder(keep_failing)
    shipment = ship(ray, scenario, images)
    remote = ray.remote(num_cpus=1, resources={KVM: 1}, max_retries=3)(seed_task)
    pool = TaskPool(ray, lambda seed: remote.remote(shipment, keep_failing is not None,
                                                    hang_seconds, keep_going, seed))
    done: dict[int, SeedOutcome] = {}
    for seed, result in pool.run(deque(seeds)):
        if seed in done:
            continue  # a resubmitted seed whose first task came back after all
        outcome, data, worker = result if result is not None else (_lost(seed), None, "")
        if data is not None and keep_failing is not None:
            path = keep_failing / f"seed-{seed}.ccr"
            write_atomically(path, data)
            outcome = replace(outcome, recording=str(path))
        done[seed] = outcome
        if on_outcome is not None:
            on_outcome(outcome, worker)
    return sorted(done.values(), key=lambda o: o.seed)


def _lost(seed: int) -> SeedOutcome:
    """A seed whose every task died with its worker: an error, as a VM failure is."""
    why = "its Ray worker died on every attempt"
    return SeedOutcome(seed, True, "error", 0, 0, error=why,
                       outcome=f"FAILED: the run could not be carried out: {why}")
