"""Which task runs next on a node's one vCPU: a pure function of the run's state and seed.

Tasks switch only at deterministic points: a system call, a blocking call, a trapped
instruction (rdtsc, `pause`...). Two policies:

- `round-robin` (the default): the running task keeps the vCPU until it blocks, yields
  (sched_yield, `pause`) or has run for a time slice of virtual time while another task
  is ready; the next task is the first ready one after it in tid order.
- `random`: PCT-style priorities from the node's seeded `sched` stream. The ready task of
  highest priority runs; at each switch point the running task is demoted below every
  other with probability 1/change_every, so a seed picks one interleaving and another
  seed a different one. A yielding task lets the best other ready task run.
"""

from __future__ import annotations

from dataclasses import dataclass

from chaosreplay.kernel.task import Task
from chaosreplay.rng import DeterministicStream

POLICIES = ("round-robin", "random")
DEFAULT_QUANTUM_NS = 200_000
DEFAULT_CHANGE_EVERY = 64


@dataclass(slots=True)
class SchedulerConfig:
    """A scenario's choice of policy (the same for every node)."""

    policy: str = "round-robin"
    quantum_ns: int = DEFAULT_QUANTUM_NS
    change_every: int = DEFAULT_CHANGE_EVERY


class Scheduler:
    """Picks the next task; its only state is the stream position and the priorities."""

    def __init__(self, config: SchedulerConfig, stream: DeterministicStream) -> None:
        if config.policy not in POLICIES:
            raise ValueError(f"unknown scheduling policy {config.policy!r}")
        self.config = config
        self.stream = stream
        self.lowest = 0  # the priority the next demotion gives (below every other)

    @property
    def random(self) -> bool:
        return self.config.policy == "random"

    def admit(self, task: Task) -> None:
        """A new task: under `random` it draws its priority."""
        if self.random:
            task.priority = 1 + self.draw(1 << 30)

    def should_switch(self, current: Task, now_ns: int, others_ready: bool) -> bool:
        """At a switch point of a task that could go on: whether another runs instead."""
        if not others_ready:
            return False
        if self.random:
            if self.draw(self.config.change_every) == 0:
                self.lowest -= 1
                current.priority = self.lowest
            return True  # the best ready task runs: maybe current again
        return now_ns - current.ran_since_ns >= self.config.quantum_ns

    def pick(self, tasks: list[Task], current: Task | None, now_ns: int,
             yielding: bool = False) -> Task | None:
        """The task to run now among `tasks` (in tid order), or None when none is ready."""
        ready = [t for t in tasks if t.ready(now_ns)]
        if not ready:
            return None
        if yielding and len(ready) > 1:
            ready = [t for t in ready if t is not current]
        if self.random:
            return max(ready, key=lambda t: (t.priority, -t.tid))
        if current is None or current not in tasks:
            return ready[0]
        if current in ready and not yielding and len(ready) == 1:
            return current
        after = [t for t in ready if t.tid > current.tid and t is not current]
        return after[0] if after else ready[0]

    def draw(self, bound: int) -> int:
        return int.from_bytes(self.stream.read(8), "little") % bound

    def to_state(self) -> list[int]:
        return [self.stream.position, self.lowest]

    def load_state(self, state: list[int]) -> None:
        self.stream.seek(state[0])
        self.lowest = state[1]
