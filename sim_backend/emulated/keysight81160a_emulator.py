"""Emulated Keysight 81160A pulse generator: the SCPI subset of the project's and PyMeasure's drivers.

Pulse and user (arbitrary) shapes, amplitude/offset or high/low levels, polarity, output and load,
manual arming with a cycle count (``:TRIG:COUN`` or the stock driver's ``:BURS`` commands), ``:APPL``,
and volatile DAC data uploaded as an IEEE 488.2 definite-length binary block (or a list of values).
On ``*TRG`` each channel whose output is on and armed manually plays its cycles into the routed device
through the bench; the bench fires the trigger output at the start of the waveform, as the 81160A's
trigger output marks the start of each waveform period.

A burst longer than 20 million segments is refused (``-200``, an emulation limit) instead of exhausting
memory; ``played`` remembers the latest triggers within a bounded number of segments.

The voltage the device sees follows the load setting: levels are programmed for the load, so behind
the 50 Ω source impedance the open-circuit voltage is ``level · (load + 50 Ω) / load`` (the level
itself at high impedance, 1 MΩ and above).
"""

from __future__ import annotations

import re
from collections import deque

import numpy as np

from sim_backend.emulated.bench import SOURCE_IMPEDANCE_OHM
from sim_backend.emulated.server import ScpiInstrument, parse_bool

MAX_DAC = 8191
MEMORY_POINTS = 524_288
MIN_POINTS = 2
HIGH_IMPEDANCE_OHM = 1e6
PLAYED_KEPT = 16  # triggers remembered in ``played``
PLAYED_SEGMENTS_KEPT = 4_000_000  # ... and at most this many segments among them (the latest trigger always)
MAX_SEGMENTS_PER_TRIGGER = 20_000_000  # an emulation limit: a longer burst is refused instead of exhausting memory
SCPI_EXECUTION_ERROR = -200
SHAPES = {"SIN": "SIN", "SINUSOID": "SIN", "SQU": "SQU", "SQUARE": "SQU", "RAMP": "RAMP", "PULS": "PULS",
          "PULSE": "PULS", "NOIS": "NOIS", "NOISE": "NOIS", "DC": "DC", "USER": "USER"}
ARM_SOURCES = {"IMM": "IMM", "IMMEDIATE": "IMM", "INT2": "INT2", "INTERNAL2": "INT2", "EXT": "EXT",
               "EXTERNAL": "EXT", "MAN": "MAN", "MANUAL": "MAN"}
POLARITIES = {"NORM": "NORM", "NORMAL": "NORM", "INV": "INV", "INVERTED": "INV"}
BURST_MODES = {"TRIG": "TRIG", "TRIGGERED": "TRIG", "GAT": "GAT", "GATED": "GAT"}
# an upload is handled before the generic SCPI split: its binary block may hold any byte
_DAC_UPLOAD = re.compile(r"\s*:?DATA(\d*):DAC\s+", re.IGNORECASE)
_DAC_TARGET = re.compile(r"(VOLATILE|VOL)\s*,\s*", re.IGNORECASE)


class _Channel:
    """One output channel's settings (the ``*RST`` state)."""

    def __init__(self) -> None:
        self.shape = "SIN"
        self.frequency = 1e6
        self.amplitude = 0.5
        self.offset = 0.0
        self.width = 100e-9
        self.output = False
        self.load = 50.0
        self.polarity = "NORM"
        self.arm_source = "IMM"
        self.count = 1
        self.burst = False
        self.burst_mode = "TRIG"
        self.burst_period = 1e-6
        self.data: np.ndarray | None = None
        self.user_selected = False

    @property
    def period(self) -> float:
        return 1.0 / self.frequency

    @property
    def high(self) -> float:
        return self.offset + self.amplitude / 2

    @property
    def low(self) -> float:
        return self.offset - self.amplitude / 2

    def set_levels(self, high: float, low: float) -> None:
        if high <= low:
            raise ValueError(f"settings conflict: high level {high} V not above low level {low} V")
        self.amplitude = high - low
        self.offset = (high + low) / 2

    @property
    def open_circuit_factor(self) -> float:
        """Open-circuit voltage per programmed volt at this load setting."""
        return 1.0 if self.load >= HIGH_IMPEDANCE_OHM else (self.load + SOURCE_IMPEDANCE_OHM) / self.load


def _number(text: str, low: float, high: float, what: str) -> float:
    word = text.strip().upper()
    if word in ("MIN", "MINIMUM"):
        return low
    if word in ("MAX", "MAXIMUM"):
        return high
    value = float(word)
    if not low <= value <= high:
        raise ValueError(f"{what} {value} outside {low} to {high}")
    return value


def _choice(text: str, choices: dict[str, str], what: str) -> str:
    value = choices.get(text.strip().upper())
    if value is None:
        raise ValueError(f"{what} {text.strip()!r}")
    return value


class EmulatedKeysight81160A(ScpiInstrument):
    """An 81160A with two channels, answering the SCPI of PyMeasure's and the project's drivers."""

    idn = "Agilent Technologies,81160A,MY52500180,2.0.0.0-2.6"
    model = "Keysight81160A"

    COMMANDS = [
        (":FUNCtion<n>:USER?", "_user_q"),
        (":FUNCtion<n>:USER", "_user"),
        (":FUNCtion<n>:PULSe:TRANsition[:LEADing]?", "_transition_q"),
        (":FUNCtion<n>:PULSe:TRANsition[:LEADing]", "_transition"),
        (":FUNCtion<n>[:SHAPe]?", "_shape_q"),
        (":FUNCtion<n>[:SHAPe]", "_shape"),
        (":FREQuency<n>[:CW]?", "_freq_q"),
        (":FREQuency<n>[:CW]", "_freq"),
        (":VOLTage<n>:OFFSet?", "_offset_q"),
        (":VOLTage<n>:OFFSet", "_offset"),
        (":VOLTage<n>:HIGH?", "_high_q"),
        (":VOLTage<n>:HIGH", "_high"),
        (":VOLTage<n>:LOW?", "_low_q"),
        (":VOLTage<n>:LOW", "_low"),
        (":VOLTage<n>[:LEVel][:IMMediate][:AMPLitude]?", "_amp_q"),
        (":VOLTage<n>[:LEVel][:IMMediate][:AMPLitude]", "_amp"),
        (":PULSe:PERiod<n>?", "_period_q"),
        (":PULSe:PERiod<n>", "_period"),
        (":PULSe:WIDTh<n>?", "_width_q"),
        (":PULSe:WIDTh<n>", "_width"),
        (":PULSe:DCYCle<n>?", "_dcycle_q"),
        (":PULSe:DCYCle<n>", "_dcycle"),
        (":OUTPut<n>:LOAD?", "_load_q"),
        (":OUTPut<n>:LOAD", "_load"),
        (":OUTPut<n>:POLarity?", "_polarity_q"),
        (":OUTPut<n>:POLarity", "_polarity"),
        (":OUTPut<n>[:STATe]?", "_output_q"),
        (":OUTPut<n>[:STATe]", "_output"),
        (":ARM:SOURce<n>?", "_arm_q"),
        (":ARM:SOURce<n>", "_arm"),
        (":TRIGger<n>:COUNt?", "_count_q"),
        (":TRIGger<n>:COUNt", "_count"),
        (":BURSt<n>:STATe?", "_burst_q"),
        (":BURSt<n>:STATe", "_burst"),
        (":BURSt<n>:NCYCles?", "_count_q"),
        (":BURSt<n>:NCYCles", "_ncycles"),
        (":BURSt<n>:MODE?", "_burst_mode_q"),
        (":BURSt<n>:MODE", "_burst_mode"),
        (":BURSt<n>:INTernal:PERiod?", "_burst_period_q"),
        (":BURSt<n>:INTernal:PERiod", "_burst_period"),
        (":APPLy<n>:PULSe", "_apply_pulse"),
        (":APPLy<n>:USER", "_apply_user"),
        (":APPLy<n>:DC", "_apply_dc"),
        ("*TRG", "_trigger"),
        (":TRIGger[:SEQuence][:IMMediate]", "_trigger"),
    ]

    def reset_state(self) -> None:
        self.channels = {1: _Channel(), 2: _Channel()}
        # (channel, levels in V at the open circuit, durations in s) of the latest triggers, for tests: at most
        # PLAYED_KEPT of them and PLAYED_SEGMENTS_KEPT segments in all (the latest is always kept)
        self.played: deque[tuple[int, np.ndarray, np.ndarray]] = deque(maxlen=PLAYED_KEPT)

    def handle(self, message: str) -> str | None:
        upload = _DAC_UPLOAD.match(message)
        if upload is None:
            return super().handle(message)
        try:
            rest = self._upload(self._ch(upload.group(1)), message[upload.end():])
        except ValueError as exc:
            self.push_error(-224, f"Illegal parameter value; {exc}")
            return None
        return super().handle(rest) if rest.strip() else None

    # -- data upload ------------------------------------------------------------------------------

    def _upload(self, ch: _Channel, text: str) -> str:
        """Store DAC codes from ``VOLATILE,<block>`` or ``VOLATILE,<v>,<v>,...``; return what follows them."""
        target = _DAC_TARGET.match(text)
        if target is None:
            raise ValueError(f"DAC data target {text.split(',')[0].strip()[:20]!r}: only VOLATILE is emulated")
        body = text[target.end():]
        if body.startswith("#"):
            codes, rest = self._block(body.encode("latin-1"))
        else:
            values, _, rest = body.partition(";")
            codes = np.array([int(v) for v in values.split(",")], dtype=np.int64)
            rest = ";" + rest if rest else ""
        if not MIN_POINTS <= codes.size <= MEMORY_POINTS or np.any(np.abs(codes) > MAX_DAC):
            raise ValueError(f"DAC data: {MIN_POINTS} to {MEMORY_POINTS} points within +-{MAX_DAC}")
        ch.data = codes
        return rest.lstrip("; ")

    @staticmethod
    def _block(raw: bytes) -> tuple[np.ndarray, str]:
        """Big-endian 16-bit codes from an IEEE 488.2 definite-length block, and the text after it."""
        if len(raw) < 2 or not raw[1:2].isdigit() or raw[1:2] == b"0":
            raise ValueError("DAC data must be a definite-length block #<n><length><bytes>")
        digits = int(raw[1:2])
        length_text = raw[2:2 + digits]
        if len(length_text) != digits or not length_text.isdigit():
            raise ValueError("DAC block header is malformed")
        length = int(length_text)
        start = 2 + digits
        payload = raw[start:start + length]
        # the server strips carriage returns that end a message, and a block can only arrive short that way
        payload += b"\r" * (length - len(payload))
        if length % 2:
            raise ValueError("DAC block length must be a whole number of 16-bit points")
        return np.frombuffer(payload, dtype=">i2").astype(np.int64), raw[start + length:].decode("latin-1")

    # -- settings ---------------------------------------------------------------------------------

    def _ch(self, number: str) -> _Channel:
        index = int(number) if number else 1
        if index not in self.channels:
            raise ValueError(f"no channel {index}")
        return self.channels[index]

    def _transition_q(self, args: str, n: str) -> str:
        return "1.000000e-09"

    def _transition(self, args: str, n: str) -> None:
        self._ch(n)
        _number(args, 1e-9, 1e3, "transition time")

    def _shape_q(self, args: str, n: str) -> str:
        return self._ch(n).shape

    def _shape(self, args: str, n: str) -> None:
        self._ch(n).shape = _choice(args, SHAPES, "waveform shape")

    def _user_q(self, args: str, n: str) -> str:
        return "VOLATILE" if self._ch(n).user_selected else "NONE"

    def _user(self, args: str, n: str) -> None:
        ch = self._ch(n)
        if args.strip().upper() not in ("VOLATILE", "VOL"):
            raise ValueError(f"user waveform {args.strip()!r}: only VOLATILE is emulated")
        if ch.data is None:
            raise ValueError("no volatile waveform uploaded")
        ch.user_selected = True

    def _freq_q(self, args: str, n: str) -> str:
        return f"{self._ch(n).frequency:.9e}"

    def _freq(self, args: str, n: str) -> None:
        self._ch(n).frequency = _number(args, 1e-6, 500e6, "frequency")

    def _amp_q(self, args: str, n: str) -> str:
        return f"{self._ch(n).amplitude:.6e}"

    def _amp(self, args: str, n: str) -> None:
        self._ch(n).amplitude = _number(args, 0.05, 10.0, "amplitude")

    def _offset_q(self, args: str, n: str) -> str:
        return f"{self._ch(n).offset:.6e}"

    def _offset(self, args: str, n: str) -> None:
        self._ch(n).offset = _number(args, -5.0, 5.0, "offset")

    def _high_q(self, args: str, n: str) -> str:
        return f"{self._ch(n).high:.6e}"

    def _high(self, args: str, n: str) -> None:
        ch = self._ch(n)
        ch.set_levels(_number(args, -4.95, 5.0, "high level"), ch.low)

    def _low_q(self, args: str, n: str) -> str:
        return f"{self._ch(n).low:.6e}"

    def _low(self, args: str, n: str) -> None:
        ch = self._ch(n)
        ch.set_levels(ch.high, _number(args, -5.0, 4.95, "low level"))

    def _period_q(self, args: str, n: str) -> str:
        return f"{self._ch(n).period:.9e}"

    def _period(self, args: str, n: str) -> None:
        self._ch(n).frequency = 1.0 / _number(args, 2e-9, 1e6, "pulse period")

    def _width_q(self, args: str, n: str) -> str:
        return f"{self._ch(n).width:.9e}"

    def _width(self, args: str, n: str) -> None:
        ch = self._ch(n)
        width = _number(args, 1.5e-9, 1e6, "pulse width")
        if width >= ch.period:
            raise ValueError(f"settings conflict: pulse width {width} s not below the period {ch.period} s")
        ch.width = width

    def _dcycle_q(self, args: str, n: str) -> str:
        ch = self._ch(n)
        return f"{100 * ch.width / ch.period:.6e}"

    def _dcycle(self, args: str, n: str) -> None:
        ch = self._ch(n)
        ch.width = _number(args, 0.15, 99.99, "duty cycle") / 100 * ch.period

    def _load_q(self, args: str, n: str) -> str:
        return f"{self._ch(n).load:.6e}"

    def _load(self, args: str, n: str) -> None:
        text = args.strip().upper()
        load = HIGH_IMPEDANCE_OHM if text in ("INF", "INFINITY") else _number(text, 0.3, 1e6, "load")
        self._ch(n).load = load

    def _polarity_q(self, args: str, n: str) -> str:
        return self._ch(n).polarity

    def _polarity(self, args: str, n: str) -> None:
        self._ch(n).polarity = _choice(args, POLARITIES, "polarity")

    def _output_q(self, args: str, n: str) -> str:
        return "1" if self._ch(n).output else "0"

    def _output(self, args: str, n: str) -> None:
        self._ch(n).output = parse_bool(args)

    def _arm_q(self, args: str, n: str) -> str:
        return self._ch(n).arm_source

    def _arm(self, args: str, n: str) -> None:
        self._ch(n).arm_source = _choice(args, ARM_SOURCES, "arm source")

    def _count_q(self, args: str, n: str) -> str:
        return str(self._ch(n).count)

    def _count(self, args: str, n: str) -> None:
        ch = self._ch(n)
        ch.count = int(_number(args, 1, 2147483647, "trigger count"))
        ch.burst = ch.count > 1

    def _ncycles(self, args: str, n: str) -> None:
        self._ch(n).count = int(_number(args, 1, 2147483647, "burst cycles"))

    def _burst_q(self, args: str, n: str) -> str:
        return "1" if self._ch(n).burst else "0"

    def _burst(self, args: str, n: str) -> None:
        self._ch(n).burst = parse_bool(args)

    def _burst_mode_q(self, args: str, n: str) -> str:
        return self._ch(n).burst_mode

    def _burst_mode(self, args: str, n: str) -> None:
        self._ch(n).burst_mode = _choice(args, BURST_MODES, "burst mode")

    def _burst_period_q(self, args: str, n: str) -> str:
        return f"{self._ch(n).burst_period:.9e}"

    def _burst_period(self, args: str, n: str) -> None:
        self._ch(n).burst_period = _number(args, 3.03e-9, 1e6, "burst period")

    def _apply(self, ch: _Channel, shape: str, args: str) -> None:
        """``:APPL:<shape> <frequency>, <amplitude>, <offset>``; ``DEF`` (or nothing) keeps a setting."""
        values = [v.strip().upper() for v in args.split(",")] if args.strip() else []
        if len(values) > 3:
            raise ValueError(f"APPLy takes at most 3 parameters, got {len(values)}")
        values += ["DEF"] * (3 - len(values))
        frequency, amplitude, offset = (None if v in ("DEF", "DEFAULT") else v for v in values)
        if frequency is not None:
            ch.frequency = _number(frequency, 1e-6, 500e6, "frequency")
        if amplitude is not None:
            ch.amplitude = _number(amplitude, 0.05, 10.0, "amplitude")
        if offset is not None:
            ch.offset = _number(offset, -5.0, 5.0, "offset")
        ch.shape = shape

    def _apply_pulse(self, args: str, n: str) -> None:
        self._apply(self._ch(n), "PULS", args)

    def _apply_user(self, args: str, n: str) -> None:
        self._apply(self._ch(n), "USER", args)

    def _apply_dc(self, args: str, n: str) -> None:
        self._apply(self._ch(n), "DC", args)

    # -- playing ----------------------------------------------------------------------------------

    @staticmethod
    def segments(ch: _Channel) -> tuple[np.ndarray, np.ndarray]:
        """One cycle of the channel's output as programmed: (levels in V, durations in s)."""
        if ch.shape == "PULS":
            normal = ch.polarity == "NORM"
            active, idle = (ch.high, ch.low) if normal else (ch.low, ch.high)
            return np.array([active, idle]), np.array([ch.width, max(ch.period - ch.width, 0.0)])
        if ch.shape == "USER" and ch.user_selected and ch.data is not None:
            codes = ch.data
            starts = np.concatenate([[0], np.flatnonzero(np.diff(codes)) + 1])
            counts = np.diff(np.concatenate([starts, [codes.size]]))
            swing = codes[starts] / MAX_DAC * (ch.amplitude / 2)
            levels = ch.offset + (swing if ch.polarity == "NORM" else -swing)
            return levels, counts * (ch.period / codes.size)
        if ch.shape == "DC":
            return np.array([ch.offset]), np.array([ch.period])
        raise ValueError(f"shape {ch.shape} is not emulated on a trigger (PULS, USER and DC are)")

    def _trigger(self, args: str, *groups: str) -> None:
        for number, ch in self.channels.items():
            if not (ch.output and ch.arm_source == "MAN"):
                continue
            levels, durations = self.segments(ch)
            cycles = ch.count if ch.burst else 1
            if levels.size * cycles > MAX_SEGMENTS_PER_TRIGGER:
                self.push_error(SCPI_EXECUTION_ERROR, f"Execution error; a burst of {cycles} cycles of "
                                f"{levels.size} segments is more than {MAX_SEGMENTS_PER_TRIGGER} (emulation limit)")
                continue
            levels = np.tile(levels * ch.open_circuit_factor, cycles)
            durations = np.tile(durations, cycles)
            self._remember(number, levels, durations)
            if self.bench is not None:
                self.bench.drive_voltage(levels, durations)

    def _remember(self, number: int, levels: np.ndarray, durations: np.ndarray) -> None:
        """Keep a trigger in ``played``: the latest :data:`PLAYED_KEPT`, within :data:`PLAYED_SEGMENTS_KEPT`."""
        self.played.append((number, levels, durations))
        kept = sum(entry[1].size for entry in self.played)
        while len(self.played) > 1 and kept > PLAYED_SEGMENTS_KEPT:
            kept -= self.played.popleft()[1].size
