"""Programming a DW synapse track — reset pulse → programming pulse → readings — in batches.

One arbitrary waveform carries many programmings of one track: for each, a reset pulse (negative: the
wall back to state 0), a gap, a read window (one reading: the reset state), the programming pulse (its
amplitude selects the state; 0 V for state 0), a gap and ``readings`` read windows. The generator's trigger
output starts the source meter's trigger model, which takes a four-wire reading at the start of each read
window into its buffer; one query fetches them all. Waveforms are split where the generator's memory or the
source meter's buffer is full. Pulses are voltages (a track is programmed by voltage, not by a current
through a known channel), refused before anything is sent when beyond the station's ``safety.dw_track``
limits or the generator's range, or when the device is not a DW track.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from instruments.roles import Segment
from instruments.station import Station
from instruments.station_config import SafetyError
from instruments.trials import play_timed


@dataclass(frozen=True)
class ProgrammingTiming:
    """The shape of one programming, in s."""

    reset_width_s: float = 1e-6
    program_width_s: float = 1e-6
    gap_s: float = 5e-6
    read_window_s: float = 10e-6  # widened past the source meter's aperture, in whole gaps (see window)

    def window(self, aperture_s: float) -> float:
        """A read window: longer than the aperture (the reading ends inside it), in whole gaps so the waveform
        samples coarsely."""
        return (math.floor(max(self.read_window_s, aperture_s) / self.gap_s + 1e-9) + 1) * self.gap_s

    def period(self, readings: int, aperture_s: float) -> float:
        """One programming: reset, gap, window, pulse, gap, ``readings`` windows."""
        return self.reset_width_s + self.program_width_s + 2 * self.gap_s + (1 + readings) * self.window(aperture_s)


@dataclass
class ProgrammingBatch:
    """``n`` programmings of one track: readings in Ω (``readings_ohm`` has shape ``(n, readings)``)."""

    device: str
    program_v: np.ndarray
    reset_v: float
    reset_readings_ohm: np.ndarray
    readings_ohm: np.ndarray
    instrument_time_s: float

    def __len__(self) -> int:
        return int(self.program_v.size)


def check_programming(station: Station, device: str, program_v: Sequence[float], reset_v: float,
                      timing: ProgrammingTiming) -> None:
    """Refuse (:class:`SafetyError`) a batch beyond the limits, before anything is sent."""
    spec = station.spec
    if not reset_v < 0:
        raise SafetyError(f"reset pulse on DW track {device} must be negative (drives the wall to state 0), "
                          f"got {reset_v} V; nothing was sent")
    spec.check_dw_pulse(device, reset_v, timing.reset_width_s, what="reset pulse")
    for voltage in program_v:
        spec.check_dw_pulse(device, float(voltage), timing.program_width_s)
    if not spec.fast_path_wired:
        raise SafetyError("programming DW tracks needs the pulse generator's marker wired to the source meter's "
                          "trigger input (station file: triggers)")
    station.check_levels(device, [reset_v, *program_v])


def program_track(station: Station, device: str, program_v: Sequence[float], reset_v: float, readings: int,
                  timing: ProgrammingTiming = ProgrammingTiming()) -> ProgrammingBatch:
    """``len(program_v)`` programmings of DW track ``device`` (amplitudes in V), each read ``readings`` times."""
    if readings < 1:
        raise ValueError(f"readings: at least one reading per programming, got {readings}")
    voltages = np.asarray(program_v, dtype=np.float64).reshape(-1)
    check_programming(station, device, voltages, reset_v, timing)
    station.route(device)
    station.prepare_reads()
    aperture = station.source_meter.aperture_s
    window = timing.window(aperture)

    def segments(voltage: float) -> list[Segment]:
        return [Segment(reset_v, timing.reset_width_s), Segment(0.0, timing.gap_s), Segment(0.0, window),
                Segment(voltage, timing.program_width_s), Segment(0.0, timing.gap_s),
                Segment(0.0, readings * window)]

    per_programming = len(segments(0.0))
    period = timing.period(readings, aperture)
    after_pulse = timing.reset_width_s + 2 * timing.gap_s + window + timing.program_width_s
    offsets = [timing.reset_width_s + timing.gap_s, *(after_pulse + j * window for j in range(readings))]
    all_segments = [s for voltage in voltages for s in segments(float(voltage))]
    table = play_timed(station, all_segments, per_programming, offsets, period, "programming")
    return ProgrammingBatch(device, voltages, reset_v, table[:, 0], table[:, 1:], voltages.size * period)
