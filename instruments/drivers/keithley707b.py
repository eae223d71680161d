"""Keithley 707B switching matrix mainframe (TSP), with 8×12 matrix cards, in PyMeasure's style.

The 707B speaks TSP: Lua statements, with queries written as ``print(...)``. Crosspoints are named
``<slot><row><column>``: slot 1–6, row A–H, column 01–12 (``"1A01"``). Names are validated before
anything is sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pymeasure.instruments import Instrument

from instruments.drivers.keithley2450 import InstrumentError

CROSSPOINT = re.compile(r"^([1-6])([A-H])(0[1-9]|1[0-2])$")
ALL_SLOTS = "allslots"


def crosspoint_list(points: Iterable[str]) -> str:
    """Validated, comma-joined crosspoint names (``"1A01,1B02"``); ValueError names a bad one."""
    names = []
    for point in points:
        name = str(point).upper()
        if not CROSSPOINT.match(name):
            raise ValueError(f"{point!r} is not a 707B crosspoint (slot 1-6, row A-H, column 01-12, e.g. 1A01)")
        names.append(name)
    if not names:
        raise ValueError("no crosspoints given")
    return ",".join(names)


def _parse_closed(reply: str) -> set[str]:
    reply = reply.strip()
    if reply in ("", "nil"):
        return set()
    return {p for p in reply.split(";") if p}


class Keithley707B(Instrument):
    """Keithley 707B switching matrix."""

    def __init__(self, adapter, name: str = "Keithley 707B switching matrix", **kwargs) -> None:
        kwargs.setdefault("read_termination", "\n")
        kwargs.setdefault("write_termination", "\n")
        super().__init__(adapter, name, includeSCPI=False, **kwargs)

    id = Instrument.measurement("*IDN?", """Get the identification string (str).""", cast=str, maxsplit=0)

    closed_crosspoints = Instrument.measurement(
        f'print(channel.getclose("{ALL_SLOTS}"))',
        """Get the closed crosspoints (set of names).""",
        cast=str, maxsplit=0, get_process=_parse_closed,
    )

    error_count = Instrument.measurement(
        "print(errorqueue.count)",
        """Get the number of entries in the error queue (int).""",
        cast=lambda v: int(float(v)),
    )

    def close_crosspoints(self, points: Iterable[str]) -> None:
        """Close the crosspoints ``points`` (others stay as they are)."""
        self.write(f'channel.close("{crosspoint_list(points)}")')

    def open_crosspoints(self, points: Iterable[str]) -> None:
        """Open the crosspoints ``points``."""
        self.write(f'channel.open("{crosspoint_list(points)}")')

    def open_all(self) -> None:
        """Open every crosspoint of every card."""
        self.write(f'channel.open("{ALL_SLOTS}")')

    def exclusive_close(self, points: Iterable[str]) -> None:
        """Open every crosspoint, then close exactly ``points`` (break before make)."""
        self.write(f'channel.exclusiveclose("{crosspoint_list(points)}")')

    def reset(self) -> None:
        """Reset the instrument: every crosspoint opens."""
        self.write("reset()")

    def next_error(self) -> tuple[int, str]:
        """Pop the oldest error: ``(code, message)``."""
        fields = self.ask("print(errorqueue.next())").strip().split("\t")
        return int(float(fields[0])), fields[1].strip() if len(fields) > 1 else ""

    def check_errors(self) -> list[tuple[int, str]]:
        """Read the whole error queue; raise :class:`InstrumentError` naming every error found."""
        errors = [self.next_error() for _ in range(self.error_count)]
        if errors:
            text = "; ".join(f"{code}: {message}" for code, message in errors)
            raise InstrumentError(f"{self.name} reports: {text}")
        return errors
