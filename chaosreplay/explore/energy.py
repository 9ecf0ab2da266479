"""The energy rule: how many branches a frontier entry gets.

moonpool's idea, adapted: an entry starts with energy for what its run discovered (a first
`sometimes` is worth far more than a new packet size, signals.WEIGHTS), every branch spends
one unit, a branch that discovers something gives its entry more, and an entry whose
branches keep finding nothing is retired. Which live entry is branched next is drawn with
probability proportional to energy from the explorer's seeded generator.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from chaosreplay.explore.frontier import FrontierEntry


@dataclass(frozen=True)
class EnergyPolicy:
    """The constants of the energy rule."""

    base: float = 2.0  # every entry gets this many branches at least
    per_novelty: float = 1.0  # and this many more per unit of novelty
    cap: float = 24.0  # and never more than this at once
    reward_base: float = 2.0  # a productive branch gives its entry this much
    reward_per_novelty: float = 0.5  # plus this per unit of what it found
    retire_after: int = 6  # barren branches in a row before an entry is retired

    def initial(self, novelty: float) -> float:
        """The energy of a new entry."""
        return min(self.cap, self.base + self.per_novelty * novelty)

    def spend(self, entry: FrontierEntry) -> None:
        """A branch from the entry was started."""
        entry.energy -= 1.0
        entry.branches += 1

    def credit(self, entry: FrontierEntry, found: float) -> None:
        """A branch from the entry ended having found `found` worth of new signals."""
        if found > 0:
            entry.productive += 1
            entry.barren = 0
            entry.energy = min(self.cap, entry.energy + self.reward_base
                               + self.reward_per_novelty * found)
        else:
            entry.barren += 1

    def exhausted(self, entry: FrontierEntry) -> bool:
        """Whether the entry should be retired."""
        return entry.energy <= 0 or entry.barren >= self.retire_after

    def pick(self, live: Sequence[FrontierEntry], rng: random.Random) -> FrontierEntry:
        """A live entry drawn with probability proportional to its energy."""
        weights = [max(e.energy, 0.0) for e in live]
        total = sum(weights)
        point = rng.random() * total
        for entry, w in zip(live, weights, strict=True):
            point -= w
            if point < 0:
                return entry
        return live[-1]
