"""Keithley 707B switching matrix mainframe (TSP), with 8×12 matrix cards, in PyMeasure's style.

The 707B speaks TSP: Lua statements, with queries written as ``print(...)``. A crosspoint is named
``<slot><row><column>``: slot 1–6, row A–H, column 01–12 (``"1A01"``), as in the reference manual's
``channel.close("1A01,1B02")``. Names are validated before anything is sent: an invalid one raises
ValueError and nothing is written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pymeasure.instruments import Instrument

from instruments.drivers.errors import raise_errors

SLOTS = (1, 6)
ROWS = "ABCDEFGH"
COLUMNS = (1, 12)
ALL_SLOTS = "allslots"
CROSSPOINT = re.compile(rf"^([{SLOTS[0]}-{SLOTS[1]}])([{ROWS[0]}-{ROWS[-1]}])(\d\d)$")


def crosspoint_name(point: str) -> str:
    """The canonical name of one crosspoint (``"1a1"`` is refused, ``"1a01"`` becomes ``"1A01"``)."""
    name = str(point).strip().upper()
    match = CROSSPOINT.match(name)
    if match is None or not COLUMNS[0] <= int(match.group(3)) <= COLUMNS[1]:
        raise ValueError(f"{point!r} is not a 707B crosspoint: slot {SLOTS[0]}-{SLOTS[1]}, row "
                         f"{ROWS[0]}-{ROWS[-1]}, column {COLUMNS[0]:02d}-{COLUMNS[1]:02d} (e.g. 1A01)")
    return name


def crosspoint_list(points: str | Iterable[str]) -> str:
    """Validated channel list for TSP: ``["1a01", "1B02"]`` or ``"1A01,1B02"`` → ``"1A01,1B02"``."""
    items = points.split(",") if isinstance(points, str) else list(points)
    names = list(dict.fromkeys(crosspoint_name(p) for p in items))  # unique, in the order given
    if not names:
        raise ValueError("no crosspoints given")
    return ",".join(names)


def _parse_closed(reply: str) -> set[str]:
    """``"1A01;1B02"`` → ``{"1A01", "1B02"}``; ``"nil"`` (nothing closed) → empty set."""
    reply = reply.strip()
    if reply in ("", "nil"):
        return set()
    return {p.strip() for p in reply.split(";") if p.strip()}


def _parse_error(fields: list[str]) -> tuple[int, str]:
    """``errorCode, message, severity, errorNode`` (tab-separated by ``print``) → ``(code, message)``."""
    return int(float(fields[0])), fields[1].strip() if len(fields) > 1 else ""


class Keithley707B(Instrument):
    """Keithley 707B switching matrix (TSP command set)."""

    def __init__(self, adapter, name: str = "Keithley 707B switching matrix", **kwargs) -> None:
        kwargs.setdefault("read_termination", "\n")
        kwargs.setdefault("write_termination", "\n")
        super().__init__(adapter, name, includeSCPI=False, **kwargs)

    id = Instrument.measurement("*IDN?", """Get the identification string (str).""", cast=str, maxsplit=0)

    closed_crosspoints = Instrument.measurement(
        f'print(channel.getclose("{ALL_SLOTS}"))',
        """Get the closed crosspoints of every slot (set of names, empty when none).""",
        cast=str, maxsplit=0, get_process=_parse_closed,
    )

    error_count = Instrument.measurement(
        "print(errorqueue.count)",
        """Get the number of entries in the error queue (int).""",
        cast=str, get_process=lambda v: int(float(v)),
    )

    next_error = Instrument.measurement(
        "print(errorqueue.next())",
        """Get and remove the oldest error: ``(code, message)``; ``(0, "Queue Is Empty")`` when none.""",
        cast=str, separator="\t", get_process_list=_parse_error, get_process=lambda v: _parse_error([v]),
    )

    def close_crosspoints(self, points: str | Iterable[str]) -> None:
        """Close the crosspoints ``points``; those already closed stay closed."""
        self.write(f'channel.close("{crosspoint_list(points)}")')

    def open_crosspoints(self, points: str | Iterable[str]) -> None:
        """Open the crosspoints ``points``."""
        self.write(f'channel.open("{crosspoint_list(points)}")')

    def open_all(self) -> None:
        """Open every crosspoint of every card."""
        self.write(f'channel.open("{ALL_SLOTS}")')

    def exclusive_close(self, points: str | Iterable[str]) -> None:
        """Close exactly ``points``: every other crosspoint opens first (break before make)."""
        self.write(f'channel.exclusiveclose("{crosspoint_list(points)}")')

    def reset(self) -> None:
        """Reset the instrument to its defaults: every crosspoint opens."""
        self.write("reset()")

    def clear_errors(self) -> None:
        """Empty the error queue."""
        self.write("errorqueue.clear()")

    def check_errors(self) -> list[tuple[int, str]]:
        """Read the whole error queue; raise :class:`InstrumentErrors` naming every error found."""
        errors = [self.next_error for _ in range(self.error_count)]
        return raise_errors(self.name, [(code, message) for code, message in errors if code != 0])
