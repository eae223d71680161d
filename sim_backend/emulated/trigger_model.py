"""The emulated Keithley 2450's trigger model: its blocks, and the interpreter that runs them.

The 2450's SCPI front (:mod:`sim_backend.emulated.keithley2450_emulator`) parses ``:TRIG:LOAD "Empty"`` and the
``:TRIG:BLOC:...`` commands and defines the blocks here; :class:`TriggerModel` holds them and runs them:

- ``:INIT`` (:meth:`TriggerModel.initiate`) starts at block 1 and runs block after block until the model
  waits or runs past its last block;
- a wait block on ``DIGio1`` listens on the bench's trigger line (the pulse generator fires it at the start
  of every waveform): the model runs on from the wait at that waveform's start time and takes its readings
  at their own times within it (:meth:`TriggerModel.on_trigger`); a wait on ``COMMand`` continues on
  ``*TRG`` (:meth:`TriggerModel.bus_trigger`);
- the readings of one run are taken in one vectorized draw and stored, with the buffer clears, in block
  order (:meth:`TriggerModel.apply`).

One run (from ``:INIT`` or a trigger to the next wait or the end) is bounded, so that a model looping
through its counters can neither stall the emulator nor fill its memory: more than
:data:`MAX_READINGS_PER_RUN` readings and buffer clears, or more than :data:`MAX_STEPS_PER_RUN` blocks,
stop the model there with ``-200`` in the error queue (the readings taken before the limit are kept).

Blocks are ``(kind, value)`` pairs: ``("clear", buffer)``, ``("wait", "DIG1" | "COMM")``, ``("delay", s)``,
``("measure", (buffer, count))``, ``("counter", (count, target block))``, ``("elapsed", (duration s, target
block))`` (branch to the target while less than the duration has passed since the model started: the
``DurationLoop`` template's loop), ``("loop", (event, position %, delay s, buffer))`` (readings one after
another until the event — ``COMM`` or ``DIG<n>`` — then as many more as fill the rest of the buffer beyond
``position`` %: the ``LoopUntilEvent`` template), ``("nop", None)`` (also a notify block: the digital output it pulses
reaches nothing on the bench).

The built-in templates (:meth:`TriggerModel.load_template`): ``SimpleLoop`` (delay, measure, counter back to
the delay), ``DurationLoop`` (delay, measure, loop while the duration lasts), ``LogicTrigger`` (wait for a
digital input line, delay, measure, notify, counter back to the wait), ``LoopUntilEvent`` (buffer clear, the
loop block).

While a model runs or waits, :attr:`TriggerModel.pending` is true (``*OPC`` completes and ``*OPC?`` answers
when it ends); its start and end are signalled to the meter's status registers as the 2450's events
``2731`` (trigger model initiated) and ``2732`` (trigger model idled).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from itertools import groupby
from typing import TYPE_CHECKING, Protocol

import numpy as np

from sim_backend.emulated.keithley2450_status import TRIGGER_MODEL_IDLED, TRIGGER_MODEL_INITIATED

if TYPE_CHECKING:
    from collections.abc import Callable

    from sim_backend.emulated.bench import Bench, WaveformRecord
    from sim_backend.emulated.keithley2450_buffers import ReadingBuffer

TRIGGER_IN_LINE = 1  # the rear digital I/O line that the bench's trigger line (pulse generator marker) reaches
MAX_READINGS_PER_RUN = 1_000_000  # an emulation limit: a longer run of the model fails instead of stalling
MAX_STEPS_PER_RUN = 10_000_000  # another: blocks executed in one run (a loop of delays takes no readings)
SCPI_EXECUTION_ERROR = -200  # queued when a model run exceeds an emulation limit
HISTORY_KEPT = 10_000  # waveforms a loop-until-event block remembers, to read the device's state in the past

Block = tuple[str, object]


@dataclass
class EventLoop:
    """A running loop-until-event block: a reading every ``delay + aperture`` from ``start_s`` until the event.

    Its readings are stored as time goes by (:meth:`TriggerModel.catch_up`), only the newest a buffer can hold;
    the waveforms played meanwhile are remembered, so each reading takes the state the device had then.
    """

    event: str
    position: float  # % of the buffer that holds readings from before the event
    delay_s: float
    buffer: str
    start_s: float
    taken: int = 0  # readings stored so far
    history: deque[WaveformRecord] = field(default_factory=lambda: deque(maxlen=HISTORY_KEPT))


class Meter(Protocol):
    """What the trigger model uses of the source meter that owns it."""

    bench: Bench | None
    buffers: dict[str, ReadingBuffer]
    line_modes: dict[int, str]

    @property
    def aperture_s(self) -> float: ...

    def push_error(self, code: int, message: str) -> None: ...

    def clock(self) -> float: ...

    def advance(self, seconds: float) -> None: ...

    def rxy_now(self, n: int) -> np.ndarray: ...

    def conversions(self, count: int, first: bool = True) -> list[int]: ...

    def filtered_values(self, times_s: np.ndarray, rxy_at: Callable[[np.ndarray], np.ndarray]) -> np.ndarray: ...

    def store_readings(self, buffer: str, values: np.ndarray, times_s: np.ndarray) -> None: ...

    def signal_event(self, event_number: int) -> None: ...


class TriggerModel:
    """The blocks of a 2450's trigger model and its state (``IDLE``, ``RUNNING``, ``WAITING``, ``ABORTED``)."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.blocks: dict[int, Block] = {}
        self.state = "IDLE"
        self.listening = False
        self.pc = 0  # the block the model is at (0: not running)
        self.last_block = 0
        self.counters: dict[int, int] = {}
        self.started_s = 0.0  # when the present run of the model started (virtual clock)
        self.loop: EventLoop | None = None  # the loop-until-event block running now

    @property
    def pending(self) -> bool:
        """Whether the model is running or waiting (an overlapped operation for ``*OPC``)."""
        return self.listening

    # -- loading ----------------------------------------------------------------------------------

    def define(self, number: int, kind: str, value: object) -> None:
        """Define (or replace) block ``number``."""
        self.blocks[number] = (kind, value)

    def clear(self) -> None:
        """Stop the model and forget its blocks."""
        self.stop()
        self.blocks = {}

    def load_empty(self) -> None:
        """``:TRIG:LOAD "Empty"``: no blocks, idle."""
        self.clear()
        self.state = "IDLE"

    def load_template(self, blocks: list[Block]) -> None:
        """A built-in template: its blocks, numbered from 1."""
        self.clear()
        self.state = "IDLE"
        for number, block in enumerate(blocks, start=1):
            self.define(number, *block)

    def buffers_used(self) -> set[str]:
        """The reading buffers the blocks clear or measure into."""
        used = {value for kind, value in self.blocks.values() if kind == "clear"}
        used |= {value[3] for kind, value in self.blocks.values() if kind == "loop"}  # type: ignore[index]
        return used | {value[0] for kind, value in self.blocks.values() if kind == "measure"}  # type: ignore[index]

    # -- running ----------------------------------------------------------------------------------

    def initiate(self) -> None:
        """``:INIT``: run from block 1 (a ValueError when no model is loaded)."""
        if 1 not in self.blocks:
            raise ValueError("no trigger model loaded (block 1 undefined)")
        self.stop()
        self.pc, self.counters = 1, {}
        self.state = "RUNNING"
        self.started_s = self.meter.clock()
        self.meter.signal_event(TRIGGER_MODEL_INITIATED)
        self.run(None, triggered=False)

    def abort(self) -> None:
        """``:ABOR``: a waiting model is aborted."""
        was_waiting = self.listening
        self.catch_up()  # a loop keeps the readings it took until the abort
        self.stop()
        if was_waiting:
            self.state = "ABORTED"
            self.meter.signal_event(TRIGGER_MODEL_IDLED)

    def stop(self) -> None:
        """Stop listening for triggers and leave the blocks."""
        bench = self.meter.bench
        if self.listening and bench is not None:
            bench.remove_trigger_listener(self.on_trigger)
        self.listening = False
        self.loop = None
        self.pc = 0

    def state_reply(self) -> str:
        """``:TRIG:STAT?``: ``<state>;<state>;<block>``, e.g. ``WAITING;WAITING;2`` or ``IDLE;IDLE;9``."""
        return f"{self.state};{self.state};{self.last_block}"

    def _waits_for(self, event: str) -> bool:
        return self.listening and (self.blocks.get(self.pc) == ("wait", event)
                                   or (self.loop is not None and self.loop.event == event))

    def bus_trigger(self) -> None:
        """``*TRG``: continue a model waiting on the command event."""
        if self._waits_for("COMM"):
            self.run(None, triggered=True)

    def on_trigger(self, record: WaveformRecord) -> None:
        """An edge on the bench's trigger line: continue a model waiting on that digital line."""
        if self.meter.line_modes[TRIGGER_IN_LINE] == "TRIG, IN" and self._waits_for(f"DIG{TRIGGER_IN_LINE}"):
            self.run(record, triggered=True)
        elif self.loop is not None:
            self.loop.history.append(record)

    def run(self, record: WaveformRecord | None, triggered: bool) -> None:
        """Run the model from the current block until it waits or ends.

        With a waveform record, time starts at the waveform's start (the trigger edge) and readings take
        the device's state at their own times; without, time starts now and the state is the present one.
        ``triggered``: the event the present wait block waits for has happened.
        """
        meter = self.meter
        aperture_s = meter.aperture_s  # settings cannot change while the model runs
        if self.listening and meter.bench is not None:
            meter.bench.remove_trigger_listener(self.on_trigger)
        self.listening = False
        t0 = record.start_s if record is not None else meter.clock()
        t = t0
        ops: list[tuple[str, str, float]] = []  # ("clear", buffer, 0) / ("read", buffer, time)
        reads_end: float | None = None  # when the last reading of this run ends
        steps = 0
        while self.pc in self.blocks:
            kind, value = self.blocks[self.pc]
            steps += 1
            if steps > MAX_STEPS_PER_RUN:
                self._fail(f"more than {MAX_STEPS_PER_RUN} blocks")
                break
            self.last_block = self.pc
            if kind == "wait":
                if not triggered:
                    self.listen()
                    break
                triggered = False
                self.pc += 1
            elif kind == "clear":
                if len(ops) >= MAX_READINGS_PER_RUN:
                    self._fail(f"more than {MAX_READINGS_PER_RUN} readings and buffer clears")
                    break
                ops.append(("clear", value, 0.0))  # type: ignore[arg-type]
                self.pc += 1
            elif kind == "delay":
                t += value  # type: ignore[operator]
                self.pc += 1
            elif kind == "measure":
                buffer, count = value  # type: ignore[misc]
                if len(ops) + count > MAX_READINGS_PER_RUN:
                    self._fail(f"more than {MAX_READINGS_PER_RUN} readings")
                    break
                # each reading takes its conversions (the averaging filter's), one aperture each
                for conversions in meter.conversions(count, first=reads_end is None):
                    ops.append(("read", buffer, t))
                    t += conversions * aperture_s
                reads_end = t
                self.pc += 1
            elif kind == "counter":
                count, target = value  # type: ignore[misc]
                self.counters[self.pc] = self.counters.get(self.pc, 0) + 1
                if self.counters[self.pc] < count:
                    self.pc = target
                else:
                    self.counters[self.pc] = 0  # falls through: counts again on the next pass
                    self.pc += 1
            elif kind == "elapsed":
                duration, target = value  # type: ignore[misc]
                self.pc = target if t - self.started_s < duration else self.pc + 1
            elif kind == "loop":
                if not triggered:
                    event, position, delay, buffer = value  # type: ignore[misc]
                    self.loop = EventLoop(event, position, delay, buffer, start_s=t)
                    self.listen()
                    break
                triggered = False
                t = self._end_loop(t, record)
                self.pc += 1
                self.last_block = self.pc
            else:
                self.pc += 1
        self.apply(ops, record)
        # the clock runs to the end of the last reading (a waveform has already advanced it by its length)
        if reads_end is not None:
            meter.advance(reads_end - (meter.clock() if record is not None else t0))
        if not self.listening:
            self.pc = 0
            self.state = "IDLE"
            self.meter.signal_event(TRIGGER_MODEL_IDLED)

    def _fail(self, what: str) -> None:
        """Stop a run at an emulation limit, with an execution error in the queue."""
        self.meter.push_error(SCPI_EXECUTION_ERROR, f"Execution error; {what} in one run (emulation limit)")
        self.pc = 0

    def listen(self) -> None:
        """Wait at the present wait block (on the bench's trigger line when it waits for digital line 1), or
        loop at a loop-until-event block (listening to the trigger line for the waveforms played meanwhile)."""
        self.state = "RUNNING" if self.loop is not None else "WAITING"
        bench = self.meter.bench
        if bench is not None and (self.loop is not None
                                  or self.blocks[self.pc] == ("wait", f"DIG{TRIGGER_IN_LINE}")):
            bench.add_trigger_listener(self.on_trigger)
        self.listening = True

    # -- the loop-until-event block ----------------------------------------------------------------

    def catch_up(self) -> None:
        """Store the readings a running loop has taken by now (the instrument shows them as they come)."""
        loop = self.loop
        if loop is not None and self.listening:
            self._store_loop_readings(self._loop_readings_by(self.meter.clock()), [], None)

    def _loop_period(self) -> float:
        assert self.loop is not None
        return self.loop.delay_s + self.meter.conversions(1, first=False)[0] * self.meter.aperture_s

    def _loop_readings_by(self, time_s: float) -> int:
        """How many loop readings have been taken (begun) by ``time_s``."""
        assert self.loop is not None
        return max(math.floor((time_s - self.loop.start_s) / self._loop_period()), 0)

    def _end_loop(self, event_s: float, record: WaveformRecord | None) -> float:
        """The loop's event at ``event_s``: the readings before it, then those that fill the buffer beyond the
        position; returns when the last one ends."""
        loop = self.loop
        assert loop is not None
        capacity = self.meter.buffers[loop.buffer].capacity
        post = round(capacity * (100.0 - loop.position) / 100.0)
        period = self._loop_period()
        taken = self._loop_readings_by(event_s)
        # the loop measures on at its own pace: the readings after the event follow on the same grid
        post_times = [loop.start_s + loop.delay_s + (taken + j) * period for j in range(post)]
        self._store_loop_readings(taken, post_times, record)
        self.loop = None
        end = loop.start_s + (taken + post) * period
        self.meter.advance(end - self.meter.clock())  # the readings after the event take their time
        return end

    def _store_loop_readings(self, taken_by: int, post_times: list[float], record: WaveformRecord | None) -> None:
        """Store loop readings ``loop.taken`` … ``taken_by - 1`` (only the newest a buffer can hold), then those
        at ``post_times`` (after the event; ``record``: the event's waveform, if it was one)."""
        loop, meter = self.loop, self.meter
        assert loop is not None
        capacity = meter.buffers[loop.buffer].capacity
        first = max(loop.taken, taken_by - capacity)
        if taken_by - first + len(post_times) > MAX_READINGS_PER_RUN:
            meter.push_error(SCPI_EXECUTION_ERROR, f"Execution error; more than {MAX_READINGS_PER_RUN} loop "
                             "readings at once: only the newest are stored (emulation limit)")
            first = taken_by - max(MAX_READINGS_PER_RUN - len(post_times), 0)
            post_times = post_times[:MAX_READINGS_PER_RUN]
        period = self._loop_period()
        if record is not None:
            loop.history.append(record)  # the event's waveform: the readings during and after it see its effect
        times = np.concatenate([loop.start_s + loop.delay_s + period * np.arange(first, taken_by),
                                np.asarray(post_times, dtype=np.float64)])
        if times.size:
            meter.store_readings(loop.buffer, meter.filtered_values(times, self._rxy_in_history), times)
        loop.taken = taken_by

    def _rxy_now(self, times: np.ndarray) -> np.ndarray:
        return self.meter.rxy_now(times.size)

    def _rxy_in_history(self, times: np.ndarray) -> np.ndarray:
        """``R_xy`` readings at past ``times``: the state each waveform played during the loop left."""
        assert self.loop is not None
        records = list(self.loop.history)
        if not records or times.size == 0:
            return self.meter.rxy_now(times.size)
        latest = np.searchsorted(np.array([r.start_s for r in records]), times, side="right") - 1
        rxy = np.empty(times.size)
        for i in np.unique(latest):
            chosen = latest == i
            # before the first waveform: the state it found; after a waveform's end: the state it left
            rxy[chosen] = records[max(int(i), 0)].rxy_at(times[chosen])
        return rxy

    def apply(self, ops: list[tuple[str, str, float]], record: WaveformRecord | None) -> None:
        """Take the readings of one run (in one vectorized draw) and clear buffers, in block order."""
        meter = self.meter
        times = np.array([t for op, _, t in ops if op == "read"])
        if times.size == 0 and not ops:
            return
        values = meter.filtered_values(times, record.rxy_at if record is not None else self._rxy_now)
        taken = 0
        for (op, buffer), group in groupby(ops, key=lambda o: (o[0], o[1])):
            if op == "clear":
                meter.buffers[buffer].clear()
                continue
            times = np.array([t for _, _, t in group])
            meter.store_readings(buffer, values[taken:taken + times.size], times)
            taken += times.size
