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
``DurationLoop`` template's loop), ``("nop", None)`` (also a notify block: the digital output it pulses
reaches nothing on the bench).

The built-in templates (:meth:`TriggerModel.load_template`): ``SimpleLoop`` (delay, measure, counter back to
the delay), ``DurationLoop`` (delay, measure, loop while the duration lasts), ``LogicTrigger`` (wait for a
digital input line, delay, measure, notify, counter back to the wait).

While a model runs or waits, :attr:`TriggerModel.pending` is true (``*OPC`` completes and ``*OPC?`` answers
when it ends); its start and end are signalled to the meter's status registers as the 2450's events
``2731`` (trigger model initiated) and ``2732`` (trigger model idled).
"""

from __future__ import annotations

from itertools import groupby
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from sim_backend.emulated.bench import Bench, WaveformRecord
    from sim_backend.emulated.keithley2450_buffers import ReadingBuffer

TRIGGER_IN_LINE = 1  # the rear digital I/O line that the bench's trigger line (pulse generator marker) reaches
MAX_READINGS_PER_RUN = 1_000_000  # an emulation limit: a longer run of the model fails instead of stalling
MAX_STEPS_PER_RUN = 10_000_000  # another: blocks executed in one run (a loop of delays takes no readings)
SCPI_EXECUTION_ERROR = -200  # queued when a model run exceeds an emulation limit
TRIGGER_MODEL_INITIATED, TRIGGER_MODEL_IDLED = 2731, 2732  # the 2450's event numbers

Block = tuple[str, object]


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

    def reading_values(self, rxy_ohm: np.ndarray) -> np.ndarray: ...

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
        self.pc = 0

    def state_reply(self) -> str:
        """``:TRIG:STAT?``: ``<state>;<state>;<block>``, e.g. ``WAITING;WAITING;2`` or ``IDLE;IDLE;9``."""
        return f"{self.state};{self.state};{self.last_block}"

    def bus_trigger(self) -> None:
        """``*TRG``: continue a model waiting on the command event."""
        if self.listening and self.blocks.get(self.pc) == ("wait", "COMM"):
            self.run(None, triggered=True)

    def on_trigger(self, record: WaveformRecord) -> None:
        """An edge on the bench's trigger line: continue a model waiting on that digital line."""
        if self.meter.line_modes[TRIGGER_IN_LINE] != "TRIG, IN":
            return
        if self.listening and self.blocks.get(self.pc) == ("wait", f"DIG{TRIGGER_IN_LINE}"):
            self.run(record, triggered=True)

    def run(self, record: WaveformRecord | None, triggered: bool) -> None:
        """Run the model from the current block until it waits or ends.

        With a waveform record, time starts at the waveform's start (the trigger edge) and readings take
        the device's state at their own times; without, time starts now and the state is the present one.
        ``triggered``: the event the present wait block waits for has happened.
        """
        meter = self.meter
        if self.listening and meter.bench is not None:
            meter.bench.remove_trigger_listener(self.on_trigger)
        self.listening = False
        t0 = record.start_s if record is not None else meter.clock()
        t = t0
        ops: list[tuple[str, str, float]] = []  # ("clear", buffer, 0) / ("read", buffer, time)
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
                for _ in range(count):
                    ops.append(("read", buffer, t))
                    t += meter.aperture_s
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
            else:
                self.pc += 1
        self.apply(ops, record)
        # the clock runs to the end of the last reading (a waveform has already advanced it by its length)
        last_end = max((time_s for op, _, time_s in ops if op == "read"), default=None)
        if last_end is not None:
            meter.advance(last_end + meter.aperture_s - (meter.clock() if record is not None else t0))
        if not self.listening:
            self.pc = 0
            self.state = "IDLE"
            self.meter.signal_event(TRIGGER_MODEL_IDLED)

    def _fail(self, what: str) -> None:
        """Stop a run at an emulation limit, with an execution error in the queue."""
        self.meter.push_error(SCPI_EXECUTION_ERROR, f"Execution error; {what} in one run (emulation limit)")
        self.pc = 0

    def listen(self) -> None:
        """Wait at the present wait block: on the bench's trigger line when it waits for digital line 1."""
        self.state = "WAITING"
        bench = self.meter.bench
        if bench is not None and self.blocks[self.pc] == ("wait", f"DIG{TRIGGER_IN_LINE}"):
            bench.add_trigger_listener(self.on_trigger)
        self.listening = True

    def apply(self, ops: list[tuple[str, str, float]], record: WaveformRecord | None) -> None:
        """Take the readings of one run (in one vectorized draw) and clear buffers, in block order."""
        meter = self.meter
        times = np.array([t for op, _, t in ops if op == "read"])
        if times.size == 0 and not ops:
            return
        rxy = record.rxy_at(times) if record is not None else meter.rxy_now(times.size)
        values = meter.reading_values(rxy)
        taken = 0
        for (op, buffer), group in groupby(ops, key=lambda o: (o[0], o[1])):
            if op == "clear":
                meter.buffers[buffer].clear()
                continue
            times = np.array([t for _, _, t in group])
            meter.store_readings(buffer, values[taken:taken + times.size], times)
            taken += times.size
