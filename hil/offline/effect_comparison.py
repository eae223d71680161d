"""``hil replay`` on the chip's effects: what a session shows of heating, drift and pinning, measured vs simulated.

Each row compares what the recorded runs measured with what the same runs gave on the simulator (the replay), per
device, with a verdict (``agrees``/``differs``) at a family-wise error rate of :data:`ALPHA` per row (Bonferroni over
its tests):

- ``i50_vs_width``: each device's I50 (logistic fit) at every pulse width its bias sweeps used (two or more):
  heating makes I50 fall with the width faster than ``ln t_p``; a z test of measured against simulated per width
  (the fits' errors widened by their dispersion: a pinned or drifting curve is no logistic);
- ``drift``: each device's I50 drift per hour from its reference points (the runs' ``drift`` analyses), a z test
  per run and device, and the devices' drifts pooled (inverse-variance weighted) against the simulated ones;
- ``reset_failures``: each device's failed resets in its reset checks (of the resets that followed a switch), the
  measured count against the simulated one by the conditional binomial test (given both counts' sum, the measured
  one is binomial with the measured share of the resets);
- ``plateau_sag``: each device's loop plateaus sagging with the current (heating shrinks the Hall step): per loop
  the half-step's fall from zero current to the loop's largest (a fit of each plateau's readings against ``I²``),
  the measured mean over the device's loops against the simulated loops' (a z test on their mean and spread).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from scipy import stats

from protocols.analysis import SwitchingCounts, curves_by_device, loops_of, readable, resets_after_switch, text
from protocols.bias_sweep import BiasSweep
from protocols.fits import wilson_interval
from protocols.hysteresis_loop import STEPS, HysteresisLoop
from protocols.reset_check import ResetCheck

ALPHA = 0.01  # family-wise error rate of each row
Z95 = float(stats.norm.ppf(0.975))
ROWS = ("i50_vs_width", "drift", "reset_failures", "plateau_sag")


def _z_pvalue(measured: float, measured_err: float, simulated: float, simulated_err: float) -> float:
    spread = float(np.hypot(measured_err, simulated_err))
    if not np.isfinite(spread) or spread <= 0:
        return 1.0 if measured == simulated else 0.0
    return float(2 * stats.norm.sf(abs(measured - simulated) / spread))


def _verdict(pvalues: list[float], tests: int) -> str:
    return "differs" if any(p < ALPHA / max(tests, 1) for p in pvalues) else "agrees"


def i50_vs_width(runs: list[dict[str, Any]], simulated: list[dict[str, Any]]) -> dict[str, Any]:
    """Per device with two or more pulse widths: its I50 per bias-sweep run, measured and simulated (each standard
    error widened by its fit's dispersion, :func:`_logistic_i50`)."""
    points: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run, sim in zip(runs, simulated, strict=True):
        if run["protocol"] != BiasSweep.name:
            continue
        width = _width_of(run)
        measured_curves, simulated_curves = _curves_of(run["analyses"]), _curves_of(sim["analyses"])
        for device in run["analyses"].get("fits") or {}:
            measured = _logistic_i50(run["analyses"], measured_curves.get(device), device)
            other = _logistic_i50(sim["analyses"], simulated_curves.get(device), device)
            if measured is None or other is None:
                continue
            points[device].append({"run": run["name"], "width_s": width, "measured_i50_a": measured[0],
                                   "measured_err_a": measured[1], "simulated_i50_a": other[0],
                                   "simulated_err_a": other[1]})
    devices = {}
    for device, rows in points.items():
        if len({r["width_s"] for r in rows}) < 2:
            continue
        for r in rows:
            r["p_value"] = _z_pvalue(r["measured_i50_a"], r["measured_err_a"], r["simulated_i50_a"],
                                     r["simulated_err_a"])
        devices[device] = {"points": sorted(rows, key=lambda r: r["width_s"]),
                           "verdict": _verdict([r["p_value"] for r in rows], len(rows))}
    return _row(devices, "I50 per pulse width (logistic fits, errors widened by their dispersion), z test per width")


def _curves_of(analyses: dict[str, Any]) -> dict[str, SwitchingCounts]:
    """A run's curve counts by device (none where the run has no curves)."""
    return curves_by_device(analyses["curves"]) if analyses.get("curves") is not None else {}


def _logistic_i50(analyses: dict[str, Any], counts: SwitchingCounts | None, device: str) -> tuple[float, float] | None:
    """A device's logistic I50 and its standard error, widened by ``√φ`` where its curve ``counts`` scatter about the
    logistic more than binomially (``φ``: the fit's deviance per degree of freedom, at least 1; quasi-likelihood): a
    curve that saturates below 1 (pinning) or moved during the run (drift) is not a logistic, and its I50 is known
    less well than the binomial information says."""
    fit = ((analyses.get("fits") or {}).get(device) or {}).get("logistic")
    if fit is None or counts is None:
        return None
    k, n = counts.n_switched, counts.n_trials
    p = np.clip(k / np.maximum(n, 1), 1e-300, 1.0)
    saturated = float(np.sum(k * np.log(p) + (n - k) * np.log(np.clip(1.0 - p, 1e-300, 1.0))))
    dispersion = max(1.0, 2 * (saturated - fit["log_likelihood"]) / max(k.size - 2, 1))
    return float(fit["i50_a"]), float(fit["i50_err_a"] * np.sqrt(dispersion))


def _width_of(run: dict[str, Any]) -> float:
    trials = run["tables"].get("trials")
    return float(np.median(trials["width_s"])) if trials is not None and trials.size else float("nan")


def drift_rates(runs: list[dict[str, Any]], simulated: list[dict[str, Any]]) -> dict[str, Any]:
    """Per device, the I50 drift per hour of each run with reference points, measured and simulated, and pooled."""
    devices: dict[str, dict[str, Any]] = {}
    differences, weights = [], []
    for run, sim in zip(runs, simulated, strict=True):
        measured, other = run["analyses"].get("drift") or {}, sim["analyses"].get("drift") or {}
        for device, entry in measured.items():
            twin = other.get(device) or {}
            if "i50_drift_a_per_hour" not in entry or "i50_drift_a_per_hour" not in twin:
                continue
            m, s = entry["i50_drift_a_per_hour"], twin["i50_drift_a_per_hour"]
            m_err = (entry["ci_high"] - entry["ci_low"]) / (2 * Z95)
            s_err = (twin["ci_high"] - twin["ci_low"]) / (2 * Z95)
            row = {"run": run["name"], "measured_a_per_hour": m, "measured_err": m_err, "simulated_a_per_hour": s,
                   "simulated_err": s_err, "p_value": _z_pvalue(m, m_err, s, s_err)}
            devices.setdefault(device, {"runs": []})["runs"].append(row)
            variance = m_err**2 + s_err**2
            if variance > 0:
                differences.append(m - s)
                weights.append(1.0 / variance)
    tests = sum(len(v["runs"]) for v in devices.values())
    for entry in devices.values():
        entry["verdict"] = _verdict([r["p_value"] for r in entry["runs"]], tests)
    row = _row(devices, "I50 drift per hour from the reference points, z test per run and device (Bonferroni over "
                        "all), and pooled")
    if weights:
        w = np.array(weights)
        pooled = float(np.sum(w * np.array(differences)) / w.sum())
        pooled_err = float(1 / np.sqrt(w.sum()))
        p = float(2 * stats.norm.sf(abs(pooled) / pooled_err))
        row["pooled"] = {"measured_minus_simulated_a_per_hour": pooled, "err": pooled_err, "p_value": p}
        if p < ALPHA:
            row["verdict"] = "differs"
    return row


def reset_failures(runs: list[dict[str, Any]], simulated: list[dict[str, Any]]) -> dict[str, Any]:
    """Per device, the failed resets of its reset checks (of those that followed a switch), measured and simulated,
    by the conditional binomial test."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for run, sim in zip(runs, simulated, strict=True):
        if run["protocol"] != ResetCheck.name:
            continue
        for offset, tables in ((0, run["tables"]), (2, sim["tables"])):
            for device, (tried, failed) in _failed_resets(tables.get("trials")).items():
                counts[device][offset] += tried
                counts[device][offset + 1] += failed
    devices = {}
    for device, (n_m, k_m, n_s, k_s) in counts.items():
        if n_m == 0 or n_s == 0:
            continue
        p = two_counts_p_value(k_m, n_m, (k_s, n_s))
        low, high = wilson_interval(np.array([k_m, k_s]), np.array([n_m, n_s]))
        devices[device] = {"measured_failed": k_m, "measured_resets": n_m, "simulated_failed": k_s,
                           "simulated_resets": n_s, "measured_rate": k_m / n_m, "simulated_rate": k_s / n_s,
                           "measured_ci": [float(low[0]), float(high[0])],
                           "simulated_ci": [float(low[1]), float(high[1])], "p_value": p}
    for entry in devices.values():
        entry["verdict"] = _verdict([entry["p_value"]], len(devices))
    return _row(devices, "failed resets of the reset checks (after a switch), conditional binomial test")


def two_counts_p_value(k: float, n: float, other: tuple[float, float] | None) -> float:
    """p-value of ``k`` of ``n`` against ``other`` ``(k, n)`` at the same rate: given both counts' sum, ``k`` is
    binomial with the share ``n`` has of the trials (1 where there is no simulated count)."""
    if other is None:
        return 1.0
    total = int(k + other[0])
    return 1.0 if total == 0 else float(stats.binomtest(int(k), total, n / (n + other[1])).pvalue)


def _failed_resets(trials: np.ndarray | None) -> dict[str, tuple[int, int]]:
    """Per device of a reset check's trials: resets that followed a switch, and how many of them failed."""
    out = {}
    if trials is None or not trials.size:
        return out
    after_switch = resets_after_switch(trials)
    for device in np.unique(trials["device"]):
        tried = after_switch & (trials["device"] == device)
        out[text(device)] = (int(tried.sum()), int((tried & (trials["reset_ok"] == 0)).sum()))
    return out


def loop_sag(current_a: np.ndarray, reading_ohm: np.ndarray) -> float:
    """How far the Hall half-step of one loop falls from zero current to the loop's largest (Ω): each plateau's
    readings (split at the midpoint of the loop's levels) fitted as ``a + b I²``, ``(b_down − b_up)/2 · I_max²``;
    NaN where a plateau has too few readings."""
    ok = readable(reading_ohm)
    current, reading = current_a[ok], reading_ohm[ok]
    if reading.size < 8:
        return float("nan")
    low, high = np.percentile(reading, [10, 90])
    up = reading > 0.5 * (low + high)
    slopes = []
    for plateau in (up, ~up):
        x = current[plateau] ** 2
        if plateau.sum() < 4 or np.ptp(x) <= 0:
            return float("nan")
        slopes.append(np.polyfit(x, reading[plateau], 1)[0])
    return float((slopes[1] - slopes[0]) / 2 * np.max(current**2))


def plateau_sag(runs: list[dict[str, Any]], simulated: list[dict[str, Any]]) -> dict[str, Any]:
    """Per device, the plateau sag of its loops (mean over them) against the simulated loops' sags: a z test on
    their mean and spread (the spread of a mean over as many loops as were measured), Bonferroni over the devices."""
    found: dict[str, tuple[str, np.ndarray, np.ndarray]] = {}
    for run, sim in zip(runs, simulated, strict=True):
        if run["protocol"] != HysteresisLoop.name:
            continue
        measured, repeats = _sags(run["tables"].get(STEPS.name)), _sags(sim["tables"].get(STEPS.name))
        for device, sags in measured.items():
            values, others = np.array(sags), np.array(repeats.get(device, []))
            values, others = values[np.isfinite(values)], others[np.isfinite(others)]
            if values.size and others.size > 2:
                found[device] = (run["name"], values, others)
    devices = {}
    z = float(stats.norm.isf(ALPHA / (2 * max(len(found), 1))))
    for device, (name, values, others) in found.items():
        mean, centre = float(values.mean()), float(others.mean())
        spread = float(others.std(ddof=1) / np.sqrt(values.size))
        p = float(2 * stats.norm.sf(abs(mean - centre) / spread)) if spread > 0 else float(mean != centre)
        devices[device] = {"run": name, "measured_sag_ohm": mean, "simulated_sag_ohm": centre,
                           "simulated_range_ohm": [centre - z * spread, centre + z * spread],
                           "n_loops": int(values.size), "n_simulated_loops": int(others.size), "p_value": p}
    for entry in devices.values():
        entry["verdict"] = _verdict([entry["p_value"]], len(devices))
    return _row(devices, "fall of the loops' Hall half-step from zero to the largest current, z test against the "
                         "simulated loops' mean and spread (range: where it agrees)")


def _sags(steps: np.ndarray | None) -> dict[str, list[float]]:
    out: dict[str, list[float]] = defaultdict(list)
    if steps is None or not steps.size:
        return out
    for device, current, reading in loops_of(steps):
        out[device].append(loop_sag(current, reading))
    return out


def _row(devices: dict[str, dict[str, Any]], test: str) -> dict[str, Any]:
    differing = sorted(d for d, v in devices.items() if v["verdict"] == "differs")
    return {"test": test, "devices": devices, "devices_differing": differing,
            "verdict": "differs" if differing else "agrees"}


def compare_effects(runs: list[dict[str, Any]], simulated: list[dict[str, Any]]) -> dict[str, Any]:
    """Every row (:data:`ROWS`) the session has data for: ``{row: {test, devices, devices_differing, verdict}}``."""
    rows = {"i50_vs_width": i50_vs_width(runs, simulated), "drift": drift_rates(runs, simulated),
            "reset_failures": reset_failures(runs, simulated), "plateau_sag": plateau_sag(runs, simulated)}
    return {name: row for name, row in rows.items() if row["devices"]}


def draw_effects(plt: Any, effects: dict[str, Any]) -> Any:
    """One panel per row: measured (filled) and simulated (open) per device, the row's verdict in its title."""
    names = [n for n in ROWS if n in effects]
    fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        row = effects[name]
        colours = plt.get_cmap("tab10")
        for i, (device, entry) in enumerate(sorted(row["devices"].items())):
            colour = colours(i % 10)
            _PANELS[name](ax, i, device, entry, colour)
        ax.set_title(f"{name.replace('_', ' ')}: {row['verdict']}", fontsize=9,
                     color="k" if row["verdict"] == "agrees" else "tab:red")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6.5, loc="best")
    fig.suptitle("Effects, measured (filled) vs simulated (open); red: differs", fontsize=10)
    fig.tight_layout()
    return fig


def _panel_i50(ax: Any, i: int, device: str, entry: dict[str, Any], colour: Any) -> None:
    rows = entry["points"]
    widths = np.array([r["width_s"] for r in rows]) * 1e6
    ax.errorbar(widths, [r["measured_i50_a"] * 1e3 for r in rows], yerr=[r["measured_err_a"] * 1e3 for r in rows],
                fmt="o-", ms=4, color=colour, label=f"{device}: {entry['verdict']}")
    ax.errorbar(widths, [r["simulated_i50_a"] * 1e3 for r in rows], yerr=[r["simulated_err_a"] * 1e3 for r in rows],
                fmt="o--", ms=4, mfc="none", color=colour)
    ax.set_xscale("log")
    ax.set_xlabel("pulse width (µs)", fontsize=8)
    ax.set_ylabel("$I_{50}$ (mA)", fontsize=8)


def _panel_drift(ax: Any, i: int, device: str, entry: dict[str, Any], colour: Any) -> None:
    for j, r in enumerate(entry["runs"]):
        x = i + 0.15 * j
        ax.errorbar([x], [r["measured_a_per_hour"] * 1e3], yerr=[Z95 * r["measured_err"] * 1e3], fmt="o", ms=4,
                    color=colour, label=f"{device}: {entry['verdict']}" if j == 0 else None)
        ax.errorbar([x + 0.07], [r["simulated_a_per_hour"] * 1e3], yerr=[Z95 * r["simulated_err"] * 1e3], fmt="o",
                    ms=4, mfc="none", color=colour)
    ax.axhline(0, color="0.6", lw=0.6)
    ax.set_xticks([])
    ax.set_ylabel("$I_{50}$ drift (mA/h), 95 %", fontsize=8)


def _panel_resets(ax: Any, i: int, device: str, entry: dict[str, Any], colour: Any) -> None:
    for offset, key, fill in ((0.0, "measured", colour), (0.2, "simulated", "none")):
        rate, (low, high) = entry[f"{key}_rate"], entry[f"{key}_ci"]
        ax.errorbar([i + offset], [rate], yerr=[[max(rate - low, 0.0)], [max(high - rate, 0.0)]], fmt="s", ms=4,
                    color=colour, mfc=fill,
                    label=f"{device}: {entry['verdict']}" if key == "measured" else None)
    ax.set_xticks([])
    ax.set_ylabel("failed resets (fraction), 95 % Wilson", fontsize=8)


def _panel_sag(ax: Any, i: int, device: str, entry: dict[str, Any], colour: Any) -> None:
    low, high = entry["simulated_range_ohm"]
    ax.plot([i, i], [low, high], color=colour, lw=4, alpha=0.35)
    ax.plot([i], [entry["simulated_sag_ohm"]], "D", mfc="none", color=colour)
    ax.plot([i], [entry["measured_sag_ohm"]], "D", color=colour, label=f"{device}: {entry['verdict']}")
    ax.set_xticks([])
    ax.set_ylabel("plateau sag at $I_\\max$ (Ω)", fontsize=8)


_PANELS = {"i50_vs_width": _panel_i50, "drift": _panel_drift, "reset_failures": _panel_resets,
           "plateau_sag": _panel_sag}
