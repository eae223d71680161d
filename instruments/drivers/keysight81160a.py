"""Keysight 81160A pulse generator: PyMeasure's driver, extended with single pulses and exact arbitrary waveforms.

Added to the stock ``pymeasure.instruments.keysight.Keysight81160A``:

- :meth:`Keysight81160AChannel.single_pulse`: one rectangular pulse from 0 V to a level (either sign),
  armed for a manual trigger and fired with ``*TRG``;
- :meth:`Keysight81160AChannel.play_segments`: a piecewise-constant waveform (levels in V, durations
  in s) uploaded as DAC points at a fixed scale, played once on a trigger. The stock
  ``waveform_volatile`` normalizes by the data maximum, which would change bipolar levels; here the
  amplitude is set so that a DAC code maps to an exact voltage. The trigger output fires at the start of
  each waveform (it starts the source meter's trigger model).
- :meth:`check_errors` raises :class:`InstrumentError` for an error in the queue.

The output load is set to high impedance, so a programmed level is the open-circuit voltage behind
the 50 Ω source impedance: a device of channel resistance ``R_ch`` carries ``V / (R_ch + 50 Ω)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pymeasure.instruments import Instrument
from pymeasure.instruments.keysight import Keysight81160A as StockKeysight81160A
from pymeasure.instruments.keysight.keysight81160A import MAX_DAC_VALUE, PULSE_PERIOD_RANGE, PULSE_WIDTH_RANGE
from pymeasure.instruments.keysight.keysight81160A import Keysight81160AChannel as StockChannel
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from instruments.drivers.errors import RaisingErrorQueue

ARB_MEMORY_POINTS = 524_288  # points per channel with the 512k memory option
ARB_MIN_POINTS = 2
# durations are whole nanoseconds: at most 1 GSa/s, within the generator's 2.5 GSa/s
LEVEL_MAX_V = 2.5  # |level|: the stock driver allows 5 Vpp of amplitude around 0 V offset
HIGH_IMPEDANCE_LOAD_OHM = 1e6  # the largest load setting: high impedance
PULSE_PERIOD_FACTOR = 4.0  # single pulses: the period is this many widths (one cycle per trigger)


class Keysight81160AChannel(StockChannel):
    """One output channel with single pulses and exact piecewise-constant waveforms."""

    polarity = Instrument.control(
        ":OUTP{ch}:POL?", ":OUTP{ch}:POL %s",
        """Control the output polarity (str: NORM, INV); inverted, a pulse goes from the high to the low level.""",
        validator=strict_discrete_set, values=["NORM", "INV"],
    )

    def single_pulse(self, level_v: float, width_s: float) -> None:
        """Arm one rectangular pulse from 0 V to ``level_v`` lasting ``width_s``, fired by :meth:`fire`."""
        if not 0 < abs(level_v) <= LEVEL_MAX_V:
            raise ValueError(f"pulse level {level_v} V outside 0 < |V| ≤ {LEVEL_MAX_V} V")
        # checked here, before the first command, not by the properties halfway through
        strict_range(width_s, PULSE_WIDTH_RANGE)
        strict_range(PULSE_PERIOD_FACTOR * width_s, PULSE_PERIOD_RANGE)
        self.shape = "PULS"
        if level_v > 0:
            self.polarity = "NORM"
            self.voltage_low = 0.0
            self.voltage_high = level_v
        else:  # idle at 0 V (high), pulse down to the negative low level
            self.polarity = "INV"
            self.voltage_high = 0.0
            self.voltage_low = level_v
        self.pulse_period = PULSE_PERIOD_FACTOR * width_s
        self.pulse_width = width_s

    def play_segments(self, levels_v: Sequence[float], durations_s: Sequence[float]) -> int:
        """Upload the waveform of ``levels_v`` held for ``durations_s`` and arm it for one triggered pass.

        The sample period is the largest that represents every duration as a whole number of points
        (durations are rounded to 1 ns first); the pass takes ``Σ durations``. Raises ValueError, before
        anything is sent, when the waveform does not fit the memory or a level is out of range.
        Returns the number of points.
        """
        levels, counts, sample_s = self.sample_waveform(levels_v, durations_s)
        scale = max(float(np.max(np.abs(levels))), 0.05)
        codes = np.rint(np.repeat(levels, counts) / scale * MAX_DAC_VALUE).astype(np.int16)
        self.write_binary_values(f":DATA{self.id}:DAC VOLATILE,", codes, datatype="h", is_big_endian=True,
                                 termination="\n")
        self.write(f":FUNC{self.id}:USER VOLATILE")
        self.shape = "USER"
        self.polarity = "NORM"
        self.frequency = 1.0 / (sample_s * codes.size)
        self.amplitude = 2 * scale
        self.offset = 0.0
        return int(codes.size)

    @staticmethod
    def sample_waveform(levels_v: Sequence[float],
                        durations_s: Sequence[float]) -> tuple[np.ndarray, np.ndarray, float]:
        """``(levels, points per segment, sample period in s)`` of a piecewise-constant waveform."""
        levels = np.asarray(levels_v, dtype=np.float64)
        ticks = np.rint(np.asarray(durations_s, dtype=np.float64) * 1e9).astype(np.int64)  # ns
        if levels.shape != ticks.shape or levels.size == 0:
            raise ValueError("levels and durations must be non-empty and of equal length")
        if np.any(ticks <= 0):
            raise ValueError("every segment needs a duration of at least 1 ns")
        if np.any(np.abs(levels) > LEVEL_MAX_V):
            raise ValueError(f"a level exceeds ±{LEVEL_MAX_V} V")
        step_ns = int(np.gcd.reduce(ticks))
        counts = ticks // step_ns
        total = int(counts.sum())
        if total > ARB_MEMORY_POINTS:
            raise ValueError(f"waveform of {total} points exceeds the {ARB_MEMORY_POINTS}-point memory")
        if total < ARB_MIN_POINTS:
            counts = counts * ARB_MIN_POINTS
            step_ns = step_ns / ARB_MIN_POINTS
        return levels, counts, step_ns * 1e-9


class Keysight81160A(RaisingErrorQueue, StockKeysight81160A):
    """Keysight 81160A whose channels play single pulses and exact waveforms on a manual trigger."""

    ch_1 = Instrument.ChannelCreator(Keysight81160AChannel, 1)
    ch_2 = Instrument.ChannelCreator(Keysight81160AChannel, 2)

    def arm(self, channel: int = 1) -> None:
        """High-impedance load, one cycle per manual trigger, output on."""
        ch = self.channels[channel]
        ch.output_load = HIGH_IMPEDANCE_LOAD_OHM
        ch.trigger_mode = "MAN"
        ch.trigger_count = 1
        ch.output = True

    def fire(self) -> None:
        """Trigger one cycle and wait until it has been played."""
        self.write("*TRG")
        self.ask("*OPC?")

