"""`chaosreplay explore`: search fault schedules from checkpoints, guided by coverage."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import click
from rich.console import Console

from chaosreplay.cli.scaleout_options import ray_option
from chaosreplay.errors import ConfigError
from chaosreplay.explore.display import LiveDisplay
from chaosreplay.explore.explorer import ExploreConfig, Explorer
from chaosreplay.explore.report import ExploreReport, compare_markdown
from chaosreplay.runs.sweep import default_jobs
from chaosreplay.sim.demo import demo_scenario
from chaosreplay.sim.programs import resolve_images
from chaosreplay.sim.scenario import Scenario, load_scenario
from chaosreplay.sim.validation import KeyPath, expect_ticks
from chaosreplay.vm.elf import ProgramImage

_err = Console(stderr=True, highlight=False, soft_wrap=True)


def _time_option(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """A duration option (10m, 90s, 500ms, or ms) as ticks."""
    if value is None:
        return None
    name = f"--{param.name}"
    try:
        return expect_ticks(int(value) if value.isdigit() else value, KeyPath(name), minimum=1)
    except ConfigError as exc:
        raise click.BadParameter(str(exc).removeprefix(f"{name}: ")) from None


@click.command()
@click.argument("scenario_file", metavar="[SCENARIO]", required=False,
                type=click.Path(dir_okay=False, path_type=Path))
@click.option("--budget", default="10m", show_default=True, metavar="T",
              callback=_time_option, help="Wall time to explore for (10m, 90s, ...).")
@click.option("--runs", "max_runs", type=click.IntRange(min=1), default=None,
              help="Stop after this many runs (with --jobs 1: a reproducible search).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Runs carried out at once  [default: one per CPU].")
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("explore-out"), show_default=True,
              help="Folder for the report and the failing runs (bugs/, which triage reads).")
@click.option("--seed", type=click.IntRange(min=0, max=2**63 - 1), default=0,
              show_default=True, help="The exploration's seed: every decision derives from it.")
@click.option("--duration", default=None, metavar="T", callback=_time_option,
              help="Override the virtual duration of each run (60s, 500ms, 2m, or ms).")
@click.option("--compare-random", is_flag=True,
              help="Also run a plain seed sweep with the same budget and jobs; compare both.")
@click.option("--hang-timeout", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Wall seconds without a VM exit before a node counts as hung (0: never).")
@ray_option("the runs")
@click.option("--no-progress", is_flag=True, help="No live display.")
def explore(scenario_file: Path | None, budget: int, max_runs: int | None, jobs: int | None,
            out: Path, seed: int, duration: int | None, compare_random: bool,
            hang_timeout: float, ray_address: str | None, no_progress: bool) -> None:
    """Search the scenario's fault schedules (the Raft demo without SCENARIO).

    Runs start from seeds; a run that reaches something new (a first `sometimes`, a new
    assertion outcome, SDK coverage edges, syscall results, message patterns) leaves its
    checkpoint on a frontier, and branches continue from there with a mutated future
    fault schedule. Failing runs are recorded into OUT/bugs; OUT/report.md and
    OUT/report.json describe the search. Exits 0 when no run failed, 1 when one found a
    bug, crash or hang.
    """
    if jobs is not None and ray_address is not None:
        raise click.UsageError("-j and --ray: the cluster's kvm resources set how many run "
                               "at once")
    if compare_random and ray_address is not None:
        raise click.UsageError("--compare-random runs locally: leave out --ray")
    if out.exists() and any(out.iterdir()):
        raise click.UsageError(f"--out {out} exists and is not empty (choose a new folder)")
    scenario = load_scenario(scenario_file) if scenario_file else demo_scenario()
    base_dir = scenario_file.parent if scenario_file else Path.cwd()
    if duration is not None:
        scenario = replace(scenario, duration=duration)
    images = resolve_images(scenario, base_dir)
    config = ExploreConfig(seed=seed, jobs=jobs or default_jobs(), budget_seconds=budget / 1000,
                           max_runs=max_runs, out=out / "bugs", hang_seconds=hang_timeout)
    show = not no_progress and _err.is_terminal
    if ray_address is not None:
        report = _explore_on_ray(ray_address, scenario, images, config, show)
    else:
        with LiveDisplay(_err, show, "exploring") as display:
            report = Explorer(scenario, images, config, on_progress=display).run()
    md, js = report.write(out)
    failed = bool(report.bugs)
    _err.print(f"explored: {report.runs} runs ({report.branches} branches), "
               f"{report.signals} signals, {len(report.bugs)} bug(s) in "
               f"{report.wall_seconds:.1f}s")
    for bug in sorted(report.bugs, key=lambda b: b["first_run"]):
        _err.print(f"  [red]{bug['title']}[/]: first at run {bug['first_run']}, "
                   f"{bug['first_wall_seconds']:.1f}s wall, "
                   f"{bug['first_simulated_seconds']:.1f} simulated s ({bug['hits']} hits)")
    _err.print(f"report: {md} and {js}")
    if report.bugs:
        _err.print(f"  triage: chaosreplay triage {out / 'bugs'}")
    if compare_random:
        sweep_config = replace(config, branching=False, out=out / "random" / "bugs")
        with LiveDisplay(_err, show, "random sweep") as display:
            sweep = Explorer(scenario, images, sweep_config, on_progress=display).run()
        sweep.write(out / "random")
        comparison = out / "compare.md"
        comparison.write_text(compare_markdown(report, sweep))
        click.echo(comparison.read_text(), nl=False)
    sys.exit(1 if failed else 0)


def _explore_on_ray(address: str, scenario: Scenario, images: list[ProgramImage],
                    config: ExploreConfig, show: bool) -> ExploreReport:
    """--ray: the frontier in an actor, the runs as tasks (chaosreplay/scaleout/explore.py)."""
    from chaosreplay.scaleout.cluster import connected
    from chaosreplay.scaleout.explore import ray_explore
    from chaosreplay.scaleout.tasks import Interrupted

    with connected(address) as ray, LiveDisplay(_err, show, "exploring on Ray") as display:
        try:
            return ray_explore(ray, scenario, images, config, display.show)
        except Interrupted as stop:
            _err.print(f"chaosreplay: interrupted: {stop}", markup=False)
            sys.exit(130)
