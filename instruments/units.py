"""Quantities in config files: ``"100us"``, ``"2.5mA"``, ``"3um"`` or plain SI numbers.

Parsing is done by pint (a PyMeasure dependency); this module only fixes the expected SI unit
of each value and turns a failure into an error that names the config key.
"""

from __future__ import annotations

import functools
from numbers import Real

import pint

from instruments.failures import UserFacingError


class QuantityError(UserFacingError, ValueError):
    """A config value that is not a quantity of the expected dimension."""


@functools.cache
def _registry() -> pint.UnitRegistry:
    return pint.UnitRegistry()


def parse_quantity(value: object, unit: str, key: str = "value") -> float:
    """Return ``value`` in the SI unit ``unit`` (e.g. ``"A"``, ``"s"``, ``"m"``, ``"ohm"``).

    A bare number is taken as already in SI. A string is parsed with its unit (``"100us"``,
    ``"2.5 mA"``, ``"1e11 A/m^2"``). The result is rounded to 15 significant digits so that
    ``"100us"`` is exactly ``1e-4``.
    """
    if isinstance(value, bool):
        raise QuantityError(f"{key}: expected a quantity in {unit}, got {value!r}")
    if isinstance(value, Real):
        return float(value)
    if not isinstance(value, str):
        raise QuantityError(f"{key}: expected a quantity in {unit}, got {value!r}")
    ureg = _registry()
    try:
        quantity = ureg.Quantity(value.strip())
        if not isinstance(quantity, pint.Quantity) or quantity.dimensionless and unit != "":
            magnitude = float(quantity.magnitude if isinstance(quantity, pint.Quantity) else quantity)
            return float(f"{magnitude:.15g}")
        magnitude = quantity.to(unit).magnitude
    except (pint.errors.PintError, ValueError, TypeError, AttributeError) as exc:
        raise QuantityError(f"{key}: cannot read {value!r} as a quantity in {unit} ({exc})") from None
    return float(f"{float(magnitude):.15g}")
