"""``hil calibrate``: fit every device's simulator parameters and the chip's non-idealities from a recorded session
into a chip file.

Per device, from the recorded trials and steps:

- ``ic0``, ``delta``: joint binomial ML fit over every bias-sweep trial (all pulse widths at once) with the heated
  Néel–Brown rate the simulator uses (:mod:`hil.offline.heating_fit`); with several widths the exponent of ``t_p``
  of the isothermal form is reported too, as a model check;
- ``r0``, ``delta_r_ahe``: the mean readings of the two states (after reset: down; switched: up);
- ``r_ch``: the channel-resistance run.

Chip-wide, each where the session has the data (``effects:``, :mod:`sim_backend.effects`):

- ``joule_heating``: from bias sweeps at two or more pulse widths, the specific thermal resistance jointly with
  every device's Ic0 and Δ, and the thermal time constant where the widths constrain it;
- ``drift``: from the reference points of bias sweeps, the wear per 10⁶ pulses, its spread and the walk
  (:mod:`hil.offline.drift_fit`);
- ``reversal_pinning``: from reset checks, the median pinning probability and its spread across devices
  (:mod:`hil.offline.pinning_fit`);
- ``read_noise`` and ``telegraph_noise``: from the readings (:mod:`hil.offline.readout_fit`);
- ``bias_field``: its sign from the measured polarity (each device's Hall levels after a reset and after a strong
  pulse the other way).

Every value comes with its standard error (or interval) in the file's ``calibration`` section; an effect the
session has no data for keeps the base chip's setting and ``calibration.effects.<name>`` says ``not fitted: <why>``.
The result loads with ``sim_backend.load_chip`` like any chip file: the devices carry explicit values instead of
draws.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hil.offline.drift_fit import PULSES_UNIT, DriftFit, ReferenceSeries, fit_drift, session_pulses
from hil.offline.heating_fit import ChipLaws, HeatedFit, SwitchingData, fit_heated, point_log_ic0, pulse_state
from hil.offline.pinning_fit import PinningFit, ResetCounts, fit_pinning
from hil.offline.readout_fit import ReadoutFit, fit_readout, misread_probability
from hil.outputs import check_yaml_output
from hil.session import Session, SessionError
from instruments.adapters import LINE_FREQUENCY_HZ
from instruments.config_files import DEFAULT_CHIP_FILE
from instruments.station_config import SOURCE_IMPEDANCE_OHM, parse_station
from instruments.trials import DEFAULT_TIMING
from instruments.units import parse_quantity
from protocols.analysis import resets_after_switch, state_readings, switching_counts
from protocols.channel_resistance import RESISTANCE, resistance_readings
from protocols.device_trial import TRIALS
from protocols.fits import FitError, fit_neel_brown, fit_width_exponent
from protocols.reset_check import ResetCheck
from sim_backend.chip import CHIP_FORMAT, ChipSpec
from sim_backend.effects.bias_field import BiasField
from sim_backend.effects.joule_heating import JouleHeating
from sim_backend.effects.parameter_drift import ParameterDrift
from sim_backend.effects.reversal_pinning import ReversalPinning
from sim_backend.effects.telegraph_noise import TelegraphNoise

MIN_STATE_READINGS = 3
RESOLVED = 2.0  # an effect the base chip lacks is switched on only where its fit stands this many s.e. from zero
START_R_TH = 2.1e-7  # K m²/W: where the heating fit starts when the base chip has no heating


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    parts = [p for p in parts if p.size]
    return np.concatenate(parts) if parts else np.zeros(0)


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays as plain Python (for YAML)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _read_session(session_path: str | Path) -> tuple[dict[str, float], Any, list[dict[str, Any]], Any]:
    with Session(session_path) as session:
        devices = {d["id"]: d["width_m"] for d in session.attrs.get("devices") or []}
        station = session.attrs.get("station")
        runs = [{"protocol": run.protocol, "parameters": run.parameters, "tables": run.tables(),
                 "analyses": run.analyses()} for run in session.runs]
        created = session.attrs.get("created_utc")
    return devices, parse_station(station) if station else None, runs, created


def calibrate(session_path: str | Path, base_chip: str | Path | None = None,
              tau0_s: float = 1e-9) -> dict[str, Any]:
    """A chip mapping (``hil-chip/1``) calibrated from the session; see the module docstring."""
    base = yaml.safe_load(Path(base_chip or DEFAULT_CHIP_FILE).read_text())
    base_spec = ChipSpec.from_mapping(base)
    devices, station, runs, created = _read_session(session_path)
    trials = _concat([r["tables"][TRIALS.name] for r in runs if TRIALS.name in r["tables"]])
    if trials.size == 0:
        raise SessionError(f"{session_path}: no trials recorded; calibration needs a bias sweep or a reset check")
    calibration = _Calibration(base_spec, devices, station, runs, tau0_s)
    out_devices, uncertainties = calibration.devices_out(state_readings(trials))
    material = dict(base["material"])
    material["tau0"] = tau0_s
    chip = {
        "format": CHIP_FORMAT,
        "name": f"calibrated from {Path(session_path).name}",
        "seed": int(base.get("seed", 0)),
        "material": material,
        # a calibrated chip's devices are what they are: no further device-to-device draws
        "variation": {},
        "reset": dict(base.get("reset") or {}),
        "devices": out_devices,
    }
    readout = calibration.readout
    if readout is not None:
        material["read_noise"] = readout.read_noise
    effects = calibration.effects_out()
    if effects is not None:
        chip["effects"] = effects
    for key in ("synapses", "dw_tracks"):  # not fitted here (a synapse model file is): as the base chip has them
        if base.get(key) is not None:
            chip[key] = base[key]
    chip["calibration"] = _plain({"session": str(session_path), "session_created_utc": created, "tau0_s": tau0_s,
                                  "standard_errors": uncertainties, **calibration.summary()})
    if readout is not None:
        chip["calibration"]["read_noise_err"] = readout.read_noise_err
    return chip


class _Calibration:
    """The fits of one session against a base chip, in the order they need each other: readout, polarity, pulses and
    drift, then the curves (twice where reset checks give the pinning in between)."""

    def __init__(self, base: ChipSpec, devices: dict[str, float], station: Any, runs: list[dict[str, Any]],
                 tau0_s: float) -> None:
        self.base, self.devices, self.station, self.runs, self.tau0_s = base, devices, station, runs, tau0_s
        self.effects = base.effects
        self.notes: dict[str, Any] = {}
        material = base.material
        self.nominal_ic0 = {d: material["jc0"] * w * material["thickness"] for d, w in devices.items()}
        self.readout = self._readout()
        self.field_sign, self.polarity = self._polarity()
        blocked = bool(station and station.wiring and station.wiring.blocks_dc)
        self.pulses = session_pulses(runs, self.nominal_ic0, blocked,
                                     station.readout.read_current_a if station is not None else 0.0)
        resistance = _concat([r["tables"][RESISTANCE.name] for r in runs if RESISTANCE.name in r["tables"]])
        # the channel-resistance run's readings per device
        self.r_ch = resistance_readings({RESISTANCE.name: resistance}) if resistance.size else {}
        self.measured_r_ch = {d: float(np.mean(v)) for d, v in self.r_ch.items()}
        self.drift: DriftFit | None = None
        self.pinning: PinningFit | None = None
        self.heated, self.isothermal, self.ids, self.width_exponents = self._curves()

    # -- readings -------------------------------------------------------------------------------

    def _readout(self) -> ReadoutFit | None:
        nplc = self.station.readout.nplc if self.station is not None else 0.01
        telegraph = self.effects.telegraph_noise or TelegraphNoise()
        trial_runs = [r for r in self.runs if TRIALS.name in r["tables"]]
        return fit_readout(trial_runs, self.devices, telegraph.reference_width_m, nplc / LINE_FREQUENCY_HZ)

    def _polarity(self) -> tuple[int, dict[str, float]]:
        """The field's sign (+1: a positive pulse switches down→up, as a reset by a negative pulse implies) from the
        measured Hall levels, and each device's measured step ``high − low``."""
        steps: dict[str, float] = {}
        for run in self.runs:
            for row in run["tables"].get("read_levels", ()):
                steps[row["device"].decode()] = float(row["high_ohm"] - row["low_ohm"])
        if not steps:
            return 0, steps
        return (1 if np.median(list(steps.values())) > 0 else -1), steps

    # -- switching curves, wear and drift ------------------------------------------------------------

    def _points(self, ids: list[str]) -> tuple[SwitchingData, list[tuple[int, int, float]]]:
        """The counts the fit takes: per run, unit, device, current and width, the bias-pulse trials whose reset held,
        and per device of a reset check its resets that followed a switch (a reset that reversed the device is a
        trial that switched), each with the pulses the device had received by then and its misread probability; and
        per point ``(run, unit, station hours)``, the hours ``-1`` but for a reference point."""
        index = {d: i for i, d in enumerate(ids)}
        gaps = self._level_gaps()
        keys: dict[tuple[int, int, int, float, float], list[float]] = {}
        reference_hours: dict[tuple[int, int], float] = {}
        for r, (run, before) in enumerate(zip(self.runs, self.pulses, strict=True)):
            trials = run["tables"].get(TRIALS.name)
            if trials is None or not trials.size:
                continue
            reads = int(run["parameters"].get("reads", 1))
            for row in run["tables"].get("reference_points", ()):
                reference_hours[(r, int(row["unit"]))] = float(row["station_time_s"]) / 3600.0
            resets = run["protocol"] == ResetCheck.name
            if resets:
                valid, outcome = resets_after_switch(trials), trials["reset_ok"] == 1
                currents = np.abs(trials["reset_a"])
                widths = np.full(trials.size, _reset_width_s(run["parameters"]))
            else:
                valid = (trials["reset_ok"] == 1) & np.isfinite(trials["reading_ohm"]) & (trials["amplitude_a"] > 0)
                outcome, currents, widths = trials["outcome"] == 1, trials["amplitude_a"], trials["width_s"]
            for j in np.flatnonzero(valid):
                name = trials["device"][j].decode()
                device = index.get(name)
                if device is None:
                    continue
                entry = keys.setdefault((r, int(trials["unit"][j]), device, float(currents[j]), float(widths[j])),
                                        [0.0, 0.0, 0.0, self._misread(name, gaps.get(name), reads)])
                entry[0] += 1
                entry[1] += float(outcome[j])
                entry[2] += before[j] / PULSES_UNIT
        order = sorted(keys)
        values = np.array([keys[k] for k in order]).reshape(-1, 4)
        data = SwitchingData(np.array([k[2] for k in order], dtype=int), np.array([k[3] for k in order]),
                             np.array([k[4] for k in order]), values[:, 1], values[:, 0], values[:, 2] / values[:, 0],
                             values[:, 3])
        meta = [(k[0], k[1], reference_hours.get((k[0], k[1]), -1.0)) for k in order]
        return data, meta

    def _curve_starts(self) -> tuple[dict[str, tuple[float, float]], dict[str, tuple[float, float]]]:
        """Per device, ``(Ic0, Δ)`` of the isothermal Néel–Brown fit of its bias-sweep trials (where to start), and
        with two or more widths the exponent of ``t_p`` with its standard error (the model check)."""
        trials = _concat([r["tables"][TRIALS.name] for r in self.runs if r["tables"].get(TRIALS.name) is not None
                          and r["protocol"] != ResetCheck.name])
        starts, exponents = {}, {}
        for device, c in (switching_counts(trials) if trials.size else {}).items():
            if device not in self.devices:
                continue
            try:
                fit = fit_neel_brown(c.current_a, c.n_switched, c.n_trials, c.width_s, self.tau0_s)
            except FitError as exc:
                self.notes.setdefault("fit_errors", {})[device] = str(exc)
                continue
            starts[device] = (fit.ic0_a, fit.delta)
            if np.unique(c.width_s).size > 1:
                try:
                    exponents[device] = fit_width_exponent(c.current_a, c.n_switched, c.n_trials, c.width_s)
                except FitError:
                    pass
        return starts, exponents

    def _curves(self) -> tuple[HeatedFit | None, HeatedFit | None, list[str], dict[str, tuple[float, float]]]:
        starts, exponents = self._curve_starts()
        ids = [d for d in self.devices if d in starts]
        self.widths: list[float] = []
        checked = any(r["protocol"] == ResetCheck.name for r in self.runs)
        if not ids:
            self.notes.setdefault("drift", "not fitted: no bias sweep with a curve to fit")
            self.pinning = self._pinning(None, ids, None)
            return None, None, ids, exponents
        data, meta = self._points(ids)
        sweeps = np.array([self.runs[run]["protocol"] != ResetCheck.name for run, _, _ in meta])
        self.widths = sorted({float(w) for w in data.width_s[sweeps]})
        tracked = any(hours >= 0 for _, _, hours in meta)
        heating, pinning = self.effects.joule_heating, self.effects.reversal_pinning
        if checked and pinning is None:
            pinning = ReversalPinning()
        multi = len(self.widths) >= 2
        n = len(ids)
        start = HeatedFit(np.array([starts[d][0] for d in ids]), np.zeros(n), np.array([starts[d][1] for d in ids]),
                          np.zeros(n), np.zeros(n), np.zeros(n),
                          np.full(n, pinning.probability if pinning is not None else 0.0), np.zeros(n),
                          heating.specific_resistance if heating is not None else (START_R_TH if multi else None),
                          None, heating.time_s if heating is not None else JouleHeating().time_s)
        laws = self._chip_laws(ids, pinning)
        fit = fit_heated(data, laws, start, multi, tracked, checked, False)
        isothermal = fit_heated(data, laws, dataclasses.replace(fit, r_th=None), False, tracked, checked, False)
        resolved = fit.r_th is not None and multi and fit.r_th_err is not None and fit.r_th > RESOLVED * fit.r_th_err
        final = fit_heated(data, laws, fit, multi, tracked, checked, resolved)
        if multi and not resolved:
            final.time_note = "not fitted: no heating resolved"
        written = final if self._heats(final) else isothermal
        self.pinning = self._pinning(written, ids, pinning) if checked else None
        if not checked:
            self.notes["reversal_pinning"] = "not fitted: the session has no reset check"
        if tracked:
            self.drift = self._drift(data, meta, laws, written, ids)
        else:
            self.notes["drift"] = "not fitted: the session has no bias sweep with reference points (reference:)"
        return final, isothermal, ids, exponents

    def _drift(self, data: SwitchingData, meta: list[tuple[int, int, float]], laws: ChipLaws, fit: HeatedFit,
               ids: list[str]) -> DriftFit | None:
        """The wear's mean and spread and the walk from the reference points, each seen through its device's curve."""
        log_ic0, variance = point_log_ic0(data, laws, fit)
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for j, (run, _, hours) in enumerate(meta):
            if hours >= 0 and np.isfinite(log_ic0[j]) and np.isfinite(variance[j]):
                groups[(run, int(data.device[j]))].append(j)
        series = [ReferenceSeries(ids[device], data.pulses[js], np.array([meta[j][2] for j in js]), log_ic0[js],
                                  variance[js]) for (_, device), js in sorted(groups.items()) if len(js) >= 3]
        try:
            return fit_drift(series)
        except (ValueError, np.linalg.LinAlgError) as exc:
            self.notes["drift"] = f"not fitted: {exc}"
            return None

    def _chip_laws(self, ids: list[str], pinning: ReversalPinning | None) -> ChipLaws:
        material = self.base.material
        nominal = [material["resistivity"] * material["channel_length"] / (self.devices[d] * material["thickness"])
                   for d in ids]
        r_out = self.station.source_impedance_ohm if self.station is not None else SOURCE_IMPEDANCE_OHM
        return ChipLaws(np.array([self.devices[d] for d in ids]),
                        np.array([self.measured_r_ch.get(d, r) for d, r in zip(ids, nominal, strict=True)]),
                        material["channel_length"], r_out, self.effects.temperature,
                        self.tau0_s, material["exponent_n"], pinning)

    # -- pinning ---------------------------------------------------------------------------------

    def _pinning(self, curves: HeatedFit | None, ids: list[str], pinning: ReversalPinning | None
                 ) -> PinningFit | None:
        """The pinning's median and spread over the devices' reset checks, each device's resets seen through its
        fitted curve (the overdrive of its heated reset, after the pulses it had received)."""
        checks = [(r, before) for r, before in zip(self.runs, self.pulses, strict=True)
                  if r["protocol"] == ResetCheck.name and before is not None]
        if not checks:
            self.notes["reversal_pinning"] = "not fitted: the session has no reset check"
            return None
        base = pinning or self.effects.reversal_pinning or ReversalPinning()
        tried: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0])
        reset_of: dict[str, tuple[float, float, int]] = {}
        for run, before in checks:
            trials = run["tables"][TRIALS.name]
            reads = int(run["parameters"].get("reads", 1))
            width = _reset_width_s(run["parameters"])
            after_switch = resets_after_switch(trials)
            for device in np.unique(trials["device"]):
                mine = trials["device"] == device
                rows, switched_before = trials[mine], after_switch[mine]
                entry = tried[device.decode()]
                entry[0] += int(switched_before.sum())
                entry[1] += int(((rows["reset_ok"] == 0) & switched_before).sum())
                entry[2] = float(before[mine].mean()) / PULSES_UNIT
                reset_of[device.decode()] = (float(rows["reset_a"][0]), width, reads)
        if sum(k for _, k, _ in tried.values()) == 0:
            n = sum(v for v, _, _ in tried.values())
            self.notes["reversal_pinning"] = (f"not fitted: no reset failed in {n} resets that followed a switch "
                                              f"(a failure rate below {3.0 / max(n, 1):.2g}, 95 %)")
            return None
        gaps = self._level_gaps()
        index = {d: i for i, d in enumerate(ids)}
        counts = []
        for device, (n, k, pulses) in sorted(tried.items()):
            reset_a, width_s, reads = reset_of[device]
            eta, overdrive = self._reset_state(curves, index, device, reset_a, width_s, pulses)
            g = 1.0 / (1.0 + math.exp((overdrive - 1.0) / base.overdrive_scale))
            counts.append(ResetCounts(device, int(n), int(k), g, float(math.exp(-math.exp(eta))),
                                      self._misread(device, gaps.get(device), reads)))
        try:
            return fit_pinning(counts, base.spread, fit_spread=True)
        except ValueError as exc:
            self.notes["reversal_pinning"] = f"not fitted: {exc}"
            return None

    def _reset_state(self, curves: HeatedFit | None, index: dict[str, int], device: str, reset_a: float,
                     width_s: float, pulses: float) -> tuple[float, float]:
        """``(η, overdrive)`` of a device's reset pulse after ``pulses`` 10⁶ pulses (the fitted device, or one at its
        nominal Ic0 and Δ)."""
        if curves is not None and device in index:
            eta, overdrive = pulse_state(self._chip_laws(list(index), None), curves, np.array([index[device]]),
                                         np.array([abs(reset_a)]), np.array([width_s]), np.array([pulses]))
            return float(eta[0]), float(overdrive[0])
        one = np.zeros(1)
        nominal = HeatedFit(np.array([self.nominal_ic0[device]]), one, np.array([self.base.material["delta"]]), one,
                            one, one, one, one, curves.r_th if curves is not None else None, None,
                            curves.time_s if curves is not None else JouleHeating().time_s)
        eta, overdrive = pulse_state(self._chip_laws([device], None), nominal, np.array([0]),
                                     np.array([abs(reset_a)]), np.array([width_s]))
        return float(eta[0]), float(overdrive[0])

    def _level_gaps(self) -> dict[str, float]:
        """Per device, half its measured Hall step: how far a reading must stray to be misread."""
        return {d: abs(step) / 2 for d, step in self.polarity.items()}

    def _misread(self, device: str, half_gap: float | None, reads: int) -> float:
        if self.readout is None or half_gap is None:
            return 0.0
        telegraph = self.readout.telegraph
        half = 0.0
        if telegraph is not None:
            half = telegraph["amplitude_ohm"] / 2 * telegraph["reference_width_m"] / self.devices[device]
        return misread_probability(half_gap, self.readout.read_noise, reads, half)

    # -- output ---------------------------------------------------------------------------------

    def devices_out(self, readings: dict[str, tuple[np.ndarray, np.ndarray]]
                    ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        out_devices: list[dict[str, Any]] = []
        uncertainties: dict[str, dict[str, Any]] = {}
        fitted = {d: i for i, d in enumerate(self.ids)}
        curves = self._written_curves()
        for device_id, width_m in self.devices.items():
            entry: dict[str, Any] = {"id": device_id, "width": float(width_m)}
            err: dict[str, Any] = {}
            if curves is not None and device_id in fitted:
                i = fitted[device_id]
                entry["ic0"], entry["delta"] = float(curves.ic0_a[i]), float(curves.delta[i])
                err["ic0"], err["delta"] = float(curves.ic0_err_a[i]), float(curves.delta_err[i])
            if device_id in self.width_exponents:
                err["width_exponent"], err["width_exponent_err"] = self.width_exponents[device_id]
            if device_id in self.notes.get("fit_errors", {}):
                err["fit_error"] = self.notes["fit_errors"][device_id]
            down, up = readings.get(device_id, (np.zeros(0), np.zeros(0)))
            if down.size >= MIN_STATE_READINGS and up.size >= MIN_STATE_READINGS:
                entry["r0"] = float((up.mean() + down.mean()) / 2)
                entry["delta_r_ahe"] = float(up.mean() - down.mean())
                sem = float(np.hypot(up.std(ddof=1) / np.sqrt(up.size), down.std(ddof=1) / np.sqrt(down.size)))
                err["r0"], err["delta_r_ahe"] = sem / 2, sem
            if device_id in self.r_ch:
                values = self.r_ch[device_id]
                entry["r_ch"] = self.measured_r_ch[device_id]
                err["r_ch"] = float(np.std(values, ddof=1) / np.sqrt(values.size)) if values.size > 1 else 0.0
            out_devices.append(entry)
            uncertainties[device_id] = err
        return out_devices, uncertainties

    def _heats(self, fit: HeatedFit | None) -> bool:
        """Whether the calibrated chip heats: the base chip's does, or ``fit`` resolves heating."""
        if self.effects.joule_heating is not None:
            return True
        return bool(fit is not None and fit.r_th is not None and fit.r_th_err is not None
                    and fit.r_th > RESOLVED * fit.r_th_err)

    def _heating_written(self) -> bool:
        return self._heats(self.heated)

    def _written_curves(self) -> HeatedFit | None:
        """The fit whose Ic0 and Δ the chip file gets: the heated one where the chip heats, else the isothermal."""
        return self.heated if self._heating_written() else self.isothermal

    def effects_out(self) -> dict[str, Any] | None:
        """The ``effects:`` section of the calibrated chip (``None``: ideal devices, as the base chip's)."""
        effects = self.effects
        h = self.heated
        if self._heating_written() and h is not None and h.r_th is not None and h.r_th_err is not None:
            effects = dataclasses.replace(effects, joule_heating=JouleHeating(h.r_th, h.time_s))
        d = self.drift
        if d is not None:
            median, spread = d.lognormal_wear()
            resolved = (d.wear_mean > RESOLVED * d.wear_mean_err) or d.walk_interval[0] > 0
            if effects.drift is not None or resolved:
                base = effects.drift or ParameterDrift()
                effects = dataclasses.replace(effects, drift=dataclasses.replace(
                    base, ic0_walk=d.walk, delta_walk=0.0, wear=median, wear_spread=spread))
        p = self.pinning
        if p is not None:
            base_pin = effects.reversal_pinning or ReversalPinning()
            if effects.reversal_pinning is not None or p.probability_interval[0] > 0:
                effects = dataclasses.replace(effects, reversal_pinning=dataclasses.replace(
                    base_pin, probability=min(p.probability, 1.0), spread=p.spread))
        r = self.readout
        if r is not None and r.telegraph is not None:
            t = r.telegraph
            effects = dataclasses.replace(effects, telegraph_noise=TelegraphNoise(
                t["amplitude_ohm"], t["dwell_s"], t["reference_width_m"]))
        elif r is not None and r.telegraph_note.startswith("not resolved"):
            effects = dataclasses.replace(effects, telegraph_noise=None)
        if self.field_sign < 0 or (self.field_sign > 0 and effects.bias_field is not None):
            f = effects.bias_field or BiasField()
            magnitude = abs(f.field_t)
            # the fitted Ic0 hold at the station's field: the reference is that field (the factor is 1)
            effects = dataclasses.replace(effects, bias_field=BiasField(self.field_sign * magnitude, f.anisotropy_t,
                                                                        self.field_sign * magnitude))
        mapping = effects.as_mapping()
        return None if mapping is None else _plain(mapping)

    def summary(self) -> dict[str, Any]:
        """The ``calibration`` section's account of the effects: what was fitted from what, with errors."""
        return {"effects": {"joule_heating": self._heating_summary(), "drift": self._drift_summary(),
                            "reversal_pinning": self._pinning_summary(), "readout": self._readout_summary(),
                            "bias_field": self._field_summary()}}

    def _heating_summary(self) -> Any:
        h, iso = self.heated, self.isothermal
        if h is None or iso is None:
            return "not fitted: no bias sweep with a curve to fit"
        widths = self.widths
        if len(widths) < 2:
            held = self.effects.joule_heating
            return ("not fitted: the bias sweeps have one pulse width "
                    f"({widths[0] * 1e6:g} µs); heating needs two or more" +
                    (" (Ic0 and Δ fitted with the base chip's heating)" if held is not None else ""))
        out: dict[str, Any] = {"fitted_from": f"bias sweeps at {len(widths)} pulse widths",
                               "widths_s": widths, "specific_resistance": h.r_th,
                               "specific_resistance_err": h.r_th_err, "time": h.time_s, "time_note": h.time_note,
                               "log_likelihood": h.log_likelihood,
                               "isothermal_log_likelihood": iso.log_likelihood,
                               "n_points": h.n_points}
        if h.r_th_interval is not None:
            out["specific_resistance_interval"] = list(h.r_th_interval)
        if h.time_interval_s is not None:
            out["time_interval"] = list(h.time_interval_s)
        if not self._heating_written():
            out["written"] = (f"off: {h.r_th:.3g} ± {h.r_th_err:.2g} K m²/W is within {RESOLVED:g} standard "
                              "errors of none, and the base chip has no heating (Ic0 and Δ from the isothermal fit)")
        out["notes"] = h.notes
        return out

    def _drift_summary(self) -> Any:
        d, h = self.drift, self._written_curves()
        if d is None:
            return self.notes.get("drift", "not fitted")
        median, spread = d.lognormal_wear()
        return {"fitted_from": f"reference points of {d.n_devices} devices ({d.n_points} points)",
                "wear_mean": d.wear_mean, "wear_mean_err": d.wear_mean_err,
                "wear_sd": d.wear_sd, "wear_sd_interval": list(d.wear_sd_interval),
                "wear": median, "wear_spread": spread,
                "ic0_walk": d.walk, "ic0_walk_interval": list(d.walk_interval),
                "device_wear": {device: {"wear": float(h.wear[i]), "wear_err": float(h.wear_err[i])}
                                for i, device in enumerate(self.ids)} if h is not None else {},
                "delta_walk": "not fitted: Δ's walk moves I50 as Ic0's does; the fitted walk is written as Ic0's",
                "ambient": "not fitted: the room's drift is common to the devices, measured one after another, and "
                           "shows as part of the walk; as the base chip has it",
                "separable": "wear (pulses) from a steady drift in time: no, while a device is measured its pulses "
                             "grow with the time; the walk from the wear's spread: by the scatter of each device's "
                             "points about its line against the devices' different slopes"}

    def _pinning_summary(self) -> Any:
        p = self.pinning
        if p is None:
            return self.notes.get("reversal_pinning", "not fitted")
        devices = {}
        for c in p.counts:
            estimate, low, high = c.probability_interval()
            devices[c.device] = {"resets": c.n_tried, "failed": c.n_failed, "overdrive_factor": c.overdrive_factor,
                                 "misread": c.misread, "probability": estimate,
                                 "probability_interval": [low, high]}
        return {"fitted_from": f"reset checks of {len(p.counts)} devices", "probability": p.probability,
                "probability_interval": list(p.probability_interval), "spread": p.spread,
                "spread_interval": list(p.spread_interval) if p.spread_interval is not None
                else "not fitted: fewer than three devices; as the base chip has it",
                "overdrive_scale": "not fitted: one reset amplitude cannot show it; as the base chip has it",
                "devices": devices}

    def _readout_summary(self) -> Any:
        r = self.readout
        if r is None:
            return "not fitted: no readings"
        return {"read_noise": r.read_noise, "read_noise_err": r.read_noise_err, "from": r.source,
                "telegraph_noise": r.telegraph if r.telegraph is not None else r.telegraph_note,
                "telegraph_note": r.telegraph_note}

    def _field_summary(self) -> Any:
        if not self.polarity:
            return "not fitted: no measured Hall levels (thresholds: measured)"
        return {"sign": self.field_sign, "from": "each device's Hall levels: after a reset (negative pulse) low, "
                "after a strong positive pulse high", "hall_steps_ohm": self.polarity,
                "magnitude": "not fitted: the fitted Ic0 hold at the station's field; its magnitude is the base "
                             "chip's"}


def _reset_width_s(parameters: Mapping[str, Any]) -> float:
    """A recorded run's reset width (s): its ``reset.width``, or the trials' default where it gave none."""
    width = (parameters.get("reset") or {}).get("width")
    return DEFAULT_TIMING.reset_width_s if width is None else parse_quantity(width, "s", "reset.width")


def check_chip_output(out: str | Path, force: bool = False) -> Path:
    """Refuse a chip-file name that is not YAML, or an existing file without ``force``."""
    return check_yaml_output(out, force, "a chip file", SessionError, "--out")


def write_chip(chip: dict[str, Any], out: str | Path, force: bool = False) -> Path:
    """Write a calibrated chip file (YAML); an existing file is replaced only with ``force``."""
    out = check_chip_output(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# Chip calibrated by `hil calibrate` from {chip['calibration']['session']}.\n"
              "# Device values and effects are fitted (standard errors, intervals and what was not fitted under\n"
              "# calibration); SI units.\n")
    out.write_text(header + yaml.safe_dump(chip, sort_keys=False, allow_unicode=True))
    return out
