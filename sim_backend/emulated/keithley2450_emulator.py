"""Emulated Keithley 2450 SourceMeter: the SCPI subset of the project's and PyMeasure's 2450 drivers.

- Source: current or voltage, with its limit (``:SOUR:CURR:VLIM``, ``:SOUR:VOLT:ILIM``); the output
  (``:OUTP``) and its output-off state (``:OUTP:CURR:SMOD``). The source drives the routed device's
  channel (resistance ``R_ch``); a source in compliance delivers what its limit allows.
- Measure: resistance, voltage or current (``:SENS:FUNC``), 2-wire or 4-wire (``:SENS:<f>:RSEN``).
  With the sense leads on the Hall arms, a 4-wire resistance is the routed device's ``R_xy`` and a
  4-wire voltage its Hall voltage; 2-wire, the channel. An open (destroyed or unrouted) device, or
  no current flowing, reads as the overflow value 9.9e37. Each reading takes NPLC / 50 Hz on the
  bench's virtual clock and goes into a reading buffer (``:READ?``, ``:MEAS:<f>?``).
- Reading buffers ``defbuffer1``, ``defbuffer2`` and ``:TRAC:MAKE`` ones: ``:TRAC:CLE``, ``:TRAC:ACT?``,
  ``:TRAC:POIN``, ``:TRAC:DATA?`` (elements ``READ``, ``SOUR``, ``REL``). All buffers share one memory of
  6 875 000 readings: a buffer made or resized beyond it is refused (``-222``), so however many buffers a
  long run makes, what they hold stays bounded. A buffer the trigger model or sweep uses cannot be deleted.
- Source list sweeps: ``:SOUR:LIST:CURR`` (+ ``:APP``, 100 values per command, 2500 in all) and
  ``:SOUR:SWE:CURR:LIST``; ``:INIT`` turns the output on, and for each current drives it through the
  routed device for the sweep's delay, then reads (the current flowing on through the aperture); the
  output is off after the last reading. A whole sweep is one vectorized pass through the bench
  (:meth:`~sim_backend.emulated.bench.Bench.source_current_steps`), not a call per step.
- The trigger model (``:TRIG:LOAD "Empty"`` and blocks: buffer clear, wait, constant delay, measure,
  counter branch, no-op). A wait on ``DIGio1`` (digital line 1 in trigger-input mode) listens on the
  bench's trigger line, which the pulse generator fires at the start of each waveform: the model runs
  on from the wait at that waveform's start time and takes its readings at their own times within it.
  A wait on ``COMMand`` continues on ``*TRG``. This module parses the commands; the blocks are held and
  run by :class:`~sim_backend.emulated.trigger_model.TriggerModel` (``trigger_model``).

A header it does not know is ``-113`` in the error queue; a bad parameter ``-224``, a value out of
range ``-222``; nothing is replied for any of them.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field

import numpy as np

from sim_backend.emulated.server import SCPI_DATA_OUT_OF_RANGE, ScpiInstrument, parse_bool, scpi_pattern, unquote
from sim_backend.emulated.trigger_model import MAX_READINGS_PER_RUN, TriggerModel

OVERFLOW = 9.9e37  # what the 2450 returns for an overflowed (open) reading
LINE_FREQUENCY_HZ = 50.0  # one power-line cycle is 20 ms
DEFAULT_BUFFERS = ("defbuffer1", "defbuffer2")
DEFAULT_BUFFER_SIZE = 100_000
MIN_BUFFER_SIZE = 10
BUFFER_MEMORY = 6_875_000  # readings that all reading buffers together may hold (one standard buffer's maximum)
DIGITAL_LINES = range(1, 7)
LIST_VALUES_PER_COMMAND = 100
MAX_LIST_POINTS = 2500
MAX_BLOCKS = 63
CURRENT_RANGE_A = 1.05
VOLTAGE_RANGE_V = 210.0
VLIM_RANGE_V = (0.02, 210.0)
ILIM_RANGE_A = (1e-8, 1.05)
NPLC_RANGE = (0.01, 10.0)
DELAY_MAX_S = 10_000.0
SWEEP_DELAY_MIN_S = 50e-6

SENSE_FUNCTIONS = {"RES": "RESistance", "VOLT": "VOLTage[:DC]", "CURR": "CURRent[:DC]"}
SOURCE_FUNCTIONS = {"CURR": "CURRent[:DC]", "VOLT": "VOLTage[:DC]"}
OFF_MODES = {"HIMP": "HIMPedance", "NORM": "NORMal", "ZERO": "ZERO", "GUAR": "GUARd"}
EDGES = {"FALL": "FALLing", "RIS": "RISing", "EITH": "EITHer"}
_WORDS = {key: scpi_pattern(spec) for key, spec in
          {**SENSE_FUNCTIONS, **OFF_MODES, **EDGES, "ENT": "ENTer", "NEV": "NEVer", "COMM": "COMMand",
           "TRIG": "TRIGger", "DIG": "DIGital", "IN": "IN", "OUT": "OUT", "READ": "READing",
           "SOUR": "SOURce", "REL": "RELative"}.items()}
_DIGIO_EVENT = re.compile(r"^DIG(?:IO)?([1-6])$", re.IGNORECASE)


OUT_OF_RANGE = "out of range: "  # how a handler's message marks a value beyond the instrument's range


class OutOfRange(ValueError):
    """A parameter beyond the instrument's range: ``-222`` in the queue, not ``-224``."""


def _is(word: str, key: str) -> bool:
    """Whether ``word`` is the short or long form of the keyword ``key``."""
    return bool(_WORDS[key].match(word.strip()))


def _keyword(word: str, choices: dict[str, str], what: str) -> str:
    for key in choices:
        if _is(word, key):
            return key
    raise ValueError(f"{what} {word.strip()!r}")


def _number(text: str, low: float, high: float, what: str) -> float:
    value = float(text)
    if not low <= value <= high:
        raise OutOfRange(f"{OUT_OF_RANGE}{what} {value:g} outside {low:g} to {high:g}")
    return value


def _params(args: str) -> list[str]:
    return [a.strip() for a in args.split(",") if a.strip()]


def _nr3(value: float) -> str:
    return f"{value:.9e}"


@dataclass
class ReadingBuffer:
    """A reading buffer: readings with their source value and time; default buffers overwrite when full."""

    capacity: int
    continuous: bool
    readings: list[tuple[float, float, float]] = field(default_factory=list)  # (reading, source, time s)

    def store(self, reading: float, source: float, time_s: float) -> None:
        if len(self.readings) >= self.capacity:
            if not self.continuous:
                return
            del self.readings[0]
        self.readings.append((reading, source, time_s))

    def store_many(self, readings: np.ndarray, sources: np.ndarray, times_s: np.ndarray) -> None:
        """:meth:`store` each ``(reading, source, time)`` in turn (in one go)."""
        rows = list(zip(np.asarray(readings, dtype=np.float64).tolist(), np.asarray(sources, dtype=np.float64).tolist(),
                        np.asarray(times_s, dtype=np.float64).tolist(), strict=True))
        if not self.continuous:
            rows = rows[:max(self.capacity - len(self.readings), 0)]
        self.readings.extend(rows)
        if len(self.readings) > self.capacity:
            del self.readings[:len(self.readings) - self.capacity]


class EmulatedKeithley2450(ScpiInstrument):
    idn = "KEITHLEY INSTRUMENTS,MODEL 2450,04096331,1.7.12b"
    model = "Keithley2450"

    COMMANDS = [
        (":SOURce[1]:FUNCtion[:MODE]?", "_source_function_q"),
        (":SOURce[1]:FUNCtion[:MODE]", "_source_function"),
        (":SOURce[1]:CURRent[:LEVel][:IMMediate][:AMPLitude]?", "_source_current_q"),
        (":SOURce[1]:CURRent[:LEVel][:IMMediate][:AMPLitude]", "_source_current"),
        (":SOURce[1]:CURRent:VLIMit[:LEVel]?", "_vlim_q"),
        (":SOURce[1]:CURRent:VLIMit[:LEVel]", "_vlim"),
        (":SOURce[1]:VOLTage[:LEVel][:IMMediate][:AMPLitude]?", "_source_voltage_q"),
        (":SOURce[1]:VOLTage[:LEVel][:IMMediate][:AMPLitude]", "_source_voltage"),
        (":SOURce[1]:VOLTage:ILIMit[:LEVel]?", "_ilim_q"),
        (":SOURce[1]:VOLTage:ILIMit[:LEVel]", "_ilim"),
        (":SOURce[1]:CURRent:RANGe:AUTO", "_switch_setting"),
        (":SOURce[1]:CURRent:RANGe", "_current_range"),
        (":SOURce[1]:VOLTage:RANGe:AUTO", "_switch_setting"),
        (":SOURce[1]:VOLTage:RANGe", "_voltage_range"),
        (":SOURce[1]:LIST:CURRent?", "_source_list_q"),
        (":SOURce[1]:LIST:CURRent", "_source_list"),
        (":SOURce[1]:LIST:CURRent:APPend", "_source_list_append"),
        (":SOURce[1]:LIST:CURRent:POINts?", "_source_list_points"),
        (":SOURce[1]:SWEep:CURRent:LIST", "_sweep_list"),
        (":SENSe[1]:FUNCtion[:ON]", "_sense_function"),
        (":OUTPut[1][:STATe]?", "_output_q"),
        (":OUTPut[1][:STATe]", "_output"),
        (":READ?", "_read"),
        (":MEASure?", "_read"),
        (":TRACe:CLEar", "_trace_clear"),
        (":TRACe:ACTual?", "_trace_actual"),
        (":TRACe:DATA?", "_trace_data"),
        (":TRACe:POINts?", "_trace_points_q"),
        (":TRACe:POINts", "_trace_points"),
        (":TRACe:MAKE", "_trace_make"),
        (":TRACe:DELete", "_trace_delete"),
        (":DIGital:LINE<n>:MODE?", "_digital_mode_q"),
        (":DIGital:LINE<n>:MODE", "_digital_mode"),
        (":TRIGger:DIGital<n>:IN:EDGE?", "_digital_edge_q"),
        (":TRIGger:DIGital<n>:IN:EDGE", "_digital_edge"),
        (":TRIGger:DIGital<n>:IN:CLEar", "_digital_clear"),
        (":TRIGger:LOAD", "_trigger_load"),
        (":TRIGger:BLOCk:BUFFer:CLEar", "_block_buffer_clear"),
        (":TRIGger:BLOCk:WAIT", "_block_wait"),
        (":TRIGger:BLOCk:DELay:CONStant", "_block_delay"),
        (":TRIGger:BLOCk:MEASure", "_block_measure"),
        (":TRIGger:BLOCk:BRANch:COUNter", "_block_branch_counter"),
        (":TRIGger:BLOCk:NOP", "_block_nop"),
        (":INITiate[:IMMediate]", "_initiate"),
        (":ABORt", "_abort"),
        (":TRIGger:STATe?", "_trigger_state"),
        ("*TRG", "_bus_trigger"),
        (":STATus:PRESet", "_status_preset"),
        (":*CLS", "_cls"),  # PyMeasure's stock reset() sends "*RST;:stat:pres;:*CLS;"
    ]

    def __init__(self, bench=None) -> None:
        super().__init__(bench)
        # per-function settings: [:SENSe[1]]:<function>:..., :OUTPut[1]:<function>:SMODe
        per_function = [(":SENSe[1]:{}:NPLCycles?", self._nplc_q), (":SENSe[1]:{}:NPLCycles", self._nplc),
                        (":SENSe[1]:{}:RSENse?", self._rsense_q), (":SENSe[1]:{}:RSENse", self._rsense),
                        (":SENSe[1]:{}:RANGe:AUTO", self._sense_autorange),
                        (":SENSe[1]:{}:RANGe[:UPPer]", self._sense_range),
                        (":MEASure:{}?", self._measure_function)]
        table = [(spec.format(word), handler, key) for key, word in SENSE_FUNCTIONS.items()
                 for spec, handler in per_function]
        table += [(f":OUTPut[1]:{word}:SMODe?", self._smode_q, key) for key, word in SOURCE_FUNCTIONS.items()]
        table += [(f":OUTPut[1]:{word}:SMODe", self._smode, key) for key, word in SOURCE_FUNCTIONS.items()]
        for spec, handler, key in table:
            name = f"{handler.__name__}[{key}]"
            setattr(self, name, functools.partial(handler, key))
            self._table.append((scpi_pattern(spec), name))

    def handle(self, message: str) -> str | None:
        errors_before = len(self.errors)
        reply = super().handle(message)
        # the base class files every ValueError as -224; a value out of range is -222 on the 2450
        for i in range(errors_before, len(self.errors)):
            code, text = self.errors[i]
            marker = f"Illegal parameter value; {OUT_OF_RANGE}"
            if code == -224 and text.startswith(marker):
                self.errors[i] = (SCPI_DATA_OUT_OF_RANGE, f"Parameter data out of range; {text.removeprefix(marker)}")
        return reply

    def reset_state(self) -> None:
        previous = getattr(self, "trigger_model", None)
        if previous is not None:
            previous.stop()
        # the 2450's reset state: a voltage source at 0 V limited to 105 µA, measuring current
        self.source_function = "VOLT"
        self.source_current_a = 0.0
        self.source_voltage_v = 0.0
        self.vlim_v = 21.0
        self.ilim_a = 1.05e-4
        self.sense_function = "CURR"
        self.nplc = dict.fromkeys(SENSE_FUNCTIONS, 1.0)
        self.four_wire = dict.fromkeys(SENSE_FUNCTIONS, False)
        self.output_on = False
        self.off_mode = dict.fromkeys(SOURCE_FUNCTIONS, "NORM")
        self.buffers = {name: ReadingBuffer(DEFAULT_BUFFER_SIZE, continuous=True) for name in DEFAULT_BUFFERS}
        self.source_list: list[float] = []
        self.sweep: tuple[int, float, int, str] | None = None
        self.line_modes = dict.fromkeys(DIGITAL_LINES, "DIG, IN")
        self.edges = dict.fromkeys(DIGITAL_LINES, "FALL")
        self.trigger_model = TriggerModel(self)

    # -- the physics: what the source drives and what the meter reads -------------------------------

    @property
    def aperture_s(self) -> float:
        """Duration of one reading of the present measure function: NPLC / line frequency."""
        return self.nplc[self.sense_function] / LINE_FREQUENCY_HZ

    def _channel_ohm(self) -> float:
        return self.bench.channel_resistance() if self.bench is not None else math.inf

    def _operating_points(self, levels: np.ndarray, r_ch_ohm: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """``(currents A, voltages V)`` at the force terminals with the output on, for source ``levels``
        through channel resistances ``r_ch_ohm`` (``inf``: open), elementwise; the limit caps them."""
        levels = np.asarray(levels, dtype=np.float64)
        r_ch = np.broadcast_to(np.asarray(r_ch_ohm, dtype=np.float64), levels.shape)
        is_open = ~np.isfinite(r_ch)
        r = np.where(is_open, 1.0, r_ch)
        if self.source_function == "CURR":
            current = np.where(np.abs(levels) * r > self.vlim_v, np.copysign(self.vlim_v / r, levels), levels)
            current = np.where(is_open, 0.0, current)
            # open: no current flows, and the voltage runs to its limit
            return current, np.where(is_open, np.copysign(self.vlim_v, levels), current * r)
        current = levels / r
        current = np.where(np.abs(current) > self.ilim_a, np.copysign(self.ilim_a, current), current)
        current = np.where(is_open, 0.0, current)
        return current, np.where(is_open, levels, current * r)

    def _operating_point(self, level: float | None = None) -> tuple[float, float]:
        """``(current A, voltage V)`` at the force terminals now, at the present (or the given) source level."""
        if level is None:
            level = self.source_value()
        current, voltage = self._operating_points(np.float64(level), self._channel_ohm())
        return float(current), float(voltage)

    def reading_values(self, rxy_ohm: np.ndarray, level: float | None = None) -> np.ndarray:
        """Readings of the present measure function, given the routed device's ``R_xy`` at each reading."""
        rxy = np.asarray(rxy_ohm, dtype=np.float64)
        if not self.output_on:
            return np.full(rxy.shape, OVERFLOW if self.sense_function == "RES" else 0.0)
        return self._readings(rxy, *self._operating_point(level))

    def _readings(self, rxy_ohm: np.ndarray, current_a: np.ndarray | float,
                  voltage_v: np.ndarray | float) -> np.ndarray:
        """Readings of the present measure function with the output on: the force terminals at ``current_a``
        and ``voltage_v`` (one value, or one per reading), the routed device's ``R_xy`` at each reading.
        No current flowing (an open device), or an open ``R_xy``, reads as the overflow value."""
        rxy = np.asarray(rxy_ohm, dtype=np.float64)
        current = np.broadcast_to(np.asarray(current_a, dtype=np.float64), rxy.shape)
        voltage = np.broadcast_to(np.asarray(voltage_v, dtype=np.float64), rxy.shape)
        function = self.sense_function
        four_wire = self.four_wire[function]
        finite = np.isfinite(rxy)
        if function == "CURR":
            return current.copy()
        if function == "VOLT":
            return np.where(finite, current * np.where(finite, rxy, 0.0), OVERFLOW) if four_wire else voltage.copy()
        flowing = current != 0.0
        if not four_wire:
            return np.divide(voltage, current, out=np.full(rxy.shape, OVERFLOW), where=flowing)
        return np.where(flowing & finite, rxy, OVERFLOW)

    def source_value(self) -> float:
        return self.source_current_a if self.source_function == "CURR" else self.source_voltage_v

    def rxy_now(self, n: int) -> np.ndarray:
        return self.bench.read_rxy(n) if self.bench is not None else np.full(n, math.inf)

    def clock(self) -> float:
        return self.bench.clock_s if self.bench is not None else 0.0

    def advance(self, seconds: float) -> None:
        if self.bench is not None and seconds > 0:
            self.bench.advance(seconds)

    def _measure_now(self, buffer: str = DEFAULT_BUFFERS[0]) -> float:
        """One reading now, stored in ``buffer``; the clock advances by the aperture."""
        value = float(self.reading_values(self.rxy_now(1))[0])
        self.buffers[buffer].store(value, self.source_value(), self.clock())
        self.advance(self.aperture_s)
        return value

    # -- source ---------------------------------------------------------------------------------------

    def _source_function_q(self, args: str) -> str:
        return self.source_function

    def _source_function(self, args: str) -> None:
        self.source_function = _keyword(args, SOURCE_FUNCTIONS, "source function")

    def _source_current_q(self, args: str) -> str:
        return _nr3(self.source_current_a)

    def _source_current(self, args: str) -> None:
        self.source_current_a = _number(args, -CURRENT_RANGE_A, CURRENT_RANGE_A, "source current")

    def _vlim_q(self, args: str) -> str:
        return _nr3(self.vlim_v)

    def _vlim(self, args: str) -> None:
        self.vlim_v = _number(args, *VLIM_RANGE_V, "voltage limit")

    def _source_voltage_q(self, args: str) -> str:
        return _nr3(self.source_voltage_v)

    def _source_voltage(self, args: str) -> None:
        self.source_voltage_v = _number(args, -VOLTAGE_RANGE_V, VOLTAGE_RANGE_V, "source voltage")

    def _ilim_q(self, args: str) -> str:
        return _nr3(self.ilim_a)

    def _ilim(self, args: str) -> None:
        self.ilim_a = _number(args, *ILIM_RANGE_A, "current limit")

    def _switch_setting(self, args: str) -> None:
        parse_bool(args)  # autorange on/off: no effect on the emulation

    def _current_range(self, args: str) -> None:
        _number(args, -CURRENT_RANGE_A, CURRENT_RANGE_A, "current range")

    def _voltage_range(self, args: str) -> None:
        _number(args, -VOLTAGE_RANGE_V, VOLTAGE_RANGE_V, "voltage range")

    def _output_q(self, args: str) -> str:
        return "1" if self.output_on else "0"

    def _output(self, args: str) -> None:
        self.output_on = parse_bool(args)

    def _smode_q(self, function: str, args: str) -> str:
        return self.off_mode[function]

    def _smode(self, function: str, args: str) -> None:
        self.off_mode[function] = _keyword(args, OFF_MODES, "output-off state")

    # -- measure --------------------------------------------------------------------------------------

    def _sense_function(self, args: str) -> None:
        self.sense_function = _keyword(unquote(args), SENSE_FUNCTIONS, "measure function")

    def _nplc_q(self, function: str, args: str) -> str:
        return f"{self.nplc[function]:g}"

    def _nplc(self, function: str, args: str) -> None:
        self.nplc[function] = _number(args, *NPLC_RANGE, "NPLC")

    def _rsense_q(self, function: str, args: str) -> str:
        return "1" if self.four_wire[function] else "0"

    def _rsense(self, function: str, args: str) -> None:
        self.four_wire[function] = parse_bool(args)

    def _sense_autorange(self, function: str, args: str) -> None:
        parse_bool(args)

    def _sense_range(self, function: str, args: str) -> None:
        float(args)

    def _buffer_name(self, text: str) -> str:
        name = unquote(text) if text else DEFAULT_BUFFERS[0]
        if name not in self.buffers:
            raise ValueError(f"no reading buffer named {name!r}")
        return name

    def _read(self, args: str) -> str:
        """``:READ?`` / ``:MEAS?`` ``["<buffer>"[, <elements>]]``: one reading, stored and returned."""
        params = _params(args)
        buffer = self._buffer_name(params[0] if params else "")
        elements = self._elements(params[1:])
        self._measure_now(buffer)
        return self._format(self.buffers[buffer], [len(self.buffers[buffer].readings) - 1], elements)

    def _measure_function(self, function: str, args: str) -> str:
        self.sense_function = function
        return self._read(args)

    # -- reading buffers --------------------------------------------------------------------------------

    @staticmethod
    def _elements(words: list[str]) -> list[str]:
        elements = [_keyword(w, {"READ": "", "SOUR": "", "REL": ""}, "buffer element") for w in words]
        return elements or ["READ"]

    @staticmethod
    def _format(buffer: ReadingBuffer, indices: list[int], elements: list[str]) -> str:
        first_time = buffer.readings[0][2] if buffer.readings else 0.0
        out = []
        for i in indices:
            reading, source, time_s = buffer.readings[i]
            for element in elements:
                out.append(_nr3({"READ": reading, "SOUR": source, "REL": time_s - first_time}[element]))
        return ",".join(out)

    def _trace_clear(self, args: str) -> None:
        self.buffers[self._buffer_name(args)].readings.clear()

    def _trace_actual(self, args: str) -> str:
        return str(len(self.buffers[self._buffer_name(args)].readings))

    def _trace_points_q(self, args: str) -> str:
        return str(self.buffers[self._buffer_name(args)].capacity)

    def _trace_points(self, args: str) -> None:
        params = _params(args)
        if not params:
            raise ValueError(":TRAC:POIN needs a size")
        name = self._buffer_name(params[1] if len(params) > 1 else "")
        size = int(_number(params[0], MIN_BUFFER_SIZE, BUFFER_MEMORY, "buffer size"))
        self._check_memory(size, resized=name)
        buffer = self.buffers[name]
        buffer.capacity = size
        buffer.readings.clear()  # resizing loses the readings

    def _trace_make(self, args: str) -> None:
        params = _params(args)
        if len(params) < 2:
            raise ValueError(':TRAC:MAKE needs "<name>", <size>')
        name = unquote(params[0])
        if not name or name in self.buffers:
            raise ValueError(f"cannot make a reading buffer named {name!r}")
        size = int(_number(params[1], MIN_BUFFER_SIZE, BUFFER_MEMORY, "buffer size"))
        self._check_memory(size)
        self.buffers[name] = ReadingBuffer(size, continuous=False)

    def _check_memory(self, size: int, resized: str | None = None) -> None:
        """Refuse a buffer of ``size`` readings (new, or replacing ``resized``'s) beyond the shared memory."""
        used = sum(buffer.capacity for name, buffer in self.buffers.items() if name != resized)
        if used + size > BUFFER_MEMORY:
            raise OutOfRange(f"{OUT_OF_RANGE}buffer size {size}: the reading buffers hold {used} of "
                             f"{BUFFER_MEMORY} readings already")

    def _trace_delete(self, args: str) -> None:
        name = self._buffer_name(args)
        if name in DEFAULT_BUFFERS:
            raise ValueError(f"{name} cannot be deleted")
        if name in self.trigger_model.buffers_used() or (self.sweep is not None and self.sweep[3] == name):
            raise ValueError(f"{name} is used by the trigger model; load another model first")
        del self.buffers[name]

    def _trace_data(self, args: str) -> str:
        params = _params(args)
        if len(params) < 2:
            raise ValueError(":TRAC:DATA? needs a start and an end index")
        start, end = int(params[0]), int(params[1])
        buffer = self.buffers[self._buffer_name(params[2] if len(params) > 2 else "")]
        elements = self._elements(params[3:])
        if not 1 <= start <= end <= len(buffer.readings):
            raise OutOfRange(f"{OUT_OF_RANGE}buffer index {start} to {end}, the buffer holds {len(buffer.readings)}")
        return self._format(buffer, list(range(start - 1, end)), elements)

    # -- source list sweep ------------------------------------------------------------------------------

    @staticmethod
    def _currents(args: str) -> list[float]:
        values = [float(v) for v in _params(args)]
        if not 1 <= len(values) <= LIST_VALUES_PER_COMMAND:
            raise ValueError(f"{len(values)} values: a source list command takes 1 to {LIST_VALUES_PER_COMMAND}")
        for value in values:
            _number(str(value), -CURRENT_RANGE_A, CURRENT_RANGE_A, "list current")
        return values

    def _source_list_q(self, args: str) -> str:
        return ",".join(_nr3(v) for v in self.source_list)

    def _source_list(self, args: str) -> None:
        self.source_list = self._currents(args)

    def _source_list_append(self, args: str) -> None:
        values = self._currents(args)
        if len(self.source_list) + len(values) > MAX_LIST_POINTS:
            raise OutOfRange(f"{OUT_OF_RANGE}a source list holds at most {MAX_LIST_POINTS} values")
        self.source_list += values

    def _source_list_points(self, args: str) -> str:
        return str(len(self.source_list))

    def _sweep_list(self, args: str) -> None:
        """``<startIndex>[, <delay>[, <count>[, <failAbort>[, "<buffer>"]]]]``: replaces the trigger model."""
        params = _params(args)
        if not params or not self.source_list:
            raise ValueError("sweep list: load :SOUR:LIST:CURR first, then give a start index")
        start = int(_number(params[0], 1, len(self.source_list), "sweep start index"))
        delay = _number(params[1], 0.0, DELAY_MAX_S, "sweep delay") if len(params) > 1 else 0.0
        if 0 < delay < SWEEP_DELAY_MIN_S:
            raise OutOfRange(f"{OUT_OF_RANGE}sweep delay {delay:g} s (0, or {SWEEP_DELAY_MIN_S:g} to {DELAY_MAX_S:g})")
        count = int(_number(params[2], 1, 268_435_455, "sweep count")) if len(params) > 2 else 1
        if count * (len(self.source_list) - start + 1) > MAX_READINGS_PER_RUN:
            raise ValueError(f"a sweep of more than {MAX_READINGS_PER_RUN} readings (emulation limit)")
        if len(params) > 3:
            parse_bool(params[3])
        buffer = self._buffer_name(params[4] if len(params) > 4 else "")
        self.trigger_model.clear()
        self.source_function = "CURR"
        self.sweep = (start, delay, count, buffer)

    def _run_sweep(self) -> None:
        """Run the list sweep: output on, every step of every pass, output off; one vectorized call into the chip.

        Each step drives its current (capped by the voltage limit) through the routed device for the sweep's
        delay; the reading is taken at the end of the delay, and the current keeps flowing through the
        reading's aperture. A step that begins with the device open (destroyed, or nothing routed) drives no
        current; a reading of an open device is the overflow value.
        """
        start, delay, count, buffer = self.sweep  # type: ignore[misc]
        levels = np.tile(np.asarray(self.source_list[start - 1:], dtype=np.float64), count)
        self.output_on = True
        aperture = self.aperture_s
        r_ch = self._channel_ohm()
        currents, _ = self._operating_points(levels, r_ch)
        if self.bench is None:
            rxy, times = np.full(levels.shape, math.inf), np.zeros(levels.shape)
        else:
            # the bench drives no current from the step after the one in which the device breaks down
            record = self.bench.source_current_steps(currents, (delay, aperture))
            delays = 2 * np.arange(levels.size)  # each step's first segment: the delay
            rxy, times = record.rxy_after(delays), record.ends_s[delays]
        # at each reading, a device open by then (destroyed during the sweep) carries no current
        at_reading = self._operating_points(levels, np.where(np.isinf(rxy), math.inf, r_ch))
        self.buffers[buffer].store_many(self._readings(rxy, *at_reading), levels, times)
        self.source_current_a = float(levels[-1])
        self.output_on = False

    # -- digital I/O --------------------------------------------------------------------------------------

    @staticmethod
    def _line(text: str) -> int:
        line = int(text or 1)
        if line not in DIGITAL_LINES:
            raise OutOfRange(f"{OUT_OF_RANGE}digital line {line}")
        return line

    def _digital_mode_q(self, args: str, line: str) -> str:
        return self.line_modes[self._line(line)].replace(" ", "")

    def _digital_mode(self, args: str, line: str) -> None:
        params = _params(args)
        if len(params) != 2 or not (_is(params[0], "TRIG") or _is(params[0], "DIG")) \
                or not (_is(params[1], "IN") or _is(params[1], "OUT")):
            raise ValueError(f"digital line mode {args!r}")
        kind = "TRIG" if _is(params[0], "TRIG") else "DIG"
        self.line_modes[self._line(line)] = f"{kind}, {'IN' if _is(params[1], 'IN') else 'OUT'}"

    def _digital_edge_q(self, args: str, line: str) -> str:
        return self.edges[self._line(line)]

    def _digital_edge(self, args: str, line: str) -> None:
        self.edges[self._line(line)] = _keyword(args, EDGES, "trigger edge")

    def _digital_clear(self, args: str, line: str) -> None:
        self._line(line)  # a detected edge is never held over: nothing to clear

    # -- trigger model: the commands (the blocks are held and run by ``self.trigger_model``) ---------------

    def _trigger_load(self, args: str) -> None:
        params = _params(args)
        if len(params) != 1 or unquote(params[0]).upper() != "EMPTY":
            raise ValueError(f'this emulation loads the "Empty" trigger model only, got {args}')
        self.trigger_model.load_empty()
        self.sweep = None

    def _block(self, args: str) -> tuple[int, list[str]]:
        params = _params(args)
        if not params:
            raise ValueError("block number missing")
        number = int(_number(params[0], 1, MAX_BLOCKS, "block number"))
        self.sweep = None
        return number, params[1:]

    def _block_buffer_clear(self, args: str) -> None:
        number, rest = self._block(args)
        self.trigger_model.define(number, "clear", self._buffer_name(rest[0] if rest else ""))

    def _block_wait(self, args: str) -> None:
        number, rest = self._block(args)
        if not rest or len(rest) > 2:
            raise ValueError(f"wait block: one event (and an optional clear), got {args}")
        event = rest[0].upper()
        digio = _DIGIO_EVENT.match(event)
        if digio:
            event = f"DIG{digio.group(1)}"
        elif _is(event, "COMM"):
            event = "COMM"
        else:
            raise ValueError(f"wait event {rest[0]} (emulated: DIGio<n>, COMMand)")
        if len(rest) == 2 and not (_is(rest[1], "ENT") or _is(rest[1], "NEV")):
            raise ValueError(f"wait clear {rest[1]}")
        self.trigger_model.define(number, "wait", event)

    def _block_delay(self, args: str) -> None:
        number, rest = self._block(args)
        if len(rest) != 1:
            raise ValueError(f"delay block: one delay, got {args}")
        self.trigger_model.define(number, "delay", _number(rest[0], 0.0, DELAY_MAX_S, "delay"))

    def _block_measure(self, args: str) -> None:
        number, rest = self._block(args)
        buffer = self._buffer_name(rest[0] if rest else "")
        count = int(_number(rest[1], 1, 268_435_455, "measure count")) if len(rest) > 1 else 1
        self.trigger_model.define(number, "measure", (buffer, count))

    def _block_branch_counter(self, args: str) -> None:
        number, rest = self._block(args)
        if len(rest) != 2:
            raise ValueError(f"counter block: <count>, <branch to>, got {args}")
        count = int(_number(rest[0], 1, 268_435_455, "counter"))
        target = int(_number(rest[1], 1, MAX_BLOCKS, "branch block"))
        self.trigger_model.define(number, "counter", (count, target))

    def _block_nop(self, args: str) -> None:
        number, rest = self._block(args)
        self.trigger_model.define(number, "nop", None)

    def _initiate(self, args: str) -> None:
        if self.sweep is not None:
            self._run_sweep()
            return
        self.trigger_model.initiate()

    def _abort(self, args: str) -> None:
        self.trigger_model.abort()

    def _trigger_state(self, args: str) -> str:
        """``<state>;<state>;<block>``, e.g. ``WAITING;WAITING;2`` or ``IDLE;IDLE;9``."""
        return self.trigger_model.state_reply()

    def _bus_trigger(self, args: str) -> None:
        self.trigger_model.bus_trigger()

    def _status_preset(self, args: str) -> None:
        return None
