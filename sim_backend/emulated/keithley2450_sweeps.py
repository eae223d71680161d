"""The emulated Keithley 2450's source lists and sweeps: ``:SOUR:LIST:<f>`` and ``:SOUR:SWE:<f>:LIST|LIN|LOG``.

From the *Model 2450 Reference Manual* (2450-901-01), section 6, SOURce subsystem (and the *Model 2461
Reference Manual*, for ``:SOUR:LIST:<f>:APPend``):

- Source lists: ``:SOUR:LIST:CURR <v>, …`` / ``:SOUR:LIST:VOLT`` (1 … 100 values a command, 2500 in a list),
  ``…:APPend``, ``…?``, ``…:POINts?``.
- ``:SOUR:SWE:<f>:LIST <startIndex>[, <delay>[, <count>[, <failAbort>[, "<buffer>"]]]]``,
  ``:SOUR:SWE:<f>:LIN <start>, <stop>, <points>[, <delay>[, <count>[, <rangeType>[, <failAbort>[, <dual>[,
  "<buffer>"]]]]]]``, ``…:LIN:STEP <start>, <stop>, <step>, …`` (same tail) and ``…:LOG <start>, <stop>,
  <points>, …[, <asymptote>]``. ``<delay>``: 0, 50 µs … 10 000 s, or −1 for the auto delay;
  ``<rangeType>``: ``AUTO`` (source autorange), ``BEST`` (the fixed range that holds every level),
  ``FIXed`` (the present range, which must hold every level); ``<failAbort>``: ``ON`` stops the sweep at the
  first point where the source reaches its limit; ``<dual>``: ``ON`` sweeps back from stop to start.
- A sweep command replaces the trigger model; ``:INIT`` runs it: the output turns on, each level is sourced for
  the delay and then measured (the level flows on through the aperture), one reading a point into the buffer,
  and the output is off after the last point. A whole sweep is one vectorized pass through the bench
  (:meth:`~sim_backend.emulated.bench.Bench.source_current_steps`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim_backend.emulated.keithley2450_parameters import whole
from sim_backend.emulated.scpi_values import OutOfRange, number
from sim_backend.emulated.server import parse_bool, scpi_pattern
from sim_backend.emulated.trigger_model import MAX_READINGS_PER_RUN, TriggerModel

LIST_VALUES_PER_COMMAND = 100
MAX_LIST_POINTS = 2500
SWEEP_DELAY_MIN_S = 50e-6
DELAY_MAX_S = 10_000.0
AUTO_DELAY = -1.0  # the sweep delay that selects the auto delay
AUTO_DELAY_S = 1e-3  # what the auto delay waits in the emulation (one value for every range)
MAX_SWEEP_POINTS = 65_535
MAX_COUNT = 268_435_455
SOURCE_LIMITS = {"CURR": 1.05, "VOLT": 210.0}
RANGE_TYPES = {key: scpi_pattern(spec) for key, spec in {"AUTO": "AUTO", "BEST": "BEST", "FIX": "FIXed"}.items()}


@dataclass
class Sweep:
    """A loaded sweep: the levels of one pass, and how it runs."""

    function: str  # CURR or VOLT
    levels: np.ndarray
    delay_s: float
    count: int
    buffer: str
    fail_abort: bool = False


def sweep_delay(text: str) -> float:
    value = number(text)
    if value == AUTO_DELAY:
        return AUTO_DELAY_S
    if value != 0 and not SWEEP_DELAY_MIN_S <= value <= DELAY_MAX_S:
        raise OutOfRange(f"sweep delay {value:g} s (-1 for auto, 0, or {SWEEP_DELAY_MIN_S:g} to {DELAY_MAX_S:g})")
    return value


class SweepCommands:
    """Source lists and sweeps of the emulated 2450 (a mixin of its SCPI front)."""

    SWEEP_COMMANDS = [
        (":SOURce[1]:LIST:{word}?", "_source_list_q"),
        (":SOURce[1]:LIST:{word}", "_source_list"),
        (":SOURce[1]:LIST:{word}:APPend", "_source_list_append"),
        (":SOURce[1]:LIST:{word}:POINts?", "_source_list_points"),
        (":SOURce[1]:SWEep:{word}:LIST", "_sweep_list"),
        (":SOURce[1]:SWEep:{word}:LINear", "_sweep_linear"),
        (":SOURce[1]:SWEep:{word}:LINear:STEP", "_sweep_step"),
        (":SOURce[1]:SWEep:{word}:LOG", "_sweep_log"),
    ]

    source_lists: dict[str, list[float]]
    sweep: Sweep | None
    source_function: str
    source_ranges: dict[str, float]
    source_autorange: dict[str, bool]
    trigger_model: TriggerModel

    @property
    def source_list(self) -> list[float]:
        """The current source list."""
        return self.source_lists["CURR"]

    # -- lists ----------------------------------------------------------------------------------------------

    @staticmethod
    def _list_values(function: str, args: str) -> list[float]:
        values = [number(v) for v in args.split(",") if v.strip()]
        if not 1 <= len(values) <= LIST_VALUES_PER_COMMAND:
            raise ValueError(f"{len(values)} values: a source list command takes 1 to {LIST_VALUES_PER_COMMAND}")
        limit = SOURCE_LIMITS[function]
        for value in values:
            if abs(value) > limit:
                raise OutOfRange(f"list value {value:g} outside {-limit:g} to {limit:g}")
        return values

    def _source_list_q(self, function: str, args: str) -> str:
        return ",".join(f"{v:.9e}" for v in self.source_lists[function])

    def _source_list(self, function: str, args: str) -> None:
        self.source_lists[function] = self._list_values(function, args)

    def _source_list_append(self, function: str, args: str) -> None:
        values = self._list_values(function, args)
        if len(self.source_lists[function]) + len(values) > MAX_LIST_POINTS:
            raise OutOfRange(f"a source list holds at most {MAX_LIST_POINTS} values")
        self.source_lists[function] = self.source_lists[function] + values

    def _source_list_points(self, function: str, args: str) -> str:
        return str(len(self.source_lists[function]))

    # -- sweeps ---------------------------------------------------------------------------------------------

    # provided by the instrument: ``buffer_name(text)`` (a buffer that exists) and ``range_for(function, level)``
    # (the lowest source range that holds the level)

    def _sweep_list(self, function: str, args: str) -> None:
        """``<startIndex>[, <delay>[, <count>[, <failAbort>[, "<buffer>"]]]]``."""
        values = [a.strip() for a in args.split(",")]
        source_list = self.source_lists[function]
        if not args.strip() or not source_list:
            raise ValueError(f"sweep list: load :SOUR:LIST:{function} first, then give a start index")
        start = whole(values[0], 1, len(source_list), "sweep start index")
        delay = sweep_delay(values[1]) if len(values) > 1 else 0.0
        count = whole(values[2], 1, MAX_COUNT, "sweep count") if len(values) > 2 else 1
        fail_abort = parse_bool(values[3]) if len(values) > 3 else False
        buffer = self.buffer_name(values[4] if len(values) > 4 else "")
        self._load(Sweep(function, np.asarray(source_list[start - 1:], dtype=np.float64), delay, count, buffer,
                         fail_abort))

    def _sweep_start_stop(self, function: str, args: str, third: str) -> tuple[float, float, list[str]]:
        """``<start>, <stop>, <third>, …`` of a linear, step or log sweep: the levels and every parameter."""
        values = [a.strip() for a in args.split(",")]
        if len(values) < 3:
            raise ValueError(f"sweep: <start>, <stop>, <{third}>, …")
        return self._sweep_level(function, values[0]), self._sweep_level(function, values[1]), values

    def _sweep_linear(self, function: str, args: str) -> None:
        start, stop, values = self._sweep_start_stop(function, args, "points")
        points = whole(values[2], 2, MAX_SWEEP_POINTS, "sweep points")
        self._load_levels(function, np.linspace(start, stop, points), values[3:])

    def _sweep_step(self, function: str, args: str) -> None:
        start, stop, values = self._sweep_start_stop(function, args, "step")
        step = self._sweep_level(function, values[2])
        if step == 0 or (stop - start) * step < 0:
            raise OutOfRange(f"sweep step {step:g} does not lead from {start:g} to {stop:g}")
        points = math.floor(round((stop - start) / step, 9)) + 1
        if not 2 <= points <= MAX_SWEEP_POINTS:
            raise OutOfRange(f"a step sweep of {points} points (2 to {MAX_SWEEP_POINTS})")
        self._load_levels(function, start + step * np.arange(points), values[3:])

    def _sweep_log(self, function: str, args: str) -> None:
        start, stop, values = self._sweep_start_stop(function, args, "points")
        points = whole(values[2], 2, MAX_SWEEP_POINTS, "sweep points")
        asymptote = self._sweep_level(function, values[9]) if len(values) > 9 else 0.0
        if (start - asymptote) * (stop - asymptote) <= 0:
            raise OutOfRange("a log sweep's start and stop must lie on one side of its asymptote")
        levels = asymptote + np.geomspace(start - asymptote, stop - asymptote, points)
        self._load_levels(function, levels, values[3:9])

    @staticmethod
    def _sweep_level(function: str, text: str) -> float:
        value = number(text)
        limit = SOURCE_LIMITS[function]
        if abs(value) > limit:
            raise OutOfRange(f"sweep level {value:g} outside {-limit:g} to {limit:g}")
        return value

    def _load_levels(self, function: str, levels: np.ndarray, tail: list[str]) -> None:
        """``[<delay>[, <count>[, <rangeType>[, <failAbort>[, <dual>[, "<buffer>"]]]]]]`` after the levels."""
        delay = sweep_delay(tail[0]) if len(tail) > 0 else AUTO_DELAY_S
        count = whole(tail[1], 1, MAX_COUNT, "sweep count") if len(tail) > 1 else 1
        range_type = self._range_type(tail[2]) if len(tail) > 2 else "AUTO"
        fail_abort = parse_bool(tail[3]) if len(tail) > 3 else True
        dual = parse_bool(tail[4]) if len(tail) > 4 else False
        buffer = self.buffer_name(tail[5] if len(tail) > 5 else "")
        if dual:
            levels = np.concatenate([levels, levels[::-1]])
        peak = float(np.max(np.abs(levels)))
        if range_type == "FIX" and not self.source_autorange[function] \
                and peak > self.source_ranges[function] * 1.05:
            raise OutOfRange(f"sweep level {peak:g} beyond the fixed source range {self.source_ranges[function]:g}")
        self._load(Sweep(function, levels, delay, count, buffer, fail_abort))
        if range_type == "AUTO":
            self.source_autorange[function] = True
        else:
            self.source_autorange[function] = False
            if range_type == "BEST" or self.source_ranges[function] * 1.05 < peak:
                self.source_ranges[function] = self.range_for(function, peak)

    @staticmethod
    def _range_type(text: str) -> str:
        for key, pattern in RANGE_TYPES.items():
            if pattern.match(text.strip()):
                return key
        raise ValueError(f"sweep range type {text!r} (AUTO, BEST, FIXed)")

    def _load(self, sweep: Sweep) -> None:
        if sweep.count * sweep.levels.size > MAX_READINGS_PER_RUN:
            raise ValueError(f"a sweep of more than {MAX_READINGS_PER_RUN} readings (emulation limit)")
        self.trigger_model.clear()
        self.source_function = sweep.function
        self.sweep = sweep
