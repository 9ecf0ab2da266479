"""The `--ray [ADDRESS]` option of record, triage and explore, and the ray sweep's display."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from chaosreplay.runs.sweep import SeedOutcome

F = TypeVar("F", bound=Callable[..., Any])


def ray_option(what: str) -> Callable[[F], F]:
    """--ray [ADDRESS]: run `what` as Ray tasks (alone: this machine's cluster, or a new one)."""
    return click.option(
        "--ray", "ray_address", is_flag=False, flag_value="auto", default=None,
        metavar="[ADDRESS]",
        help=f"Run {what} as Ray tasks on the cluster whose head is at ADDRESS (HOST:PORT); "
             "alone: the cluster this machine is part of, else a new local one. Needs "
             "pip install 'chaosreplay[ray]' (docs/scale-out.md).")


class WorkerProgress:
    """Seeds done and failing over the whole sweep, and per worker its seeds and rate."""

    def __init__(self, console: Console, total: int, enabled: bool) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}[/]"), BarColumn(),
            TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), console=console,
            transient=True, disable=not enabled)
        self.total, self.failing, self.done = total, 0, 0
        self.started = time.perf_counter()
        self.task = self.progress.add_task("seeds", total=total, detail=self._detail())
        self.workers: dict[str, tuple[TaskID, int, float]] = {}  # name -> row, seeds, first

    def _detail(self) -> str:
        return f"{self.done}/{self.total} · {self.failing} failing"

    def __call__(self, outcome: SeedOutcome, worker: str) -> None:
        """One seed came back from `worker`."""
        self.done += 1
        self.failing += outcome.failed
        self.progress.update(self.task, advance=1, detail=self._detail())
        now = time.perf_counter()
        row, seeds, first = self.workers.get(worker, (None, 0, now - outcome.wall_seconds))
        if row is None:
            row = self.progress.add_task(f"  {worker}", total=None, detail="")
        seeds += 1
        per_minute = 60 * seeds / max(1e-9, now - first)
        self.progress.update(row, detail=f"{seeds} seeds · {per_minute:.1f} seeds/min")
        self.workers[worker] = (row, seeds, first)

    def __enter__(self) -> WorkerProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)
