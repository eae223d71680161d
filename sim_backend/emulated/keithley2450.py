"""Emulated Keithley 2450 SourceMeter: the SCPI subset of the project's and PyMeasure's 2450 drivers.

Current source with voltage limit, resistance measurement (2-wire: the routed device's channel; 4-wire
with the sense leads on the Hall arms: its ``R_xy``), output on/off, the reading buffer, source-list
sweeps, and a trigger model of buffer-clear, wait, constant-delay, measure and counter-branch blocks.
A model waiting for the digital-line trigger listens on the bench's trigger line and takes its
readings at its own virtual times within the waveform that fired it.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from sim_backend.emulated.bench import WaveformRecord
from sim_backend.emulated.server import ScpiInstrument, parse_bool, unquote

OVERFLOW = 9.9e37  # what the 2450 returns for an overflowed (open) reading
LINE_FREQUENCY_HZ = 50.0
BUFFER_SIZE = 100_000
BUFFERS = ("defbuffer1", "defbuffer2")


class EmulatedKeithley2450(ScpiInstrument):
    idn = "KEITHLEY INSTRUMENTS,MODEL 2450,04096331,1.7.12b"
    model = "Keithley2450"

    COMMANDS = [
        (":SOURce[1]:FUNCtion[:MODE]?", "_source_function_q"),
        (":SOURce[1]:FUNCtion[:MODE]", "_source_function"),
        (":SOURce[1]:CURRent[:LEVel][:IMMediate][:AMPLitude]?", "_source_current_q"),
        (":SOURce[1]:CURRent[:LEVel][:IMMediate][:AMPLitude]", "_source_current"),
        (":SOURce[1]:CURRent:RANGe:AUTO", "_accept"),
        (":SOURce[1]:CURRent:RANGe", "_accept"),
        (":SOURce[1]:CURRent:VLIMit[:LEVel]?", "_vlim_q"),
        (":SOURce[1]:CURRent:VLIMit[:LEVel]", "_vlim"),
        (":SOURce[1]:LIST:CURRent", "_source_list"),
        (":SOURce[1]:SWEep:CURRent:LIST", "_sweep_list"),
        (":SENSe[1]:FUNCtion[:ON]", "_sense_function"),
        (":SENSe[1]:RESistance:NPLCycles?", "_nplc_q"),
        (":SENSe[1]:RESistance:NPLCycles", "_nplc"),
        (":SENSe[1]:RESistance:RANGe:AUTO", "_accept"),
        (":SENSe[1]:RESistance:RANGe", "_accept"),
        (":SENSe[1]:RESistance:RSENse?", "_rsense_q"),
        (":SENSe[1]:RESistance:RSENse", "_rsense"),
        (":OUTPut[1][:STATe]?", "_output_q"),
        (":OUTPut[1][:STATe]", "_output"),
        (":OUTPut[1]:CURRent:SMODe?", "_smode_q"),
        (":OUTPut[1]:CURRent:SMODe", "_smode"),
        (":READ?", "_read"),
        (":MEASure[:RESistance]?", "_read"),
        (":TRACe:CLEar", "_trace_clear"),
        (":TRACe:ACTual?", "_trace_actual"),
        (":TRACe:DATA?", "_trace_data"),
        (":TRACe:POINts?", "_trace_points_q"),
        (":TRACe:POINts", "_accept"),
        (":DIGital:LINE<n>:MODE", "_digital_mode"),
        (":TRIGger:DIGital<n>:IN:EDGE", "_digital_edge"),
        (":TRIGger:LOAD", "_trigger_load"),
        (":TRIGger:BLOCk:BUFFer:CLEar", "_block_buffer_clear"),
        (":TRIGger:BLOCk:WAIT", "_block_wait"),
        (":TRIGger:BLOCk:DELay:CONStant", "_block_delay"),
        (":TRIGger:BLOCk:MEASure", "_block_measure"),
        (":TRIGger:BLOCk:BRANch:COUNter", "_block_branch_counter"),
        (":INITiate[:IMMediate]", "_initiate"),
        (":ABORt", "_abort"),
        (":TRIGger:STATe?", "_trigger_state"),
        ("*TRG", "_bus_trigger"),
    ]

    def reset_state(self) -> None:
        if getattr(self, "_listening", False) and self.bench is not None:
            self.bench.remove_trigger_listener(self._on_trigger)
        self.source_function = "CURR"
        self.source_current_a = 0.0
        self.vlim_v = 2.0
        self.nplc = 1.0
        self.four_wire = False
        self.output_on = False
        self.off_mode = "NORM"
        self.buffer: list[float] = []
        self.source_list: list[float] = []
        self.sweep: tuple[int, float, int] | None = None
        self.blocks: dict[int, tuple[str, Any]] = {}
        self.trigger_line_is_input = False
        self._listening = False
        self._pc = 0
        self._counters: dict[int, int] = {}

    # -- helpers --------------------------------------------------------------------------------

    @property
    def aperture_s(self) -> float:
        return self.nplc / LINE_FREQUENCY_HZ

    def _measure_now(self) -> float:
        """One resistance reading of the routed device now; advances the clock by the aperture."""
        bench = self.bench
        if bench is None or not self.output_on or self.source_function != "CURR" or self.source_current_a == 0:
            value = OVERFLOW
        elif self.four_wire:
            value = float(bench.read_rxy(1)[0])
        else:
            value = bench.channel_resistance()
        if bench is not None:
            bench.advance(self.aperture_s)
        # a reading the voltage limit cannot reach (open device) overflows
        if not np.isfinite(value) or abs(value * self.source_current_a) > self.vlim_v:
            value = OVERFLOW
        self._store(value)
        return value

    def _delivered(self, current_a: float) -> float:
        """The current that flows: in compliance, the voltage limit over the channel caps it."""
        r_ch = self.bench.channel_resistance() if self.bench is not None else np.inf
        if not np.isfinite(r_ch) or abs(current_a) * r_ch <= self.vlim_v:
            return current_a if np.isfinite(r_ch) else 0.0
        return float(np.sign(current_a) * self.vlim_v / r_ch)

    def _store(self, value: float) -> None:
        if len(self.buffer) >= BUFFER_SIZE:
            self.buffer.pop(0)
        self.buffer.append(value)

    @staticmethod
    def _numbers(args: str) -> list[str]:
        return [a.strip() for a in args.split(",") if a.strip()]

    def _buffer_name(self, text: str) -> None:
        if text and unquote(text) not in BUFFERS:
            raise ValueError(f"no reading buffer named {text}")

    # -- source and sense -----------------------------------------------------------------------

    def _accept(self, args: str, *groups: str) -> None:
        """Settings with no effect on the emulation (ranges): checked for a number or a switch."""
        if args.strip().upper() not in ("ON", "OFF", "1", "0"):
            float(args)

    def _source_function_q(self, args: str) -> str:
        return self.source_function

    def _source_function(self, args: str) -> None:
        value = args.strip().upper()
        if value.startswith("CURR"):
            self.source_function = "CURR"
        elif value.startswith("VOLT"):
            self.source_function = "VOLT"
        else:
            raise ValueError(f"source function {args}")

    def _source_current_q(self, args: str) -> str:
        return f"{self.source_current_a:.6e}"

    def _source_current(self, args: str) -> None:
        value = float(args)
        if abs(value) > 1.05:
            raise ValueError(f"source current {value} A beyond ±1.05 A")
        self.source_current_a = value

    def _vlim_q(self, args: str) -> str:
        return f"{self.vlim_v:.6e}"

    def _vlim(self, args: str) -> None:
        value = float(args)
        if not 0.02 <= abs(value) <= 210:
            raise ValueError(f"voltage limit {value} V")
        self.vlim_v = abs(value)

    def _sense_function(self, args: str) -> None:
        if unquote(args).upper() not in ("RES", "RESISTANCE"):
            raise ValueError(f"this emulation measures resistance only, got {args}")

    def _nplc_q(self, args: str) -> str:
        return f"{self.nplc:g}"

    def _nplc(self, args: str) -> None:
        value = float(args)
        if not 0.01 <= value <= 10:
            raise ValueError(f"NPLC {value} outside 0.01–10")
        self.nplc = value

    def _rsense_q(self, args: str) -> str:
        return "1" if self.four_wire else "0"

    def _rsense(self, args: str) -> None:
        self.four_wire = parse_bool(args)

    def _output_q(self, args: str) -> str:
        return "1" if self.output_on else "0"

    def _output(self, args: str) -> None:
        self.output_on = parse_bool(args)

    def _smode_q(self, args: str) -> str:
        return self.off_mode

    def _smode(self, args: str) -> None:
        value = args.strip().upper()[:4]
        if value not in ("HIMP", "NORM", "ZERO", "GUAR"):
            raise ValueError(f"output-off mode {args}")
        self.off_mode = value

    def _read(self, args: str) -> str:
        if args:
            self._buffer_name(args.split(",")[0])
        return f"{self._measure_now():.9e}"

    # -- buffer ------------------------------------------------------------------------------------

    def _trace_clear(self, args: str) -> None:
        self._buffer_name(args)
        self.buffer.clear()

    def _trace_actual(self, args: str) -> str:
        self._buffer_name(args)
        return str(len(self.buffer))

    def _trace_points_q(self, args: str) -> str:
        return str(BUFFER_SIZE)

    def _trace_data(self, args: str) -> str:
        parts = self._numbers(args)
        if len(parts) < 2:
            raise ValueError(":TRAC:DATA? needs a start and an end index")
        start, end = int(parts[0]), int(parts[1])
        if len(parts) > 2:
            self._buffer_name(parts[2])
        elements = [p.upper() for p in parts[3:]] or ["READ"]
        if elements != ["READ"]:
            raise ValueError("this emulation returns READ elements only")
        if not 1 <= start <= end <= len(self.buffer):
            raise ValueError(f"buffer index {start}–{end} outside 1–{len(self.buffer)}")
        return ",".join(f"{v:.9e}" for v in self.buffer[start - 1:end])

    # -- source list sweep ------------------------------------------------------------------------

    def _source_list(self, args: str) -> None:
        values = [float(v) for v in self._numbers(args)]
        if not 1 <= len(values) <= 2500 or any(abs(v) > 1.05 for v in values):
            raise ValueError("source list: 1–2500 currents within ±1.05 A")
        self.source_list = values

    def _sweep_list(self, args: str) -> None:
        parts = self._numbers(args)
        if not parts:
            raise ValueError("sweep list needs a start index")
        start = int(parts[0])
        delay = float(parts[1]) if len(parts) > 1 else 0.0
        count = int(parts[2]) if len(parts) > 2 else 1
        if len(parts) > 4:
            self._buffer_name(parts[4])
        if not self.source_list or not 1 <= start <= len(self.source_list):
            raise ValueError("sweep list: load :SOUR:LIST:CURR first; start index out of range")
        self.blocks = {}
        self.sweep = (start, delay, count)

    def _run_sweep(self) -> None:
        start, delay, count = self.sweep  # type: ignore[misc]
        self.output_on = True
        for _ in range(count):
            for current in self.source_list[start - 1:]:
                self.source_current_a = current
                if self.bench is not None:
                    self.bench.source_current(self._delivered(current), delay)
                self._measure_now()

    # -- trigger model ------------------------------------------------------------------------------

    def _digital_mode(self, args: str, line: str) -> None:
        mode = re.sub(r"\s+", "", args.upper())
        if int(line or 1) != 1 or mode not in ("TRIG,IN", "TRIGGER,IN", "DIG,IN", "DIGITAL,IN"):
            raise ValueError(f"digital line {line} mode {args}")
        self.trigger_line_is_input = mode.startswith("TRIG")

    def _digital_edge(self, args: str, line: str) -> None:
        if args.strip().upper()[:3] not in ("RIS", "FAL", "EIT"):
            raise ValueError(f"edge {args}")

    def _trigger_load(self, args: str) -> None:
        if unquote(args) != "Empty":
            raise ValueError(f"this emulation loads the Empty model only, got {args}")
        self._abort("")
        self.blocks = {}
        self.sweep = None

    def _block(self, args: str) -> tuple[int, list[str]]:
        parts = self._numbers(args)
        if not parts:
            raise ValueError("block number missing")
        number = int(parts[0])
        if not 1 <= number <= 63:
            raise ValueError(f"block number {number}")
        self.sweep = None
        return number, parts[1:]

    def _block_buffer_clear(self, args: str) -> None:
        number, rest = self._block(args)
        if rest:
            self._buffer_name(rest[0])
        self.blocks[number] = ("clear", None)

    def _block_wait(self, args: str) -> None:
        number, rest = self._block(args)
        if not rest or rest[0].upper() not in ("DIG1", "DIGIO1", "COMM", "COMMAND"):
            raise ValueError(f"wait event {rest}")
        self.blocks[number] = ("wait", rest[0].upper())

    def _block_delay(self, args: str) -> None:
        number, rest = self._block(args)
        delay = float(rest[0])
        if not 0 <= delay <= 10_000:
            raise ValueError(f"delay {delay} s")
        self.blocks[number] = ("delay", delay)

    def _block_measure(self, args: str) -> None:
        number, rest = self._block(args)
        if rest:
            self._buffer_name(rest[0])
        self.blocks[number] = ("measure", int(rest[1]) if len(rest) > 1 else 1)

    def _block_branch_counter(self, args: str) -> None:
        number, rest = self._block(args)
        count, target = int(rest[0]), int(rest[1])
        if count < 1 or not 1 <= target <= 63:
            raise ValueError(f"counter {count}, branch to {target}")
        self.blocks[number] = ("counter", (count, target))

    def _initiate(self, args: str) -> None:
        if self.sweep is not None:
            self._run_sweep()
            return
        if not self.blocks:
            raise ValueError("no trigger model loaded")
        self._pc, self._counters = 1, {}
        self._step(None)

    def _abort(self, args: str) -> None:
        if self._listening and self.bench is not None:
            self.bench.remove_trigger_listener(self._on_trigger)
        self._listening = False
        self._pc = 0

    def _trigger_state(self, args: str) -> str:
        """``<state>;<state>;<block>``: WAITING while a model waits for its trigger, IDLE otherwise."""
        if self._listening:
            return f"WAITING;WAITING;{self._pc}"
        return "IDLE;IDLE;0"

    def _bus_trigger(self, args: str) -> None:
        return None

    def _on_trigger(self, record: WaveformRecord) -> None:
        if self.trigger_line_is_input:
            self._step(record)

    def _step(self, record: WaveformRecord | None) -> None:
        """Run the trigger model from the current block until it waits or ends."""
        t = record.start_s if record is not None else (self.bench.clock_s if self.bench is not None else 0.0)
        consumed = False
        times: list[float] = []
        while self._pc in self.blocks:
            kind, value = self.blocks[self._pc]
            if kind == "wait":
                if record is None or consumed:
                    if self.bench is not None and not self._listening:
                        self.bench.add_trigger_listener(self._on_trigger)
                        self._listening = True
                    break
                consumed = True
                self._pc += 1
            elif kind == "clear":
                self.buffer.clear()
                self._pc += 1
            elif kind == "delay":
                t += value
                self._pc += 1
            elif kind == "measure":
                for _ in range(value):
                    times.append(t)
                    t += self.aperture_s
                self._pc += 1
            else:
                count, target = value
                self._counters[self._pc] = self._counters.get(self._pc, 0) + 1
                self._pc = target if self._counters[self._pc] < count else self._pc + 1
        if times:
            self._take(record, np.array(times))
        if self._pc not in self.blocks:
            self._abort("")

    def _take(self, record: WaveformRecord | None, times: np.ndarray) -> None:
        if record is None or not self.output_on or self.source_current_a == 0:
            values = np.full(times.size, OVERFLOW)
        else:
            values = record.rxy_at(times)
            values = np.where(np.isfinite(values) & (np.abs(values * self.source_current_a) <= self.vlim_v),
                              values, OVERFLOW)
        for value in values:
            self._store(float(value))
