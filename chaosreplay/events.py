"""Event kinds: the one place the names of recorded events are defined.

Every record the simulation hands the recorder is a plain dict whose "kind" is one of these
values (as a plain str, so msgpack stores it as text). Other modules and the `.ccr` spec
refer to these names; a new kind is added here, with its one-line meaning.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    """The kind of a recorded event; the value is what the recording stores."""

    RUN_START = "run.start"
    RUN_END = "run.end"
    SYSCALL = "syscall"
    OUTPUT = "output"
    EXIT = "exit"
    CRASH = "crash"
    ASSERT = "assert"
    BUG = "bug"
    SDK_EVENT = "sdk.event"
    SETUP_COMPLETE = "setup_complete"
    PACKET_SENT = "packet.sent"
    PACKET_DELIVERED = "packet.delivered"
    PACKET_DROPPED = "packet.dropped"
    PACKET_CORRUPTED = "packet.corrupted"
    PACKET_DUPLICATED = "packet.duplicated"
    PACKET_DELAYED = "packet.delayed"
    FAULT_START = "fault.start"
    FAULT_END = "fault.end"
    NODE_STATUS = "node.status"
    CHECKPOINT = "checkpoint"
    ORACLE_CONFLICT = "oracle.conflict"
    UNSATISFIED = "unsatisfied"
    DISK_FAULT = "disk.fault"
    VMM_BUG = "vmm.bug"
    TASK_START = "task.start"
    TASK_EXIT = "task.exit"
    SIGNAL = "signal"
    CONNECTION = "connection"
    PROCESS_START = "process.start"
    PROCESS_EXEC = "process.exec"
    PROCESS_EXIT = "process.exit"
    PROCESS_STOP = "process.stop"
    PROCESS_CONTINUE = "process.continue"


MEANINGS: dict[EventKind, str] = {
    EventKind.RUN_START: "the run began; carries the seed and the scenario digest",
    EventKind.RUN_END: "the run ended; carries the reason and the final statistics",
    EventKind.SYSCALL: "a node made a system call and the VMM answered it",
    EventKind.OUTPUT: "a node wrote to stdout or stderr",
    EventKind.EXIT: "a node's program exited with a status",
    EventKind.CRASH: "a node's program died of a CPU exception or signal",
    EventKind.ASSERT: "a node evaluated an SDK assertion (always/sometimes/reachable/unreachable)",
    EventKind.BUG: "a property was violated: a failed always or a reached unreachable",
    EventKind.SDK_EVENT: "a node emitted a named event through the SDK",
    EventKind.SETUP_COMPLETE: "a node declared its setup finished (fault gating)",
    EventKind.PACKET_SENT: "a datagram entered the network fabric (every packet.* event of a "
                           "TCP segment names it in a `tcp` field: ends, flags, seq, ack, len)",
    EventKind.PACKET_DELIVERED: "a datagram (or a duplicate) reached its destination node",
    EventKind.PACKET_DROPPED: "a datagram was dropped (partition, loss, node down, crash)",
    EventKind.PACKET_CORRUPTED: "a bit of a datagram's payload was flipped in flight",
    EventKind.PACKET_DUPLICATED: "the fabric scheduled a second copy of a datagram",
    EventKind.PACKET_DELAYED: "a datagram was held back (sender queue or reorder delay)",
    EventKind.FAULT_START: "an injected fault took effect",
    EventKind.FAULT_END: "an injected fault was reverted (end of its duration or a heal)",
    EventKind.NODE_STATUS: "a node changed status (running, paused, killed, restarting, ...)",
    EventKind.CHECKPOINT: "a checkpoint of the whole simulation was taken",
    EventKind.ORACLE_CONFLICT: "two assertions with different messages share one id",
    EventKind.UNSATISFIED: "at run end, a sometimes/reachable assertion never satisfied",
    EventKind.DISK_FAULT: "a disk fault failed or corrupted a node's read, write or fsync",
    EventKind.VMM_BUG: "the VMM itself failed answering a node (a chaosreplay bug): the node "
                       "is killed and the run fails",
    EventKind.TASK_START: "a node's program started a thread (clone); carries its tid",
    EventKind.TASK_EXIT: "a thread of a node's program ended (exit) while others run on",
    EventKind.SIGNAL: "a signal was delivered to a handler of a node's program",
    EventKind.CONNECTION: "a TCP connection of a node was begun, established, accepted, closed, "
                          "refused, reset or timed out; names both endpoints",
    EventKind.PROCESS_START: "a node's process forked a child process (its pid and parent)",
    EventKind.PROCESS_EXEC: "a process of a node replaced its program (execve: path, argv)",
    EventKind.PROCESS_EXIT: "a child process of a node ended (exit code, or the killing "
                            "signal and why); the node goes on",
    EventKind.PROCESS_STOP: "a process of a node stopped (a stop signal's default action)",
    EventKind.PROCESS_CONTINUE: "a stopped process of a node went on (SIGCONT or SIGKILL)",
}


def make_record(kind: EventKind, **fields: Any) -> dict[str, Any]:
    """A recorder-ready dict: {"kind": <plain str>, **fields}."""
    record: dict[str, Any] = {"kind": kind.value}
    record.update(fields)
    return record
