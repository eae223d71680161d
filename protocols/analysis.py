"""From recorded trials and steps to curves, fits, per-size summaries and loop widths.

Inputs are the record tables the protocols produce (``trials`` of :mod:`protocols.device_trial`, ``steps``
of :mod:`protocols.hysteresis_loop`); outputs are plain structured arrays and dicts that the session stores
under ``analysis/``. The accessors at the end (:func:`curves_by_device`, :func:`switching_counts`,
:func:`state_readings`, :func:`loops_of`, ...) are how tools outside the protocols read these tables and
results: no other module names their fields.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, NamedTuple

import numpy as np
from scipy import stats

from protocols.fits import (
    FitError,
    LogisticFit,
    fit_logistic,
    fit_logit_trend,
    fit_neel_brown,
    wilson_interval,
)

CURVE_DTYPE = np.dtype([("device", "S32"), ("amplitude_a", "f8"), ("width_s", "f8"), ("n_trials", "i8"),
                        ("n_switched", "i8"), ("p", "f8"), ("ci_low", "f8"), ("ci_high", "f8")])
LOOP_DTYPE = np.dtype([("device", "S32"), ("loop_width_a", "f8"), ("i_up_a", "f8"), ("i_down_a", "f8"),
                       ("r_low_ohm", "f8"), ("r_high_ohm", "f8")])


def text(value: bytes | str) -> str:
    """A device id as stored (bytes) or given (str), as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def switching_curves(trials: np.ndarray, confidence: float = 0.95) -> np.ndarray:
    """Per device and bias current: counts, switching fraction and Wilson interval.

    Trials whose reset failed are left out (the device did not start from the reset state).
    """
    valid = trials[trials["reset_ok"] == 1] if trials.size else trials
    groups: dict[tuple[bytes, float, float], list[int]] = defaultdict(lambda: [0, 0])
    for device, amplitude, width, outcome in zip(valid["device"], valid["amplitude_a"], valid["width_s"],
                                                  valid["outcome"], strict=True):
        entry = groups[(device, float(amplitude), float(width))]
        entry[0] += 1
        entry[1] += int(outcome)
    rows = np.zeros(len(groups), dtype=CURVE_DTYPE)
    for i, ((device, amplitude, width), (n, k)) in enumerate(sorted(groups.items())):
        rows[i] = (device, amplitude, width, n, k, k / n, 0.0, 0.0)
    rows["ci_low"], rows["ci_high"] = wilson_interval(rows["n_switched"], rows["n_trials"], confidence)
    return rows


def fit_curves(curves: np.ndarray, tau0_s: float = 1e-9) -> dict[str, dict[str, Any]]:
    """Logistic and Néel–Brown binomial ML fits per device (one pulse width per device)."""
    fits: dict[str, dict[str, Any]] = {}
    for device in np.unique(curves["device"]):
        rows = curves[curves["device"] == device]
        entry: dict[str, Any] = {"n_points": int(rows.size), "n_trials": int(rows["n_trials"].sum())}
        args = (rows["amplitude_a"], rows["n_switched"], rows["n_trials"])
        try:
            entry["logistic"] = fit_logistic(*args).as_dict()
        except FitError as exc:
            entry["logistic_error"] = str(exc)
        try:
            entry["neel_brown"] = fit_neel_brown(*args, width_s=float(rows["width_s"][0]), tau0_s=tau0_s).as_dict()
        except FitError as exc:
            entry["neel_brown_error"] = str(exc)
        fits[text(device)] = entry
    return fits


def reset_summary(trials: np.ndarray) -> dict[str, dict[str, float]]:
    """Per device: resets read back and the fraction that left the device in the reset state."""
    out = {}
    for device in np.unique(trials["device"]):
        ok = trials["reset_ok"][trials["device"] == device]
        out[text(device)] = {"n_resets": int(ok.size), "reset_success_rate": float(ok.mean()) if ok.size else 0.0}
    return out


def resets_after_switch(trials: np.ndarray) -> np.ndarray:
    """Per row of a reset check's trials: whether its reset followed a switch (the device's previous trial switched
    it, or it is the device's first, after the levels' last pulse switched it): the resets that can fail."""
    mask = np.zeros(trials.size, dtype=bool)
    for device in np.unique(trials["device"]):
        mine = np.flatnonzero(trials["device"] == device)
        mask[mine] = np.r_[True, trials["outcome"][mine][:-1] == 1]
    return mask


def drift_tracking(reference: np.ndarray, fits: dict[str, dict[str, Any]],
                   confidence: float = 0.95) -> dict[str, dict[str, Any]]:
    """Per device, how far its curve moved during the run, from its reference points (``reference_points`` rows).

    The logit of the reference fraction is fitted as a line in station time (binomial ML, :func:`fit_logit_trend`);
    with the device's logistic width ``w`` (its fit) a slope ``b`` per hour is an I50 drift of ``−b·w`` A per hour
    (``i50_drift_a_per_hour``, with its ``confidence`` interval from the slope's standard error). A device whose
    reference points all came out alike (P = 0 or 1 throughout) has no drift estimate, only its points.
    """
    out: dict[str, dict[str, Any]] = {}
    zq = float(stats.norm.ppf(0.5 + confidence / 2.0))
    for device in np.unique(reference["device"]):
        rows = np.sort(reference[reference["device"] == device], order="station_time_s")
        hours = rows["station_time_s"] / 3600.0
        entry: dict[str, Any] = {"n_points": int(rows.size), "station_time_h": hours.tolist(),
                                 "p": (rows["n_switched"] / np.maximum(rows["n_trials"], 1)).tolist(),
                                 "amplitude_a": float(rows["amplitude_a"][0])}
        logistic = fits.get(text(device), {}).get("logistic")
        try:
            trend = fit_logit_trend(hours, rows["n_switched"], rows["n_trials"])
            if logistic is None:
                raise FitError("the device's curve has no logistic fit to turn the trend into current")
        except FitError as exc:
            entry["error"] = str(exc)
        else:
            w = float(logistic["w_a"])
            drift, half = -trend.slope * w, zq * trend.slope_err * abs(w)
            entry.update({"i50_drift_a_per_hour": drift, "ci_low": drift - half, "ci_high": drift + half,
                          "relative_per_hour": drift / float(logistic["i50_a"])})
        out[text(device)] = entry
    return out


def loop_switching(current_a: np.ndarray, reading_ohm: np.ndarray) -> tuple[float, float, float, float] | None:
    """``(i_up, i_down, r_low, r_high)`` of one loop (steps in order), or ``None`` if it did not switch.

    The readings split at the midpoint between the loop's low and high levels, each taken as the majority of itself
    and its neighbours (a single misread — read or telegraph noise — does not move a switching point); ``i_up``
    is the first current of the rising branch that reads high, ``i_down`` the first of the falling branch that
    reads low.
    """
    finite = readable(reading_ohm)
    if finite.sum() < 4:
        return None
    low, high = np.percentile(reading_ohm[finite], [10, 90])
    if high - low <= 0:
        return None
    is_high = _majority_of_three(reading_ohm > 0.5 * (low + high))
    turn = int(np.argmax(current_a))
    rising, falling = slice(0, turn + 1), slice(turn, None)
    up_hits = np.flatnonzero(is_high[rising] & finite[rising])
    down_hits = np.flatnonzero(~is_high[falling] & finite[falling])
    if up_hits.size == 0 or down_hits.size == 0:
        return None
    return float(current_a[rising][up_hits[0]]), float(current_a[falling][down_hits[0]]), float(low), float(high)


def _majority_of_three(flags: np.ndarray) -> np.ndarray:
    """Each flag replaced by the majority of itself and its two neighbours (the ends keep theirs)."""
    out = flags.copy()
    if flags.size >= 3:
        out[1:-1] = flags[:-2].astype(int) + flags[1:-1] + flags[2:] >= 2
    return out


def readable(reading_ohm: np.ndarray) -> np.ndarray:
    """Which readings are values: not NaN/inf, nor an instrument's overflow (≥ 1e30 Ω, e.g. R = V/I at I = 0)."""
    reading_ohm = np.asarray(reading_ohm, dtype=np.float64)
    return np.isfinite(reading_ohm) & (np.abs(reading_ohm) < 1e30)


def loops_of(steps: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Every loop of a ``steps`` table, in unit order: ``(device, current_a, reading_ohm)`` in step order."""
    out = []
    for unit in np.unique(steps["unit"]):
        rows = np.sort(steps[steps["unit"] == unit], order="step")
        out.append((text(rows["device"][0]), rows["current_a"], rows["reading_ohm"]))
    return out


def loop_widths_per_loop(steps: np.ndarray) -> dict[str, list[float]]:
    """Half-width of every loop (A), per device, in unit order (NaN for a loop that did not switch)."""
    out: dict[str, list[float]] = defaultdict(list)
    for device, currents, readings in loops_of(steps):
        switching = loop_switching(currents, readings)
        out[device].append(np.nan if switching is None else (switching[0] - switching[1]) / 2)
    return dict(out)


def loop_widths(steps: np.ndarray) -> np.ndarray:
    """Half-width ``(i_up − i_down)/2`` of each device's current hysteresis loop (A), averaged over its
    loops, with the switching currents and the two reading levels (see :func:`loop_switching`)."""
    results: dict[str, list[tuple[float, float, float, float]]] = defaultdict(list)
    for device, currents, readings in loops_of(steps):
        switching = loop_switching(currents, readings)
        if switching is not None:
            results[device].append(switching)
    out = np.zeros(len(results), dtype=LOOP_DTYPE)
    for i, (device, values) in enumerate(sorted(results.items())):
        i_up, i_down, low, high = np.mean(np.array(values), axis=0)
        out[i] = (device, (i_up - i_down) / 2, i_up, i_down, low, high)
    return out


def loop_width_intervals(steps: np.ndarray, confidence: float = 0.95) -> dict[str, dict[str, float]]:
    """Per device: its loop half-width (A, mean over its loops) and an interval for it.

    The interval is the ``confidence`` Student-t interval of the mean over the device's repeated loops (none
    for a single loop), widened below by one current step: a loop reads a switch at the first step after
    it happened, so each switching current lies within the step before the one recorded.
    """
    out = {}
    for device, widths in loop_widths_per_loop(steps).items():
        values = np.array([w for w in widths if np.isfinite(w)])
        if values.size == 0:
            continue
        mean = float(values.mean())
        half = (float(stats.t.ppf(0.5 + confidence / 2.0, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size))
                if values.size > 1 else 0.0)
        step = step_current(steps, device)
        out[device] = {"loop_width_a": mean, "low_a": mean - half - step, "high_a": mean + half,
                       "n_loops": int(values.size), "step_a": step}
    return out


def width_statistics(values: dict[str, float], widths_m: dict[str, float], key: str) -> list[dict[str, Any]]:
    """Per device width: mean and spread (sample std) over its devices of one value per device."""
    groups: dict[float, list[float]] = defaultdict(list)
    for device, value in values.items():
        if device in widths_m:
            groups[round(widths_m[device], 12)].append(value)
    return [{"width_m": width, f"{key}_mean": float(np.mean(items)),
             f"{key}_std": float(np.std(items, ddof=1)) if len(items) > 1 else 0.0, "n_devices": len(items)}
            for width, items in sorted(groups.items())]


def size_summary(fits: dict[str, dict[str, Any]], widths_m: dict[str, float],
                 loops: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Per device width: mean and spread (sample std) of I50, w_I and loop width across devices."""
    by_width: dict[float, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for device, entry in fits.items():
        if "logistic" in entry and device in widths_m:
            group = by_width[round(widths_m[device], 12)]
            group["i50_a"].append(entry["logistic"]["i50_a"])
            group["w_a"].append(entry["logistic"]["w_a"])
    if loops is not None:
        for row in loops:
            device = text(row["device"])
            if device in widths_m:
                by_width[round(widths_m[device], 12)]["loop_width_a"].append(float(row["loop_width_a"]))
    summary = []
    for width, values in sorted(by_width.items()):
        entry: dict[str, Any] = {"width_m": width}
        for key, items in values.items():
            arr = np.array(items)
            entry[f"{key}_mean"] = float(arr.mean())
            entry[f"{key}_std"] = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
            entry[f"{key}_cv"] = entry[f"{key}_std"] / abs(entry[f"{key}_mean"]) if entry[f"{key}_mean"] else 0.0
            entry["n_devices"] = max(entry.get("n_devices", 0), int(arr.size))
        summary.append(entry)
    return summary


class SwitchingCounts(NamedTuple):
    """One device's switching counts: per bias point its current (A), pulse width (s), switched and trials."""

    current_a: np.ndarray
    width_s: np.ndarray
    n_switched: np.ndarray
    n_trials: np.ndarray

    @property
    def p(self) -> np.ndarray:
        return self.n_switched / np.maximum(self.n_trials, 1)


def curves_by_device(curves: np.ndarray) -> dict[str, SwitchingCounts]:
    """Per device, the counts of a ``curves`` result (the analysis of a bias sweep or reset check)."""
    out = {}
    for device in np.unique(curves["device"]):
        rows = curves[curves["device"] == device]
        out[text(device)] = SwitchingCounts(rows["amplitude_a"], rows["width_s"], rows["n_switched"].astype(float),
                                            rows["n_trials"].astype(float))
    return out


def fitted_logistic(fits: dict[str, Any], device: str) -> LogisticFit | None:
    """A device's logistic fit from a ``fits`` result (``None`` when it has none)."""
    entry = (fits or {}).get(device, {}).get("logistic")
    return LogisticFit(**entry) if entry else None


def loop_width_by_device(loops: np.ndarray) -> dict[str, float]:
    """Device id → loop half-width in A, from a ``loops`` result."""
    return {text(row["device"]): float(row["loop_width_a"]) for row in loops}


def step_current(steps: np.ndarray, device: str) -> float:
    """The current step (A) of a device's loops: the median spacing of its distinct currents."""
    currents = np.unique(steps["current_a"][steps["device"] == device.encode()])
    return float(np.median(np.diff(currents))) if currents.size > 1 else 0.0


def devices_of(table: np.ndarray) -> list[str]:
    """The device ids a record table holds, sorted."""
    return [text(d) for d in np.unique(table["device"])] if table.size else []


def switching_counts(trials: np.ndarray) -> dict[str, SwitchingCounts]:
    """Per device, the trials with a bias pulse whose reset held and whose reading is finite, counted per
    (current, pulse width)."""
    valid = trials[(trials["reset_ok"] == 1) & np.isfinite(trials["reading_ohm"]) & (trials["amplitude_a"] > 0)]
    out = {}
    for device in np.unique(valid["device"]):
        rows = valid[valid["device"] == device]
        keys, inverse = np.unique(np.stack([rows["amplitude_a"], rows["width_s"]], axis=1), axis=0,
                                  return_inverse=True)
        out[text(device)] = SwitchingCounts(keys[:, 0], keys[:, 1],
                                            np.bincount(inverse.ravel(), weights=rows["outcome"].astype(float)),
                                            np.bincount(inverse.ravel()).astype(float))
    return out


def state_readings(trials: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per device, ``(down, up)``: the readings after a held reset, and after a switch."""
    valid = trials[(trials["reset_ok"] == 1) & np.isfinite(trials["reading_ohm"])]
    return {text(d): (valid["reset_reading_ohm"][valid["device"] == d],
                      valid["reading_ohm"][(valid["device"] == d) & (valid["outcome"] == 1)])
            for d in np.unique(valid["device"])}
