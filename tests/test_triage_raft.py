"""Acceptance: triage tells the Raft demo's planted bugs apart (KVM).

Seed sweeps of each variant keep their failing runs in bugs/<variant>/; one triage of the
whole bugs/ folder must find every planted bug, cluster each variant's failures apart from
the other variants', show which assertions each variant breaks, and find nothing of the
correct variant.

How the seeds were chosen (runs are deterministic, and random faults are drawn in time
order, so a shorter run is a prefix of a longer one): a sweep of seeds 0-29 at 15 virtual
seconds for every variant, then the seeds whose first failure comes before 7 s. Seeds 1, 19
and 25 at 7 s catch no_truncate, stale_term, no_step_down and early_commit, all three each
(at 4.5-6 s); the same seeds make the variants' failures meet the same fault schedules, the
hardest case for telling them apart. double_vote fails early (median 0.2 s,
benchmarks/README.md) but on few seeds: 3, 76, 112, 117, 143 and 152 of seeds 0-199 at 3 s,
all before 0.26 s, so it runs 1 s. figure8 needs the targeted schedule
examples/raft-figure8.toml, which catches it with seeds 1, 2 and 11 (docs/demo.md). The
slow test below sweeps far more seeds.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from chaosreplay.cli import main
from chaosreplay.runs.sweep import sweep
from chaosreplay.sim.demo import demo_scenario
from chaosreplay.sim.programs import resolve_images
from chaosreplay.sim.scenario import Scenario, load_scenario

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SEEDS = [1, 19, 25]
ELECTION = "election safety: at most one leader per term"
COMPLETENESS = "leader completeness: a leader's log holds every committed entry"
TRUNCATED = "committed entries are never truncated or overwritten"
TERMS = "log terms never decrease along the log"
APPLY = "state-machine safety: nodes apply the same command at each index"
# variant -> (schedule, duration in ms, seeds, the assertions it breaks on those seeds)
SWEEPS: dict[str, tuple[str, int, list[int], set[str]]] = {
    "correct": ("demo", 7000, SEEDS, set()),
    "double_vote": ("demo", 1000, [3, 76], {ELECTION}),
    "no_truncate": ("demo", 7000, SEEDS, {TERMS}),
    "stale_term": ("demo", 7000, SEEDS, {TRUNCATED}),
    "no_step_down": ("demo", 7000, SEEDS, {ELECTION, COMPLETENESS}),
    "early_commit": ("demo", 7000, SEEDS, {APPLY}),
    "figure8": ("figure8", 10000, [1, 2], {COMPLETENESS}),
    "correct-figure8": ("figure8", 10000, [1], set()),
}


def _scenario(schedule: str, variant: str, duration: int) -> Scenario:
    base = demo_scenario() if schedule == "demo" else load_scenario(
        EXAMPLES / "raft-figure8.toml")
    group = replace(base.nodes[0], args=(variant.removesuffix("-figure8"),))
    return replace(base, nodes=(group,), duration=duration)


@dataclass
class Triaged:
    """What one triage of the swept variants found."""

    report: dict[str, Any]
    markdown: str
    breaks: dict[str, set[str]]  # variant -> the assertions its clusters name
    mixed: list[tuple[str, list[str], dict[str, int]]]  # (message, faults, runs per variant)
    seconds: tuple[float, float]  # sweeping, triage (with replay)


def _sweep_and_triage(tmp_path: Path,
                      sweeps: dict[str, tuple[str, int, list[int], set[str]]]) -> Triaged:
    """Sweep each variant into bugs/<variant>/, then triage bugs/ through the CLI."""
    bugs = tmp_path / "bugs"
    started = time.perf_counter()
    images = resolve_images(demo_scenario(), EXAMPLES)
    for variant, (schedule, duration, seeds, _) in sweeps.items():
        outcomes = sweep(_scenario(schedule, variant, duration), images, seeds, jobs=2,
                         keep_failing=bugs / variant)
        failing = [o.seed for o in outcomes if o.failed]
        if variant.startswith("correct"):
            assert not failing, f"{variant} failed seeds {failing}"
        else:
            assert failing, f"{variant}: no seed of {seeds} failed"
    swept = time.perf_counter() - started
    result = CliRunner().invoke(main, ["triage", str(bugs), "--json", "--out",
                                       str(tmp_path / "report"), "-j", "2", "--no-shrink",
                                       "--no-progress"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    breaks: dict[str, set[str]] = defaultdict(set)
    mixed = []
    for cluster in report["clusters"]:
        runs = Counter(Path(run["path"]).parent.name for run in cluster["runs"])
        for variant in runs:
            breaks[variant].add(cluster["message"])
        if len(runs) > 1:
            mixed.append((cluster["message"], cluster["faults"], dict(runs)))
    markdown = (tmp_path / "report" / "report.md").read_text()
    return Triaged(report, markdown, dict(breaks), mixed,
                   (swept, time.perf_counter() - started - swept))


def _check_found(triaged: Triaged, sweeps: dict[str, tuple[str, int, list[int], set[str]]],
                 ) -> None:
    """Every bug found with the assertions it breaks; nothing from correct; no divergence."""
    report = triaged.report
    assert report["skipped"] == [] and not report["notes"], report["notes"]
    assert all(c["class"] != "divergence" for c in report["clusters"]), "a replay diverged"
    assert triaged.breaks == {v: s[3] for v, s in sweeps.items() if s[3]}, triaged.breaks
    message_of = {c["key"]: c["message"] for c in report["clusters"]}
    by_folder = {v: {message_of[s["clusters"][0]] for s in report["signatures"]
                     if v in s["folders"]} for v in triaged.breaks}
    assert by_folder == triaged.breaks, "the signatures' runs by folder disagree with clusters"
    for variant, messages in triaged.breaks.items():
        for message in messages:
            assert message in triaged.markdown and f"{variant} ×" in triaged.markdown
    print(f"\nsweeps {triaged.seconds[0]:.1f}s, triage with replay {triaged.seconds[1]:.1f}s,"
          f" {report['totals']}; mixed clusters: {triaged.mixed}")


@pytest.mark.kvm
def test_triage_tells_the_planted_raft_bugs_apart(tmp_path: Path) -> None:
    """Every planted bug is found; no cluster mixes variants; correct yields nothing."""
    triaged = _sweep_and_triage(tmp_path, SWEEPS)
    _check_found(triaged, SWEEPS)
    assert not triaged.mixed, f"clusters mixing variants: {triaged.mixed}"


# Seeds 0-59 at 15 s, measured: the assertions each variant breaks over that many runs.
WIDE = list(range(60))
WIDE_SWEEPS: dict[str, tuple[str, int, list[int], set[str]]] = {
    "correct": ("demo", 15000, WIDE, set()),
    "double_vote": ("demo", 15000, WIDE, {ELECTION}),
    "no_truncate": ("demo", 15000, WIDE, {TERMS}),
    "stale_term": ("demo", 15000, WIDE, {TRUNCATED}),
    "no_step_down": ("demo", 15000, WIDE, {ELECTION, COMPLETENESS}),
    "early_commit": ("demo", 15000, WIDE, {APPLY, TRUNCATED}),
    "figure8": ("figure8", 10000, list(range(20)), {COMPLETENESS}),
    "correct-figure8": ("figure8", 10000, list(range(20)), set()),
}


@pytest.mark.slow
@pytest.mark.kvm
def test_triage_over_a_wide_sweep(tmp_path: Path) -> None:
    """60 seeds of every variant (about 6 minutes on 2 cores): every bug is found, and a
    cluster mixes variants only where they break the same assertion under the same faults.

    The fault pattern does not always tell such variants apart: measured, 3 of 45 clusters
    mix runs — double_vote and no_step_down (election safety after a pause), stale_term and
    early_commit (committed entries overwritten under a partition with reordering or
    duplication). They are listed in the output rather than hidden.
    """
    triaged = _sweep_and_triage(tmp_path, WIDE_SWEEPS)
    _check_found(triaged, WIDE_SWEEPS)
    for message, faults, runs in triaged.mixed:
        sharing = [v for v in runs if message in WIDE_SWEEPS[v][3]]
        assert sorted(sharing) == sorted(runs), (message, faults, runs)
