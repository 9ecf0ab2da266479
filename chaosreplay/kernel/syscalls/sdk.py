"""The guest SDK's calls (guest/include/chaosreplay.h): assertions, events, randomness,
node identity and datagram messaging.

Messaging goes through `process.network` when the simulation attaches one; a process run
alone has no peers, so sends are unreachable and receives time out.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from chaosreplay.events import EventKind
from chaosreplay.kernel import sdk_abi

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

MAX_TEXT = 4096
MAX_EVENT_DATA = 1 << 16
MAX_DATAGRAM = 1 << 16


def _text(p: GuestProcess, address: int) -> str:
    raw = p.space.read_cstring(address, MAX_TEXT) if address else b""
    return (raw or b"").decode("utf-8", errors="replace")


def sys_assert(p: GuestProcess, r: Any) -> int:
    kind = r.rdi
    if kind not in iter(sdk_abi.AssertKind):
        return -errno.EINVAL
    p.emit(EventKind.ASSERT, assert_kind=kind, condition=bool(r.rsi), id=r.rdx,
           message=_text(p, r.r10), file=_text(p, r.r8), line=r.r9 & 0xFFFFFFFF)
    return 0


def sys_setup_complete(p: GuestProcess, r: Any) -> int:
    p.emit(EventKind.SETUP_COMPLETE)
    return 0


def sys_send_event(p: GuestProcess, r: Any) -> int:
    length = r.rdx
    if length > MAX_EVENT_DATA:
        return -errno.EMSGSIZE
    data = p.space.read(r.rsi, length) if length else b""
    if data is None:
        return -errno.EFAULT
    p.emit(EventKind.SDK_EVENT, name=_text(p, r.rdi), data=data)
    return 0


def sys_random(p: GuestProcess, r: Any) -> int:
    return p.random["sdk"].next_u64()


def sys_node_id(p: GuestProcess, r: Any) -> int:
    return p.node_id


def sys_node_count(p: GuestProcess, r: Any) -> int:
    return p.config.node_count


def sys_send(p: GuestProcess, r: Any) -> int:
    dst, buf, length = r.rdi, r.rsi, r.rdx
    if length > MAX_DATAGRAM:
        return -errno.EMSGSIZE
    if not 0 <= dst < p.config.node_count:
        return -errno.EINVAL
    payload = p.space.read(buf, length) if length else b""
    if payload is None:
        return -errno.EFAULT
    if p.network is None:
        return -errno.ENETUNREACH
    return p.network.send(p, dst, payload)


def sys_recv(p: GuestProcess, r: Any) -> int:
    timeout = r.rdx - (1 << 64) if r.rdx >= 1 << 63 else r.rdx
    if p.network is not None:
        return p.network.recv(p, r.rdi, r.rsi, timeout, r.r10)
    if timeout < 0:
        p._die(9, 0, 0, "deadlock: cr_recv without timeout and no network")
        return 0
    p.block_for(timeout)
    return -errno.ETIMEDOUT


def sys_coverage(p: GuestProcess, r: Any) -> int:
    """Register the program's edge-coverage bitmap (the SDK's CR_COVERAGE build).

    Nothing is recorded here: the explorer reads the bitmap from guest memory at decision
    points (chaosreplay/explore/coverage.py), and the memory is in every checkpoint and
    digest already. The location is kept on the process as `coverage_map` (checkpointed).
    """
    address, size = r.rdi, r.rsi
    if size == 0 or size & (size - 1) or size > sdk_abi.CR_COVERAGE_MAP_MAX:
        return -errno.EINVAL
    if p.space.read(address, 1) is None or p.space.read(address + size - 1, 1) is None:
        return -errno.EFAULT
    p.coverage_map = (address, size)
    return 0


HANDLERS = {
    sdk_abi.CR_SYS_ASSERT: sys_assert,
    sdk_abi.CR_SYS_SETUP_COMPLETE: sys_setup_complete,
    sdk_abi.CR_SYS_SEND_EVENT: sys_send_event,
    sdk_abi.CR_SYS_RANDOM: sys_random,
    sdk_abi.CR_SYS_NODE_ID: sys_node_id,
    sdk_abi.CR_SYS_NODE_COUNT: sys_node_count,
    sdk_abi.CR_SYS_SEND: sys_send,
    sdk_abi.CR_SYS_RECV: sys_recv,
    sdk_abi.CR_SYS_COVERAGE: sys_coverage,
}
