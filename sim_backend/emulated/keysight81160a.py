"""Emulated Keysight 81160A pulse generator: the SCPI subset of the project's and PyMeasure's drivers.

Pulse and user (arbitrary) shapes with amplitude/offset or high/low levels, polarity, output and load,
manual arming with a cycle count, and volatile DAC data uploaded as an IEEE 488.2 binary block. On
``*TRG`` each channel whose output is on and armed manually plays its cycles into the routed device
through the bench (its trigger output fires at the start, starting an armed source meter).
"""

from __future__ import annotations

import numpy as np

from sim_backend.emulated.server import ScpiInstrument, parse_bool

MAX_DAC = 8191
MEMORY_POINTS = 524_288
SHAPES = {"SIN": "SIN", "SINUSOID": "SIN", "SQU": "SQU", "SQUARE": "SQU", "RAMP": "RAMP", "PULS": "PULS",
          "PULSE": "PULS", "NOIS": "NOIS", "NOISE": "NOIS", "DC": "DC", "USER": "USER"}


class _Channel:
    def __init__(self) -> None:
        self.shape = "SIN"
        self.frequency = 1e6
        self.amplitude = 0.5
        self.offset = 0.0
        self.period = 1e-6
        self.width = 100e-9
        self.output = False
        self.load = 50.0
        self.inverted = False
        self.arm_source = "IMM"
        self.count = 1
        self.data: np.ndarray | None = None
        self.user_selected = False

    @property
    def high(self) -> float:
        return self.offset + self.amplitude / 2

    @property
    def low(self) -> float:
        return self.offset - self.amplitude / 2

    def set_levels(self, high: float, low: float) -> None:
        self.amplitude = high - low
        self.offset = (high + low) / 2


class EmulatedKeysight81160A(ScpiInstrument):
    idn = "Agilent Technologies,81160A,MY52500180,2.0.0.0-2.6"
    model = "Keysight81160A"

    COMMANDS = [
        (":FUNCtion<n>:USER?", "_user_q"),
        (":FUNCtion<n>:USER", "_user"),
        (":FUNCtion<n>:PULSe:TRANsition[:LEADing]", "_accept_number"),
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
        (":DATA<n>:DAC", "_data_dac"),
        ("*TRG", "_trigger"),
        (":TRIGger[:SEQuence][:IMMediate]", "_trigger"),
    ]

    def reset_state(self) -> None:
        self.channels = {1: _Channel(), 2: _Channel()}

    def _ch(self, number: str) -> _Channel:
        index = int(number) if number else 1
        if index not in self.channels:
            raise ValueError(f"no channel {index}")
        return self.channels[index]

    @staticmethod
    def _number(args: str, low: float, high: float, what: str) -> float:
        value = float(args)
        if not low <= value <= high:
            raise ValueError(f"{what} {value} outside {low}–{high}")
        return value

    def _accept_number(self, args: str, n: str) -> None:
        float(args)

    def _shape_q(self, args: str, n: str) -> str:
        return self._ch(n).shape

    def _shape(self, args: str, n: str) -> None:
        shape = SHAPES.get(args.strip().upper())
        if shape is None:
            raise ValueError(f"waveform shape {args}")
        self._ch(n).shape = shape

    def _user_q(self, args: str, n: str) -> str:
        return "VOLATILE" if self._ch(n).user_selected else "NONE"

    def _user(self, args: str, n: str) -> None:
        if args.strip().upper() not in ("VOLATILE", "VOL"):
            raise ValueError(f"user waveform {args}: only VOLATILE is emulated")
        if self._ch(n).data is None:
            raise ValueError("no volatile waveform uploaded")
        self._ch(n).user_selected = True

    def _freq_q(self, args: str, n: str) -> str:
        return f"{self._ch(n).frequency:.9e}"

    def _freq(self, args: str, n: str) -> None:
        self._ch(n).frequency = self._number(args, 1e-6, 500e6, "frequency")

    def _amp_q(self, args: str, n: str) -> str:
        return f"{self._ch(n).amplitude:.6e}"

    def _amp(self, args: str, n: str) -> None:
        self._ch(n).amplitude = self._number(args, 0.05, 10.0, "amplitude")

    def _offset_q(self, args: str, n: str) -> str:
        return f"{self._ch(n).offset:.6e}"

    def _offset(self, args: str, n: str) -> None:
        self._ch(n).offset = self._number(args, -5.0, 5.0, "offset")

    def _high_q(self, args: str, n: str) -> str:
        return f"{self._ch(n).high:.6e}"

    def _high(self, args: str, n: str) -> None:
        ch = self._ch(n)
        ch.set_levels(self._number(args, -4.95, 5.0, "high level"), ch.low)

    def _low_q(self, args: str, n: str) -> str:
        return f"{self._ch(n).low:.6e}"

    def _low(self, args: str, n: str) -> None:
        ch = self._ch(n)
        ch.set_levels(ch.high, self._number(args, -5.0, 4.95, "low level"))

    def _period_q(self, args: str, n: str) -> str:
        return f"{self._ch(n).period:.9e}"

    def _period(self, args: str, n: str) -> None:
        self._ch(n).period = self._number(args, 2e-9, 1e6, "pulse period")

    def _width_q(self, args: str, n: str) -> str:
        return f"{self._ch(n).width:.9e}"

    def _width(self, args: str, n: str) -> None:
        self._ch(n).width = self._number(args, 1.5e-9, 1e6, "pulse width")

    def _load_q(self, args: str, n: str) -> str:
        return f"{self._ch(n).load:.6e}"

    def _load(self, args: str, n: str) -> None:
        text = args.strip().upper()
        self._ch(n).load = 1e6 if text in ("INF", "INFINITY", "MAX") else self._number(args, 0.3, 1e6, "load")

    def _polarity_q(self, args: str, n: str) -> str:
        return "INV" if self._ch(n).inverted else "NORM"

    def _polarity(self, args: str, n: str) -> None:
        text = args.strip().upper()
        if text not in ("NORM", "NORMAL", "INV", "INVERTED"):
            raise ValueError(f"polarity {args}")
        self._ch(n).inverted = text.startswith("INV")

    def _output_q(self, args: str, n: str) -> str:
        return "1" if self._ch(n).output else "0"

    def _output(self, args: str, n: str) -> None:
        self._ch(n).output = parse_bool(args)

    def _arm_q(self, args: str, n: str) -> str:
        return self._ch(n).arm_source

    def _arm(self, args: str, n: str) -> None:
        text = args.strip().upper()
        if text not in ("IMM", "INT2", "EXT", "MAN"):
            raise ValueError(f"arm source {args}")
        self._ch(n).arm_source = text

    def _count_q(self, args: str, n: str) -> str:
        return str(self._ch(n).count)

    def _count(self, args: str, n: str) -> None:
        self._ch(n).count = int(self._number(args, 1, 2.147483647e9, "trigger count"))

    def _data_dac(self, args: str, n: str) -> None:
        target, _, block = args.partition(",")
        if target.strip().upper() not in ("VOLATILE", "VOL"):
            raise ValueError(f"DAC data target {target}: only VOLATILE is emulated")
        raw = block.encode("latin-1")
        if not raw.startswith(b"#") or not raw[1:2].isdigit():
            raise ValueError("DAC data must be an IEEE 488.2 definite-length block")
        digits = int(raw[1:2])
        length = int(raw[2:2 + digits])
        payload = raw[2 + digits:2 + digits + length]
        if len(payload) != length or length % 2:
            raise ValueError("DAC block length does not match its header")
        codes = np.frombuffer(payload, dtype=">i2").astype(np.int64)
        if codes.size < 2 or codes.size > MEMORY_POINTS or np.any(np.abs(codes) > MAX_DAC):
            raise ValueError(f"DAC data: 2–{MEMORY_POINTS} points within ±{MAX_DAC}")
        self._ch(n).data = codes

    def _segments(self, ch: _Channel) -> tuple[np.ndarray, np.ndarray]:
        """One cycle of the channel's output as (levels in V, durations in s)."""
        if ch.shape == "PULS":
            active, idle = (ch.low, ch.high) if ch.inverted else (ch.high, ch.low)
            return np.array([active, idle]), np.array([ch.width, max(ch.period - ch.width, 0.0)])
        if ch.shape == "USER" and ch.user_selected and ch.data is not None:
            codes = ch.data
            change = np.flatnonzero(np.diff(codes)) + 1
            starts = np.concatenate([[0], change])
            counts = np.diff(np.concatenate([starts, [codes.size]]))
            point_s = 1.0 / (ch.frequency * codes.size)
            levels = codes[starts] / MAX_DAC * (ch.amplitude / 2) + ch.offset
            if ch.inverted:
                levels = 2 * ch.offset - levels
            return levels, counts * point_s
        if ch.shape == "DC":
            return np.array([ch.offset]), np.array([1.0 / ch.frequency])
        raise ValueError(f"shape {ch.shape} is not emulated on a trigger (PULS, USER and DC are)")

    def _trigger(self, args: str, *groups: str) -> None:
        if self.bench is None:
            return
        for ch in self.channels.values():
            if ch.output and ch.arm_source == "MAN":
                levels, durations = self._segments(ch)
                self.bench.drive_voltage(np.tile(levels, ch.count), np.tile(durations, ch.count))
