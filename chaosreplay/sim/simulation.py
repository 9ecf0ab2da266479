"""The controller: N node programs on one virtual timeline, with network, faults and oracle.

Usage::

    sim = Simulation(scenario, images, sink=writer.append)   # images: one per node group
    result = sim.run()

Scheduling (DESIGN §4): at every step the controller takes the earliest thing that can
happen — a checkpoint, a fault action, a packet delivery, or a runnable node — ties going
in that order and, between nodes, by index. A node runs until it blocks (sleep, cr_recv),
ends, or its virtual time passes the next other thing's time; then the controller picks
again. Everything is decided by virtual times and indices, so a seed and a scenario give
one event stream, byte for byte.

Every event goes to `sink(tick, vtime_ns, node, kind, fields)` (node -1: the simulation
itself). Ticks never decrease: an event is stamped with the larger of its node's tick and
the last one recorded, because a node may overshoot its deadline by one system call.

Checkpoints (every `scenario.checkpoint_interval` ticks) capture everything the
continuation depends on — each node's VM, kernel state and disk, the fabric with packets
in flight, the fault engine, the oracle, the inboxes and this controller's own counters —
so `Simulation.resume` continues exactly as the uninterrupted run did (`sim_state.py`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from chaosreplay.events import EventKind
from chaosreplay.kernel.fastpath import DEFAULT as FAST_PATH_DEFAULT
from chaosreplay.kernel.fs.root_layer import RootLayer
from chaosreplay.kernel.process import Checkpoint, GuestProcess, ProcessConfig, Status
from chaosreplay.sim.faults.engine import START, FaultAction
from chaosreplay.sim.faults.model import FaultKind
from chaosreplay.sim.network.datagrams import NEVER, Messaging
from chaosreplay.sim.oracle import Bug, PropertyOracle
from chaosreplay.sim.reseed import next_stream_seed, rekey_process
from chaosreplay.sim.scenario import NodeSpec, Scenario
from chaosreplay.sim.validation import NS_PER_TICK
from chaosreplay.vm.elf import ProgramImage
from chaosreplay.vm.vmm import Snapshot
from chaosreplay.vm.watchdog import Watchdog

EventSink = Callable[[int, int, int, str, dict[str, Any]], Any]
PROGRESS_EVERY_NS = 100 * NS_PER_TICK


class NodeStatus(StrEnum):
    """What the controller lets a node do."""

    RUNNING = "running"
    PAUSED = "paused"
    KILLED = "killed"
    RESTARTING = "restarting"
    EXITED = "exited"
    CRASHED = "crashed"
    HUNG = "hung"


ENDED = (NodeStatus.EXITED, NodeStatus.CRASHED, NodeStatus.HUNG)
STDERR_TAIL_LINES = 5  # of a failed node's stderr, in the run's summary
STDERR_TAIL_WIDTH = 200
DISK_FAULTS = (FaultKind.DISK_READ_ERROR, FaultKind.DISK_WRITE_ERROR, FaultKind.DISK_FULL,
               FaultKind.TORN_WRITE, FaultKind.DISK_CORRUPT_READ)


def root_layers(scenario: Scenario) -> list[RootLayer | None]:
    """Each group's root layer; groups whose roots have the same digest share one."""
    by_digest: dict[str, RootLayer] = {}
    out: list[RootLayer | None] = []
    for group in scenario.nodes:
        digest = group.root_digest
        if digest and digest not in by_digest:
            by_digest[digest] = RootLayer(group.root)
        out.append(by_digest[digest] if digest else None)
    return out


@dataclass(slots=True)
class Node:
    """One node of the run: its program, its process and what the controller knows of it."""

    spec: NodeSpec
    image: ProgramImage
    process: GuestProcess
    initial: Checkpoint  # taken before the first instruction: what a restart returns to
    status: NodeStatus = NodeStatus.RUNNING
    snap: Snapshot | None = None  # reused by periodic checkpoints (incremental)
    page_hashes: dict[int, bytes] = field(default_factory=dict)  # pfn -> SHA-256 at last take
    # The same for each other process of the node, by memory region name (sim/checkpoint.py)
    process_snaps: dict[str, tuple[Snapshot, dict[int, bytes]]] = field(default_factory=dict)

    def forget_snapshots(self) -> None:
        """The next checkpoint copies every page of every process (a new recording's first)."""
        self.snap = None
        self.process_snaps.clear()

    @property
    def index(self) -> int:
        """The node's 0-based index."""
        return self.spec.index

    def ready_ns(self) -> int:
        """When the node can next run (NEVER while it waits for a packet forever)."""
        p = self.process
        return p.vtime_ns if p.wake_at_ns is None else max(p.vtime_ns, p.wake_at_ns)


@dataclass
class Failure:
    """A node that crashed, hung or exited with a status its scenario does not expect: a
    failure of the run even without a failed assertion."""

    kind: str  # "crash" | "hang" | "exit"
    node: int
    tick: int
    detail: str
    stderr: list[str] = field(default_factory=list)  # the node's last stderr lines then

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return {"kind": self.kind, "node": self.node, "tick": self.tick, "detail": self.detail,
                "stderr": list(self.stderr)}


def stderr_tail(data: bytes | bytearray) -> list[str]:
    """The last few lines a node wrote to stderr, as text (each cut to a screen line)."""
    lines = bytes(data[-STDERR_TAIL_LINES * 1024:]).decode("utf-8", "replace").splitlines()
    return [line if len(line) <= STDERR_TAIL_WIDTH else line[:STDERR_TAIL_WIDTH - 3] + "..."
            for line in lines[-STDERR_TAIL_LINES:]]


@dataclass
class RunResult:
    """How a run ended and what it found."""

    reason: str  # "duration" | "bug" | "crash" | "hang" | "exit" | "all nodes ended"
    end_tick: int
    events: int
    bugs: list[Bug] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    unsatisfied: list[dict[str, Any]] = field(default_factory=list)
    network: dict[str, Any] = field(default_factory=dict)
    nodes: list[dict[str, Any]] = field(default_factory=list)  # name, status, how it ended

    @property
    def failed(self) -> bool:
        """A bug (failed always, reached unreachable), a crash or a hang."""
        return bool(self.bugs or self.failures)

    def summary(self) -> dict[str, Any]:
        """Plain data for the recording's summary and for --json output."""
        return {
            "reason": self.reason, "end_tick": self.end_tick, "events": self.events,
            "failed": self.failed,
            "bugs": [{k: v for k, v in b.to_record().items() if k != "kind"} for b in self.bugs],
            "failures": [f.to_dict() for f in self.failures],
            "unsatisfied": self.unsatisfied, "network": self.network, "nodes": self.nodes,
        }


def _expected(spec: NodeSpec) -> str:
    """A node's expected endings in words: "0", "0 or 3", "none"."""
    return " or ".join(str(e) for e in spec.expect_exit) or "none: it must not end"


def _node_outcome(node: Node) -> dict[str, Any]:
    """How a node stands at the end of the run: name, status and, once ended, how."""
    p = node.process
    how = ""
    if node.status is NodeStatus.EXITED:
        how = f"exit {p.exit_code or 0}"
    elif node.status is NodeStatus.CRASHED:
        how = p.crash.describe() if p.crash is not None else "crashed"
    return {"node": node.index, "name": node.spec.name, "status": node.status.value,
            "ended": how}


class Simulation:
    """Runs a scenario's nodes together; see the module docstring."""

    def __init__(
        self,
        scenario: Scenario,
        images: Sequence[ProgramImage],
        *,
        sink: EventSink | None = None,
        trace_syscalls: bool = True,
        keep_going: bool = False,
        on_checkpoint: Callable[[Any], None] | None = None,
        on_progress: Callable[[Simulation], None] | None = None,
        hang_seconds: float = 10.0,
        fast_path: bool = FAST_PATH_DEFAULT,
    ) -> None:
        if len(images) != len(scenario.nodes):
            raise ValueError(f"{len(scenario.nodes)} node groups but {len(images)} programs")
        self.scenario = scenario
        self.sink = sink
        self.stop_on_bug = scenario.stop_on_first_bug and not keep_going
        self.on_checkpoint = on_checkpoint
        self.on_progress = on_progress
        self.hang_seconds = hang_seconds
        self.fabric = scenario.build_fabric()
        self.engine = scenario.build_fault_engine(self.fabric)
        self.oracle = PropertyOracle()
        self.messaging = Messaging(self.fabric, self._record_at, scenario.network.tcp.config())
        self.end_ns = scenario.duration_ns
        self.interval_ns = scenario.checkpoint_interval * NS_PER_TICK
        # Controller counters: all of them are checkpointed (sim_state.py).
        self.now_ns = 0
        self.tick = 0
        self.event_count = 0
        self.checkpoint_count = 0
        self.next_checkpoint_ns = self.interval_ns if self.interval_ns else NEVER
        self.started = False
        self.stop_reason: str | None = None
        self.bugs: list[Bug] = []
        self.failures: list[Failure] = []
        self._next_progress_ns = 0
        self._stop_pending: str | None = None  # a bug seen mid-run: end after this step
        # run_to(): pause once event number _pause_after has been recorded; a node paused
        # mid-run continues with the deadline it had, so pausing never changes the schedule.
        self._pause_after: int | None = None
        self._suspended: tuple[Node, int] | None = None
        self._running: Node | None = None  # the node inside _run_node
        self.fast_path = fast_path  # guests answer clocks and ids themselves: the same run
        self.roots = root_layers(scenario)
        self.nodes = [self._make_node(spec, images[spec.group], trace_syscalls)
                      for spec in scenario.node_specs()]
        # Per node, the seed its streams were given by `reseed` faults (None: the scenario's);
        # checkpointed, and applied again when a restart rebuilds the streams (sim/reseed.py).
        self.stream_seeds: list[int | None] = [None] * len(self.nodes)

    def _make_node(self, spec: NodeSpec, image: ProgramImage, trace: bool) -> Node:
        scenario = self.scenario
        config = ProcessConfig(
            argv=[image.path.name.encode()] + [a.encode() for a in spec.args],
            envp=[f"{k}={v}".encode() for k, v in spec.env],
            seed=scenario.seed, node_id=spec.index, node_count=scenario.node_count,
            mem_size=scenario.memory_per_node, hostname=spec.name,
            node_names=tuple(s.name for s in scenario.node_specs()),
            scheduler=scenario.scheduler, disk_durability=scenario.disk.durability,
            fast_path=self.fast_path, vdso=scenario.vdso,
            root=self.roots[spec.group],
        )
        process = GuestProcess(image, config, on_event=self._on_process_event,
                               files=scenario.nodes[spec.group].files)
        process.trace_syscalls = trace
        process.network = self.messaging
        process.on_recv_timeout = functools.partial(self.messaging.recv_timed_out, spec.index)
        process.net.configure(self.messaging.tcp_config)
        return Node(spec, image, process, process.checkpoint(incremental=False))

    # -- running ------------------------------------------------------------------------------

    def run(self) -> RunResult:
        """Run to the end of the scenario's duration, the first bug, or every node's end."""
        self._start()
        with Watchdog(self._exit_count, self.hang_seconds):
            while self.stop_reason is None:
                self.step()
        return self.result()

    def _start(self) -> None:
        if not self.started:
            self.started = True
            self._record(-1, 0, EventKind.RUN_START, {
                "seed": self.scenario.seed, "nodes": [n.spec.name for n in self.nodes],
                "duration": self.scenario.duration})

    def run_to(self, seq: int) -> bool:
        """Run until event number `seq` has been recorded, then pause; False if the run ended
        first. The pause comes right after the system call or controller step that recorded
        the event (`event_count` says how far that was); `run`, `step` and `run_to` continue
        exactly as if there had been no pause."""
        self._start()
        self._pause_after = seq
        try:
            with Watchdog(self._exit_count, self.hang_seconds):
                while self.event_count <= seq and self.stop_reason is None:
                    self.step()
        finally:
            self._pause_after = None
        return self.event_count > seq

    def step(self) -> None:
        """Do the earliest thing that can happen (see the module docstring)."""
        if self._suspended is not None:
            node, deadline = self._suspended
            self._suspended = None
            self._run_node(node, deadline)
            self._after_step()
            return
        if all(n.status in ENDED for n in self.nodes):
            # Nothing brings an exited, crashed or hung node back: the run is over now, not
            # at the next checkpoint or fault action.
            self._finish("all nodes ended")
            return
        candidates = self._candidates()
        if not candidates or candidates[0][0] >= self.end_ns:
            if any(n.status not in ENDED for n in self.nodes):
                self.now_ns = self.end_ns  # nothing else can happen before the end: idle to it
                self._finish("duration")
            else:
                self._finish("all nodes ended")
            return
        time_ns, priority, index = candidates[0]
        self.now_ns = max(self.now_ns, time_ns)
        if priority == 0:
            self._checkpoint()
        elif priority == 1:
            for action in self.engine.due(time_ns // NS_PER_TICK):
                self._apply_fault(action)
        elif priority == 2 and index < 0:
            self._deliver_due(time_ns)
        elif priority == 2:  # a node's TCP timers (its kernel runs even while paused)
            node = self.nodes[index]
            node.process.net.on_timers(node.process, time_ns)
        else:
            deadline = candidates[1][0] if len(candidates) > 1 else self.end_ns
            self._run_node(self.nodes[index], min(deadline, self.end_ns))
        self._after_step()

    def _after_step(self) -> None:
        if self._stop_pending is not None and self.stop_reason is None:
            self._finish(self._stop_pending)
            return
        if self.on_progress is not None and self.now_ns >= self._next_progress_ns:
            self._next_progress_ns = self.now_ns + PROGRESS_EVERY_NS
            self.on_progress(self)

    def _candidates(self) -> list[tuple[int, int, int]]:
        """(time, priority, node) of everything pending, earliest first."""
        out = [(self.next_checkpoint_ns, 0, -1)] if self.next_checkpoint_ns < NEVER else []
        fault_tick = self.engine.next_due_tick()
        if fault_tick is not None:
            out.append((fault_tick * NS_PER_TICK, 1, -1))
        delivery = self.fabric.next_delivery_ns()
        if delivery is not None:
            out.append((delivery, 2, -1))
        for node in self.nodes:
            if node.status in (NodeStatus.RUNNING, NodeStatus.PAUSED):
                timer = node.process.net.next_timer_ns()
                if timer is not None:
                    out.append((max(timer, self.now_ns), 2, node.index))
        for node in self.nodes:
            if node.status is NodeStatus.RUNNING:
                ready = node.ready_ns()
                if ready < NEVER:
                    out.append((ready, 3, node.index))
        out.sort()
        return out

    def _run_node(self, node: Node, deadline_ns: int) -> None:
        self.messaging.before_run(node.index, node.process)
        self._running = node
        node.process.kernel.fast_hold = self._pause_after is not None  # stop at any event
        try:
            status = node.process.run(deadline_ns)
        finally:
            self._running = None
            node.process.preempt = False  # a preempt asked for while it blocked or ended
        if (status is Status.RUNNING and self._pause_after is not None
                and self.event_count > self._pause_after and node.process.vtime_ns <= deadline_ns):
            self._suspended = (node, deadline_ns)  # paused by run_to, not by the deadline
        if status is Status.EXITED:
            code = node.process.exit_code or 0
            self._node_ended(node, NodeStatus.EXITED, f"exit {code}")
            if not node.spec.expects_exit(code):
                self._fail(Failure("exit", node.index, self.tick,
                                   f"exited with status {code} (expected "
                                   f"{_expected(node.spec)})",
                                   stderr_tail(node.process.stderr)))
        elif status is Status.CRASHED:
            crash = node.process.crash
            detail = crash.describe() if crash else "crashed"
            self._node_ended(node, NodeStatus.CRASHED, detail)
            if crash is None or not node.spec.expects_signal(crash.signal):
                self._fail(Failure("crash", node.index, self.tick, detail,
                                   stderr_tail(node.process.stderr)))
        elif status is Status.HUNG:
            detail = (f"no VM exit for {self.hang_seconds:g}s of wall time "
                      "(a loop without syscalls?)")
            self._node_ended(node, NodeStatus.HUNG, detail)
            self._fail(Failure("hang", node.index, self.tick, detail,
                               stderr_tail(node.process.stderr)))

    def _deliver_due(self, time_ns: int) -> None:
        for packet in self.fabric.pop_due(time_ns):
            node = self.nodes[packet.dst]
            self.messaging.deliver(packet, node.process, node.status is NodeStatus.RUNNING)

    def _finish(self, reason: str) -> None:
        end_tick = max(self.tick, self.now_ns // NS_PER_TICK)
        for record in self.oracle.unsatisfied_records(end_tick):
            self._record(-1, end_tick * NS_PER_TICK, EventKind.UNSATISFIED, record)
        self._record(-1, end_tick * NS_PER_TICK, EventKind.RUN_END, {
            "reason": reason, "network": self.fabric.stats.to_dict(),
            "statuses": [n.status.value for n in self.nodes]})
        self.stop_reason = reason

    def result(self) -> RunResult:
        """The outcome so far (final once run() returned)."""
        unsatisfied = [{k: v for k, v in r.items() if k != "kind"}
                       for r in self.oracle.unsatisfied_records(self.tick)]
        return RunResult(self.stop_reason or "running", self.tick, self.event_count,
                         list(self.bugs), list(self.failures), unsatisfied,
                         self.fabric.stats.to_dict(), [_node_outcome(n) for n in self.nodes])

    def _fail(self, failure: Failure) -> None:
        self.failures.append(failure)
        if self.stop_on_bug:
            self._stop_pending = self._stop_pending or failure.kind

    def _exit_count(self) -> int:
        return sum(node.process.exit_count() for node in self.nodes)

    # -- events ---------------------------------------------------------------------------------

    def _record(self, node: int, vtime_ns: int, kind: EventKind | str,
                fields: dict[str, Any]) -> None:
        # (_on_process_event inlines this for the events of running guests)
        tick = vtime_ns // NS_PER_TICK
        if tick < self.tick:
            tick = self.tick
        self.tick = tick
        self.event_count += 1
        if self.sink is not None:
            self.sink(tick, vtime_ns, node, str(kind), fields)
        if (self._pause_after is not None and self.event_count > self._pause_after
                and self._running is not None):
            self._running.process.preempt = True  # recorded inside a system call (cr_send)

    def _record_at(self, node: int, vtime_ns: int, record: dict[str, Any]) -> None:
        """Record a make_record() dict (its "kind" key becomes the event kind)."""
        fields = dict(record)
        kind = fields.pop("kind")
        self._record(node, vtime_ns, kind, fields)

    def _on_process_event(self, p: GuestProcess, kind: EventKind, fields: dict[str, Any]) -> None:
        vtime_ns = p.vtime_ns
        tick = vtime_ns // NS_PER_TICK
        if tick < self.tick:
            tick = self.tick
        self.tick = tick
        self.event_count += 1
        if self.sink is not None:
            self.sink(tick, vtime_ns, p.node_id, kind.value, fields)
        if self._pause_after is not None and self.event_count > self._pause_after:
            p.preempt = True  # run_to: back to the controller once this call is answered
        if kind is EventKind.SYSCALL:
            return
        if kind is EventKind.ASSERT:
            bug = self.oracle.observe(self.tick, p.node_id, fields["assert_kind"],
                                      fields["condition"], fields["id"], fields["message"],
                                      fields["file"], fields["line"])
            for conflict in self.oracle.take_new_conflicts():
                self._record_at(p.node_id, p.vtime_ns, conflict.to_record())
            if bug is not None:
                self._record_at(p.node_id, p.vtime_ns, bug.to_record())
                if bug.first:
                    self.bugs.append(bug)
                if self.stop_on_bug:
                    p.preempt = True  # the run ends once this system call is answered
                    self._stop_pending = self._stop_pending or "bug"
        elif kind is EventKind.SETUP_COMPLETE:
            self.engine.on_setup_complete(p.node_id, self.tick)

    def _set_status(self, node: Node, status: NodeStatus, reason: str) -> None:
        node.status = status
        self._record(node.index, max(self.now_ns, node.process.vtime_ns), EventKind.NODE_STATUS,
                     {"status": status.value, "reason": reason})

    def _node_ended(self, node: Node, status: NodeStatus, reason: str) -> None:
        self._set_status(node, status, reason)
        self._node_down(node)

    def _node_down(self, node: Node) -> None:
        self.messaging.record_fabric_events(
            self.fabric.set_node_down(self.now_ns, node.index, True))
        self.messaging.reset(node.index)

    # -- faults ---------------------------------------------------------------------------------

    def _apply_fault(self, action: FaultAction) -> None:
        self._record_at(-1 if action.node is None else action.node,
                        action.tick * NS_PER_TICK, action.to_record())
        if action.kind is FaultKind.RESEED:
            self._reseed(action.node, action.fault.param("seed"))
            return
        if action.applied or action.node is None:
            return
        node = self.nodes[action.node]
        p, start, kind = node.process, action.phase == START, action.kind
        if kind is FaultKind.KILL:
            if start:
                self._kill(node, f"fault {action.fault_id}")
            else:
                self._restart(node, f"fault {action.fault_id} ended")
        elif kind is FaultKind.RESTART:
            self._kill(node, f"fault {action.fault_id}")
            self._restart(node, f"fault {action.fault_id}")
        elif kind is FaultKind.PAUSE:
            if start and node.status is NodeStatus.RUNNING:
                self._set_status(node, NodeStatus.PAUSED, f"fault {action.fault_id}")
            elif not start and node.status is NodeStatus.PAUSED:
                p.vtime_ns = max(p.vtime_ns, self.now_ns)  # time passed while it was stopped
                self._set_status(node, NodeStatus.RUNNING, f"fault {action.fault_id} ended")
                self.messaging.resumed(p, self.now_ns)
        elif kind is FaultKind.CLOCK_SKEW:
            at = max(p.vtime_ns, self.now_ns)
            if start:
                p.clock.start_skew(at, action.fault.param("rate"))
            else:
                p.clock.stop_skew(at)
        elif kind is FaultKind.CLOCK_JUMP:
            p.clock.jump(action.fault.param("delta_ns"))
        elif kind is FaultKind.MEMORY_PRESSURE:
            p.space.memory_limit = action.fault.param("limit_bytes") if start else None
        elif kind in DISK_FAULTS:
            if start:
                probability = (action.fault.param("probability")
                               if kind is not FaultKind.DISK_FULL else 1.0)
                p.fs.set_fault(action.fault_id, kind.value, probability)
            else:
                p.fs.clear_fault(action.fault_id)

    def _reseed(self, target: int | None, salt: int) -> None:
        """New keys for the random streams of one node, or of every node and the fabric."""
        if target is None:
            self.fabric.reseed(next_stream_seed(self.fabric.seed, salt))
        for node in self.nodes if target is None else [self.nodes[target]]:
            current = self.stream_seeds[node.index]
            seed = next_stream_seed(self.scenario.seed if current is None else current, salt)
            self.stream_seeds[node.index] = seed
            rekey_process(node.process, seed)

    def _kill(self, node: Node, reason: str) -> None:
        """Stop the node dead: its memory is lost, its disk keeps only what survives a crash."""
        if node.status in ENDED or node.status is NodeStatus.KILLED:
            return
        self._set_status(node, NodeStatus.KILLED, reason)
        self._node_down(node)
        node.process.fs.crash()

    def _restart(self, node: Node, reason: str) -> None:
        """Boot the node again from its initial snapshot, with its disk and its hardware clock."""
        if node.status is not NodeStatus.KILLED:
            return
        self._set_status(node, NodeStatus.RESTARTING, reason)
        p = node.process
        clock, limit, life = p.clock, p.space.memory_limit, p.incarnation + 1
        p.restore(node.initial)
        p.begin_incarnation(life)
        if self.stream_seeds[node.index] is not None:  # the new life's streams, reseeded
            rekey_process(p, self.stream_seeds[node.index])
        p.clock, p.space.memory_limit = clock, limit
        p.vtime_ns = self.now_ns
        self.fabric.set_node_down(self.now_ns, node.index, False)
        self._set_status(node, NodeStatus.RUNNING, reason)

    # -- checkpoints ----------------------------------------------------------------------------

    def _checkpoint(self) -> None:
        from chaosreplay.sim.checkpoint import capture

        at_ns = self.next_checkpoint_ns
        self.next_checkpoint_ns += self.interval_ns
        if not all(node.process.can_checkpoint for node in self.nodes):
            return  # a node runs several processes (or an exec'd program): the next one
        self._record(-1, at_ns, EventKind.CHECKPOINT, {"index": self.checkpoint_count})
        self.checkpoint_count += 1
        state = capture(self, at_ns // NS_PER_TICK)
        if self.on_checkpoint is not None:
            self.on_checkpoint(state)

    @classmethod
    def resume(cls, scenario: Scenario, images: Sequence[ProgramImage], blobs: dict[str, bytes],
               pages: Callable[[str], dict[int, bytes]], **kwargs: Any) -> Simulation:
        """A simulation continuing from a recorded checkpoint (its blobs and page regions)."""
        from chaosreplay.sim.checkpoint import load

        sim = cls(scenario, images, **kwargs)
        load(sim, blobs, pages)
        return sim
