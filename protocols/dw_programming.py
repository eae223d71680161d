"""``dw_programming``: each DW synapse track programmed to each state N times, its conductance read each time.

One programming: a reset pulse (negative: the wall to state 0), the programming pulse whose amplitude selects
the state (``program_voltages[k]``; 0 V for state 0), then ``readings`` four-wire readings of the track's
resistance, averaged as conductances. Units are (track, batch of programmings); the states of a track come
in a seeded random order by default, so slow drift does not bias one state. Every batch is one waveform
(:mod:`instruments.track_programming`).

**Weight rule.** A conductance ``G`` stands for the weight ``w = (2G − G_low − G_high)/(G_high − G_low)``:
``G_low`` (``conductance.low``) is the track's conductance with the wall at weight −1, ``G_high`` at +1
(the chip's documented end conductances), so the nominal levels of a K-state track are evenly spaced in
[−1, 1]. The analysis fits the realized weights of every (track, state) (:mod:`protocols.weight_distributions`):
``dw_states`` per track and state, ``dw_model`` pooled over the tracks — what a synapse model file holds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from instruments.station import DeviceOpenError
from instruments.station_config import DW_TRACK, StationSpec
from instruments.track_programming import ProgrammingTiming, program_track
from instruments.units import QuantityError, parse_quantity
from protocols.base import ProtocolConfigError, StationProtocol, integer, known_keys, quantity
from protocols.engine import Unit
from protocols.fits import FitError
from protocols.records import Descriptor, Field
from protocols.weight_distributions import fit_normal, fit_pooled, level_variation, spacing

ORDERS = ("shuffled", "ascending")
OPEN_OHM = 1e30  # a reading at or above this (or not finite) is an open circuit

PROGRAMMINGS = Descriptor("dw_programmings", (
    Field("device", "S32", "", "DW track id"),
    Field("state", "i2", "", "the state programmed"),
    Field("program_v", "f8", "V", "programming pulse amplitude at the pulse generator (0: no pulse)"),
    Field("program_width_s", "f8", "s", "programming pulse width"),
    Field("reset_v", "f8", "V", "reset pulse amplitude (negative)"),
    Field("reset_width_s", "f8", "s", "reset pulse width"),
    Field("reset_reading_ohm", "f8", "ohm", "four-wire resistance after the reset pulse (inf: open)"),
    Field("n_readings", "i4", "", "readings after the programming pulse"),
    Field("reading_ohm", "f8", "ohm", "mean of those readings (inf: open)"),
    Field("conductance_s", "f8", "S", "mean of their conductances (1/R each)"),
    Field("conductance_sd_s", "f8", "S", "sample standard deviation of their conductances (read noise)"),
    Field("weight", "f8", "", "the realized weight: conductance_s by the run's weight rule"),
    Field("time_s", "f8", "s", "Unix time when the batch was measured", reproducible=False),
), "DW track programmings: reset, programming pulse, readings; one row per programming")

STATE_FITS = np.dtype([
    ("device", "S32"), ("state", "i2"), ("n", "i8"), ("level", "f8"), ("level_low", "f8"), ("level_high", "f8"),
    ("sigma", "f8"), ("sigma_low", "f8"), ("sigma_high", "f8"), ("spacing", "f8"), ("sigma_spacing", "f8"),
    ("sigma_spacing_low", "f8"), ("sigma_spacing_high", "f8"), ("conductance_s", "f8"), ("read_noise", "f8")])
STATE_FITS_RESULT, MODEL_RESULT = "dw_states", "dw_model"


class DWProgramming(StationProtocol):
    name = "dw_programming"
    kind = DW_TRACK
    records = (PROGRAMMINGS,)
    keys = StationProtocol.keys | {"repeats", "readings", "reset", "program_width", "program_voltages",
                                   "conductance", "order", "batch", "confidence"}

    def __init__(self, spec: StationSpec, raw: Mapping[str, Any]) -> None:
        super().__init__(spec, raw)
        self.repeats = integer(raw, "repeats", "", default=100)
        self.readings = integer(raw, "readings", "", default=4)
        self.batch = integer(raw, "batch", "", default=100)
        self.order = raw.get("order", "shuffled")
        if self.order not in ORDERS:
            raise ProtocolConfigError(f"order: expected 'shuffled' or 'ascending', got {self.order!r}")
        self.confidence = raw.get("confidence", 0.95)
        if isinstance(self.confidence, bool) or not isinstance(self.confidence, float) or not 0 < self.confidence < 1:
            raise ProtocolConfigError(f"confidence: expected a number between 0 and 1, got {self.confidence!r}")
        reset = raw.get("reset")
        if not isinstance(reset, Mapping):
            raise ProtocolConfigError(f"reset: expected a mapping with voltage and width, got {reset!r}")
        known_keys(reset, {"voltage", "width"}, "reset.")
        self.reset_v = quantity(reset, "voltage", "V", "reset.", sign=-1)
        self.timing = ProgrammingTiming(reset_width_s=quantity(reset, "width", "s", "reset.", default="1us"),
                                        program_width_s=quantity(raw, "program_width", "s", "", default="1us"))
        voltages = raw.get("program_voltages")
        if not isinstance(voltages, list) or len(voltages) < 2:
            raise ProtocolConfigError(f"program_voltages: expected one amplitude per state (two or more), got "
                                      f"{voltages!r}")
        self.program_v = np.array([self._amplitude(v, k) for k, v in enumerate(voltages)])
        conductance = raw.get("conductance")
        if not isinstance(conductance, Mapping):
            raise ProtocolConfigError(f"conductance: expected {{low: ..., high: ...}} (the weight rule), got "
                                      f"{conductance!r}")
        known_keys(conductance, {"low", "high"}, "conductance.")
        self.g_low_s = quantity(conductance, "low", "S", "conductance.")
        self.g_high_s = quantity(conductance, "high", "S", "conductance.")
        if self.g_high_s <= self.g_low_s:
            raise ProtocolConfigError(f"conductance.high: must be above conductance.low, got {conductance['high']!r}")
        for device in self.devices:  # every pulse of the run refused now, not in the middle of it
            check_programming_limits(spec, device, self.program_v, self.reset_v, self.timing)

    @staticmethod
    def _amplitude(value: Any, state: int) -> float:
        """A programming amplitude in V: ≥ 0 (0: no pulse, as for state 0 after the reset)."""
        where = f"program_voltages[{state}]"
        try:
            voltage = parse_quantity(value, "V", where)
        except QuantityError as exc:
            raise ProtocolConfigError(str(exc)) from None
        if not (math.isfinite(voltage) and voltage >= 0):
            raise ProtocolConfigError(f"{where}: must be 0 or a positive voltage, got {value!r}")
        return voltage

    @property
    def states(self) -> int:
        return int(self.program_v.size)

    def weight(self, conductance_s: np.ndarray) -> np.ndarray:
        """The weight rule (module docstring)."""
        return (2 * np.asarray(conductance_s, dtype=np.float64) - self.g_low_s - self.g_high_s) / (
            self.g_high_s - self.g_low_s)

    def plan(self) -> list[Unit]:
        rng = np.random.default_rng(self.seed)
        units: list[Unit] = []
        for device in self.devices:
            states = np.repeat(np.arange(self.states), self.repeats)
            if self.order == "shuffled":
                states = rng.permutation(states)
            for start in range(0, states.size, self.batch):
                chunk = [int(k) for k in states[start:start + self.batch]]
                units.append(Unit(len(units), device, {"states": chunk}, len(chunk)))
        return units

    def measure_unit(self, unit: Unit) -> dict[str, np.ndarray]:
        states = np.asarray(unit.params["states"], dtype=np.int64)
        with self.station.checked(f"programming DW track {unit.device}"):
            batch = program_track(self.station, unit.device, self.program_v[states], self.reset_v, self.readings,
                                  self.timing)
        readings = batch.readings_ohm
        open_ = ~np.isfinite(readings) | (np.abs(readings) >= OPEN_OHM)
        with np.errstate(divide="ignore", invalid="ignore"):
            conductance = np.where(open_, np.nan, 1.0 / np.where(open_, 1.0, readings))
        rows = PROGRAMMINGS.rows(states.size, unit.index)
        rows["device"] = unit.device
        rows["state"] = states
        rows["program_v"] = batch.program_v
        rows["program_width_s"] = self.timing.program_width_s
        rows["reset_v"] = self.reset_v
        rows["reset_width_s"] = self.timing.reset_width_s
        rows["reset_reading_ohm"] = batch.reset_readings_ohm
        rows["n_readings"] = self.readings
        rows["reading_ohm"] = np.where(open_.any(axis=1), np.inf, readings.mean(axis=1))
        rows["conductance_s"] = conductance.mean(axis=1)
        rows["conductance_sd_s"] = conductance.std(axis=1, ddof=1) if self.readings > 1 else 0.0
        rows["weight"] = self.weight(rows["conductance_s"])
        rows["time_s"] = time.time()
        if open_[-1].all():
            raise DeviceOpenError(unit.device, f"DW track {unit.device}: reads open after its programmings; it may "
                                  "have broken down. No further pulse will be sent to it", rows)
        return {PROGRAMMINGS.name: rows}

    def analyse(self, tables: Mapping[str, np.ndarray]) -> dict[str, Any]:
        results = super().analyse(tables)
        rows = tables.get(PROGRAMMINGS.name, np.zeros(0, PROGRAMMINGS.dtype))
        fits = state_fits(rows, self.g_high_s - self.g_low_s, self.confidence)
        results[STATE_FITS_RESULT] = fits
        try:
            results[MODEL_RESULT] = {**synapse_model(rows, self.confidence),
                                     "conductance": {"low_s": self.g_low_s, "high_s": self.g_high_s}}
        except FitError as exc:
            results[MODEL_RESULT] = {"error": str(exc)}
        return results


def check_programming_limits(spec: StationSpec, device: str, program_v: np.ndarray, reset_v: float,
                             timing: ProgrammingTiming) -> None:
    """The run's pulses against the station file's limits (before any instrument is connected)."""
    spec.check_dw_pulse(device, reset_v, timing.reset_width_s, what="reset pulse")
    for voltage in program_v:
        spec.check_dw_pulse(device, float(voltage), timing.program_width_s)


def weights_by_track(rows: np.ndarray) -> dict[str, dict[int, np.ndarray]]:
    """Track id → state → the realized weights of its programmings (open readings left out)."""
    out: dict[str, dict[int, np.ndarray]] = {}
    valid = rows[np.isfinite(rows["weight"])] if rows.size else rows
    for device in np.unique(valid["device"]):
        mine = valid[valid["device"] == device]
        out[device.decode()] = {int(k): mine["weight"][mine["state"] == k] for k in np.unique(mine["state"])}
    return out


def state_fits(rows: np.ndarray, conductance_span_s: float, confidence: float = 0.95) -> np.ndarray:
    """``dw_states``: per track and state, the Gaussian fit of the realized weights (and the read noise of
    one reading, in weight units: the pooled spread of the repeated readings)."""
    out = []
    for device, states in weights_by_track(rows).items():
        fits = {k: fit_normal(w, confidence) for k, w in states.items() if np.isfinite(w).sum() >= 2}
        if len(fits) < 2:
            continue
        step = spacing([fits[k].mean for k in sorted(fits)])
        mine = rows[rows["device"] == device.encode()]
        for k, fit in sorted(fits.items()):
            of_state = mine[(mine["state"] == k) & np.isfinite(mine["conductance_sd_s"])]
            read_sd = float(np.sqrt(np.mean(of_state["conductance_sd_s"] ** 2))) * 2 / conductance_span_s \
                if of_state.size else float("nan")
            out.append((device, k, fit.n, fit.mean, fit.mean_low, fit.mean_high, fit.sigma, fit.sigma_low,
                        fit.sigma_high, step, fit.sigma / step, fit.sigma_low / step, fit.sigma_high / step,
                        float(np.nanmean(of_state["conductance_s"])) if of_state.size else float("nan"), read_sd))
    return np.array(out, dtype=STATE_FITS)


def synapse_model(rows: np.ndarray, confidence: float = 0.95) -> dict[str, Any]:
    """``dw_model``: the synapse model of all the run's tracks together (:mod:`protocols.weight_distributions`):
    levels, σ per state in units of the spacing, their intervals, the level variation."""
    by_track = weights_by_track(rows)
    states = sorted({k for track in by_track.values() for k in track})
    if len(states) < 2:
        raise FitError("a synapse model needs programmings of two or more states")
    by_state = [{t: w[k] for t, w in by_track.items() if k in w} for k in states]
    fits = [fit_pooled(list(tracks.values()), confidence) for tracks in by_state]
    step = spacing([f.mean for f in fits])
    return {"states": len(states), "confidence": confidence, "tracks": sorted(by_track), "spacing": step,
            "levels": [f.mean for f in fits], "level_intervals": [[f.mean_low, f.mean_high] for f in fits],
            "sigma": [f.sigma / step for f in fits],
            "sigma_intervals": [[f.sigma_low / step, f.sigma_high / step] for f in fits],
            "sigma_weight": [f.sigma for f in fits], "n": [f.n for f in fits],
            "level_variation": level_variation(by_state, [f.sigma for f in fits], step)}


def programmings(tables: Mapping[str, np.ndarray]) -> np.ndarray:
    """The ``dw_programmings`` rows of a run's tables (empty when there are none)."""
    return tables.get(PROGRAMMINGS.name, np.zeros(0, PROGRAMMINGS.dtype))
