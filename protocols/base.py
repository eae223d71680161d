"""What every characterization protocol shares: reading its file, choosing devices, width-keyed values.

A protocol is validated against the station *file* (a :class:`~instruments.station_config.StationSpec`)
when it is loaded: unknown keys, bad quantities, devices the station does not have, currents or widths
beyond a device's limits and routes over forbidden crosspoints are all refused before any instrument is
connected. It is then attached to the connected :class:`~instruments.station.Station` to run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from instruments.config_files import check_keys
from instruments.failures import UserFacingError
from instruments.station import DeviceOpenError, Station
from instruments.station_config import HALL_BAR, StationSpec
from instruments.units import QuantityError, parse_quantity
from protocols.engine import Unit
from protocols.records import Descriptor, Field

LOST = Descriptor("lost_devices", (
    Field("device", "S32", "", "device id"),
    Field("reason", "S256", "", "what showed it lost (it reads open: broken down or not contacted)"),
), "devices found open during the run; their remaining units were skipped without a pulse")


LOST_RESULT = "lost_devices"  # the analysis result naming the devices a run found open


def lost_devices(tables: Mapping[str, np.ndarray]) -> dict[str, str]:
    """Device id → why, for every device a run's tables record as lost (found open)."""
    if LOST.name not in tables:
        return {}
    lost = tables[LOST.name]
    return {d.decode(): r.decode() for d, r in zip(lost["device"], lost["reason"], strict=True)}


class ProtocolConfigError(UserFacingError, ValueError):
    """A protocol file that cannot be run; the message names the key and value."""


def quantity(raw: Mapping[str, Any], key: str, unit: str, where: str, default: Any = None,
             sign: int = 1) -> float:
    """``raw[key]`` in the SI ``unit``: positive (``sign=1``) or negative (``sign=-1``)."""
    value = raw.get(key, default)
    if value is None:
        raise ProtocolConfigError(f"{where}{key}: missing")
    try:
        number = parse_quantity(value, unit, f"{where}{key}")
    except QuantityError as exc:
        raise ProtocolConfigError(str(exc)) from None
    if not math.isfinite(number) or number * sign <= 0:
        raise ProtocolConfigError(f"{where}{key}: must be a {'positive' if sign > 0 else 'negative'} quantity in "
                                  f"{unit}, got {value!r}")
    return number


def integer(raw: Mapping[str, Any], key: str, where: str, default: int | None = None, minimum: int = 1) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ProtocolConfigError(f"{where}{key}: expected an integer ≥ {minimum}, got {value!r}")
    return value


def known_keys(raw: Mapping[str, Any], known: set[str], where: str) -> None:
    check_keys(raw, known, where, ProtocolConfigError)


def per_width(raw: Any, where: str) -> dict[float, Any]:
    """``{"3um": x, ...}`` → ``{3e-6: x, ...}`` (widths rounded to the pm)."""
    if not isinstance(raw, Mapping) or not raw:
        raise ProtocolConfigError(f"{where}: expected a mapping from device width to a value, got {raw!r}")
    out = {}
    for width, value in raw.items():
        try:
            out[round(parse_quantity(width, "m", f"{where}[{width!r}]"), 12)] = value
        except QuantityError as exc:
            raise ProtocolConfigError(str(exc)) from None
    return out


class StationProtocol:
    """Base of the characterization protocols: device selection, width-keyed tables, the attached station."""

    name = ""
    kind = HALL_BAR  # the kind of device it measures: ``devices: all`` means all of them, others are refused
    records: tuple[Descriptor, ...] = ()  # the protocol's own tables (``descriptors`` adds ``lost_devices``)
    keys: frozenset[str] = frozenset({"protocol", "devices", "seed", "notes"})

    def __init__(self, spec: StationSpec, raw: Mapping[str, Any]) -> None:
        known_keys(raw, set(self.keys), "")
        self.spec = spec
        self.raw = dict(raw)
        self._station: Station | None = None
        self.lost: dict[str, str] = {}  # devices found open in this process: no further pulse goes to them
        devices = raw.get("devices", "all")
        if devices == "all":
            self.devices = spec.devices_of(self.kind)
            if not self.devices:
                raise ProtocolConfigError(f"devices: all: station {spec.name!r} has no {self.kind} device for "
                                          f"{self.name}")
        elif isinstance(devices, list) and devices:
            for device in devices:
                if device not in spec.devices:
                    raise ProtocolConfigError(f"devices: {device!r} is not a device of station {spec.name!r} "
                                              f"({', '.join(spec.devices)})")
                if spec.device(device).kind != self.kind:
                    raise ProtocolConfigError(f"devices: {device!r} is a {spec.device(device).kind}; {self.name} "
                                              f"measures {self.kind} devices ({', '.join(spec.devices_of(self.kind))})")
            self.devices = list(dict.fromkeys(devices))
        else:
            raise ProtocolConfigError(f"devices: expected 'all' or a list of device ids, got {devices!r}")
        self.seed = integer(raw, "seed", "", default=0, minimum=0)
        for device in self.devices:
            spec.check_route(device)  # a forbidden crosspoint is refused now, not when the device's turn comes

    # -- running -----------------------------------------------------------------------------------

    def attach(self, station: Station) -> StationProtocol:
        """Run on ``station`` (connected to the instruments of the spec it was validated against)."""
        if station.spec.name != self.spec.name or list(station.spec.devices) != list(self.spec.devices):
            raise ProtocolConfigError(f"{self.name}: validated for station {self.spec.name!r}, attached to "
                                      f"{station.spec.name!r}")
        self._station = station
        return self

    @property
    def station(self) -> Station:
        if self._station is None:
            raise RuntimeError(f"{self.name}: attach a connected station before measuring")
        return self._station

    @property
    def descriptors(self) -> tuple[Descriptor, ...]:
        return (*self.records, LOST)

    def parameters(self) -> dict[str, Any]:
        return {"protocol": self.name, **self.raw, "devices": self.devices, "seed": self.seed}

    def plan(self) -> list[Unit]:
        raise NotImplementedError

    def measure(self, unit: Unit) -> dict[str, np.ndarray]:
        """Measure one unit. A device found open is lost for the whole session (the station refuses to route
        it): it is recorded once in this run's ``lost_devices``, and its units send nothing to it."""
        station = self.station
        if unit.device in station.lost:
            if unit.device in self.lost:
                return {}
            return self._lost(unit, unit.device, f"found open earlier: {station.lost[unit.device]}")
        try:
            return self.measure_unit(unit)
        except DeviceOpenError as exc:
            station.mark_lost(exc.device, str(exc))
            tables = self._lost(unit, exc.device, str(exc))
            if exc.rows is not None:
                tables[self.records[0].name] = exc.rows
            return tables

    def _lost(self, unit: Unit, device: str, reason: str) -> dict[str, np.ndarray]:
        self.lost[device] = reason
        lost = LOST.rows(1, unit.index)
        lost["device"], lost["reason"] = device, reason.encode()[:256]
        return {LOST.name: lost}

    def measure_unit(self, unit: Unit) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def analyse(self, tables: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Derived results of the completed run's tables (curves, fits, summaries) and the lost devices."""
        lost = lost_devices(tables)
        return {LOST_RESULT: lost} if lost else {}

    # -- width-keyed values --------------------------------------------------------------------------

    def width_of(self, device: str) -> float:
        return round(self.spec.device(device).width_m, 12)

    def widths(self) -> dict[str, float]:
        """Device id → width in m, for every Hall bar of the station."""
        return {d.id: d.width_m for d in self.spec.devices.values() if d.kind == HALL_BAR}

    def lookup(self, table: dict[float, Any], device: str, where: str) -> Any:
        width = self.width_of(device)
        if width not in table:
            raise ProtocolConfigError(f"{where}: no entry for width {width * 1e6:g} µm (device {device})")
        return table[width]
