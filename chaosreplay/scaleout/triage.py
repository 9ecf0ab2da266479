"""`triage --ray`: the replays and the shrinks of a triage as Ray tasks.

The pipeline (triage/pipeline.py) stays where it is, on the driver: it reads, groups and
reports. Only its two parallel steps go to the cluster, through the `TriageBackend` it
accepts: each recording's analysis (with its replay) and each member's shrink. A task
gets the recording's bytes content-addressed (each file put once), writes them into its
scratch folder under the file's own name, runs the local code (`analyse_recording`,
`shrink_member`) and sends back plain data, plus a shrink's minimal run as bytes, which the
driver writes where a local triage would. Paths in the results are the driver's.
"""

from __future__ import annotations

import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

from chaosreplay.scaleout.cluster import KVM
from chaosreplay.scaleout.shipment import fetch, put_file
from chaosreplay.scaleout.tasks import TaskPool, write_atomically
from chaosreplay.triage.cluster import RunAnalysis, analyse_recording
from chaosreplay.triage.minimize import Task, shrink_member


def _renamed(value: Any, old: str, new: str) -> Any:
    """value with every string's `old` path replaced by `new` (results name driver paths)."""
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {k: _renamed(v, old, new) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_renamed(v, old, new) for v in value)
    return value


def analyse_task(refs: dict[str, Any], digest: str, path: str, replay: bool,
                 hang_seconds: float) -> RunAnalysis:
    """On a worker: analyse (and replay) one recording sent as bytes."""
    with tempfile.TemporaryDirectory(prefix="chaosreplay-triage-") as scratch:
        local = Path(scratch) / Path(path).name
        local.write_bytes(fetch(refs, digest))
        analysis = analyse_recording(local, replay, hang_seconds)
    return replace(analysis, path=path, notes=_renamed(analysis.notes, str(local), path),
                   skipped=_renamed(analysis.skipped, str(local), path))


def shrink_task(refs: dict[str, Any], digest: str,
                task: Task) -> tuple[int, int, dict[str, Any], bytes | None]:
    """On a worker: shrink one member; the attempt and the minimal run's bytes."""
    finding, index, path, signature, out, budget = task
    with tempfile.TemporaryDirectory(prefix="chaosreplay-shrink-") as scratch:
        local = Path(scratch) / Path(path).name
        local.write_bytes(fetch(refs, digest))
        local_out = Path(scratch) / "out" / Path(out).name
        attempt = shrink_member(str(local), signature, local_out, budget)
        data = local_out.read_bytes() if attempt.get("path") else None
    attempt = _renamed(_renamed(attempt, str(local_out), out), str(local), path)
    return finding, index, attempt, data


class RayTriage:
    """The triage pipeline's backend on a Ray cluster (see the module docstring)."""

    def __init__(self, ray: ModuleType) -> None:
        self.ray = ray
        self.refs: dict[str, Any] = {}
        options = {"num_cpus": 1, "resources": {KVM: 1}, "max_retries": 3}
        self._analyse = ray.remote(**options)(analyse_task)
        self._shrink = ray.remote(**options)(shrink_task)

    def analyse_all(self, paths: Sequence[Path], replay: bool, jobs: int,
                    hang_seconds: float,
                    on_done: Callable[[RunAnalysis], Any] | None = None) -> list[RunAnalysis]:
        """As triage.cluster.analyse_all: every path analysed, in the order of paths."""
        digests = [put_file(self.ray, self.refs, p) for p in paths]
        pool = TaskPool(self.ray, lambda i: self._analyse.remote(
            self.refs, digests[i], str(paths[i]), replay, hang_seconds))
        by_index: dict[int, RunAnalysis] = {}
        for i, analysis in pool.run(deque(range(len(paths)))):
            if i in by_index:
                continue
            by_index[i] = analysis if analysis is not None else RunAnalysis(
                str(paths[i]), skipped="its Ray worker died on every attempt")
            if on_done is not None:
                on_done(by_index[i])
        return [by_index[i] for i in range(len(paths))]

    def shrink(self, tasks: Sequence[Task]) -> Iterator[tuple[int, int, dict[str, Any]]]:
        """As the shrink pool of triage.minimize: (finding, attempt, result) per task."""
        digests = [put_file(self.ray, self.refs, Path(t[2])) for t in tasks]
        pool = TaskPool(self.ray, lambda i: self._shrink.remote(self.refs, digests[i],
                                                                tasks[i]))
        seen: set[int] = set()
        for i, result in pool.run(deque(range(len(tasks)))):
            if i in seen:
                continue
            seen.add(i)
            finding, index, path = tasks[i][0], tasks[i][1], tasks[i][2]
            if result is None:
                yield finding, index, {"member": path,
                                       "error": "not shrunk: its Ray worker died on every "
                                                "attempt"}
                continue
            _, _, attempt, data = result
            if data is not None:
                write_atomically(Path(tasks[i][4]), data)
            yield finding, index, attempt
