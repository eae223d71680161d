"""SCPI status register groups (``:STATus:OPERation`` and ``:STATus:QUEStionable``) of the emulated 81160A.

Each group has a condition register (what is true now), transition filters (``:PTR``, ``:NTR``: which
rising or falling condition bits latch), an event register (latched, cleared when read and by ``*CLS``)
and an enable mask; its summary bit in the status byte is ``event & enable ≠ 0`` (OPERation: bit 7,
QUEStionable: bit 3). ``:STATus:PRESet`` sets the enable masks to 0, PTR to all ones and NTR to 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim_backend.emulated.scpi_values import register_value

ALL_BITS = 0x7FFF  # 15 usable bits


def register_mask(text: str) -> int:
    """A register argument: an integer 0 … 32767."""
    return register_value(text, ALL_BITS)


@dataclass
class RegisterGroup:
    """One status register group."""

    condition: int = 0
    event: int = 0
    enable: int = 0
    positive: int = ALL_BITS
    negative: int = 0

    def update(self, condition: int) -> None:
        """The condition is now ``condition``: latch the filtered transitions into the event register."""
        rising = condition & ~self.condition
        falling = self.condition & ~condition
        self.event |= (rising & self.positive) | (falling & self.negative)
        self.condition = condition

    def read_event(self) -> int:
        value, self.event = self.event, 0
        return value

    def summary(self) -> bool:
        return bool(self.event & self.enable)

    def preset(self) -> None:
        self.enable, self.positive, self.negative = 0, ALL_BITS, 0
