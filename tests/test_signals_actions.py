"""Signal dispositions and masks (chaosreplay.kernel.signals.actions and sigset): the
default action of every signal, sigaction's rules, forced signals, exec, rt_sigprocmask,
and the table's checkpoint state."""

from __future__ import annotations

import errno

import pytest

from chaosreplay.kernel.signals.actions import (
    SA_NOCLDSTOP,
    SA_ONSTACK,
    SA_RESETHAND,
    SA_RESTART,
    SA_RESTORER,
    SA_SIGINFO,
    SA_UNSUPPORTED,
    SIG_DFL,
    SIG_IGN,
    STATE,
    ActionChange,
    Default,
    SigAction,
    SignalActions,
    default_action,
    is_fatal_default,
    is_ignored,
)
from chaosreplay.kernel.signals.sigset import (
    SIG_BLOCK,
    SIG_SETMASK,
    SIG_UNBLOCK,
    SIGCHLD,
    SIGCONT,
    SIGKILL,
    SIGSEGV,
    SIGSTOP,
    SIGUSR1,
    SIGUSR2,
    UNBLOCKABLE,
    mask_of,
    members,
    procmask,
    sigmask,
)
from chaosreplay.recording.schema import SchemaError, validate

# signal(7), "Standard signals": the default action of each, by number.
SIGNAL_7 = {
    1: "Term", 2: "Term", 3: "Core", 4: "Core", 5: "Core", 6: "Core", 7: "Core", 8: "Core",
    9: "Term", 10: "Term", 11: "Core", 12: "Term", 13: "Term", 14: "Term", 15: "Term",
    16: "Term", 17: "Ign", 18: "Cont", 19: "Stop", 20: "Stop", 21: "Stop", 22: "Stop",
    23: "Ign", 24: "Core", 25: "Core", 26: "Term", 27: "Term", 28: "Ign", 29: "Term",
    30: "Term", 31: "Core",
}
NAMES = {"Term": Default.TERMINATE, "Core": Default.CORE, "Ign": Default.IGNORE,
         "Stop": Default.STOP, "Cont": Default.CONTINUE}


@pytest.mark.parametrize("signo", range(1, 65))
def test_default_actions_are_signal_7s(signo: int) -> None:
    """Standard signals as signal(7) lists them; real-time signals terminate."""
    expected = NAMES[SIGNAL_7[signo]] if signo < 32 else Default.TERMINATE
    assert default_action(signo) is expected
    assert is_fatal_default(signo) == (expected in (Default.TERMINATE, Default.CORE))


def test_ignored_means_sig_ign_or_a_default_the_kernel_ignores() -> None:
    """SIG_DFL ignores SIGCHLD, SIGURG, SIGWINCH and (its stop-cancelling aside) SIGCONT."""
    assert [s for s in range(1, 65) if is_ignored(SigAction(SIG_DFL), s)] == [17, 18, 23, 28]
    assert all(is_ignored(SigAction(SIG_IGN), s) for s in range(1, 65))
    assert not is_ignored(SigAction(0x401000), SIGCHLD)


def test_sigaction_rules() -> None:
    """Old action reported with known flags only; SIGKILL/SIGSTOP readable, not settable;
    0 and 65 invalid; the new mask loses SIGKILL/SIGSTOP; unknown flags dropped."""
    table = SignalActions()
    new = SigAction(0x401000, SA_SIGINFO | SA_RESTORER | SA_UNSUPPORTED | 0x100, 0x402000,
                    mask_of((SIGKILL, SIGSTOP, SIGUSR2)))
    change = table.sigaction(SIGUSR1, new)
    assert change == ActionChange(SigAction(), False)
    assert table.get(SIGUSR1) == SigAction(0x401000, SA_SIGINFO | SA_RESTORER, 0x402000,
                                           sigmask(SIGUSR2))
    again = table.sigaction(SIGUSR1, None)
    assert isinstance(again, ActionChange) and again.old == table.get(SIGUSR1)
    for signo in (SIGKILL, SIGSTOP):
        assert isinstance(table.sigaction(signo, None), ActionChange)
        assert table.sigaction(signo, SigAction(SIG_IGN)) == -errno.EINVAL
    assert table.sigaction(0, None) == -errno.EINVAL
    assert table.sigaction(65, None) == -errno.EINVAL
    assert SigAction.unpack(new.pack()) == new and len(new.pack()) == 32


def test_becoming_ignored_flushes_pending_instances() -> None:
    """SIG_IGN for anything, or SIG_DFL for SIGCHLD: pending ones must be discarded."""
    table = SignalActions()
    assert table.sigaction(SIGUSR1, SigAction(SIG_IGN)).flush_pending  # type: ignore[union-attr]
    assert table.sigaction(SIGCHLD, SigAction(SIG_DFL)).flush_pending  # type: ignore[union-attr]
    assert not table.sigaction(SIGUSR2, SigAction(SIG_DFL)).flush_pending  # type: ignore[union-attr]
    assert not table.sigaction(SIGCHLD, SigAction(0x401000)).flush_pending  # type: ignore[union-attr]


def test_resethand_restores_the_default_as_the_handler_runs() -> None:
    table = SignalActions()
    table.sigaction(SIGUSR1, SigAction(0x401000, SA_RESETHAND | SA_RESTORER, 0x402000))
    table.sigaction(SIGUSR2, SigAction(0x401000, SA_RESTORER, 0x402000))
    table.reset_on_delivery(SIGUSR1)
    table.reset_on_delivery(SIGUSR2)
    assert table.get(SIGUSR1).handler == SIG_DFL
    assert table.get(SIGUSR1).flags == SA_RESETHAND | SA_RESTORER
    assert table.get(SIGUSR2).handler == 0x401000


def test_a_forced_signal_cannot_be_blocked_or_ignored() -> None:
    """A fault while SIGSEGV is blocked or ignored: back to SIG_DFL and unblocked; with a
    handler and not blocked it stays; a fatal force also freezes the action."""
    table = SignalActions()
    table.sigaction(SIGSEGV, SigAction(0x401000, SA_RESTORER, 0x402000))
    assert table.force(SIGSEGV, sigmask(SIGUSR1)) == sigmask(SIGUSR1)
    assert table.get(SIGSEGV).handler == 0x401000
    assert table.force(SIGSEGV, sigmask(SIGSEGV) | sigmask(SIGUSR1)) == sigmask(SIGUSR1)
    assert table.get(SIGSEGV).handler == SIG_DFL
    table.sigaction(SIGUSR2, SigAction(SIG_IGN))
    assert table.force(SIGUSR2, 0) == 0 and table.get(SIGUSR2).handler == SIG_DFL
    table.sigaction(SIGSEGV, SigAction(0x401000, SA_RESTORER, 0x402000))
    table.force(SIGSEGV, 0, fatal=True)
    assert table.get(SIGSEGV).handler == SIG_DFL
    assert table.sigaction(SIGSEGV, SigAction(0x401000)) == -errno.EINVAL


def test_exec_keeps_ignored_signals_and_resets_handled_ones() -> None:
    table = SignalActions()
    table.sigaction(SIGUSR1, SigAction(SIG_IGN, SA_RESTART))
    table.sigaction(SIGUSR2, SigAction(0x401000, SA_ONSTACK | SA_RESTORER, 0x402000, 4))
    twin = table.copy()
    table.reset_for_exec()
    assert table.get(SIGUSR1) == SigAction(SIG_IGN, SA_RESTART)
    assert table.get(SIGUSR2) == SigAction()
    assert twin.get(SIGUSR2).handler == 0x401000  # a copy is independent


def test_action_table_state_round_trips_and_hostile_states_are_refused() -> None:
    table = SignalActions()
    table.sigaction(SIGUSR1, SigAction(0x401000, SA_SIGINFO | SA_RESTORER, 0x402000, 2))
    table.sigaction(SIGCHLD, SigAction(SIG_IGN, SA_NOCLDSTOP))
    table.force(SIGSEGV, 0, fatal=True)
    state = table.to_state()
    validate(state, STATE, "actions")
    twin = SignalActions.from_state(state)
    assert [twin.get(s) for s in range(1, 65)] == [table.get(s) for s in range(1, 65)]
    assert twin.sigaction(SIGSEGV, SigAction(0x401000)) == -errno.EINVAL
    for bad, problem in (
            ({"actions": [[9, 1, 0, 0, 0]], "immutable": 0}, "cannot have one"),
            ({"actions": [[10, 1, 0x100, 0, 0]], "immutable": 0}, "unknown flags"),
            ({"actions": [[10, 1, 0, 0, 1 << 8]], "immutable": 0}, "SIGKILL or SIGSTOP"),
            ({"actions": [[10, 1, 0, 0, 0], [10, 1, 0, 0, 0]], "immutable": 0}, "twice"),
            ({"actions": [], "immutable": -1}, "outside")):
        with pytest.raises(SchemaError, match=problem):
            validate(bad, STATE, "actions")


def test_procmask_never_blocks_sigkill_or_sigstop() -> None:
    blocked = sigmask(SIGUSR1)
    assert procmask(blocked, SIG_BLOCK, (1 << 64) - 1) == ((1 << 64) - 1) & ~UNBLOCKABLE
    assert procmask(blocked, SIG_UNBLOCK, sigmask(SIGUSR1)) == 0
    assert procmask(blocked, SIG_SETMASK, sigmask(SIGKILL) | sigmask(SIGCONT)) == sigmask(
        SIGCONT)
    assert procmask(blocked, 3, 0) == -errno.EINVAL
    assert members(mask_of((1, 64, 33))) == [1, 33, 64]
