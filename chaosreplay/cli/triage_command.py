"""`chaosreplay triage`: classify, cluster and shrink the failing runs of a folder."""

from __future__ import annotations

import sys
from collections import Counter
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from types import TracebackType

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from chaosreplay.cli.scaleout_options import ray_option
from chaosreplay.runs.sweep import default_jobs
from chaosreplay.triage.baseline import load_report
from chaosreplay.triage.minimize import SHRINK_MEMBERS
from chaosreplay.triage.pipeline import Progress as TriageProgress
from chaosreplay.triage.pipeline import TriageOptions, minimal_dir, triage_folder
from chaosreplay.triage.report import (
    TriageReport,
    json_text,
    print_table,
    to_json,
    write_reports,
)
from chaosreplay.triage.timeline import TIMELINE_EVENTS

REPORT_FILE = "report.json"

_err = Console(stderr=True, highlight=False, soft_wrap=True)


class _Display:
    """A progress bar per phase (reading/replaying, shrinking) on stderr."""

    def __init__(self, enabled: bool) -> None:
        self.progress = Progress(TextColumn("[bold]{task.description}[/]"), BarColumn(),
                                 TextColumn("{task.completed}/{task.total}"),
                                 TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                                 console=_err, transient=True, disable=not enabled)
        self.task: TaskID | None = None

    def callbacks(self) -> TriageProgress:
        """The pipeline's progress callbacks, drawing on this display."""
        return TriageProgress(self.started, self.advanced, self.message)

    def started(self, what: str, total: int) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(what, total=total, detail="")

    def advanced(self, detail: str) -> None:
        if self.task is not None:
            self.progress.update(self.task, advance=1, detail=_cut(detail))

    def message(self, text: str) -> None:
        if self.task is not None:
            self.progress.update(self.task, detail=_cut(text))

    def __enter__(self) -> _Display:
        self.progress.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.progress.__exit__(exc_type, exc, tb)


def _cut(text: str, limit: int = 60) -> str:
    text = text.replace("[", "\\[")  # rich markup: show user text as it is
    return text if len(text) <= limit else text[:limit - 1] + "…"


@click.command()
@click.argument("bugs_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True,
              help="Print the report as JSON on stdout instead of the table.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write report.md, report.json and the minimal runs into this folder.")
@click.option("--baseline", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="An earlier report.json: mark findings new, still present or resolved.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Worker processes for replaying and shrinking  [default: one per CPU].")
@click.option("--no-replay", is_flag=True,
              help="Do not replay the runs (no check for divergences).")
@click.option("--no-shrink", is_flag=True, help="Do not shrink findings to minimal runs.")
@click.option("--shrink-budget", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="Wall seconds to spend shrinking each run  [default: no limit].")
@click.option("--shrink-runs", type=click.IntRange(min=1), default=SHRINK_MEMBERS,
              show_default=True, help="Runs of each finding shrunk; the smallest result is kept.")
@click.option("--timeline", "timeline_events", type=click.IntRange(min=0),
              default=TIMELINE_EVENTS, show_default=True,
              help="Events of each node shown before a failure.")
@click.option("--hang-timeout", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Wall seconds without a VM exit before a replayed node counts as hung.")
@ray_option("the replays and shrinks")
@click.option("--no-progress", is_flag=True, help="No progress display.")
@click.option("--tui", is_flag=True,
              help="Browse the findings and their runs in the debugger instead of the table; "
                   "given a report folder (with report.json), open that report.")
def triage(bugs_dir: Path, as_json: bool, out_dir: Path | None, baseline: Path | None,
           jobs: int | None, no_replay: bool, no_shrink: bool, shrink_budget: float | None,
           shrink_runs: int, timeline_events: int, hang_timeout: float,
           ray_address: str | None, no_progress: bool, tui: bool) -> None:
    """Find the properties the runs under BUGS_DIR broke, and shrink each finding.

    Reads every .ccr below BUGS_DIR (recursively), finds each run's first failure (failed
    always, reached unreachable, crash, hang, an exit status or stderr output the scenario
    does not allow, never-satisfied sometimes/reachable, replay divergence) and groups the
    runs by the property that broke: one finding each, split only on evidence that the
    causes differ. Without --out, minimal runs go to BUGS_DIR/.triage/.

    Exits 0 when no run failed, 1 when there are findings.
    """
    if tui and (bugs_dir / REPORT_FILE).is_file():
        _browse(bugs_dir / REPORT_FILE)
        return
    options = TriageOptions(
        replay=not no_replay, shrink=not no_shrink, jobs=jobs or default_jobs(),
        shrink_budget=shrink_budget, shrink_members=shrink_runs, baseline=baseline,
        out_dir=out_dir, timeline_events=timeline_events, hang_seconds=hang_timeout)
    if jobs is not None and ray_address is not None:
        raise click.UsageError("-j and --ray: the cluster's kvm resources set how many run "
                               "at once")
    with ExitStack() as stack:
        if ray_address is not None:
            from chaosreplay.scaleout.cluster import connected
            from chaosreplay.scaleout.triage import RayTriage

            ray = stack.enter_context(connected(ray_address))
            options = replace(options, backend=RayTriage(ray))
        display = stack.enter_context(_Display(not no_progress and _err.is_terminal))
        report = triage_folder(bugs_dir, options, display.callbacks())
    _warn(report)
    if tui:
        from chaosreplay.tui.triage_app import make_triage_app

        make_triage_app(to_json(report)).run()
    elif as_json:
        click.echo(json_text(report), nl=False)
    else:
        print_table(report, Console(highlight=False))
    if out_dir is not None:
        markdown, data = write_reports(report, out_dir)
        _err.print(f"wrote {markdown} and {data}", markup=False)
    if report.shrunk and any(c.minimal and "path" in c.minimal for c in report.clusters):
        _err.print(f"minimal runs in {minimal_dir(bugs_dir, options)}", markup=False)
    sys.exit(1 if report.clusters else 0)


def _browse(path: Path) -> None:
    """Open a stored report in the browser: nothing is read or run again."""
    from chaosreplay.tui.triage_app import make_triage_app

    make_triage_app(load_report(path)).run()


def _warn(report: TriageReport) -> None:
    """One line per skipped file; notes once per distinct text, with how many runs."""
    for run in report.skipped:
        _err.print(f"chaosreplay: warning: skipped {run.path}: {run.skipped}", markup=False)
    counted: Counter[str] = Counter(n for r in report.runs for n in r.notes)
    for note, count in counted.items():
        runs = f" ({count} runs)" if count > 1 else ""
        _err.print(f"chaosreplay: note: {note}{runs}", markup=False)

