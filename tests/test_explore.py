"""`chaosreplay explore` on real guests: reproducible searches, failing branches that
replay, coverage that grows, guests without coverage, and the SDK's coverage bitmap."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from chaosreplay.cli import main
from chaosreplay.explore.coverage import edges, read_bitmap
from chaosreplay.explore.explorer import ExploreConfig, Explorer
from chaosreplay.explore.report import ExploreReport
from chaosreplay.explore.runner import BranchPoint, Outcome, Readers, RunJob, Task, run_task
from chaosreplay.kernel import sdk_abi
from chaosreplay.recording import RecordingReader, RecordingWriter
from chaosreplay.runs.record_replay import replay_run
from chaosreplay.runs.schedules import run_faults
from chaosreplay.sim.checkpoint import stored_parts
from chaosreplay.sim.demo import demo_scenario
from chaosreplay.sim.faults.model import Fault, FaultKind
from chaosreplay.sim.programs import resolve_images
from chaosreplay.sim.scenario import Scenario, load_scenario, loads_scenario
from chaosreplay.sim.simulation import Simulation

pytestmark = pytest.mark.kvm

REPO = Path(__file__).resolve().parent.parent
FIGURE8 = REPO / "examples" / "raft-figure8.toml"


def _figure8() -> tuple[Scenario, list]:
    """The targeted Figure 8 schedule, 7 s: it fails at tick 6270, and branches from its
    checkpoints fail again when their edits leave the sequence alone."""
    scenario = replace(load_scenario(FIGURE8), duration=7000)
    return scenario, resolve_images(scenario, FIGURE8.parent)


def _explore(out: Path | None, seed: int = 0, runs: int = 5, jobs: int = 1,
             scenario: tuple[Scenario, list] | None = None) -> ExploreReport:
    scenario_, images = scenario or _figure8()
    config = ExploreConfig(seed=seed, jobs=jobs, max_runs=runs, out=out, branch_horizon=3000)
    return Explorer(scenario_, images, config).run()


@pytest.fixture(scope="module")
def explored(tmp_path_factory: pytest.TempPathFactory) -> tuple[ExploreReport, Path]:
    out = tmp_path_factory.mktemp("explore") / "bugs"
    return _explore(out), out


def test_one_job_and_a_seed_make_the_same_search(
        explored: tuple[ExploreReport, Path]) -> None:
    """Two explorations with --seed 0 --jobs 1 decide the same runs (seeds, branch points,
    edits) and find the same bugs at the same runs; another seed decides otherwise."""
    first, _ = explored
    again = _explore(None)
    assert again.decisions == first.decisions
    assert [(b["key"], b["first_run"], b["hits"]) for b in again.bugs] == \
        [(b["key"], b["first_run"], b["hits"]) for b in first.bugs]
    assert first.bugs and first.branches > 0, first.decisions
    other = _explore(None, seed=7, runs=3)
    assert [d.edits for d in other.decisions] != [d.edits for d in first.decisions[:3]]


def test_failing_branches_are_saved_as_recordings_that_replay(
        explored: tuple[ExploreReport, Path]) -> None:
    """Every saved failing run replays identically from scratch; a branch's manifest holds
    its whole edited schedule and where it branched."""
    report, out = explored
    saved = sorted(out.glob("*.ccr"))
    assert saved and not list(out.glob("*.partial")), sorted(out.iterdir())
    branches = reseeded = 0
    for path in saved:
        replayed = replay_run(path)
        assert replayed.identical, (path.name, replayed.divergence, replayed.state_differs)
        with RecordingReader(path) as reader:
            parent = reader.manifest["parent"]["explore"]
            schedule = reader.manifest["scenario"]["faults"]["schedule"]
            assert reader.manifest["scenario"]["faults"].get("random") is None
        if parent["from_run"] is not None:
            branches += 1
            reseeded += any(f["kind"] == "reseed" for f in schedule)
            assert parent["branch_tick"] > 0 and parent["edits"], parent
            decision = next(d for d in report.decisions if d.run == parent["run"])
            assert decision.start_tick == parent["branch_tick"] and decision.bug
        assert schedule, "the manifest holds the explicit schedule"
    assert branches > 0, "some saved failure is a branch, not the root run"
    assert reseeded > 0, "a saved branch's schedule holds the reseed it diverged by"
    for bug in report.bugs:
        assert all(bug["reproduced"]), bug  # recorded from scratch, it failed the same way


def test_a_branch_is_a_function_of_its_checkpoint_and_reseed_and_diverges(
        tmp_path: Path) -> None:
    """From one checkpoint, two children with the same reseed (and nothing else) are the same
    run; one with another reseed seed is another; and a child without a reseed is its
    parent's own future (so without the reseed, children of one moment would not diverge)."""
    scenario, images = _figure8()
    job, readers = RunJob(scenario, images), Readers()
    faults = tuple(run_faults(scenario))
    root = run_task(job, readers, Task(1, scenario.seed, faults, None, str(tmp_path / "r.ccr")))
    assert root.error is None and root.gate is not None
    tick, state = next((t, s) for t, s in root.checkpoints if t >= root.gate + 1000)
    start = BranchPoint(str(tmp_path / "r.ccr"), tick, state, root.maps)

    def child(number: int, reseed: int | None) -> Outcome:
        extra = () if reseed is None else (
            Fault(FaultKind.RESEED, tick - root.gate + 1, params=(("seed", reseed),)),)
        outcome = run_task(job, readers, Task(number, scenario.seed, faults + extra, start,
                                              str(tmp_path / f"c{number}.ccr")))
        assert outcome.error is None, outcome.error
        return outcome

    try:
        same, first, again, other = child(2, None), child(3, 7), child(4, 7), child(5, 8)
    finally:
        readers.close()
    assert same.summary == root.summary and same.end_tick == root.end_tick
    assert (first.summary, first.signals) == (again.summary, again.signals)
    assert first.summary != root.summary, "the reseeded child diverged from its parent"
    assert (first.summary, first.signals) != (other.summary, other.signals)


def test_reading_coverage_at_checkpoints_does_not_change_the_run(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An explorer run (syscall tracing, the collector, bitmap reads at every checkpoint)
    has, at every checkpoint, the state of a plain run of the same schedule — every part
    but the controller's event counter, which counts the traced syscalls too."""
    scenario, images = _figure8()
    scenario = replace(scenario, checkpoint_interval=500)
    plain_parts: list[tuple[int, dict]] = []
    plain = Simulation(scenario, images, trace_syscalls=False,
                       on_checkpoint=lambda c: plain_parts.append((c.tick, c.parts))).run()
    seen: list[tuple[int, dict]] = []
    original = RecordingWriter.add_checkpoint

    def spy(self, tick, seq, digest, blobs, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append((tick, stored_parts(blobs)))
        return original(self, tick, seq, digest, blobs, *args, **kwargs)

    monkeypatch.setattr(RecordingWriter, "add_checkpoint", spy)
    task = Task(1, scenario.seed, tuple(run_faults(scenario)), None, str(tmp_path / "r.ccr"))
    outcome = run_task(RunJob(scenario, images), Readers(), task)
    assert outcome.error is None and len(seen) == len(plain_parts) > 5
    for (tick, mine), (plain_tick, theirs) in zip(seen, plain_parts, strict=True):
        differ = sorted(k for k in set(mine) | set(theirs)
                        if k != "controller" and mine.get(k) != theirs.get(k))
        assert tick == plain_tick and not differ, (tick, differ)
    assert outcome.summary is not None and outcome.summary["bugs"] == plain.summary()["bugs"]
    assert outcome.end_tick == plain.end_tick


def test_sdk_coverage_and_the_vmm_signal_both_grow_on_the_demo(guest_bin) -> None:
    """On the demo built with CR_COVERAGE (raft_cov), the first run covers SDK edges and VMM
    signals, and later runs add to both."""
    base = demo_scenario()
    covered = str(guest_bin("musl", "raft_cov"))
    scenario = replace(base, duration=3000,
                       nodes=tuple(replace(g, program=covered) for g in base.nodes))
    images = resolve_images(scenario, REPO)
    report = _explore(None, seed=1, runs=4, scenario=(scenario, images))
    first, last = report.progress[0], report.progress[-1]
    assert first.edges > 50, first
    assert first.signals - first.edges > 50, first
    assert last.edges > first.edges, report.progress
    assert last.signals - last.edges > first.signals - first.edges, report.progress
    assert report.signal_kinds.get("sometimes", 0) >= 2, report.signal_kinds


def _build_raft_without_coverage(directory: Path) -> Path:
    compiler = shutil.which("musl-gcc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler")
    binary = directory / "raft"
    subprocess.run([compiler, "-static", "-O2", "-std=gnu11", f"-I{REPO / 'guest/include'}",
                    "-o", str(binary), str(REPO / "guest/src/raft.c")], check=True)
    return binary


def test_a_guest_without_coverage_still_explores(tmp_path: Path) -> None:
    """Without the SDK bitmap there are no edges, but the VMM's own signal still finds new
    behaviour, makes frontier entries and branches from them."""
    binary = _build_raft_without_coverage(tmp_path)
    text = FIGURE8.read_text().replace('program = "builtin:demo"', f'program = "{binary}"')
    scenario = replace(loads_scenario(text), duration=7000)
    images = resolve_images(scenario, tmp_path)
    report = _explore(None, runs=4, scenario=(scenario, images))
    assert report.signal_kinds.get("edge", 0) == 0, report.signal_kinds
    assert report.signals > 100 and report.frontier_total > 0 and report.branches > 0
    assert report.bugs, "the figure8 schedule fails without coverage too"


COVERAGE_PROGRAM = r"""
#include "chaosreplay.h"
static int branchy(int x) { return x > 3 ? x * 2 : x + 1; }
int main(int argc, char **argv) {
    (void)argv;
    int edges = 0;
    for (int i = 0; i < CR_COVERAGE_MAP_SIZE; i++)
        edges += cr_coverage_map[i] != 0;
    printf("%d %d\n", branchy(argc), edges > 0);
    return 0;
}
"""


def test_the_sdk_registers_its_bitmap_and_is_a_no_op_natively(tmp_path: Path) -> None:
    """A CR_COVERAGE build counts edges in its own memory, registers the bitmap under the
    simulator (read without populating pages) and runs natively as before."""
    compiler = shutil.which("gcc")
    if compiler is None:
        pytest.skip("gcc is not installed")
    source = tmp_path / "cov.c"
    source.write_text(COVERAGE_PROGRAM)
    binary = tmp_path / "cov"
    subprocess.run([compiler, "-static", "-O2", "-std=gnu11", "-Wall", "-Wextra", "-Werror",
                    f"-I{REPO / 'guest/include'}", "-DCR_COVERAGE",
                    "-fsanitize-coverage=trace-pc", "-o", str(binary), str(source)], check=True)
    native = subprocess.run([str(binary)], capture_output=True, text=True, check=True)
    assert native.stdout == "2 1\n", native
    scenario = loads_scenario(f'duration = "1s"\n[[nodes]]\nprogram = "{binary}"\n')
    sim = Simulation(scenario, resolve_images(scenario, tmp_path), trace_syscalls=True)
    registrations: list[dict] = []
    sim.sink = lambda tick, vt, node, kind, fields: registrations.append(fields) if (
        kind == "syscall" and fields["nr"] == sdk_abi.CR_SYS_COVERAGE) else None
    result = sim.run()
    assert result.reason == "all nodes ended" and not result.failed
    assert [r["ret"] for r in registrations] == [0], registrations
    address, size = sim.nodes[0].process.coverage_map  # type: ignore[attr-defined]
    assert size == sdk_abi.CR_COVERAGE_MAP_DEFAULT and address == registrations[0]["args"][0]
    bitmap = read_bitmap(sim, 0)
    assert bitmap is not None and sum(1 for b in bitmap if b) == len(edges(sim)) > 3
    assert bytes(sim.nodes[0].process.stdout) == b"2 1\n"


def test_cli_explore_writes_reports_and_recordings_triage_reads(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["explore", str(FIGURE8), "--runs", "2", "-j", "1", "--duration", "7s",
            "-o", str(out), "--no-progress", "--budget", "5m"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output  # a bug was found
    assert (out / "report.md").read_text().startswith("# Exploration")
    assert "leader completeness" in (out / "report.json").read_text()
    assert list((out / "bugs").glob("*.ccr")), sorted(out.rglob("*"))
    triage = CliRunner().invoke(main, ["triage", str(out / "bugs"), "--no-shrink",
                                       "--no-replay"])
    assert triage.exit_code in (0, 1) and "leader completeness" in triage.output, triage.output
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "not empty" in again.output, again.output


def test_cli_compare_random_reports_both_searches(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [
        "explore", str(FIGURE8), "--runs", "2", "-j", "1", "--duration", "7s", "-o", str(out),
        "--no-progress", "--compare-random"])
    assert result.exit_code == 1, result.output
    compare = (out / "compare.md").read_text()
    assert "| distinct signals |" in compare and "random sweep" in compare, compare
    assert (out / "random" / "report.json").exists()
    assert compare in result.output


def test_two_jobs_take_outcomes_in_decision_order(tmp_path: Path) -> None:
    """With two workers the runs are numbered in decision order and the search is as
    reproducible as with one (the same decisions twice)."""
    first = _explore(None, runs=4, jobs=2)
    again = _explore(None, runs=4, jobs=2)
    assert [d.run for d in first.decisions] == [1, 2, 3, 4]
    assert first.decisions == again.decisions and first.bugs[0]["first_run"] == 1


@pytest.mark.slow
def test_explore_finds_figure8_without_the_targeted_schedule(tmp_path: Path) -> None:
    """The demo's random faults on the `figure8` variant: the explorer hits the bug within
    a budget of 900 runs (2 jobs, seed 1: the same decisions every time). It did not
    before the programs had a vDSO (their streams, and so the signals, changed); this
    was a strict xfail until it passed (about 15 min here)."""
    base = demo_scenario()
    scenario = replace(base, nodes=(replace(base.nodes[0], args=("figure8",)),),
                       duration=20_000)
    images = resolve_images(scenario, REPO)
    config = ExploreConfig(seed=1, jobs=2, max_runs=900, out=tmp_path / "bugs")
    explorer = Explorer(scenario, images, config)
    report = explorer.run()
    titles = [b["title"] for b in report.bugs]
    assert any("leader completeness" in t or "never truncated" in t or "state-machine" in t
               for t in titles), (titles, report.runs)
