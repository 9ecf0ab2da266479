"""Changing identity: set*uid/set*gid, getres*id, setfs*id, setgroups, capget/capset.

The guest runs as uid 0 and gid 0 of a user namespace in which only id 0 is mapped and
setgroups is denied, as `unshare --map-root-user` leaves a program (tests compare with one):
it holds every capability inside the namespace, but no id other than 0 exists for it, so
a call asking for another id fails with EINVAL and setgroups fails with EPERM, and every
id stays 0. Capability sets can be dropped (capset) and read back (capget); nothing else
consults them, since each check they could fail is one this identity already passes or
one Linux makes against the initial namespace, which the guest is never in.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.task_attributes import CAP_FULL, attributes_of, names_this_process

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

KEEP = 0xFFFFFFFF  # (uid_t)-1: leave this id alone
MAPPED_ID = 0
CAPABILITY_V1, CAPABILITY_V2, CAPABILITY_V3 = 0x19980330, 0x20071026, 0x20080522
CAP_SETPCAP = 8
NGROUPS_MAX = 65536


def _set_ids(*ids: int, keep_allowed: bool = True) -> int:
    """0 when every id asked for exists in the namespace (or is -1 where that keeps one)."""
    for value in ids:
        value &= 0xFFFFFFFF
        if value == KEEP and keep_allowed:
            continue
        if value != MAPPED_ID:
            return -errno.EINVAL  # make_kuid() finds no mapping for it
    return 0


def sys_setuid(p: GuestProcess, r: Any) -> int:
    return _set_ids(r.rdi, keep_allowed=False)


def sys_setreid(p: GuestProcess, r: Any) -> int:
    return _set_ids(r.rdi, r.rsi)


def sys_setresid(p: GuestProcess, r: Any) -> int:
    return _set_ids(r.rdi, r.rsi, r.rdx)


def sys_getresid(p: GuestProcess, r: Any) -> int:
    for address in (r.rdi, r.rsi, r.rdx):
        if not p.space.write(address, struct.pack("<I", MAPPED_ID)):
            return -errno.EFAULT
    return 0


def sys_setfsid(p: GuestProcess, r: Any) -> int:
    return MAPPED_ID  # always the old fs id; an unmapped one changes nothing


def sys_setgroups(p: GuestProcess, r: Any) -> int:
    return -errno.EPERM  # /proc/self/setgroups says "deny", as in an unprivileged namespace


def _capability_header(p: GuestProcess, header: int) -> tuple[int, int] | int:
    """(number of 32-bit data structs, pid) of a cap_user_header_t, or -errno; an unknown
    version is answered with the preferred one written back, as Linux does."""
    raw = p.space.read(header, 8)
    if raw is None:
        return -errno.EFAULT
    version, pid = struct.unpack("<Ii", raw)
    if version == CAPABILITY_V1:
        return 1, pid
    if version in (CAPABILITY_V2, CAPABILITY_V3):
        return 2, pid
    if not p.space.write(header, struct.pack("<I", CAPABILITY_V3)):
        return -errno.EFAULT
    return -errno.EINVAL


def sys_capget(p: GuestProcess, r: Any) -> int:
    parsed = _capability_header(p, r.rdi)
    if isinstance(parsed, int):
        return 0 if parsed == -errno.EINVAL and not r.rsi else parsed
    words, pid = parsed
    if pid < 0:
        return -errno.EINVAL
    if not names_this_process(p, pid):
        return -errno.ESRCH
    if not r.rsi:
        return 0
    a = attributes_of(p)
    data = b"".join(struct.pack("<III", (a.cap_effective >> (32 * i)) & 0xFFFFFFFF,
                                (a.cap_permitted >> (32 * i)) & 0xFFFFFFFF,
                                (a.cap_inheritable >> (32 * i)) & 0xFFFFFFFF)
                    for i in range(words))
    return 0 if p.space.write(r.rsi, data) else -errno.EFAULT


def sys_capset(p: GuestProcess, r: Any) -> int:
    """New sets within Linux's rules: permitted only shrinks, effective within permitted,
    inheritable within the old inheritable and permitted unless CAP_SETPCAP is effective."""
    parsed = _capability_header(p, r.rdi)
    if isinstance(parsed, int):
        return parsed
    words, pid = parsed
    if not names_this_process(p, pid):
        return -errno.EPERM  # only a task's own sets can be changed
    raw = p.space.read(r.rsi, 12 * words)
    if raw is None:
        return -errno.EFAULT
    effective = permitted = inheritable = 0
    for i, (e, pm, ih) in enumerate(struct.iter_unpack("<III", raw)):
        effective |= e << (32 * i)
        permitted |= pm << (32 * i)
        inheritable |= ih << (32 * i)
    effective, permitted, inheritable = (v & CAP_FULL for v in (effective, permitted,
                                                                  inheritable))
    a = attributes_of(p)
    may_raise_inheritable = a.cap_effective >> CAP_SETPCAP & 1
    if inheritable & ~(a.cap_inheritable | a.cap_permitted) and not may_raise_inheritable:
        return -errno.EPERM
    if permitted & ~a.cap_permitted or effective & ~permitted:
        return -errno.EPERM
    a.cap_effective, a.cap_permitted, a.cap_inheritable = effective, permitted, inheritable
    return 0


HANDLERS = {
    105: sys_setuid,  # setuid
    106: sys_setuid,  # setgid
    113: sys_setreid,  # setreuid
    114: sys_setreid,  # setregid
    117: sys_setresid,  # setresuid
    118: sys_getresid,  # getresuid
    119: sys_setresid,  # setresgid
    120: sys_getresid,  # getresgid
    122: sys_setfsid,  # setfsuid
    123: sys_setfsid,  # setfsgid
    116: sys_setgroups,
    125: sys_capget,
    126: sys_capset,
}
