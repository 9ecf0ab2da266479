"""What a task's scheduling, identity and memory-policy calls set and read back: nice,
scheduling policy and priority, I/O priority, capability sets, personality, NUMA policy.

Kept as one small record per process so the calls that change it (setpriority,
sched_setscheduler, ioprio_set, capset, personality, set_mempolicy) and the calls that read
it agree, and so a checkpoint carries it (saved with the descriptor table's state, see
syscalls.files.files_state). Nothing here depends on the host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chaosreplay.recording.schema import Bool, Int, Row

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

CAP_LAST_CAP = 40  # CAP_CHECKPOINT_RESTORE: the capabilities Linux 5.9+ knows
CAP_FULL = (1 << (CAP_LAST_CAP + 1)) - 1
SCHED_OTHER = 0
MPOL_DEFAULT = 0


@dataclass(slots=True)
class TaskAttributes:
    """One process's scheduling, capability, personality and memory-policy settings."""

    nice: int = 0
    policy: int = SCHED_OTHER
    rt_priority: int = 0
    reset_on_fork: bool = False
    ioprio: int = 0  # IOPRIO_CLASS_NONE: the I/O priority follows the nice value
    cap_effective: int = CAP_FULL  # the root of its own user namespace has every capability
    cap_permitted: int = CAP_FULL
    cap_inheritable: int = 0
    personality: int = 0  # PER_LINUX
    mempolicy: int = MPOL_DEFAULT  # mode | mode flags
    mempolicy_nodes: int = 0  # the node mask (node 0 is the only node)

    def to_state(self) -> list[Any]:
        return [self.nice, self.policy, self.rt_priority, self.reset_on_fork, self.ioprio,
                self.cap_effective, self.cap_permitted, self.cap_inheritable,
                self.personality, self.mempolicy, self.mempolicy_nodes]

    @classmethod
    def from_state(cls, data: list[Any]) -> TaskAttributes:
        return cls(*data)


STATE = Row(Int(-20, 19), Int(0, 6), Int(0, 99), Bool(), Int(0, 0xFFFF), Int(0, CAP_FULL),
            Int(0, CAP_FULL), Int(0, CAP_FULL), Int(0, 2**32 - 1), Int(0, 0xFFFF), Int(0, 1))


def names_this_process(p: GuestProcess, pid: int) -> bool:
    """Whether a pid argument names this process: 0 (the caller), its pid, or one of its
    tasks' tids (the attributes are kept per process, so every task of it shares them)."""
    return pid in (0, p.pid) or pid in getattr(p, "tasks", {})


def attributes_of(p: GuestProcess) -> TaskAttributes:
    """The process's attributes, the defaults of a new process until a call changes one."""
    attributes: TaskAttributes | None = getattr(p, "task_attributes", None)
    if attributes is None:
        attributes = TaskAttributes()
        p.task_attributes = attributes  # type: ignore[attr-defined]
    return attributes
