"""MatchIndex: the event numbers a filter matches, filled in chunks by a background scan.

The scan goes forward, so while it runs the index holds every match up to some point it
has passed. An answer is exact once a match beyond the asked position is known (the scan
is past it) or the scan is complete; otherwise the caller asks the session directly.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right


class MatchIndex:
    """Sorted matching event numbers (see the module docstring)."""

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.complete = False

    def add(self, chunk: list[int]) -> None:
        """Append the next chunk of the scan (ascending, after everything already held)."""
        self.seqs.extend(chunk)

    def __len__(self) -> int:
        return len(self.seqs)

    def _passed(self, seq: int) -> bool:
        return self.complete or (bool(self.seqs) and self.seqs[-1] > seq)

    def next_after(self, seq: int) -> tuple[bool, int | None]:
        """(known, the first match after seq)."""
        if not self._passed(seq):
            return False, None
        i = bisect_right(self.seqs, seq)
        return True, self.seqs[i] if i < len(self.seqs) else None

    def prev_before(self, seq: int) -> tuple[bool, int | None]:
        """(known, the last match before seq)."""
        if not self._passed(seq - 1):
            return False, None
        i = bisect_left(self.seqs, seq)
        return True, self.seqs[i - 1] if i else None

    def position(self, seq: int) -> int:
        """How many matches are at or before seq (1-based index when seq itself matches)."""
        return bisect_right(self.seqs, seq)

    def is_match(self, seq: int) -> bool:
        """Whether seq is a known match."""
        i = bisect_left(self.seqs, seq)
        return i < len(self.seqs) and self.seqs[i] == seq
