"""The corpus of signals seen so far and the frontier of checkpoints to branch from.

The corpus answers "is this new?": every signal with the run that found it first. The
frontier holds the moments worth branching from: the checkpoint right after a run
discovered something, with everything a branch needs to continue from it (the run's seed
and full fault schedule, the gate, the signal collector's state, where the programs'
coverage bitmaps are) and its energy (energy.py). Several entries may share one run's
checkpoint file; the file is deleted once no live entry needs it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from chaosreplay.explore.coverage import CoverageMaps
from chaosreplay.explore.signals import CollectorState, Signal, weight
from chaosreplay.sim.faults.model import Fault


@dataclass
class Discovery:
    """A signal the corpus had not seen, the tick it appeared at, and the node (-1: none)."""

    signal: Signal
    tick: int
    node: int = -1


class Corpus:
    """Every signal seen, with the number of the run that saw it first."""

    def __init__(self) -> None:
        self.first_run: dict[Signal, int] = {}

    def __len__(self) -> int:
        return len(self.first_run)

    def count(self, kind: str) -> int:
        """How many signals of one kind have been seen."""
        return sum(1 for s in self.first_run if s[0] == kind)

    def absorb(self, signals: dict[Signal, tuple[int, int]], run: int) -> list[Discovery]:
        """Add a run's signals (signal -> (first tick, node)); the new ones, by tick then
        signal."""
        new = [Discovery(s, t, n) for s, (t, n) in signals.items() if s not in self.first_run]
        new.sort(key=lambda d: (d.tick, repr(d.signal)))  # repr: no hash order anywhere
        for d in new:
            self.first_run[d.signal] = run
        return new


def novelty(discoveries: Iterable[Discovery]) -> float:
    """What a set of discoveries is worth (signals.WEIGHTS)."""
    return sum(weight(d.signal) for d in discoveries)


@dataclass
class FrontierEntry:
    """A checkpoint to branch from, and what the energy rule knows about it."""

    number: int  # entries are numbered in the order they were made
    run: int  # the run whose checkpoint this is
    path: str  # that run's checkpoint file
    tick: int  # the checkpoint's tick
    focus_tick: int  # the discovery after the checkpoint that made this entry
    focus_node: int  # the node it happened on (-1: none in particular)
    seed: int  # the scenario seed of the run
    faults: tuple[Fault, ...]  # the run's whole schedule
    gate: int  # the absolute tick fault `at`s count from
    collector: CollectorState
    maps: CoverageMaps
    novelty: float  # what the discoveries before this checkpoint were worth
    depth: int  # 0: a run from a seed; n: n branches deep
    energy: float
    branches: int = 0
    productive: int = 0  # branches that found something new
    barren: int = 0  # branches in a row that found nothing
    retired: bool = False
    discoveries: list[str] = field(default_factory=list)  # a few, for the report


class Frontier:
    """Frontier entries, live and retired, and the checkpoint files they hold on to."""

    def __init__(self) -> None:
        self.entries: list[FrontierEntry] = []
        self._users: dict[str, int] = {}  # checkpoint file -> live entries using it

    def add(self, entry: FrontierEntry) -> None:
        """A new live entry."""
        self.entries.append(entry)
        self._users[entry.path] = self._users.get(entry.path, 0) + 1

    def live(self) -> list[FrontierEntry]:
        """The entries that may still be branched from, oldest first."""
        return [e for e in self.entries if not e.retired]

    def retire(self, entry: FrontierEntry) -> None:
        """No more branches from this entry; its file goes once no live entry needs it."""
        if entry.retired:
            return
        entry.retired = True
        self._users[entry.path] -= 1
        if self._users[entry.path] == 0:
            del self._users[entry.path]
            _unlink(entry.path)

    def holds(self, path: str) -> bool:
        """Whether a live entry uses this checkpoint file."""
        return path in self._users

    def close(self) -> None:
        """Retire everything (the checkpoint files are deleted)."""
        for entry in self.live():
            self.retire(entry)


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
