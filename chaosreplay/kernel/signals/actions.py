"""Signal dispositions: the kernel_sigaction layout, SA_* flags, each signal's default
action (signal(7)) and a thread group's table of actions with Linux's sigaction rules.

x86-64 `struct kernel_sigaction` (what rt_sigaction reads and writes, not libc's struct
sigaction): sa_handler u64, sa_flags u64, sa_restorer u64, sa_mask u64 = 32 bytes.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass, replace
from enum import Enum

from chaosreplay.kernel.signals.sigset import (
    NSIG,
    SIGABRT,
    SIGBUS,
    SIGCHLD,
    SIGCONT,
    SIGFPE,
    SIGILL,
    SIGKILL,
    SIGQUIT,
    SIGSEGV,
    SIGSTOP,
    SIGSYS,
    SIGTRAP,
    SIGTSTP,
    SIGTTIN,
    SIGTTOU,
    SIGURG,
    SIGWINCH,
    SIGXCPU,
    SIGXFSZ,
    UNBLOCKABLE,
    blockable,
    mask_of,
    sigmask,
    valid_signal,
)
from chaosreplay.recording.schema import Int, ListOf, Record, Row, Where, unique

SA_NOCLDSTOP = 0x00000001
SA_NOCLDWAIT = 0x00000002
SA_SIGINFO = 0x00000004
SA_UNSUPPORTED = 0x00000400  # never accepted: lets a program probe for flag support
SA_EXPOSE_TAGBITS = 0x00000800
SA_RESTORER = 0x04000000
SA_ONSTACK = 0x08000000
SA_RESTART = 0x10000000
SA_NODEFER = 0x40000000
SA_RESETHAND = 0x80000000
# The flags rt_sigaction keeps and reports (UAPI_SA_FLAGS on x86): unknown bits are
# cleared so a program can tell which flags this kernel supports.
UAPI_SA_FLAGS = (SA_NOCLDSTOP | SA_NOCLDWAIT | SA_SIGINFO | SA_ONSTACK | SA_RESTART
                 | SA_NODEFER | SA_RESETHAND | SA_EXPOSE_TAGBITS | SA_RESTORER)

SIG_DFL, SIG_IGN = 0, 1
KSIGACTION_SIZE = 32
_KSIGACTION = struct.Struct("<QQQQ")


class Default(Enum):
    """What a signal does when its handler is SIG_DFL."""

    TERMINATE = "terminate"
    CORE = "core"  # terminate and dump core (the wait status has the 0x80 bit)
    IGNORE = "ignore"
    STOP = "stop"
    CONTINUE = "continue"


_CORE = mask_of((SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV, SIGXCPU,
                 SIGXFSZ, SIGSYS))
_IGNORE = mask_of((SIGCHLD, SIGURG, SIGWINCH))
_STOP = mask_of((SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU))
# SIG_KERNEL_IGNORE_MASK: SIGCONT's "continue" happens when it is sent, so its delivery
# is ignored like SIGCHLD's.
KERNEL_IGNORE = _IGNORE | sigmask(SIGCONT)


def default_action(signo: int) -> Default:
    """The default action of `signo` (1..64) as signal(7) lists it; real-time signals
    (32..64) terminate."""
    bit = sigmask(signo)
    if bit & _CORE:
        return Default.CORE
    if bit & _IGNORE:
        return Default.IGNORE
    if bit & _STOP:
        return Default.STOP
    if signo == SIGCONT:
        return Default.CONTINUE
    return Default.TERMINATE


@dataclass(frozen=True)
class SigAction:
    """One kernel_sigaction: handler (or SIG_DFL/SIG_IGN), SA_* flags, restorer, mask."""

    handler: int = SIG_DFL
    flags: int = 0
    restorer: int = 0
    mask: int = 0

    def pack(self) -> bytes:
        """The 32 bytes rt_sigaction writes to oldact."""
        return _KSIGACTION.pack(self.handler, self.flags, self.restorer, self.mask)

    @classmethod
    def unpack(cls, data: bytes) -> SigAction:
        """The action in the 32 bytes a guest passed as act (taken as they are)."""
        return cls(*_KSIGACTION.unpack_from(data))

    @property
    def is_handler(self) -> bool:
        """Whether a guest function runs (neither SIG_DFL nor SIG_IGN)."""
        return self.handler not in (SIG_DFL, SIG_IGN)


def is_ignored(action: SigAction, signo: int) -> bool:
    """Whether delivering `signo` under `action` does nothing (sig_handler_ignored):
    SIG_IGN, or SIG_DFL for a signal whose delivery the kernel ignores."""
    return action.handler == SIG_IGN or (
        action.handler == SIG_DFL and bool(sigmask(signo) & KERNEL_IGNORE))


def is_fatal_default(signo: int) -> bool:
    """Whether SIG_DFL for `signo` ends the thread group (terminate or core)."""
    return default_action(signo) in (Default.TERMINATE, Default.CORE)


@dataclass(frozen=True)
class ActionChange:
    """What rt_sigaction did: the old action to report and whether pending instances of
    the signal must be discarded from every queue (it became ignored: POSIX 3.3.1.3)."""

    old: SigAction
    flush_pending: bool


class SignalActions:
    """A thread group's 64 signal actions (shared by CLONE_SIGHAND threads)."""

    def __init__(self) -> None:
        self._actions: dict[int, SigAction] = {}
        self._immutable = 0  # signals forced fatal: sigaction can no longer change them

    def get(self, signo: int) -> SigAction:
        """The action of `signo` (SIG_DFL until set)."""
        return self._actions.get(signo, SigAction())

    def sigaction(self, signo: int, new: SigAction | None) -> ActionChange | int:
        """rt_sigaction(signo, new, &old) on this table, or -EINVAL (kernel/signal.c
        do_sigaction): SIGKILL and SIGSTOP can be read but not set, unknown flag bits are
        dropped from both the new and the reported action, SIGKILL/SIGSTOP from the mask."""
        if not valid_signal(signo) or (new is not None and (
                signo in (SIGKILL, SIGSTOP) or self._immutable & sigmask(signo))):
            return -errno.EINVAL
        old = self.get(signo)
        old = replace(old, flags=old.flags & UAPI_SA_FLAGS)
        if new is None:
            return ActionChange(old, False)
        new = replace(new, flags=new.flags & UAPI_SA_FLAGS, mask=blockable(new.mask))
        self._set(signo, new)
        return ActionChange(old, is_ignored(new, signo))

    def reset_on_delivery(self, signo: int) -> None:
        """SA_RESETHAND: the handler goes back to SIG_DFL as it is invoked (flags stay)."""
        action = self.get(signo)
        if action.flags & SA_RESETHAND:
            self._set(signo, replace(action, handler=SIG_DFL))

    def force(self, signo: int, blocked: int, fatal: bool = False) -> int:
        """Prepare a forced signal (force_sig_info_to_task: a fault, a frame that could not
        be written): if it is blocked or ignored, or `fatal`, its handler becomes SIG_DFL
        and it is unblocked, so it cannot be held off. Returns the new blocked mask; the
        caller then queues the signal on the task's own queue."""
        action = self.get(signo)
        is_blocked = bool(blocked & sigmask(signo))
        if is_blocked or action.handler == SIG_IGN or fatal:
            self._set(signo, replace(action, handler=SIG_DFL))
            if fatal:
                self._immutable |= sigmask(signo)
            if is_blocked:
                blocked &= ~sigmask(signo)
        return blocked

    def reset_for_exec(self) -> None:
        """execve: every handled signal goes back to SIG_DFL with no flags, restorer or
        mask; ignored signals stay ignored (flush_signal_handlers)."""
        for signo, action in list(self._actions.items()):
            if action.handler != SIG_IGN:
                self._set(signo, SigAction())
        self._immutable = 0

    def copy(self) -> SignalActions:
        """An independent copy (fork, or clone without CLONE_SIGHAND)."""
        twin = SignalActions()
        twin._actions = dict(self._actions)
        twin._immutable = self._immutable
        return twin

    def _set(self, signo: int, action: SigAction) -> None:
        if action == SigAction():
            self._actions.pop(signo, None)
        else:
            self._actions[signo] = action

    def to_state(self) -> dict[str, list[list[int]] | int]:
        """Plain data for a checkpoint: the non-default actions, by signal, and the
        signals forced fatal."""
        return {"actions": [[signo, a.handler, a.flags, a.restorer, a.mask]
                            for signo, a in sorted(self._actions.items())],
                "immutable": self._immutable}

    @classmethod
    def from_state(cls, state: dict[str, list[list[int]] | int]) -> SignalActions:
        """The table to_state() described (STATE checked it)."""
        table = cls()
        for signo, handler, flags, restorer, mask in state["actions"]:  # type: ignore[union-attr]
            table._set(signo, SigAction(handler, flags, restorer, mask))
        table._immutable = int(state["immutable"])  # type: ignore[arg-type]
        return table


def _action_fits(row: list[int]) -> str | None:
    """An action as sigaction() stores it: known flags only, SIGKILL/SIGSTOP unmasked."""
    signo, _, flags, _, mask = row
    if signo in (SIGKILL, SIGSTOP):
        return f"sets an action for signal {signo}, which cannot have one"
    if flags & ~UAPI_SA_FLAGS:
        return f"has unknown flags {flags & ~UAPI_SA_FLAGS:#x}"
    if mask & UNBLOCKABLE:
        return "blocks SIGKILL or SIGSTOP in its mask"
    return None


U64 = Int(0, 2**64 - 1)
STATE = Record({  # SignalActions.to_state()
    "actions": Where(ListOf(Where(Row(Int(1, NSIG), U64, U64, U64, U64), _action_fits),
                            max_len=NSIG),
                     unique(lambda row: row[0], "signal")),
    "immutable": U64,
})
