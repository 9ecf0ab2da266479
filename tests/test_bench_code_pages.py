"""Smoke test of benchmarks/bench_code_pages.py: each measurement runs and has the right shape."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from chaosreplay.vm import nonvirt

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_code_pages.py"


@pytest.fixture(scope="module")
def bench(guest_bin: Callable[[str, str], Path]) -> ModuleType:
    """benchmarks/bench_code_pages.py imported as a module (after the guests are built)."""
    guest_bin("glibc", "hello")
    spec = importlib.util.spec_from_file_location("bench_code_pages", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_code_pages"] = module
    spec.loader.exec_module(module)
    return module


def test_measured_pages_are_what_their_names_say(bench: ModuleType) -> None:
    kinds = bench.page_kinds()
    assert all(len(page) == nonvirt.PAGE_SIZE for page in kinds.values())
    scans = {name: nonvirt.scan_page(0x7E00_0000_0000, page, 0, True, "bench")
             for name, page in kinds.items()}
    assert [len(s.sites) for s in scans.values()][:2] == [0, 0]
    assert scans["JIT stub: rdtsc; ret (patched)"].sites
    assert [s.trap is not None for s in scans["hidden rdtsc (trapped)"].strays] == [True]


@pytest.mark.kvm
def test_fault_and_guest_benchmarks_run(bench: ModuleType,
                                        guest_bin: Callable[[str, str], Path]) -> None:
    assert bench.bench_fault_scan(bench.page_kinds()["zero page (no pattern)"], 2, 1) > 0
    result = bench.bench_guest(guest_bin("musl", "jit"))
    assert result.scans >= 5 and result.trap_hits > 0 and result.wall_ms > 0
    loop = bench.bench_guest(guest_bin("musl", "hidden_loop"), b"20")
    assert (loop.trap_hits, loop.steps) == (20, 0)
