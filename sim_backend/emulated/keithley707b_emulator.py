"""Emulated Keithley 707B switching matrix: the TSP statements of the project's driver.

The statements are recognized with regular expressions (no Lua is executed):

- ``channel.close("<list>")``, ``channel.open("<list>")``, ``channel.exclusiveclose("<list>")``: a list
  of crosspoints ``1A01``..``6H12``; ``channel.open`` also takes ``allslots`` and ``slot1``..``slot6``;
  ``channel.exclusiveclose("")`` opens everything (as the reference manual says).
- ``print(channel.getclose("<list>"))``: the closed crosspoints within the list, ``;``-separated and
  sorted, or ``nil``.
- ``reset()`` and ``*RST`` open every crosspoint; ``*CLS`` and ``errorqueue.clear()`` empty the queue.
- ``print(errorqueue.count)``, ``print(errorqueue.next())`` (code, message, severity, node; tab-separated
  like TSP's ``print``), ``*IDN?``.

A statement it does not recognize is a TSP syntax error (-285) in the queue, and nothing is replied.
(An instrument error injected by ``faults.error_after_messages`` is a TSP runtime error, -286, by default.)
A recognized call with a bad channel list is a TSP runtime error (-286) and changes nothing. A query
(``print(...)``) that fails or is not emulated queues a runtime error and replies ``nil``, so a client
never waits for a reply that will not come.

Every change of the closed crosspoints is reported to the bench, which routes the device whose pads
they connect. Each switching phase takes the relay settle time on the virtual clock; an exclusive
close that opens some crosspoints and closes others takes two (break before make).
"""

from __future__ import annotations

import re

from sim_backend.emulated.server import EmulatedInstrument

RELAY_SETTLE_S = 3e-3  # settle time of a matrix card relay (7071/7174A class), per switching phase
ASCII_PRECISION = 10  # format.asciiprecision after reset: digits of a printed number
TSP_SYNTAX_ERROR = -285
TSP_RUNTIME_ERROR = -286
SEVERITY_NONE, SEVERITY_USER = 0, 20  # errorqueue.next() severities: queue empty; invalid user input
NODE = 1  # TSP-Link node number of a stand-alone instrument
SLOT_COUNT = 6

_CROSSPOINT = re.compile(r"^[1-6][A-H](0[1-9]|1[0-2])$")
_SLOT = re.compile(r"^slot([1-6])$", re.IGNORECASE)
_STRING = r'\s*"([^"]*)"\s*'
_SWITCH = re.compile(rf"^channel\.(close|open|exclusiveclose)\({_STRING}\)\s*;?$")
_GETCLOSE = re.compile(rf"^print\(\s*channel\.getclose\({_STRING}\)\s*\)\s*;?$")
_PRINT = re.compile(r"^print\(\s*([A-Za-z_][\w.]*(?:\(\s*\))?)\s*\)\s*;?$")
_CALL = re.compile(r"^([A-Za-z_][\w.]*)\(\s*\)\s*;?$")
ALL_CROSSPOINTS = frozenset(f"{slot}{row}{column:02d}" for slot in range(1, SLOT_COUNT + 1)
                            for row in "ABCDEFGH" for column in range(1, 13))


class ChannelListError(ValueError):
    """A channel list the instrument refuses."""


def tsp_number(value: float) -> str:
    """A number as TSP's ``print`` writes it with the default ASCII precision."""
    return f"{value:.{ASCII_PRECISION - 1}e}"


def parse_channel_list(text: str, scopes: bool) -> frozenset[str]:
    """The crosspoints a channel list names; ``scopes`` allows ``allslots`` and ``slotN``."""
    items = [item.strip() for item in text.split(",")]
    if not any(items):
        raise ChannelListError("empty channel list")
    points: set[str] = set()
    for item in items:
        name = item.upper()
        if _CROSSPOINT.match(name):
            points.add(name)
        elif scopes and item.lower() == "allslots":
            points |= ALL_CROSSPOINTS
        elif scopes and (slot := _SLOT.match(item)) is not None:
            points |= {p for p in ALL_CROSSPOINTS if p[0] == slot.group(1)}
        elif item.lower() == "allslots" or _SLOT.match(item):
            raise ChannelListError(f"{item} is not allowed here")
        else:
            raise ChannelListError(f"invalid channel {item!r}")
    return frozenset(points)


class EmulatedKeithley707B(EmulatedInstrument):
    """A 707B with six 8×12 matrix cards, all crosspoints open at power-on."""

    idn = "Keithley Instruments Inc., Model 707B, 04110429, 1.0.2"
    model = "Keithley707B"
    fault_error = (TSP_RUNTIME_ERROR, "TSP Runtime error at line 1: execution error")

    def __init__(self, bench=None) -> None:
        super().__init__(bench)
        self.closed: frozenset[str] = frozenset()

    # -- switching ------------------------------------------------------------------------------

    def _switch_to(self, closed: frozenset[str]) -> None:
        """Open what must open, then close what must close; each phase settles and tells the bench."""
        opening, closing = self.closed - closed, closed - self.closed
        phases = [self.closed - opening] if opening else []
        if closing or not phases:
            phases.append(closed)
        for state in phases:
            self.closed = state
            if self.bench is not None:
                self.bench.set_closed(state)
                self.bench.advance(RELAY_SETTLE_S)

    def _switch(self, action: str, channel_list: str) -> None:
        if action == "exclusiveclose" and not channel_list.strip():
            self._switch_to(frozenset())
            return
        points = parse_channel_list(channel_list, scopes=action == "open")
        if action == "close":
            self._switch_to(self.closed | points)
        elif action == "open":
            self._switch_to(self.closed - points)
        else:
            self._switch_to(points)

    def _getclose(self, channel_list: str) -> str:
        found = sorted(self.closed & parse_channel_list(channel_list, scopes=True))
        return ";".join(found) if found else "nil"

    # -- errors ---------------------------------------------------------------------------------

    def _error_entry(self) -> str:
        if not self.errors:
            return "\t".join([tsp_number(0), "Queue Is Empty", tsp_number(SEVERITY_NONE), tsp_number(NODE)])
        code, message = self.next_error()
        return "\t".join([tsp_number(code), message, tsp_number(SEVERITY_USER), tsp_number(NODE)])

    def rejected_reply(self, message: str) -> str | None:
        """A rejected ``print(...)`` query answers ``nil`` (as a failing query does); anything else, nothing."""
        return "nil" if message.strip().startswith("print(") else None

    def _syntax_error(self, statement: str) -> None:
        self.push_error(TSP_SYNTAX_ERROR, f"TSP Syntax error at line 1: unexpected symbol near '{statement[:40]}'")

    # -- one message ----------------------------------------------------------------------------

    def handle(self, message: str) -> str | None:
        statement = message.strip()
        upper = statement.upper()
        if upper == "*IDN?":
            return self.idn
        if upper == "*RST":
            self._switch_to(frozenset())
            return None
        if upper == "*CLS":
            self.clear_errors()
            return None
        try:
            if (match := _SWITCH.match(statement)) is not None:
                self._switch(*match.groups())
                return None
            if (match := _GETCLOSE.match(statement)) is not None:
                return self._getclose(match.group(1))
        except ChannelListError as exc:
            self.push_error(TSP_RUNTIME_ERROR, f"TSP Runtime error at line 1: {exc}")
            return "nil" if statement.startswith("print(") else None
        if (match := _PRINT.match(statement)) is not None:
            expression = re.sub(r"\s", "", match.group(1))
            if expression == "errorqueue.count":
                return tsp_number(len(self.errors))
            if expression == "errorqueue.next()":
                return self._error_entry()
            # a query the emulation does not know: an error in the queue, and "nil" so that no client waits
            self.push_error(TSP_RUNTIME_ERROR, f"TSP Runtime error at line 1: {expression} is not emulated")
            return "nil"
        elif (match := _CALL.match(statement)) is not None:
            if match.group(1) == "reset":
                self._switch_to(frozenset())
                return None
            if match.group(1) == "errorqueue.clear":
                self.clear_errors()
                return None
        self._syntax_error(statement)
        return None
