"""Where a seek goes: "#1234" is an event number, "12500" a tick, "12.5s" a virtual time."""

from __future__ import annotations

from dataclasses import dataclass

from chaosreplay.sim.validation import NS_PER_TICK, parse_duration_ns


class SeekError(ValueError):
    """A seek target that cannot be read."""


@dataclass(frozen=True)
class SeekTarget:
    """An event number or a tick (exactly one is set)."""

    seq: int | None = None
    tick: int | None = None

    @classmethod
    def parse(cls, text: str) -> SeekTarget:
        """Read "#N" (event), "N" (tick) or a duration like "12.5s" / "300ms" (tick)."""
        text = text.strip().replace("_", "")
        if text.startswith("#"):
            number = text[1:].strip()
            if not number.isdigit():
                raise SeekError(f"{text!r}: expected an event number after #, e.g. #1200")
            return cls(seq=int(number))
        if text.isdigit():
            return cls(tick=int(text))
        ns = parse_duration_ns(text)
        if ns is None:
            raise SeekError(f"{text!r}: expected a tick (12500), a time (12.5s, 300ms) or an "
                            "event number (#1200)")
        return cls(tick=ns // NS_PER_TICK)

    def describe(self) -> str:
        """How the target reads back."""
        return f"#{self.seq}" if self.seq is not None else f"tick {self.tick}"
