"""The explorer's parts that need no VM: the event-stream signal, the corpus, the energy
rule, the mutator and the report."""

from __future__ import annotations

import random

from chaosreplay.explore.energy import EnergyPolicy
from chaosreplay.explore.frontier import Corpus, Frontier, FrontierEntry
from chaosreplay.explore.mutator import Mutator
from chaosreplay.explore.report import sparkline
from chaosreplay.explore.signals import CollectorState, SignalCollector, count_bucket, weight
from chaosreplay.kernel.sdk_abi import CR_SYS_SEND, AssertKind
from chaosreplay.sim.faults.model import Fault, FaultKind
from chaosreplay.sim.faults.random import RandomFaults


def _assert(c: SignalCollector, tick: int, ident: int, kind: int, cond: bool,
            node: int = 0) -> None:
    c(tick, tick * 10**6, node, "assert", {"assert_kind": kind, "condition": cond, "id": ident,
                                         "message": "m", "file": "f.c", "line": 1})


def test_signals_hold_no_time() -> None:
    """The same behaviour at other ticks gives the same signals (no tick-indexed noise)."""
    def feed(offset: int) -> set[tuple]:
        c = SignalCollector()
        c(5 + offset, 0, 1, "syscall", {"nr": 0, "args": [0] * 6, "ret": -11})
        c(6 + offset, 0, -1, "packet.sent", {"src": 0, "dst": 1, "size": 80})
        _assert(c, 7 + offset, 42, AssertKind.SOMETIMES, True)
        c(8 + offset, 0, 2, "node.status", {"status": "killed", "reason": "fault"})
        return set(c.first_seen)

    assert feed(0) == feed(5000)
    assert ("syscall", 1, 0, "EAGAIN") in feed(0)
    assert ("status", 2, "running", "killed") in feed(0)


def test_a_satisfied_sometimes_is_the_strongest_signal() -> None:
    c = SignalCollector()
    _assert(c, 1, 7, AssertKind.SOMETIMES, False)
    assert ("sometimes", 7) not in c.first_seen, "an unsatisfied sometimes is not a hit"
    _assert(c, 2, 7, AssertKind.SOMETIMES, True)
    _assert(c, 3, 8, AssertKind.REACHABLE, True)
    _assert(c, 4, 9, AssertKind.ALWAYS, True)
    assert c.first_seen[("sometimes", 7)] == (2, 0) and ("sometimes", 8) in c.first_seen
    assert ("sometimes", 9) not in c.first_seen
    assert weight(("sometimes", 7)) > max(weight(s) for s in c.first_seen if s[0] != "sometimes")


def test_milestones_are_the_order_of_satisfied_sometimes_per_node_and_cluster() -> None:
    c = SignalCollector()
    for tick, node, ident in ((1, 0, 10), (2, 0, 10), (3, 1, 11), (4, 0, 12)):
        _assert(c, tick, ident, AssertKind.SOMETIMES, True, node)
    assert ("milestone", 0, None, 10) in c.first_seen
    assert ("milestone", 0, 10, 12) in c.first_seen, "node 0: 10 then 12 (11 was node 1)"
    assert ("milestone", 0, 10, 10) not in c.first_seen, "a repeat is not a step"
    assert ("milestone.any", 10, 11, False) in c.first_seen
    resumed = SignalCollector(c.state.copy())
    _assert(resumed, 9, 13, AssertKind.REACHABLE, True, 0)
    assert ("milestone.any", 12, 13, True) in resumed.first_seen


def test_assertion_counts_are_bucketed_and_continue_from_a_checkpoint() -> None:
    assert [count_bucket(n) for n in (1, 2, 3, 4, 7, 8, 200)] == [0, 1, 2, 3, 3, 4, 7]
    c = SignalCollector()
    for t in range(3):
        _assert(c, t, 5, AssertKind.ALWAYS, True)
    resumed = SignalCollector(c.state.copy())
    _assert(resumed, 10, 5, AssertKind.ALWAYS, True)  # the 4th hit, counted from the state
    assert ("assert.count", 5, True, 3) in resumed.first_seen
    assert c.state.assert_counts[(5, True)] == 3, "the copy is independent"


def test_message_order_is_a_per_node_summary_of_the_last_deliveries() -> None:
    c = SignalCollector()
    for src, size in ((1, 80), (2, 80), (1, 104)):
        c(1, 0, 0, "packet.delivered", {"src": src, "dst": 0, "size": size})
    assert ("order", 0, ((1, 7), (2, 7), (1, 7))) in c.first_seen
    assert isinstance(c.state, CollectorState)


def test_sent_payload_heads_are_read_only_for_sends() -> None:
    reads: list[tuple[int, int, int]] = []

    def read(node: int, address: int, length: int) -> bytes:
        reads.append((node, address, length))
        return b"RAFT"

    c = SignalCollector(read_payload=read)
    c(1, 0, 2, "syscall", {"nr": CR_SYS_SEND, "args": [0, 0x1000, 80, 0, 0, 0], "ret": 0})
    c(1, 0, 2, "syscall", {"nr": 1, "args": [1, 0x1000, 80, 0, 0, 0], "ret": 80})
    assert reads == [(2, 0x1000, 4)] and ("packet.head", 2, 0, b"RAFT") in c.first_seen


def test_corpus_reports_new_signals_in_tick_order_once() -> None:
    corpus = Corpus()
    new = corpus.absorb({("b",): (9, 1), ("a",): (3, 2)}, run=1)
    assert [(d.signal, d.node) for d in new] == [(("a",), 2), (("b",), 1)]
    assert corpus.absorb({("a",): (1, 0), ("c",): (2, 0)}, run=2)[0].signal == ("c",)
    assert corpus.first_run == {("a",): 1, ("b",): 1, ("c",): 2}


def _entry(number: int, energy: float, path: str = "p") -> FrontierEntry:
    return FrontierEntry(number, 1, path, 500, 600, 1, 0, (), 0, CollectorState(), {}, 1.0, 0,
                         energy)


def test_energy_rewards_discoveries_and_retires_barren_entries() -> None:
    policy = EnergyPolicy(retire_after=3)
    assert policy.initial(10) > policy.initial(0) >= policy.base
    entry = _entry(1, policy.initial(0))
    policy.spend(entry)
    policy.credit(entry, 5.0)
    assert entry.energy > policy.initial(0) - 1 and entry.productive == 1
    for _ in range(3):
        policy.credit(entry, 0.0)
    assert policy.exhausted(entry), "three barren branches in a row retire it"


def test_energy_picks_by_weight_from_the_seeded_generator() -> None:
    policy = EnergyPolicy()
    live = [_entry(1, 1.0), _entry(2, 9.0)]
    picks = [policy.pick(live, random.Random(s)).number for s in range(200)]
    assert picks == [policy.pick(live, random.Random(s)).number for s in range(200)]
    assert picks.count(2) > 3 * picks.count(1), picks.count(1)


def test_frontier_deletes_a_checkpoint_file_once_no_live_entry_uses_it(tmp_path) -> None:
    path = tmp_path / "run-1.ccr"
    path.write_bytes(b"x")
    frontier = Frontier()
    first, second = _entry(1, 1, str(path)), _entry(2, 1, str(path))
    frontier.add(first)
    frontier.add(second)
    frontier.retire(first)
    assert path.exists() and frontier.holds(str(path))
    frontier.retire(second)
    assert not path.exists() and frontier.live() == []


PLAN = RandomFaults(rates=((FaultKind.KILL, 0.2), (FaultKind.PARTITION, 0.2)), max_concurrent=2)


def test_mutations_change_only_the_future_and_are_seeded() -> None:
    past = (Fault(FaultKind.KILL, 100, 500, 0), Fault(FaultKind.PAUSE, 900, 300, 1))
    future = (Fault(FaultKind.KILL, 2500, 800, 2),)
    mutator = Mutator(3, 20_000, PLAN)
    seen_ops = set()
    for seed in range(60):
        m = mutator.mutate(past + future, gate=10, tick=1510, rng=random.Random(seed))
        again = mutator.mutate(past + future, gate=10, tick=1510, rng=random.Random(seed))
        assert m == again, "a mutation is a function of its generator"
        assert [f for f in m.faults if f.at < 1500] == list(past), m.edits
        assert m.faults != past + future, f"a branch always changes the future: {m.edits}"
        seen_ops.update(e.split()[0] for e in m.edits)
        for f in m.faults:
            Fault.from_dict(f.to_dict(), node_count=3)  # every fault is valid
    assert {"add", "drop", "move", "retune", "reseed", "redraw"} <= seen_ops, seen_ops


def test_a_reseed_edit_adds_a_reseed_fault_near_the_focus() -> None:
    """The reseed operator adds a `reseed` fault (for the focus node or for everything) just
    after the focus, with a seed from the explorer's generator; other ops add none."""
    mutator = Mutator(3, 20_000, PLAN)
    reseeds = []
    for seed in range(80):
        m = mutator.mutate((), gate=10, tick=1510, rng=random.Random(seed), focus_tick=2010,
                           focus_node=2)
        added = [f for f in m.faults if f.kind is FaultKind.RESEED]
        made = sum(e.startswith("reseed ") for e in m.edits)
        assert len(added) <= made and (added or not made or len(m.edits) > 1), m.edits
        if not any(e.startswith(("retune", "move")) for e in m.edits):  # (they move one)
            reseeds += added
    assert reseeds, "the operator is drawn"
    assert all(2000 <= f.at < 2000 + 3000 and f.node in (None, 2) for f in reseeds), reseeds
    assert {f.node for f in reseeds} == {None, 2}
    assert len({f.param("seed") for f in reseeds}) == len(reseeds)


def test_every_branch_reseeds_chance_just_after_its_focus() -> None:
    """Each branch has a reseed of everything one tick after the focus (gate-relative),
    with its own seed; some branches change nothing else."""
    mutator = Mutator(3, 20_000, PLAN)
    seeds, alone = set(), 0
    for seed in range(60):
        m = mutator.mutate((), gate=10, tick=1510, rng=random.Random(seed), focus_tick=2010)
        at_focus = [f for f in m.faults if f.kind is FaultKind.RESEED and f.at == 2001
                    and f.node is None]
        assert len(at_focus) == 1, m.edits
        seeds.add(at_focus[0].param("seed"))
        alone += len(m.edits) == 1
    assert len(seeds) == 60 and 5 < alone < 40, (len(seeds), alone)


def test_mutations_use_the_scenarios_fault_kinds() -> None:
    mutator = Mutator(3, 20_000, PLAN)
    kinds = set()
    for seed in range(40):
        m = mutator.mutate((), gate=0, tick=0, rng=random.Random(seed))
        kinds.update(f.kind for f in m.faults)
    assert kinds - {FaultKind.RESEED} <= {FaultKind.KILL, FaultKind.PARTITION} and kinds
    alone = Mutator(1, 20_000, None)
    assert FaultKind.PARTITION not in alone.kinds, "one node cannot be partitioned"


def test_sparkline_spans_low_to_high() -> None:
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert len(sparkline(list(range(500)), 40)) == 40
    assert sparkline([]) == ""


def test_the_live_display_shows_counts_signals_and_bugs_with_first_hits() -> None:
    """The rich view renders the explorer's state (no run needed: the state is set here)."""
    from rich.console import Console

    from chaosreplay.explore.display import render
    from chaosreplay.explore.explorer import ExploreConfig, Explorer
    from chaosreplay.explore.report import ProgressPoint
    from chaosreplay.sim.demo import demo_scenario

    explorer = Explorer(demo_scenario(), [], ExploreConfig(seed=3))
    explorer.started = 0.0
    explorer.runs, explorer.roots, explorer.branches = 12, 3, 9
    explorer.corpus.absorb({("edge", 0, 5): (1, -1), ("sometimes", 9): (2, 0)}, run=1)
    explorer.progress = [ProgressPoint(1.0, 4, 10.0, 1, 1, 0, 2, 0),
                         ProgressPoint(2.0, 12, 30.0, 2, 1, 1, 3, 1)]
    explorer.findings.note({"bugs": [{"assert_kind": "always", "assert_id": 77,
                                      "message": "election safety"}], "failures": []},
                           None, run=7, end_tick=900, wall=1.5, simulated_seconds=21.0)
    console = Console(record=True, width=120)
    console.print(render(explorer.report(), "exploring"))
    text = console.export_text()
    assert "12 (3 from seeds, 9 branches)" in text, text
    assert "edge 1" in text and "sometimes 1" in text, text
    assert "always: election safety" in text and "│ 7 " in text, text


def test_entries_sit_at_the_checkpoint_before_a_worthy_discovery_focused_on_it(
        tmp_path) -> None:
    """A discovery makes an entry at the last checkpoint before it, focused on its tick and
    node; discoveries worth less than min_entry_novelty (a lone message order) make none."""
    from chaosreplay.explore.explorer import ExploreConfig, Explorer
    from chaosreplay.explore.frontier import Discovery
    from chaosreplay.explore.runner import Outcome, Task
    from chaosreplay.sim.demo import demo_scenario

    explorer = Explorer(demo_scenario(), [], ExploreConfig(seed=1))
    state = CollectorState()
    outcome = Outcome(1, 0, end_tick=2000, gate=100,
                      checkpoints=[(500, state), (1000, state), (1500, state)])
    found = [Discovery(("order", 0, ((1, 7),) * 3), 700, 0),
             Discovery(("sometimes", 5), 1200, 2), Discovery(("edge", 0, 9), 1300, -1),
             Discovery(("status", 1, "running", "killed"), 1600, 1)]
    task = Task(1, 0, (), None, str(tmp_path / "run-1.ccr"))
    assert explorer._add_entries(task, outcome, found, None) == 1
    [entry] = explorer.frontier.live()
    assert (entry.tick, entry.focus_tick, entry.focus_node) == (1000, 1200, 2)
    assert entry.novelty == 11.0 and entry.energy == explorer.config.policy.initial(11.0)
