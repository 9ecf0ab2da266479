"""Smoke test of benchmarks/bench_simulation.py: each measurement runs and has the right shape."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

from chaosreplay.vm.vmm import Vm

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_simulation.py"
DURATION_S = 1.5  # one checkpoint (every virtual second), a few thousand events


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """benchmarks/bench_simulation.py imported as a module."""
    spec = importlib.util.spec_from_file_location("bench_simulation", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_simulation"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _positive(*values: float) -> bool:
    """All values are finite and > 0."""
    return all(math.isfinite(v) and v > 0 for v in values)


def test_demo_scenario_variation(bench: ModuleType) -> None:
    scenario = bench.demo(2.5, seed=7)
    assert scenario.duration_ns == 2_500_000_000 and scenario.seed == 7
    assert bench.demo().duration_ns == 60_000_000_000  # the demo's own duration


@pytest.mark.kvm
def test_seed_benchmark_shape(bench: ModuleType, tmp_path: Path) -> None:
    results = bench.bench_seeds(DURATION_S, (0, 1), repeats=2, directory=tmp_path)
    assert [r.seed for r in results] == [0, 1]
    for r in results:
        assert r.repeats == 2 and r.virtual_s == DURATION_S
        assert _positive(r.off_s, r.drop_s, r.record_s, r.replay_s, r.record_ratio,
                         r.drop_ratio, r.replay_ratio)
        assert r.record_ratio == pytest.approx(r.record_s / r.off_s)
        assert r.replay_ratio == pytest.approx(r.replay_s / r.record_s)
        assert r.events > r.off_events > 0 and r.exits > 0 and r.recording_bytes > 0
        assert r.end_reason == "duration"
    both = bench.total(results)
    assert both.virtual_s == 2 * DURATION_S
    assert both.record_s == pytest.approx(results[0].record_s + results[1].record_s)
    assert both.events == results[0].events + results[1].events


@pytest.mark.kvm
def test_breakdown_shape_and_unwrapped_afterwards(bench: ModuleType, tmp_path: Path) -> None:
    original = Vm.run
    rows = bench.bench_breakdown(DURATION_S, 0, tmp_path)
    assert Vm.run is original  # the timer wrappers are gone again
    assert [row.variant for row in rows] == ["off", "record", "replay"]
    for row in rows:
        kvm = "KVM_RUN (Vm.run)"
        assert row.calls[kvm] > 0 and 0 < row.share(kvm) < 1
    off, record, replay = rows
    assert off.calls[kvm] == record.calls[kvm] == replay.calls[kvm]  # the same run thrice
    assert off.calls["writer.append"] == 0 and record.calls["writer.append"] > 0
    assert record.calls["checkpoint capture"] == replay.calls["checkpoint capture"] == 1
    assert replay.calls["replay sink: read + compare event"] == record.calls["writer.append"]


@pytest.mark.kvm
def test_profile_tables(bench: ModuleType, tmp_path: Path) -> None:
    tables = bench.profile(0.3, 0, tmp_path, top=5)
    assert set(tables) == {"off", "record", "replay"}
    assert all("tottime" in text for text in tables.values())
