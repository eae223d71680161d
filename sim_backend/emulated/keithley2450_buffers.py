"""The emulated Keithley 2450's reading buffers: what a buffer holds, and the ``:TRACe`` / ``:FETCh?`` commands.

Spellings and semantics from the *Model 2450 Reference Manual* (2450-901-01), section 6, TRACe subsystem:

- ``defbuffer1`` and ``defbuffer2`` always exist (100 000 readings each); ``:TRAC:MAKE "<name>", <size>``
  makes more. All buffers share one memory (:data:`BUFFER_MEMORY` readings): a buffer made or resized beyond
  it is refused (``-222``). A buffer holds at least :data:`MIN_BUFFER_SIZE` readings.
- The default buffers are continuous (the oldest reading is overwritten when full); a made buffer stops
  storing when full. A bounded ``deque`` holds them, so overwriting is O(1) per reading.
- ``:TRAC:DATA? <start>, <end>[, "<buffer>"[, <elements>…]]``, ``:FETC? ["<buffer>"[, <elements>…]]``
  (the latest reading), ``:TRAC:ACT?``, ``:TRAC:ACT:STAR?`` / ``:END?``, ``:TRAC:CLE``, ``:TRAC:POIN[?]``,
  ``:TRAC:TRIG`` (``:SENS:COUN`` readings now), ``:TRAC:DEL``.
- Elements: ``READing``, ``SOURce``, ``RELative`` (s since the buffer's first reading), ``SEConds`` /
  ``FRACtional`` (the reading's time: whole seconds since 1970 and the fraction), ``TSTamp``, ``DATE``,
  ``TIME``, ``UNIT`` and ``SOURUNIT`` (the unit words the 2450 shows, e.g. ``Amp DC``).
- Statistics of the readings a buffer holds: ``:TRAC:STAT:AVER?``, ``:MAX?``, ``:MIN?``, ``:PK2P?``, ``:STDD?``
  (sample standard deviation); an empty buffer answers the SCPI not-a-number value ``9.91E+37``.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from sim_backend.emulated.keithley2450_parameters import params
from sim_backend.emulated.scpi_values import OutOfRange, number, numeric
from sim_backend.emulated.server import scpi_pattern, unquote

DEFAULT_BUFFERS = ("defbuffer1", "defbuffer2")
DEFAULT_BUFFER_SIZE = 100_000
MIN_BUFFER_SIZE = 10
BUFFER_MEMORY = 6_875_000  # readings that all reading buffers together may hold (one standard buffer's maximum)
NOT_A_NUMBER = 9.91e37  # SCPI's NaN: a statistic of no readings

ELEMENTS = {key: scpi_pattern(spec) for key, spec in {
    "READ": "READing", "SOUR": "SOURce", "REL": "RELative", "SEC": "SEConds", "FRAC": "FRACtional",
    "TST": "TSTamp", "DATE": "DATE", "TIME": "TIME", "UNIT": "UNIT", "SOURUNIT": "SOURUNIT"}.items()}
UNSERVED_ELEMENTS = ("FORMatted", "SOURFORMatted", "STATus", "SOURSTATus")  # see docs/commands/keithley2450.md


def nr3(value: float) -> str:
    return f"{value:.9e}"


# One stored reading: (value, source value, time on the bench's virtual clock in s, unit, source unit). A plain
# tuple, indexed with these: a long acquisition makes millions (a tuple class's constructor would cost several
# times more), and a full 6.875-million-reading memory stays about a gigabyte.
Reading = tuple[float, float, float, str, str]
VALUE, SOURCE, TIME, UNIT, SOURCE_UNIT = range(5)


@dataclass
class ReadingBuffer:
    """A reading buffer: its readings, oldest first; a continuous one overwrites its oldest when full."""

    capacity: int
    continuous: bool
    readings: deque[Reading] = field(default_factory=deque)
    stored: int = 0  # readings stored since the buffer was made, cleared or resized
    statistics_from: int = 0  # ``stored`` when the statistics were last cleared

    def __post_init__(self) -> None:
        self.readings = deque(self.readings, maxlen=self.capacity if self.continuous else None)

    def store(self, reading: Reading) -> None:
        self.store_many([reading])

    def store_many(self, readings: list[Reading]) -> None:
        if not self.continuous:
            readings = readings[:max(self.capacity - len(self.readings), 0)]
        self.readings.extend(readings)
        self.stored += len(readings)

    def resize(self, capacity: int) -> None:
        """Change the capacity; the readings are lost (as on the instrument)."""
        self.capacity = capacity
        self.readings = deque(maxlen=capacity if self.continuous else None)
        self.stored = self.statistics_from = 0

    def clear(self) -> None:
        self.readings.clear()
        self.stored = self.statistics_from = 0

    def slice(self, start: int, end: int) -> list[Reading]:
        """Readings ``start`` … ``end`` (1-based, inclusive)."""
        return list(itertools.islice(self.readings, start - 1, end))

    def statistics_values(self) -> np.ndarray:
        """The readings the statistics cover: those stored since the statistics were cleared."""
        n = min(len(self.readings), self.stored - self.statistics_from)
        recent = itertools.islice(self.readings, len(self.readings) - n, None)
        return np.fromiter((r[VALUE] for r in recent), dtype=np.float64, count=n)


class BufferCommands:
    """The TRACe subsystem and ``:FETCh?`` of the emulated 2450 (a mixin of its SCPI front)."""

    BUFFER_COMMANDS = [
        (":TRACe:CLEar", "_trace_clear"),
        (":TRACe:ACTual?", "_trace_actual"),
        (":TRACe:ACTual:STARt?", "_trace_actual_start"),
        (":TRACe:ACTual:END?", "_trace_actual_end"),
        (":TRACe:DATA?", "_trace_data"),
        (":TRACe:POINts?", "_trace_points_q"),
        (":TRACe:POINts", "_trace_points"),
        (":TRACe:MAKE", "_trace_make"),
        (":TRACe:DELete", "_trace_delete"),
        (":TRACe:TRIGger", "_trace_trigger"),
        (":TRACe:STATistics:AVERage?", "_stat_average"),
        (":TRACe:STATistics:MAXimum?", "_stat_maximum"),
        (":TRACe:STATistics:MINimum?", "_stat_minimum"),
        (":TRACe:STATistics:PK2Pk?", "_stat_peak_to_peak"),
        (":TRACe:STATistics:STDDev?", "_stat_stddev"),
        (":TRACe:STATistics:CLEar", "_stat_clear"),
        (":FETCh?", "_fetch"),
    ]

    buffers: dict[str, ReadingBuffer]
    clock_epoch_s: float  # wall-clock time (s since 1970) at which the bench's virtual clock read 0

    def new_buffers(self) -> dict[str, ReadingBuffer]:
        """The default buffers, empty (power-on, ``*RST``); the clock's epoch is set once, at power-on."""
        if not hasattr(self, "clock_epoch_s"):
            self.clock_epoch_s = time.time()
        return {name: ReadingBuffer(DEFAULT_BUFFER_SIZE, continuous=True) for name in DEFAULT_BUFFERS}

    def buffer_name(self, text: str) -> str:
        name = unquote(text) if text else DEFAULT_BUFFERS[0]
        if name not in self.buffers:
            raise ValueError(f"no reading buffer named {name!r}")
        return name

    def buffers_in_use(self) -> set[str]:
        """Buffers the trigger model or the sweep write to (the instrument refuses to delete them)."""
        raise NotImplementedError

    def take_readings(self, buffer: str, count: int) -> Reading:
        """Make ``count`` readings of the present function now and store them in ``buffer``; the last one."""
        raise NotImplementedError

    # -- formatting -------------------------------------------------------------------------------------

    @staticmethod
    def elements(words: list[str]) -> list[str]:
        keys = []
        for word in words:
            key = next((k for k, pattern in ELEMENTS.items() if pattern.match(word.strip())), None)
            if key is None:
                raise ValueError(f"buffer element {word.strip()!r} (emulated: {', '.join(ELEMENTS)})")
            keys.append(key)
        return keys or ["READ"]

    def format_readings(self, buffer: ReadingBuffer, readings: list[Reading], elements: list[str]) -> str:
        if elements == ["READ"]:  # the common case, kept quick: a triggered acquisition fetches thousands
            return ",".join([nr3(reading[VALUE]) for reading in readings])
        first_time = buffer.readings[0][TIME] if buffer.readings else 0.0
        out = []
        for reading in readings:
            seconds = self.clock_epoch_s + reading[TIME]
            stamp = datetime.fromtimestamp(seconds, tz=UTC)
            for element in elements:
                out.append(self._element(element, reading, first_time, stamp, seconds))
        return ",".join(out)

    @staticmethod
    def _element(element: str, reading: Reading, first_time: float, stamp: datetime, seconds: float) -> str:
        if element == "READ":
            return nr3(reading[VALUE])
        if element == "SOUR":
            return nr3(reading[SOURCE])
        if element == "REL":
            return nr3(reading[TIME] - first_time)
        if element == "SEC":
            return str(int(seconds))
        if element == "FRAC":
            return f"{seconds - int(seconds):.9f}"
        if element == "UNIT":
            return reading[UNIT]
        if element == "SOURUNIT":
            return reading[SOURCE_UNIT]
        day, clock = stamp.strftime("%m/%d/%Y"), stamp.strftime("%H:%M:%S") + f"{seconds - int(seconds):.9f}"[1:]
        return {"TST": f"{day} {clock}", "DATE": day, "TIME": clock}[element]

    # -- commands -----------------------------------------------------------------------------------------

    def _trace_clear(self, args: str) -> None:
        self.buffers[self.buffer_name(args)].clear()

    def _trace_actual(self, args: str) -> str:
        return str(len(self.buffers[self.buffer_name(args)].readings))

    def _trace_actual_start(self, args: str) -> str:
        return "1" if self.buffers[self.buffer_name(args)].readings else "0"

    def _trace_actual_end(self, args: str) -> str:
        return self._trace_actual(args)

    def _trace_points_q(self, args: str) -> str:
        return str(self.buffers[self.buffer_name(args)].capacity)

    def _trace_points(self, args: str) -> None:
        values = params(args)
        if not values:
            raise ValueError(":TRAC:POIN needs a size")
        name = self.buffer_name(values[1] if len(values) > 1 else "")
        size = self._size(values[0])
        self._check_memory(size, resized=name)
        self.buffers[name].resize(size)

    @staticmethod
    def _size(text: str) -> int:
        return int(numeric(text, MIN_BUFFER_SIZE, BUFFER_MEMORY, DEFAULT_BUFFER_SIZE, "buffer size"))

    def _trace_make(self, args: str) -> None:
        values = params(args)
        if len(values) < 2:
            raise ValueError(':TRAC:MAKE needs "<name>", <size>')
        name = unquote(values[0])
        if not name or name in self.buffers:
            raise ValueError(f"cannot make a reading buffer named {name!r}")
        if len(values) > 2 and unquote(values[2]).upper() not in ("", "STAN", "STANDARD"):
            raise ValueError(f"buffer style {values[2]} (emulated: STANdard)")
        size = self._size(values[1])
        self._check_memory(size)
        self.buffers[name] = ReadingBuffer(size, continuous=False)

    def _check_memory(self, size: int, resized: str | None = None) -> None:
        """Refuse a buffer of ``size`` readings (new, or replacing ``resized``'s) beyond the shared memory."""
        used = sum(buffer.capacity for name, buffer in self.buffers.items() if name != resized)
        if used + size > BUFFER_MEMORY:
            raise OutOfRange(f"buffer size {size}: the reading buffers hold {used} of {BUFFER_MEMORY} readings already")

    def _trace_delete(self, args: str) -> None:
        name = self.buffer_name(args)
        if name in DEFAULT_BUFFERS:
            raise ValueError(f"{name} cannot be deleted")
        if name in self.buffers_in_use():
            raise ValueError(f"{name} is used by the trigger model; load another model first")
        del self.buffers[name]

    def _trace_trigger(self, args: str) -> None:
        self.take_readings(self.buffer_name(args), self.reading_count())

    def reading_count(self) -> int:
        raise NotImplementedError

    def _trace_data(self, args: str) -> str:
        values = params(args)
        if len(values) < 2:
            raise ValueError(":TRAC:DATA? needs a start and an end index")
        start, end = int(number(values[0])), int(number(values[1]))
        buffer = self.buffers[self.buffer_name(values[2] if len(values) > 2 else "")]
        elements = self.elements(values[3:])
        if not 1 <= start <= end <= len(buffer.readings):
            raise OutOfRange(f"buffer index {start} to {end}, the buffer holds {len(buffer.readings)}")
        return self.format_readings(buffer, buffer.slice(start, end), elements)

    def _fetch(self, args: str) -> str:
        values = params(args)
        buffer = self.buffers[self.buffer_name(values[0] if values else "")]
        if not buffer.readings:
            raise OutOfRange("the buffer holds no reading")
        return self.format_readings(buffer, [buffer.readings[-1]], self.elements(values[1:]))

    def _statistic(self, args: str, of: str) -> str:
        values = self.buffers[self.buffer_name(args)].statistics_values()
        values = values[values < 9.9e37]  # overflowed readings are left out of the statistics
        if values.size == 0 or (of == "STDD" and values.size < 2):
            return nr3(NOT_A_NUMBER)
        result = {"AVER": np.mean, "MAX": np.max, "MIN": np.min, "PK2P": np.ptp,
                  "STDD": lambda v: np.std(v, ddof=1)}[of](values)
        return nr3(float(result))

    def _stat_average(self, args: str) -> str:
        return self._statistic(args, "AVER")

    def _stat_maximum(self, args: str) -> str:
        return self._statistic(args, "MAX")

    def _stat_minimum(self, args: str) -> str:
        return self._statistic(args, "MIN")

    def _stat_peak_to_peak(self, args: str) -> str:
        return self._statistic(args, "PK2P")

    def _stat_stddev(self, args: str) -> str:
        return self._statistic(args, "STDD")

    def _stat_clear(self, args: str) -> None:
        buffer = self.buffers[self.buffer_name(args)]
        buffer.statistics_from = buffer.stored
