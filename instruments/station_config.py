"""Station files: which instrument is where, how the matrix is wired, which devices, which limits.

A station file (YAML, ``format: hil-station/1``) is validated on load into a :class:`StationSpec`;
an error names the key, the value and what is expected, and nothing is connected. See
``configs/station.example-lab.yaml`` for a commented template.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instruments.config_files import check_keys, read_yaml
from instruments.units import QuantityError, parse_quantity

STATION_FORMAT = "hil-station/1"
ROLES = ("pulse_generator", "source_meter", "switch_matrix")
TERMINALS = {
    "pulse_generator": ("out", "ground"),
    "source_meter": ("force_hi", "force_lo", "sense_hi", "sense_lo"),
}
# terminal pairs that must never land on the same pad: that would short an instrument's output
SHORTS = {("pulse_generator.out", "pulse_generator.ground"), ("source_meter.force_hi", "source_meter.force_lo"),
          ("source_meter.sense_hi", "source_meter.sense_lo")}
PAD_NAMES = ("I+", "I-", "V+", "V-")
MATRIX_ROWS = "ABCDEFGH"
MATRIX_COLUMNS = range(1, 13)
MATRIX_SLOTS = range(1, 7)
_TOP_KEYS = {"format", "name", "chip", "instruments", "triggers", "matrix", "devices", "safety", "readout", "notes"}


class StationConfigError(ValueError):
    """A station file that cannot describe a station; the message names the key and value."""


class SafetyError(ValueError):
    """A request beyond a device's or the station's limits; refused before any command is sent."""


@dataclass(frozen=True)
class InstrumentSpec:
    role: str
    model: str
    address: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DeviceSpec:
    id: str
    width_m: float
    slot: int
    pads: dict[str, int]  # pad name → matrix column
    max_current_a: float


@dataclass(frozen=True)
class Readout:
    read_current_a: float = 100e-6
    compliance_v: float = 2.0
    nplc: float = 0.01
    hall_step_ohm: float = 2.0  # nominal R_xy step between up and down: a switch moves the reading by this


@dataclass(frozen=True)
class StationSpec:
    name: str
    path: Path | None
    instruments: dict[str, InstrumentSpec]
    triggers: list[tuple[str, str]]
    rows: dict[str, str]  # matrix row letter → instrument terminal
    connect: dict[str, str]  # matrix row letter → device pad name it goes to when the device is routed
    forbidden: list[str]  # crosspoint patterns never to close (fnmatch, e.g. "1G*")
    devices: dict[str, DeviceSpec]
    max_compliance_v: float
    max_pulse_width_s: float
    readout: Readout
    chip: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def fast_path_wired(self) -> bool:
        """True when the pulse generator's marker triggers the source meter (the fast path needs it)."""
        return ("pulse_generator.marker", "source_meter.trigger_in") in self.triggers

    def route(self, device_id: str) -> frozenset[str]:
        """The crosspoints (``"1A01"``) that connect ``device_id`` to the instruments."""
        device = self.device(device_id)
        return frozenset(f"{device.slot}{row}{device.pads[pad]:02d}" for row, pad in self.connect.items())

    def device(self, device_id: str) -> DeviceSpec:
        if device_id not in self.devices:
            raise KeyError(f"station {self.name!r} has no device {device_id!r} (devices: {', '.join(self.devices)})")
        return self.devices[device_id]

    def check_route(self, device_id: str) -> frozenset[str]:
        """The device's route, refused (:class:`SafetyError`) if it touches a forbidden crosspoint."""
        route = self.route(device_id)
        for point in sorted(route):
            for pattern in self.forbidden:
                if fnmatch.fnmatch(point, pattern.upper()):
                    raise SafetyError(f"routing {device_id}: crosspoint {point} is forbidden by the station "
                                      f"(safety pattern {pattern!r}); nothing was switched")
        return route

    def check_current(self, device_id: str, current_a: float, what: str = "pulse") -> None:
        """Refuse a current beyond the device's limit (:class:`SafetyError`)."""
        limit = self.device(device_id).max_current_a
        if not math.isfinite(current_a) or abs(current_a) > limit:
            raise SafetyError(f"{what} of {current_a * 1e3:.4g} mA on device {device_id} exceeds its limit of "
                              f"{limit * 1e3:.4g} mA; nothing was sent")

    def check_width(self, device_id: str, width_s: float) -> None:
        if not 0 < width_s <= self.max_pulse_width_s:
            raise SafetyError(f"pulse width {width_s:.4g} s on device {device_id} is outside (0, "
                              f"{self.max_pulse_width_s:.4g} s]; nothing was sent")

    def check_compliance(self, compliance_v: float) -> None:
        if not 0 < compliance_v <= self.max_compliance_v:
            raise SafetyError(f"compliance {compliance_v:.4g} V exceeds the station maximum of "
                              f"{self.max_compliance_v:.4g} V; nothing was sent")

    def snapshot(self) -> dict[str, Any]:
        """The station as loaded (for sessions): the file's content with resolved addresses."""
        out = dict(self.raw)
        out["instruments"] = {role: {"model": spec.model, "address": spec.address, "options": spec.options}
                              for role, spec in self.instruments.items()}
        return out


def _quantity(value: Any, unit: str, key: str, positive: bool = True) -> float:
    try:
        number = parse_quantity(value, unit, key)
    except QuantityError as exc:
        raise StationConfigError(str(exc)) from None
    if not math.isfinite(number) or (positive and number <= 0):
        raise StationConfigError(f"{key}: must be a positive quantity in {unit}, got {value!r}")
    return number


def _mapping(raw: Mapping[str, Any], key: str, where: str = "") -> Mapping[str, Any]:
    value = raw.get(key)
    if not isinstance(value, Mapping):
        raise StationConfigError(f"{where}{key}: expected a mapping, got {value!r}")
    return value


def _check_keys(raw: Mapping[str, Any], known: set[str], where: str) -> None:
    check_keys(raw, known, where, StationConfigError)


def _parse_width_table(raw: Mapping[str, Any], key: str) -> dict[float, float]:
    """``{"3um": "2.4mA", ...}`` → ``{3e-6: 2.4e-3, ...}``."""
    table = {}
    for width, current in raw.items():
        width_m = _quantity(width, "m", f"{key}[{width!r}]")
        table[round(width_m, 12)] = _quantity(current, "A", f"{key}[{width!r}]")
    return table


def parse_station(raw: Any, path: Path | None = None) -> StationSpec:
    """Validate a station mapping (as read from YAML) into a :class:`StationSpec`."""
    if not isinstance(raw, Mapping):
        raise StationConfigError("station file: expected a mapping at the top level")
    _check_keys(raw, _TOP_KEYS, "")
    fmt = raw.get("format", STATION_FORMAT)
    if fmt != STATION_FORMAT:
        raise StationConfigError(f"format: this version reads {STATION_FORMAT!r}, got {fmt!r}")

    instruments: dict[str, InstrumentSpec] = {}
    inst_raw = _mapping(raw, "instruments")
    _check_keys(inst_raw, set(ROLES), "instruments.")
    from instruments.adapters import SUPPORTED_MODELS  # the models each role has an adapter for

    for role in ROLES:
        where = f"instruments.{role}."
        if role not in inst_raw:
            raise StationConfigError(f"instruments.{role}: missing")
        entry = _mapping(inst_raw, role, "instruments.")
        _check_keys(entry, {"model", "address", "options"}, where)
        model = entry.get("model")
        if model not in SUPPORTED_MODELS[role]:
            raise StationConfigError(f"{where}model: {model!r} has no {role} adapter "
                                     f"(supported: {', '.join(SUPPORTED_MODELS[role])})")
        address = entry.get("address")
        if not isinstance(address, str) or not address:
            raise StationConfigError(f"{where}address: expected a VISA resource name or 'emulated', got {address!r}")
        options = entry.get("options") or {}
        if not isinstance(options, Mapping):
            raise StationConfigError(f"{where}options: expected a mapping, got {options!r}")
        instruments[role] = InstrumentSpec(role, model, address, dict(options))

    triggers: list[tuple[str, str]] = []
    for i, wire in enumerate(raw.get("triggers") or []):
        if not isinstance(wire, Mapping) or set(wire) != {"from", "to"}:
            raise StationConfigError(f"triggers[{i}]: expected {{from: ..., to: ...}}, got {wire!r}")
        triggers.append((str(wire["from"]), str(wire["to"])))

    matrix = _mapping(raw, "matrix")
    _check_keys(matrix, {"rows", "connect", "forbidden"}, "matrix.")
    rows_raw, connect_raw = _mapping(matrix, "rows", "matrix."), _mapping(matrix, "connect", "matrix.")
    known_terminals = {f"{role}.{t}" for role, terms in TERMINALS.items() for t in terms}
    rows: dict[str, str] = {}
    for row, terminal in rows_raw.items():
        if str(row).upper() not in MATRIX_ROWS or len(str(row)) != 1:
            raise StationConfigError(f"matrix.rows.{row}: not a matrix row (A–H)")
        if terminal not in known_terminals:
            raise StationConfigError(f"matrix.rows.{row}: unknown terminal {terminal!r} "
                                     f"(known: {', '.join(sorted(known_terminals))})")
        rows[str(row).upper()] = terminal
    connect: dict[str, str] = {}
    for row, pad in connect_raw.items():
        row = str(row).upper()
        if row not in rows:
            raise StationConfigError(f"matrix.connect.{row}: row {row} carries no terminal in matrix.rows")
        if pad not in PAD_NAMES:
            raise StationConfigError(f"matrix.connect.{row}: unknown pad {pad!r} (pads: {', '.join(PAD_NAMES)})")
        connect[row] = pad
    for a_row, a_pad in connect.items():
        for b_row, b_pad in connect.items():
            if a_pad == b_pad and (rows[a_row], rows[b_row]) in SHORTS:
                raise SafetyError(f"matrix.connect: rows {a_row} ({rows[a_row]}) and {b_row} ({rows[b_row]}) "
                                  f"both go to pad {a_pad}, which would short the instrument")
    forbidden = [str(p) for p in matrix.get("forbidden") or []]
    for pattern in forbidden:
        if not re.fullmatch(r"[0-9*?]([A-Ha-h*?\[\]!-]+)?[0-9*?]*\*?", pattern):
            raise StationConfigError(f"matrix.forbidden: {pattern!r} is not a crosspoint pattern such as 1A01 or 1G*")

    safety = _mapping(raw, "safety")
    _check_keys(safety, {"max_current", "max_compliance", "max_pulse_width"}, "safety.")
    max_current_by_width = _parse_width_table(_mapping(safety, "max_current", "safety."), "safety.max_current")
    max_compliance_v = _quantity(safety.get("max_compliance", "10 V"), "V", "safety.max_compliance")
    max_pulse_width_s = _quantity(safety.get("max_pulse_width", "1 ms"), "s", "safety.max_pulse_width")

    devices: dict[str, DeviceSpec] = {}
    devices_raw = raw.get("devices")
    if not isinstance(devices_raw, list) or not devices_raw:
        raise StationConfigError(f"devices: expected a non-empty list, got {devices_raw!r}")
    used: dict[str, str] = {}
    for i, entry in enumerate(devices_raw):
        where = f"devices[{i}]."
        if not isinstance(entry, Mapping):
            raise StationConfigError(f"devices[{i}]: expected a mapping, got {entry!r}")
        _check_keys(entry, {"id", "width", "slot", "pads", "max_current"}, where)
        device_id = entry.get("id")
        if not isinstance(device_id, str) or not device_id:
            raise StationConfigError(f"{where}id: expected a non-empty string, got {device_id!r}")
        if device_id in devices:
            raise StationConfigError(f"{where}id: duplicate device id {device_id!r}")
        width = _quantity(entry.get("width"), "m", f"{where}width")
        slot = entry.get("slot", 1)
        if slot not in MATRIX_SLOTS:
            raise StationConfigError(f"{where}slot: expected 1–6, got {slot!r}")
        pads_raw = entry.get("pads")
        if not isinstance(pads_raw, Mapping) or set(pads_raw) != set(PAD_NAMES):
            raise StationConfigError(f"{where}pads: expected columns for {', '.join(PAD_NAMES)}, got {pads_raw!r}")
        pads = {}
        for pad, column in pads_raw.items():
            if column not in MATRIX_COLUMNS:
                raise StationConfigError(f"{where}pads.{pad}: column must be 1–12, got {column!r}")
            owner = used.setdefault(f"{slot}:{column}", device_id)
            if owner != device_id or column in pads.values():
                raise StationConfigError(f"{where}pads.{pad}: slot {slot} column {column} is already the pad of "
                                         f"{owner}")
            pads[pad] = column
        if "max_current" in entry:
            limit = _quantity(entry["max_current"], "A", f"{where}max_current")
        else:
            limit = max_current_by_width.get(round(width, 12))
            if limit is None:
                raise StationConfigError(f"{where}width: no safety.max_current for width {entry.get('width')!r} "
                                         "and no max_current for the device")
        devices[device_id] = DeviceSpec(device_id, width, slot, pads, limit)

    readout_raw = raw.get("readout") or {}
    _check_keys(readout_raw, {"read_current", "compliance", "nplc", "hall_step"}, "readout.")
    defaults = Readout()
    readout = Readout(
        _quantity(readout_raw.get("read_current", defaults.read_current_a), "A", "readout.read_current"),
        _quantity(readout_raw.get("compliance", defaults.compliance_v), "V", "readout.compliance"),
        _quantity(readout_raw.get("nplc", defaults.nplc), "", "readout.nplc"),
        _quantity(readout_raw.get("hall_step", defaults.hall_step_ohm), "ohm", "readout.hall_step"),
    )
    if readout.compliance_v > max_compliance_v:
        raise SafetyError(f"readout.compliance: {readout.compliance_v} V exceeds safety.max_compliance "
                          f"{max_compliance_v} V")
    for device in devices.values():
        if readout.read_current_a > device.max_current_a:
            raise SafetyError(f"readout.read_current exceeds the limit of device {device.id}")

    chip = None
    if raw.get("chip") is not None:
        chip = Path(str(raw["chip"]))
        if path is not None and not chip.is_absolute():
            chip = (path.parent / chip).resolve()
    return StationSpec(name=str(raw.get("name", "station")), path=path, instruments=instruments, triggers=triggers,
                       rows=rows, connect=connect, forbidden=forbidden, devices=devices,
                       max_compliance_v=max_compliance_v, max_pulse_width_s=max_pulse_width_s, readout=readout,
                       chip=chip, raw=dict(raw))


def load_station_spec(path: str | Path) -> StationSpec:
    """Read and validate a station file."""
    path = Path(path)
    return parse_station(read_yaml(path, "station", StationConfigError), path.resolve())
