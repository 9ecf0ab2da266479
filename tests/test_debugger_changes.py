"""Where did it change: the change search lands where a linear scan of every event does."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from chaosreplay.cli import main
from chaosreplay.debugger.session import DebugSession
from chaosreplay.runs.record_replay import RunOptions, record_run
from chaosreplay.sim.demo import demo_scenario
from chaosreplay.sim.programs import resolve_images
from chaosreplay.sim.scenario import Scenario

pytestmark = pytest.mark.kvm
NODE = 1


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo for 4 virtual seconds with a checkpoint every 250 ms (16 of them, so the
    search samples checkpoints beyond the intervals it re-executes step by step) and
    frequent faults (so terms and roles change)."""
    data = demo_scenario().to_dict()
    data.update(seed=1, duration=4000, checkpoint_interval=250)
    data["faults"]["random"]["rates"] = {  # faults ten times as often: elections, terms
        kind: rate * 10 for kind, rate in data["faults"]["random"]["rates"].items()}
    scenario = Scenario.from_dict(data)
    path = tmp_path_factory.mktemp("changes") / "run.ccr"
    record_run(scenario, resolve_images(scenario, Path.cwd()), path, RunOptions())
    return path


def _linear(session: DebugSession, symbol: str, size: int) -> list[int]:
    """Every event after which the variable's bytes differ from after the event before,
    reading memory at each event in turn (the reference the search must agree with)."""
    changes, previous = [], None
    for seq in range(session.event_count):
        _, data = session.memory(NODE, symbol, size, seq=seq)
        if previous is not None and data != previous:
            changes.append(seq)
        previous = data
    return changes


@pytest.mark.parametrize(("expression", "symbol", "size", "monotone"), [
    ("current_term", "current_term", 8, True),
    ("commit_index", "commit_index", 8, True),
    ("role", "role", 4, False),
    ("voted_for", "voted_for", 4, False),
])
def test_change_search_agrees_with_a_linear_scan(run: Path, expression: str, symbol: str,
                                                 size: int, monotone: bool) -> None:
    """At random events, the last change at or before and the first change after are the
    linear scan's. Values that only grow are found exactly through checkpoint samples too;
    for others (role goes back and forth) the answers marked exact must be right."""
    with DebugSession(run) as session:
        reference = _linear(session, symbol, size)
        assert len(reference) >= (3 if monotone else 1), reference
        count = session.event_count
        rng = random.Random(7)
        exact_checked = 0
        for at in sorted({rng.randrange(count) for _ in range(16)} | {count - 1, 0}):
            before = max((c for c in reference if c <= at), default=None)
            after = min((c for c in reference if c > at), default=None)
            for forward, expected in ((False, before), (True, after)):
                search = session.change_search(NODE, expression)
                change = search.next_change(at) if forward else search.last_change(at)
                found = None if change is None else change.seq
                assert change is None or change.exact == search.exact
                if monotone or search.exact:
                    assert found == expected, (expression, at, forward, change, expected)
                    exact_checked += 1
                if change is not None:
                    assert change.before.value != change.after.value
                    assert change.previous < change.seq
        assert exact_checked >= (16 if monotone else 4), exact_checked


def test_state_changed_before_and_after(run: Path) -> None:
    """`state --changed-before/--changed-after` print the state at the change, say what
    changed, and refuse to run without exactly one --watch and a --node."""
    with DebugSession(run) as session:
        last = session.event_count - 1
        reference = _linear(session, "current_term", 8)
    result = CliRunner().invoke(main, ["state", str(run), "--event", str(last), "--node",
                                       str(NODE), "--watch", "current_term",
                                       "--changed-before", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["seq"] == reference[-1] == data["change"]["seq"]
    assert data["nodes"][0]["watches"][0]["value"] == data["change"]["after"]["value"]
    result = CliRunner().invoke(main, ["state", str(run), "--event", "0", "--node", str(NODE),
                                       "--watch", "current_term", "--changed-after"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"current_term on node {NODE} changed at "
                                    f"#{reference[0]}: 0 → 1")
    result = CliRunner().invoke(main, ["state", str(run), "--event", "0", "--changed-after"])
    assert result.exit_code == 2 and "needs one --watch and --node" in result.output
