"""Emulated Keysight 81160A pulse/function/arbitrary generator: the SCPI a lab script plausibly uses.

Two channels (:class:`~sim_backend.emulated.keysight81160a_channel.OutputChannel` holds each one's
settings and their couplings; :class:`~sim_backend.emulated.keysight81160a_catalogue.WaveformCatalogue`
its waveform memory). Served, in short and long forms with the optional ``:SOURce`` root: functions and
``APPLy``, frequency/period, amplitude (``VPP|VRMS|DBM``)/offset/high/low, voltage limits, pulse width,
delay, duty cycle, hold and edges, square duty cycle, ramp symmetry, phase, output state/load/polarity/complement,
channel coupling (``:TRACk:CHANnel``), arm/trigger/burst, the waveform catalogue and byte order, ``:DISPlay``, the
status registers and the IEEE 488.2 commons. ``MIN|MAX|DEF`` work as values and as query arguments,
answering the limits the present coupled settings allow. Errors: ``-113`` unknown header, ``-221``
settings conflict, ``-222`` data out of range, ``-224`` illegal parameter value, ``-225`` out of memory,
``-200`` an emulation limit. ``docs/commands/keysight81160a.md`` lists what is served and what is not.

On ``*TRG`` (or ``:TRIG``) each channel whose output is on and armed manually plays its cycles
(``:TRIG:COUN``, or the burst count with burst on) into the routed device through the bench; the bench
fires the trigger output at the start of the waveform, as the 81160A's trigger output marks the start of
each waveform period. A pulse and a square wave play as two ideal levels; an arbitrary waveform as its runs
of equal codes; a sine or ramp sampled at :data:`SAMPLES_PER_CYCLE` points; a DC level as one segment;
noise is not played (``-200``). A burst longer than 20 million segments is refused (``-200``, an emulation
limit) instead of exhausting memory; ``played`` remembers the latest triggers within a bounded number of
segments.

The voltage the device sees follows the load setting: levels are programmed for the load, so behind
the 50 Ω source impedance the open-circuit voltage is ``level · (load + 50 Ω) / load`` (the level
itself at high impedance, 1 MΩ and above).

An upload (``:DATA<n>:DAC VOLATILE,…``) advances the bench's virtual clock by :func:`upload_time_s`.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from functools import partialmethod
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from sim_backend.emulated import keysight81160a_channel as chan
from sim_backend.emulated.bench import SOURCE_IMPEDANCE_OHM
from sim_backend.emulated.keysight81160a_catalogue import MAX_DAC, VOLATILE, OutOfMemory, WaveformCatalogue, quoted
from sim_backend.emulated.keysight81160a_channel import OutputChannel, SettingsConflict
from sim_backend.emulated.keysight81160a_registers import RegisterGroup, register_mask
from sim_backend.emulated.scpi_values import keyword
from sim_backend.emulated.scpi_values import number as parse_number
from sim_backend.emulated.server import ScpiInstrument, parse_bool, unquote

if TYPE_CHECKING:
    from sim_backend.emulated.bench import Bench

PLAYED_KEPT = 16  # triggers remembered in ``played``
PLAYED_SEGMENTS_KEPT = 4_000_000  # ... and at most this many segments among them (the latest trigger always)
MAX_SEGMENTS_PER_TRIGGER = 20_000_000  # an emulation limit: a longer burst is refused instead of exhausting memory
SAMPLES_PER_CYCLE = 64  # a sine or ramp is played as this many steps per cycle
# upload time: the 16-bit points cross the 81160A's 100 Mbit/s LAN at line rate (16 bits / 100 Mbit/s), after
# the command's own processing time; see docs/commands/keysight81160a.md
UPLOAD_S_PER_POINT = 16 / 100e6
SCPI_EXECUTION_ERROR = -200
SCPI_SETTINGS_CONFLICT = -221
SCPI_ILLEGAL_PARAMETER = -224
SCPI_OUT_OF_MEMORY = -225
WAITING_FOR_TRIGGER = 1 << 5  # STATus:OPERation bit 5
TIMING_QUESTIONABLE = 1 << 5  # STATus:QUEStionable bit 5 (frequency/timing): a held width does not fit the period
OSB, QSB = 1 << 7, 1 << 3  # status-byte summary bits of the two register groups
SHAPES = {"SIN": "SIN", "SINUSOID": "SIN", "SQU": "SQU", "SQUARE": "SQU", "RAMP": "RAMP", "PULS": "PULS",
          "PULSE": "PULS", "NOIS": "NOIS", "NOISE": "NOIS", "DC": "DC", "USER": "USER"}
ARM_SOURCES = {"IMM": "IMM", "IMMEDIATE": "IMM", "INT2": "INT2", "INTERNAL2": "INT2", "EXT": "EXT",
               "EXTERNAL": "EXT", "MAN": "MAN", "MANUAL": "MAN"}
TRIGGER_SOURCES = {"IMM": "IMM", "IMMEDIATE": "IMM", "INT": "INT", "INTERNAL": "INT", "INT1": "INT",
                   "INTERNAL1": "INT", "INT2": "INT2", "INTERNAL2": "INT2", "EXT": "EXT", "EXTERNAL": "EXT",
                   "MAN": "MAN", "MANUAL": "MAN"}
POLARITIES = {"NORM": "NORM", "NORMAL": "NORM", "INV": "INV", "INVERTED": "INV"}
BURST_MODES = {"TRIG": "TRIG", "TRIGGERED": "TRIG", "GAT": "GAT", "GATED": "GAT"}
HOLDS = {"WIDT": "WIDT", "WIDTH": "WIDT", "DCYC": "DCYC", "DCYCLE": "DCYC", "TDEL": "TDEL", "TDELAY": "TDEL"}
UNITS = {"VPP": "VPP", "VRMS": "VRMS", "DBM": "DBM"}
ARM_SENSES = {"EDGE": "EDGE", "LEV": "LEV", "LEVEL": "LEV"}
ARM_SLOPES = {"POS": "POS", "POSITIVE": "POS", "NEG": "NEG", "NEGATIVE": "NEG", "EITH": "EITH", "EITHER": "EITH"}
BYTE_ORDERS = {"NORM": "NORM", "NORMAL": "NORM", "SWAP": "SWAP", "SWAPPED": "SWAP"}
OPTIONS = "002"  # two channels
SCPI_VERSION = "1999.0"
# an upload is handled before the generic SCPI split: its binary block may hold any byte
_DAC_UPLOAD = re.compile(r"\s*:?(?:SOUR(?:CE)?:)?DATA(\d*):DAC\s+", re.IGNORECASE)
_DAC_TARGET = re.compile(r"(VOLATILE|VOL)\s*,\s*", re.IGNORECASE)
_SOURCE_ROOT = re.compile(r"(^|;)(\s*):?SOUR(?:CE)?:", re.IGNORECASE)  # the optional [:SOURce] root


def upload_time_s(points: int, command_s: float) -> float:
    """How long uploading ``points`` DAC points takes: the command's processing, then the data at line rate."""
    return command_s + points * UPLOAD_S_PER_POINT


class Setting(NamedTuple):
    """A numeric setting: its coupled range, ``*RST`` default, read-back, setter and reply format."""

    range: Callable[[OutputChannel], tuple[float, float]]
    default: float
    get: Callable[[OutputChannel], float]
    set: Callable[[OutputChannel, float], None]
    reply: str = "{:.6e}"


def _stored(attribute: str, limits: tuple[float, float], what: str,
            whole: bool = False) -> Callable[[OutputChannel, float], None]:
    """A setter that stores a value within ``limits`` (rounded to a whole number if ``whole``)."""
    def store(ch: OutputChannel, value: float) -> None:
        setattr(ch, attribute, chan.check(int(round(value)) if whole else value, *limits, what))
    return store


def _in_unit(ch: OutputChannel, vpp_range: tuple[float, float]) -> tuple[float, float]:
    low, high = (ch.to_unit(v) for v in vpp_range)
    return (low, high) if low <= high else (high, low)


SETTINGS = {
    "frequency": Setting(lambda ch: ch.frequency_range(), chan.DEFAULTS["frequency"], lambda ch: ch.frequency,
                         OutputChannel.set_frequency, "{:.9e}"),
    "period": Setting(lambda ch: ch.period_range(), 1 / chan.DEFAULTS["frequency"], lambda ch: ch.period,
                      OutputChannel.set_period, "{:.9e}"),
    "amplitude": Setting(lambda ch: _in_unit(ch, ch.amplitude_range()), chan.DEFAULTS["amplitude"],
                         lambda ch: ch.to_unit(ch.amplitude), lambda ch, v: ch.set_amplitude(ch.from_unit(v))),
    "offset": Setting(OutputChannel.offset_range, 0.0, lambda ch: ch.offset, OutputChannel.set_offset),
    "high": Setting(OutputChannel.high_range, chan.DEFAULTS["amplitude"] / 2, lambda ch: ch.high,
                    OutputChannel.set_high),
    "low": Setting(OutputChannel.low_range, -chan.DEFAULTS["amplitude"] / 2, lambda ch: ch.low,
                   OutputChannel.set_low),
    "limit_high": Setting(lambda ch: chan.LIMIT_HIGH_RANGE, chan.LIMIT_HIGH_RANGE[1], lambda ch: ch.limit_high,
                          lambda ch, v: ch.set_limit("high", v)),
    "limit_low": Setting(lambda ch: chan.LIMIT_LOW_RANGE, chan.LIMIT_LOW_RANGE[0], lambda ch: ch.limit_low,
                         lambda ch, v: ch.set_limit("low", v)),
    "width": Setting(OutputChannel.width_range, chan.DEFAULTS["width"], lambda ch: ch.width,
                     OutputChannel.set_width, "{:.9e}"),
    "delay": Setting(lambda ch: (0.0, max(ch.period - ch.width, 0.0)), 0.0, lambda ch: ch.delay,
                     OutputChannel.set_delay, "{:.9e}"),
    "duty": Setting(OutputChannel.duty_range, 100 * chan.DEFAULTS["width"] * chan.DEFAULTS["frequency"],
                    lambda ch: ch.duty, OutputChannel.set_duty),
    "leading": Setting(lambda ch: chan.TRANSITION_RANGE, chan.DEFAULTS["transition"], lambda ch: ch.leading,
                       lambda ch, v: ch.set_transition("leading", v), "{:.9e}"),
    "trailing": Setting(lambda ch: chan.TRANSITION_RANGE, chan.DEFAULTS["transition"], lambda ch: ch.trailing,
                        lambda ch, v: ch.set_transition("trailing", v), "{:.9e}"),
    "square_duty": Setting(lambda ch: chan.SQUARE_DUTY_RANGE, 50.0, lambda ch: ch.square_duty,
                           _stored("square_duty", chan.SQUARE_DUTY_RANGE, "square duty cycle")),
    "symmetry": Setting(lambda ch: (0.0, 100.0), 100.0, lambda ch: ch.ramp_symmetry,
                        _stored("ramp_symmetry", (0.0, 100.0), "ramp symmetry")),
    "phase": Setting(lambda ch: chan.PHASE_RANGE, 0.0, lambda ch: ch.phase,
                     _stored("phase", chan.PHASE_RANGE, "phase")),
    "source_impedance": Setting(lambda ch: (SOURCE_IMPEDANCE_OHM, SOURCE_IMPEDANCE_OHM), SOURCE_IMPEDANCE_OHM,
                                lambda ch: SOURCE_IMPEDANCE_OHM, OutputChannel.set_source_impedance),
    "load": Setting(lambda ch: chan.LOAD_RANGE, chan.DEFAULTS["load"], lambda ch: ch.load, OutputChannel.set_load),
    "count": Setting(lambda ch: chan.COUNT_RANGE, 1, lambda ch: ch.count,
                     _stored("count", chan.COUNT_RANGE, "trigger count", whole=True), "{:d}"),
    "cycles": Setting(lambda ch: chan.BURST_CYCLES_RANGE, chan.BURST_CYCLES_RANGE[0], lambda ch: ch.count,
                      _stored("count", chan.BURST_CYCLES_RANGE, "burst cycles", whole=True), "{:d}"),
    "burst_period": Setting(lambda ch: chan.BURST_PERIOD_RANGE, 1e-6, lambda ch: ch.burst_period,
                            _stored("burst_period", chan.BURST_PERIOD_RANGE, "burst period"), "{:.9e}"),
    "arm_level": Setting(lambda ch: chan.ARM_LEVEL_RANGE, 1.0, lambda ch: ch.arm_level,
                         _stored("arm_level", chan.ARM_LEVEL_RANGE, "arm level")),
}
# keyword settings: (choices, attribute)
CHOICES = {"shape": (SHAPES, "shape"), "polarity": (POLARITIES, "polarity"), "arm": (ARM_SOURCES, "arm_source"),
           "trigger_source": (TRIGGER_SOURCES, "trigger_source"), "burst_mode": (BURST_MODES, "burst_mode"),
           "hold": (HOLDS, "hold"), "unit": (UNITS, "unit"), "arm_sense": (ARM_SENSES, "arm_sense"),
           "arm_slope": (ARM_SLOPES, "arm_slope")}
# boolean settings: attribute, or a setter
SWITCHES = {"output": "output", "complement": "complement", "burst": "burst",
            "limits": OutputChannel.set_limits_on, "uncoupled": OutputChannel.set_edges_uncoupled}


def _choice(text: str, choices: dict[str, str], what: str) -> str:
    value = choices.get(text.strip().upper())
    if value is None:
        raise ValueError(f"{what} {text.strip()!r}")
    return value


class EmulatedKeysight81160A(ScpiInstrument):
    """An 81160A with two channels, answering the SCPI a lab script plausibly sends (see the module doc)."""

    idn = "Agilent Technologies,81160A,MY52500180,2.0.0.0-2.6"
    model = "Keysight81160A"
    # the instrument's typical processing time per command: an estimate (no figure is published): the
    # 81160A's firmware re-checks the coupled timing and level settings of a channel for each setting
    command_time_s = 0.002

    COMMANDS = [
        (":APPLy<n>:SINusoid", "_apply_sin"), (":APPLy<n>:SQUare", "_apply_squ"), (":APPLy<n>:RAMP", "_apply_ramp"),
        (":APPLy<n>:PULSe", "_apply_puls"), (":APPLy<n>:NOISe", "_apply_nois"), (":APPLy<n>:DC", "_apply_dc"),
        (":APPLy<n>:USER", "_apply_user"), (":APPLy<n>?", "_apply_q"),
        (":FUNCtion<n>:USER?", "_user_q"), (":FUNCtion<n>:USER", "_user"),
        (":FUNCtion<n>:PULSe:TRANsition:BOTH", "_set_leading"),
        (":TRACk:CHANnel<n>[:STATe]?", "_track_q"), (":TRACk:CHANnel<n>[:STATe]", "_track"),
        (":DATA<n>:CATalog?", "_catalogue_q"), (":DATA<n>:NVOLatile:CATalog?", "_nvol_catalogue_q"),
        (":DATA<n>:NVOLatile:FREE?", "_nvol_free_q"), (":DATA<n>:COPY", "_copy"),
        (":DATA<n>:DELete:ALL", "_delete_all"), (":DATA<n>:DELete", "_delete"),
        (":DATA<n>:ATTRibute:POINts?", "_points_q"),
        (":DISPlay[:WINDow]:TEXT:CLEar", "_display_clear"), (":DISPlay[:WINDow]:TEXT[:DATA]?", "_display_text_q"),
        (":DISPlay[:WINDow]:TEXT[:DATA]", "_display_text"), (":DISPlay[:WINDow][:STATe]?", "_display_q"),
        (":DISPlay[:WINDow][:STATe]", "_display"),
        (":STATus:OPERation[:EVENt]?", "_oper_event_q"), (":STATus:OPERation:CONDition?", "_oper_condition_q"),
        (":STATus:QUEStionable[:EVENt]?", "_ques_event_q"), (":STATus:QUEStionable:CONDition?", "_ques_condition_q"),
        (":STATus:PRESet", "_status_preset"), (":FORMat:BORDer?", "_border_q"), (":FORMat:BORDer", "_border"),
        (":SYSTem:VERSion?", "_version_q"), (":SYSTem:BEEPer[:IMMediate]", "_beep"), ("*OPT?", "_options_q"),
        ("*TRG", "_trigger"), (":TRIGger[:SEQuence][:IMMediate]", "_trigger"),
    ]
    # settings with a query and a command: header -> the setting (handlers ``_get_<setting>``, ``_set_<setting>``)
    SETTING_HEADERS = {
        ":FUNCtion<n>:PULSe:TRANsition[:LEADing]": "leading", ":FUNCtion<n>:PULSe:TRANsition:TRAiling": "trailing",
        ":FUNCtion<n>:PULSe:TRANsition:UNCoupled": "uncoupled", ":PULSe:TRANsition<n>[:LEADing]": "leading",
        ":PULSe:TRANsition<n>:TRAiling": "trailing", ":PULSe:TRANsition<n>:UNCoupled": "uncoupled",
        ":FUNCtion<n>:PULSe:DCYCle": "duty", ":FUNCtion<n>:PULSe:WIDTh": "width", ":FUNCtion<n>:PULSe:HOLD": "hold",
        ":FUNCtion<n>:SQUare:DCYCle": "square_duty", ":FUNCtion<n>:RAMP:SYMMetry": "symmetry",
        ":FUNCtion<n>[:SHAPe]": "shape", ":FREQuency<n>[:CW]": "frequency", ":PULSe:FREQuency<n>": "frequency",
        ":PULSe:PERiod<n>": "period", ":PULSe:WIDTh<n>": "width", ":PULSe:DCYCle<n>": "duty",
        ":PULSe:HOLD<n>": "hold", ":PULSe:DELay<n>": "delay", ":FUNCtion<n>:PULSe:DELay": "delay",
        ":OUTPut<n>:IMPedance:EXTernal": "load", ":OUTPut<n>:IMPedance[:INTernal]": "source_impedance",
        ":PHASe<n>[:ADJust]": "phase", ":VOLTage<n>:UNIT": "unit",
        ":VOLTage<n>[:LEVel][:IMMediate]:OFFSet": "offset", ":VOLTage<n>[:LEVel][:IMMediate]:HIGH": "high",
        ":VOLTage<n>[:LEVel][:IMMediate]:LOW": "low", ":VOLTage<n>:LIMit:STATe": "limits",
        ":VOLTage<n>:LIMit[:HIGH]": "limit_high", ":VOLTage<n>:LIMit:LOW": "limit_low",
        ":VOLTage<n>[:LEVel][:IMMediate][:AMPLitude]": "amplitude", ":OUTPut<n>:LOAD": "load",
        ":OUTPut<n>:POLarity": "polarity", ":OUTPut<n>:COMPlement[:STATe]": "complement",
        ":OUTPut<n>[:NORMal][:STATe]": "output", ":ARM:SOURce<n>": "arm", ":ARM:LEVel<n>": "arm_level",
        ":ARM:SENSe<n>": "arm_sense", ":ARM:SLOPe<n>": "arm_slope", ":TRIGger<n>:SOURce": "trigger_source",
        ":TRIGger<n>:COUNt": "count", ":BURSt<n>[:STATe]": "burst", ":BURSt<n>:NCYCles": "cycles",
        ":BURSt<n>:MODE": "burst_mode", ":BURSt<n>:INTernal:PERiod": "burst_period",
        ":STATus:OPERation:ENABle": "oper_enable", ":STATus:OPERation:PTRansition": "oper_ptr",
        ":STATus:OPERation:NTRansition": "oper_ntr", ":STATus:QUEStionable:ENABle": "ques_enable",
        ":STATus:QUEStionable:PTRansition": "ques_ptr", ":STATus:QUEStionable:NTRansition": "ques_ntr",
    }
    COMMANDS += [entry for header, setting in SETTING_HEADERS.items()
                 for entry in ((f"{header}?", f"_get_{setting}"), (header, f"_set_{setting}"))]

    def __init__(self, bench: Bench | None = None) -> None:
        self.catalogues = {1: WaveformCatalogue(), 2: WaveformCatalogue()}  # kept by *RST (non-volatile memory)
        self.operation, self.questionable = RegisterGroup(), RegisterGroup()
        super().__init__(bench)

    def reset_state(self) -> None:
        self.channels = {1: OutputChannel(), 2: OutputChannel()}
        self.tracking: int | None = None  # the channel whose settings the other one copies (:TRACk:CHANnel)
        self.byte_order = "NORM"  # :FORM:BORD: NORMal (big-endian) or SWAPped DAC blocks
        self.display_on = True
        self.display_text = ""
        # (channel, levels in V at the open circuit, durations in s) of the latest triggers, for tests: at most
        # PLAYED_KEPT of them and PLAYED_SEGMENTS_KEPT segments in all (the latest is always kept)
        self.played: deque[tuple[int, np.ndarray, np.ndarray]] = deque(maxlen=PLAYED_KEPT)

    # -- dispatch ---------------------------------------------------------------------------------

    def handle(self, message: str) -> str | None:
        before = {n: ch.waveform_state() for n, ch in self.channels.items()}
        upload = _DAC_UPLOAD.match(message)
        if upload is None:
            reply = super().handle(_SOURCE_ROOT.sub(r"\1\2:", message))
        else:
            try:
                rest = self._upload(upload.group(1), message[upload.end():])
            except ValueError as exc:
                self.push_error(SCPI_ILLEGAL_PARAMETER, f"Illegal parameter value; {exc}")
                rest = ""
            reply = super().handle(_SOURCE_ROOT.sub(r"\1\2:", rest)) if rest.strip() else None
        self._track_changes(before)
        self._update_registers()
        self._tell_bench()
        return reply

    def _tell_bench(self) -> None:
        """Tell the bench which outputs are on (what reaches the pads between waveforms depends on it)."""
        if self.bench is not None:
            for number, ch in self.channels.items():
                self.bench.set_generator_output(number, ch.output)

    def _ch(self, number: str) -> OutputChannel:
        index = int(number) if number else 1
        if index not in self.channels:
            raise ValueError(f"no channel {index}")
        return self.channels[index]

    def _change(self, n: str, action: Callable[[OutputChannel], None]) -> None:
        """Apply a setting to channel ``n``: a refusal queues ``-221`` (``-225``); an adjustment ``-221`` too."""
        ch = self._ch(n)
        try:
            action(ch)
        except SettingsConflict as exc:
            self.push_error(SCPI_SETTINGS_CONFLICT, f"Settings conflict; {exc}")
        except OutOfMemory as exc:
            self.push_error(SCPI_OUT_OF_MEMORY, f"Out of memory; {exc}")
        finally:
            for reason in ch.conflicts:
                self.push_error(SCPI_SETTINGS_CONFLICT, f"Settings conflict; {reason}")
            ch.conflicts.clear()

    # -- generic numeric, keyword and boolean settings ----------------------------------------------

    def _set_number(self, args: str, n: str, name: str) -> None:
        setting = SETTINGS[name]
        ch = self._ch(n)
        key = keyword(args)
        value = {"MIN": setting.range(ch)[0], "MAX": setting.range(ch)[1], "DEF": setting.default}[key] \
            if key else parse_number(args)
        self._change(n, lambda c: setting.set(c, value))

    def _get_number(self, args: str, n: str, name: str) -> str:
        setting = SETTINGS[name]
        ch = self._ch(n)
        key = keyword(args) if args.strip() else None
        if args.strip() and key is None:
            raise ValueError(f"query argument {args.strip()[:30]!r}")
        value = setting.get(ch) if key is None else \
            {"MIN": setting.range(ch)[0], "MAX": setting.range(ch)[1], "DEF": setting.default}[key]
        return setting.reply.format(int(value) if setting.reply == "{:d}" else value)

    def _set_choice(self, args: str, n: str, name: str) -> None:
        choices, attribute = CHOICES[name]
        value = _choice(args, choices, name.replace("_", " "))
        setter = {"shape": OutputChannel.set_shape, "unit": OutputChannel.set_unit}.get(name)
        self._change(n, lambda ch: setter(ch, value) if setter else setattr(ch, attribute, value))

    def _get_choice(self, args: str, n: str, name: str) -> str:
        return str(getattr(self._ch(n), CHOICES[name][1]))

    def _set_switch(self, args: str, n: str, name: str) -> None:
        on = parse_bool(args)
        target = SWITCHES[name]
        self._change(n, lambda ch: target(ch, on) if callable(target) else setattr(ch, target, on))

    def _get_switch(self, args: str, n: str, name: str) -> str:
        target = SWITCHES[name]
        attribute = target if isinstance(target, str) else {"limits": "limits_on",
                                                             "uncoupled": "edges_uncoupled"}[name]
        return "1" if getattr(self._ch(n), attribute) else "0"

    # the handlers SETTING_HEADERS names: ``_set_<setting>`` / ``_get_<setting>`` for every generic setting
    for _name in SETTINGS:
        locals()[f"_set_{_name}"] = partialmethod(_set_number, name=_name)
        locals()[f"_get_{_name}"] = partialmethod(_get_number, name=_name)
    for _name in CHOICES:
        locals()[f"_set_{_name}"] = partialmethod(_set_choice, name=_name)
        locals()[f"_get_{_name}"] = partialmethod(_get_choice, name=_name)
    for _name in SWITCHES:
        locals()[f"_set_{_name}"] = partialmethod(_set_switch, name=_name)
        locals()[f"_get_{_name}"] = partialmethod(_get_switch, name=_name)
    del _name

    def _set_load(self, args: str, n: str) -> None:  # replaces the generic one: INF is the largest load
        self._set_number("MAX" if args.strip().upper() in ("INF", "INFINITY") else args, n, "load")

    def _set_count(self, args: str, n: str) -> None:  # replaces the generic one
        """``:TRIG:COUN``: the cycles per trigger; more than one switches the burst on, one switches it off."""
        self._set_number(args, n, "count")
        ch = self._ch(n)
        ch.burst = ch.count > 1

    # -- APPLy --------------------------------------------------------------------------------------

    def _apply(self, args: str, n: str, shape: str) -> None:
        """``:APPL<n>:<shape> [<freq>[,<ampl>[,<offs>]]]``: omitted or ``DEF`` values are the defaults
        (1 kHz, 1 Vpp, 0 V); ``MIN``/``MAX`` the new function's limits. All or nothing is applied."""
        values = [v.strip() for v in args.split(",")] if args.strip() else []
        if len(values) > 3:
            raise ValueError(f"APPLy takes at most 3 parameters, got {len(values)}")
        values += ["DEF"] * (3 - len(values))
        ch = self._ch(n)
        trial = replace(ch, conflicts=[])
        try:
            trial.set_shape(shape)
            trial.conflicts.clear()  # the frequency sent (or its default) is what counts
            if shape not in ("NOIS", "DC"):
                trial.set_frequency(self._apply_value(values[0], trial.frequency_range(),
                                                      chan.APPLY_DEFAULTS["frequency"]))
            if shape != "DC":
                default = trial.to_unit(chan.APPLY_DEFAULTS["amplitude"])
                amplitude = self._apply_value(values[1], _in_unit(trial, trial.amplitude_range()), default)
                trial.set_amplitude(trial.from_unit(amplitude))
            trial.set_offset(self._apply_value(values[2], trial.offset_range(), chan.APPLY_DEFAULTS["offset"]))
        except SettingsConflict as exc:
            self.push_error(SCPI_SETTINGS_CONFLICT, f"Settings conflict; {exc}")
            return
        for reason in trial.conflicts:
            self.push_error(SCPI_SETTINGS_CONFLICT, f"Settings conflict; {reason}")
        trial.conflicts = ch.conflicts
        self.channels[int(n) if n else 1] = trial

    @staticmethod
    def _apply_value(text: str, limits: tuple[float, float], default: float) -> float:
        key = keyword(text)
        return {"MIN": limits[0], "MAX": limits[1], "DEF": default}[key] if key else parse_number(text)

    _apply_sin = partialmethod(_apply, shape="SIN")
    _apply_squ = partialmethod(_apply, shape="SQU")
    _apply_ramp = partialmethod(_apply, shape="RAMP")
    _apply_puls = partialmethod(_apply, shape="PULS")
    _apply_nois = partialmethod(_apply, shape="NOIS")
    _apply_dc = partialmethod(_apply, shape="DC")
    _apply_user = partialmethod(_apply, shape="USER")

    def _apply_q(self, args: str, n: str) -> str:
        ch = self._ch(n)
        return f'"{ch.shape} {ch.frequency:+.15E},{ch.to_unit(ch.amplitude):+.15E},{ch.offset:+.15E}"'

    # -- arbitrary waveforms ------------------------------------------------------------------------

    def _upload(self, n: str, text: str) -> str:
        """Store DAC codes from ``VOLATILE,<block>`` or ``VOLATILE,<v>,<v>,...``; return what follows them."""
        self._ch(n)
        target = _DAC_TARGET.match(text)
        if target is None:
            raise ValueError(f"DAC data target {text.split(',')[0].strip()[:20]!r}: only VOLATILE")
        body = text[target.end():]
        if body.startswith("#"):
            codes, rest = self._block(body.encode("latin-1"), ">i2" if self.byte_order == "NORM" else "<i2")
        else:
            values, _, rest = body.partition(";")
            codes = np.array([int(v) for v in values.split(",")], dtype=np.int64)
            rest = ";" + rest if rest else ""
        self.catalogues[int(n) if n else 1].upload(codes)
        if self.bench is not None:
            self.bench.advance(upload_time_s(codes.size, self.command_time_s))
        return rest.lstrip("; ")

    @staticmethod
    def _block(raw: bytes, dtype: str) -> tuple[np.ndarray, str]:
        """16-bit codes (``dtype``: byte order) from an IEEE 488.2 definite-length block, and the text after it."""
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
        return np.frombuffer(payload, dtype=dtype).astype(np.int64), raw[start + length:].decode("latin-1")

    def _catalogue(self, n: str) -> WaveformCatalogue:
        self._ch(n)
        return self.catalogues[int(n) if n else 1]

    def _playing(self, n: str) -> str | None:
        ch = self._ch(n)
        return ch.user if ch.shape == "USER" else None

    def _user_q(self, args: str, n: str) -> str:
        return self._ch(n).user

    def _user(self, args: str, n: str) -> None:
        name = self._catalogue(n).resolve(args)
        self._ch(n).user = name

    def _catalogue_q(self, args: str, n: str) -> str:
        return quoted(self._catalogue(n).names())

    def _nvol_catalogue_q(self, args: str, n: str) -> str:
        return quoted(list(self._catalogue(n).stored))

    def _nvol_free_q(self, args: str, n: str) -> str:
        return str(self._catalogue(n).free_slots())

    def _copy(self, args: str, n: str) -> None:
        name, _, source = args.partition(",")
        catalogue = self._catalogue(n)
        self._change(n, lambda ch: catalogue.copy(name, source or VOLATILE))

    def _delete(self, args: str, n: str) -> None:
        catalogue, playing = self._catalogue(n), self._playing(n)
        self._change(n, lambda ch: catalogue.delete(args, playing))
        self._reselect(n)

    def _delete_all(self, args: str, n: str) -> None:
        catalogue, playing = self._catalogue(n), self._playing(n)
        self._change(n, lambda ch: catalogue.delete_all(playing))
        self._reselect(n)

    def _reselect(self, n: str) -> None:
        """A deleted waveform that was selected (not playing) leaves the first built-in selected."""
        ch = self._ch(n)
        if ch.user not in self._catalogue(n).names():
            ch.user = OutputChannel.user

    def _points_q(self, args: str, n: str) -> str:
        catalogue = self._catalogue(n)
        return str(catalogue.points(catalogue.resolve(args) if args.strip() else self._ch(n).user))

    # -- channel coupling -----------------------------------------------------------------------------

    def _track_q(self, args: str, n: str) -> str:
        self._ch(n)
        return "1" if self.tracking == (int(n) if n else 1) else "0"

    def _track(self, args: str, n: str) -> None:
        """``:TRACk:CHANnel<n> ON``: the other channel copies this one's signal settings, now and on every change
        to either (a change to either channel applies to both); only one channel can lead. The voltage limits
        and level window of both channels apply: a copy they forbid is refused (``-221``)."""
        number = int(n) if n else 1
        self._ch(n)
        if not parse_bool(args):
            if self.tracking == number:
                self.tracking = None
            return
        if self.tracking not in (None, number):
            self.push_error(SCPI_SETTINGS_CONFLICT, f"Settings conflict; channel {self.tracking} already couples "
                                                    "the channels")
            return
        try:
            self.channels[number].copy_waveform_to(self.channels[3 - number])
        except SettingsConflict as exc:
            self.push_error(SCPI_SETTINGS_CONFLICT, f"Settings conflict; coupling not switched on: channel "
                                                    f"{3 - number}: {exc}")
            return
        self.tracking = number

    def _track_changes(self, before: dict[int, tuple]) -> None:
        """With the channels coupled, a message's changes to one channel are copied to the other, or undone
        (``-221``) if the other channel's limits forbid them."""
        if self.tracking is None:
            return
        changed = [n for n, ch in self.channels.items() if ch.waveform_state() != before[n]]
        if not changed:
            return
        source = self.tracking if self.tracking in changed else changed[0]
        try:
            self.channels[source].copy_waveform_to(self.channels[3 - source])
        except SettingsConflict as exc:
            OutputChannel.restore(self.channels[source], before[source])
            self.push_error(SCPI_SETTINGS_CONFLICT, f"Settings conflict; coupled channel {3 - source}: {exc}")

    # -- display, system ------------------------------------------------------------------------------

    def _display_q(self, args: str) -> str:
        return "1" if self.display_on else "0"

    def _display(self, args: str) -> None:
        self.display_on = parse_bool(args)

    def _display_text_q(self, args: str) -> str:
        return f'"{self.display_text}"'

    def _display_text(self, args: str) -> None:
        self.display_text = unquote(args)

    def _display_clear(self, args: str) -> None:
        self.display_text = ""

    def _border_q(self, args: str) -> str:
        return self.byte_order

    def _border(self, args: str) -> None:
        self.byte_order = _choice(args, BYTE_ORDERS, "byte order")

    def _version_q(self, args: str) -> str:
        return SCPI_VERSION

    def _beep(self, args: str) -> None:
        """The beeper sounds (nothing to emulate)."""

    def _options_q(self, args: str) -> str:
        return OPTIONS

    # -- status registers -------------------------------------------------------------------------------

    def _update_registers(self) -> None:
        waiting = any(ch.output and ch.arm_source in ("MAN", "EXT") for ch in self.channels.values())
        self.operation.update(WAITING_FOR_TRIGGER if waiting else 0)
        squeezed = any(ch.shape == "PULS" and ch.width >= ch.period for ch in self.channels.values())
        self.questionable.update(TIMING_QUESTIONABLE if squeezed else 0)

    def status_summary(self) -> int:
        return (OSB if self.operation.summary() else 0) | (QSB if self.questionable.summary() else 0)

    def _cls(self, args: str) -> None:
        super()._cls(args)
        self.operation.event = self.questionable.event = 0

    def _status_preset(self, args: str) -> None:
        self.operation.preset()
        self.questionable.preset()

    def _register(self, group: str) -> RegisterGroup:
        return self.operation if group == "oper" else self.questionable

    def _event_q(self, args: str, group: str) -> str:
        return str(self._register(group).read_event())

    def _condition_q(self, args: str, group: str) -> str:
        return str(self._register(group).condition)

    def _mask_q(self, args: str, group: str, mask: str) -> str:
        return str(getattr(self._register(group), mask))

    def _mask(self, args: str, group: str, mask: str) -> None:
        setattr(self._register(group), mask, register_mask(args))

    for _group in ("oper", "ques"):
        locals()[f"_{_group}_event_q"] = partialmethod(_event_q, group=_group)
        locals()[f"_{_group}_condition_q"] = partialmethod(_condition_q, group=_group)
        for _mask_name, _attribute in (("enable", "enable"), ("ptr", "positive"), ("ntr", "negative")):
            locals()[f"_get_{_group}_{_mask_name}"] = partialmethod(_mask_q, group=_group, mask=_attribute)
            locals()[f"_set_{_group}_{_mask_name}"] = partialmethod(_mask, group=_group, mask=_attribute)
    del _group, _mask_name, _attribute

    # -- playing ----------------------------------------------------------------------------------------

    def cycle(self, number: int) -> tuple[np.ndarray, np.ndarray]:
        """One cycle of a channel's output as programmed: (levels in V, durations in s)."""
        ch = self.channels[number]
        if ch.shape == "PULS":
            return ch.pulse_cycle()
        if ch.shape == "SQU":
            return ch.square_cycle()
        if ch.shape == "USER":
            codes = self.catalogues[number].codes(ch.user)
            starts = np.concatenate([[0], np.flatnonzero(np.diff(codes)) + 1])
            counts = np.diff(np.concatenate([starts, [codes.size]]))
            swing = codes[starts] / MAX_DAC * (ch.amplitude / 2)
            levels = ch.offset + (swing if ch.polarity == "NORM" else -swing)
            return levels, counts * (ch.period / codes.size)
        if ch.shape == "DC":
            return np.array([ch.offset]), np.array([ch.period])
        if ch.shape in ("SIN", "RAMP"):
            phase = (np.arange(SAMPLES_PER_CYCLE) + 0.5) / SAMPLES_PER_CYCLE
            unit = np.sin(2 * math.pi * phase) if ch.shape == "SIN" else self._ramp(phase, ch.ramp_symmetry / 100)
            swing = unit * ch.amplitude / 2
            levels = ch.offset + (swing if ch.polarity == "NORM" else -swing)
            return levels, np.full(SAMPLES_PER_CYCLE, ch.period / SAMPLES_PER_CYCLE)
        raise SettingsConflict(f"{ch.shape} is not played on a trigger (emulation limit)")

    @staticmethod
    def _ramp(phase: np.ndarray, symmetry: float) -> np.ndarray:
        """A ramp from −1 up to +1 over ``symmetry`` of the cycle and back down over the rest."""
        if symmetry <= 0:
            return 1 - 2 * phase
        if symmetry >= 1:
            return 2 * phase - 1
        return np.where(phase < symmetry, 2 * phase / symmetry - 1, 1 - 2 * (phase - symmetry) / (1 - symmetry))

    def _trigger(self, args: str, *groups: str) -> None:
        self._tell_bench()
        for number, ch in self.channels.items():
            if not (ch.output and ch.arm_source == "MAN"):
                continue
            try:
                levels, durations = self.cycle(number)
            except SettingsConflict as exc:
                self.push_error(SCPI_EXECUTION_ERROR, f"Execution error; {exc}")
                continue
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
