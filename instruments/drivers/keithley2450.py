"""Keithley 2450 SourceMeter: PyMeasure's driver, extended with list sweeps, trigger models and buffers.

Added to the stock ``pymeasure.instruments.keithley.Keithley2450``:

- ``current_list`` and :meth:`start_current_list_sweep` (``:SOUR:LIST:CURR``, ``:SOUR:SWE:CURR:LIST``):
  step a current through a list with a dwell, one reading per step, into the buffer;
- :meth:`configure_timed_readings`: a trigger model that waits for one external trigger on digital
  line 1 and then takes readings at fixed delays (``:TRIG:BLOC:*``), for trials played by a pulse
  generator whose trigger output starts the model;
- :meth:`buffer_count`, :meth:`fetch_buffer`: the reading buffer, all readings in one query;
- :meth:`check_errors` raises :class:`InstrumentError` for an error in the queue instead of only
  logging it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from pymeasure.instruments import Instrument
from pymeasure.instruments.keithley import Keithley2450 as StockKeithley2450
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from instruments.drivers.errors import InstrumentError, RaisingErrorQueue

BUFFER = "defbuffer1"
MAX_LIST_POINTS = 2500  # source list length of the 2450
MAX_BUFFER_READINGS = 100_000  # default size of defbuffer1
TRIGGER_LINE = 1  # rear-panel digital I/O line wired to the pulse generator's trigger output
DELAY_RANGE = [0.0, 10_000.0]
OUTPUT_OFF_MODES = {"high_impedance": "HIMP", "normal": "NORM", "zero": "ZERO", "guard": "GUAR"}


class Keithley2450(RaisingErrorQueue, StockKeithley2450):
    """Keithley 2450 with source lists, trigger-model readings and buffer fetches."""

    current_list = Instrument.setting(
        ":SOUR:LIST:CURR %s",
        """Set the source list of currents in A (sequence of floats, at most 2500).""",
        validator=lambda values, _: _checked_list(values),
        set_process=lambda values: ", ".join(f"{v:.6g}" for v in values),
    )

    output_off_mode = Instrument.control(
        ":OUTP:CURR:SMOD?", ":OUTP:CURR:SMOD %s",
        """Control what the output does when off, current source (str: high_impedance, normal, zero, guard).""",
        validator=strict_discrete_set, values=OUTPUT_OFF_MODES, map_values=True,
    )

    trigger_line_mode = Instrument.setting(
        f":DIG:LINE{TRIGGER_LINE}:MODE %s",
        """Set the digital line the pulse generator triggers ('TRIG, IN' makes it a trigger input).""",
        validator=strict_discrete_set, values=["TRIG, IN", "DIG, IN"],
    )

    trigger_edge = Instrument.setting(
        f":TRIG:DIG{TRIGGER_LINE}:IN:EDGE %s",
        """Set the edge of the trigger input that starts the trigger model (str: RIS, FALL, EITH).""",
        validator=strict_discrete_set, values=["RIS", "FALL", "EITH"],
    )

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

    def start_current_list_sweep(self, currents_a: Sequence[float], dwell_s: float) -> None:
        """Load a list sweep (source list + sweep trigger model) and start it; one reading per step.

        Each current is sourced for ``dwell_s`` (the source delay) before its reading.
        """
        _checked_list(currents_a)
        strict_range(dwell_s, DELAY_RANGE)
        self.current_list = list(currents_a)
        self.write(f':SOUR:SWE:CURR:LIST 1, {dwell_s:.6g}, 1, OFF, "{BUFFER}"')
        self.write(":INIT")

    def configure_timed_readings(self, n_trials: int, first_delay_s: float, delays_s: Sequence[float],
                                 period_s: float, aperture_s: float) -> None:
        """Trigger model: wait for the trigger on the digital line, then per trial one reading after
        ``first_delay_s`` (first trial) and further readings ``delays_s`` apart, repeating every ``period_s``.

        Block numbers: 1 clear buffer, 2 wait for the trigger, 3 delay to the first reading, then
        (measure, delay) pairs, and a counter branch back to the first measurement.
        """
        strict_range(n_trials, [1, MAX_BUFFER_READINGS // (len(delays_s) + 1)])
        gaps = [d - aperture_s for d in delays_s]
        tail = period_s - sum(delays_s) - aperture_s
        for value in (first_delay_s, *gaps, tail):
            if not DELAY_RANGE[0] <= value <= DELAY_RANGE[1]:
                raise ValueError(f"trigger-model delay {value:.6g} s out of range: readings closer together than "
                                 f"the aperture ({aperture_s:.6g} s)")
        self.write(':TRIG:LOAD "Empty"')
        self.write(f':TRIG:BLOC:BUFF:CLE 1, "{BUFFER}"')
        self.write(f":TRIG:BLOC:WAIT 2, DIG{TRIGGER_LINE}")
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

    trigger_state = Instrument.measurement(
        ":TRIG:STAT?",
        """Get the trigger-model state (str: IDLE, RUNNING, WAITING, ...).""",
        cast=str, maxsplit=0, get_process=lambda reply: reply.split(";")[0].strip(),
    )

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
        self.ask("*OPC?")


def _checked_list(values: Sequence[float]) -> Sequence[float]:
    values = list(values)
    if not 1 <= len(values) <= MAX_LIST_POINTS:
        raise ValueError(f"source list of {len(values)} points: the 2450 takes 1 to {MAX_LIST_POINTS}")
    for v in values:
        strict_range(v, [-1.05, 1.05])
    return values
