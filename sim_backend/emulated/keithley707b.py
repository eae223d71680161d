"""Emulated Keithley 707B switching matrix: the TSP statements of the project's driver.

The statements are recognized with regular expressions (no Lua is executed): ``channel.close``,
``channel.open``, ``channel.exclusiveclose``, ``print(channel.getclose(...))``, ``reset()``,
``print(errorqueue.count)``, ``print(errorqueue.next())``, ``errorqueue.clear()`` and ``*IDN?``.
Anything else is a TSP syntax error in the queue. Every change of the closed crosspoints is reported
to the bench, which routes the device whose pads they connect; each takes the relay settle time.
"""

from __future__ import annotations

import re

from sim_backend.emulated.server import EmulatedInstrument

RELAY_SETTLE_S = 3e-3
CROSSPOINT = re.compile(r"^[1-6][A-H](0[1-9]|1[0-2])$")
TSP_SYNTAX_ERROR = -285
TSP_PARAMETER_ERROR = -286
_CALL = re.compile(r'^channel\.(close|open|exclusiveclose)\(\s*"([^"]*)"\s*\)$')
_GETCLOSE = re.compile(r'^print\(\s*channel\.getclose\(\s*"([^"]*)"\s*\)\s*\)$')


def _tsp_number(value: float) -> str:
    return f"{value:.9e}"


class EmulatedKeithley707B(EmulatedInstrument):
    idn = "Keithley Instruments Inc., Model 707B, 04110429, 1.0.2"
    model = "Keithley707B"

    def __init__(self, bench=None) -> None:
        super().__init__(bench)
        self.closed: set[str] = set()

    def _points(self, text: str) -> set[str]:
        names = {p.strip().upper() for p in text.split(",") if p.strip()}
        bad = sorted(p for p in names if not CROSSPOINT.match(p))
        if not names or bad:
            raise ValueError(f"invalid channel list {text!r}")
        return names

    def _changed(self) -> None:
        if self.bench is not None:
            self.bench.set_closed(self.closed)
            self.bench.advance(RELAY_SETTLE_S)

    def handle(self, message: str) -> str | None:
        statement = message.strip()
        if statement == "*IDN?":
            return self.idn
        if statement == "reset()":
            self.closed.clear()
            self._changed()
            return None
        if statement == "print(errorqueue.count)":
            return _tsp_number(len(self.errors))
        if statement == "print(errorqueue.next())":
            code, text = self.next_error() if self.errors else (0, "Queue Is Empty")
            return f"{_tsp_number(code)}\t{text}\t{_tsp_number(0)}\t{_tsp_number(0)}"
        if statement == "errorqueue.clear()":
            self.clear_errors()
            return None
        if (match := _GETCLOSE.match(statement)) is not None:
            if match.group(1).lower() != "allslots":
                try:
                    wanted = self._points(match.group(1))
                except ValueError as exc:
                    self.push_error(TSP_PARAMETER_ERROR, f"Parameter error: {exc}")
                    return "nil"
            else:
                wanted = self.closed
            found = sorted(self.closed & wanted)
            return ";".join(found) if found else "nil"
        if (match := _CALL.match(statement)) is not None:
            action, arg = match.groups()
            try:
                points = set() if arg.lower() == "allslots" and action == "open" else self._points(arg)
            except ValueError as exc:
                self.push_error(TSP_PARAMETER_ERROR, f"Parameter error: {exc}")
                return None
            if action == "close":
                self.closed |= points
            elif action == "open":
                self.closed = set() if arg.lower() == "allslots" else self.closed - points
            else:
                self.closed = set(points)
            self._changed()
            return None
        self.push_error(TSP_SYNTAX_ERROR, f"TSP Syntax error at line 1: unexpected symbol near '{statement[:40]}'")
        return None
