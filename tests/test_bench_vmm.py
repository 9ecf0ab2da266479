"""Smoke test of benchmarks/bench_vmm.py: each measurement runs and has the right shape."""

from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_vmm.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """benchmarks/bench_vmm.py imported as a module."""
    spec = importlib.util.spec_from_file_location("bench_vmm", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_vmm"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _positive(*values: float) -> bool:
    """All values are finite and > 0."""
    return all(math.isfinite(v) and v > 0 for v in values)


def test_dirty_loop_code_disassembles_as_intended(bench: ModuleType) -> None:
    for pages in (1, 9, 10, 100, 1000):
        assert bench.disassemble(bench.dirty_loop_code(pages)) == bench.expected_dirty_loop(pages)


@pytest.mark.kvm
def test_syscall_benchmark_shape(bench: ModuleType, guest_bin: Callable[[str, str], Path]) -> None:
    result = bench.bench_syscalls(guest_bin("musl", "getpid_loop"), calls=300, repeats=1)
    assert _positive(result.full_us, result.raw_us, result.bare_us)
    assert result.ratio == pytest.approx(result.full_us / result.raw_us)
    assert result.bare_ratio == pytest.approx(result.bare_us / result.raw_us)


@pytest.mark.kvm
def test_snapshot_benchmark_shape(bench: ModuleType) -> None:
    rows, full = bench.bench_snapshots((1, 10), repeats=2)
    assert [(r.dirty, r.source) for r in rows] == [
        (1, "host"), (1, "guest"), (10, "host"), (10, "guest")]
    for row in rows:
        assert _positive(row.take_ms, row.restore_ms)
        assert row.take_pages >= row.dirty and row.restore_pages >= row.dirty
    assert full.pages > 10 and _positive(full.ms)


@pytest.mark.kvm
def test_startup_benchmark_shape(bench: ModuleType, guest_bin: Callable[[str, str], Path]) -> None:
    result = bench.bench_startup(guest_bin("musl", "hello"), runs=2)
    assert _positive(result.load_ms, result.construct_ms, result.run_ms, result.vm_ms,
                     result.spawn_ms, result.subprocess_ms)
    assert result.ratio == pytest.approx(result.vm_ms / result.spawn_ms)
    assert 0 < result.preloaded_ratio <= result.ratio  # the same runs without the ELF load
