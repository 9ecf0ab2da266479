"""siginfo_t: what a signal carries, kept as Linux keeps it, and its 128-byte user layout.

The kernel's own `struct kernel_siginfo` is 48 bytes: si_signo, si_errno, si_code, 4 bytes
of padding and 32 bytes of the `_sifields` union; copy_siginfo_to_user writes those and
zeros up to 128 (include/uapi/asm-generic/siginfo.h). `SigInfo` holds the same: the three
ints and the 32 union bytes, so a siginfo a guest passed to rt_sigqueueinfo comes back
exactly, and every kind below is only a way of filling the union:

  kill/tkill/rt   si_pid @16 (int), si_uid @20 (uint), si_value @24 (union sigval, 8)
  timer           si_tid @16, si_overrun @20, si_value @24, si_sys_private @32
  SIGCHLD         si_pid @16, si_uid @20, si_status @24, si_utime @32, si_stime @40
  faults          si_addr @16 (si_addr_lsb, si_lower/si_upper, si_pkey after it)
  SIGPOLL         si_band @16 (long), si_fd @24
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass

from chaosreplay.kernel.signals.sigset import (
    SIGBUS,
    SIGCHLD,
    SIGFPE,
    SIGILL,
    SIGIO,
    SIGSEGV,
    SIGSYS,
    SIGTRAP,
)
from chaosreplay.recording.schema import Bytes, Int, Row, Where

SIGINFO_SIZE = 128
KERNEL_SIGINFO_SIZE = 48  # what the kernel keeps; the rest of the 128 bytes is zero
UNION_OFFSET = 16
UNION_SIZE = KERNEL_SIGINFO_SIZE - UNION_OFFSET
_HEADER = struct.Struct("<iii4x")

# si_code values (include/uapi/asm-generic/siginfo.h): <= 0 from user space, > 0 kernel.
SI_USER, SI_KERNEL = 0, 0x80
SI_QUEUE, SI_TIMER, SI_MESGQ, SI_ASYNCIO, SI_SIGIO, SI_TKILL, SI_DETHREAD = (
    -1, -2, -3, -4, -5, -6, -7)
SI_ASYNCNL = -60
ILL_ILLOPC, ILL_ILLOPN, ILL_ILLADR, ILL_ILLTRP, ILL_PRVOPC, ILL_PRVREG = 1, 2, 3, 4, 5, 6
ILL_COPROC, ILL_BADSTK = 7, 8
FPE_INTDIV, FPE_INTOVF, FPE_FLTDIV, FPE_FLTOVF, FPE_FLTUND = 1, 2, 3, 4, 5
FPE_FLTRES, FPE_FLTINV, FPE_FLTSUB = 6, 7, 8
SEGV_MAPERR, SEGV_ACCERR, SEGV_BNDERR, SEGV_PKUERR = 1, 2, 3, 4
BUS_ADRALN, BUS_ADRERR, BUS_OBJERR, BUS_MCEERR_AR, BUS_MCEERR_AO = 1, 2, 3, 4, 5
TRAP_BRKPT, TRAP_TRACE, TRAP_BRANCH, TRAP_HWBKPT = 1, 2, 3, 4
CLD_EXITED, CLD_KILLED, CLD_DUMPED, CLD_TRAPPED, CLD_STOPPED, CLD_CONTINUED = 1, 2, 3, 4, 5, 6
POLL_IN, POLL_OUT, POLL_MSG, POLL_ERR, POLL_PRI, POLL_HUP = 1, 2, 3, 4, 5, 6

# How many si_code values above 0 each signal defines (NSIGILL ... in siginfo.h, Linux 6.x);
# a signal without an entry shares the SIGPOLL codes.
_CODE_LIMITS = {SIGILL: 11, SIGFPE: 15, SIGSEGV: 10, SIGBUS: 5, SIGTRAP: 6, SIGCHLD: 6,
                SIGIO: 6, SIGSYS: 2}
_NSIGPOLL = 6
USER_HZ = 100  # clock_t ticks per second in si_utime/si_stime (and times(2))


@dataclass(frozen=True)
class SigInfo:
    """One signal's information: number, errno, code and the 32 bytes of its union."""

    signo: int
    code: int = SI_USER
    errno: int = 0
    fields: bytes = bytes(UNION_SIZE)

    def __post_init__(self) -> None:
        if len(self.fields) != UNION_SIZE:
            raise ValueError(f"siginfo union is {len(self.fields)} bytes, not {UNION_SIZE}")

    def pack(self) -> bytes:
        """The 128-byte siginfo_t a handler or rt_sigtimedwait receives."""
        return (_HEADER.pack(self.signo, self.errno, self.code) + self.fields
                + bytes(SIGINFO_SIZE - KERNEL_SIGINFO_SIZE))

    def _field(self, fmt: str, offset: int) -> int:
        return struct.unpack_from("<" + fmt, self.fields, offset - UNION_OFFSET)[0]

    @property
    def pid(self) -> int:
        """si_pid (kill, tkill, sigqueue, SIGCHLD)."""
        return self._field("i", 16)

    @property
    def uid(self) -> int:
        """si_uid (kill, tkill, sigqueue, SIGCHLD)."""
        return self._field("I", 20)

    @property
    def value(self) -> int:
        """si_value as its 8 bytes (sigqueue, timers)."""
        return self._field("Q", 24)

    @property
    def timer_id(self) -> int:
        """si_timerid (si_tid) of a POSIX timer signal."""
        return self._field("i", 16)

    @property
    def overrun(self) -> int:
        """si_overrun of a POSIX timer signal."""
        return self._field("i", 20)

    @property
    def status(self) -> int:
        """si_status of SIGCHLD: the exit code or the signal."""
        return self._field("i", 24)

    @property
    def addr(self) -> int:
        """si_addr of a fault."""
        return self._field("Q", 16)

    @property
    def from_kernel(self) -> bool:
        """Whether the kernel sent it (si_code > 0): only those can be synchronous."""
        return self.code > SI_USER

    def with_overrun(self, overrun: int) -> SigInfo:
        """The same timer signal with a new si_overrun (a timer that fired again while its
        signal was still queued)."""
        fields = bytearray(self.fields)
        struct.pack_into("<i", fields, 20 - UNION_OFFSET, min(overrun, 2**31 - 1))
        return SigInfo(self.signo, self.code, self.errno, bytes(fields))

    def to_state(self) -> list[int | bytes]:
        """Plain data for a checkpoint: [signo, code, errno, union bytes]."""
        return [self.signo, self.code, self.errno, self.fields]

    @classmethod
    def from_state(cls, state: list[int | bytes]) -> SigInfo:
        """The SigInfo to_state() described (STATE checked it)."""
        signo, code, err, fields = state
        return cls(int(signo), int(code), int(err), bytes(fields))  # type: ignore[arg-type]


I32 = Int(-(2**31), 2**31 - 1)
UNION = Where(Bytes(UNION_SIZE), lambda b: None if len(b) == UNION_SIZE
              else f"is {len(b)} bytes, not {UNION_SIZE}")
STATE = Row(Int(1, 64), I32, I32, UNION)  # SigInfo.to_state()


def _union(fmt: str, *values: int) -> bytes:
    body = struct.pack("<" + fmt, *values)
    return body + bytes(UNION_SIZE - len(body))


def kill_info(signo: int, pid: int, uid: int) -> SigInfo:
    """kill(2) (and the kernel's SEND_SIG_NOINFO, e.g. SIGPIPE): SI_USER from pid/uid."""
    return SigInfo(signo, SI_USER, 0, _union("iI", pid, uid))


def tkill_info(signo: int, pid: int, uid: int) -> SigInfo:
    """tkill(2)/tgkill(2): SI_TKILL from the sender's pid (thread group id) and uid."""
    return SigInfo(signo, SI_TKILL, 0, _union("iI", pid, uid))


def queue_info(signo: int, pid: int, uid: int, value: int) -> SigInfo:
    """sigqueue(3) as glibc builds it for rt_sigqueueinfo: SI_QUEUE with a value."""
    return SigInfo(signo, SI_QUEUE, 0, _union("iIQ", pid, uid, value))


def kernel_info(signo: int) -> SigInfo:
    """A signal the kernel sends with no details (SEND_SIG_PRIV: alarm's SIGALRM, a forced
    SIGSEGV, int3's SIGTRAP, a #GP): SI_KERNEL with pid and uid 0."""
    return SigInfo(signo, SI_KERNEL)


def fault_info(signo: int, code: int, addr: int) -> SigInfo:
    """A fault (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP) with its si_code and si_addr."""
    return SigInfo(signo, code, 0, _union("Q", addr))


def child_info(code: int, pid: int, uid: int, status: int, utime_ns: int,
               stime_ns: int) -> SigInfo:
    """SIGCHLD for a child that changed state (CLD_*): times in clock ticks as Linux's
    do_notify_parent gives them."""
    ticks = [min(t * USER_HZ // 1_000_000_000, 2**63 - 1) for t in (utime_ns, stime_ns)]
    return SigInfo(SIGCHLD, code, 0, _union("iIi4xqq", pid, uid, status, *ticks))


def child_exit_info(pid: int, uid: int, exit_code: int, utime_ns: int,
                    stime_ns: int) -> SigInfo:
    """SIGCHLD for a child that ended, from its wait status word (exit_code): a signal
    with the core bit is CLD_DUMPED, a signal CLD_KILLED, else CLD_EXITED with the code."""
    if exit_code & 0x80:
        code, status = CLD_DUMPED, exit_code & 0x7F
    elif exit_code & 0x7F:
        code, status = CLD_KILLED, exit_code & 0x7F
    else:
        code, status = CLD_EXITED, (exit_code >> 8) & 0xFF
    return child_info(code, pid, uid, status, utime_ns, stime_ns)


def timer_info(signo: int, timer_id: int, overrun: int, value: int) -> SigInfo:
    """A POSIX timer's expiry: SI_TIMER with its id, overrun count and sigev_value."""
    return SigInfo(signo, SI_TIMER, 0, _union("iiQ", timer_id, overrun, value))


def poll_info(signo: int, code: int, band: int, fd: int) -> SigInfo:
    """SIGIO (or the F_SETSIG signal) for a descriptor: POLL_* code, band and fd."""
    return SigInfo(signo, code, 0, _union("qi", band, fd))


def known_layout(signo: int, code: int) -> bool:
    """Whether Linux knows which union member (signo, code) uses (known_siginfo_layout):
    a siginfo from user space with an unknown one may not use the bytes past 48."""
    if code == SI_KERNEL:
        return True
    if SI_USER < code < SI_KERNEL:
        return code <= _CODE_LIMITS.get(signo, _NSIGPOLL)
    return code >= SI_DETHREAD or code == SI_ASYNCNL


def from_user(signo: int, data: bytes) -> SigInfo | int:
    """The siginfo rt_sigqueueinfo/rt_tgsigqueueinfo take from a guest's 128 bytes, or
    -E2BIG (kernel/signal.c __copy_siginfo_from_user): the kernel keeps 48 bytes, sets
    si_signo to the call's signal, and refuses nonzero bytes past 48 when the code's
    layout is unknown (it could not give them back)."""
    _, err, code = _HEADER.unpack_from(data)
    if not known_layout(signo, code) and any(data[KERNEL_SIGINFO_SIZE:SIGINFO_SIZE]):
        return -errno.E2BIG
    return SigInfo(signo, code, err, bytes(data[UNION_OFFSET:KERNEL_SIGINFO_SIZE]))


def queueinfo_allowed(info: SigInfo, sender_tgid: int, target_tgid: int) -> bool:
    """Whether rt_sigqueueinfo may send `info` (else EPERM): only to itself may a process
    pretend to be the kernel (si_code >= 0) or tkill."""
    return not (info.code >= 0 or info.code == SI_TKILL) or sender_tgid == target_tgid


def unpack(data: bytes) -> SigInfo:
    """The SigInfo a 128-byte siginfo_t holds (for tests and the debugger)."""
    signo, err, code = _HEADER.unpack_from(data)
    return SigInfo(signo, code, err, bytes(data[UNION_OFFSET:KERNEL_SIGINFO_SIZE]))
