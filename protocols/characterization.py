"""Characterization protocols, written against the station's roles (never a vendor model).

- ``channel_resistance``: two-wire channel resistance of each device (sets the current→voltage map);
- ``reset_check``: 100 µs reset pulses, each read back: the reset success rate;
- ``bias_sweep``: for each device and each bias current, N trials of reset → bias pulse → read;
- ``hysteresis_loop``: DC current steps up and down with a dwell, ``R_xy`` at each step.

Each protocol's parameters come from a YAML file (``configs/protocols/*.yaml``, values with units:
``100us``, ``2.5mA``) validated by :func:`load_protocol`. Each plans its units up front and measures
one unit at a time; the run engine (:mod:`protocols.engine`) streams the records to the sinks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from instruments.config_files import check_keys, read_yaml
from instruments.station import Station
from instruments.trials import TrialTiming, run_trials_fast, run_trials_naive
from instruments.units import QuantityError, parse_quantity
from protocols.engine import Unit

TRIAL_DTYPE = np.dtype([("unit", "i8"), ("device", "S32"), ("amplitude_a", "f8"), ("width_s", "f8"),
                        ("reset_a", "f8"), ("outcome", "i1"), ("reset_ok", "i1"), ("reading_ohm", "f8"),
                        ("reset_reading_ohm", "f8"), ("time_s", "f8")])
STEP_DTYPE = np.dtype([("unit", "i8"), ("device", "S32"), ("step", "i4"), ("current_a", "f8"), ("dwell_s", "f8"),
                       ("reading_ohm", "f8"), ("time_s", "f8")])
RESISTANCE_DTYPE = np.dtype([("unit", "i8"), ("device", "S32"), ("r_ch_ohm", "f8"), ("time_s", "f8")])


class ProtocolConfigError(ValueError):
    """A protocol file that cannot be run; the message names the key and value."""


def _q(raw: Mapping[str, Any], key: str, unit: str, where: str, default: Any = None, positive: bool = True,
       negative: bool = False) -> float:
    value = raw.get(key, default)
    if value is None:
        raise ProtocolConfigError(f"{where}{key}: missing")
    try:
        number = parse_quantity(value, unit, f"{where}{key}")
    except QuantityError as exc:
        raise ProtocolConfigError(str(exc)) from None
    if not math.isfinite(number) or (positive and not negative and number <= 0) or (negative and number >= 0):
        sign = "negative" if negative else "positive"
        raise ProtocolConfigError(f"{where}{key}: must be a {sign} quantity in {unit}, got {value!r}")
    return number


def _int(raw: Mapping[str, Any], key: str, where: str, default: int | None = None, minimum: int = 1) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ProtocolConfigError(f"{where}{key}: expected an integer ≥ {minimum}, got {value!r}")
    return value


def _keys(raw: Mapping[str, Any], known: set[str], where: str) -> None:
    check_keys(raw, known, where, ProtocolConfigError)


def _per_width(raw: Any, where: str) -> dict[float, Any]:
    if not isinstance(raw, Mapping) or not raw:
        raise ProtocolConfigError(f"{where}: expected a mapping from device width to a value, got {raw!r}")
    out = {}
    for width, value in raw.items():
        try:
            out[round(parse_quantity(width, "m", f"{where}[{width!r}]"), 12)] = value
        except QuantityError as exc:
            raise ProtocolConfigError(str(exc)) from None
    return out


class _Protocol:
    """Shared parts: device selection and the width-keyed tables."""

    name = ""
    known_keys: set[str] = {"protocol", "devices", "seed", "notes"}

    def __init__(self, station: Station, raw: Mapping[str, Any]) -> None:
        _keys(raw, self.known_keys, "")
        self.station = station
        self.raw = dict(raw)
        devices = raw.get("devices", "all")
        if devices == "all":
            self.devices = list(station.spec.devices)
        elif isinstance(devices, list) and devices:
            for device in devices:
                if device not in station.spec.devices:
                    raise ProtocolConfigError(f"devices: {device!r} is not a device of station "
                                              f"{station.spec.name!r} ({', '.join(station.spec.devices)})")
            self.devices = list(devices)
        else:
            raise ProtocolConfigError(f"devices: expected 'all' or a list of device ids, got {devices!r}")
        self.seed = _int(raw, "seed", "", default=0, minimum=0)

    def parameters(self) -> dict[str, Any]:
        return {"protocol": self.name, **self.raw, "devices": self.devices, "seed": self.seed}

    def width_of(self, device: str) -> float:
        return round(self.station.spec.device(device).width_m, 12)

    def lookup(self, table: dict[float, Any], device: str, where: str) -> Any:
        width = self.width_of(device)
        if width not in table:
            raise ProtocolConfigError(f"{where}: no entry for width {width * 1e6:g} um (device {device})")
        return table[width]


class ChannelResistance(_Protocol):
    name = "channel_resistance"
    known_keys = _Protocol.known_keys

    def plan(self) -> list[Unit]:
        return [Unit(i, device) for i, device in enumerate(self.devices)]

    def measure(self, unit: Unit) -> dict[str, np.ndarray]:
        r_ch = self.station.measure_channel_resistance(unit.device)
        rows = np.array([(unit.index, unit.device, r_ch, time.time())], dtype=RESISTANCE_DTYPE)
        return {"resistance": rows}


class _TrialProtocol(_Protocol):
    """Protocols made of reset → bias → read trials."""

    known_keys = _Protocol.known_keys | {"reset", "pulse_width", "path", "batch"}

    def __init__(self, station: Station, raw: Mapping[str, Any]) -> None:
        super().__init__(station, raw)
        reset = raw.get("reset")
        if not isinstance(reset, Mapping):
            raise ProtocolConfigError(f"reset: expected a mapping with width and current, got {reset!r}")
        _keys(reset, {"width", "current"}, "reset.")
        self.timing = TrialTiming(reset_width_s=_q(reset, "width", "s", "reset.", default="100us"))
        currents = _per_width(reset.get("current"), "reset.current")
        self.reset_a = {w: _q({"current": v}, "current", "A", f"reset.current[{w * 1e6:g}um].", negative=True)
                        for w, v in currents.items()}
        self.width_s = _q(raw, "pulse_width", "s", "", default="10us")
        self.path = raw.get("path", "fast")
        if self.path not in ("fast", "naive"):
            raise ProtocolConfigError(f"path: expected 'fast' or 'naive', got {self.path!r}")
        for device in self.devices:
            self.lookup(self.reset_a, device, "reset.current")

    def trials(self, unit: Unit, bias_a: np.ndarray) -> dict[str, np.ndarray]:
        runner = run_trials_fast if self.path == "fast" else run_trials_naive
        reset_a = self.lookup(self.reset_a, unit.device, "reset.current")
        batch = runner(self.station, unit.device, bias_a, self.width_s, reset_a, self.timing)
        rows = np.zeros(len(batch), dtype=TRIAL_DTYPE)
        rows["unit"] = unit.index
        rows["device"] = unit.device
        rows["amplitude_a"] = batch.bias_a
        rows["width_s"] = batch.width_s
        rows["reset_a"] = reset_a
        rows["outcome"] = batch.switched
        rows["reset_ok"] = batch.reset_ok
        rows["reading_ohm"] = batch.readings_ohm
        rows["reset_reading_ohm"] = batch.reset_readings_ohm
        rows["time_s"] = time.time()
        return {"trials": rows}


class ResetCheck(_TrialProtocol):
    """Reset pulses read back: a 'trial' with a zero bias pulse, so every outcome should be 'not switched'."""

    name = "reset_check"
    known_keys = _TrialProtocol.known_keys | {"repeats"}

    def __init__(self, station: Station, raw: Mapping[str, Any]) -> None:
        super().__init__(station, raw)
        self.repeats = _int(raw, "repeats", "", default=100)

    def plan(self) -> list[Unit]:
        return [Unit(i, device, {}, self.repeats) for i, device in enumerate(self.devices)]

    def measure(self, unit: Unit) -> dict[str, np.ndarray]:
        return self.trials(unit, np.zeros(self.repeats))


class BiasSweep(_TrialProtocol):
    """For each device and bias current, N trials. Units are (device, bias point, batch)."""

    name = "bias_sweep"
    known_keys = _TrialProtocol.known_keys | {"bias", "trials_per_point", "order"}

    def __init__(self, station: Station, raw: Mapping[str, Any]) -> None:
        super().__init__(station, raw)
        self.trials_per_point = _int(raw, "trials_per_point", "", default=200)
        self.batch = _int(raw, "batch", "", default=self.trials_per_point)
        self.order = raw.get("order", "shuffled")
        if self.order not in ("shuffled", "ascending"):
            raise ProtocolConfigError(f"order: expected 'shuffled' or 'ascending', got {self.order!r}")
        self.bias: dict[float, np.ndarray] = {}
        for width, spec in _per_width(raw.get("bias"), "bias").items():
            where = f"bias[{width * 1e6:g}um]."
            if isinstance(spec, Mapping):
                _keys(spec, {"start", "stop", "points"}, where)
                start = _q(spec, "start", "A", where)
                stop = _q(spec, "stop", "A", where)
                if stop <= start:
                    raise ProtocolConfigError(f"{where}stop: must be above start, got {spec['stop']!r}")
                currents = np.linspace(start, stop, _int(spec, "points", where, minimum=2))
            elif isinstance(spec, list) and spec:
                currents = np.array([_q({"i": v}, "i", "A", where) for v in spec])
            else:
                raise ProtocolConfigError(f"{where[:-1]}: expected {{start, stop, points}} or a list of currents")
            self.bias[width] = currents
        for device in self.devices:
            currents = self.lookup(self.bias, device, "bias")
            # refused here, before the run starts, rather than in the middle of it
            station.check_pulses(device, [*currents, self.lookup(self.reset_a, device, "reset.current")],
                                 [self.width_s, self.timing.reset_width_s])

    def plan(self) -> list[Unit]:
        rng = np.random.default_rng(self.seed)
        units: list[Unit] = []
        for device in self.devices:
            currents = self.lookup(self.bias, device, "bias")
            order = rng.permutation(currents.size) if self.order == "shuffled" else np.arange(currents.size)
            for point in order:
                remaining = self.trials_per_point
                while remaining > 0:
                    n = min(self.batch, remaining)
                    units.append(Unit(len(units), device, {"amplitude_a": float(currents[point])}, n))
                    remaining -= n
        return units

    def measure(self, unit: Unit) -> dict[str, np.ndarray]:
        return self.trials(unit, np.full(unit.n_trials, unit.params["amplitude_a"]))


class HysteresisLoop(_Protocol):
    """DC current from −I_max to +I_max and back, ``steps`` per branch, ``dwell`` per step."""

    name = "hysteresis_loop"
    known_keys = _Protocol.known_keys | {"max_current", "steps", "dwell", "loops"}

    def __init__(self, station: Station, raw: Mapping[str, Any]) -> None:
        super().__init__(station, raw)
        self.max_current = {w: _q({"i": v}, "i", "A", f"max_current[{w * 1e6:g}um].")
                            for w, v in _per_width(raw.get("max_current"), "max_current").items()}
        self.steps = _int(raw, "steps", "", default=81, minimum=3)
        self.dwell_s = _q(raw, "dwell", "s", "", default="1ms")
        self.loops = _int(raw, "loops", "", default=1)
        for device in self.devices:
            i_max = self.lookup(self.max_current, device, "max_current")
            station.spec.check_current(device, i_max, what="DC current")

    def currents(self, device: str) -> np.ndarray:
        i_max = self.lookup(self.max_current, device, "max_current")
        up = np.linspace(-i_max, i_max, self.steps)
        return np.concatenate([up, up[::-1][1:]])

    def plan(self) -> list[Unit]:
        return [Unit(len(self.devices) * loop + i, device, {"loop": loop})
                for loop in range(self.loops) for i, device in enumerate(self.devices)]

    def measure(self, unit: Unit) -> dict[str, np.ndarray]:
        currents = self.currents(unit.device)
        readings = np.asarray(self.station.dc_sweep(unit.device, list(currents), self.dwell_s), dtype=np.float64)
        rows = np.zeros(currents.size, dtype=STEP_DTYPE)
        rows["unit"] = unit.index
        rows["device"] = unit.device
        rows["step"] = np.arange(currents.size)
        rows["current_a"] = currents
        rows["dwell_s"] = self.dwell_s
        rows["reading_ohm"] = readings
        rows["time_s"] = time.time()
        return {"steps": rows}


PROTOCOLS: dict[str, type[_Protocol]] = {p.name: p for p in (ChannelResistance, ResetCheck, BiasSweep, HysteresisLoop)}


def load_protocol(source: str | Path | Mapping[str, Any], station: Station) -> _Protocol:
    """Validate a protocol file (or mapping) against ``station`` and return the protocol, ready to run."""
    if isinstance(source, Mapping):
        raw = source
    else:
        raw = read_yaml(source, "protocol", ProtocolConfigError)
    if not isinstance(raw, Mapping):
        raise ProtocolConfigError("protocol file: expected a mapping at the top level")
    name = raw.get("protocol")
    if name not in PROTOCOLS:
        raise ProtocolConfigError(f"protocol: {name!r} is not a protocol (known: {', '.join(PROTOCOLS)})")
    return PROTOCOLS[name](station, raw)
