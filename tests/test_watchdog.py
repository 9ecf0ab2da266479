"""Watchdog outside the main thread (the debugger reconstructs on a worker thread)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from chaosreplay.vm.watchdog import WAKE_SIGNAL, Watchdog, install_wake_handler


@pytest.fixture()
def default_handler() -> Iterator[None]:
    """The wake signal's default action for the test, the previous handler afterwards."""
    previous = signal.signal(WAKE_SIGNAL, signal.SIG_DFL)
    yield
    signal.signal(WAKE_SIGNAL, previous)


def _in_thread(body: Callable[[], object]) -> BaseException | object:
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(body())
        except BaseException as exc:  # handed back to the test
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    return outcome[0]


def test_a_thread_watchdog_needs_the_handler_first(default_handler: None) -> None:
    """Without a Python-level handler the signal would kill the process, so it refuses."""
    def body() -> None:
        with Watchdog(lambda: 0, seconds=5):
            pass

    outcome = _in_thread(body)
    assert isinstance(outcome, RuntimeError) and "install_wake_handler" in str(outcome)


def test_a_thread_watchdog_fires_once_the_handler_is_installed(default_handler: None) -> None:
    """install_wake_handler in the main thread lets a worker's watchdog fire safely, and
    leaving the watchdog keeps the handler (another worker may still need it)."""
    install_wake_handler()

    def body() -> bool:
        with Watchdog(lambda: 0, seconds=0.1, poll=0.02) as watchdog:
            deadline = time.monotonic() + 5
            while not watchdog.fired and time.monotonic() < deadline:
                time.sleep(0.01)
        return watchdog.fired

    assert _in_thread(body) is True
    assert callable(signal.getsignal(WAKE_SIGNAL))
