"""Parameters of the emulated Keithley 2450's commands: comma-separated lists, bounded and whole numbers.

A number beyond its bounds is :class:`~sim_backend.emulated.scpi_values.OutOfRange` (``-222``); one that is not
a number, or not whole where a count or index is asked for, a ``ValueError`` (``-224``).
"""

from __future__ import annotations

from sim_backend.emulated.scpi_values import OutOfRange, number


def params(args: str) -> list[str]:
    """Comma-separated parameters, stripped, empty ones left out."""
    return [a.strip() for a in args.split(",") if a.strip()]


def bounded(text: str, low: float, high: float, what: str) -> float:
    """A number in ``[low, high]``."""
    value = number(text)
    if not low <= value <= high:
        raise OutOfRange(f"{what} {value:g} outside {low:g} to {high:g}")
    return value


def whole(text: str, low: int, high: int, what: str) -> int:
    """A whole number in ``[low, high]``."""
    value = bounded(text, low, high, what)
    if value != int(value):
        raise ValueError(f"{what} {value:g} is not a whole number")
    return int(value)
