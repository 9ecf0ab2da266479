"""A node's clock: what the guest reads, as a function of its virtual time and clock faults.

Virtual time (`vtime_ns`) is the simulation's schedule and never bends. The guest's clock
follows it unless a fault says otherwise:

- skew: the clock runs at (1 + rate) times virtual speed from the moment the skew starts;
  when it ends, the drift accumulated so far stays (like a clock NTP stopped correcting);
- jump: CLOCK_REALTIME moves by delta at once, forward or back. Monotonic clocks never
  jump, as on Linux — a program is entitled to that — but they do run fast or slow.

Timers follow the guest's clock: a 100 ms sleep on a clock running 25% fast ends after
80 ms of virtual time. All arithmetic is integer, so results never depend on the host.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any


@dataclass(slots=True)
class NodeClock:
    """Offsets and rate between a node's virtual time and the time its guest reads."""

    offset_ns: int = 0  # drift of every clock, accumulated by skews that ended
    realtime_offset_ns: int = 0  # CLOCK_REALTIME only: the sum of jumps
    rate_ppb: int = 0  # current skew in parts per billion (0: runs at virtual speed)
    anchor_ns: int = 0  # virtual time the current skew started

    def read(self, vtime_ns: int) -> int:
        """Monotonic guest time (before the boot offset) at a virtual time."""
        drift = (vtime_ns - self.anchor_ns) * self.rate_ppb // 1_000_000_000
        return vtime_ns + self.offset_ns + drift

    def realtime(self, vtime_ns: int) -> int:
        """CLOCK_REALTIME guest time (before the epoch) at a virtual time."""
        return self.read(vtime_ns) + self.realtime_offset_ns

    def to_virtual(self, guest_ns: int) -> int:
        """How much virtual time passes while this clock advances guest_ns (rounded up)."""
        if not self.rate_ppb:
            return guest_ns
        scale = Fraction(1_000_000_000, 1_000_000_000 + self.rate_ppb)
        return -(-guest_ns * scale.numerator // scale.denominator)

    def start_skew(self, vtime_ns: int, rate: float) -> None:
        """From now on run at (1 + rate) times virtual speed (replaces any current skew)."""
        self.stop_skew(vtime_ns)
        self.rate_ppb = round(rate * 1_000_000_000)
        self.anchor_ns = vtime_ns

    def stop_skew(self, vtime_ns: int) -> None:
        """Back to virtual speed, keeping the drift accumulated so far."""
        self.offset_ns = self.read(vtime_ns) - vtime_ns
        self.rate_ppb = 0
        self.anchor_ns = vtime_ns

    def jump(self, delta_ns: int) -> None:
        """Move CLOCK_REALTIME by delta_ns (negative: back in time)."""
        self.realtime_offset_ns += delta_ns

    def to_dict(self) -> dict[str, Any]:
        """Plain data for checkpoints."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeClock:
        """The inverse of to_dict."""
        return cls(**data)
