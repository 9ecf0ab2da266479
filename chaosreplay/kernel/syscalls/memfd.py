"""memfd_create, and the seals fcntl adds to and reads from a memfd (kernel.fs.memfd)."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.fs.files import O_LARGEFILE, O_RDWR
from chaosreplay.kernel.fs.memfd import F_SEAL_EXEC, F_SEAL_SEAL, MemFile

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

MFD_CLOEXEC, MFD_ALLOW_SEALING, MFD_HUGETLB, MFD_NOEXEC_SEAL, MFD_EXEC = 1, 2, 4, 8, 0x10
MFD_NAME_MAX = 249  # NAME_MAX less the "memfd:" prefix
F_ADD_SEALS, F_GET_SEALS = 1033, 1034


def sys_memfd_create(p: GuestProcess, r: Any) -> int:
    flags = r.rsi & 0xFFFFFFFF
    if flags & ~(MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | MFD_NOEXEC_SEAL | MFD_EXEC):
        return -errno.EINVAL
    if flags & MFD_NOEXEC_SEAL and flags & MFD_EXEC:
        return -errno.EINVAL
    name = p.space.read_cstring(r.rdi, MFD_NAME_MAX + 2)
    if name is None:
        return -errno.EFAULT
    if len(name) > MFD_NAME_MAX:
        return -errno.EINVAL
    if flags & MFD_HUGETLB:
        return -errno.EINVAL  # no huge page pool (hugetlbfs has no pages to give)
    seals = 0 if flags & MFD_ALLOW_SEALING else F_SEAL_SEAL
    mode = 0o777
    if flags & MFD_NOEXEC_SEAL:
        seals, mode = (seals & ~F_SEAL_SEAL) | F_SEAL_EXEC, 0o666  # implies ALLOW_SEALING
    file = MemFile(O_RDWR | O_LARGEFILE, b"/memfd:" + name + b" (deleted)", p.files.anon_ino(),
                   seals, mode)
    return p.files.install(file, bool(flags & MFD_CLOEXEC))


def fcntl_seals(p: GuestProcess, file: object, cmd: int, arg: int) -> int:
    """F_ADD_SEALS / F_GET_SEALS: only memfds have seals (EINVAL for other files)."""
    if not isinstance(file, MemFile):
        return -errno.EINVAL
    if cmd == F_GET_SEALS:
        return file.seals
    return file.add_seals(arg & 0xFFFFFFFF)


HANDLERS = {
    319: sys_memfd_create,
}
