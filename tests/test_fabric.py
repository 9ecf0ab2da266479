"""NetworkFabric: each stage's effect, the max rule, partitions, determinism, checkpoints."""

from __future__ import annotations

import statistics
from collections import Counter
from itertools import pairwise
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chaosreplay.events import EventKind
from chaosreplay.sim.network.fabric import (
    DROP_LOSS,
    DROP_NODE_DOWN,
    DROP_PARTITION,
    Delivery,
    LinkParams,
    NetworkFabric,
    PacketFlags,
)

MS = 1_000_000
US = 1_000


def kinds(events: list[Any]) -> list[str]:
    return [e.kind.value for e in events]


def blast(fabric: NetworkFabric, count: int, src: int = 0, dst: int = 1, gap_ns: int = 100 * US,
          size: int = 32) -> tuple[list[Any], list[Delivery]]:
    """Send `count` packets `gap_ns` apart, delivering as time passes; (events, deliveries)."""
    events: list[Any] = []
    deliveries: list[Delivery] = []
    for i in range(count):
        now = i * gap_ns
        deliveries += fabric.pop_due(now)
        events += fabric.send(now, src, dst, i.to_bytes(4, "little") * (size // 4))
    deliveries += fabric.pop_due(10**15)
    return events, deliveries


def test_perfect_link_delivers_everything_in_order_after_latency() -> None:
    """With default parameters every packet arrives exactly latency_ns later, in send order."""
    fabric = NetworkFabric(1, 2)
    _, got = blast(fabric, 200)
    assert [d.packet_id for d in got] == list(range(200))
    assert all(d.deliver_ns - d.sent_ns == 1 * MS for d in got)
    assert fabric.stats.sent == fabric.stats.delivered == 200
    assert fabric.stats.dropped_total == 0


def test_loss_rate_matches_probability() -> None:
    """About loss*N packets are dropped, with reason loss, and the rest arrive."""
    fabric = NetworkFabric(7, 2, LinkParams(loss=0.2))
    events, got = blast(fabric, 5000)
    dropped = [e for e in events if e.kind == EventKind.PACKET_DROPPED]
    assert all(e.detail["reason"] == DROP_LOSS for e in dropped)
    rate = len(dropped) / 5000
    assert 0.18 < rate < 0.22, rate
    assert len(got) + len(dropped) == 5000
    assert fabric.stats.dropped == {DROP_LOSS: len(dropped)}


def test_duplication_delivers_a_second_identical_copy() -> None:
    """About duplicate*N packets arrive twice; the copy has the same payload and DUPLICATE flag."""
    fabric = NetworkFabric(3, 2, LinkParams(duplicate=0.3, jitter_ns=2 * MS))
    events, got = blast(fabric, 3000)
    by_id = Counter(d.packet_id for d in got)
    twice = [pid for pid, n in by_id.items() if n == 2]
    assert 0.27 < len(twice) / 3000 < 0.33, len(twice)
    assert max(by_id.values()) == 2
    assert fabric.stats.duplicated == len(twice) == kinds(events).count("packet.duplicated")
    copies = [d for d in got if d.copy == 1]
    originals = {d.packet_id: d for d in got if d.copy == 0}
    assert all(PacketFlags.DUPLICATE in c.flags for c in copies)
    assert all(c.payload == originals[c.packet_id].payload for c in copies)
    # The copy draws its own jitter, so it does not always arrive with the original.
    assert any(c.deliver_ns != originals[c.packet_id].deliver_ns for c in copies)


def test_reorder_lets_later_packets_overtake() -> None:
    """With reorder>0 the arrival order differs from the send order; with 0 it never does."""
    def inversions(got: list[Delivery]) -> int:
        ids = [d.packet_id for d in got]
        return sum(1 for a, b in pairwise(ids) if a > b)

    calm = NetworkFabric(5, 2)
    assert inversions(blast(calm, 500)[1]) == 0
    fabric = NetworkFabric(5, 2, LinkParams(reorder=0.2, reorder_delay_ns=3 * MS))
    events, got = blast(fabric, 2000)
    delayed = [e for e in events if e.kind == EventKind.PACKET_DELAYED]
    assert 0.17 < len(delayed) / 2000 < 0.23, len(delayed)
    assert all(e.detail["reason"] == "reorder" and 1 <= e.detail["delay_ns"] <= 3 * MS
               for e in delayed)
    assert inversions(got) > 100, inversions(got)
    assert fabric.stats.delayed == {"reorder": len(delayed)}


def test_bandwidth_spaces_packets_by_serialization_time() -> None:
    """At 8 Mbit/s a 1000-byte packet takes 1 ms; a burst leaves the sender 1 ms apart, FIFO."""
    fabric = NetworkFabric(1, 3, LinkParams(latency_ns=0, bandwidth_bps=8_000_000))
    events: list[Any] = []
    for i in range(10):
        events += fabric.send(0, 0, 1 + i % 2, bytes(1000))  # two receivers, one sender queue
    got = fabric.pop_due(10**12)
    assert [d.deliver_ns for d in got] == [(i + 1) * MS for i in range(10)]
    assert [d.packet_id for d in got] == list(range(10))
    assert fabric.stats.delayed == {"queue": 9}
    assert all(PacketFlags.QUEUED in d.flags for d in got[1:])
    # An idle sender's link is free again: the next packet serializes from its send time.
    fabric.send(20 * MS, 0, 1, bytes(500))
    assert fabric.pop_due(10**12)[0].deliver_ns == 20 * MS + MS // 2


def test_corruption_flips_exactly_one_bit() -> None:
    """A corrupted payload differs from the original in one bit, which the event names."""
    fabric = NetworkFabric(11, 2, LinkParams(corrupt=1.0))
    events, got = blast(fabric, 300, size=64)
    corrupted = {e.packet_id: e for e in events if e.kind == EventKind.PACKET_CORRUPTED}
    assert len(corrupted) == 300 == fabric.stats.corrupted
    for d in got:
        original = d.packet_id.to_bytes(4, "little") * 16
        diff = [(i, a ^ b) for i, (a, b) in enumerate(zip(original, d.payload, strict=True))
                if a != b]
        event = corrupted[d.packet_id]
        assert diff == [(event.detail["byte"], 1 << event.detail["bit"])]
        assert PacketFlags.CORRUPTED in d.flags
    assert len({e.detail["byte"] for e in corrupted.values()}) > 30  # the position is drawn


def test_jitter_spreads_delays_within_bounds() -> None:
    """Delays lie in [latency, latency + jitter] and are spread across that range."""
    fabric = NetworkFabric(2, 2, LinkParams(latency_ns=2 * MS, jitter_ns=1 * MS))
    _, got = blast(fabric, 2000)
    delays = [d.deliver_ns - d.sent_ns for d in got]
    assert min(delays) >= 2 * MS and max(delays) <= 3 * MS
    assert statistics.pstdev(delays) > 0.25 * MS  # uniform on 1 ms has stdev ≈ 0.29 ms
    assert abs(statistics.mean(delays) - 2.5 * MS) < 0.05 * MS


def test_pair_uses_the_more_severe_parameter_of_sender_and_receiver() -> None:
    """A lossy or slow node affects packets it sends and receives, not other pairs."""
    fabric = NetworkFabric(1, 3, LinkParams(latency_ns=MS, bandwidth_bps=1_000_000))
    fabric.set_link_params(1, loss=1.0, latency_ns=5 * MS)
    fabric.set_link_params(2, bandwidth_bps=100_000)
    assert fabric.link_params(0, 1).loss == 1.0 and fabric.link_params(1, 0).loss == 1.0
    assert fabric.link_params(0, 1).latency_ns == 5 * MS
    assert fabric.link_params(0, 2).loss == 0.0 and fabric.link_params(0, 2).latency_ns == MS
    assert fabric.link_params(0, 2).bandwidth_bps == 100_000  # the lower rate is more severe
    fabric.set_link_params(None, bandwidth_bps=0)
    assert fabric.link_params(0, 1).bandwidth_bps == 0  # unlimited on both ends
    assert fabric.link_params(0, 2).bandwidth_bps == 100_000
    assert kinds(fabric.send(0, 0, 1, b"x"))[-1] == "packet.dropped"
    assert kinds(fabric.send(0, 1, 0, b"x"))[-1] == "packet.dropped"
    assert kinds(fabric.send(0, 0, 2, b"x")) == ["packet.sent"]


def test_keyed_layers_add_severity_and_clear_back_to_the_base() -> None:
    """A fault layer makes named parameters more severe; clearing it restores the base exactly."""
    fabric = NetworkFabric(1, 3, LinkParams(latency_ns=MS, loss=0.1))
    before = [fabric.node_params(n) for n in range(3)]
    fabric.set_link_params(2, key="f1", latency_ns=10 * MS, loss=0.05)
    fabric.set_link_params(None, key="f2", jitter_ns=MS)
    assert fabric.node_params(2).latency_ns == 10 * MS
    assert fabric.node_params(2).loss == 0.1  # a layer never makes a link better
    assert fabric.node_params(0).jitter_ns == MS and fabric.node_params(0).latency_ns == MS
    fabric.clear_link_params("f1")
    fabric.clear_link_params("f2")
    assert [fabric.node_params(n) for n in range(3)] == before


def test_partition_sides_and_implicit_rest_side() -> None:
    """Packets cross only within a side; unnamed nodes form one extra side; heal restores."""
    fabric = NetworkFabric(1, 5)
    fabric.set_partition([[0, 1], [2]])
    reach = {(a, b): not fabric.separated(a, b) for a in range(5) for b in range(5)}
    assert reach[(0, 1)] and reach[(3, 4)] and reach[(2, 2)]
    assert not reach[(0, 2)] and not reach[(3, 0)] and not reach[(2, 4)]
    events = fabric.send(0, 0, 2, b"hi")
    assert events[-1].detail["reason"] == DROP_PARTITION
    fabric.heal()
    assert kinds(fabric.send(0, 0, 2, b"hi")) == ["packet.sent"]


def test_isolation_and_keyed_heal() -> None:
    """An isolated node reaches no one; healing one key leaves other partitions in place."""
    fabric = NetworkFabric(1, 4)
    fabric.isolate(3, key="iso")
    fabric.set_partition([[0], [1, 2, 3]], key="p")
    assert all(fabric.separated(3, n) for n in range(3))
    fabric.heal("iso")
    assert not fabric.separated(3, 1) and fabric.separated(0, 1)
    fabric.heal("p")
    assert fabric.partitions() == {}
    with pytest.raises(ValueError, match="two sides"):
        fabric.set_partition([[0, 1], [1]])


def test_node_down_drops_in_flight_and_new_packets() -> None:
    """A down node loses its in-flight packets and gets none until it is up again."""
    fabric = NetworkFabric(1, 3)
    fabric.send(0, 0, 1, b"a")
    fabric.send(0, 0, 2, b"b")
    dropped = fabric.set_node_down(500 * US, 1, True)
    assert [(e.packet_id, e.detail["reason"]) for e in dropped] == [(0, DROP_NODE_DOWN)]
    assert [d.dst for d in fabric.in_flight()] == [2]
    assert fabric.send(MS, 2, 1, b"c")[-1].detail["reason"] == DROP_NODE_DOWN
    fabric.set_node_down(2 * MS, 1, False)
    assert kinds(fabric.send(2 * MS, 2, 1, b"d")) == ["packet.sent"]


def test_stages_run_in_the_documented_order() -> None:
    """partition → loss → bandwidth → corruption → latency → reorder → duplication."""
    fabric = NetworkFabric(1, 3, LinkParams(loss=1.0, corrupt=1.0, duplicate=1.0))
    fabric.set_partition([[0], [1, 2]])
    assert fabric.send(0, 0, 1, b"abc")[-1].detail["reason"] == DROP_PARTITION  # before loss
    events = fabric.send(0, 1, 2, b"abc")
    assert kinds(events) == ["packet.sent", "packet.dropped"]  # lost before it is corrupted
    fabric.set_link_params(None, loss=0.0, reorder=1.0, bandwidth_bps=8_000_000)
    fabric.send(0, 1, 2, bytes(1000))
    events = fabric.send(0, 1, 2, bytes(1000))
    assert kinds(events) == ["packet.sent", "packet.delayed", "packet.corrupted",
                             "packet.delayed", "packet.duplicated"]
    assert [e.detail.get("reason") for e in events if e.kind == EventKind.PACKET_DELAYED] == [
        "queue", "reorder"]
    original, copy = sorted((d for d in fabric.pop_due(10**12) if d.packet_id == 3),
                            key=lambda d: d.copy)
    assert original.payload == copy.payload != bytes(1000)  # the copy is of the corrupted packet
    # The copy leaves with the original (after serialization) but skips the reorder hold-back.
    assert copy.deliver_ns - MS <= 2 * MS <= original.deliver_ns - MS


def test_pop_due_total_order_and_next_delivery() -> None:
    """Same-time deliveries come out by packet id; next_delivery_ns tracks the earliest."""
    fabric = NetworkFabric(1, 3)
    assert fabric.next_delivery_ns() is None
    fabric.send(5 * MS, 2, 0, b"late")
    fabric.send(0, 1, 0, b"x")
    fabric.send(0, 2, 0, b"y")
    assert fabric.next_delivery_ns() == MS
    assert fabric.pop_due(MS - 1) == []
    assert [d.packet_id for d in fabric.pop_due(MS)] == [1, 2]
    assert fabric.next_delivery_ns() == 6 * MS


def test_records_are_msgpack_ready() -> None:
    """Event and delivery records use the event kinds and pack with msgpack."""
    fabric = NetworkFabric(1, 2, LinkParams(corrupt=1.0, duplicate=1.0))
    events = fabric.send(0, 0, 1, b"payload")
    assert kinds(events) == ["packet.sent", "packet.corrupted", "packet.duplicated"]
    records = [e.to_record() for e in events] + [d.to_record() for d in fabric.pop_due(10**9)]
    assert records[0]["kind"] == "packet.sent" and type(records[0]["kind"]) is str
    assert msgpack.unpackb(msgpack.packb(records)) == records


def test_invalid_arguments_raise() -> None:
    """Unknown parameters, bad values and unknown nodes are refused."""
    fabric = NetworkFabric(1, 2)
    with pytest.raises(ValueError, match="unknown link parameter"):
        fabric.set_link_params(None, lost=0.1)
    with pytest.raises(ValueError, match="probability"):
        fabric.set_link_params(0, loss=1.5)
    with pytest.raises(ValueError, match="does not exist"):
        fabric.send(0, 0, 2, b"")


def workload(fabric: NetworkFabric, start: int, stop: int) -> list[dict[str, Any]]:
    """A mixed traffic pattern with partition changes; the records it produced."""
    out: list[dict[str, Any]] = []
    for step in range(start, stop):
        now = step * 250 * US
        out += [d.to_record() | {"payload": d.payload} for d in fabric.pop_due(now)]
        if step % 97 == 0:
            fabric.set_partition([[step % 4]], key="p")
        if step % 97 == 40:
            fabric.heal("p")
        src, dst = step % 4, (step * 7 + 1) % 4
        out += [e.to_record() for e in fabric.send(now, src, dst, step.to_bytes(8, "little"))]
    return out


def lossy() -> NetworkFabric:
    return NetworkFabric(42, 4, LinkParams(
        latency_ns=MS, jitter_ns=3 * MS, loss=0.1, corrupt=0.1, reorder=0.1, duplicate=0.1,
        bandwidth_bps=2_000_000))


def test_same_seed_gives_identical_events_and_other_seeds_differ() -> None:
    """Determinism: two fabrics with the same seed produce identical records."""
    a, b = workload(lossy(), 0, 600), workload(lossy(), 0, 600)
    assert a == b
    other = NetworkFabric(43, 4, lossy().link_params(0, 0))
    assert workload(other, 0, 600) != a


def test_snapshot_restore_mid_flight_equals_uninterrupted_run() -> None:
    """Snapshot half way (through msgpack), restore into a fresh fabric: identical continuation."""
    whole = lossy()
    expected = workload(whole, 0, 800)
    first = lossy()
    head = workload(first, 0, 400)
    assert first.in_flight(), "the snapshot should be taken with packets in flight"
    blob = msgpack.packb(first.snapshot())
    resumed = NetworkFabric.from_snapshot(msgpack.unpackb(blob))
    assert resumed.snapshot() == first.snapshot()
    assert head + workload(resumed, 400, 800) == expected
    assert resumed.snapshot() == whole.snapshot()


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 5 * MS),
                           st.binary(max_size=40)), min_size=1, max_size=60),
    seed=st.integers(0, 2**32),
    loss=st.floats(0, 1), dup=st.floats(0, 1), reorder=st.floats(0, 1),
    jitter=st.integers(0, 5 * MS), bps=st.integers(0, 10_000_000),
)
def test_property_no_early_and_no_extra_deliveries(
    ops: list[tuple[int, int, int, bytes]], seed: int, loss: float, dup: float, reorder: float,
    jitter: int, bps: int,
) -> None:
    """No packet arrives before it was sent; each arrives at most 1 + (duplicated) times."""
    fabric = NetworkFabric(seed, 4, LinkParams(
        loss=loss, duplicate=dup, reorder=reorder, jitter_ns=jitter, bandwidth_bps=bps))
    now = 0
    duplicated: Counter[int] = Counter()
    got: list[Delivery] = []
    for src, dst, advance, payload in ops:
        now += advance
        popped = fabric.pop_due(now)
        assert all(d.deliver_ns <= now for d in popped)
        got += popped
        for e in fabric.send(now, src, dst, payload):
            if e.kind == EventKind.PACKET_DUPLICATED:
                duplicated[e.packet_id] += 1
    got += fabric.pop_due(10**18)
    assert all(d.deliver_ns >= d.sent_ns for d in got)
    counts = Counter(d.packet_id for d in got)
    assert all(n <= 1 + duplicated[pid] for pid, n in counts.items())
    assert [d.order_key() for d in got] == sorted(d.order_key() for d in got)
    assert fabric.stats.delivered == len(got)
    assert fabric.stats.sent == len(ops)


def test_payload_prefixes_are_kept_in_sent_and_delivered_records() -> None:
    """With payload_bytes set, packet.sent keeps the first bytes as sent and packet.delivered
    the first bytes as delivered (corruption included); `size` stays the whole payload's.
    With 0 (the fabric's own default) neither record has a payload."""
    fabric = NetworkFabric(11, 2, LinkParams(corrupt=1.0))
    fabric.payload_bytes = 40
    events, got = blast(fabric, 50, size=64)
    sent = {e.packet_id: e for e in events if e.kind == EventKind.PACKET_SENT}
    for d in got:
        original = d.packet_id.to_bytes(4, "little") * 16
        assert sent[d.packet_id].detail["payload"] == original[:40]
        assert sent[d.packet_id].size == 64
        record = d.to_record(fabric.payload_bytes)
        assert record["payload"] == d.payload[:40] and record["size"] == 64
    assert any(d.to_record(40)["payload"] != sent[d.packet_id].detail["payload"]
               for d in got)  # some flipped bit lies in the kept prefix
    plain = NetworkFabric(11, 2)
    plain_events, plain_got = blast(plain, 5)
    assert all("payload" not in e.detail for e in plain_events)
    assert all("payload" not in d.to_record() for d in plain_got)
