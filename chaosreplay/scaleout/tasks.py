"""Running many Ray tasks from the driver: a bounded window in flight, resubmission of
work whose worker died, and on Ctrl-C the tasks in flight counted and left to end with the
driver's job."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, Generic, TypeVar

from chaosreplay.scaleout.cluster import KVM

Item = TypeVar("Item", bound=Hashable)
RESUBMITS = 3  # times an item is submitted again after Ray's own retries gave up
IN_FLIGHT_PER_SLOT = 2  # tasks in flight per unit of kvm: each worker has its next one


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run of tasks; how many were cancelled and how many had finished."""

    def __init__(self, cancelled: int, finished: int) -> None:
        super().__init__(f"{cancelled} Ray tasks cancelled, {finished} finished")
        self.cancelled, self.finished = cancelled, finished


class TaskPool(Generic[Item]):
    """Submits one task per item and yields (item, result) as tasks finish."""

    def __init__(self, ray: ModuleType, submit: Callable[[Item], Any],
                 window: int | None = None) -> None:
        self.ray, self.submit = ray, submit
        slots = int(ray.cluster_resources().get(KVM, 1))
        self.window = window or max(2, IN_FLIGHT_PER_SLOT * slots)

    def run(self, todo: deque[Item]) -> Iterator[tuple[Item, Any]]:
        """(item, result) per item, in finishing order; result None when every attempt died."""
        ray = self.ray
        pending: dict[Any, Item] = {}
        tries: dict[Item, int] = {}
        finished = 0
        try:
            while todo or pending:
                while todo and len(pending) < self.window:
                    item = todo.popleft()
                    pending[self.submit(item)] = item
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    item = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                            ray.exceptions.ObjectLostError, ray.exceptions.OutOfMemoryError):
                        tries[item] = tries.get(item, 0) + 1
                        if tries[item] <= RESUBMITS:
                            todo.appendleft(item)
                            continue
                        result = None
                    finished += 1
                    yield item, result
        except KeyboardInterrupt:
            # No ray.cancel per task: cancelling one that is finishing at that moment made
            # Ray 2.60 abort the driver ("Tried to complete task that was not pending").
            # The driver disconnects instead (cluster.connected shuts Ray down), and Ray
            # ends every task of a job whose driver is gone.
            raise Interrupted(len(pending), finished) from None


def write_atomically(path: Path, data: bytes) -> None:
    """Write a file that appears whole or not at all (as record_run does)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)
