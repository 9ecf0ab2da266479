"""The controller: scheduling on one virtual timeline, messaging, the oracle, node ends."""

from __future__ import annotations

import pytest
from simulate import scenario, simulate

pytestmark = pytest.mark.kvm


@pytest.fixture(scope="module")
def probe(guest_bin):
    return guest_bin("musl", "probe")


def test_ring_messages_arrive_in_order_at_latency(probe):
    """Each node gets every datagram its predecessor sent, 1 ms (default latency) later."""
    run = simulate(scenario(probe, ["ring", "10"]))
    assert run.result.reason == "all nodes ended", run.result
    for node in range(3):
        sender = (node - 1) % 3
        assert run.received(node) == [f"r{i} from {sender}".encode() for i in range(10)]
    delivered = run.of("packet.delivered")
    assert len(delivered) == 30
    assert {f["time_ns"] - f["sent_ns"] for *_, f in delivered} == {1_000_000}
    assert run.sim.fabric.stats.delivered == 30


def test_event_ticks_never_decrease_and_match_virtual_time(probe):
    run = simulate(scenario(probe, ["ring", "20"]))
    ticks = [e[0] for e in run.events]
    assert ticks == sorted(ticks)
    assert all(tick >= vtime // 1_000_000 for tick, vtime, *_ in run.events)


def test_same_seed_same_stream_other_seed_differs(probe):
    """Byte-identical event streams for a seed, under random network faults."""
    def make(seed):
        return scenario(probe, ["ring", "30"], seed=seed,
                        network={"jitter_ns": "3ms", "loss": 0.2, "reorder": 0.3})

    a, b, c = simulate(make(5)), simulate(make(5)), simulate(make(6))
    assert a.stream() == b.stream()
    assert a.stream() != c.stream()


def test_idle_run_reaches_its_end(probe):
    """Nodes blocked forever and nothing in flight: the run idles to its virtual end."""
    sc = scenario(probe, ["wait"], count=2, duration="200ms")
    run = simulate(sc)
    assert run.received(0) == [] and run.result.reason == "duration"
    assert run.result.end_tick == 200


def test_failed_always_is_a_bug_that_ends_the_run(probe):
    run = simulate(scenario(probe, ["bug", "3"]))
    assert run.result.reason == "bug"
    [bug] = run.result.bugs
    assert (bug.node, bug.message) == (0, "probe planted bug")
    assert bug.location.startswith("src/probe.c:")
    bug_events = run.of("bug")
    assert len(bug_events) == 1 and run.events[-1][3] == "run.end"
    # the bug is the last thing any node did: nothing ran after it
    assert all(e[3] in ("run.end", "unsatisfied", "syscall") for e in
               run.events[run.events.index(bug_events[0]) + 1:])


def test_keep_going_runs_past_bugs(probe):
    run = simulate(scenario(probe, ["bug", "3"]), keep_going=True)
    assert run.result.reason == "all nodes ended"
    assert len(run.result.bugs) == 1 and run.sim.oracle.bug_count == 1


def test_never_satisfied_sometimes_is_reported(probe):
    run = simulate(scenario(probe, ["ring", "5"], network={"loss": 1.0}))
    assert [u["message"] for u in run.result.unsatisfied] == ["probe: a datagram arrives"]
    assert [f["message"] for *_, f in run.of("unsatisfied")] == ["probe: a datagram arrives"]
    assert not run.result.failed


def test_crashing_node_is_a_failure(guest_bin):
    segv = guest_bin("musl", "segv")
    sc = scenario(segv, [], count=2)
    run = simulate(sc)
    assert run.result.reason == "crash" and run.result.failed
    assert run.result.failures[0].kind == "crash" and "SIGSEGV" in run.result.failures[0].detail
    assert run.statuses(0) == ["crashed"]


def test_spinning_node_is_a_hang(probe):
    run = simulate(scenario(probe, ["spin"], count=1), hang_seconds=0.5)
    assert run.result.reason == "hang"
    assert run.result.failures[0].kind == "hang"


def test_exited_node_drops_packets_sent_to_it(probe):
    """Node 1 exits after 1 round; what node 0 sends it later is dropped as node_down."""
    data = scenario(probe, ["ring", "1"], count=2).to_dict()
    data["nodes"] = [{"program": str(probe), "args": ["ring", "8"]},
                     {"program": str(probe), "args": ["ring", "1"]}]
    from chaosreplay.sim.scenario import Scenario

    run = simulate(Scenario.from_dict(data))
    reasons = [f["reason"] for *_, f in run.of("packet.dropped")]
    assert reasons and set(reasons) == {"node_down"}
    assert run.statuses(1) == ["exited"]
