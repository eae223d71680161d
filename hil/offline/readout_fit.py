"""The Hall readings' noise from a session: the Gaussian read noise and, where repeated reads show it, telegraph noise.

Every reading is ``R0 ± ΔR_AHE/2`` plus noise. With ``reads: N`` (``N ≥ 2``) the session keeps every reading of a
read window (``trial_readings``), one source-meter aperture ``Δ`` apart. About its state's level (the median of the
device's readings in that state), a window's readings are

- independent for Gaussian read noise (``σ²``): their autocovariance at lag ``k ≥ 1`` is 0;
- correlated for a two-level fluctuator of amplitude ``A`` and mean dwell ``τ``
  (:mod:`sim_backend.effects.telegraph_noise`): ``(A/2)² ρ^k`` with ``ρ = e^(−2Δ/τ)``.

So the lag autocovariances ``c_k`` (each the mean over windows, its standard error from their scatter) are fitted
with ``(A_ref w_ref / 2w)² ρ^k`` over every device at once (the amplitude scales as 1/width), and the telegraph noise
counts as resolved only where ``A_ref`` stands three standard errors clear of zero; it needs three or more readings
per window to tell ``A`` from ``τ``. The read noise is then the within-window variance less the fluctuator's share of
it. Without repeated reads only the readings' whole spread about each state is seen (the read noise, with any
telegraph noise in it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

from protocols.analysis import state_readings

MIN_STATE_READINGS = 3
RESOLVED_SIGMAS = 3.0  # telegraph noise counts as seen where its amplitude is this many standard errors from 0


@dataclass
class ReadoutFit:
    """``read_noise`` (Ω, one reading) with its standard error; ``telegraph``: ``None`` or the fitted amplitude on a
    ``reference_width`` cross (Ω peak to peak), dwell (s) and their errors; ``telegraph_note`` says what was seen;
    ``source``: which readings."""

    read_noise: float
    read_noise_err: float
    telegraph: dict[str, float] | None
    telegraph_note: str
    source: str


def _windows(trial_readings: np.ndarray, trials: np.ndarray) -> dict[str, list[np.ndarray]]:
    """Per device, its read windows' readings ``(windows, reads)`` split by state (down, up)."""
    key = ["unit", "device", "trial", "attempt"]
    state_of: dict[tuple, tuple[int, int]] = {}
    for row in trials:
        reset_ok, outcome = int(row["reset_ok"]), int(row["outcome"])
        state_of[tuple(row[k] for k in key)] = (0 if reset_ok else 1, 1 if (outcome or not reset_ok) else 0)
    order = np.lexsort((trial_readings["reading"], trial_readings["window"], trial_readings["attempt"],
                        trial_readings["trial"], trial_readings["unit"]))
    rows = trial_readings[order]
    reads = int(rows["reading"].max()) + 1
    windows = rows.reshape(-1, reads)
    out: dict[str, list[list[np.ndarray]]] = {}
    for w in windows:
        first = w[0]
        state = state_of.get(tuple(first[k] for k in key))
        values = w["reading_ohm"]
        if state is None or not np.all(np.isfinite(values)) or np.any(np.abs(values) >= 1e30):
            continue
        out.setdefault(first["device"].decode(), [[], []])[state[int(first["window"])]].append(values)
    return {d: [np.array(s) for s in states if s] for d, states in out.items()}


def _lag_statistics(states: list[np.ndarray]) -> tuple[float, np.ndarray, np.ndarray, int]:
    """``(within-window variance, c_k, their standard errors, windows)`` for lags 1 … N−1, residuals taken about each
    state's median."""
    residuals = np.concatenate([s - np.median(s) for s in states])
    windows, reads = residuals.shape
    within = float(np.mean(residuals.var(axis=1, ddof=1)))
    c, se = [], []
    for k in range(1, reads):
        per_window = np.mean(residuals[:, k:] * residuals[:, :-k], axis=1)
        c.append(per_window.mean())
        se.append(per_window.std(ddof=1) / math.sqrt(windows))
    return within, np.array(c), np.array(se), windows


def fit_readout(runs: Sequence[Mapping[str, Any]], widths_m: Mapping[str, float], reference_width_m: float,
                aperture_s: float) -> ReadoutFit | None:
    """The read noise (and telegraph noise) of a session's device trials; ``None`` without readings to go on."""
    with_reads = [r for r in runs if "trial_readings" in r["tables"] and r["tables"]["trial_readings"].size]
    if with_reads:
        return _from_repeated(with_reads, widths_m, reference_width_m, aperture_s)
    residuals: list[np.ndarray] = []
    for run in runs:
        trials = run["tables"].get("trials")
        if trials is None or not trials.size:
            continue
        for down, up in state_readings(trials).values():
            residuals += [v - v.mean() for v in (down, up) if v.size >= MIN_STATE_READINGS]
    if not residuals:
        return None
    pooled = np.concatenate(residuals)
    noise = float(pooled.std(ddof=len(residuals)))
    return ReadoutFit(noise, float(pooled.std() / math.sqrt(2 * pooled.size)), None,
                      "not fitted: the session has one reading per read window; telegraph noise needs repeated "
                      "reads (reads: N ≥ 3), and any there is is part of the read noise's spread",
                      "single readings: their spread about each state's mean")


def _from_repeated(runs: Sequence[Mapping[str, Any]], widths_m: Mapping[str, float], reference_width_m: float,
                   aperture_s: float) -> ReadoutFit:
    windows: dict[str, list[np.ndarray]] = {}
    for run in runs:
        tables = run["tables"]
        for device, states in _windows(tables["trial_readings"], tables["trials"]).items():
            windows.setdefault(device, []).extend(states)
    stats_by_device = {d: _lag_statistics(s) for d, s in windows.items() if s}
    reads = next(iter(stats_by_device.values()))[1].size + 1
    within = np.array([v[0] for v in stats_by_device.values()])
    counts = np.array([v[3] for v in stats_by_device.values()])
    telegraph, note, share = None, "", np.zeros(len(stats_by_device))
    if reads < 3:
        note = ("not fitted: two readings per window cannot tell a fluctuator's amplitude from its dwell "
                "(reads: N ≥ 3 can)")
    else:
        scale = np.array([(reference_width_m / widths_m[d]) ** 2 for d in stats_by_device])
        lags = np.arange(1, reads)
        c = np.concatenate([v[1] for v in stats_by_device.values()])
        se = np.concatenate([v[2] for v in stats_by_device.values()])
        s = np.repeat(scale, lags.size)
        k = np.tile(lags, len(stats_by_device))

        def residual(v: np.ndarray) -> np.ndarray:
            return (v[0] ** 2 * s * v[1] ** k - c) / se

        fit = optimize.least_squares(residual, np.array([0.1, 0.5]), bounds=([0.0, 1e-6], [np.inf, 1.0 - 1e-9]))
        jac = fit.jac
        cov = np.linalg.pinv(jac.T @ jac) * max(1.0, float(np.sum(fit.fun**2)) / max(fit.fun.size - 2, 1))
        half, rho = float(fit.x[0]), float(fit.x[1])
        half_err, rho_err = (float(math.sqrt(max(cov[i, i], 0.0))) for i in (0, 1))
        c1 = float(np.sum(c[k == 1] / se[k == 1] ** 2) / np.sum(1 / se[k == 1] ** 2))
        c1_err = float(1 / math.sqrt(np.sum(1 / se[k == 1] ** 2)))
        if half > RESOLVED_SIGMAS * half_err and 0.0 < rho < 1.0:
            dwell = -2 * aperture_s / math.log(rho)
            dwell_err = 2 * aperture_s * rho_err / (rho * math.log(rho) ** 2)
            telegraph = {"amplitude_ohm": 2 * half, "amplitude_err_ohm": 2 * half_err, "dwell_s": dwell,
                         "dwell_err_s": dwell_err, "reference_width_m": reference_width_m}
            mean_corr = float(np.sum((reads - lags) * rho**lags) * 2 / (reads * (reads - 1)))
            share = half**2 * scale * (1.0 - mean_corr)
            note = (f"fitted: successive readings ({aperture_s * 1e6:.3g} µs apart) correlate beyond the Gaussian's "
                    f"(lag-1 autocovariance {c1:.3g} ± {c1_err:.2g} Ω²)")
        else:
            note = (f"not resolved: successive readings show no correlation beyond the Gaussian's (lag-1 "
                    f"autocovariance {c1:.3g} ± {c1_err:.2g} Ω²; amplitude {2 * half:.2g} ± {2 * half_err:.2g} Ω); "
                    "the readings' whole spread is the read noise")
    variance = float(np.sum(counts * (within - share)) / counts.sum())
    noise = math.sqrt(max(variance, 0.0))
    dof = float(counts.sum() * (reads - 1))
    return ReadoutFit(noise, noise / math.sqrt(2 * dof), telegraph, note,
                      f"repeated readings ({reads} per window): the spread within each window")


def misread_probability(half_gap_ohm: float, read_noise_ohm: float, reads: int, telegraph_half_ohm: float = 0.0
                        ) -> float:
    """The chance that a window's median reading of a device lies past the threshold ``half_gap_ohm`` away from its
    level: Gaussian noise (the median of ``reads`` readings: sd ``σ √(π / 2N)`` beyond one) and a fluctuator at
    ``±telegraph_half_ohm`` held through the window."""
    sd = read_noise_ohm * (1.0 if reads == 1 else math.sqrt(math.pi / (2 * reads)))
    if sd <= 0:
        return 0.0
    return float(0.5 * (stats.norm.sf((half_gap_ohm - telegraph_half_ohm) / sd)
                        + stats.norm.sf((half_gap_ohm + telegraph_half_ohm) / sd)))
