"""Seed sweeps: parallel workers, results in seed order, recordings kept only for failures."""

from __future__ import annotations

import pytest
from simulate import scenario

from chaosreplay.runs.record_replay import replay_run
from chaosreplay.runs.sweep import sweep
from chaosreplay.vm.elf import load_program


@pytest.mark.kvm
def test_sweep_keeps_the_recordings_of_failing_seeds_only(guest_bin, tmp_path):
    probe = guest_bin("musl", "probe")
    # The planted bug fires on every seed; the lossy link makes each seed's run differ.
    sc = scenario(probe, ["bug", "3"], count=2, network={"loss": 0.3}, checkpoint_interval=100)
    ok = scenario(probe, ["ring", "5"], count=2)
    images = [load_program(probe)]
    failing = sweep(sc, images, [5, 1, 3], jobs=2, keep_failing=tmp_path / "bugs")
    assert [o.seed for o in failing] == [1, 3, 5]
    assert all(o.failed and o.signature == "probe planted bug" for o in failing)
    kept = sorted(p.name for p in (tmp_path / "bugs").iterdir())
    assert kept == ["seed-1.ccr", "seed-3.ccr", "seed-5.ccr"]
    assert replay_run(tmp_path / "bugs" / "seed-3.ccr").identical
    passing = sweep(ok, images, [1, 2], jobs=1, keep_failing=tmp_path / "none")
    assert not any(o.failed for o in passing) and not list((tmp_path / "none").iterdir())


def test_parse_seeds():
    from chaosreplay.runs.sweep import parse_seeds

    assert parse_seeds("3") == [3]
    assert parse_seeds("1-3,7, 9-10") == [1, 2, 3, 7, 9, 10]
    for bad in ("", "a", "3-", "5-1", "1,1", "-2"):
        with pytest.raises(ValueError):
            parse_seeds(bad)
