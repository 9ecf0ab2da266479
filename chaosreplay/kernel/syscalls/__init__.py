"""The Linux system calls the VMM answers, one module per concept, merged into one table.

A handler takes the process and its registers (struct kvm_regs, arguments in rdi, rsi,
rdx, r10, r8, r9) and returns the value for rax: a result, or a negative errno.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.syscalls import (
    clock,
    credentials,
    descriptors,
    epoll,
    eventfd,
    files,
    introspection,
    io,
    machine,
    memfd,
    memory,
    paths,
    pipe,
    poll,
    process,
    residency,
    sched,
    sdk,
    signal,
    socket,
    splice,
    storage,
    system,
    task,
    thread,
    timerfd,
    xattr,
)

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

Handler = Callable[["GuestProcess", Any], int]

HANDLERS: dict[int, Handler] = {}
for _module in (memory, io, descriptors, files, paths, pipe, poll, epoll, eventfd, timerfd,
                system, clock, task, thread, signal, sdk, credentials, sched, residency,
                machine, storage, xattr, memfd, introspection, splice, socket, process):
    for _number, _handler in _module.HANDLERS.items():
        if _number in HANDLERS:
            raise RuntimeError(f"syscall {_number} is handled twice")
        HANDLERS[_number] = _handler
