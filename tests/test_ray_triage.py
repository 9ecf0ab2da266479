"""triage --ray: the same report and the same minimal runs as a local triage with -j 2."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
import ray_cluster
from click.testing import CliRunner

from chaosreplay.cli import main

FAILING_SEEDS = "1,19,25"  # seeds of the planted no_truncate bug at 7 s (test_ray_sweep.py)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A local cluster (ray.init) shared by the module's tests."""
    with ray_cluster.local_cluster():
        yield


def _without_wall_times(value: Any) -> Any:
    """A report with its wall-clock figures ("seconds" of each shrink) left out."""
    if isinstance(value, dict):
        return {k: _without_wall_times(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_without_wall_times(v) for v in value]
    return value


@pytest.mark.kvm
def test_triage_on_ray_gives_the_local_report_and_minimal_runs(local_ray, tmp_path):
    toml = ray_cluster.planted_bug_toml(tmp_path)
    runner = CliRunner()
    swept = runner.invoke(main, ["record", str(toml), "--seeds", FAILING_SEEDS, "-j", "2",
                                 "--keep-failing", str(tmp_path / "bugs"), "--no-progress"])
    assert swept.exit_code == 1 and len(list((tmp_path / "bugs").iterdir())) == 3, swept.output
    shutil.copytree(tmp_path / "bugs", tmp_path / "bugs-ray")
    local = runner.invoke(main, ["triage", str(tmp_path / "bugs"), "--json", "-j", "2",
                                 "--no-progress"])
    remote = runner.invoke(main, ["triage", str(tmp_path / "bugs-ray"), "--json", "--ray",
                                  "--no-progress"])
    assert local.exit_code == remote.exit_code == 1, remote.output
    expected = _without_wall_times(json.loads(local.stdout))
    got = json.loads(remote.stdout.replace("bugs-ray", "bugs"))
    assert _without_wall_times(got) == expected
    assert expected["findings"], "the planted bug gave no finding"
    minimal = sorted(p.name for p in (tmp_path / "bugs" / ".triage").iterdir())
    assert minimal and minimal == sorted(
        p.name for p in (tmp_path / "bugs-ray" / ".triage").iterdir())
    for name in minimal:
        assert (tmp_path / "bugs-ray" / ".triage" / name).read_bytes() == \
            (tmp_path / "bugs" / ".triage" / name).read_bytes(), f"{name} differs"


def test_triage_refuses_jobs_with_ray(tmp_path):
    (tmp_path / "bugs").mkdir()
    result = CliRunner().invoke(main, ["triage", str(tmp_path / "bugs"), "-j", "2", "--ray"])
    assert result.exit_code == 2 and "-j and --ray" in result.output, result.output

