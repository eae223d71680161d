"""Keysight 81160A pulse generator: PyMeasure's driver, extended with single pulses and exact arbitrary waveforms.

Added to the stock ``pymeasure.instruments.keysight.Keysight81160A``:

- :meth:`Keysight81160AChannel.single_pulse`: one rectangular pulse from 0 V to a level (either sign);
  :meth:`Keysight81160A.arm` makes it one cycle per manual trigger, :meth:`Keysight81160A.fire` plays it
  with ``*TRG``; :meth:`Keysight81160A.play_pulse` does all three.
- :meth:`Keysight81160AChannel.play_segments`: a piecewise-constant waveform (levels in V, durations
  in s) uploaded as DAC codes at a fixed, explicitly set amplitude and 0 V offset, so that a code maps
  to an exact voltage (the stock ``waveform_volatile`` normalizes by the data maximum, which changes
  bipolar levels). :meth:`Keysight81160A.play_waveform` uploads, arms and fires it, and returns when
  each marked segment starts.
- Markers: the 81160A's manual documents no per-point markers for arbitrary waveforms; its trigger
  output marks the start of each waveform period. Marked segments are therefore returned as times after that edge
  (computed from the sample clock the instrument actually plays), for the source meter's trigger
  model to wait for. See ``docs/commands/keysight81160a.md``.
- :meth:`check_errors` raises :class:`~instruments.drivers.errors.InstrumentError` for an error in the
  queue (``SYST:ERR?``).

The output load is set to high impedance, so a programmed level is the open-circuit voltage behind
the 50 Ω source impedance: a device of channel resistance ``R_ch`` carries ``V / (R_ch + 50 Ω)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymeasure.instruments import Instrument
from pymeasure.instruments.keysight import Keysight81160A as StockKeysight81160A
from pymeasure.instruments.keysight.keysight81160A import (
    AMPLITUDE_RANGE,
    FREQUENCY_RANGE,
    IMPEDANCE_RANGE,
    MAX_DAC_VALUE,
    PULSE_PERIOD_RANGE,
    PULSE_WIDTH_RANGE,
)
from pymeasure.instruments.keysight.keysight81160A import Keysight81160AChannel as StockChannel
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from instruments.drivers.errors import RaisingErrorQueue, operation_complete

ARB_MEMORY_POINTS = 524_288  # points per channel of volatile arbitrary-waveform memory
ARB_MIN_POINTS = 2  # the shortest arbitrary waveform
DURATION_RESOLUTION_S = 1e-9  # segment durations are rounded to whole nanoseconds
ARB_MIN_PEAK_V = 0.05  # the smallest full-scale level: 0.1 Vpp, above the 50 mVpp minimum amplitude
LEVEL_MAX_V = 2.5  # |level|: amplitude up to 5 Vpp around 0 V offset (the stock amplitude limit)
LEVEL_MIN_V = AMPLITUDE_RANGE[0]  # a single pulse is at least the smallest amplitude high
HIGH_IMPEDANCE_LOAD_OHM = IMPEDANCE_RANGE[1]  # the largest load setting: high impedance
PULSE_PERIOD_FACTOR = 4.0  # single pulses: the period is this many widths (one cycle per trigger)


@dataclass(frozen=True)
class SampledWaveform:
    """A piecewise-constant waveform as the generator plays it: DAC codes at one sample clock."""

    codes: np.ndarray
    """DAC code of every point, ``±MAX_DAC_VALUE`` at ``±amplitude_v / 2``."""
    amplitude_v: float
    """Peak-to-peak amplitude in V (offset 0 V)."""
    frequency_hz: float
    """Repetition frequency in Hz: one pass of all points, as sent to the instrument."""
    marker_times_s: np.ndarray
    """Start of each marked segment in s after the trigger output's edge (the start of the pass)."""

    @property
    def points(self) -> int:
        return int(self.codes.size)

    @property
    def point_s(self) -> float:
        """Duration of one point in s."""
        return 1.0 / (self.frequency_hz * self.codes.size)

    @property
    def duration_s(self) -> float:
        """Duration of one pass in s."""
        return 1.0 / self.frequency_hz


def points_per_segment(durations_s: Sequence[float]) -> tuple[np.ndarray, int]:
    """Sample points of each segment at the longest sample period that holds every duration (rounded to
    whole ns) as a whole number of points, and that period in ns. Durations must be at least 1 ns."""
    ticks = np.rint(np.asarray(durations_s, dtype=np.float64) / DURATION_RESOLUTION_S).astype(np.int64)
    step = int(np.gcd.reduce(ticks)) if ticks.size else 1
    return ticks // step, step


def _flags(markers: Sequence[bool] | None, size: int) -> np.ndarray:
    if markers is None:
        return np.zeros(size, dtype=bool)
    flags = np.asarray(markers)
    if flags.shape != (size,) or not np.isin(flags, (0, 1)).all():
        raise ValueError("markers must be one flag (True/False) per segment")
    return flags.astype(bool)


class Keysight81160AChannel(StockChannel):
    """One output channel with single pulses and exact piecewise-constant waveforms."""

    polarity = Instrument.control(
        ":OUTP{ch}:POL?", ":OUTP{ch}:POL %s",
        """Control the output polarity (str: NORM, INV); inverted, a pulse goes from the high to the low level.""",
        validator=strict_discrete_set, values=["NORM", "INV"],
    )

    output_load = Instrument.control(
        ":OUTP{ch}:LOAD?", ":OUTP{ch}:LOAD %e",
        """Control the load the levels are programmed for in Ω (float, 0.3 Ω to 1 MΩ = high impedance).""",
        validator=strict_range, values=IMPEDANCE_RANGE,
        check_set_errors=True,
    )

    user_waveform = Instrument.control(
        ":FUNC{ch}:USER?", ":FUNC{ch}:USER %s",
        """Control which user waveform the USER shape plays (str; VOLATILE is the uploaded one).""",
        validator=strict_discrete_set, values=["VOLATILE"],
    )

    def single_pulse(self, level_v: float, width_s: float) -> None:
        """Set one rectangular pulse from 0 V to ``level_v`` (V) lasting ``width_s`` (s), idle at 0 V."""
        if not LEVEL_MIN_V <= abs(level_v) <= LEVEL_MAX_V:
            raise ValueError(f"pulse level {level_v} V outside {LEVEL_MIN_V} V ≤ |V| ≤ {LEVEL_MAX_V} V")
        # checked here, before the first command, not by the properties halfway through
        strict_range(width_s, PULSE_WIDTH_RANGE)
        strict_range(PULSE_PERIOD_FACTOR * width_s, PULSE_PERIOD_RANGE)
        self.shape = "PULS"
        # levels in an order that keeps high > low whatever the previous pulse was
        if level_v > 0:
            self.polarity = "NORM"
            self.voltage_high = level_v
            self.voltage_low = 0.0
        else:  # idle at 0 V (high), pulse down to the negative low level
            self.polarity = "INV"
            self.voltage_low = level_v
            self.voltage_high = 0.0
        self.pulse_period = PULSE_PERIOD_FACTOR * width_s
        self.pulse_width = width_s

    def play_segments(self, levels_v: Sequence[float], durations_s: Sequence[float],
                      markers: Sequence[bool] | None = None) -> int:
        """Upload the waveform of ``levels_v`` (V) held for ``durations_s`` (s) and select it; returns its points.

        Raises ValueError, before anything is sent, when the waveform does not fit the memory (the
        caller splits it) or a level, duration or marker is invalid.
        """
        return self.upload_segments(levels_v, durations_s, markers).points

    def upload_segments(self, levels_v: Sequence[float], durations_s: Sequence[float],
                        markers: Sequence[bool] | None = None) -> SampledWaveform:
        """Like :meth:`play_segments`, returning the :class:`SampledWaveform` (with the marker times)."""
        waveform = self.sample(levels_v, durations_s, markers)
        self.write_binary_values(f":DATA{self.id}:DAC VOLATILE,", waveform.codes, datatype="h",
                                 is_big_endian=True, termination="\n")
        self.user_waveform = "VOLATILE"
        self.shape = "USER"
        self.polarity = "NORM"
        self.frequency = waveform.frequency_hz
        self.amplitude = waveform.amplitude_v
        self.offset = 0.0
        return waveform

    @classmethod
    def sample(cls, levels_v: Sequence[float], durations_s: Sequence[float],
               markers: Sequence[bool] | None = None) -> SampledWaveform:
        """The :class:`SampledWaveform` the generator plays for a piecewise-constant description.

        The sample period is the largest that holds every duration (rounded to 1 ns) as a whole
        number of points (at most 2 GSa/s, within the instrument's 2.5 GSa/s); the amplitude is
        ``2 · max|level|`` (at least 0.1 Vpp) and the peak level is the full-scale code, so every
        level is exact to one DAC step. Raises ValueError when it does not fit the memory or the
        instrument's ranges.
        """
        levels, counts, sample_s = cls.sample_waveform(levels_v, durations_s)
        flags = _flags(markers, levels.size)
        total = int(counts.sum())
        frequency = round(1.0 / (sample_s * total), 6)  # as ``:FREQ`` sends it: 1 µHz resolution
        if not FREQUENCY_RANGE[0] <= frequency <= FREQUENCY_RANGE[1]:
            raise ValueError(f"one pass of {sample_s * total} s is a frequency of {frequency} Hz, outside "
                             f"{FREQUENCY_RANGE[0]}–{FREQUENCY_RANGE[1]} Hz")
        scale = max(float(np.max(np.abs(levels))), ARB_MIN_PEAK_V)
        codes = np.rint(np.repeat(levels, counts) / scale * MAX_DAC_VALUE).astype(np.int16)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        point_s = 1.0 / (frequency * total)
        return SampledWaveform(codes, 2 * scale, frequency, starts[flags] * point_s)

    @staticmethod
    def sample_waveform(levels_v: Sequence[float],
                        durations_s: Sequence[float]) -> tuple[np.ndarray, np.ndarray, float]:
        """``(levels, points per segment, sample period in s)`` of a piecewise-constant waveform."""
        levels = np.asarray(levels_v, dtype=np.float64)
        ticks = np.rint(np.asarray(durations_s, dtype=np.float64) / DURATION_RESOLUTION_S).astype(np.int64)
        if levels.ndim != 1 or levels.shape != ticks.shape or levels.size == 0:
            raise ValueError("levels and durations must be non-empty and of equal length")
        if not np.all(np.isfinite(levels)):
            raise ValueError("levels must be finite")
        if np.any(ticks <= 0):
            raise ValueError("every segment needs a duration of at least 1 ns")
        if np.any(np.abs(levels) > LEVEL_MAX_V):
            raise ValueError(f"a level exceeds ±{LEVEL_MAX_V} V")
        counts, step = points_per_segment(durations_s)
        total = int(counts.sum())
        if total > ARB_MEMORY_POINTS:
            raise ValueError(f"waveform of {total} points exceeds the {ARB_MEMORY_POINTS}-point memory; "
                             "split it into several waveforms")
        if total < ARB_MIN_POINTS:
            counts = counts * ARB_MIN_POINTS
            return levels, counts, step * DURATION_RESOLUTION_S / ARB_MIN_POINTS
        return levels, counts, step * DURATION_RESOLUTION_S


class Keysight81160A(RaisingErrorQueue, StockKeysight81160A):
    """Keysight 81160A whose channels play single pulses and exact waveforms on a manual trigger."""

    ch_1 = Instrument.ChannelCreator(Keysight81160AChannel, 1)
    ch_2 = Instrument.ChannelCreator(Keysight81160AChannel, 2)

    def __init__(self, adapter: Any, name: str = "Keysight 81160A pulse generator", **kwargs: Any) -> None:
        super().__init__(adapter, name, **kwargs)

    def arm(self, channel: int = 1) -> None:
        """High-impedance load, one cycle per manual trigger, output on."""
        ch = self.channels[channel]
        ch.output_load = HIGH_IMPEDANCE_LOAD_OHM
        ch.trigger_mode = "MAN"
        ch.trigger_count = 1
        ch.output = True

    def fire(self) -> None:
        """Trigger one cycle (``*TRG``) and wait until the instrument has handled it."""
        self.write("*TRG")
        operation_complete(self)

    def play_pulse(self, level_v: float, width_s: float, channel: int = 1) -> None:
        """Set, arm and fire one rectangular pulse of ``level_v`` (V) lasting ``width_s`` (s)."""
        self.channels[channel].single_pulse(level_v, width_s)
        self.arm(channel)
        self.fire()

    def play_waveform(self, levels_v: Sequence[float], durations_s: Sequence[float],
                      markers: Sequence[bool] | None = None, channel: int = 1) -> np.ndarray:
        """Upload, arm and fire one pass of a piecewise-constant waveform; marker times in s after its start."""
        waveform = self.channels[channel].upload_segments(levels_v, durations_s, markers)
        self.arm(channel)
        self.fire()
        return waveform.marker_times_s
