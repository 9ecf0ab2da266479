"""Smoke test of benchmarks/bench_clone.py: the measurement runs and has the right shape."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_clone.py"


@pytest.mark.kvm
def test_clone_benchmark_copies_more_when_more_memory_is_used() -> None:
    spec = importlib.util.spec_from_file_location("bench_clone", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_clone"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    empty, used = module.bench_clone((0.0, 2.0), repeats=1)
    assert used.copied_mib - empty.copied_mib >= 2.0, (empty, used)
    assert empty.clone_ms > 0 and used.clone_ms > 0
