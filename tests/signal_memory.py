"""A fake guest address space for the signal tests (not a test module).

`FakeMemory` implements chaosreplay.kernel.signals.frame.GuestMemory over a few regions;
an access that is not wholly inside one region (or a write to a read-only one) fails, as a
guest access to an unmapped or protected page would.
"""

from __future__ import annotations


class FakeMemory:
    """Regions of bytes at guest addresses; reads and writes fail outside them."""

    def __init__(self) -> None:
        self.regions: list[tuple[int, bytearray, bool]] = []

    def add(self, base: int, size: int, writable: bool = True, fill: int = 0) -> None:
        """Map [base, base+size) filled with `fill`."""
        self.regions.append((base, bytearray([fill]) * size, writable))

    def _find(self, addr: int, n: int) -> tuple[bytearray, int, bool] | None:
        for base, data, writable in self.regions:
            if base <= addr and addr + n <= base + len(data):
                return data, addr - base, writable
        return None

    def read(self, addr: int, n: int) -> bytes | None:
        """The n bytes at addr, or None outside the regions."""
        found = self._find(addr, n)
        if found is None:
            return None
        data, at, _ = found
        return bytes(data[at:at + n])

    def write(self, addr: int, data: bytes) -> bool:
        """Store data at addr; False outside a writable region."""
        found = self._find(addr, len(data))
        if found is None or not found[2]:
            return False
        region, at, _ = found
        region[at:at + len(data)] = data
        return True
