"""SCPI numeric parameters: ``MINimum``, ``MAXimum`` and ``DEFault`` as values and as query arguments.

A setter takes a number (NRf, with an optional engineering suffix the manuals allow, e.g. ``10MS``,
``5US``, ``2.5KOHM``: the unit letters after the multiplier are ignored) or one of the keywords; a
value beyond the instrument's range raises :class:`OutOfRange` (``-222`` in the queue, "Data out of
range"), anything else unparsable a ``ValueError`` (``-224``). A query ``…? MIN`` / ``…? MAX`` /
``…? DEF`` answers the limit or the default, not the present value.
"""

from __future__ import annotations

import math
import re

_KEYWORDS = {"MIN": re.compile(r"^MIN(IMUM)?$", re.I), "MAX": re.compile(r"^MAX(IMUM)?$", re.I),
             "DEF": re.compile(r"^DEF(AULT)?$", re.I)}
_NUMBER = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)$")
# engineering multipliers (SCPI: MA is milli, except in MHZ/MOHM, which are mega)
_MULTIPLIERS = {"EX": 1e18, "PE": 1e15, "T": 1e12, "G": 1e9, "MA": 1e6, "K": 1e3, "M": 1e-3, "U": 1e-6,
                "N": 1e-9, "P": 1e-12, "F": 1e-15, "A": 1e-18}
_UNITS = ("HZ", "OHM", "S", "V", "A", "W", "PCT")


class OutOfRange(ValueError):
    """A parameter beyond the instrument's range: ``-222`` in the queue, not ``-224``."""


def keyword(text: str) -> str | None:
    """``"MIN"``, ``"MAX"`` or ``"DEF"`` when ``text`` is one of those keywords (any form), else ``None``."""
    word = text.strip()
    for key, pattern in _KEYWORDS.items():
        if pattern.match(word):
            return key
    return None


def _suffix_scale(suffix: str) -> float:
    upper = suffix.upper()
    if upper in ("MHZ", "MOHM"):
        return 1e6
    for unit in _UNITS:
        if upper.endswith(unit):
            upper = upper[: -len(unit)]
            break
    if not upper:
        return 1.0
    if upper in _MULTIPLIERS:
        return _MULTIPLIERS[upper]
    raise ValueError(f"suffix {suffix!r}")


def number(text: str) -> float:
    """An NRf number with an optional suffix (``"10us"`` → 1e-05); one beyond a double's range (``1e999``) is
    out of range, as on the instruments."""
    match = _NUMBER.match(text.strip())
    if match is None:
        raise ValueError(f"not a number: {text.strip()[:30]!r}")
    value = float(match.group(1)) * _suffix_scale(match.group(2))
    if not math.isfinite(value):
        raise OutOfRange(f"{text.strip()[:30]!r} is beyond any range")
    return value


def register_value(text: str, high: int) -> int:
    """A status-register argument (``*ESE``, ``*SRE``, ``:STAT:…:ENAB``): an integer (NRf, rounded) in 0 … high."""
    value = round(number(text))
    if not 0 <= value <= high:
        raise OutOfRange(f"register value {value} outside 0 to {high}")
    return value


def numeric(text: str, low: float, high: float, default: float | None = None, what: str = "value") -> float:
    """A setter's numeric parameter in ``[low, high]``; ``MIN``/``MAX``/``DEF`` give the limits or default."""
    key = keyword(text)
    if key == "MIN":
        return low
    if key == "MAX":
        return high
    if key == "DEF":
        if default is None:
            raise ValueError(f"{what} has no default")
        return default
    value = number(text)
    if not low <= value <= high:
        raise OutOfRange(f"{what} {value:g} outside {low:g} to {high:g}")
    return value


def queried(args: str, present: float, low: float, high: float, default: float | None = None) -> float:
    """What ``…?`` answers: the present value, or with a ``MIN``/``MAX``/``DEF`` argument that value."""
    key = keyword(args) if args.strip() else None
    if key is None:
        if args.strip():
            raise ValueError(f"query argument {args.strip()[:30]!r}")
        return present
    return {"MIN": low, "MAX": high, "DEF": present if default is None else default}[key]
