"""epoll(7): an interest list of (fd, description) entries, scanned against readiness.

Each entry stays registered on its file's wait queue, so a state change wakes whoever is
blocked in epoll_wait (or polls the epoll fd itself). Readiness is asked of the files
when epoll_wait runs: level-triggered entries report while ready; edge-triggered ones
only when the file's event generation moved since they last reported (a new write to a
pipe is a new edge even if data was already waiting, as on Linux); EPOLLONESHOT entries
disarm after one report until EPOLL_CTL_MOD. Reported entries move to the end of the
list, so a small maxevents sees every ready entry in turn (Linux's ready-list rotation).
An entry goes away when its description is released (its last descriptor closed).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.fs.files import (
    ANON_DEV,
    POLLERR,
    POLLHUP,
    READABLE,
    S_IFREG,
    FileDescription,
    Refs,
    StatInfo,
    id_of,
)

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

EPOLLET, EPOLLONESHOT, EPOLLWAKEUP, EPOLLEXCLUSIVE = 1 << 31, 1 << 30, 1 << 29, 1 << 28
EPOLL_FLAGS = EPOLLET | EPOLLONESHOT | EPOLLWAKEUP | EPOLLEXCLUSIVE
EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD = 1, 2, 3


class Entry:
    """One watched (fd, description) of an epoll instance."""

    __slots__ = ("armed", "data", "epoll", "events", "fd", "file", "seen")

    def __init__(self, epoll: Epoll, fd: int, file: FileDescription, events: int,
                 data: int) -> None:
        self.epoll, self.fd, self.file = epoll, fd, file
        self.events, self.data = events, data
        self.seen: Any = None  # the file's generation when this entry last reported
        self.armed = True

    def notify(self, mask: int, at_ns: int) -> None:
        """The watched file changed: the epoll instance may have become readable."""
        self.epoll.changed(at_ns)

    def wanted(self) -> int:
        return (self.events & ~EPOLL_FLAGS) | POLLERR | POLLHUP


class Epoll(FileDescription):
    """An epoll instance."""

    kind = "epoll"

    def __init__(self, flags: int, path: bytes = b"anon_inode:[eventpoll]") -> None:
        super().__init__(flags, path)
        self.entries: list[Entry] = []
        self.events = 0

    def changed(self, at_ns: int) -> None:
        self.events += 1
        self.queue.notify(READABLE, at_ns)

    def _live(self) -> list[Entry]:
        self.entries = [e for e in self.entries if e.file.refs > 0]
        return self.entries

    def find(self, fd: int, file: FileDescription) -> Entry | None:
        return next((e for e in self._live() if e.fd == fd and e.file is file), None)

    def control(self, p: GuestProcess, op: int, fd: int, file: FileDescription, events: int,
                data: int) -> int:
        """epoll_ctl on this instance for an already looked-up (fd, file)."""
        if file is self or (op != EPOLL_CTL_DEL and isinstance(file, Epoll)
                            and self in file.reachable()):
            return -errno.EINVAL if file is self else -errno.ELOOP
        entry = self.find(fd, file)
        if op == EPOLL_CTL_ADD:
            if entry is not None:
                return -errno.EEXIST
            entry = Entry(self, fd, file, events, data)
            self.entries.append(entry)
            file.register(entry, entry.wanted())
            return 0
        if entry is None:
            return -errno.ENOENT
        if op == EPOLL_CTL_DEL:
            self.entries.remove(entry)
            file.unregister(entry)
            return 0
        if op == EPOLL_CTL_MOD:
            if entry.events & EPOLLEXCLUSIVE:
                return -errno.EINVAL
            entry.events, entry.data, entry.seen, entry.armed = events, data, None, True
            file.register(entry, entry.wanted())
            return 0
        return -errno.EINVAL

    def reachable(self) -> list[Epoll]:
        """Epoll instances this one watches, directly or through others."""
        found: list[Epoll] = []
        work = [e.file for e in self.entries if isinstance(e.file, Epoll)]
        while work:
            ep = work.pop()
            if isinstance(ep, Epoll) and all(ep is not f for f in found):
                found.append(ep)
                work += [e.file for e in ep.entries]
        return found

    def collect(self, p: GuestProcess, limit: int, consume: bool = True) -> list[tuple[int, int]]:
        """Up to limit (events, data) pairs that are ready now."""
        out: list[tuple[int, int]] = []
        reported: list[Entry] = []
        for entry in self._live():
            if len(out) >= limit:
                break
            if not entry.armed:
                continue
            ready = entry.file.readiness(p, entry.wanted())
            if not ready:
                continue
            if entry.events & EPOLLET:
                generation = entry.file.generation(p, ready)
                if generation == entry.seen:
                    continue
                if consume:
                    entry.seen = generation
            out.append((ready, entry.data))
            if consume:
                reported.append(entry)
                if entry.events & EPOLLONESHOT:
                    entry.armed = False
        if reported:
            self.entries = [e for e in self.entries if e not in reported] + reported
        return out

    def readiness(self, p: GuestProcess, mask: int) -> int:
        return mask & READABLE if self.collect(p, 1, consume=False) else 0

    def next_change_ns(self, p: GuestProcess) -> int | None:
        times = [t for e in self._live() if e.armed
                 if (t := e.file.next_change_ns(p)) is not None]
        return min(times, default=None)

    def generation(self, p: GuestProcess, mask: int) -> Any:
        return self.events

    def stat(self, p: GuestProcess) -> StatInfo | int:
        return StatInfo(ANON_DEV, id_of(self.path), S_IFREG | 0o600, 1, blksize=4096)

    def release(self, p: GuestProcess) -> None:
        for entry in self.entries:
            entry.file.unregister(entry)
        self.entries = []

    # -- checkpoints -----------------------------------------------------------------------
    def references(self) -> list[FileDescription]:
        return [e.file for e in self._live()]

    def save(self, refs: Refs) -> Any:
        return [self.events, [[e.fd, refs.index(e.file), e.events, e.data, e.seen, e.armed]
                              for e in self._live()]]

    def link(self, data: Any, refs: Refs) -> None:
        self.events = data[0]
        for fd, index, events, value, seen, armed in data[1]:
            entry = Entry(self, fd, refs.descriptions[index], events, value)
            entry.seen, entry.armed = seen, armed
            self.entries.append(entry)
            entry.file.register(entry, entry.wanted())
