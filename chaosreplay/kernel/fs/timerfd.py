"""timerfd(2): a timer on one of the guest's clocks whose expirations are read as a count.

The timer keeps its expiry in the guest time of its clock (monotonic or realtime), so a
skewed node clock makes it fire early or late in virtual time exactly as it makes sleeps
do (kernel.clock). Expirations are computed when asked, never by a callback: the
description tells a blocked reader when it will next become readable (`next_change_ns`).
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.fs.files import (
    ANON_DEV,
    READABLE,
    S_IFREG,
    FileDescription,
    Refs,
    StatInfo,
    id_of,
)

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME = 0, 1, 7
CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM = 8, 9
TIMER_CLOCKS = {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_REALTIME_ALARM,
                CLOCK_BOOTTIME_ALARM}
TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET = 1, 2
TFD_IOC_SET_TICKS = 0x40085400


def clock_now(p: GuestProcess, clock_id: int) -> int:
    from chaosreplay.kernel.syscalls.clock import clock_value

    realtime = clock_id in (CLOCK_REALTIME, CLOCK_REALTIME_ALARM)
    return clock_value(p, CLOCK_REALTIME if realtime else CLOCK_MONOTONIC) or 0


class TimerFd(FileDescription):
    """A timer: next expiry (guest ns of its clock, 0 = disarmed) and interval."""

    kind = "timerfd"
    blocking = True

    def __init__(self, flags: int, path: bytes = b"anon_inode:[timerfd]", clock_id: int = 1,
                 ) -> None:
        super().__init__(flags, path)
        self.clock_id = clock_id
        self.expiry_ns = 0
        self.interval_ns = 0
        self.ticks = 0  # expirations counted but not read yet (set by TFD_IOC_SET_TICKS)
        self.settings = 0  # bumps on every settime: an event for edge-triggered epoll
        self.fired = 0  # expirations ever: each is an event for edge-triggered epoll

    def _due(self, now: int) -> int:
        """Expirations since the last read, as of guest time now (advancing the timer)."""
        if self.expiry_ns and now >= self.expiry_ns:
            if self.interval_ns:
                passed = 1 + (now - self.expiry_ns) // self.interval_ns
                self.expiry_ns += passed * self.interval_ns
            else:
                passed = 1
                self.expiry_ns = 0
            self.ticks += passed
            self.fired += passed
        return self.ticks

    def set(self, p: GuestProcess, flags: int, value_ns: int, interval_ns: int
            ) -> tuple[int, int]:
        """Arm (value 0: disarm); returns the old (remaining, interval)."""
        old = self.get(p)
        now = clock_now(p, self.clock_id)
        self.ticks = 0
        self.interval_ns = interval_ns
        if value_ns == 0:
            self.expiry_ns = 0
        else:
            self.expiry_ns = value_ns if flags & TFD_TIMER_ABSTIME else now + value_ns
            self.expiry_ns = max(self.expiry_ns, 1)
        self.settings += 1
        self.queue.notify(READABLE, p.vtime_ns)
        return old

    def get(self, p: GuestProcess) -> tuple[int, int]:
        now = clock_now(p, self.clock_id)
        self._due(now)
        remaining = max(1, self.expiry_ns - now) if self.expiry_ns else 0
        return remaining, self.interval_ns

    def read(self, p: GuestProcess, size: int) -> bytes | int:
        if size < 8:
            return -errno.EINVAL
        count = self._due(clock_now(p, self.clock_id))
        if count == 0:
            return -errno.EAGAIN
        self.ticks = 0
        return struct.pack("<Q", count)

    def readiness(self, p: GuestProcess, mask: int) -> int:
        return mask & READABLE if self._due(clock_now(p, self.clock_id)) else 0

    def next_change_ns(self, p: GuestProcess) -> int | None:
        if self.ticks or not self.expiry_ns:
            return None
        now = clock_now(p, self.clock_id)
        return p.vtime_ns + p.clock.to_virtual(max(0, self.expiry_ns - now))

    def generation(self, p: GuestProcess, mask: int) -> Any:
        self._due(clock_now(p, self.clock_id))
        return [self.settings, self.fired, self.ticks]

    def ioctl(self, p: GuestProcess, request: int, arg: int) -> int:
        if request != TFD_IOC_SET_TICKS:
            return -errno.ENOTTY
        raw = p.space.read(arg, 8)
        if raw is None:
            return -errno.EFAULT
        (ticks,) = struct.unpack("<Q", raw)
        if ticks == 0:
            return -errno.EINVAL
        self.ticks = ticks
        self.queue.notify(READABLE, p.vtime_ns)
        return 0

    def stat(self, p: GuestProcess) -> StatInfo | int:
        return StatInfo(ANON_DEV, id_of(self.path), S_IFREG | 0o600, 1, blksize=4096)

    def save(self, refs: Refs) -> Any:
        return [self.clock_id, self.expiry_ns, self.interval_ns, self.ticks, self.settings,
                self.fired]

    @classmethod
    def load(cls, flags: int, path: bytes, data: Any, refs: Refs) -> FileDescription:
        d = cls(flags, path, data[0])
        d.expiry_ns, d.interval_ns, d.ticks, d.settings, d.fired = data[1:6]
        return d
