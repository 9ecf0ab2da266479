"""EngineThread: the one thread that touches a DebugSession's recording and simulations.

The session's reader and reconstructor are not thread-safe, and a reconstruction takes up
to ~200 ms, so the UI thread never calls them: it submits jobs here. Each job has a slot;
a new job in a slot replaces the one still waiting there (only the latest cursor position
matters), and waiting slots run by priority, so a timeline window read never waits behind
a match scan. A long job returns a generator: it runs one step at a time and other jobs go
in between its steps. Nothing here imports Textual: results go to a plain callback, which
the TUI turns into messages.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from chaosreplay.debugger.session import DebugSession
from chaosreplay.errors import ChaosReplayError


class Priority(IntEnum):
    """Which waiting job runs first (lower first)."""

    WINDOW = 0  # rows the timeline is showing
    NAVIGATE = 1  # a seek or a match search the user is waiting for
    FACTS = 2  # per-node facts read from events
    STATE = 3  # a reconstruction
    BACKGROUND = 4  # match index scans, what-if branches


@dataclass(frozen=True)
class JobResult:
    """What one job (or one step of a long job) produced."""

    slot: str
    tag: Any  # what the submitter attached (e.g. the event number asked for)
    value: Any = None
    error: str | None = None  # one line, never a traceback
    final: bool = True  # False for the intermediate steps of a long job


Work = Callable[[DebugSession], Any]
Done = Callable[[JobResult], None]


@dataclass
class _Job:
    slot: str
    priority: int
    tag: Any
    work: Work
    done: Done
    steps: Generator[Any, None, None] | None = None


def describe_error(exc: BaseException) -> str:
    """One line for the UI: the message of our own errors, the type name for the rest."""
    if isinstance(exc, ChaosReplayError | OSError | IndexError | ValueError):
        text = str(exc) or type(exc).__name__
    else:
        text = f"internal error: {type(exc).__name__}: {exc}"
    return text.splitlines()[0] if text else type(exc).__name__


class EngineThread:
    """Runs session jobs on one thread (see the module docstring)."""

    def __init__(self, session: DebugSession, name: str = "chaosreplay-engine") -> None:
        self.session = session
        self._waiting: dict[str, _Job] = {}
        self._lock = threading.Condition()
        self._running: str | None = None
        self._stopping = False
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.jobs_run = 0  # jobs and steps run (tests read it)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def submit(self, slot: str, priority: Priority, work: Work, done: Done,
               tag: Any = None) -> None:
        """Queue work(session) in a slot, replacing the job waiting there; done(result) is
        called on the engine thread."""
        with self._lock:
            if self._stopping:
                return
            old = self._waiting.pop(slot, None)
            if old is not None and old.steps is not None:
                old.steps.close()
            self._waiting[slot] = _Job(slot, priority, tag, work, done)
            self._idle.clear()
            self._lock.notify()

    def cancel(self, slot: str) -> None:
        """Drop the job waiting in a slot (a running step finishes; its generator stops)."""
        with self._lock:
            old = self._waiting.pop(slot, None)
            if old is not None and old.steps is not None:
                old.steps.close()
            if not self._waiting and self._running is None:
                self._idle.set()

    @property
    def idle(self) -> bool:
        """Nothing waiting and nothing running."""
        return self._idle.is_set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until idle (tests); False on timeout."""
        return self._idle.wait(timeout)

    def stop(self, timeout: float = 10.0) -> bool:
        """Drop waiting jobs, let a running one finish, end the thread; False if it is still
        running after `timeout` (then the session must not be closed under it)."""
        with self._lock:
            self._stopping = True
            for job in self._waiting.values():
                if job.steps is not None:
                    job.steps.close()
            self._waiting.clear()
            self._lock.notify()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _next(self) -> _Job | None:
        with self._lock:
            while not self._waiting and not self._stopping:
                self._running = None
                self._idle.set()
                self._lock.wait()
            if self._stopping:
                self._running = None
                self._idle.set()
                return None
            job = min(self._waiting.values(), key=lambda j: j.priority)
            del self._waiting[job.slot]
            self._running = job.slot
            return job

    def _loop(self) -> None:
        while (job := self._next()) is not None:
            self.jobs_run += 1
            result = self._run(job)
            if result is not None:
                with contextlib.suppress(Exception):  # a closing UI must not kill the engine
                    job.done(result)

    def _run(self, job: _Job) -> JobResult | None:
        """One job, or one step of a long one (re-queued unless a newer job took its slot)."""
        try:
            if job.steps is None:
                value = job.work(self.session)
                if not isinstance(value, Generator):
                    return JobResult(job.slot, job.tag, value)
                job.steps = value
            try:
                step = next(job.steps)
            except StopIteration:
                return JobResult(job.slot, job.tag, None)
            with self._lock:
                if job.slot not in self._waiting and not self._stopping:
                    self._waiting[job.slot] = job
                else:
                    job.steps.close()
            return JobResult(job.slot, job.tag, step, final=False)
        except Exception as exc:  # shown in the UI as one line
            return JobResult(job.slot, job.tag, error=describe_error(exc))
