"""explore --ray: the frontier in one actor, the runs as tasks — with a run limit, the same
search as `explore -j 2` on one machine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray_cluster
from click.testing import CliRunner

from chaosreplay.cli import main


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A local cluster (ray.init) shared by the module's tests."""
    with ray_cluster.local_cluster():
        yield


def _search(report: dict[str, Any]) -> dict[str, Any]:
    """What a search decided and found, without its wall-clock figures (and its folder)."""
    bugs = [{**{k: v for k, v in b.items() if "wall" not in k},
             "recordings": [Path(r).name for r in b["recordings"]]} for b in report["bugs"]]
    kept = {k: v for k, v in report.items() if k not in ("wall_seconds", "progress", "bugs")}
    return {**kept, "bugs": bugs}


@pytest.mark.kvm
def test_explore_on_ray_makes_the_search_of_jobs_2(local_ray, tmp_path):
    """8 runs of the planted bug from seed 3: the same decisions, bugs and recordings."""
    toml = ray_cluster.planted_bug_toml(tmp_path)
    runner = CliRunner()
    common = [str(toml), "--runs", "8", "--seed", "3", "--no-progress"]
    local = runner.invoke(main, ["explore", *common, "-j", "2", "-o", str(tmp_path / "a")])
    remote = runner.invoke(main, ["explore", *common, "--ray", "-o", str(tmp_path / "b")])
    assert local.exit_code == remote.exit_code == 1, remote.output
    a = json.loads((tmp_path / "a" / "report.json").read_text())
    b = json.loads((tmp_path / "b" / "report.json").read_text())
    assert a["bugs"] and a["branches"], "the search found nothing to compare"
    assert _search(b) == _search(a)
    saved = sorted(p.name for p in (tmp_path / "a" / "bugs").iterdir())
    assert saved == sorted(p.name for p in (tmp_path / "b" / "bugs").iterdir())
    for name in saved:
        assert (tmp_path / "b" / "bugs" / name).read_bytes() == \
            (tmp_path / "a" / "bugs" / name).read_bytes(), f"{name} differs"


def test_explore_refuses_jobs_and_compare_random_with_ray(tmp_path):
    runner = CliRunner()
    jobs = runner.invoke(main, ["explore", "-j", "2", "-o", str(tmp_path / "x"), "--ray"])
    assert jobs.exit_code == 2 and "-j and --ray" in jobs.output, jobs.output
    compare = runner.invoke(main, ["explore", "--compare-random", "-o", str(tmp_path / "y"),
                                   "--ray"])
    assert compare.exit_code == 2 and "--compare-random runs locally" in compare.output
