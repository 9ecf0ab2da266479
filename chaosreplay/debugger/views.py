"""What the debugger shows of a simulation at one moment, as plain data.

`capture_state` reads a paused `Simulation` (see reconstruct.py) into these frozen records,
so they can be cached, compared, printed as JSON and shown by the TUI long after the
simulation has moved on. Memory is the exception: it is read on demand (`Reconstructor.memory`).
"""

from __future__ import annotations

import bisect
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from chaosreplay.debugger.program_state import FrameView, ProgramInspector, VariableView
from chaosreplay.debugger.socket_views import SocketView, socket_views
from chaosreplay.debugger.symbols import Instruction, Symbolizer
from chaosreplay.debugger.watch import Evaluator, WatchView, watch_view
from chaosreplay.sim.oracle import TABLE_COLUMNS
from chaosreplay.vm.vmm import PAGE_SIZE, VmmError

if TYPE_CHECKING:
    from chaosreplay.sim.simulation import Node, Simulation

REGISTERS = ("rip", "rsp", "rbp", "rax", "rbx", "rcx", "rdx", "rsi", "rdi",
             "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rflags")
DISASSEMBLY_COUNT = 8


@dataclass(frozen=True)
class OpenFileView:
    """One descriptor of a node's table."""

    fd: int
    path: str
    offset: int
    flags: int


@dataclass(frozen=True)
class NodeView:
    """One node: status, clocks, registers, code at rip, stack, output and files."""

    index: int
    name: str
    status: str
    incarnation: int
    vtime_ns: int
    monotonic_ns: int  # what the guest reads (clock skew applied)
    realtime_ns: int  # CLOCK_REALTIME as the guest reads it (jumps applied)
    wake_at_ns: int | None  # blocked until (None: runnable)
    syscalls: int
    registers: dict[str, int]
    fs_base: int
    location: str  # rip symbolized (symbol+off and file:line when known)
    disassembly: list[Instruction]
    stack: list[str]  # the call stack as gdb's `bt` lines, innermost first (from `frames`)
    frames: list[FrameView]  # the call stack from DWARF, with arguments and locals
    globals: list[VariableView]  # the program's global variables, typed
    watches: list[WatchView]  # the node's watch expressions at this point
    stdout: str
    stderr: str
    files: list[OpenFileView]
    memory_limit: int | None
    exit_code: int | None
    crash: str | None
    threads: list[ThreadView] = field(default_factory=list)  # the main thread first
    sockets: list[SocketView] = field(default_factory=list)  # the node's stack, by number


@dataclass(frozen=True)
class ThreadView:
    """One thread of a node's program: where it is and what it waits for."""

    tid: int
    state: str  # "on cpu", "ready", "sleeping until <ns>", or what it is blocked in
    rip: int
    location: str


@dataclass(frozen=True)
class PacketView:
    """A packet in flight."""

    packet_id: int
    src: int
    dst: int
    size: int
    sent_ns: int
    deliver_ns: int
    flags: str
    copy: int


@dataclass(frozen=True)
class NetworkView:
    """The fabric: packets in flight, partitions, nodes down, counters."""

    in_flight: list[PacketView]
    partitions: dict[str, list[list[int]]]
    down: list[int]
    stats: dict[str, Any]
    inbox_sizes: list[int]


@dataclass(frozen=True)
class FaultView:
    """A fault in effect."""

    fault_id: str
    kind: str
    node: int | None
    start_tick: int
    end_tick: int | None  # None: until the run ends
    params: dict[str, Any]


@dataclass(frozen=True)
class SimulationState:
    """Everything at one point of a run: after event `seq` (and up to `reached`)."""

    seq: int  # the event asked for
    reached: int  # the last event actually executed (the pause comes after a whole call)
    tick: int
    now_ns: int
    ended: bool
    nodes: list[NodeView]
    network: NetworkView
    faults: list[FaultView]
    oracle_columns: tuple[str, ...]
    oracle: list[tuple[str, ...]]
    bugs: list[dict[str, Any]]
    gate_tick: int | None = None  # when faults began (None: still waiting for setup)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for --json (bytes never appear: output is text)."""
        return asdict(self)


NodeViewCache = dict[int, tuple[Any, tuple[Any, ...], "NodeView"]]


def capture_state(sim: Simulation, seq: int, programs: list[ProgramInspector],
                  watches: dict[int, tuple[str, ...]] | None = None,
                  reuse: NodeViewCache | None = None) -> SimulationState:
    """Read a paused simulation into a SimulationState (`programs`: one per image;
    `watches`: expressions to evaluate per node). `reuse` keeps each node's last view: a
    node that has not moved since (see `_unmoved_key`) is not read again, so a step, which
    runs one node, reads one node."""
    fabric = sim.fabric
    network = NetworkView(
        in_flight=[PacketView(d.packet_id, d.src, d.dst, len(d.payload), d.sent_ns,
                              d.deliver_ns, d.flags.name or "", d.copy)
                   for d in fabric.in_flight()],
        partitions=fabric.partitions(),
        down=[n.index for n in sim.nodes if n.status.value in ("killed", "restarting")],
        stats=fabric.stats.to_dict(),
        inbox_sizes=[len(e.inbox) for e in sim.messaging.endpoints],
    )
    faults = [FaultView(a.fault_id, a.fault.kind.value, a.fault.node, a.start_tick, a.end_tick,
                        {k: v for k, v in a.fault.to_dict().items()
                         if k not in ("kind", "at", "duration", "node")})
              for a in sim.engine.active()]
    return SimulationState(
        seq=seq, reached=sim.event_count - 1, tick=sim.tick, now_ns=sim.now_ns,
        ended=sim.stop_reason is not None,
        nodes=[_reused_view(node, programs[node.spec.group],
                            (watches or {}).get(node.index, ()), reuse)
               for node in sim.nodes],
        network=network, faults=faults, oracle_columns=TABLE_COLUMNS,
        oracle=sim.oracle.table(),
        bugs=[{k: v for k, v in b.to_record().items() if k != "kind"} for b in sim.bugs]
        + [f.to_dict() for f in sim.failures],
        gate_tick=sim.engine.origin_tick,
    )


def _sockets_of(node: Node) -> list[SocketView]:
    """The node's sockets as they are now."""
    net = getattr(node.process, "net", None)
    return socket_views(net) if net is not None else []


def _unmoved_key(node: Node, watches: tuple[str, ...]) -> tuple[Any, ...]:
    """What a node's view depends on that can change without the others changing with it.

    Guest memory, registers, output, files and limits change only through the node's VM
    exits (code runs, system calls, faults) or through a call the kernel completes for it
    (a delivery sets rax and the wake-up); restarts change the incarnation, clock faults
    what its clocks read, the controller its status."""
    p = node.process
    regs = p.regs
    return (p.exit_count(), p.syscalls, p.incarnation, node.status, p.wake_at_ns,
            p.vtime_ns, p.guest_time_ns(), p.realtime_ns(), p.exit_code, p.crash is None,
            tuple(int(getattr(regs, name)) for name in REGISTERS), watches)


def _reused_view(node: Node, program: ProgramInspector, watches: tuple[str, ...],
                 reuse: NodeViewCache | None) -> NodeView:
    # Sockets are read at every capture: arrivals and TCP timers change them while the
    # node's program does not move, which is all the key below watches.
    sockets = _sockets_of(node)
    if reuse is None:
        return _node_view(node, program, watches, sockets)
    key = _unmoved_key(node, watches)
    cached = reuse.get(node.index)
    # The process itself must be the same (a weak reference: another simulation's process
    # never matches, even at the same counters).
    if cached is not None and cached[0]() is node.process and cached[1] == key:
        if cached[2].sockets == sockets:
            return cached[2]
        view = replace(cached[2], sockets=sockets)
    else:
        view = _node_view(node, program, watches, sockets)
    reuse[node.index] = (weakref.ref(node.process), key, view)
    return view


def _node_view(node: Node, program: ProgramInspector, watches: tuple[str, ...],
               sockets: list[SocketView]) -> NodeView:
    p = node.process
    symbolizer = program.symbolizer
    regs = {name: int(getattr(p.regs, name)) for name in REGISTERS}
    rip = regs["rip"]
    read = memory_reader(p)
    # Killed, crashed and exited programs keep their last registers and memory: where they
    # stopped is worth showing.
    frames = program.frames(regs, read)
    frame_views = program.frame_views(frames)
    evaluator = Evaluator(program, frames, read)
    return NodeView(
        index=node.index, name=node.spec.name, status=node.status.value,
        incarnation=p.incarnation, vtime_ns=p.vtime_ns, monotonic_ns=p.guest_time_ns(),
        realtime_ns=p.realtime_ns(), wake_at_ns=p.wake_at_ns, syscalls=p.syscalls,
        registers=regs, fs_base=p.vm.fs_base, location=symbolizer.describe(rip),
        disassembly=_code_at(p, symbolizer, rip),
        stack=[frame.line() for frame in frame_views], frames=frame_views,
        globals=program.global_views(read),
        watches=[watch_view(evaluator, text) for text in watches],
        stdout=output_so_far(p.stdout, p.output_dropped[0]),
        stderr=output_so_far(p.stderr, p.output_dropped[1]),
        files=[OpenFileView(fd, slot.file.path.decode("utf-8", "replace"), slot.file.offset,
                            slot.file.flags) for fd, slot in sorted(p.files.items())],
        memory_limit=p.space.memory_limit, exit_code=p.exit_code,
        crash=_crash(p), threads=_threads(p, symbolizer), sockets=sockets,
    )


def _threads(p: Any, symbolizer: Any) -> list[ThreadView]:
    """Every thread of the node's program in tid order, then those of the node's other
    live processes (their state names the process and its program)."""
    table = getattr(p, "table", None)
    others = [q for q in table.live() if q is not p] if table is not None else []
    views = []
    for q in [p, *others]:
        describe = symbolizer.describe if q is p else q.image.symbols.describe
        for task in q.tasks.values():
            if task is q.current and (table is None or table.last_pid == q.pid):
                state = "on cpu"
            elif task.waiting is not None:
                state = task.waiting.reason
            elif task.wake_at_ns is not None:
                state = f"sleeping until {task.wake_at_ns}"
            else:
                state = "ready"
            if q is not p:
                state = f"process {q.pid} ({q.comm.decode(errors='replace')}): {state}"
            rip = int(q.task_regs(task).rip)
            views.append(ThreadView(task.tid, state, rip, describe(rip)))
    return views


def output_so_far(tail: bytes | bytearray, dropped: int) -> str:
    """The output a node kept (its last bytes), saying so when earlier bytes fell out."""
    text = tail.decode("utf-8", "replace")
    if not dropped:
        return text
    return f"[{dropped} earlier bytes not kept: earlier output is in the recording]\n{text}"


def _crash(p: Any) -> str | None:
    if p.crash is None:
        return None
    try:
        return p.crash.describe()
    except ValueError:  # a signal number Python does not name
        return f"signal {p.crash.signal} at {p.crash.rip:#x}"


def memory_reader(p: Any) -> Callable[[int, int], bytes | None]:
    """`read(address, size)` of a process's memory as it is now: None when part of it is
    not mapped; pages of a mapping never touched read as zeros (as Linux gives them). The
    mappings are looked up once, so use a reader only while the process stays paused."""
    vmas = [(vma.start, vma.end) for vma in p.space.vmas()]
    starts = [start for start, _ in vmas]

    def mapped_end(address: int) -> int | None:
        i = bisect.bisect_right(starts, address) - 1
        return vmas[i][1] if i >= 0 and address < vmas[i][1] else None

    vdso = getattr(p, "vdso_address", 0)

    def read(address: int, size: int) -> bytes | None:
        if vdso and vdso <= address and address + size <= vdso + PAGE_SIZE and size >= 0:
            return p.vm.read(address, size)  # the vDSO's page: the user's, outside the VMAs
        if size < 0 or address < 0 or address + size > 1 << 47:
            return None
        out = bytearray()
        end = address + size
        while address < end:
            limit = mapped_end(address)
            if limit is None:
                return None
            chunk = min(end, limit) - address
            try:
                out += p.vm.read(address, chunk)
            except VmmError:  # some page of it never touched: page by page, zeros for those
                while chunk > 0:
                    piece = min(chunk, (address // PAGE_SIZE + 1) * PAGE_SIZE - address)
                    try:
                        out += p.vm.read(address, piece)
                    except VmmError:
                        out += bytes(piece)
                    address += piece
                    chunk -= piece
                continue
            address += chunk
        return bytes(out)
    return read


def _read(p: Any, address: int, size: int) -> bytes:
    """Guest memory from address on, up to the first page that cannot be read (reading must
    never fault the debugger)."""
    out = b""
    end = address + size
    while address < end:
        chunk = min(end, (address // PAGE_SIZE + 1) * PAGE_SIZE) - address
        try:
            out += p.vm.read(address, chunk)
        except VmmError:  # unmapped (or not yet touched): nothing more to show
            break
        address += chunk
    return out


def _code_at(p: Any, symbolizer: Symbolizer, rip: int) -> list[Instruction]:
    code = _read(p, rip, 15 * DISASSEMBLY_COUNT)  # 15: the longest x86 instruction
    return symbolizer.disassemble(code, rip, DISASSEMBLY_COUNT) if code else []
