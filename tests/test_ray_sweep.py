"""record --seeds --ray: the same failing seeds and byte-identical recordings as -j 2, no
seed lost when a worker dies, one-line refusals, and no Ray import without --ray."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import ray_cluster
from click.testing import CliRunner

from chaosreplay.cli import main

SEEDS = range(1, 41)  # no_truncate at 7 s fails on 1, 19, 25, 30 and 31 of these


@dataclass
class LocalSweep:
    """The planted-bug scenario and its 40 seeds swept locally with -j 2."""

    toml: Path
    bugs: Path
    failing: list[int]


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory: pytest.TempPathFactory) -> LocalSweep:
    """`record my-raft.toml --seeds 1-40 -j 2 --keep-failing bugs/`, once per module."""
    folder = tmp_path_factory.mktemp("local")
    toml = ray_cluster.planted_bug_toml(folder)
    run = ray_cluster.cli("record", str(toml), "--seeds", "1-40", "-j", "2", "--keep-failing",
                          str(folder / "bugs"), "--no-progress", cwd=folder)
    assert run.returncode == 1, run.stdout + run.stderr
    failing = sorted(int(p.stem.removeprefix("seed-")) for p in (folder / "bugs").iterdir())
    assert failing, run.stdout
    return LocalSweep(toml, folder / "bugs", failing)


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A 2-CPU head node with 2 units of kvm, shared by the module's tests."""
    ray_cluster.ray_or_skip()
    with ray_cluster.head_node() as address:
        yield address


def _failing_lines(stdout: str) -> list[int]:
    return sorted(int(line.split(":")[0].removeprefix("seed "))
                  for line in stdout.splitlines() if "FAILED" in line)


@pytest.mark.kvm
def test_ray_sweep_at_an_address_matches_a_local_sweep_byte_for_byte(local_sweep, cluster,
                                                                     tmp_path):
    """40 seeds over --ray ADDRESS: the failing seeds of -j 2, the same recordings' bytes."""
    run = ray_cluster.cli("record", str(local_sweep.toml), "--seeds", "1-40",
                          "--keep-failing", str(tmp_path / "bugs"), "--no-progress",
                          "--ray", cluster, cwd=tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    assert _failing_lines(run.stdout) == local_sweep.failing, run.stdout
    kept = sorted(p.name for p in (tmp_path / "bugs").iterdir())
    assert kept == sorted(p.name for p in local_sweep.bugs.iterdir())
    for name in kept:
        assert (tmp_path / "bugs" / name).read_bytes() == (local_sweep.bugs / name).read_bytes(), \
            f"{name} differs from the local sweep's recording"


def _sweep_at(address: str, scenario: Any, images: list[Any], seeds: list[int],
              keep: Path, on_outcome: Any) -> list[Any]:
    """ray_sweep in this process, connected to the cluster at address for the sweep."""
    import ray

    from chaosreplay.scaleout.cluster import connected
    from chaosreplay.scaleout.sweep import ray_sweep

    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    try:
        with connected(address) as connected_ray:
            return ray_sweep(connected_ray, scenario, images, seeds, keep,
                             on_outcome=on_outcome)
    finally:
        ray.shutdown()


@pytest.mark.kvm
def test_killing_a_worker_mid_sweep_loses_no_seed_and_counts_none_twice(local_sweep, cluster,
                                                                        tmp_path):
    """The worker that ran the first seed is killed (SIGKILL by pid) while it runs the next:
    every seed still comes back exactly once, with the local sweep's verdicts."""
    from chaosreplay.sim.programs import resolve_images
    from chaosreplay.sim.scenario import load_scenario

    scenario = load_scenario(local_sweep.toml)
    images = resolve_images(scenario, local_sweep.toml.parent)
    seen: Counter[int] = Counter()
    workers: list[str] = []
    killed: list[int] = []

    def on_outcome(outcome, worker: str) -> None:
        seen[outcome.seed] += 1
        workers.append(worker)
        if not killed:
            pid = int(worker.rsplit(":", 1)[1])
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    seeds = list(range(1, 13))
    outcomes = _sweep_at(cluster, scenario, images, seeds, tmp_path / "bugs", on_outcome)
    assert killed, "no worker was killed"
    assert sorted(seen) == seeds and set(seen.values()) == {1}, seen
    assert [o.seed for o in outcomes] == seeds
    assert [o.seed for o in outcomes if o.failed] == [s for s in local_sweep.failing
                                                      if s in seeds]
    assert not any(o.error for o in outcomes), [o.error for o in outcomes if o.error]
    later = {w.rsplit(":", 1)[1] for w in workers[1:]}
    assert str(killed[0]) not in later, f"the killed worker {killed[0]} returned seeds"
    for o in outcomes:
        if o.failed:
            assert Path(o.recording).read_bytes() == \
                (local_sweep.bugs / f"seed-{o.seed}.ccr").read_bytes()


@pytest.mark.kvm
def test_ctrl_c_cancels_the_ray_sweep_in_one_line(local_sweep, cluster, tmp_path):
    """SIGINT mid-sweep: exit 130, one 'interrupted' line naming the cancelled tasks."""
    proc = subprocess.Popen(
        [*ray_cluster.CLI, "record", str(local_sweep.toml), "--seeds", "1-40",
         "--duration", "60s", "--no-progress", "--ray", cluster], cwd=tmp_path,
        env=ray_cluster.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Connected, and seeds of tens of wall seconds each running (connecting took over 6 s
    # on a loaded host: the interrupt then came before any task, with no count to give).
    time.sleep(15)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if "interrupted" in line]
    assert len(lines) == 1 and "Ray tasks cancelled" in lines[0], err


def test_ray_goes_with_seeds_and_not_with_jobs():
    runner = CliRunner()
    alone = runner.invoke(main, ["record", "--ray"])
    assert alone.exit_code == 2 and "--ray go with --seeds" in alone.output, alone.output
    both = runner.invoke(main, ["record", "--seeds", "1-2", "-j", "2", "--ray"])
    assert both.exit_code == 2 and "-j and --ray" in both.output, both.output


def test_ray_not_installed_is_one_line(tmp_path):
    """With ray not importable, --ray says how to install it: one line, exit 2."""
    code = ("import sys; sys.modules['ray'] = None; from chaosreplay.cli import main; "
            "main()")
    run = subprocess.run([sys.executable, "-c", code, "record", "--seeds", "1-2",
                          "--no-progress", "--ray"], cwd=tmp_path, env=ray_cluster.env(),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.strip() == ("chaosreplay: error: ray is not installed: "
                                  "pip install 'chaosreplay[ray]'"), run.stderr


def test_an_unreachable_address_is_one_line(tmp_path):
    ray_cluster.ray_or_skip()
    port = ray_cluster.free_port()
    run = ray_cluster.cli("record", "--seeds", "1-2", "--no-progress", "--ray",
                          f"127.0.0.1:{port}", cwd=tmp_path, timeout=120)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.strip().startswith(
        f"chaosreplay: error: cannot reach the Ray cluster at 127.0.0.1:{port}:"), run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr


@pytest.mark.kvm
def test_without_ray_nothing_imports_ray(tmp_path):
    """A local sweep, exploration and triage leave ray out of sys.modules."""
    code = """
import sys
from chaosreplay.cli import main
for args in (["record", "--seeds", "1-2", "-j", "1", "--duration", "300ms", "--no-progress"],
             ["explore", "--runs", "2", "-j", "1", "--duration", "300ms", "-o", "ex",
              "--no-progress"],
             ["triage", "ex", "--no-progress"]):
    try:
        main(args, standalone_mode=False)
    except SystemExit:
        pass
print("ray" in sys.modules, "chaosreplay.scaleout.cluster" in sys.modules)
"""
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=ray_cluster.env(),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "2 seeds · 0 failing" in run.stdout, run.stdout + run.stderr
    assert (tmp_path / "ex" / "report.json").is_file(), run.stderr
    assert run.stdout.strip().splitlines()[-1] == "False False", run.stdout + run.stderr


def test_the_progress_counts_seeds_and_rates_per_worker():
    """Each worker gets its own row: its seeds and seeds per minute; failing seeds count."""
    from io import StringIO

    from rich.console import Console

    from chaosreplay.cli.scaleout_options import WorkerProgress
    from chaosreplay.runs.sweep import SeedOutcome

    progress = WorkerProgress(Console(file=StringIO()), 3, enabled=False)
    progress(SeedOutcome(1, True, "bug", 10, 5, wall_seconds=2.0), "10.0.0.2:11")
    progress(SeedOutcome(2, False, "end", 10, 5, wall_seconds=2.0), "10.0.0.3:12")
    progress(SeedOutcome(3, False, "end", 10, 5, wall_seconds=2.0), "10.0.0.2:11")
    assert (progress.done, progress.failing) == (3, 1)
    assert {name: seeds for name, (_, seeds, _) in progress.workers.items()} == {
        "10.0.0.2:11": 2, "10.0.0.3:12": 1}
    details = {t.description.strip(): t.fields["detail"] for t in progress.progress.tasks}
    assert details["seeds"] == "3/3 · 1 failing"
    assert details["10.0.0.2:11"].startswith("2 seeds · ") and \
        details["10.0.0.2:11"].endswith(" seeds/min"), details


def test_a_cluster_without_kvm_workers_is_refused_in_one_line(tmp_path):
    """No node advertises kvm: the sweep says which `ray start` line is missing."""
    ray_cluster.ray_or_skip()
    with ray_cluster.head_node(kvm=0) as address:
        run = ray_cluster.cli("record", "--seeds", "1-2", "--no-progress", "--ray", address,
                              cwd=tmp_path, timeout=120)
    assert run.returncode == 2, run.stdout + run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "no node of the Ray cluster advertises the kvm resource" \
        in lines[0] and "ray start --resources" in lines[0], run.stderr


@pytest.mark.kvm
def test_this_machine_advertises_a_kvm_unit_per_cpu():
    """`python -m chaosreplay.scaleout.cluster` prints what `ray start --resources` takes."""
    run = subprocess.run([sys.executable, "-m", "chaosreplay.scaleout.cluster"],
                         env=ray_cluster.env(), capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"kvm": len(os.sched_getaffinity(0))}


@pytest.mark.slow
@pytest.mark.kvm
def test_a_100_seed_sweep_survives_three_worker_kills(cluster, tmp_path):
    """100 seeds, a worker killed after the 1st, 30th and 60th outcome: the verdicts and
    recordings of -j 2, every seed once."""
    from chaosreplay.runs.sweep import sweep
    from chaosreplay.sim.programs import resolve_images
    from chaosreplay.sim.scenario import load_scenario

    toml = ray_cluster.planted_bug_toml(tmp_path)
    scenario = load_scenario(toml)
    images = resolve_images(scenario, tmp_path)
    seeds = list(range(1, 101))
    local = sweep(scenario, images, seeds, jobs=2, keep_failing=tmp_path / "local")
    seen: Counter[int] = Counter()

    def on_outcome(outcome, worker: str) -> None:
        seen[outcome.seed] += 1
        if sum(seen.values()) in (1, 30, 60):
            os.kill(int(worker.rsplit(":", 1)[1]), signal.SIGKILL)

    remote = _sweep_at(cluster, scenario, images, seeds, tmp_path / "ray", on_outcome)
    assert sorted(seen) == seeds and set(seen.values()) == {1}, seen
    assert [(o.seed, o.failed, o.signature) for o in remote] == \
        [(o.seed, o.failed, o.signature) for o in local]
    for o in local:
        if o.failed:
            name = f"seed-{o.seed}.ccr"
            assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" /
                                                              name).read_bytes(), name
