"""Calls that would change the machine rather than the process: the host and domain names,
the system clocks, the kernel log, mounts, swap, accounting, reboot, the terminal's hangup.

They need capabilities in the initial user namespace (CAP_SYS_ADMIN, CAP_SYS_TIME,
CAP_SYSLOG, CAP_SYS_BOOT, CAP_SYS_PACCT, CAP_SYS_TTY_CONFIG), which the guest never has
(see credentials.py), so Linux refuses them with EPERM after checking what it checks first
(each handler keeps that order); adjtimex and clock_adjtime may still read the clock's
state. The clock's state is a freshly booted kernel's NTP state: never synchronised.
Module loading, kexec and I/O-port access (iopl, ioperm) stay ENOSYS, as in a kernel built
without them (the host these tests compare with is one).
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.syscalls.args import NS, int32
from chaosreplay.kernel.syscalls.clock import (
    _KNOWN,
    CLOCK_PROCESS_CPUTIME_ID,
    CLOCK_REALTIME,
    CLOCK_THREAD_CPUTIME_ID,
    clock_value,
)

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

TIMEX_SIZE = 208
ADJ_OFFSET_SINGLESHOT, ADJ_OFFSET_READONLY, ADJ_ADJTIME = 0x0001, 0x2000, 0x8000
STA_UNSYNC = 0x0040
TIME_ERROR = 5  # the clock is not synchronised
NTP_PHASE_LIMIT = 16_000_000  # µs: time_maxerror and time_esterror until NTP sets them
TIME_CONSTANT = 2
TOLERANCE = 500 << 16  # MAXFREQ_SCALED / PPM_SCALE: 500 ppm, scaled by 2^16
TICK_USEC = 10_000  # USER_HZ = 100


def sys_sethostname(p: GuestProcess, r: Any) -> int:
    return -errno.EPERM  # also setdomainname: the UTS namespace is not the guest's own


def sys_syslog(p: GuestProcess, r: Any) -> int:
    return -errno.EPERM  # dmesg_restrict = 1 (Debian's): every action needs CAP_SYSLOG


MS_NOUSER = 1 << 31
UMOUNT_FLAGS = 0x1 | 0x2 | 0x4 | 0x8  # MNT_FORCE | MNT_DETACH | MNT_EXPIRE | UMOUNT_NOFOLLOW
SWAP_FLAGS_VALID = 0x7FFFF


def sys_not_permitted(p: GuestProcess, r: Any) -> int:
    """vhangup, acct, pivot_root, swapoff, reboot: each checks its capability first."""
    return -errno.EPERM


def _string(p: GuestProcess, address: int) -> int:
    """0 when an optional string argument is absent or readable, else -EFAULT."""
    if address and p.space.read_cstring(address, 4096) is None:
        return -errno.EFAULT
    return 0


def sys_mount(p: GuestProcess, r: Any) -> int:
    from chaosreplay.kernel.syscalls.paths import _place

    for address in (r.rdx, r.rdi):  # the type, then the source, as copy_mount_string goes
        if _string(p, address):
            return -errno.EFAULT
    target = _place(p, -100, r.rsi)
    if isinstance(target, int):
        return target
    flags = r.r10 & 0xFFFFFFFF
    if flags & 0xFFFF0000 == 0xC0ED0000:
        flags &= 0xFFFF  # MS_MGC_VAL: the old magic in the top half is dropped first
    if flags & MS_NOUSER:
        return -errno.EINVAL
    return -errno.EPERM


def sys_umount2(p: GuestProcess, r: Any) -> int:
    from chaosreplay.kernel.syscalls.paths import _place

    flags = r.rsi & 0xFFFFFFFF
    if flags & ~UMOUNT_FLAGS:
        return -errno.EINVAL
    target = _place(p, -100, r.rdi, follow=not flags & 0x8)
    return target if isinstance(target, int) else -errno.EPERM


def sys_swapon(p: GuestProcess, r: Any) -> int:
    return -errno.EINVAL if r.rsi & 0xFFFFFFFF & ~SWAP_FLAGS_VALID else -errno.EPERM


def sys_clock_settime(p: GuestProcess, r: Any) -> int:
    clock = int32(r.rdi)
    if clock not in _KNOWN:
        return -errno.EINVAL
    if clock not in (CLOCK_REALTIME, CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID):
        return -errno.EINVAL  # the clock cannot be set at all
    raw = p.space.read(r.rsi, 16)
    if raw is None:
        return -errno.EFAULT
    seconds, nanos = struct.unpack("<qq", raw)
    if clock == CLOCK_REALTIME and (seconds < 0 or not 0 <= nanos < NS):
        return -errno.EINVAL
    return -errno.EPERM


def sys_settimeofday(p: GuestProcess, r: Any) -> int:
    if r.rdi:
        raw = p.space.read(r.rdi, 16)
        if raw is None:
            return -errno.EFAULT
        seconds, micros = struct.unpack("<qq", raw)
        if not 0 <= micros < 1_000_000 or seconds < 0:
            return -errno.EINVAL
    if r.rsi and p.space.read(r.rsi, 8) is None:
        return -errno.EFAULT
    return -errno.EPERM


def _adjtime(p: GuestProcess, buf: int) -> int:
    """Read the clock's NTP state into a struct timex; changing it is EPERM."""
    raw = p.space.read(buf, TIMEX_SIZE)
    if raw is None:
        return -errno.EFAULT
    modes = struct.unpack_from("<I", raw)[0]
    if modes & ADJ_ADJTIME:
        if not modes & ADJ_OFFSET_SINGLESHOT:
            return -errno.EINVAL
        if not modes & ADJ_OFFSET_READONLY:
            return -errno.EPERM
    elif modes:
        return -errno.EPERM
    now = clock_value(p, CLOCK_REALTIME) or 0
    out = bytearray(raw)
    struct.pack_into("<Iiqqqqi4xqqqqqq", out, 0, modes, 0, 0, 0, NTP_PHASE_LIMIT,
                     NTP_PHASE_LIMIT, STA_UNSYNC, TIME_CONSTANT, 1, TOLERANCE, now // NS,
                     now % NS // 1000, TICK_USEC)
    struct.pack_into("<qqi4xqqqqqi", out, 96, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    return TIME_ERROR if p.space.write(buf, bytes(out)) else -errno.EFAULT


def sys_adjtimex(p: GuestProcess, r: Any) -> int:
    return _adjtime(p, r.rdi)


def sys_clock_adjtime(p: GuestProcess, r: Any) -> int:
    clock = int32(r.rdi)
    if clock not in _KNOWN:
        return -errno.EINVAL
    if clock != CLOCK_REALTIME:
        return -errno.EOPNOTSUPP
    return _adjtime(p, r.rsi)


HANDLERS = {
    170: sys_sethostname,
    171: sys_sethostname,  # setdomainname
    103: sys_syslog,
    227: sys_clock_settime,
    164: sys_settimeofday,
    159: sys_adjtimex,
    305: sys_clock_adjtime,
    153: sys_not_permitted,  # vhangup
    163: sys_not_permitted,  # acct
    155: sys_not_permitted,  # pivot_root
    168: sys_not_permitted,  # swapoff
    169: sys_not_permitted,  # reboot
    165: sys_mount,
    166: sys_umount2,
    167: sys_swapon,
}
