"""A node's kernel: what every process of the node shares.

Each process (`GuestProcess`, a thread group: its VM, address space, descriptor table,
signal handlers, threads) reaches the node's kernel through `p.kernel`, and reads and
writes these parts of it as its own attributes (`p.fs`, `p.clock`...), so code written for
one process works unchanged on any process of the node:

- the ids: one counter for pids and tids, and the process table once one forks
  (kernel/processes.py, which also runs the node loop that shares the vCPU);
- the clock the guest reads (faults bend it) and the node's life count (restarts);
- the node's disk, its socket stack and the simulation's network endpoint (handed in by
  the simulation: the kernel does not import it);
- the seeded streams a guest observes (getrandom, urandom, the SDK, rdrand/rdseed);
- the parsed programs execve loads (by content), and the node's output: the event and
  output sinks, the kept tails of stdout and stderr.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.clock import NodeClock
from chaosreplay.kernel.exec import ImageCache
from chaosreplay.kernel.fs.disk import FileSystem
from chaosreplay.kernel.net.stack import NetStack
from chaosreplay.rng import DeterministicStream
from chaosreplay.vm import nonvirt

if TYPE_CHECKING:
    from chaosreplay.kernel.process import EventSink, OutputSink, ProcessConfig
    from chaosreplay.kernel.processes import ProcessTable

FIRST_PID = 1000  # the node's program; its threads and children follow in creation order
STREAMS = ("getrandom", "sdk", "auxv", "urandom")


class Kernel:
    """The node-wide half of the kernel (the per-process half is GuestProcess)."""

    def __init__(self, config: ProcessConfig, on_event: EventSink | None,
                 on_output: OutputSink | None) -> None:
        self.config = config
        self.on_event = on_event
        self.on_output = on_output
        self.trace_syscalls = on_event is not None
        self.next_tid = FIRST_PID + 1  # pids and tids share it, as on Linux
        self.table: ProcessTable | None = None  # the node's processes, once one forks
        self.clock = NodeClock()  # clock faults bend what the guest reads, not its schedule
        self.incarnation = 0  # restarts so far: each life draws fresh random numbers
        self.fs = FileSystem(config.seed, config.node_id,  # the node's disk: outlives restarts
                             journal=config.disk_durability == "journal", root=config.root)
        self.net = NetStack(config.node_id, config.node_count)  # sockets (kernel/net)
        self.network: Any = None  # the simulation attaches a messaging endpoint
        self.random = self.streams()
        self.emulator = nonvirt.NonVirtEmulator(config.seed, config.node_id, config.node_count)
        self.images = ImageCache()  # execve parses and plans each binary once per node
        self.stdout = bytearray()  # the last output_tail_bytes of each stream
        self.stderr = bytearray()
        self.output_dropped = [0, 0]  # bytes of stdout, stderr that fell out of the tails
        self.fast_hold = False  # every call exits (a pause at an event): kernel/fastpath.py

    def new_id(self) -> int:
        """A new pid or tid: one counter for both, as on Linux."""
        new = self.next_tid
        self.next_tid += 1
        return new

    def streams(self) -> dict[str, DeterministicStream]:
        """The seeded streams of this life of the node (auxv is fixed by the image)."""
        config, life = self.config, self.incarnation
        return {name: DeterministicStream(config.seed, name if life == 0 or name == "auxv"
                                          else f"{name}#{life}", config.node_id)
                for name in STREAMS}


class Shared:
    """A process attribute that is the node's kernel's: read and written through it."""

    name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, p: Any, owner: type | None = None) -> Any:
        if p is None:
            return self
        return getattr(p.kernel, self.name)

    def __set__(self, p: Any, value: Any) -> None:
        setattr(p.kernel, self.name, value)

