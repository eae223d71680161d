"""Keithley 2450 SourceMeter: PyMeasure's driver, extended with list sweeps, trigger models and buffers.

Added to the stock ``pymeasure.instruments.keithley.Keithley2450`` (spellings from the 2450 reference
manual, SCPI command set; command by command in ``docs/commands/keithley2450.md``):

- :meth:`configure_four_wire_resistance`, :meth:`read_four_wire_resistance`: ``R_xy`` at a small
  source current with a voltage limit, built from the stock ``apply_current``, ``measure_resistance``,
  ``wires`` and ``source_current``;
- ``current_list``, ``current_list_append``, :meth:`load_current_list` and
  :meth:`start_current_list_sweep` (``:SOUR:LIST:CURR``, ``:SOUR:LIST:CURR:APP``,
  ``:SOUR:SWE:CURR:LIST``): step a current through a list with a dwell, one reading per step;
- :meth:`configure_triggered_readings`: a trigger model that takes one reading per edge on digital
  line 1 (the pulse generator's trigger output);
- :meth:`configure_timed_readings`: a trigger model that waits for one edge on digital line 1 and
  then takes readings at fixed delays, for many trials played in one waveform;
- :meth:`buffer_count`, :meth:`fetch_buffer`: the reading buffer, all readings in one query;
- ``output_off_mode`` (``:OUTP:CURR:SMOD``): high impedance holds the output open during pulses;
- strict validators on the source current, voltage limit and NPLC (the stock ones clip or accept
  anything), and :meth:`check_errors` raising :class:`InstrumentError` for an error in the queue; the
  settings the read set-up uses are declared with PyMeasure's ``check_set_errors``, so an error is raised
  right after the command the instrument refused.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from pymeasure.instruments import Instrument
from pymeasure.instruments.keithley import Keithley2450 as StockKeithley2450
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from instruments.drivers.errors import InstrumentError, InstrumentReplyError, RaisingErrorQueue, operation_complete

BUFFER = "defbuffer1"
SOURCE_CURRENT_RANGE_A = [-1.05, 1.05]
VOLTAGE_LIMIT_RANGE_V = [0.02, 210.0]  # :SOUR:CURR:VLIM
NPLC_RANGE = [0.01, 10.0]
LIST_VALUES_PER_COMMAND = 100  # :SOUR:LIST:CURR and :SOUR:LIST:CURR:APP take up to 100 values each
MAX_LIST_POINTS = 2500  # a source list holds at most 2500 values
MAX_BUFFER_READINGS = 100_000  # default capacity of defbuffer1
DELAY_RANGE = [0.0, 10_000.0]  # :TRIG:BLOC:DEL:CONS (0 for no delay)
SWEEP_DELAY_MIN_S = 50e-6  # a sweep's delay between points: 0, or 50 µs to 10 000 s
TRIGGER_LINE = 1  # rear-panel digital I/O line wired to the pulse generator's trigger output
BUSY_STATES = ("RUNNING", "WAITING")  # a trigger model in these states has not finished
TRIGGER_STATES = ("IDLE", "RUNNING", "WAITING", "EMPTY", "BUILDING", "FAILED", "ABORTING", "ABORTED", "PAUSED")
OUTPUT_OFF_MODES = {"high_impedance": "HIMP", "normal": "NORM", "zero": "ZERO", "guard": "GUAR"}


def _list_values(values: Sequence[float], max_points: int) -> list[float]:
    """The values of a source list, checked: 1 to ``max_points`` currents within the source range."""
    values = [float(v) for v in values]
    if not 1 <= len(values) <= max_points:
        raise ValueError(f"source list of {len(values)} points: this command takes 1 to {max_points}")
    for v in values:
        strict_range(v, SOURCE_CURRENT_RANGE_A)
    return values


def _trigger_state(reply: str) -> str:
    """The first field of a ``:TRIG:STAT?`` reply, which must be one of the states the manual lists."""
    state = reply.split(";")[0].strip()
    if state not in TRIGGER_STATES:
        raise InstrumentReplyError(f"Keithley 2450: {reply[:40]!r} is not a trigger-model state")
    return state


def _format_list(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.6g}" for v in values)


class Keithley2450(RaisingErrorQueue, StockKeithley2450):
    """Keithley 2450 with 4-wire reads, source list sweeps, triggered readings and buffer fetches."""

    # -- stock properties, with validators that refuse instead of clipping -------------------------

    source_current = Instrument.control(
        ":SOUR:CURR?", ":SOUR:CURR:LEV %g",
        """Control the source current in A (float, -1.05 to 1.05).""",
        validator=strict_range, values=SOURCE_CURRENT_RANGE_A,
        check_set_errors=True,
    )

    compliance_voltage = Instrument.control(
        ":SOUR:CURR:VLIM?", ":SOUR:CURR:VLIM %g",
        """Control the voltage limit of the current source in V (float, 0.02 to 210).""",
        validator=strict_range, values=VOLTAGE_LIMIT_RANGE_V,
        check_set_errors=True,
    )

    resistance_nplc = Instrument.control(
        ":SENS:RES:NPLC?", ":SENS:RES:NPLC %g",
        """Control the resistance integration time in power-line cycles (float, 0.01 to 10).""",
        validator=strict_range, values=NPLC_RANGE,
        check_set_errors=True,
    )

    # -- added properties ---------------------------------------------------------------------------

    current_list = Instrument.setting(
        ":SOUR:LIST:CURR %s",
        """Set a new source list of currents in A (sequence of 1 to 100 floats).""",
        validator=lambda values, _: _list_values(values, LIST_VALUES_PER_COMMAND),
        set_process=_format_list,
    )

    current_list_append = Instrument.setting(
        ":SOUR:LIST:CURR:APP %s",
        """Set currents in A to append to the source list (sequence of 1 to 100 floats).""",
        validator=lambda values, _: _list_values(values, LIST_VALUES_PER_COMMAND),
        set_process=_format_list,
    )

    output_off_mode = Instrument.control(
        ":OUTP:CURR:SMOD?", ":OUTP:CURR:SMOD %s",
        """Control what the output does when off, current source (str: high_impedance, normal, zero, guard).""",
        validator=strict_discrete_set, values=OUTPUT_OFF_MODES, map_values=True,
        check_set_errors=True,
    )

    trigger_line_mode = Instrument.setting(
        f":DIG:LINE{TRIGGER_LINE}:MODE %s",
        """Set the digital line the pulse generator triggers ('TRIG, IN' makes it a trigger input).""",
        validator=strict_discrete_set, values=["TRIG, IN", "DIG, IN"],
        check_set_errors=True,
    )

    trigger_edge = Instrument.setting(
        f":TRIG:DIG{TRIGGER_LINE}:IN:EDGE %s",
        """Set the edge of the trigger input that the trigger model detects (str: RIS, FALL, EITH).""",
        validator=strict_discrete_set, values=["RIS", "FALL", "EITH"],
        check_set_errors=True,
    )

    trigger_state = Instrument.measurement(
        ":TRIG:STAT?",
        """Get the trigger-model state (str: IDLE, RUNNING, WAITING, ...; an unknown word is refused).""",
        cast=str, maxsplit=0, get_process=lambda reply: _trigger_state(reply),
    )

    # -- 4-wire resistance --------------------------------------------------------------------------

    def configure_four_wire_resistance(self, current_a: float, compliance_v: float, nplc: float = 1.0) -> None:
        """Source ``current_a`` (A) limited to ``compliance_v`` (V); measure 4-wire resistance over ``nplc``."""
        strict_range(current_a, SOURCE_CURRENT_RANGE_A)
        strict_range(compliance_v, VOLTAGE_LIMIT_RANGE_V)
        strict_range(nplc, NPLC_RANGE)
        self.apply_current(compliance_voltage=compliance_v)
        self.measure_resistance(nplc=nplc)
        self.wires = 4
        self.source_current = current_a

    def read_four_wire_resistance(self, current_a: float, compliance_v: float, nplc: float = 1.0) -> float:
        """One 4-wire resistance reading in Ω (``R_xy``); the output is on only for the reading."""
        self.configure_four_wire_resistance(current_a, compliance_v, nplc)
        self.enable_source()
        try:
            return float(self.resistance)
        finally:
            self.disable_source()

    # -- source list sweeps -------------------------------------------------------------------------

    def load_current_list(self, currents_a: Sequence[float]) -> None:
        """Replace the source list with up to 2500 currents in A (sent 100 at a time)."""
        values = _list_values(currents_a, MAX_LIST_POINTS)
        self.current_list = values[:LIST_VALUES_PER_COMMAND]
        for start in range(LIST_VALUES_PER_COMMAND, len(values), LIST_VALUES_PER_COMMAND):
            self.current_list_append = values[start:start + LIST_VALUES_PER_COMMAND]

    def start_current_list_sweep(self, currents_a: Sequence[float], dwell_s: float) -> None:
        """Load a list sweep (source list + sweep trigger model) and start it; one reading per step.

        Each current is sourced for ``dwell_s`` (0, or 50 µs to 10 000 s) before its reading.
        """
        _list_values(currents_a, MAX_LIST_POINTS)
        strict_range(dwell_s, DELAY_RANGE)
        if 0 < dwell_s < SWEEP_DELAY_MIN_S:
            raise ValueError(f"sweep dwell {dwell_s:.3g} s: the 2450 takes 0 or 50 µs to 10 000 s")
        self.load_current_list(currents_a)
        self.write(f':SOUR:SWE:CURR:LIST 1, {dwell_s:.6g}, 1, OFF, "{BUFFER}"')
        self.write(":INIT")

    # -- trigger models -----------------------------------------------------------------------------

    def configure_triggered_readings(self, count: int, delay_s: float = 0.0) -> None:
        """Trigger model: ``count`` times, wait for an edge on the trigger line, wait ``delay_s``, take one
        reading into the buffer (cleared first).

        Blocks: 1 clear buffer, 2 wait for the digital line, 3 delay, 4 measure, 5 counter back to 2.
        """
        strict_range(count, [1, MAX_BUFFER_READINGS])
        strict_range(delay_s, DELAY_RANGE)
        self._load_wait_for_trigger()
        self.write(f":TRIG:BLOC:DEL:CONS 3, {delay_s:.9g}")
        self.write(f':TRIG:BLOC:MEAS 4, "{BUFFER}"')
        self.write(f":TRIG:BLOC:BRAN:COUN 5, {int(count)}, 2")

    def configure_timed_readings(self, n_trials: int, first_delay_s: float, delays_s: Sequence[float],
                                 period_s: float, aperture_s: float) -> None:
        """Trigger model: wait for the trigger on the digital line, then per trial one reading after
        ``first_delay_s`` (first trial) and further readings ``delays_s`` apart, repeating every ``period_s``.

        Block numbers: 1 clear buffer, 2 wait for the trigger, 3 delay to the first reading, then
        (measure, delay) pairs, and a counter branch back to the first measurement.
        """
        strict_range(n_trials, [1, MAX_BUFFER_READINGS // (len(delays_s) + 1)])
        # back-to-back readings (one aperture apart) need no delay: rounding must not make it −1e-20 s
        gaps = [0.0 if abs(d - aperture_s) < 1e-12 else d - aperture_s for d in delays_s]
        tail = period_s - sum(delays_s) - aperture_s
        for value in (first_delay_s, *gaps, tail):
            if not DELAY_RANGE[0] <= value <= DELAY_RANGE[1]:
                raise ValueError(f"trigger-model delay {value:.6g} s out of range: readings closer together than "
                                 f"the aperture ({aperture_s:.6g} s)")
        self._load_wait_for_trigger()
        self.write(f":TRIG:BLOC:DEL:CONS 3, {first_delay_s:.9g}")
        block = 4
        first_measure = block
        for gap in gaps:
            self.write(f':TRIG:BLOC:MEAS {block}, "{BUFFER}"')
            self.write(f":TRIG:BLOC:DEL:CONS {block + 1}, {gap:.9g}")
            block += 2
        self.write(f':TRIG:BLOC:MEAS {block}, "{BUFFER}"')
        self.write(f":TRIG:BLOC:DEL:CONS {block + 1}, {tail:.9g}")
        self.write(f":TRIG:BLOC:BRAN:COUN {block + 2}, {int(n_trials)}, {first_measure}")

    def clear_trigger_input(self) -> None:
        """Forget an edge the trigger line detected earlier (``:TRIG:DIG1:IN:CLE``)."""
        self.write(f":TRIG:DIG{TRIGGER_LINE}:IN:CLE")

    def _load_wait_for_trigger(self) -> None:
        """Blocks 1–2 of both trigger models: an empty model, clear the buffer, wait for digital line 1."""
        self.write(':TRIG:LOAD "Empty"')
        self.write(f':TRIG:BLOC:BUFF:CLE 1, "{BUFFER}"')
        self.write(f":TRIG:BLOC:WAIT 2, DIG{TRIGGER_LINE}")

    def start(self, timeout_s: float = 5.0) -> None:
        """Start the loaded trigger model and return once it waits for its trigger."""
        self.write(":INIT")
        deadline = time.monotonic() + timeout_s
        while self.trigger_state != "WAITING":
            if time.monotonic() > deadline:
                self.abort()
                raise InstrumentError(f"{self.name}: the trigger model did not reach its wait block")
            time.sleep(0.001)

    def abort(self) -> None:
        """Stop a running trigger model."""
        self.write(":ABOR")

    def wait_for_completion(self) -> None:
        """Block until the trigger model has finished (``*OPC?``)."""
        operation_complete(self)

    def wait_while_busy(self, timeout_s: float) -> str:
        """Poll the trigger-model state until it neither runs nor waits, or ``timeout_s`` passes.

        Returns the last state read. Unlike ``*OPC?``, which the instrument answers only once the model
        ends, this gives up in time when the model waits for a trigger that never comes."""
        deadline = time.monotonic() + timeout_s
        while (state := self.trigger_state) in BUSY_STATES and time.monotonic() < deadline:
            time.sleep(0.001)
        return state

    # -- reading buffer -----------------------------------------------------------------------------

    def clear_buffer(self) -> None:
        """Delete every reading in the default buffer."""
        self.write(f':TRAC:CLE "{BUFFER}"')

    def buffer_count(self) -> int:
        """Number of readings in the default buffer."""
        return int(self.values(f':TRAC:ACT? "{BUFFER}"', cast=int)[0])

    def fetch_buffer(self, count: int) -> np.ndarray:
        """Readings 1..``count`` of the default buffer in one query (Ω when measuring resistance)."""
        strict_range(count, [1, MAX_BUFFER_READINGS])
        return np.array(self.values(f':TRAC:DATA? 1, {int(count)}, "{BUFFER}", READ', cast=float), dtype=float)
