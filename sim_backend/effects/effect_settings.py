"""Reading one effect's section of a chip file: its keys, their units, its ``enabled`` switch.

Every effect section of ``effects:`` (``sim_backend.effects``) has the same shape: ``enabled: true|false`` and
quantities with units (``"20 ns"``, ``"1e4 K/W"``). A wrong key, a missing ``enabled`` switch where one is needed,
or a quantity of the wrong dimension is an :class:`EffectConfigError` naming ``effects.<section>.<key>``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from instruments.config_files import check_keys
from instruments.failures import UserFacingError
from instruments.units import QuantityError, parse_quantity


class EffectConfigError(UserFacingError, ValueError):
    """An ``effects:`` section of a chip file that cannot describe its effect; the message names the key."""


# a key's (SI unit, lower bound, whether the bound itself is allowed)
Quantity = tuple[str, float, bool]
POSITIVE: tuple[float, bool] = (0.0, False)
NON_NEGATIVE: tuple[float, bool] = (0.0, True)


def read_section(raw: Any, section: str, keys: Mapping[str, Quantity], defaults: Mapping[str, Any],
                 extra: Mapping[str, Any] | None = None) -> tuple[bool, dict[str, float], dict[str, Any]]:
    """``(enabled, quantities in SI, other values)`` of ``effects.<section>``.

    ``raw`` may be missing (``None``: the section's defaults, disabled), ``false``/``true`` (disabled, or enabled
    with the defaults) or a mapping with ``enabled`` and any of ``keys`` (quantities; the rest from ``defaults``)
    and of ``extra`` (other values, returned as given with their defaults).
    """
    where = f"effects.{section}."
    extra = dict(extra or {})
    if raw is None or isinstance(raw, bool):
        enabled, given = bool(raw), {}
    elif isinstance(raw, Mapping):
        check_keys(raw, {"enabled", *keys, *extra}, where, EffectConfigError)
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            raise EffectConfigError(f"{where}enabled: expected true or false, got {enabled!r}")
        given = raw
    else:
        raise EffectConfigError(f"effects.{section}: expected a mapping (or true/false), got {raw!r}")
    values: dict[str, float] = {}
    for key, (unit, bound, inclusive) in keys.items():
        value = given.get(key, defaults[key])
        try:
            number = parse_quantity(value, unit, f"{where}{key}")
        except QuantityError as exc:
            raise EffectConfigError(str(exc)) from None
        if not math.isfinite(number) or number < bound or (number == bound and not inclusive):
            relation = "≥" if inclusive else ">"
            raise EffectConfigError(f"{where}{key}: must be {relation} {bound:g} {unit}".rstrip() + f", got {value!r}")
        values[key] = number
    others = {key: given.get(key, default) for key, default in extra.items()}
    return enabled, values, others
