"""Signals delivered in a running guest: determinism, events and checkpoints.

What each call does is compared with Linux in tests/test_real_programs.py (signals.c) and,
for the frame and queue model alone, in tests/test_signals_*.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import program_cache
import pytest

from chaosreplay.events import EventKind
from chaosreplay.kernel.process import GuestProcess, ProcessConfig, Status
from chaosreplay.vm.elf import load_program

pytestmark = pytest.mark.kvm


def _program(flavour: str = "musl") -> Path:
    return program_cache.built("signals.c", flavour)


def _start(path: Path, events: list[Any]) -> GuestProcess:
    def on_event(process: GuestProcess, kind: EventKind, fields: dict[str, Any]) -> None:
        events.append((process.vtime_ns, kind.value, sorted(fields.items())))

    return GuestProcess(load_program(path), ProcessConfig(argv=[b"signals"], seed=2),
                        on_event=on_event)


def test_runs_of_a_seed_deliver_the_same_signals_at_the_same_points() -> None:
    path = _program()
    streams, digests = set(), set()
    for _ in range(5):
        events: list[Any] = []
        p = _start(path, events)
        p.run_to_completion(hang_seconds=20)
        assert p.status is Status.EXITED and p.exit_code == 0
        streams.add(repr(events))
        digests.add(p.digest())
    assert len(streams) == 1 and len(digests) == 1
    delivered = [dict(f)["signo"] for _, kind, f in events if kind == EventKind.SIGNAL]
    assert delivered.count(10) >= 3 and 11 in delivered and 12 in delivered
    assert delivered.count(14) >= 5  # the alarms and the interval timer


def test_a_checkpoint_with_a_timer_armed_and_handlers_set_continues_identically() -> None:
    path = _program("glibc")
    reference: list[Any] = []
    whole = _start(path, reference)
    whole.run_to_completion(hang_seconds=20)

    events: list[Any] = []
    p = _start(path, events)
    while p.itimer_real[0] is None and p.run(deadline_ns=p.vtime_ns + 1) in (
            Status.RUNNING, Status.BLOCKED):
        pass
    assert p.itimer_real[0] is not None and p.signals.actions.get(14).is_handler
    checkpoint = p.checkpoint(incremental=False)
    kept = len(events)
    p.run_to_completion(hang_seconds=20)
    p.restore(checkpoint)
    del events[kept:]
    p.run_to_completion(hang_seconds=20)
    assert events == reference
    assert bytes(p.stdout) == bytes(whole.stdout) and p.digest() == whole.digest()

