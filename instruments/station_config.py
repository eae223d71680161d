"""Station files: which instrument is where, how the matrix is wired, which devices, which limits.

A station file (YAML, ``format: hil-station/1``) is validated on load into a :class:`StationSpec`;
an error names the key, the value and what is expected, and nothing is connected. See
``configs/station.example-lab.yaml`` for a commented template. The file's schema is the pydantic
models below (``_Station`` and its sections); the run-time objects are plain dataclasses.
"""

from __future__ import annotations

import fnmatch
import itertools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_core.core_schema import ValidationInfo

from instruments.config_files import read_yaml
from instruments.failures import UserFacingError
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
HALL_BAR, DW_TRACK = "hall_bar", "dw_track"
DEVICE_KINDS = (HALL_BAR, DW_TRACK)  # a Hall bar (SOT neuron) or a DW synapse track (a two-terminal DW-MTJ)
MATRIX_ROWS = "ABCDEFGH"
MATRIX_COLUMNS = range(1, 13)
MATRIX_SLOTS = range(1, 7)


class StationConfigError(UserFacingError, ValueError):
    """A station file that cannot describe a station; the message names the key and value."""


class SafetyError(UserFacingError, ValueError):
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
    width_m: float  # NaN for a DW track (it has no Hall-bar width)
    slot: int
    pads: dict[str, int]  # pad name → matrix column
    max_current_a: float  # DC (source meter) and, for a Hall bar, pulse current limit
    kind: str = HALL_BAR


@dataclass(frozen=True)
class DWTrackLimits:
    """``safety.dw_track``: the programming pulses a DW track may get (generator amplitude, width)."""

    max_voltage_v: float
    max_width_s: float
    max_current_a: float  # DC through a track: the read current


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
    dw_limits: DWTrackLimits | None = None  # safety.dw_track (required when the station has DW tracks)

    def devices_of(self, kind: str) -> list[str]:
        """The ids of the station's devices of ``kind`` (``hall_bar`` or ``dw_track``), in file order."""
        return [d.id for d in self.devices.values() if d.kind == kind]

    def check_kind(self, device_id: str, kind: str, what: str) -> None:
        """Refuse (:class:`SafetyError`) ``what`` on a device of another kind; nothing is sent."""
        device = self.device(device_id)
        if device.kind != kind:
            raise SafetyError(f"{what} on device {device_id}: it is a {device.kind.replace('_', ' ')}, not a "
                              f"{kind.replace('_', ' ')}; nothing was sent")

    def check_dw_pulse(self, device_id: str, voltage_v: float, width_s: float, what: str = "programming pulse") -> None:
        """Refuse (:class:`SafetyError`) a DW-track pulse beyond ``safety.dw_track``; nothing is sent."""
        self.check_kind(device_id, DW_TRACK, what)
        limits = self.dw_limits
        assert limits is not None  # a station with DW tracks has them (parse_station)
        if not math.isfinite(voltage_v) or abs(voltage_v) > limits.max_voltage_v:
            raise SafetyError(f"{what} of {voltage_v:.4g} V on DW track {device_id} exceeds safety.dw_track."
                              f"max_voltage ({limits.max_voltage_v:.4g} V); nothing was sent")
        if not 0 < width_s <= limits.max_width_s:
            raise SafetyError(f"{what} width {width_s:.4g} s on DW track {device_id} is outside (0, "
                              f"{limits.max_width_s:.4g} s] (safety.dw_track.max_width); nothing was sent")

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


# ---- the file's schema: pydantic models, made into the dataclasses above by parse_station ------------------------


def _error(message: str, *at: str | int) -> PydanticCustomError:
    """A problem in the file: ``message`` follows the key path in the error, which ``at`` extends."""
    return PydanticCustomError("station", "{message}", {"message": message, "at": at})


def _rule(ok: Callable[[Any], object], message: str, convert: Callable[[Any], Any] = lambda value: value) -> Any:
    """Refuse a value unless ``ok(value)`` (``message`` shows it with ``{!r}``), else ``convert`` it."""
    def check(value: Any) -> Any:
        if not ok(value):
            raise _error(message.format(value))
        return convert(value)
    return BeforeValidator(check)


def _quantity(unit: str) -> Any:
    """A positive quantity such as ``"2.5mA"`` (or a bare SI number), as a float in ``unit``."""
    def parse(value: Any) -> float:
        try:
            number = parse_quantity(value, unit, "\0")
        except QuantityError as exc:
            raise _error(str(exc).removeprefix("\0: ")) from None
        if not math.isfinite(number) or number <= 0:
            raise _error(f"must be a positive quantity in {unit}, got {value!r}")
        return number
    return Annotated[float, BeforeValidator(parse)]


_REQUIRED: Any = None  # default of a required key: validated as a null, so the error says what is expected
_OR_EMPTY_MAPPING = BeforeValidator(lambda value: value or {})  # an optional key: absent or null is empty
_OR_EMPTY_LIST = BeforeValidator(lambda value: value or [])
_KNOWN_TERMINALS = tuple(sorted(f"{role}.{terminal}" for role, terms in TERMINALS.items() for terminal in terms))
_Metres, _Amps, _Volts, _Seconds, _Ohms, _Number = (_quantity(unit) for unit in ("m", "A", "V", "s", "ohm", ""))
_Row = Annotated[str, _rule(lambda row: len(str(row)) == 1 and str(row).upper() in MATRIX_ROWS,
                            "not a matrix row (A–H)", str.upper)]
_Terminal = Annotated[str, _rule(lambda terminal: terminal in _KNOWN_TERMINALS,
                                 f"unknown terminal {{!r}} (known: {', '.join(_KNOWN_TERMINALS)})")]
_Pad = Annotated[str, _rule(lambda pad: pad in PAD_NAMES, f"unknown pad {{!r}} (pads: {', '.join(PAD_NAMES)})")]
_Column = Annotated[int, _rule(lambda column: type(column) is int and column in MATRIX_COLUMNS,
                               "column must be 1–12, got {!r}")]
_Wire = Annotated[tuple[str, str], _rule(lambda wire: isinstance(wire, Mapping) and set(wire) == {"from", "to"},
                                         "expected {{from: ..., to: ...}}, got {!r}",
                                         lambda wire: (str(wire["from"]), str(wire["to"])))]


class _Section(BaseModel):
    """A mapping of the file: its keys are the fields; any other key is refused, naming the known ones."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        unknown = sorted(set(data) - set(cls.model_fields), key=str) if isinstance(data, Mapping) else []
        if unknown:
            raise _error(f"unknown key (known: {', '.join(sorted(cls.model_fields))})", unknown[0])
        return data


class _Instrument(_Section):
    model: Any = _REQUIRED  # checked against the adapters of the role by _Instruments
    address: Annotated[str, _rule(lambda address: isinstance(address, str) and address,
                                  "expected a VISA resource name or 'emulated', got {!r}")] = _REQUIRED
    options: Annotated[dict[Any, Any], _OR_EMPTY_MAPPING] = None


class _Instruments(_Section):
    pulse_generator: _Instrument
    source_meter: _Instrument
    switch_matrix: _Instrument

    @field_validator(*ROLES)
    @classmethod
    def _has_adapter(cls, instrument: _Instrument, info: ValidationInfo) -> _Instrument:
        from instruments.adapters import SUPPORTED_MODELS  # the models each role has an adapter for

        role, model = info.field_name, instrument.model
        if not isinstance(model, str) or model not in SUPPORTED_MODELS[role]:
            raise _error(f"{model!r} has no {role} adapter (supported: {', '.join(SUPPORTED_MODELS[role])})", "model")
        known = SUPPORTED_MODELS[role][model].known_options
        for key, value in instrument.options.items():
            if key not in known:
                raise _error(f"unknown option for a {model} (known: {', '.join(known) or 'none'})", "options", key)
            if value not in known[key]:
                raise _error(f"expected one of {list(known[key])}, got {value!r}", "options", key)
        return instrument


class _Matrix(_Section):
    rows: dict[_Row, _Terminal] = _REQUIRED  # row letter → the instrument terminal it carries
    connect: dict[Annotated[str, BeforeValidator(lambda row: str(row).upper())], _Pad] = _REQUIRED
    forbidden: Annotated[list[Annotated[str, BeforeValidator(str)]], _OR_EMPTY_LIST] = None

    @model_validator(mode="after")
    def _consistent(self) -> _Matrix:
        for row in self.connect:
            if row not in self.rows:
                raise _error(f"row {row} carries no terminal in matrix.rows", "connect", row)
        for (a, pad), (b, other_pad) in itertools.product(self.connect.items(), repeat=2):
            if pad == other_pad and (self.rows[a], self.rows[b]) in SHORTS:
                raise SafetyError(f"matrix.connect: rows {a} ({self.rows[a]}) and {b} ({self.rows[b]}) both go to "
                                  f"pad {pad}, which would short the instrument")
        for pattern in self.forbidden:
            if not re.fullmatch(r"[0-9*?]([A-Ha-h*?\[\]!-]+)?[0-9*?]*\*?", pattern):
                raise _error(f"{pattern!r} is not a crosspoint pattern such as 1A01 or 1G*", "forbidden")
        return self


class _DWTrackSafety(_Section):
    max_voltage: _Volts = _REQUIRED  # |amplitude| of a programming pulse at the pulse generator
    max_width: _Seconds = _REQUIRED  # width of a programming pulse
    max_current: _Amps = "1 mA"  # DC through a track (the source meter's read current)


class _Safety(_Section):
    max_current: dict[_Metres, _Amps] = _REQUIRED  # device width → its current limit
    max_compliance: _Volts = "10 V"
    max_pulse_width: _Seconds = "1 ms"
    dw_track: _DWTrackSafety | None = None  # the limits of DW synapse tracks (devices of kind dw_track)


class _Device(_Section):
    id: Annotated[str, _rule(lambda name: isinstance(name, str) and name,
                             "expected a non-empty string, got {!r}")] = _REQUIRED
    kind: Annotated[str, _rule(lambda kind: kind in DEVICE_KINDS,
                               f"expected one of {', '.join(DEVICE_KINDS)}, got {{!r}}")] = HALL_BAR
    width: _Metres = Field(None, validate_default=False)  # a Hall bar's; a DW track has none
    slot: Annotated[int, _rule(lambda slot: type(slot) is int and slot in MATRIX_SLOTS, "expected 1–6, got {!r}")] = 1
    pads: Annotated[dict[str, _Column], _rule(lambda pads: isinstance(pads, Mapping) and set(pads) == set(PAD_NAMES),
                                              f"expected columns for {', '.join(PAD_NAMES)}, got {{!r}}")] = _REQUIRED
    max_current: _Amps = Field(None, validate_default=False)  # absent: safety.max_current of the width

    @model_validator(mode="after")
    def _width_of_its_kind(self) -> _Device:
        if self.kind == HALL_BAR and self.width is None:
            raise _error("expected a quantity in m, got None (a Hall bar needs its width)", "width")
        if self.kind == DW_TRACK and self.width is not None:
            raise _error("a DW track has no width (its geometry is the chip's); remove the key", "width")
        return self

class _Readout(_Section):
    read_current: _Amps = Readout.read_current_a
    compliance: _Volts = Readout.compliance_v
    nplc: _Number = Readout.nplc
    hall_step: _Ohms = Readout.hall_step_ohm


class _Station(_Section):
    format: Annotated[Any, _rule(lambda fmt: fmt == STATION_FORMAT,
                                 f"this version reads {STATION_FORMAT!r}, got {{!r}}")] = STATION_FORMAT
    name: Annotated[str, BeforeValidator(str)] = "station"
    chip: Annotated[Path | None, BeforeValidator(lambda chip: chip if chip is None else str(chip))] = None
    instruments: _Instruments = _REQUIRED
    triggers: Annotated[list[_Wire], _OR_EMPTY_LIST] = None
    matrix: _Matrix = _REQUIRED
    safety: _Safety = _REQUIRED
    devices: Annotated[list[_Device], _rule(lambda devices: isinstance(devices, list) and devices,
                                            "expected a non-empty list, got {!r}")] = _REQUIRED
    readout: Annotated[_Readout, _OR_EMPTY_MAPPING] = None
    notes: Any = None

    @field_validator("devices")
    @classmethod
    def _distinct_devices(cls, devices: list[_Device]) -> list[_Device]:
        owners: dict[tuple[int, int], str] = {}  # (slot, column) → the device whose pad it is
        for i, device in enumerate(devices):
            if device.id in [other.id for other in devices[:i]]:
                raise _error(f"duplicate device id {device.id!r}", i, "id")
            for pad, column in device.pads.items():
                if (device.slot, column) in owners:
                    raise _error(f"slot {device.slot} column {column} is already the pad of "
                                 f"{owners[device.slot, column]}", i, "pads", pad)
                owners[device.slot, column] = device.id
        return devices


def _config_error(exc: ValidationError) -> ValueError:
    """pydantic's first error as ``key.path: what is wrong``; a :class:`SafetyError` of a check passes unchanged."""
    error = exc.errors(include_url=False)[0]
    ctx, value = error.get("ctx", {}), error["input"]
    if isinstance(ctx.get("error"), SafetyError):
        return ctx["error"]
    message = {"station": ctx.get("message"), "missing": "missing", "model_type": f"expected a mapping, got {value!r}",
               "dict_type": f"expected a mapping, got {value!r}", "list_type": f"expected a list, got {value!r}"}
    where = ""
    for i, (parent, part) in enumerate(itertools.pairwise((None, *error["loc"], *ctx.get("at", ())))):
        if part != "[key]":  # pydantic's mark of a bad mapping key, which is the part before it
            where += (f"[{part}]" if parent in ("devices", "triggers")  # an item of a list
                      else f"[{part!r}]" if error["loc"][:i] == ("safety", "max_current")  # a width, as written
                      else f".{part}" if where else str(part))
    return StationConfigError(f"{where}: {message.get(error['type'], error['msg'] + f', got {value!r}')}")


def parse_station(raw: Any, path: Path | None = None) -> StationSpec:
    """Validate a station mapping (as read from YAML) into a :class:`StationSpec`."""
    if not isinstance(raw, Mapping):
        raise StationConfigError("station file: expected a mapping at the top level")
    try:
        station = _Station.model_validate(dict(raw))
    except ValidationError as exc:
        raise _config_error(exc) from None
    safety, limits = station.safety, {round(w, 12): limit for w, limit in station.safety.max_current.items()}
    dw = safety.dw_track
    for i, device in enumerate(station.devices):
        if device.kind == DW_TRACK and dw is None:
            raise StationConfigError(f"devices[{i}].kind: a DW track needs the safety.dw_track limits "
                                     "(max_voltage, max_width of its programming pulses)")
        if device.kind == HALL_BAR and device.max_current is None and round(device.width, 12) not in limits:
            raise StationConfigError(f"devices[{i}].width: no safety.max_current for width "
                                     f"{raw['devices'][i]['width']!r} and no max_current for the device")
    devices = {d.id: (DeviceSpec(d.id, d.width, d.slot, d.pads, d.max_current or limits[round(d.width, 12)])
                      if d.kind == HALL_BAR else
                      DeviceSpec(d.id, math.nan, d.slot, d.pads, d.max_current or dw.max_current, DW_TRACK))
               for d in station.devices}
    dw_limits = DWTrackLimits(dw.max_voltage, dw.max_width, dw.max_current) if dw is not None else None
    r = station.readout
    if r.compliance > safety.max_compliance:
        raise SafetyError(f"readout.compliance: {r.compliance} V exceeds safety.max_compliance "
                          f"{safety.max_compliance} V")
    for device in devices.values():
        if r.read_current > device.max_current_a:
            raise SafetyError(f"readout.read_current exceeds the limit of device {device.id}")
    chip, matrix = station.chip, station.matrix
    if chip is not None and path is not None and not chip.is_absolute():
        chip = (path.parent / chip).resolve()
    return StationSpec(
        name=station.name, path=path, triggers=station.triggers, rows=matrix.rows, connect=matrix.connect,
        instruments={role: InstrumentSpec(role, **dict(inst)) for role, inst in dict(station.instruments).items()},
        forbidden=matrix.forbidden, max_compliance_v=safety.max_compliance, max_pulse_width_s=safety.max_pulse_width,
        devices=devices, readout=Readout(r.read_current, r.compliance, r.nplc, r.hall_step), chip=chip, raw=dict(raw),
        dw_limits=dw_limits)


def load_station_spec(path: str | Path) -> StationSpec:
    """Read and validate a station file."""
    path = Path(path)
    return parse_station(read_yaml(path, "station", StationConfigError), path.resolve())
