"""A host-side watchdog for guests that spin without ever exiting to the VMM.

A CPL3 loop with no system call never returns from KVM_RUN, and without a PMU there is
no deterministic point to stop it at. The watchdog thread watches the VM's exit counter
and, when it stops moving for `seconds` of wall time, signals the running thread so
KVM_RUN returns -EINTR and the run ends as a hang. Only the *outcome* depends on the
wall clock; nothing the guest observed does.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType

WAKE_SIGNAL = signal.SIGUSR1


def _ignore(signum: int, frame: FrameType | None) -> None:
    """A Python-level handler, so the signal interrupts KVM_RUN instead of killing us."""


def install_wake_handler() -> None:
    """Install the wake signal's handler for good; call from the main thread before running
    simulations in other threads (Python lets only the main thread set signal handlers)."""
    signal.signal(WAKE_SIGNAL, _ignore)


class Watchdog:
    """Interrupts the calling thread when progress() stops changing for `seconds`."""

    def __init__(self, progress: Callable[[], int], seconds: float, poll: float = 0.25) -> None:
        self._progress = progress
        self._seconds = seconds
        self._poll = poll
        self._stop = threading.Event()
        self._target = threading.get_ident()
        self._thread = threading.Thread(target=self._watch, name="chaosreplay-watchdog",
                                        daemon=True)
        self._previous: signal.Handlers | Callable[..., object] | int | None = None
        self._owns_handler = False
        self.fired = False

    def __enter__(self) -> Watchdog:
        if self._seconds > 0:
            if threading.current_thread() is threading.main_thread():
                self._previous = signal.signal(WAKE_SIGNAL, _ignore)
                self._owns_handler = True
            elif not callable(signal.getsignal(WAKE_SIGNAL)):
                # Without a Python-level handler the signal's default action ends the process.
                raise RuntimeError("a Watchdog outside the main thread needs "
                                   "install_wake_handler() called in the main thread first")
            self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._seconds > 0:
            self._stop.set()
            self._thread.join()
            if self._owns_handler:
                signal.signal(WAKE_SIGNAL, self._previous or signal.SIG_DFL)

    def _watch(self) -> None:
        last, idle = self._progress(), 0.0
        while not self._stop.wait(self._poll):
            now = self._progress()
            if now != last:
                last, idle = now, 0.0
                continue
            idle += self._poll
            if idle >= self._seconds:
                self.fired = True
                signal.pthread_kill(self._target, WAKE_SIGNAL)
