"""One output channel of the emulated Keysight 81160A: its settings, their ranges and how they couple.

The ranges and couplings follow the *Keysight 81150A/81160A User's Guide* (Remote Programming Reference
and the Appendix's parameter characteristics) where it states them, and the 33250A-family behaviour the
81150A/81160A SCPI inherits where it does not (marked so in ``docs/commands/keysight81160a.md``):

- **Frequency ↔ period** are one setting (``period = 1 / frequency``); the range depends on the function
  (:data:`FREQUENCY_RANGES`). Selecting a function whose range the present frequency exceeds moves the
  frequency to that function's limit and reports ``-221 Settings conflict``.
- **Amplitude/offset ↔ high/low** are one pair of levels (``high = offset + amplitude / 2``). Levels are
  programmed for the load set with ``:OUTP:LOAD`` (the emulated output keeps them when the load changes);
  the level window is ±5 V into 50 Ω, scaled by ``2·load / (load + 50 Ω)`` (±10 V into high impedance), the
  amplitude 50 mVpp … 5 Vpp into 50 Ω (the maximum scaled alike; 3 Vpp for sines above 330 MHz).
  A high level at or below the low level is **taken** and the low level moved to ``high − 50 mV`` (and
  symmetrically), reporting ``-221``; a pair wider than the largest amplitude likewise moves the other
  level. An amplitude or offset that leaves the window is refused with ``-221`` (the value alone beyond
  every setting's range: ``-222``).
- **Voltage limits** (``:VOLT:LIM:HIGH|LOW|STAT``): while on, any setting that would put a level beyond
  them is refused with ``-221`` and changes nothing; they cannot be switched on (or moved) so that the
  present levels violate them.
- **Width ↔ duty cycle ↔ period** with ``:PULS:HOLD WIDT|DCYC|TDEL``: a period change keeps the width
  (default), the duty cycle, or the trailing delay (``period − width``). A width or duty cycle that does
  not fit the period (at least :data:`WIDTH_MIN_S` each side) is refused with ``-221``.
- **Edges**: leading and trailing transition times, coupled (trailing = leading) unless
  ``:PULS:TRAN:UNC ON``.

A refusal raises :class:`SettingsConflict` (or :class:`~sim_backend.emulated.scpi_values.OutOfRange`);
a setting taken with an adjustment appends the reason to :attr:`OutputChannel.conflicts`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np

from sim_backend.emulated.bench import SOURCE_IMPEDANCE_OHM
from sim_backend.emulated.scpi_values import OutOfRange

HIGH_IMPEDANCE_OHM = 1e6  # the largest load setting: high impedance (the level is the open-circuit voltage)
LOAD_RANGE = (0.3, HIGH_IMPEDANCE_OHM)
SOURCE_IMPEDANCE_RANGE = (5.0, 50.0)
WINDOW_50_OHM_V = 5.0  # |level| into 50 Ω
AMPLITUDE_MIN_VPP = 0.05
AMPLITUDE_MAX_VPP = 5.0  # into 50 Ω
SINE_FAST_HZ = 330e6  # above this a sine's amplitude is at most SINE_FAST_MAX_VPP (into 50 Ω)
SINE_FAST_MAX_VPP = 3.0
FREQUENCY_RANGES = {"SIN": (1e-6, 500e6), "SQU": (1e-6, 330e6), "RAMP": (1e-6, 5e6), "PULS": (1e-6, 330e6),
                    "USER": (1e-6, 330e6), "NOIS": (1e-6, 500e6), "DC": (1e-6, 500e6)}
WIDTH_MIN_S = 1.5e-9
WIDTH_MAX_S = 1e6
TRANSITION_RANGE = (1e-9, 1e3)
DELAY_RANGE = (0.0, 1e6)
SQUARE_DUTY_RANGE = (0.0001515, 99.9998485)
LIMIT_HIGH_RANGE = (-9.99, 10.0)
LIMIT_LOW_RANGE = (-10.0, 9.99)
COUNT_RANGE = (1, 2147483647)
BURST_CYCLES_RANGE = (2, 2147483647)
BURST_PERIOD_RANGE = (3.03e-9, 1e6)
ARM_LEVEL_RANGE = (-10.0, 10.0)
PHASE_RANGE = (-360.0, 360.0)
# peak-to-peak per rms volt of the functions that have one (VRMS and DBM need it)
PP_PER_RMS = {"SIN": 2 * math.sqrt(2), "SQU": 2.0, "RAMP": 2 * math.sqrt(3)}
DEFAULTS = {"frequency": 1e6, "amplitude": 0.5, "offset": 0.0, "width": 100e-9, "transition": 1e-9, "load": 50.0}
APPLY_DEFAULTS = {"frequency": 1e3, "amplitude": 1.0, "offset": 0.0}  # what APPLy's DEF (or nothing) means


class SettingsConflict(ValueError):
    """A setting the present state of other settings does not allow: ``-221 Settings conflict``."""


def check(value: float, low: float, high: float, what: str) -> float:
    """``value`` if within ``[low, high]``, else :class:`OutOfRange` (``-222``)."""
    if not low <= value <= high:
        raise OutOfRange(f"{what} {value:g} outside {low:g} to {high:g}")
    return value


@dataclass
class OutputChannel:
    """The settings of one channel, in their ``*RST`` state."""

    shape: str = "SIN"
    frequency: float = DEFAULTS["frequency"]
    amplitude: float = DEFAULTS["amplitude"]  # Vpp; VOLT:UNIT only changes how it is sent and read
    offset: float = DEFAULTS["offset"]
    unit: str = "VPP"
    width: float = DEFAULTS["width"]
    delay: float = 0.0  # of the pulse after the start of its period (the trigger output's edge)
    hold: str = "WIDT"
    leading: float = DEFAULTS["transition"]
    trailing: float = DEFAULTS["transition"]
    edges_uncoupled: bool = False
    square_duty: float = 50.0
    ramp_symmetry: float = 100.0
    phase: float = 0.0
    output: bool = False
    complement: bool = False
    load: float = DEFAULTS["load"]
    polarity: str = "NORM"
    limit_high: float = LIMIT_HIGH_RANGE[1]
    limit_low: float = LIMIT_LOW_RANGE[0]
    limits_on: bool = False
    arm_source: str = "IMM"
    arm_level: float = 1.0
    arm_sense: str = "EDGE"
    arm_slope: str = "POS"
    trigger_source: str = "IMM"
    count: int = 1
    burst: bool = False
    burst_mode: str = "TRIG"
    burst_period: float = 1e-6
    user: str = "EXP_RISE"  # the arbitrary waveform the USER function plays (a catalogue name)
    conflicts: list[str] = field(default_factory=list)

    # -- levels -----------------------------------------------------------------------------------

    @property
    def high(self) -> float:
        return self.offset + self.amplitude / 2

    @property
    def low(self) -> float:
        return self.offset - self.amplitude / 2

    @property
    def load_scale(self) -> float:
        """How much wider the level window is at this load than into 50 Ω (2 at high impedance)."""
        return 2 * self.load / (self.load + SOURCE_IMPEDANCE_OHM)

    @property
    def window(self) -> float:
        return WINDOW_50_OHM_V * self.load_scale

    def amplitude_max(self) -> float:
        fast_sine = self.shape == "SIN" and self.frequency > SINE_FAST_HZ
        return (SINE_FAST_MAX_VPP if fast_sine else AMPLITUDE_MAX_VPP) * self.load_scale

    @property
    def open_circuit_factor(self) -> float:
        """Open-circuit voltage per programmed volt at this load setting (behind the 50 Ω source)."""
        return 1.0 if self.load >= HIGH_IMPEDANCE_OHM else (self.load + SOURCE_IMPEDANCE_OHM) / self.load

    def _levels(self, amplitude: float, offset: float) -> None:
        """Take a new amplitude/offset pair if the window and the voltage limits allow it."""
        self.check_levels(offset + amplitude / 2, offset - amplitude / 2)
        self.amplitude, self.offset = amplitude, offset

    def check_levels(self, high: float, low: float) -> None:
        """:class:`SettingsConflict` unless this channel's window and voltage limits allow these levels."""
        if high > self.window + 1e-12 or low < -self.window - 1e-12:
            raise SettingsConflict(f"levels {low:g} V to {high:g} V outside the +-{self.window:g} V window "
                                   f"at a {self.load:g} ohm load")
        if self.limits_on and (high > self.limit_high + 1e-12 or low < self.limit_low - 1e-12):
            raise SettingsConflict(f"levels {low:g} V to {high:g} V beyond the voltage limits "
                                   f"{self.limit_low:g} V to {self.limit_high:g} V")

    def span(self) -> tuple[float, float]:
        """The lowest and highest level allowed now: the window, narrowed by the voltage limits while on."""
        if self.limits_on:
            return max(-self.window, self.limit_low), min(self.window, self.limit_high)
        return -self.window, self.window

    def amplitude_range(self) -> tuple[float, float]:
        bottom, top = self.span()
        return AMPLITUDE_MIN_VPP, min(self.amplitude_max(), 2 * min(top - self.offset, self.offset - bottom))

    def set_amplitude(self, vpp: float) -> None:
        check(vpp, AMPLITUDE_MIN_VPP, self.amplitude_max(), "amplitude (Vpp)")
        self._levels(vpp, self.offset)

    def offset_range(self) -> tuple[float, float]:
        bottom, top = self.span()
        return bottom + self.amplitude / 2, top - self.amplitude / 2

    def set_offset(self, volts: float) -> None:
        check(volts, -self.window, self.window, "offset")
        self._levels(self.amplitude, volts)

    def high_range(self) -> tuple[float, float]:
        bottom, top = self.span()
        return bottom + AMPLITUDE_MIN_VPP, top

    def low_range(self) -> tuple[float, float]:
        bottom, top = self.span()
        return bottom, top - AMPLITUDE_MIN_VPP

    def set_high(self, volts: float) -> None:
        check(volts, -self.window + AMPLITUDE_MIN_VPP, self.window, "high level")
        self._pair(volts, self.low, moved="low")

    def set_low(self, volts: float) -> None:
        check(volts, -self.window, self.window - AMPLITUDE_MIN_VPP, "low level")
        self._pair(self.high, volts, moved="high")

    def _pair(self, high: float, low: float, moved: str) -> None:
        """Take a high/low pair; the level not just sent moves if the pair is inverted or too wide."""
        widest = self.amplitude_max()
        if high - low < AMPLITUDE_MIN_VPP - 1e-12 or high - low > widest + 1e-12:
            span = AMPLITUDE_MIN_VPP if high - low < AMPLITUDE_MIN_VPP else widest
            if moved == "low":
                low = high - span
            else:
                high = low + span
            self.conflicts.append(f"{moved} level moved to {low if moved == 'low' else high:g} V "
                                  f"(high must exceed low by {AMPLITUDE_MIN_VPP:g} to {widest:g} V)")
        self._levels(high - low, (high + low) / 2)

    def set_source_impedance(self, ohms: float) -> None:
        """``:OUTP:IMP``: 5 Ω or 50 Ω on the instrument; the bench's source is 50 Ω, so only that is taken."""
        check(ohms, *SOURCE_IMPEDANCE_RANGE, "source impedance")
        if ohms != SOURCE_IMPEDANCE_OHM:
            raise SettingsConflict(f"a {ohms:g} ohm source: only the 50 ohm source is emulated")

    def set_load(self, ohms: float) -> None:
        check(ohms, *LOAD_RANGE, "load")
        before = self.load
        self.load = ohms
        try:
            self._levels(self.amplitude, self.offset)  # the window narrows at a lower load
        except SettingsConflict:
            self.load = before
            raise
        if self.unit == "DBM" and ohms >= HIGH_IMPEDANCE_OHM:
            self.unit = "VPP"
            self.conflicts.append("amplitude unit set to VPP: dBm needs a finite load")

    def set_limit(self, which: str, volts: float) -> None:
        if which == "high":
            check(volts, *LIMIT_HIGH_RANGE, "high limit")
            high, low = volts, self.limit_low
        else:
            check(volts, *LIMIT_LOW_RANGE, "low limit")
            high, low = self.limit_high, volts
        if high <= low:
            raise SettingsConflict(f"high limit {high:g} V not above the low limit {low:g} V")
        self._check_limits(high, low, self.limits_on)
        self.limit_high, self.limit_low = high, low

    def set_limits_on(self, on: bool) -> None:
        self._check_limits(self.limit_high, self.limit_low, on)
        self.limits_on = on

    def _check_limits(self, high: float, low: float, on: bool) -> None:
        if on and (self.high > high + 1e-12 or self.low < low - 1e-12):
            raise SettingsConflict(f"present levels {self.low:g} V to {self.high:g} V violate the limits "
                                   f"{low:g} V to {high:g} V")

    # -- amplitude units --------------------------------------------------------------------------

    def to_unit(self, vpp: float) -> float:
        """A peak-to-peak amplitude in the present unit."""
        if self.unit == "VPP":
            return vpp
        rms = vpp / PP_PER_RMS[self.shape]
        return rms if self.unit == "VRMS" else 10 * math.log10(rms ** 2 / self.load / 1e-3)

    def from_unit(self, value: float) -> float:
        """An amplitude sent in the present unit, as Vpp."""
        if self.unit == "VPP":
            return value
        rms = value if self.unit == "VRMS" else math.sqrt(1e-3 * self.load * 10 ** (value / 10))
        return rms * PP_PER_RMS[self.shape]

    def set_unit(self, unit: str) -> None:
        if unit != "VPP" and self.shape not in PP_PER_RMS:
            raise SettingsConflict(f"amplitude unit {unit} needs a sine, square or ramp, not {self.shape}")
        if unit == "DBM" and self.load >= HIGH_IMPEDANCE_OHM:
            raise SettingsConflict("amplitude unit DBM needs a finite load, not high impedance")
        self.unit = unit

    # -- function and timing ----------------------------------------------------------------------

    def frequency_range(self, shape: str | None = None) -> tuple[float, float]:
        return FREQUENCY_RANGES[shape or self.shape]

    def set_shape(self, shape: str) -> None:
        self.shape = shape
        high = self.frequency_range()[1]
        if self.frequency > high:
            self.frequency = high
            self.conflicts.append(f"frequency adjusted to {high:g} Hz, the maximum for {shape}")
        if self.unit != "VPP" and shape not in PP_PER_RMS:
            self.unit = "VPP"
            self.conflicts.append(f"amplitude unit set to VPP: {shape} has no rms value")
        if self.amplitude > self.amplitude_max() + 1e-12:
            self.amplitude = self.amplitude_max()
            self.conflicts.append(f"amplitude adjusted to {self.amplitude:g} Vpp, the maximum for {shape}")

    def set_frequency(self, hz: float) -> None:
        check(hz, *self.frequency_range(), f"{self.shape} frequency")
        if self.shape == "SIN" and hz > SINE_FAST_HZ and self.amplitude > SINE_FAST_MAX_VPP * self.load_scale:
            raise SettingsConflict(f"a sine above {SINE_FAST_HZ:g} Hz needs an amplitude of at most "
                                   f"{SINE_FAST_MAX_VPP * self.load_scale:g} Vpp")
        period = 1.0 / hz
        trailing_delay = 1.0 / self.frequency - self.width
        if self.hold == "DCYC":
            self.width = self.width * self.frequency / hz
        elif self.hold == "TDEL":
            self.width = max(period - trailing_delay, WIDTH_MIN_S)
        # holding the width (the default), a period at or below it is taken as the instrument's driver
        # sequence needs (period, then width): the width is checked when it is next set
        self.frequency = hz

    @property
    def period(self) -> float:
        return 1.0 / self.frequency

    def period_range(self) -> tuple[float, float]:
        low, high = self.frequency_range("PULS")
        return 1.0 / high, 1.0 / low

    def set_period(self, seconds: float) -> None:
        low, high = self.period_range()
        check(seconds, low * (1 - 1e-9), high, "pulse period")
        hz = 1.0 / seconds
        f_high = self.frequency_range()[1]
        self.set_frequency(f_high if f_high < hz <= f_high * (1 + 1e-9) else hz)  # %e rounding at the limit

    def width_range(self) -> tuple[float, float]:
        return WIDTH_MIN_S, max(self.period - max(self.delay, WIDTH_MIN_S), WIDTH_MIN_S)

    def set_width(self, seconds: float) -> None:
        check(seconds, WIDTH_MIN_S, WIDTH_MAX_S, "pulse width")
        if seconds > self.width_range()[1] * (1 + 1e-12):
            raise SettingsConflict(f"pulse width {seconds:g} s does not fit the period {self.period:g} s")
        self.width = seconds

    @property
    def duty(self) -> float:
        return 100.0 * self.width / self.period

    def duty_range(self) -> tuple[float, float]:
        low, high = self.width_range()
        return 100.0 * low / self.period, 100.0 * high / self.period

    def set_duty(self, percent: float) -> None:
        check(percent, 0.0, 100.0, "pulse duty cycle")
        low, high = self.duty_range()
        if not low * (1 - 1e-9) <= percent <= high * (1 + 1e-9):
            raise SettingsConflict(f"pulse duty cycle {percent:g} % outside {low:g} to {high:g} % at the period "
                                   f"{self.period:g} s (widths of at least {WIDTH_MIN_S:g} s each side)")
        self.width = percent / 100.0 * self.period

    def set_transition(self, which: str, seconds: float) -> None:
        check(seconds, *TRANSITION_RANGE, f"{which} transition time")
        if which == "leading" or not self.edges_uncoupled:
            self.leading = seconds
        if which == "trailing" or not self.edges_uncoupled:
            self.trailing = seconds

    def set_edges_uncoupled(self, uncoupled: bool) -> None:
        self.edges_uncoupled = uncoupled
        if not uncoupled:
            self.trailing = self.leading

    # -- tracking ---------------------------------------------------------------------------------

    WAVEFORM_FIELDS = ("shape", "frequency", "amplitude", "offset", "unit", "width", "delay", "hold", "leading",
                       "trailing", "edges_uncoupled", "square_duty", "ramp_symmetry", "phase", "polarity", "user")

    def copy_waveform_to(self, other: OutputChannel) -> None:
        """Copy the signal settings (not output, load, limits or triggering) to ``other``; refused with
        :class:`SettingsConflict` (nothing copied) if ``other``'s window or voltage limits forbid the levels."""
        other.check_levels(self.high, self.low)
        self.restore(other, self.waveform_state())

    def waveform_state(self) -> tuple:
        return tuple(getattr(self, name) for name in self.WAVEFORM_FIELDS)

    @classmethod
    def restore(cls, channel: OutputChannel, state: tuple) -> None:
        """Set ``channel``'s signal settings to a :meth:`waveform_state`."""
        for name, value in zip(cls.WAVEFORM_FIELDS, state, strict=True):
            setattr(channel, name, value)

    def reset(self) -> None:
        """Back to the ``*RST`` state."""
        for spec in fields(self):
            if spec.name != "conflicts":
                setattr(self, spec.name, getattr(OutputChannel, spec.name))
        self.conflicts.clear()

    # -- one cycle as played ----------------------------------------------------------------------

    def set_delay(self, seconds: float) -> None:
        check(seconds, *DELAY_RANGE, "pulse delay")
        if seconds + self.width > self.period * (1 + 1e-12):
            raise SettingsConflict(f"pulse delay {seconds:g} s and width {self.width:g} s exceed the period "
                                   f"{self.period:g} s")
        self.delay = seconds

    def pulse_cycle(self) -> tuple[np.ndarray, np.ndarray]:
        """One pulse period: idle for the delay (if any), the pulse level for the width, idle for the rest
        (ideal edges)."""
        active, idle = (self.high, self.low) if self.polarity == "NORM" else (self.low, self.high)
        rest = max(self.period - self.width - self.delay, 0.0)
        if self.delay > 0:
            return np.array([idle, active, idle]), np.array([self.delay, self.width, rest])
        return np.array([active, idle]), np.array([self.width, rest])

    def square_cycle(self) -> tuple[np.ndarray, np.ndarray]:
        active, idle = (self.high, self.low) if self.polarity == "NORM" else (self.low, self.high)
        on = self.square_duty / 100.0 * self.period
        return np.array([active, idle]), np.array([on, self.period - on])
