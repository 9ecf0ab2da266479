"""Shared anonymous memory (mmap MAP_SHARED|MAP_ANONYMOUS) as the file Linux's shmem makes
of it: no name, no descriptor, only the mappings that hold it (a fork child's included),
kept coherent by kernel/mm/page_cache.py like any shared file mapping.

Its pages are stored sparsely, by page number, so a huge reservation costs only the pages
that were stored into; a page of zeros is not stored at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.fs.files import FileDescription, Refs
from chaosreplay.recording.schema import Bytes, Int, ListOf, Row
from chaosreplay.vm.vmm import PAGE_SIZE

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

USER_END = 1 << 47  # no mapping, so no such memory, reaches past the user half


class SharedMemory(FileDescription):
    """The memory of one MAP_SHARED|MAP_ANONYMOUS mapping: its size and stored pages."""

    kind = "shmem"
    STATE = Row(Int(0, USER_END),
                ListOf(Row(Int(0, USER_END // PAGE_SIZE), Bytes(PAGE_SIZE)), max_len=1 << 22))
    seekable = False
    pollable = False

    def __init__(self, flags: int, path: bytes, size: int = 0) -> None:
        super().__init__(flags, path)
        self.size = size
        self.pages: dict[int, bytes] = {}
        self.changes = 0  # bumped by every store (compared across one call only)

    # -- the page cache a shared mapping uses (kernel/mm/page_cache.py) --------------------
    def cache_size(self, p: GuestProcess) -> int:
        return self.size

    def cache_extents(self, p: GuestProcess) -> list[tuple[int, int]]:
        """The ranges that may hold bytes other than zeros: the stored pages."""
        return [(n * PAGE_SIZE, (n + 1) * PAGE_SIZE) for n in sorted(self.pages)]

    def cache_read(self, p: GuestProcess, offset: int, size: int) -> bytes:
        end = min(offset + size, self.size)
        if end <= offset:
            return b""
        out = bytearray()
        for n in range(offset // PAGE_SIZE, (end + PAGE_SIZE - 1) // PAGE_SIZE):
            out += self.pages.get(n, bytes(PAGE_SIZE))
        skip = offset % PAGE_SIZE
        return bytes(out[skip : skip + end - offset])

    def cache_write(self, p: GuestProcess, offset: int, data: bytes) -> None:
        """Stores through a mapping (page-aligned, as the page cache writes them back)."""
        data = data[: max(0, self.size - offset)]
        for at in range(0, len(data), PAGE_SIZE):
            n = (offset + at) // PAGE_SIZE
            page = self.pages.get(n, bytes(PAGE_SIZE))
            skip = (offset + at) % PAGE_SIZE
            piece = data[at : at + PAGE_SIZE - skip]
            page = page[:skip] + piece + page[skip + len(piece):]
            if any(page):
                self.pages[n] = page
            else:
                self.pages.pop(n, None)  # zeros need no storing
        self.changes += 1

    def cache_stamp(self, p: GuestProcess) -> int:
        return self.changes

    def cache_sync(self, p: GuestProcess) -> int:
        return 0  # memory: nothing to make durable

    # -- checkpoints -----------------------------------------------------------------------
    def save(self, refs: Refs) -> Any:
        return [self.size, [[n, self.pages[n]] for n in sorted(self.pages)]]

    @classmethod
    def load(cls, flags: int, path: bytes, data: Any, refs: Refs) -> FileDescription:
        size, pages = data
        memory = cls(flags, path, size)
        memory.pages = {n: bytes(page).ljust(PAGE_SIZE, b"\0") for n, page in pages}
        return memory
