"""``hil calibrate``: fit every device's simulator parameters from a recorded session into a chip file.

Per device, from the recorded trials and steps:

- ``ic0``, ``delta``: joint binomial ML fit of the Néel–Brown form over every bias-sweep trial (all
  pulse widths at once; with several widths the exponent of ``t_p`` is fitted too, as a model check);
- ``r0``, ``delta_r_ahe``: the mean readings of the two states (after reset: down; switched: up);
- ``r_ch``: the channel-resistance run;
- ``read_noise`` (chip-wide): the pooled spread of the readings within a state.

Every value comes with its standard error in the file's ``calibration`` section. The result loads
with ``sim_backend.load_chip`` like any chip file: the devices carry explicit values instead of draws.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hil.outputs import check_yaml_output
from hil.session import Session, SessionError
from instruments.config_files import DEFAULT_CHIP_FILE
from protocols.analysis import state_readings, switching_counts
from protocols.channel_resistance import RESISTANCE, resistance_readings
from protocols.device_trial import TRIALS
from protocols.fits import FitError, fit_neel_brown, fit_width_exponent
from sim_backend.chip import CHIP_FORMAT

MIN_STATE_READINGS = 3


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    parts = [p for p in parts if p.size]
    return np.concatenate(parts) if parts else np.zeros(0)


def calibrate(session_path: str | Path, base_chip: str | Path | None = None,
              tau0_s: float = 1e-9) -> dict[str, Any]:
    """A chip mapping (``hil-chip/1``) calibrated from the session; see the module docstring."""
    base = yaml.safe_load(Path(base_chip or DEFAULT_CHIP_FILE).read_text())
    with Session(session_path) as session:
        devices = {d["id"]: d["width_m"] for d in session.attrs.get("devices") or []}
        tables = [run.tables() for run in session.runs]
        created = session.attrs.get("created_utc")
    trials = _concat([t[TRIALS.name] for t in tables if TRIALS.name in t])
    resistance = _concat([t[RESISTANCE.name] for t in tables if RESISTANCE.name in t])
    if trials.size == 0:
        raise SessionError(f"{session_path}: no trials recorded; calibration needs a bias sweep or a reset check")
    counts, readings = switching_counts(trials), state_readings(trials)
    r_ch = resistance_readings({RESISTANCE.name: resistance}) if resistance.size else {}
    out_devices: list[dict[str, Any]] = []
    uncertainties: dict[str, dict[str, float]] = {}
    residuals: list[np.ndarray] = []
    for device_id, width_m in devices.items():
        entry: dict[str, Any] = {"id": device_id, "width": float(width_m)}
        err: dict[str, float] = {}
        if device_id in counts:
            c = counts[device_id]
            try:
                fit = fit_neel_brown(c.current_a, c.n_switched, c.n_trials, c.width_s, tau0_s)
                entry["ic0"], entry["delta"] = float(fit.ic0_a), float(fit.delta)
                err["ic0"], err["delta"] = fit.ic0_err_a, fit.delta_err
                if np.unique(c.width_s).size > 1:
                    exponent, exponent_err = fit_width_exponent(c.current_a, c.n_switched, c.n_trials, c.width_s)
                    err["width_exponent"], err["width_exponent_err"] = exponent, exponent_err
            except FitError as exc:
                err["fit_error"] = str(exc)  # type: ignore[assignment]
        down, up = readings.get(device_id, (np.zeros(0), np.zeros(0)))
        if down.size >= MIN_STATE_READINGS and up.size >= MIN_STATE_READINGS:
            entry["r0"] = float((up.mean() + down.mean()) / 2)
            entry["delta_r_ahe"] = float(up.mean() - down.mean())
            sem = float(np.hypot(up.std(ddof=1) / np.sqrt(up.size), down.std(ddof=1) / np.sqrt(down.size)))
            err["r0"], err["delta_r_ahe"] = sem / 2, sem
            residuals += [up - up.mean(), down - down.mean()]
        if device_id in r_ch:
            values = r_ch[device_id]
            entry["r_ch"] = float(np.mean(values))
            err["r_ch"] = float(np.std(values, ddof=1) / np.sqrt(values.size)) if values.size > 1 else 0.0
        out_devices.append(entry)
        uncertainties[device_id] = err
    chip = {
        "format": CHIP_FORMAT,
        "name": f"calibrated from {Path(session_path).name}",
        "seed": int(base.get("seed", 0)),
        "material": dict(base["material"]),
        # a calibrated chip's devices are what they are: no further device-to-device draws
        "variation": {},
        "reset": dict(base.get("reset") or {}),
        "devices": out_devices,
        "calibration": {"session": str(session_path), "session_created_utc": created, "tau0_s": tau0_s,
                        "standard_errors": uncertainties},
    }
    for key in ("synapses", "dw_tracks"):  # not fitted here (a synapse model file is): as the base chip has them
        if base.get(key) is not None:
            chip[key] = base[key]
    chip["material"]["tau0"] = tau0_s
    if residuals:
        pooled = np.concatenate(residuals)
        chip["material"]["read_noise"] = float(pooled.std(ddof=len(residuals)))
        chip["calibration"]["read_noise_err"] = float(pooled.std() / np.sqrt(2 * pooled.size))
    return chip


def check_chip_output(out: str | Path, force: bool = False) -> Path:
    """Refuse a chip-file name that is not YAML, or an existing file without ``force``."""
    return check_yaml_output(out, force, "a chip file", SessionError, "--out")


def write_chip(chip: dict[str, Any], out: str | Path, force: bool = False) -> Path:
    """Write a calibrated chip file (YAML); an existing file is replaced only with ``force``."""
    out = check_chip_output(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# Chip calibrated by `hil calibrate` from {chip['calibration']['session']}.\n"
              "# Device values are fitted (standard errors under calibration.standard_errors); SI units.\n")
    out.write_text(header + yaml.safe_dump(chip, sort_keys=False))
    return out
