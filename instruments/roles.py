"""Instrument roles: what the protocols need from each kind of instrument, whatever its model.

Protocols are written against these roles, never against a vendor model; an adapter per model
(``instruments.adapters``) implements a role over a PyMeasure driver. Values are SI (A, V, s, Ω).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Segment:
    """One piece of a piecewise-constant pulse-generator waveform."""

    level_v: float
    duration_s: float


@runtime_checkable
class StationInstrument(Protocol):
    """What the station needs from every instrument, whatever its role."""

    idn: str
    label: str  # how messages name it: role and model

    def sync(self) -> None:
        """Bring the connection back in step after an interrupted exchange (stale replies discarded)."""
        ...

    def make_safe(self) -> None:
        """Send the commands of the safe state (output off, or every crosspoint open)."""
        ...

    def is_safe(self) -> bool:
        """Asks the instrument whether it is in its safe state (confirms the commands took effect)."""
        ...

    def check_errors(self) -> None:
        """Read the error queue; raise ``InstrumentErrors`` naming every error found."""
        ...

    def reconnect(self) -> None:
        """Open a new connection to the same address (after the link dropped)."""
        ...

    def close(self) -> None:
        ...


@runtime_checkable
class PulseGenerator(StationInstrument, Protocol):
    """Plays voltage pulses and arbitrary waveforms into the routed device."""

    def max_segments(self, segments: Sequence[Segment]) -> int:
        """How many of the leading ``segments`` fit into one waveform of the generator's memory."""
        ...

    def play_pulse(self, level_v: float, width_s: float) -> None:
        """One rectangular pulse of ``level_v`` for ``width_s``, played now (single shot)."""
        ...

    def pulse_time_s(self, width_s: float) -> float:
        """How long the generator is busy with one single pulse of ``width_s`` (its whole cycle)."""
        ...

    max_level_v: float  # largest |level| the generator is driven to

    def play_waveform(self, segments: Sequence[Segment]) -> None:
        """Upload a waveform of ``segments`` (must fit, see :meth:`max_segments`) and play it once;
        its trigger output fires at the start (wired to the source meter's trigger input)."""
        ...

    def output_off(self) -> None:
        """Output off (safe state)."""
        ...


@runtime_checkable
class SourceMeter(StationInstrument, Protocol):
    """Forces currents through the channel and reads resistances (4-wire Hall, 2-wire channel)."""

    max_buffer_readings: int  # readings its buffer holds: one arming of timed readings takes at most this many

    def configure_read(self, current_a: float, compliance_v: float, nplc: float) -> None:
        """Set the read current, voltage compliance and integration time used by the reads below."""
        ...

    def read_hall(self, n_readings: int = 1) -> np.ndarray:
        """``R_xy`` in Ω from a 4-wire reading (Hall arms sensed) at the read current."""
        ...

    def read_channel(self) -> float:
        """Two-wire channel resistance in Ω at the read current."""
        ...

    aperture_s: float  # how long one reading integrates

    def arm_timed_readings(self, n_trials: int, offsets_s: Sequence[float], period_s: float) -> None:
        """Clear the buffer; after the next external trigger take 4-wire readings at ``k·period + offset``
        (for each trial ``k`` and each offset), one per buffer entry."""
        ...

    def fetch_readings(self, count: int, within_s: float = 0.0) -> np.ndarray:
        """All ``count`` buffered readings in one query (Ω), once the triggered readings are done: they are
        due ``within_s`` after the trigger (the waveform's duration); a trigger that never came is an error."""
        ...

    def list_sweep(self, currents_a: Sequence[float], dwell_s: float) -> np.ndarray:
        """Step the source through ``currents_a`` with ``dwell_s`` each; ``R_xy`` at every step (Ω)."""
        ...

    def output_off(self) -> None:
        """Output off, high impedance (safe state; also during pulses)."""
        ...


@runtime_checkable
class SwitchMatrix(StationInstrument, Protocol):
    """Connects instrument terminals (rows) to chip pads (columns)."""

    def close_only(self, crosspoints: Iterable[str]) -> None:
        """Break before make: open every crosspoint, then close exactly ``crosspoints``."""
        ...

    def open_all(self) -> None:
        """Open every crosspoint (safe state)."""
        ...

    def closed(self) -> set[str]:
        """The crosspoints closed now, as the instrument reports them."""
        ...
