"""Emulated Keithley 707B switching matrix: TSP statements run by a small, safe interpreter.

Each message is a TSP (Lua) chunk run by :mod:`sim_backend.emulated.tsp_interpreter` (no ``eval``: the
served subset is statements, calls, assignments and ``print``), against the 707B's own names from the
reference manual (707B-901-01, section 7):

- ``channel.close/open/exclusiveclose/exclusiveslotclose(list)``, ``channel.getclose(list)``,
  ``channel.reset(list)``, ``channel.setforbidden/getforbidden/clearforbidden(list)``,
  ``channel.setdelay(list, s)``/``getdelay(list)``, ``channel.getcount/getstate/gettype(list)``,
  ``channel.setlabel(channel, label)``/``getlabel(list)``, ``channel.createspecifier(slot, row, column)``, the
  attributes ``channel.connectrule`` (``channel.BREAK_BEFORE_MAKE``, ``MAKE_BEFORE_BREAK``, ``OFF``) and
  ``channel.connectsequential`` (``channel.ON``/``OFF``); channel lists as
  :mod:`sim_backend.emulated.keithley707b_channels` parses them (crosspoints, ranges, labels, ``slotX``,
  ``allslots``);
- ``errorqueue.clear()``, ``errorqueue.count``, ``errorqueue.next()``; ``reset()``, ``localnode.reset()``,
  ``waitcomplete()``, ``opc()``, ``delay(s)``; ``format.asciiprecision``; ``localnode.model/serialno/revision/
  description``; ``gpib.address``; ``slot[X].idn``;
- the common commands ``*IDN? *RST *CLS *OPC *OPC? *WAI *ESR? *ESE[?] *SRE[?] *STB? *TST?`` (status model of
  :mod:`sim_backend.emulated.status_model`).

Errors: outside the subset, a TSP syntax error (−285) and nothing of the message runs; a Lua runtime error
(−286: calling or indexing ``nil``, a bad channel list, a bad argument) stops the message there; closing a
forbidden crosspoint is refused with :data:`FORBIDDEN_ERROR` and changes nothing. A message holding a
``print`` whose statement fails still replies ``nil``, so a client never waits for a reply that will not come.

Every change of the closed crosspoints is reported to the bench, which routes the device whose pads they
connect; each switching phase takes the relay settle time (plus any ``channel.setdelay``) on the bench's
virtual clock, ordered by the connect rule (:func:`keithley707b_channels.switching_phases`).
"""

from __future__ import annotations

import inspect
import re

from sim_backend.emulated.keithley707b_channels import (
    BREAK_BEFORE_MAKE,
    MAKE_BEFORE_BREAK,
    RULE_OFF,
    SLOT_COUNT,
    ChannelListError,
    crosspoint,
    parse_channel_list,
    specifier,
    switching_phases,
)
from sim_backend.emulated.server import EmulatedInstrument
from sim_backend.emulated.status_model import MSS, StatusModel
from sim_backend.emulated.tsp_interpreter import (
    TSP_RUNTIME_ERROR,
    TSP_SYNTAX_ERROR,
    Attribute,
    Function,
    Interpreter,
    Table,
    TspError,
    TspRuntimeError,
    TspSyntaxError,
    format_number,
    type_name,
)

RELAY_SETTLE_S = 3e-3  # settle time of a matrix card relay (7071/7174A class), per switching phase
ASCII_PRECISION = 6  # format.asciiprecision after reset (the manual's default): digits of a printed number
PRECISION_RANGE = (1, 16)  # format.asciiprecision accepts 1 to 16 digits
MAX_DELAY_S = 60.0  # the emulation's bound on channel.setdelay (the manual gives a minimum of 0 s, no maximum)
DELAY_RANGE_S = (0.0, 100_000.0)  # delay(seconds): more than zero, at most 100,000 s (manual)
GPIB_ADDRESSES = (0, 30)  # gpib.address (manual); 16 by default, kept in nonvolatile memory, not reset
GPIB_DEFAULT = 16
MAX_LABEL_CHARS = 19  # channel.setlabel (manual)
IND_CLOSED = 1  # channel.getstate's relay-closed indicator bit
TYPE_SWITCH = 1  # channel.gettype: the only channel type of the 707B's cards
# Closing a forbidden crosspoint: the manual says "an error is generated"; its error list was not at hand, so
# the emulation queues the standard "Settings conflict" code (the 707B's error list also holds the SCPI codes).
FORBIDDEN_ERROR = -221
SEVERITY_NONE, SEVERITY_USER = 0, 20  # errorqueue.next() severities: queue empty; invalid user input
DATA_OUT_OF_RANGE = -222  # a common command's register value outside 0 to 255
NODE = 1  # TSP-Link node number of a stand-alone instrument
CARD_IDN = "7174A,8x12 Low Current Matrix,01.00a,04110430"  # slot[X].idn: model, description, firmware, serial
_PRINT_CALL = re.compile(r"(^|[^\w.])print\s*[(\"']")


def _string(value: object, position: int, function: str) -> str:
    if not isinstance(value, str):
        got = "no value" if value is None else type_name(value)
        raise TspRuntimeError(f"bad argument #{position} to `{function}' (string expected, got {got})")
    return value


def _number(value: object, position: int, function: str) -> float:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    got = "no value" if value is None else type_name(value)
    raise TspRuntimeError(f"bad argument #{position} to `{function}' (number expected, got {got})")


class EmulatedKeithley707B(EmulatedInstrument):
    """A 707B with six 8×12 matrix cards, all crosspoints open at power-on."""

    idn = "Keithley Instruments Inc., Model 707B, 04110429, 1.0.2"
    model = "Keithley707B"
    fault_error = (TSP_RUNTIME_ERROR, "TSP Runtime error at line 1: execution error")
    # A TSP statement is compiled and run by the instrument's Lua engine: about a millisecond per short
    # message over LAN (the manual gives no figure; relay settling is added separately on the virtual clock).
    command_time_s = 1e-3

    def __init__(self, bench=None) -> None:
        super().__init__(bench)
        self.status = StatusModel()
        self.closed: frozenset[str] = frozenset()
        self.close_counts: dict[str, int] = {}  # relay closures since power-on (channel.getcount); reset keeps them
        self.gpib_address = GPIB_DEFAULT  # nonvolatile: reset() leaves it
        _, model, serial, _ = (part.strip() for part in self.idn.split(","))
        self.description = f"Keithley {model.removeprefix('Model ')} #{serial}"  # localnode.description default
        self.interpreter = Interpreter(self._namespace(), lambda: self.precision)
        self._reset_settings()

    def _reset_settings(self) -> None:
        self.connect_rule = BREAK_BEFORE_MAKE
        self.sequential = False
        self.forbidden: set[str] = set()
        self.delays: dict[str, float] = {}
        self.labels: dict[str, str] = {}  # crosspoint -> label (channel.setlabel)
        self.precision = ASCII_PRECISION

    def reset(self) -> None:
        """``reset()`` and ``*RST``: every crosspoint opens, channel settings and the print format to defaults."""
        self._reset_settings()
        self._switch_to(frozenset())

    def push_error(self, code: int, message: str) -> None:
        super().push_error(code, message)
        self.status.error(code)

    # -- switching ------------------------------------------------------------------------------

    def _switch_to(self, target: frozenset[str]) -> None:
        """Pass through the connect rule's phases; each settles on the virtual clock and tells the bench."""
        for state, seconds in switching_phases(self.closed, target, self.connect_rule, self.sequential,
                                               RELAY_SETTLE_S, self.delays):
            for point in state - self.closed:
                self.close_counts[point] = self.close_counts.get(point, 0) + 1
            self.closed = state
            if self.bench is not None:
                self.bench.set_closed(state)
                self.bench.advance(seconds)

    def _points(self, value: object, function: str, scopes: bool = True) -> list[str]:
        labelled = {label: point for point, label in self.labels.items()}
        try:
            return parse_channel_list(_string(value, 1, function), scopes, labelled)
        except ChannelListError as exc:
            raise TspRuntimeError(f"{function}: {exc}") from None

    def _closable(self, value: object, function: str) -> frozenset[str]:
        points = frozenset(self._points(value, function, scopes=False))
        refused = sorted(points & self.forbidden)
        if refused:
            raise TspError(FORBIDDEN_ERROR, f"Settings conflict; {','.join(refused)} forbidden to close")
        return points

    def _close(self, channels=None) -> tuple:
        self._switch_to(self.closed | self._closable(channels, "close"))
        return ()

    def _open(self, channels=None) -> tuple:
        self._switch_to(self.closed - frozenset(self._points(channels, "open")))
        return ()

    def _exclusive_close(self, channels=None) -> tuple:
        if isinstance(channels, str) and not channels.strip():  # the manual: an empty list opens everything
            self._switch_to(frozenset())
        else:
            self._switch_to(self._closable(channels, "exclusiveclose"))
        return ()

    def _exclusive_slot_close(self, channels=None) -> tuple:
        points = self._closable(channels, "exclusiveslotclose")
        slots = {point[0] for point in points}
        self._switch_to(frozenset(p for p in self.closed if p[0] not in slots) | points)
        return ()

    def _getclose(self, channels=None) -> tuple:
        wanted = set(self._points(channels, "getclose"))
        return (";".join(sorted(self.closed & wanted)) or None,)

    def _reset_channels(self, channels=None) -> tuple:
        points = frozenset(self._points(channels, "reset"))
        self.forbidden -= points
        for point in points:
            self.delays.pop(point, None)
            self.labels.pop(point, None)
        self._switch_to(self.closed - points)
        return ()

    def _setforbidden(self, channels=None) -> tuple:
        self.forbidden |= set(self._points(channels, "setforbidden"))
        return ()

    def _getforbidden(self, channels=None) -> tuple:
        wanted = set(self._points(channels, "getforbidden"))
        # comma-separated (getclose uses semicolons): QCoDeS's 3706A driver, written against the instrument
        # family, splits the two replies so
        return (",".join(sorted(self.forbidden & wanted)) or None,)

    def _clearforbidden(self, channels=None) -> tuple:
        self.forbidden -= set(self._points(channels, "clearforbidden"))
        return ()

    def _setdelay(self, channels=None, delay=None) -> tuple:
        points = self._points(channels, "setdelay")
        seconds = _number(delay, 2, "setdelay")
        if not 0.0 <= seconds <= MAX_DELAY_S:
            raise TspRuntimeError(f"setdelay: delay {seconds:g} s outside 0 to {MAX_DELAY_S:g} s")
        for point in points:
            self.delays[point] = seconds
        return ()

    def _getdelay(self, channels=None) -> tuple:
        points = self._points(channels, "getdelay")
        return (",".join(format_number(self.delays.get(p, 0.0), self.precision) for p in points),)

    def _getcount(self, channels=None) -> tuple:
        points = self._points(channels, "getcount")
        return (",".join(str(self.close_counts.get(p, 0)) for p in points),)

    def _getstate(self, channels=None, mask=None) -> tuple:
        points = self._points(channels, "getstate")
        indicators = 0xFF if mask is None else int(_number(mask, 2, "getstate"))
        return (",".join(str((IND_CLOSED if p in self.closed else 0) & indicators) for p in points),)

    def _gettype(self, channels=None) -> tuple:
        return (",".join(str(TYPE_SWITCH) for _ in self._points(channels, "gettype")),)

    def _createspecifier(self, slot=None, row=None, column=None) -> tuple:
        numbers = [_number(value, position, "createspecifier") for position, value in enumerate((slot, row, column), 1)]
        try:
            if not all(n.is_integer() for n in numbers):
                raise ChannelListError(f"slot, row and column must be whole numbers, got {numbers}")
            return (specifier(*(int(n) for n in numbers)),)
        except ChannelListError as exc:
            raise TspRuntimeError(f"createspecifier: {exc}") from None

    def _setlabel(self, channel=None, label=None) -> tuple:
        try:
            point = crosspoint(_string(channel, 1, "setlabel"))
        except ChannelListError as exc:
            raise TspRuntimeError(f"setlabel: {exc}") from None
        text = _string(label, 2, "setlabel")
        if not text or text.startswith(" "):  # the manual: "" or a leading space clears the label
            self.labels.pop(point, None)
            return ()
        if len(text) > MAX_LABEL_CHARS:
            raise TspRuntimeError(f"setlabel: label longer than {MAX_LABEL_CHARS} characters")
        taken = any(other != point and used == text for other, used in self.labels.items())
        if taken or self._names_a_channel(text):
            raise TspRuntimeError(f"setlabel: label {text!r} is not unique")
        self.labels[point] = text
        return ()

    @staticmethod
    def _names_a_channel(text: str) -> bool:
        try:
            parse_channel_list(text)
        except ChannelListError:
            return False
        return True

    def _getlabel(self, channels=None) -> tuple:
        return (",".join(self.labels.get(p, p) for p in self._points(channels, "getlabel")),)

    def _delay(self, seconds=None) -> tuple:
        value = _number(seconds, 1, "delay")
        if not DELAY_RANGE_S[0] < value <= DELAY_RANGE_S[1]:
            raise TspRuntimeError(f"delay: {value:g} s outside more than 0 to {DELAY_RANGE_S[1]:g} s")
        if self.bench is not None:
            self.bench.advance(value)
        return ()

    def _set_gpib_address(self, value: object) -> None:
        address = _number(value, 1, "address")
        if not address.is_integer() or not GPIB_ADDRESSES[0] <= address <= GPIB_ADDRESSES[1]:
            raise TspRuntimeError(f"gpib.address: {address:g} outside {GPIB_ADDRESSES[0]} to {GPIB_ADDRESSES[1]}")
        self.gpib_address = int(address)

    def _set_description(self, value: object) -> None:
        self.description = _string(value, 1, "description")

    def _set_connect_rule(self, value: object) -> None:
        rule = _number(value, 1, "connectrule")
        if rule not in (BREAK_BEFORE_MAKE, MAKE_BEFORE_BREAK, RULE_OFF):
            raise TspRuntimeError(f"connectrule: invalid value {value!r} (channel.BREAK_BEFORE_MAKE, "
                                  "channel.MAKE_BEFORE_BREAK or channel.OFF)")
        self.connect_rule = int(rule)

    def _set_sequential(self, value: object) -> None:
        setting = _number(value, 1, "connectsequential")
        if setting not in (0, 1):
            raise TspRuntimeError(f"connectsequential: invalid value {value!r} (channel.ON or channel.OFF)")
        self.sequential = setting == 1

    def _set_precision(self, value: object) -> None:
        digits = _number(value, 1, "asciiprecision")
        if not digits.is_integer() or not PRECISION_RANGE[0] <= digits <= PRECISION_RANGE[1]:
            raise TspRuntimeError(f"asciiprecision: {value!r} outside {PRECISION_RANGE[0]} to {PRECISION_RANGE[1]}")
        self.precision = int(digits)

    # -- errors and the rest of the namespace ---------------------------------------------------

    def _error_next(self) -> tuple:
        if not self.errors:
            return (0.0, "Queue Is Empty", float(SEVERITY_NONE), float(NODE))
        code, message = self.next_error()
        return (float(code), message, float(SEVERITY_USER), float(NODE))

    def _clear(self) -> tuple:
        self.clear_errors()
        return ()

    def _reset_all(self) -> tuple:
        self.reset()
        return ()

    def _opc(self) -> tuple:
        self.status.arm_opc()
        return ()

    def _namespace(self) -> dict[str, object]:
        def function(name, method):
            return Function(name, method, len(inspect.signature(method).parameters))

        channel = Table({
            "close": function("close", self._close), "open": function("open", self._open),
            "exclusiveclose": function("exclusiveclose", self._exclusive_close),
            "exclusiveslotclose": function("exclusiveslotclose", self._exclusive_slot_close),
            "getclose": function("getclose", self._getclose), "reset": function("reset", self._reset_channels),
            "setforbidden": function("setforbidden", self._setforbidden),
            "getforbidden": function("getforbidden", self._getforbidden),
            "clearforbidden": function("clearforbidden", self._clearforbidden),
            "setdelay": function("setdelay", self._setdelay), "getdelay": function("getdelay", self._getdelay),
            "getcount": function("getcount", self._getcount), "getstate": function("getstate", self._getstate),
            "gettype": function("gettype", self._gettype),
            "createspecifier": function("createspecifier", self._createspecifier),
            "setlabel": function("setlabel", self._setlabel), "getlabel": function("getlabel", self._getlabel),
            "connectrule": Attribute(lambda: float(self.connect_rule), self._set_connect_rule),
            "connectsequential": Attribute(lambda: float(self.sequential), self._set_sequential),
            "BREAK_BEFORE_MAKE": float(BREAK_BEFORE_MAKE), "MAKE_BEFORE_BREAK": float(MAKE_BEFORE_BREAK),
            "OFF": float(RULE_OFF), "ON": 1.0, "IND_CLOSED": float(IND_CLOSED), "TYPE_SWITCH": float(TYPE_SWITCH),
        })
        _, model, serial, revision = (part.strip() for part in self.idn.split(","))
        return {
            "channel": channel,
            "errorqueue": Table({"clear": function("clear", self._clear), "next": function("next", self._error_next),
                                 "count": Attribute(lambda: float(len(self.errors)))}),
            "format": Table({"asciiprecision": Attribute(lambda: float(self.precision), self._set_precision)}),
            "localnode": Table({"model": Attribute(lambda: model.removeprefix("Model ")),
                                "serialno": Attribute(lambda: serial), "revision": Attribute(lambda: revision),
                                "description": Attribute(lambda: self.description, self._set_description),
                                "reset": function("reset", self._reset_all)}),
            "slot": Table({number: Table({"idn": Attribute(lambda: CARD_IDN)}) for number in range(1, SLOT_COUNT + 1)}),
            "gpib": Table({"address": Attribute(lambda: float(self.gpib_address), self._set_gpib_address)}),
            "reset": function("reset", self._reset_all),
            "delay": function("delay", self._delay),
            "waitcomplete": function("waitcomplete", lambda: ()),  # switching completes within its statement
            "opc": function("opc", self._opc),
        }

    # -- one message ----------------------------------------------------------------------------

    @staticmethod
    def _nils(message: str) -> list[str]:
        """``nil`` for each ``print`` call in a message that did not run, so that no client waits for it."""
        return ["nil"] * len(_PRINT_CALL.findall(message))

    def rejected_reply(self, message: str) -> str | None:
        """A rejected message answers ``nil`` for each ``print`` it holds (as a failing query does)."""
        return "\n".join(self._nils(message)) or None

    def _common(self, header: str, argument: str) -> str | None:
        """The IEEE 488.2 common commands the 707B accepts besides TSP."""
        if header == "*IDN?":
            return self.idn
        if header == "*RST":
            self.reset()
        elif header == "*CLS":
            self.clear_errors()
            self.status.clear()
        elif header == "*OPC":
            self.status.arm_opc()
        elif header == "*OPC?":
            return "1"  # no operation overlaps: a switching statement completes before the next message
        elif header in ("*ESR?", "*ESE?", "*SRE?", "*STB?", "*TST?"):
            return str({"*ESR?": self.status.read_esr, "*ESE?": lambda: self.status.ese,
                        "*SRE?": lambda: self.status.sre, "*STB?": lambda: self.status.stb(bool(self.errors)),
                        "*TST?": lambda: 0}[header]())
        elif header in ("*ESE", "*SRE") and argument:
            try:
                value = StatusModel.register_value(argument)
            except ValueError as exc:
                self.push_error(DATA_OUT_OF_RANGE, f"Data out of range; {header} {exc}")
                return None
            if header == "*ESE":
                self.status.ese = value
            else:
                self.status.sre = value & ~MSS
        elif header != "*WAI":
            self.push_error(TSP_SYNTAX_ERROR, "TSP Syntax error at line 1: unexpected symbol near `*'")
        return None

    def handle(self, message: str) -> str | None:
        statement = message.strip()
        if statement.startswith("*"):
            header, _, argument = statement.partition(" ")
            return self._common(header.upper(), argument.strip())
        try:
            lines = self.interpreter.run(statement)
        except TspSyntaxError as error:
            self.push_error(error.code, error.message)
            lines = self._nils(statement)
        except TspError as error:
            self.push_error(error.code, error.message)
            lines = error.printed + ["nil"] * error.unprinted
        self.status.settle()
        return "\n".join(lines) if lines else None
