"""Emulated Keithley 2450 SourceMeter: its SCPI command set (the default "SCPI" language) on the shared bench.

Spellings, ranges, defaults and error codes from the *Model 2450 Reference Manual* (2450-901-01), section 6;
command by command, served or not and why, in ``docs/commands/keithley2450.md``. The subsystems live in
their own modules, mixed into :class:`EmulatedKeithley2450`: reading buffers (``keithley2450_buffers``), source
lists and sweeps (``keithley2450_sweeps``), the trigger commands (``keithley2450_triggering``; the model itself
runs in ``trigger_model``) and the operation/questionable status registers (``keithley2450_status``).

This module holds the source and the measurement:

- Source: current or voltage (``:SOUR:FUNC``), its level, its limit (``:SOUR:CURR:VLIM``,
  ``:SOUR:VOLT:ILIM``, and whether it tripped: ``…:TRIP?``), its range (``:SOUR:<f>:RANG``; autorange picks
  the lowest range that holds the level, a fixed range refuses a level beyond it), delays (``:SOUR:<f>:DEL``,
  ``:DEL:AUTO``, ``:DEL:USER<n>``), read-back (``:SOUR:<f>:READ:BACK``: the buffer stores the measured source
  value, or the programmed one), the output (``:OUTP``) and its off state (``:OUTP:<f>:SMOD``). The source
  drives the routed device's channel (resistance ``R_ch``); a source in compliance delivers what its limit allows.
- Measure: resistance, voltage or current (``:SENS:FUNC``), 2-wire or 4-wire (``:SENS:<f>:RSEN``), NPLC, range
  and autorange, autozero, the averaging filter (``:SENS:<f>:AVER``, ``:COUN``, ``:TCON`` repeat or moving),
  units (``:SENS:CURR:UNIT AMP|OHM|WATT``, ``:SENS:VOLT:UNIT VOLT|OHM|WATT``), offset compensation
  (``:SENS:RES:OCOM``), ``:SENS:COUN`` readings a ``:READ?``, user delays. With the sense leads on the Hall
  arms, a 4-wire resistance is the routed device's ``R_xy`` and a 4-wire voltage its Hall voltage; 2-wire,
  the channel. An open (destroyed or unrouted) device, or no current flowing, reads as the overflow value
  9.9e37. Each conversion takes NPLC / 50 Hz on the bench's virtual clock (twice that with offset
  compensation), and a repeating filter of ``N`` takes ``N`` conversions a reading.
- System: ``*LANG`` (``SCPI``; a new language is kept for the next power-on, as on the instrument), ``*SAV`` /
  ``*RCL`` (setups 0 … 4), ``:SYST:LFR?``, ``:SYST:BEEP``, ``:SYST:CLE``, ``:ROUT:TERM``, ``:FORM:DATA ASCii``,
  ``:DISP:CLE``, ``:DISP:USER<n>:TEXT``.

A header it does not know is ``-113`` in the error queue; a bad parameter ``-224``, a value out of range
``-222,"Parameter data out of range; …"``; nothing is replied for any of them. ``MIN``/``MAX``/``DEF`` are taken
as values, and ``…? MIN|MAX|DEF`` answers the limit or default.
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim_backend.emulated.keithley2450_buffers import (
    BUFFER_MEMORY,
    VALUE,
    BufferCommands,
    Reading,
    ReadingBuffer,
    nr3,
)
from sim_backend.emulated.keithley2450_parameters import params
from sim_backend.emulated.keithley2450_status import TRIGGER_MODEL_IDLED, TRIGGER_MODEL_INITIATED, StatusCommands
from sim_backend.emulated.keithley2450_sweeps import SweepCommands
from sim_backend.emulated.keithley2450_triggering import DIGITAL_LINES, TriggerCommands
from sim_backend.emulated.scpi_values import OutOfRange, keyword, numeric, queried
from sim_backend.emulated.server import SCPI_DATA_OUT_OF_RANGE, ScpiInstrument, parse_bool, scpi_pattern, unquote
from sim_backend.emulated.trigger_model import TriggerModel

__all__ = ["BUFFER_MEMORY", "OVERFLOW", "EmulatedKeithley2450", "ReadingBuffer"]  # BUFFER_MEMORY: for tests

OVERFLOW = 9.9e37  # what the 2450 returns for an overflowed (open) reading
LINE_FREQUENCY_HZ = 50.0  # one power-line cycle is 20 ms
SETUPS = range(5)  # *SAV / *RCL locations
LANGUAGES = ("SCPI", "TSP", "SCPI2400")
USER_DELAYS = range(1, 6)
SOURCE_LIMIT = {"CURR": 1.05, "VOLT": 210.0}  # largest level, A or V
VLIM_RANGE_V = (0.02, 210.0, 21.0)  # low, high, default
ILIM_RANGE_A = (1e-8, 1.05, 1.05e-4)
SOURCE_RANGES = {"CURR": (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0), "VOLT": (0.02, 0.2, 2.0, 20.0, 200.0)}
SENSE_RANGES = {**SOURCE_RANGES, "RES": (20.0, 200.0, 2e3, 2e4, 2e5, 2e6, 2e7, 2e8)}
SENSE_RANGE_DEFAULTS = {"CURR": 1e-4, "VOLT": 20.0, "RES": 2e5}
OVER_RANGE = 1.05  # a range sources (and measures) up to 105 % of its full scale
BEEP_HZ, BEEP_S = (20.0, 8000.0), (0.001, 100.0)
USER_TEXT_CHARS = {1: 20, 2: 32}

SENSE_FUNCTIONS = {"RES": "RESistance", "VOLT": "VOLTage[:DC]", "CURR": "CURRent[:DC]"}
SENSE_REPLIES = {"RES": '"RES"', "VOLT": '"VOLT:DC"', "CURR": '"CURR:DC"'}
SOURCE_FUNCTIONS = {"CURR": "CURRent[:DC]", "VOLT": "VOLTage[:DC]"}
OFF_MODES = {"HIMP": "HIMPedance", "NORM": "NORMal", "ZERO": "ZERO", "GUAR": "GUARd"}
UNITS = {"CURR": {"AMP": "AMP", "OHM": "OHM", "WATT": "WATT"}, "VOLT": {"VOLT": "VOLT", "OHM": "OHM", "WATT": "WATT"}}
UNIT_TEXT = {"AMP": "Amp DC", "VOLT": "Volt DC", "OHM": "Ohm", "WATT": "Watt DC"}
_FUNCTION_WORDS = {key: scpi_pattern(spec) for key, spec in SENSE_FUNCTIONS.items()}


def _choice(word: str, choices: dict[str, str], what: str) -> str:
    for key, spec in choices.items():
        if scpi_pattern(spec).match(unquote(word).strip()):
            return key
    raise ValueError(f"{what} {word.strip()!r} ({', '.join(choices.values())})")


@dataclass(frozen=True)
class Numeric:
    """A numeric setting: its range and ``*RST`` default; replies as an integer, ``%g`` or NR3."""

    low: float
    high: float
    default: float
    style: str = "nr3"

    def parse(self, text: str, what: str) -> float:
        value = numeric(text, self.low, self.high, self.default, what)
        if self.style == "int":
            if value != int(value):
                raise ValueError(f"{what} {value:g} is not a whole number")
            return int(value)
        return value

    def reply(self, value: float) -> str:
        return str(int(value)) if self.style == "int" else f"{value:g}" if self.style == "g" else nr3(value)


@dataclass(frozen=True)
class Switch:
    default: bool

    def parse(self, text: str, what: str) -> bool:
        return parse_bool(text)

    @staticmethod
    def reply(value: bool) -> str:
        return "1" if value else "0"


@dataclass(frozen=True)
class Choice:
    words: dict[str, str]
    default: str

    def parse(self, text: str, what: str) -> str:
        return _choice(text, self.words, what)

    @staticmethod
    def reply(value: str) -> str:
        return value


Kind = Numeric | Switch | Choice
DELAY = Numeric(0.0, 10_000.0, 0.0)


def _settings_table() -> list[tuple[list[str], str, Kind, str | None]]:
    """``(header specs, key, kind, the switch a set turns off)`` of the plain settings; ``{n}`` in a key is the
    ``<n>`` of its header."""
    table: list[tuple[list[str], str, Kind, str | None]] = []
    for f, word in SOURCE_FUNCTIONS.items():
        table += [
            ([f":SOURce[1]:{word}:DELay"], f"SOUR:{f}:DEL", DELAY, f"SOUR:{f}:DEL:AUTO"),
            ([f":SOURce[1]:{word}:DELay:AUTO"], f"SOUR:{f}:DEL:AUTO", Switch(True), None),
            ([f":SOURce[1]:{word}:DELay:USER<n>"], f"SOUR:{f}:DEL:USER{{n}}", DELAY, None),
            ([f":SOURce[1]:{word}:READ:BACK"], f"SOUR:{f}:READ:BACK", Switch(True), None),
            ([f":OUTPut[1]:{word}:SMODe"], f"OUTP:{f}:SMOD", Choice(OFF_MODES, "NORM"), None),
        ]
    for g, word in SENSE_FUNCTIONS.items():
        def sense(tail: str, word: str = word) -> list[str]:
            return [f":SENSe[1]:{word}:{tail}", f":{word}:{tail}"]  # [:SENSe[1]] is optional
        table += [
            (sense("NPLCycles"), f"SENS:{g}:NPLC", Numeric(0.01, 10.0, 1.0, "g"), None),
            (sense("RSENse"), f"SENS:{g}:RSEN", Switch(False), None),
            (sense("RANGe:AUTO"), f"SENS:{g}:RANG:AUTO", Switch(True), None),
            (sense("AZERo[:STATe]"), f"SENS:{g}:AZER", Switch(True), None),
            (sense("AVERage[:STATe]"), f"SENS:{g}:AVER", Switch(False), None),
            (sense("AVERage:COUNt"), f"SENS:{g}:AVER:COUN", Numeric(1, 100, 10, "int"), None),
            (sense("AVERage:TCONtrol"), f"SENS:{g}:AVER:TCON", Choice({"REP": "REPeat", "MOV": "MOVing"}, "REP"),
             None),
            (sense("DELay:USER<n>"), f"SENS:{g}:DEL:USER{{n}}", DELAY, None),
        ]
        if g in UNITS:
            table.append((sense("UNIT"), f"SENS:{g}:UNIT", Choice(UNITS[g], g.replace("CURR", "AMP")), None))
    table += [
        ([":SENSe[1]:COUNt"], "SENS:COUN", Numeric(1, 300_000, 1, "int"), None),
        ([":SENSe[1]:RESistance:OCOMpensated", ":RESistance:OCOMpensated"], "SENS:RES:OCOM", Switch(False), None),
        ([":ROUTe[1]:TERMinals"], "ROUT:TERM", Choice({"FRON": "FRONt", "REAR": "REAR"}, "FRON"), None),
        ([":FORMat[:DATA]"], "FORM:DATA", Choice({"ASC": "ASCii"}, "ASC"), None),
    ]
    return table


SETTINGS = _settings_table()


class EmulatedKeithley2450(BufferCommands, SweepCommands, TriggerCommands, StatusCommands, ScpiInstrument):
    idn = "KEITHLEY INSTRUMENTS,MODEL 2450,04096331,1.7.12b"
    model = "Keithley2450"
    # A LAN SCPI command takes the 2450 about a millisecond to parse and act on (an estimate: the instrument
    # answers simple queries at roughly a thousand a second over a socket); readings take their own aperture.
    command_time_s = 1e-3

    COMMANDS = [
        ("*LANG?", "_language_q"),
        ("*LANG", "_language"),
        ("*SAV", "_save"),
        ("*RCL", "_recall"),
        (":*CLS", "_cls"),  # PyMeasure's stock reset() sends "*RST;:stat:pres;:*CLS;"
        (":SOURce[1]:FUNCtion[:MODE]?", "_source_function_q"),
        (":SOURce[1]:FUNCtion[:MODE]", "_source_function"),
        (":SOURce[1]:CURRent:VLIMit[:LEVel]?", "_vlim_q"),
        (":SOURce[1]:CURRent:VLIMit[:LEVel]", "_vlim"),
        (":SOURce[1]:CURRent:VLIMit[:LEVel]:TRIPped?", "_limit_tripped"),
        (":SOURce[1]:VOLTage:ILIMit[:LEVel]?", "_ilim_q"),
        (":SOURce[1]:VOLTage:ILIMit[:LEVel]", "_ilim"),
        (":SOURce[1]:VOLTage:ILIMit[:LEVel]:TRIPped?", "_limit_tripped"),
        (":SENSe[1]:FUNCtion[:ON]?", "_sense_function_q"),
        (":SENSe[1]:FUNCtion[:ON]", "_sense_function"),
        (":SENSe[1]:AZERo:ONCE", "_autozero_once"),
        (":OUTPut[1][:STATe]?", "_output_q"),
        (":OUTPut[1][:STATe]", "_output"),
        (":READ?", "_read"),
        (":MEASure?", "_read"),
        (":SYSTem:LFRequency?", "_line_frequency"),
        (":SYSTem:BEEPer[:IMMediate]", "_beep"),
        (":SYSTem:CLEar", "_system_clear"),
        (":DISPlay:CLEar", "_display_clear"),
        (":DISPlay:USER<n>:TEXT[:DATA]", "_display_text"),
        (":STATus:PRESet", "_status_preset"),
        (":STATus:CLEar", "_status_clear"),
        *BufferCommands.BUFFER_COMMANDS,
        *TriggerCommands.TRIGGER_COMMANDS,
    ]

    def __init__(self, bench=None) -> None:
        super().__init__(bench)
        table: list[tuple[str, object]] = []
        for specs, key, kind, turns_off in SETTINGS:
            for spec in specs:
                table.append((spec + "?", functools.partial(self._setting_q, key, kind)))
                table.append((spec, functools.partial(self._setting, key, kind, turns_off)))
        for f, word in SOURCE_FUNCTIONS.items():
            table += [(f":SOURce[1]:{word}[:LEVel][:IMMediate][:AMPLitude]?", functools.partial(self._level_q, f)),
                      (f":SOURce[1]:{word}[:LEVel][:IMMediate][:AMPLitude]", functools.partial(self._level, f)),
                      (f":SOURce[1]:{word}:RANGe?", functools.partial(self._source_range_q, f)),
                      (f":SOURce[1]:{word}:RANGe", functools.partial(self._source_range, f)),
                      (f":SOURce[1]:{word}:RANGe:AUTO?", functools.partial(self._source_autorange_q, f)),
                      (f":SOURce[1]:{word}:RANGe:AUTO", functools.partial(self._source_autorange, f))]
            table += [(spec.format(word=word), functools.partial(getattr(self, name), f))
                      for spec, name in SweepCommands.SWEEP_COMMANDS]
        for g, word in SENSE_FUNCTIONS.items():
            for prefix in (":SENSe[1]", ""):
                table += [(f"{prefix}:{word}:RANGe[:UPPer]?", functools.partial(self._sense_range_q, g)),
                          (f"{prefix}:{word}:RANGe[:UPPer]", functools.partial(self._sense_range, g))]
            table.append((f":MEASure:{word}?", functools.partial(self._measure_function, g)))
        table += [(spec, functools.partial(getattr(self, name), which))
                  for spec, name, which in StatusCommands.status_commands()]
        for spec, handler in table:
            name = f"_spec_{len(self._table)}"
            setattr(self, name, handler)
            self._table.append((scpi_pattern(spec), name))
        self.power_on_language = "SCPI"
        self.setups: dict[int, dict[str, object]] = {}

    def handle(self, message: str) -> str | None:
        self.trigger_model.catch_up()  # a running loop's readings are in the buffer as time goes by
        errors_before = len(self.errors)
        reply = super().handle(message)
        self.tell_bench()
        # the 2450 words -222 "Parameter data out of range"
        for i in range(errors_before, len(self.errors)):
            code, text = self.errors[i]
            if code == SCPI_DATA_OUT_OF_RANGE and text.startswith("Data out of range"):
                self.errors[i] = (code, "Parameter data out of range" + text.removeprefix("Data out of range"))
        return reply

    SAVED = ("settings", "source_function", "levels", "vlim_v", "ilim_a", "source_ranges", "source_autorange",
             "sense_function", "sense_ranges")  # what *SAV keeps (the source and measure settings)

    def reset_state(self) -> None:
        previous = getattr(self, "trigger_model", None)
        if previous is not None:
            previous.stop()
        # the 2450's reset state: a voltage source at 0 V limited to 105 µA, measuring current
        self.settings: dict[str, object] = {}
        for _, key, kind, _ in SETTINGS:
            for n in (USER_DELAYS if "{n}" in key else [None]):
                self.settings[key.format(n=n)] = kind.default
        self.source_function = "VOLT"
        self.levels = {"CURR": 0.0, "VOLT": 0.0}
        self.vlim_v, self.ilim_a = VLIM_RANGE_V[2], ILIM_RANGE_A[2]
        self.source_autorange = {"CURR": True, "VOLT": True}
        self.source_ranges = {f: ranges[0] for f, ranges in SOURCE_RANGES.items()}
        self.sense_function = "CURR"
        self.sense_ranges = dict(SENSE_RANGE_DEFAULTS)
        self.output_on = False
        self.filter_windows: dict[str, deque[float]] = {}
        self.buffers = self.new_buffers()
        self.source_lists: dict[str, list[float]] = {"CURR": [], "VOLT": []}
        self.sweep = None
        self.line_modes = dict.fromkeys(DIGITAL_LINES, "DIG, IN")
        self.edges = dict.fromkeys(DIGITAL_LINES, "FALL")
        if not hasattr(self, "registers"):
            self.registers = self.new_registers()
        for register in self.registers.values():
            register.maps.clear()  # *RST forgets the event mapping; the enable masks stay (cleared by :STAT:PRES)
        self.trigger_model = TriggerModel(self)

    def operations_pending(self) -> bool:
        return self.trigger_model.pending

    def status_summary(self) -> int:
        return self.register_summary()

    # -- the physics: what the source drives and what the meter reads -------------------------------

    @property
    def aperture_s(self) -> float:
        """Duration of one conversion of the present measure function: NPLC / line frequency (twice that
        with offset-compensated ohms)."""
        function = self.sense_function
        twice = function == "RES" and self.settings["SENS:RES:OCOM"]
        return float(self.settings[f"SENS:{function}:NPLC"]) / LINE_FREQUENCY_HZ * (2 if twice else 1)

    def tell_bench(self) -> None:
        """Tell the bench what the output does now: on or off, the source function, its level and limit (what the
        channel carries depends on them and on the wiring: ``Bench.set_source_meter``)."""
        if self.bench is not None:
            function = self.source_function
            self.bench.set_source_meter(self.output_on, function, self.levels[function],
                                        self.vlim_v if function == "CURR" else self.ilim_a)

    def _channel_ohm(self) -> float:
        if self.bench is None:
            return math.inf
        self.tell_bench()
        return self.bench.channel_resistance()

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

    def _tripped(self, levels: np.ndarray, r_ch_ohm: np.ndarray | float) -> np.ndarray:
        """Whether the source is at its limit at each level (a current source into an open circuit is)."""
        current, voltage = self._operating_points(levels, r_ch_ohm)
        if self.source_function == "CURR":
            return np.abs(voltage) >= self.vlim_v * (1 - 1e-12)
        return np.abs(current) >= self.ilim_a * (1 - 1e-12)

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
        """Readings of the present measure function (in its unit) with the output on: the force terminals at
        ``current_a`` and ``voltage_v`` (one value, or one per reading), the routed device's ``R_xy`` at each
        reading. No current flowing (an open device), or an open ``R_xy``, reads as the overflow value."""
        rxy = np.asarray(rxy_ohm, dtype=np.float64)
        current = np.broadcast_to(np.asarray(current_a, dtype=np.float64), rxy.shape)
        voltage = np.broadcast_to(np.asarray(voltage_v, dtype=np.float64), rxy.shape)
        function = self.sense_function
        four_wire = self.settings[f"SENS:{function}:RSEN"]
        finite = np.isfinite(rxy)
        flowing = current != 0.0
        sensed = np.where(finite, current * np.where(finite, rxy, 0.0), OVERFLOW) if four_wire else voltage.copy()
        if function == "RES":
            if not four_wire:
                return np.divide(voltage, current, out=np.full(rxy.shape, OVERFLOW), where=flowing)
            return np.where(flowing & finite, rxy, OVERFLOW)
        value = current.copy() if function == "CURR" else sensed
        unit = self.settings[f"SENS:{function}:UNIT"]
        valid = sensed < OVERFLOW
        if unit == "OHM":
            return np.divide(sensed, current, out=np.full(rxy.shape, OVERFLOW), where=flowing & valid)
        if unit == "WATT":
            return np.where(valid, sensed * current, OVERFLOW)
        return value

    def source_value(self) -> float:
        return self.levels[self.source_function]

    def rxy_now(self, n: int) -> np.ndarray:
        if self.bench is None:
            return np.full(n, math.inf)
        self.tell_bench()
        return self.bench.read_rxy(n)

    def clock(self) -> float:
        return self.bench.clock_s if self.bench is not None else 0.0

    def advance(self, seconds: float) -> None:
        if self.bench is not None and seconds > 0:
            self.bench.advance(seconds)

    def store_readings(self, buffer: str, values: np.ndarray, times_s: np.ndarray,
                       sources: np.ndarray | None = None) -> list[Reading]:
        """Store readings of the present function, taken at ``times_s``, with their source values (the
        measured source value when read-back is on, else the programmed level); the readings made."""
        if sources is None:
            if self.settings[f"SOUR:{self.source_function}:READ:BACK"] and self.output_on:
                current, voltage = self._operating_point()
                sources = np.full(len(values), current if self.source_function == "CURR" else voltage)
            else:
                sources = np.full(len(values), self.source_value())
        unit = self._unit_text()
        source_unit = UNIT_TEXT["AMP" if self.source_function == "CURR" else "VOLT"]
        values, sources, times_s = (np.asarray(a, dtype=np.float64).tolist() for a in (values, sources, times_s))
        if not len(values) == len(sources) == len(times_s):
            raise ValueError("one source value and one time per reading")
        readings = list(zip(values, sources, times_s, itertools.repeat(unit), itertools.repeat(source_unit)))
        self.buffers[buffer].store_many(readings)
        return readings

    def _unit_text(self) -> str:
        function = self.sense_function
        return "Ohm" if function == "RES" else UNIT_TEXT[str(self.settings[f"SENS:{function}:UNIT"])]

    # -- the averaging filter: how many conversions a reading takes, and what it averages -------------

    def _filter(self) -> tuple[int, bool]:
        """``(N, moving)`` of the present function's filter; ``(1, False)`` when it is off."""
        function = self.sense_function
        if not self.settings[f"SENS:{function}:AVER"]:
            return 1, False
        return int(self.settings[f"SENS:{function}:AVER:COUN"]), self.settings[f"SENS:{function}:AVER:TCON"] == "MOV"

    def _window(self) -> deque[float]:
        n, _ = self._filter()
        return self.filter_windows.setdefault(self.sense_function, deque(maxlen=n))

    def conversions(self, count: int, first: bool = True) -> list[int]:
        """Conversions each of the next ``count`` readings takes: N a reading with a repeating filter; with a
        moving one, one a reading, and (``first``: these are the next readings) what fills its window first.
        (A list: the trigger model asks for every measure block it runs, millions in a long acquisition.)"""
        n, moving = self._filter()
        counts = [1 if moving else n] * count
        if moving and count and first:
            counts[0] = max(n - len(self._window()), 1)
        return counts

    def filtered_values(self, times_s: np.ndarray, rxy_at: Callable[[np.ndarray], np.ndarray],
                        convert: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None) -> np.ndarray:
        """Readings that begin at ``times_s``, through the filter: each averages its conversions (one aperture
        apart; ``rxy_at(times)`` gives the device's ``R_xy`` at each), or, moving, the window's last N.
        ``convert(rxy, reading index)`` turns conversions into values (default: at the present source level)."""
        times = np.asarray(times_s, dtype=np.float64)
        n, moving = self._filter()
        counts = np.asarray(self.conversions(times.size), dtype=np.int64)
        starts = np.cumsum(counts) - counts
        offsets = np.arange(int(counts.sum())) - np.repeat(starts, counts)
        rxy = rxy_at(np.repeat(times, counts) + self.aperture_s * offsets)
        values = self.reading_values(rxy) if convert is None else convert(rxy, np.repeat(np.arange(times.size), counts))
        if n == 1:
            return values
        stream = np.concatenate([np.array(self._window()) if moving else [], values])
        ends = np.cumsum(counts) + (len(stream) - len(values))
        over = np.concatenate([[0], np.cumsum(stream >= OVERFLOW)])
        total = np.concatenate([[0.0], np.cumsum(np.where(stream >= OVERFLOW, 0.0, stream))])
        firsts = ends - n if moving else ends - counts
        means = (total[ends] - total[firsts]) / (ends - firsts)
        if moving:
            self._window().extend(stream[-n:].tolist())
        return np.where(over[ends] > over[firsts], OVERFLOW, means)

    def take_readings(self, buffer: str, count: int) -> Reading:
        """``count`` readings now (each through the averaging filter), stored in ``buffer``; the last one
        (also when a full fill-once buffer stores no more)."""
        start = self.clock()
        durations = np.asarray(self.conversions(count), dtype=np.float64) * self.aperture_s
        times = start + np.cumsum(durations) - durations
        values = self.filtered_values(times, lambda ts: self.rxy_now(ts.size))
        self.advance(float(durations.sum()))
        readings = self.store_readings(buffer, values, times)
        function = self.sense_function
        if self.settings[f"SENS:{function}:RANG:AUTO"]:
            self.sense_ranges[function] = self._best_range(SENSE_RANGES[function], abs(readings[-1][VALUE]))
        return readings[-1]

    def reading_count(self) -> int:
        return int(self.settings["SENS:COUN"])

    def buffers_in_use(self) -> set[str]:
        used = self.trigger_model.buffers_used()
        return used | ({self.sweep.buffer} if self.sweep is not None else set())

    @staticmethod
    def _best_range(ranges: tuple[float, ...], magnitude: float) -> float:
        return next((r for r in ranges if magnitude <= r * OVER_RANGE), ranges[-1])

    def range_for(self, function: str, level: float) -> float:
        return self._best_range(SOURCE_RANGES[function], abs(level))

    # -- plain settings -------------------------------------------------------------------------------

    def _setting_key(self, key: str, groups: tuple[str, ...]) -> str:
        if "{n}" not in key:
            return key
        n = int(groups[0]) if groups and groups[0] else 1
        if n not in USER_DELAYS:
            raise OutOfRange(f"user delay {n} (1 to 5)")
        return key.format(n=n)

    def _setting_q(self, key: str, kind: Kind, args: str, *groups: str) -> str:
        key = self._setting_key(key, groups)
        value = self.settings[key]
        if isinstance(kind, Numeric):
            return kind.reply(queried(args, float(value), kind.low, kind.high, kind.default))  # type: ignore[arg-type]
        if args.strip():
            raise ValueError(f"query argument {args.strip()[:30]!r}")
        return kind.reply(value)  # type: ignore[arg-type]

    def _setting(self, key: str, kind: Kind, turns_off: str | None, args: str, *groups: str) -> None:
        key = self._setting_key(key, groups)
        if key == "FORM:DATA" and keyword(args) is None and args.strip().upper()[:2] in ("RE", "SR"):
            raise ValueError(f"format {args.strip()} (the emulation answers in ASCii only)")
        self.settings[key] = kind.parse(args, key)
        if turns_off is not None:
            self.settings[turns_off] = False
        if ":AVER" in key:
            self.filter_windows.pop(key.split(":")[1], None)

    # -- source ---------------------------------------------------------------------------------------

    def _source_function_q(self, args: str) -> str:
        return self.source_function

    def _source_function(self, args: str) -> None:
        self.source_function = _choice(args, SOURCE_FUNCTIONS, "source function")
        self.sweep = None

    def _level_q(self, function: str, args: str) -> str:
        limit = SOURCE_LIMIT[function]
        return nr3(queried(args, self.levels[function], -limit, limit, 0.0))

    def _level(self, function: str, args: str) -> None:
        limit = SOURCE_LIMIT[function]
        level = numeric(args, -limit, limit, 0.0, f"source {function.lower()} level")
        if self.source_autorange[function]:
            self.source_ranges[function] = self.range_for(function, level)
        elif abs(level) > self.source_ranges[function] * OVER_RANGE:
            raise OutOfRange(f"source level {level:g} beyond the fixed range {self.source_ranges[function]:g}")
        self.levels[function] = level

    def _source_range_q(self, function: str, args: str) -> str:
        ranges = SOURCE_RANGES[function]
        return nr3(queried(args, self.source_ranges[function], ranges[0], ranges[-1], ranges[0]))

    def _source_range(self, function: str, args: str) -> None:
        ranges, limit = SOURCE_RANGES[function], SOURCE_LIMIT[function]
        word = keyword(args)
        if word is not None:  # MIN, MAX, DEF: the lowest range, the highest, the default (the lowest)
            chosen = ranges[-1] if word == "MAX" else ranges[0]
        else:
            chosen = self.range_for(function, numeric(args, -limit, limit, None, "source range"))
        if abs(self.levels[function]) > chosen * OVER_RANGE:
            raise OutOfRange(f"source range {chosen:g} cannot source the present level {self.levels[function]:g}")
        self.source_ranges[function] = chosen
        self.source_autorange[function] = False

    def _source_autorange_q(self, function: str, args: str) -> str:
        return "1" if self.source_autorange[function] else "0"

    def _source_autorange(self, function: str, args: str) -> None:
        self.source_autorange[function] = parse_bool(args)
        if self.source_autorange[function]:
            self.source_ranges[function] = self.range_for(function, self.levels[function])

    def _vlim_q(self, args: str) -> str:
        return nr3(queried(args, self.vlim_v, *VLIM_RANGE_V))

    def _vlim(self, args: str) -> None:
        self.vlim_v = numeric(args, *VLIM_RANGE_V, "voltage limit")

    def _ilim_q(self, args: str) -> str:
        return nr3(queried(args, self.ilim_a, *ILIM_RANGE_A))

    def _ilim(self, args: str) -> None:
        self.ilim_a = numeric(args, *ILIM_RANGE_A, "current limit")

    def _limit_tripped(self, args: str) -> str:
        """Whether the source is in its limit now (the output on)."""
        if not self.output_on:
            return "0"
        return "1" if bool(self._tripped(np.float64(self.source_value()), self._channel_ohm())) else "0"

    def _output_q(self, args: str) -> str:
        return "1" if self.output_on else "0"

    def _output(self, args: str) -> None:
        self.output_on = parse_bool(args)

    # -- measure --------------------------------------------------------------------------------------

    def _sense_function_q(self, args: str) -> str:
        return SENSE_REPLIES[self.sense_function]

    def _sense_function(self, args: str) -> None:
        self.sense_function = _choice(args, SENSE_FUNCTIONS, "measure function")

    def _sense_range_q(self, function: str, args: str) -> str:
        ranges = SENSE_RANGES[function]
        return nr3(queried(args, self.sense_ranges[function], ranges[0], ranges[-1], SENSE_RANGE_DEFAULTS[function]))

    def _sense_range(self, function: str, args: str) -> None:
        ranges = SENSE_RANGES[function]
        value = numeric(args, ranges[0], ranges[-1], SENSE_RANGE_DEFAULTS[function], "measure range")
        self.sense_ranges[function] = self._best_range(ranges, value)
        self.settings[f"SENS:{function}:RANG:AUTO"] = False

    def _autozero_once(self, args: str) -> None:
        self.advance(self.aperture_s)  # one reference conversion

    def _read(self, args: str) -> str:
        """``:READ?`` / ``:MEAS?`` ``["<buffer>"[, <elements>]]``: ``:SENS:COUN`` readings, the last returned."""
        values = params(args)
        name = self.buffer_name(values[0] if values else "")
        elements = self.elements(values[1:])
        last = self.take_readings(name, self.reading_count())
        return self.format_readings(self.buffers[name], [last], elements)

    def _measure_function(self, function: str, args: str) -> str:
        self.sense_function = function
        return self._read(args)

    # -- source sweeps: running ------------------------------------------------------------------------

    def run_sweep(self) -> None:
        """Run the loaded sweep: output on, every step of every pass, output off; one vectorized call into the chip.

        Each step drives its level (capped by the limit) through the routed device for the sweep's delay; the
        reading is taken at the end of the delay (through the averaging filter, when it is on), and the level
        stays on through the reading's conversions. A step that begins with the device open (destroyed, or
        nothing routed) drives no current; a reading of an open device is the overflow value. With fail-abort
        on, the sweep stops after the first step in its limit. The buffer is cleared first.
        """
        sweep = self.sweep
        self.signal_event(TRIGGER_MODEL_INITIATED)
        self.buffers[sweep.buffer].clear()  # the sweep's trigger model starts with a buffer-clear block
        levels = np.tile(sweep.levels, sweep.count)
        r_ch = self._channel_ohm()
        if sweep.fail_abort:
            tripped = np.flatnonzero(self._tripped(levels, r_ch))
            if tripped.size:
                levels = levels[:tripped[0] + 1]
        self.output_on = True
        reading_s = self.conversions(1, first=False)[0] * self.aperture_s
        currents, _ = self._operating_points(levels, r_ch)
        if self.bench is None:
            rxy, times = np.full(levels.shape, math.inf), np.zeros(levels.shape)
            rxy_at = functools.partial(np.full_like, fill_value=math.inf)
        else:
            # the bench drives no current from the step after the one in which the device breaks down
            record = self.bench.source_current_steps(currents, (sweep.delay_s, reading_s))
            delays = 2 * np.arange(levels.size)  # each step's first segment: the delay
            rxy, times, rxy_at = record.rxy_after(delays), record.ends_s[delays], record.rxy_at
        # at each reading, a device open by then (destroyed during the sweep) carries no current
        current, voltage = self._operating_points(levels, np.where(np.isinf(rxy), math.inf, r_ch))
        values = self.filtered_values(times, rxy_at, lambda rxy_c, step: self._readings(rxy_c, current[step],
                                                                                         voltage[step]))
        read_back = self.settings[f"SOUR:{sweep.function}:READ:BACK"]
        sources = (current if sweep.function == "CURR" else voltage) if read_back else levels
        self.store_readings(sweep.buffer, values, times, sources)
        self.levels[sweep.function] = float(levels[-1])
        self.output_on = False
        self.signal_event(TRIGGER_MODEL_IDLED)

    # -- system -----------------------------------------------------------------------------------------

    def _language_q(self, args: str) -> str:
        return "SCPI"  # the command set in use; one set with *LANG takes effect at the next power-on

    def _language(self, args: str) -> None:
        language = unquote(args).strip().upper()
        if language not in LANGUAGES:
            raise ValueError(f"command set {args.strip()!r} ({', '.join(LANGUAGES)})")
        self.power_on_language = language

    def _setup(self, args: str) -> int:
        return int(numeric(args, SETUPS.start, SETUPS.stop - 1, None, "setup"))

    def _save(self, args: str) -> None:
        self.setups[self._setup(args)] = {name: copy.deepcopy(getattr(self, name)) for name in self.SAVED}

    def _recall(self, args: str) -> None:
        setup = self._setup(args)
        if setup not in self.setups:
            raise ValueError(f"no setup saved at {setup}")
        for name, value in self.setups[setup].items():
            setattr(self, name, copy.deepcopy(value))
        self.filter_windows = {}

    def _cls(self, args: str) -> None:
        super()._cls(args)
        self._status_clear(args)

    def _line_frequency(self, args: str) -> str:
        return f"{LINE_FREQUENCY_HZ:g}"

    def _beep(self, args: str) -> None:
        values = params(args)
        if len(values) != 2:
            raise ValueError("beep: <frequency>, <duration>")
        numeric(values[0], *BEEP_HZ, None, "beep frequency")
        numeric(values[1], *BEEP_S, None, "beep duration")  # the instrument beeps on while it goes on

    def _system_clear(self, args: str) -> None:
        self.clear_errors()  # the event log, which holds the error queue

    def _display_clear(self, args: str) -> None:
        return None

    def _display_text(self, args: str, line: str) -> None:
        n = int(line or 1)
        if n not in USER_TEXT_CHARS:
            raise OutOfRange(f"user text line {n} (1 or 2)")
        if len(unquote(args)) > USER_TEXT_CHARS[n]:
            raise OutOfRange(f"user text of {len(unquote(args))} characters (line {n} shows {USER_TEXT_CHARS[n]})")
