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
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_core.core_schema import ValidationInfo

from instruments.config_files import read_yaml
from instruments.failures import UserFacingError, UserFacingWarning
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
DIRECT, DC_BLOCK = "direct", "dc_block"
COUPLINGS = (DIRECT, DC_BLOCK)  # how the pulse generator reaches the pads it shares with the source meter
RESET_WIDTH_S = 100e-6  # the characterization's reset pulse (physics.md): a DC block's droop over it is checked
DROOP_LIMIT = 0.05  # a DC block whose pulses droop more than this by their end is warned about


class StationConfigError(UserFacingError, ValueError):
    """A station file that cannot describe a station; the message names the key and value."""


class SafetyError(UserFacingError, ValueError):
    """A request beyond a device's or the station's limits; refused before any command is sent."""


class StationWarning(UserFacingWarning):
    """A station that loads, but may not measure what it should on a real bench; the message says why."""


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


SOURCE_IMPEDANCE_OHM = 50.0  # the pulse generator's output impedance: I = V / (R_ch + 50 Ω)


@dataclass(frozen=True)
class Wiring:
    """``wiring:``: how the pulse generator reaches the channel's pads, which it shares with the source meter.

    ``direct``: the generator's output (``output_impedance_ohm`` while on, ``off_impedance_ohm`` while off, ``inf``:
    open) sits across the channel, in parallel with the source meter. ``dc_block``: through a series capacitor
    (``capacitance_f``; a bias tee's RF port): no DC path for the read current through the generator, and its
    pulses are high-pass filtered with ``τ = (R_ch + R_out)·C``. ``min_channel_ohm`` … ``max_channel_ohm``: the
    devices' channel resistances as declared (0 … ``inf`` when not), for the checks made at load.
    """

    coupling: str
    capacitance_f: float = math.inf
    output_impedance_ohm: float = SOURCE_IMPEDANCE_OHM
    off_impedance_ohm: float = math.inf
    min_channel_ohm: float = 0.0
    max_channel_ohm: float = math.inf

    @property
    def blocks_dc(self) -> bool:
        return self.coupling == DC_BLOCK

    def time_constant_s(self, r_ch_ohm: float) -> float:
        """The DC block's ``τ = (R_ch + R_out)·C`` in s through a channel of ``r_ch_ohm`` (``inf``: direct)."""
        return (r_ch_ohm + self.output_impedance_ohm) * self.capacitance_f if self.blocks_dc else math.inf

    def droop(self, width_s: float, r_ch_ohm: float) -> float:
        """How far a rectangular pulse's current has fallen by its end, as a fraction: ``1 − e^(−t/τ)``."""
        return -math.expm1(-width_s / self.time_constant_s(r_ch_ohm))

    def read_fraction(self, r_ch_ohm: float, generator_on: bool = True) -> float:
        """The fraction of the source meter's DC current that flows in a channel of ``r_ch_ohm``: the rest goes
        into the generator's output when it is directly across the channel (``R_out / (R_out + R_ch)``)."""
        r_out = self.output_impedance_ohm if generator_on else self.off_impedance_ohm
        return 1.0 if self.blocks_dc or math.isinf(r_out) else r_out / (r_out + r_ch_ohm)


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
    wiring: Wiring | None = None  # None: a file from before wiring: could be declared (nothing modeled, checked)

    @property
    def source_impedance_ohm(self) -> float:
        """The pulse generator's output impedance (the file's wiring, 50 Ω where it declares none)."""
        return SOURCE_IMPEDANCE_OHM if self.wiring is None else self.wiring.output_impedance_ohm

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


def _positive(value: Any, unit: str) -> float:
    """A positive quantity such as ``"2.5mA"`` (or a bare SI number), as a float in ``unit``."""
    try:
        number = parse_quantity(value, unit, "\0")
    except QuantityError as exc:
        raise _error(str(exc).removeprefix("\0: ")) from None
    if not math.isfinite(number) or number <= 0:
        raise _error(f"must be a positive quantity in {unit}, got {value!r}")
    return number


def _quantity(unit: str) -> Any:
    """A key whose value is a positive quantity in ``unit`` (:func:`_positive`)."""
    return Annotated[float, BeforeValidator(lambda value: _positive(value, unit))]


_REQUIRED: Any = None  # default of a required key: validated as a null, so the error says what is expected
_OR_EMPTY_MAPPING = BeforeValidator(lambda value: value or {})  # an optional key: absent or null is empty
_OR_EMPTY_LIST = BeforeValidator(lambda value: value or [])
_KNOWN_TERMINALS = tuple(sorted(f"{role}.{terminal}" for role, terms in TERMINALS.items() for terminal in terms))
_Metres, _Amps, _Volts, _Seconds, _Ohms, _Farads, _Number = (_quantity(unit)
                                                             for unit in ("m", "A", "V", "s", "ohm", "F", ""))
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


class _ChannelResistance(_Section):
    min: _Ohms = _REQUIRED
    max: _Ohms = _REQUIRED

    @model_validator(mode="after")
    def _ordered(self) -> _ChannelResistance:
        if self.min > self.max:
            raise _error(f"min {self.min:g} ohm is above max {self.max:g} ohm", "min")
        return self


def _impedance_or_open(value: Any) -> float:
    if isinstance(value, str) and value.strip().lower() == "open":
        return math.inf
    return _positive(value, "ohm")


class _Wiring(_Section):
    coupling: Annotated[str, _rule(lambda coupling: coupling in COUPLINGS,
                                   f"expected one of {', '.join(COUPLINGS)}, got {{!r}}")] = _REQUIRED
    capacitance: _Farads = Field(None, validate_default=False)  # the DC block's series capacitance
    output_impedance: _Ohms = "50 ohm"  # the generator's source impedance while its output is on
    output_off: Annotated[float, BeforeValidator(_impedance_or_open)] = "open"  # "open", or its impedance off
    channel_resistance: _ChannelResistance | None = None  # the devices' channel resistances, for the load checks

    @model_validator(mode="after")
    def _capacitance_of_a_dc_block(self) -> _Wiring:
        if self.coupling == DC_BLOCK and self.capacitance is None:
            raise _error("expected a quantity in F, got None (a DC block needs its series capacitance)",
                         "capacitance")
        if self.coupling == DIRECT and self.capacitance is not None:
            raise _error("a direct coupling has no series capacitance; remove the key, or say coupling: dc_block",
                         "capacitance")
        return self


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
    wiring: _Wiring | None = None  # absent: a file from before the section existed (warned at load)
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
    w = station.wiring
    wiring = None if w is None else Wiring(
        w.coupling, w.capacitance or math.inf, w.output_impedance, w.output_off,
        *((w.channel_resistance.min, w.channel_resistance.max) if w.channel_resistance else (0.0, math.inf)))
    spec = StationSpec(
        name=station.name, path=path, triggers=station.triggers, rows=matrix.rows, connect=matrix.connect,
        instruments={role: InstrumentSpec(role, **dict(inst)) for role, inst in dict(station.instruments).items()},
        forbidden=matrix.forbidden, max_compliance_v=safety.max_compliance, max_pulse_width_s=safety.max_pulse_width,
        devices=devices, readout=Readout(r.read_current, r.compliance, r.nplc, r.hall_step), chip=chip, raw=dict(raw),
        dw_limits=dw_limits, wiring=wiring)
    if wiring is not None:
        check_wiring(spec)
    return spec


def load_station_spec(path: str | Path) -> StationSpec:
    """Read and validate a station file (a :class:`StationWarning` when it does not declare its wiring)."""
    path = Path(path)
    spec = parse_station(read_yaml(path, "station", StationConfigError), path.resolve())
    if spec.wiring is None:
        warnings.warn(f"{path.name}: no wiring: section, so nothing says how the pulse generator shares the "
                      "channel's pads with the source meter; read as before the section existed (nothing about it is "
                      "checked, and the emulated bench models no shunt, DC block or clamp). Coupled directly, the "
                      f"generator's 50 Ω output would take {_percent(_shunted(1e3, 50.0))} of the read current of a "
                      "1 kΩ channel during the fast path's reads: declare wiring: (see station.example-lab.yaml)",
                      StationWarning, stacklevel=2)
    return spec


# ---- what the wiring does on a real bench: refused or warned at load ----------------------------------------------


def check_wiring(spec: StationSpec) -> None:
    """Refuse (:class:`SafetyError`) a station whose wiring would shunt its reads; warn (:class:`StationWarning`)
    about a DC block that droops by more than :data:`DROOP_LIMIT` and a compliance that could clamp a pulse."""
    wiring = spec.wiring
    assert wiring is not None
    r_out = wiring.output_impedance_ohm
    if not wiring.blocks_dc:
        if spec.fast_path_wired:
            raise SafetyError(f"wiring.coupling: direct, with the fast path wired (triggers): the pulse generator's "
                              f"{_si(r_out, 'Ω')} output is across the channel during the fast path's reads and takes "
                              f"{_share(spec, r_out)}; declare a DC block in series with the generator "
                              "(wiring.coupling: dc_block, with its capacitance), or remove the trigger line and "
                              "measure on the naive path")
        r_off = wiring.off_impedance_ohm
        if math.isfinite(r_off):
            raise SafetyError(f"wiring.output_off: {_si(r_off, 'Ω')}: coupled directly, the pulse generator's output "
                              f"is across the channel even when off, and takes {_share(spec, r_off)} on every read; "
                              "declare a DC block (wiring.coupling: dc_block), or a generator whose output opens when "
                              "off (output_off: open)")
    else:
        _warn_droop(spec, wiring)
    if spec.fast_path_wired:
        _warn_clamp(spec, wiring)


def _warn_droop(spec: StationSpec, wiring: Wiring) -> None:
    """Warn when a DC block's pulses droop by more than :data:`DROOP_LIMIT` through the lowest channel declared."""
    r = wiring.min_channel_ohm
    pulses = {f"the {_si(RESET_WIDTH_S, 's')} reset": RESET_WIDTH_S,
              f"a {_si(spec.max_pulse_width_s, 's')} pulse (safety.max_pulse_width)": spec.max_pulse_width_s}
    droops = {what: wiring.droop(width, r) for what, width in pulses.items()}
    if max(droops.values()) <= DROOP_LIMIT:
        return
    longest = max(pulses.values())
    needed = longest / -math.log1p(-DROOP_LIMIT) / (r + wiring.output_impedance_ohm)
    through = f"a {_si(r, 'Ω')} channel (wiring.channel_resistance.min)" if r > 0 else \
        "a channel of no resistance (declare wiring.channel_resistance for your devices')"
    warnings.warn(f"wiring.capacitance: the {_si(wiring.capacitance_f, 'F')} DC block droops "
                  f"{' and '.join(f'{_percent(d)} over {what}' for what, d in droops.items())} through {through}: "
                  f"τ = ({_si(r, 'Ω')} + {_si(wiring.output_impedance_ohm, 'Ω')}) × {_si(wiring.capacitance_f, 'F')} "
                  f"= {_si(wiring.time_constant_s(r), 's')}, and a pulse's current falls that much by its end; "
                  f"{_si(needed, 'F')} or more keeps it within {_percent(DROOP_LIMIT)}", StationWarning, stacklevel=3)


def _warn_clamp(spec: StationSpec, wiring: Wiring) -> None:
    """Warn when the largest pulse the station allows can exceed the source meter's compliance across a channel:
    on the fast path the source meter sources the read current through every pulse and would clamp it."""
    from instruments.adapters import SUPPORTED_MODELS  # the generator's largest level

    generator = spec.instruments["pulse_generator"].model
    max_level = getattr(SUPPORTED_MODELS["pulse_generator"][generator], "max_level_v", math.inf)
    readout, r, r_out = spec.readout, wiring.max_channel_ohm, wiring.output_impedance_ohm
    currents = [d.max_current_a for d in spec.devices.values() if d.kind == HALL_BAR]
    if not currents or not math.isfinite(max_level):
        return
    if math.isfinite(r):
        pulse_v = min(max(currents) * r, max_level * r / (r + r_out))
        needed = pulse_v + readout.read_current_a * r * wiring.read_fraction(r)
        across = f"across a {_si(r, 'Ω')} channel (wiring.channel_resistance.max), with the read current"
    else:
        needed, across = max_level, "across a channel of high resistance"
    if readout.compliance_v >= needed:
        return
    warnings.warn(f"readout.compliance: {_si(readout.compliance_v, 'V')} is below the {_si(needed, 'V')} that the "
                  f"largest pulse the station allows ({generator}: up to ±{_si(max_level, 'V')}) puts {across}: the "
                  "source meter sources the read current through the fast path's pulses and would clamp such a pulse "
                  f"at {_si(readout.compliance_v, 'V')}; raise readout.compliance (safety.max_compliance: "
                  f"{_si(spec.max_compliance_v, 'V')}). Every pulse is checked against its device's measured channel "
                  "resistance before it is sent", StationWarning, stacklevel=3)


def _share(spec: StationSpec, r_out_ohm: float) -> str:
    """How much of the read current a generator output of ``r_out_ohm`` across the channel takes, in words."""
    wiring, current = spec.wiring, _si(spec.readout.read_current_a, "A")
    assert wiring is not None
    low, high = wiring.min_channel_ohm, wiring.max_channel_ohm
    if math.isinf(high):
        return f"~{_percent(_shunted(1e3, r_out_ohm))} of the {current} read current of a 1 kΩ channel"
    return (f"{_percent(_shunted(low, r_out_ohm))}–{_percent(_shunted(high, r_out_ohm))} of the {current} read "
            f"current of its {_si(low, 'Ω')}–{_si(high, 'Ω')} channels")


def _shunted(r_ch_ohm: float, r_out_ohm: float) -> float:
    """The fraction of the read current a generator output of ``r_out_ohm`` across the channel takes."""
    return r_ch_ohm / (r_ch_ohm + r_out_ohm)


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.2g} %" if fraction < 0.1 else f"{100 * fraction:.0f} %"


_PREFIXES = {-12: "p", -9: "n", -6: "µ", -3: "m", 0: "", 3: "k", 6: "M", 9: "G"}


def _si(value: float, unit: str) -> str:
    """``value`` with an SI prefix and three significant digits: ``_si(1.05e3, "Ω")`` is ``"1.05 kΩ"``."""
    if not math.isfinite(value) or value == 0:
        return f"{value:g} {unit}"
    exponent = min(max(3 * math.floor(math.log10(abs(value)) / 3), -12), 9)
    return f"{float(f'{value / 10 ** exponent:.3g}'):g} {_PREFIXES[exponent]}{unit}"
