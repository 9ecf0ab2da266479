"""`chaosreplay record` and `chaosreplay replay`: make a recording, and prove it reproduces."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from chaosreplay.cli.integrity import check_integrity, force_option
from chaosreplay.cli.scaleout_options import WorkerProgress, ray_option
from chaosreplay.errors import ConfigError
from chaosreplay.recording import RecordingReader
from chaosreplay.runs.record_replay import (
    RunOptions,
    describe_part,
    partial_path,
    record_run,
    replay_run,
)
from chaosreplay.runs.sweep import SeedOutcome, default_jobs, parse_seeds, sweep
from chaosreplay.sim.demo import demo_scenario
from chaosreplay.sim.outcome import ended_nodes, failure_details, outcome_words, seconds
from chaosreplay.sim.programs import resolve_images
from chaosreplay.sim.scenario import Scenario, load_scenario
from chaosreplay.sim.simulation import RunResult, Simulation
from chaosreplay.sim.validation import KeyPath, expect_ticks

_err = Console(stderr=True, highlight=False, soft_wrap=True)


def _ticks(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """--duration: 60s, 500ms, 2m or a number of ms."""
    if value is None:
        return None
    try:
        return expect_ticks(int(value) if value.isdigit() else value, KeyPath("--duration"),
                            minimum=1)
    except ConfigError as exc:
        raise click.BadParameter(str(exc).removeprefix("--duration: ")) from None


def _seeds(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        return parse_seeds(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


class _Bar:
    """A progress bar over virtual time, with events and bugs so far."""

    def __init__(self, total_ns: int, enabled: bool, verb: str) -> None:
        self.progress = Progress(
            TextColumn(f"[bold]{verb}[/]"), BarColumn(),
            TextColumn("virtual {task.fields[vt]} / {task.fields[span]}"),
            TextColumn("· {task.fields[events]} events · {task.fields[bugs]}"),
            TimeElapsedColumn(), console=_err, transient=True, disable=not enabled)
        self.task = self.progress.add_task(verb, total=total_ns, vt="0.0s",
                                           span=f"{total_ns / 1e9:.1f}s", events=0,
                                           bugs="no bugs")

    def __call__(self, sim: Simulation) -> None:
        bugs = len(sim.bugs) + len(sim.failures)
        self.progress.update(self.task, completed=min(sim.now_ns, sim.end_ns),
                             vt=f"{sim.now_ns / 1e9:.1f}s", events=f"{sim.event_count:,}",
                             bugs=f"[red]{bugs} bug(s)[/]" if bugs else "no bugs")

    def __enter__(self) -> _Bar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)


def _print_outcome(summary: dict[str, Any], duration: int, tail: str = "") -> None:
    """The verdict line, then which nodes ended how and every failure with its stderr."""
    words = outcome_words(summary, duration)
    verdict, _, rest = words.partition(": ")
    color = "red" if verdict == "FAILED" else "green" if verdict == "passed" else "yellow"
    _err.print(f"[{color}]{verdict}[/]: {escape(rest)}{tail}")
    ended = ended_nodes(summary)
    if ended:
        _err.print(f"nodes ended: {escape(ended)}")
    details = failure_details(summary)
    if len(summary.get("bugs") or []) + len(summary.get("failures") or []) == 1:
        details = details[1:]  # the verdict line said it already; its stderr follows
    for line in details:
        _err.print(escape(line) if line.startswith(" ") else f"[red]{escape(line)}[/]")


def _summary(result: RunResult, scenario: Scenario, wall: float, out: Path) -> None:
    virtual = result.end_tick / 1000
    speed = f"{virtual / wall:.1f}x real time" if wall > 0 else ""
    _print_outcome(result.summary(), scenario.duration,
                   f" · {scenario.node_count} nodes · seed {scenario.seed} · "
                   f"{result.events:,} events · virtual {seconds(result.end_tick)} · "
                   f"wall {wall:.2f}s ({speed})")
    net = result.network
    dropped = sum(net.get("dropped", {}).values())
    _err.print(f"network: {net.get('sent', 0)} sent, {net.get('delivered', 0)} delivered, "
               f"{dropped} dropped, {net.get('corrupted', 0)} corrupted, "
               f"{net.get('duplicated', 0)} duplicated")
    for item in result.unsatisfied:
        _err.print(f"[yellow]never satisfied[/]: {item['assert_kind']} \"{item['message']}\" "
                   f"({item['file']}:{item['line']})")
    root = click.get_current_context().find_root().command
    commands = getattr(root, "commands", {})
    _err.print(f"recorded {out}\n  replay: chaosreplay replay {out}")
    if "debug" in commands:  # the debugger is its own issue; name it only once it exists
        _err.print(f"  debug:  chaosreplay debug {out}")
    _err.print(f"  events: chaosreplay events {out} --kind bug")


no_fast_path_option = click.option(
    "--no-fast-path", is_flag=True,
    help="Every system call exits to the VMM (the guest answers no clock or id call itself; "
         "the run is the same either way, only slower).")


@click.command()
@click.argument("scenario_file", metavar="[SCENARIO]", required=False,
                type=click.Path(dir_okay=False, path_type=Path))
@click.option("--seed", type=click.IntRange(min=0, max=2**64 - 1), default=None,
              help="Override the scenario's seed.")
@click.option("--duration", default=None, metavar="T", callback=_ticks,
              help="Override the virtual duration (60s, 500ms, 2m, or ms).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("run.ccr"), show_default=True, help="Where to write the recording.")
@click.option("--keep-going", is_flag=True,
              help="Run to the end even after a bug, crash or hang.")
@click.option("--hang-timeout", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Wall seconds without a VM exit before a node counts as hung (0: never).")
@click.option("--seeds", "seed_list", callback=_seeds, metavar="SEEDS",
              help="Run many seeds (1-500, 1,5,9-12) instead of one; prints a table.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Worker processes for --seeds  [default: one per CPU].")
@click.option("--keep-failing", type=click.Path(file_okay=False, path_type=Path),
              help="With --seeds: keep the recordings of failing seeds in this folder.")
@ray_option("the seeds of --seeds")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@no_fast_path_option
def record(scenario_file: Path | None, seed: int | None, duration: int | None, output: Path,
           keep_going: bool, hang_timeout: float, seed_list: list[int] | None,
           jobs: int | None, keep_failing: Path | None, ray_address: str | None,
           no_progress: bool, no_fast_path: bool) -> None:
    """Run a simulation and record it (the 3-node Raft demo without SCENARIO).

    With --seeds, run every seed (in parallel) and keep only failing recordings.
    Exits 0 when no run found a failure, 1 when one found a bug, a crash, a hang or
    a node exit its scenario does not expect (expect_exit), 130 on Ctrl-C.
    """
    if seed_list is None and (jobs is not None or keep_failing is not None
                              or ray_address is not None):
        raise click.UsageError("-j, --keep-failing and --ray go with --seeds")
    if jobs is not None and ray_address is not None:
        raise click.UsageError("-j and --ray: the cluster's kvm resources set how many run "
                               "at once")
    scenario = load_scenario(scenario_file) if scenario_file else demo_scenario()
    base_dir = scenario_file.parent if scenario_file else Path.cwd()
    if seed is not None:
        scenario = scenario.with_seed(seed)
    if duration is not None:
        scenario = scenario.with_duration(duration)
    images = resolve_images(scenario, base_dir)
    if seed_list is not None and ray_address is not None:
        _record_seeds_on_ray(ray_address, scenario, images, seed_list, keep_failing,
                             keep_going, hang_timeout, not no_progress and _err.is_terminal)
        return
    if seed_list is not None:
        _record_seeds(scenario, images, seed_list, jobs or default_jobs(), keep_failing,
                      keep_going, hang_timeout, not no_progress and _err.is_terminal)
        return
    options = RunOptions(keep_going=keep_going, hang_seconds=hang_timeout,
                         fast_path=not no_fast_path)
    started = time.perf_counter()
    show = not no_progress and _err.is_terminal
    try:
        with _Bar(scenario.duration_ns, show, "recording") as bar:
            result = record_run(scenario, images, output, options, on_progress=bar)
    except KeyboardInterrupt:
        partial = partial_path(output)
        left = (f": the run so far is left in {partial} (info, events and replay read it up "
                "to its last whole frame)" if partial.exists() else "")
        _err.print(f"chaosreplay: interrupted{escape(left)}")
        sys.exit(130)
    _summary(result, scenario, time.perf_counter() - started, output)
    sys.exit(1 if result.failed else 0)


def _record_seeds(scenario: Scenario, images: list[Any], seeds: list[int], jobs: int,
                  keep_failing: Path | None, keep_going: bool, hang_timeout: float,
                  show: bool) -> None:
    """--seeds: every seed, a table of outcomes, the failing recordings kept."""
    started = time.perf_counter()
    progress = Progress(TextColumn("[bold]seeds[/]"), BarColumn(),
                        TextColumn("{task.completed}/{task.total} · {task.fields[failing]} "
                                   "failing"), TimeElapsedColumn(), console=_err,
                        transient=True, disable=not show)
    failing = 0
    with progress:
        task = progress.add_task("seeds", total=len(seeds), failing=0)

        def advance(outcome: SeedOutcome) -> None:
            nonlocal failing
            failing += outcome.failed
            progress.update(task, advance=1, failing=failing)

        outcomes = sweep(scenario, images, seeds, jobs, keep_failing, hang_timeout, keep_going,
                         advance)
    _print_seeds(outcomes, f"{time.perf_counter() - started:.1f}s wall · {jobs} jobs")


def _record_seeds_on_ray(address: str, scenario: Scenario, images: list[Any],
                         seeds: list[int], keep_failing: Path | None, keep_going: bool,
                         hang_timeout: float, show: bool) -> None:
    """--seeds --ray: the same sweep as Ray tasks (chaosreplay/scaleout/sweep.py)."""
    from chaosreplay.scaleout.cluster import connected
    from chaosreplay.scaleout.sweep import ray_sweep
    from chaosreplay.scaleout.tasks import Interrupted

    started = time.perf_counter()
    with connected(address) as ray:
        workers = 0
        try:
            with WorkerProgress(_err, len(seeds), show) as progress:
                outcomes = ray_sweep(ray, scenario, images, seeds, keep_failing, hang_timeout,
                                     keep_going, progress)
                workers = len(progress.workers)
        except Interrupted as stop:
            _err.print(f"chaosreplay: interrupted: {stop}", markup=False)
            sys.exit(130)
    _print_seeds(outcomes, f"{time.perf_counter() - started:.1f}s wall · Ray, "
                           f"{workers} workers")


def _print_seeds(outcomes: list[SeedOutcome], how: str) -> None:
    """The sweep's summary line and a line per failing seed (every seed up to 50)."""
    failing = sum(o.failed for o in outcomes)
    # Plain lines, not a table: a verdict must never be cut or wrapped mid-message.
    click.echo(f"{len(outcomes)} seeds · {failing} failing · {how}")
    for o in outcomes:
        if o.failed or len(outcomes) <= 50:
            words = o.outcome or ("FAILED: " if o.failed else "passed: ") + (
                o.signature or o.reason)
            kept = f" · recording {o.recording}" if o.recording else ""
            click.echo(f"seed {o.seed}: {words} · ended at {seconds(o.end_tick)}{kept}")
    if len(outcomes) > 50:
        click.echo("(passing seeds are left out of lists over 50 seeds)")
    sys.exit(1 if failing else 0)


@click.command()
@click.argument("recording", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--hang-timeout", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Wall seconds without a VM exit before a node counts as hung (0: never).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@force_option
@no_fast_path_option
def replay(recording: Path, hang_timeout: float, no_progress: bool, force: bool,
           no_fast_path: bool) -> None:
    """Re-run RECORDING from its manifest and check every event and checkpoint digest.

    Exits 0 when the replay is identical, 1 at the first divergence, 2 when the
    recording is damaged (see verify) and there is no --force.
    """
    check_integrity(recording, force, "replay it")
    started = time.perf_counter()
    show = not no_progress and _err.is_terminal
    with RecordingReader(recording) as reader:
        total = reader.last_tick or 0
    with _Bar(max(1, total) * 1_000_000, show, "replaying") as bar:
        report = replay_run(recording, on_progress=bar, hang_seconds=hang_timeout,
                            fast_path=not no_fast_path)
    wall = time.perf_counter() - started
    checked = (f"{report.events_checked:,} events and {report.checkpoints_checked} "
               f"checkpoints")
    if report.identical:
        note = "" if report.complete_recording else " (the recording is incomplete: its " \
            "events so far)"
        _err.print(f"[green]identical[/]: {checked} match{note} · wall {wall:.2f}s")
        if report.outcome is not None:
            _print_outcome(report.outcome, report.duration, " (the run it reproduces)")
        sys.exit(0)
    d = report.divergence
    if d is not None:
        _err.print(f"[red]diverged[/] at event {d.seq} (tick {d.tick}, node {d.node}) after "
                   f"{report.events_checked:,} identical events")
        _err.print(f"  expected: {_event_text(d.expected)}")
        _err.print(f"  actual:   {_event_text(d.actual)}")
    if report.state_differs:
        parts = ", ".join(describe_part(p) for p in report.state_differs)
        _err.print(f"[red]state differs[/] at the checkpoint of tick {report.state_checked_at}:"
                   f" {parts}")
    elif d is not None:
        _err.print("  (no later checkpoint to compare the state at)")
    sys.exit(1)


def _event_text(event: Any) -> str:
    if event is None:
        return "(no event)"
    if isinstance(event, tuple):
        tick, _, node, kind, fields = event
    else:
        tick, node, kind, fields = event.tick, event.node, event.kind, event.fields
    text = f"tick {tick} node {node} {kind} {fields!r}"
    return text if len(text) < 300 else text[:297] + "..."


COMMANDS = [record, replay]
