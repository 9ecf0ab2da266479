"""Every fault kind, applied to running guests, with its effect seen from inside them."""

from __future__ import annotations

import re
from itertools import pairwise

import pytest
from simulate import scenario, simulate

pytestmark = pytest.mark.kvm
MS = 1_000_000


@pytest.fixture(scope="module")
def probe(guest_bin):
    return guest_bin("musl", "probe")


def _fault(kind, at=0, **params):
    return {"kind": kind, "at": at, **params}


def test_partition_with_sides_then_heal(probe):
    """Node 0 alone for 100 ms: 0->1 and 2->0 are cut, 1->2 is not; all flows after heal."""
    run = simulate(scenario(probe, ["ring", "20"], faults=[
        _fault("partition", duration=100, sides=[[0], [1, 2]])]))
    heal_ns = run.of("fault.end")[0][1]
    dropped = run.of("packet.dropped")
    assert {f["reason"] for *_, f in dropped} == {"partition"}
    assert {(f["src"], f["dst"]) for *_, f in dropped} == {(0, 1), (2, 0)}
    assert all(vt < heal_ns for _, vt, *_ in dropped)
    assert len(run.received(2)) == 20  # same side throughout
    assert 0 < len(run.received(1)) < 20  # gets 0's rounds only after the heal


def test_heal_ends_every_partition(probe):
    run = simulate(scenario(probe, ["ring", "20"], faults=[
        _fault("partition", sides=[[0], [1, 2]]), _fault("heal", at=50)]))
    assert [f["reason"] for *_, f in run.of("fault.end")] == ["healed"]
    late = [vt for _, vt, *_ in run.of("packet.dropped")]
    assert late and max(late) < 51 * MS


def test_latency_and_jitter(probe):
    run = simulate(scenario(probe, ["ring", "10"], faults=[
        _fault("latency", latency_ns="7ms"), _fault("jitter", jitter_ns="2ms")]))
    delays = [f["time_ns"] - f["sent_ns"] for *_, f in run.of("packet.delivered")]
    assert delays and all(7 * MS <= d <= 9 * MS for d in delays), delays
    assert len(set(delays)) > 1


def test_loss_drops_everything_touching_the_node(probe):
    run = simulate(scenario(probe, ["ring", "10"], faults=[
        _fault("loss", node=0, probability=1.0)]))
    assert run.received(1) == [] and run.received(0) == []  # 0->1 and 2->0
    assert len(run.received(2)) == 10


def test_corruption_flips_payload_bits(probe):
    run = simulate(scenario(probe, ["ring", "10"], faults=[_fault("corrupt", probability=1.0)]))
    got = run.received(1)
    sent = [f"r{i} from 0".encode() for i in range(10)]
    assert len(got) == 10 and all(a != b for a, b in zip(got, sent, strict=True)), got
    assert run.sim.fabric.stats.corrupted == 30


def test_reorder_lets_later_packets_overtake(probe):
    run = simulate(scenario(probe, ["burst", "20"], faults=[
        _fault("reorder", probability=0.5)]))
    order = [int(m.split()[0][1:]) for m in run.received(1)]
    assert sorted(order) == list(range(20)) and order != sorted(order)


def test_duplication_delivers_twice(probe):
    run = simulate(scenario(probe, ["burst", "5"], faults=[
        _fault("duplicate", probability=1.0)]))
    got = run.received(1)
    assert sorted(got) == sorted([f"b{i} from 0".encode() for i in range(5)] * 2)


def test_bandwidth_queues_a_burst(probe):
    """10 kbit/s: a 9-byte datagram takes 7.2 ms to serialize, so a burst spreads out."""
    run = simulate(scenario(probe, ["burst", "5"], faults=[
        _fault("bandwidth", node=0, bandwidth_bps=10_000)]))
    times = sorted(f["time_ns"] for *_, f in run.of("packet.delivered") if f["src"] == 0)
    gaps = {b - a for a, b in pairwise(times)}
    assert gaps == {7_200_000}, gaps
    assert run.sim.fabric.stats.delayed["queue"] >= 4


def test_kill_then_restart_from_initial_snapshot(probe):
    """Killed at 50 ms for 50 ms: silent meanwhile, then the program starts over (r0 again)."""
    run = simulate(scenario(probe, ["ring", "20"], faults=[
        _fault("kill", at=50, node=1, duration=50)]))
    assert run.statuses(1) == ["killed", "restarting", "running", "exited"]
    killed_ns, restarted_ns = (vt for _, vt, _, _, f in run.of("node.status", 1)
                               if f["status"] in ("killed", "running"))
    node1 = [vt for _, vt, node, kind, _ in run.events if node == 1 and kind == "syscall"]
    assert not [vt for vt in node1 if killed_ns < vt < restarted_ns]
    sent = [f["packet_id"] for *_, f in run.of("packet.sent") if f["src"] == 1]
    received_by_2 = run.received(2)
    assert received_by_2.count(b"r0 from 1") == 2  # its first life and its second
    assert len(sent) > 20
    drops = [f for *_, f in run.of("packet.dropped") if f["dst"] == 1]
    assert drops and {f["reason"] for f in drops} == {"node_down"}


def test_restart_is_kill_and_boot_at_once(probe):
    run = simulate(scenario(probe, ["ring", "20"], faults=[_fault("restart", at=60, node=2)]))
    assert run.statuses(2) == ["killed", "restarting", "running", "exited"]
    assert run.received(0).count(b"r0 from 2") == 2


def test_restarted_node_draws_fresh_random_numbers(probe):
    run = simulate(scenario(probe, ["random"], count=1, faults=[_fault("restart", at=50, node=0)],
                            wait_for_setup=False))
    lives = [line for _, line in run.lines(0) if line.startswith(b"random ")]
    assert len(lives) == 2 and lives[0] != lives[1]


def test_pause_then_resume(probe):
    run = simulate(scenario(probe, ["ring", "20"], faults=[
        _fault("pause", at=40, node=1, duration=60)]))
    assert run.statuses(1)[:2] == ["paused", "running"]
    paused_ns, resumed_ns = (vt for _, vt, *_ in run.of("node.status", 1)[:2])
    assert resumed_ns - paused_ns >= 60 * MS - 2 * MS
    activity = [vt for _, vt, node, kind, _ in run.events
                if node == 1 and kind in ("syscall", "output")]
    assert not [vt for vt in activity if paused_ns < vt < resumed_ns]
    # what arrived during the pause waited in its inbox: nothing from node 0 was lost
    assert len(run.received(1)) == 20


def _clock_lines(run, node=0):
    pattern = re.compile(rb"^clock mono=(\d+) real=(\d+)$")
    out = []
    for vt, line in run.lines(node):
        m = pattern.match(line)
        if m:
            out.append((vt, int(m.group(1)), int(m.group(2))))
    return out


def test_clock_skew_speeds_up_the_nodes_clock_and_timers(probe):
    """At rate 1.0 the node's clock runs twice as fast: its 100 ms sleeps take 50 ms."""
    run = simulate(scenario(probe, ["clock", "6"], count=2, faults=[
        _fault("clock_skew", node=0, rate=1.0)]))
    fast, normal = _clock_lines(run, 0), _clock_lines(run, 1)
    fast_gaps = [b[0] - a[0] for a, b in pairwise(fast)]
    assert all(49 * MS <= g <= 51 * MS for g in fast_gaps[1:]), fast_gaps
    assert all(99 <= b[1] - a[1] <= 101 for a, b in pairwise(fast[1:]))
    assert fast[-1][0] < normal[-1][0]


def test_clock_skew_slow_and_its_end(probe):
    run = simulate(scenario(probe, ["clock", "8"], count=1, faults=[
        _fault("clock_skew", node=0, rate=-0.5, duration=300)]))
    lines = _clock_lines(run)
    gaps = [b[0] - a[0] for a, b in pairwise(lines)]
    assert max(gaps) >= 199 * MS and min(gaps) <= 101 * MS, gaps  # slowed, then normal again


@pytest.mark.parametrize("delta_s", [5, -5])
def test_clock_jump_moves_realtime_not_monotonic(probe, delta_s):
    run = simulate(scenario(probe, ["clock", "6"], count=1, faults=[
        _fault("clock_jump", at=250, node=0, delta_ns=f"{delta_s}s")]))
    lines = _clock_lines(run)
    real_steps = [b[2] - a[2] for a, b in pairwise(lines)]
    mono_steps = [b[1] - a[1] for a, b in pairwise(lines)]
    assert any(abs(step - (delta_s * 1000 + 100)) <= 2 for step in real_steps), real_steps
    assert all(95 <= step <= 105 for step in mono_steps), mono_steps


def test_memory_pressure_makes_mmap_fail_then_lifts(probe):
    run = simulate(scenario(probe, ["alloc", "10"], count=1, faults=[
        _fault("memory_pressure", node=0, at=300, duration=300, limit_bytes="4MiB")]))
    results = [line for _, line in run.lines(0) if line.startswith(b"alloc")]
    assert results[:3] == [b"alloc ok"] * 3
    assert b"alloc ENOMEM" in results
    assert results[-1] == b"alloc ok"


def test_faults_wait_for_setup_complete(probe):
    """Ticks count from the moment the last node called cr_setup_complete."""
    run = simulate(scenario(probe, ["ring", "20"], faults=[_fault("latency", at=30,
                                                                  latency_ns="3ms")]))
    setups = [vt for _, vt, *_ in run.of("setup_complete")]
    gate_tick = max(setups) // MS
    [start] = run.of("fault.start")
    assert start[0] == gate_tick + 30


def _disk_lines(run, node=0):
    return [line.decode() for _, line in run.lines(node)]


def test_restart_keeps_only_what_was_fsynced(probe):
    """Boot counter (fsynced + dir fsync) survives; an unsynced new file does not."""
    run = simulate(scenario(probe, ["disk", "5"], count=1, faults=[
        _fault("kill", at=200, node=0, duration=100)], duration="1s"))
    boots = [line for line in _disk_lines(run) if line.startswith("boot")]
    assert boots == ["boot 0 unsynced=absent torn=-1", "boot 1 unsynced=absent torn=0"]


def test_torn_write_on_crash_keeps_part_of_unsynced_data(probe):
    run = simulate(scenario(probe, ["disk", "5"], count=1, duration="1s", faults=[
        _fault("torn_write", at=0, node=0), _fault("kill", at=200, node=0, duration=100)]))
    boots = [line for line in _disk_lines(run) if line.startswith("boot")]
    torn = int(boots[1].rsplit("=", 1)[1])
    assert 0 < torn <= 8192 and torn % 512 == 0, boots


@pytest.mark.parametrize("kind, expect", [
    ("disk_write_error", "write I/O error"),
    ("disk_full", "write No space left on device"),
    ("disk_read_error", "read I/O error"),
])
def test_disk_faults_reach_the_program(probe, kind, expect):
    run = simulate(scenario(probe, ["disk", "8"], count=1, faults=[
        _fault(kind, at=250, node=0, duration=300)]))
    rounds = [line for line in _disk_lines(run) if line.startswith("write ")]
    assert rounds[0] == "write ok fsync ok read 1"
    hit = [line for line in rounds if expect in line]
    assert hit and rounds[-1] == "write ok fsync ok read 1", rounds
    events = run.of("disk.fault", 0)
    assert events and {f["fault"] for *_, f in events} == {kind}


def test_disk_corrupt_read_flips_bits_of_what_is_read(probe):
    run = simulate(scenario(probe, ["disk", "8"], count=1, faults=[
        _fault("disk_corrupt_read", at=250, node=0, duration=300)]))
    reads = [line.rsplit(" ", 1)[1] for line in _disk_lines(run) if line.startswith("write ")]
    assert reads[0] == "1" and any(r != "1" for r in reads), reads
    assert run.sim.nodes[0].process.fs.read_file("/data/boot") == b"1"  # stored data intact
