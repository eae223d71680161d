"""``hil replay``: re-run a recorded session on the simulator and compare, device by device.

Each recorded run is played again on a simulated chip (the default chip, or a given or calibrated
one) with its recorded parameters and trial plan: the same devices, currents, pulse widths, resets
and order. Per device the comparison gives measured vs simulated P(I) with Wilson intervals, a
per-point binomial test of the measured counts against the simulator's probability (Bonferroni over
the device's points), loop widths for hysteresis runs, and a verdict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from hil.session import Session, SessionError
from protocols.analysis import loop_switching, loop_widths, switching_curves
from sim_backend.chip import Chip, load_chip

ALPHA = 0.01  # family-wise error rate per device for the agreement test


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _simulate_trials(chip: Chip, trials: np.ndarray, reset_width_s: float) -> np.ndarray:
    """The recorded trials, in their recorded order per device, on the simulated chip."""
    simulated = trials.copy()
    for device in np.unique(trials["device"]):
        index = chip.index(_text(device))
        where = np.flatnonzero(trials["device"] == device)
        rows = trials[where]
        levels = np.stack([rows["reset_a"], rows["amplitude_a"]], axis=1).ravel()
        durations = np.stack([np.full(rows.size, reset_width_s), rows["width_s"]], axis=1).ravel()
        m = chip.apply_waveform([index], torch.from_numpy(levels)[None, :], torch.from_numpy(durations)[None, :])[0]
        after_reset, after_bias = m[0::2].numpy(), m[1::2].numpy()
        readings = chip.read([index], 2 * rows.size)[0].numpy()  # noise of fresh reads; state set below
        r0 = float(chip.r0_ohm[index])
        half = 0.5 * float(chip.delta_r_ahe_ohm[index])
        simulated["reset_ok"][where] = after_reset == -1
        simulated["outcome"][where] = (after_reset == -1) & (after_bias == 1)
        simulated["reset_reading_ohm"][where] = r0 + half * after_reset + (readings[0::2] - readings[0::2].mean())
        simulated["reading_ohm"][where] = r0 + half * after_bias + (readings[1::2] - readings[1::2].mean())
    return simulated


def _compare_curves(chip: Chip, measured: np.ndarray, simulated: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {}
    sim_by_key = {(r["device"], r["amplitude_a"], r["width_s"]): r for r in simulated}
    for device in np.unique(measured["device"]):
        rows = measured[measured["device"] == device]
        index = chip.index(_text(device))
        p_model = chip.switching_probability(torch.full((rows.size,), index),
                                             torch.from_numpy(rows["amplitude_a"].copy()),
                                             torch.from_numpy(rows["width_s"].copy())).numpy()
        pvalues = np.array([stats.binomtest(int(k), int(n), float(np.clip(p, 0.0, 1.0))).pvalue
                            for k, n, p in zip(rows["n_switched"], rows["n_trials"], p_model, strict=True)])
        flagged = pvalues < ALPHA / rows.size
        sims = [sim_by_key.get((r["device"], r["amplitude_a"], r["width_s"])) for r in rows]
        out[_text(device)] = {
            "amplitude_a": rows["amplitude_a"].tolist(),
            "measured_p": rows["p"].tolist(),
            "measured_ci": [rows["ci_low"].tolist(), rows["ci_high"].tolist()],
            "simulated_p": [float(s["p"]) if s is not None else None for s in sims],
            "simulated_ci": [[float(s["ci_low"]) if s is not None else None for s in sims],
                             [float(s["ci_high"]) if s is not None else None for s in sims]],
            "model_p": p_model.tolist(),
            "p_values": pvalues.tolist(),
            "points_disagreeing": int(flagged.sum()),
            "n_points": int(rows.size),
            "verdict": "agrees" if not flagged.any() else "differs",
        }
    return out


LOOP_REPEATS = 200  # simulated repetitions of each recorded loop: the spread a measured loop is judged against


def _compare_loops(chip: Chip, steps: np.ndarray) -> dict[str, Any]:
    """Measured loop width per device against the distribution of the simulator's loop widths.

    Switching in a DC sweep is stochastic too, so one loop's width scatters by a step or two: each
    recorded loop is simulated ``LOOP_REPEATS`` times and the measured width (mean over the device's
    loops) must lie within the central 99 % of the simulated means (widened by half a step).
    """
    out: dict[str, Any] = {}
    measured = {r["device"]: float(r["loop_width_a"]) for r in loop_widths(steps)}
    for device, width in measured.items():
        name = _text(device)
        units = np.unique(steps["unit"][steps["device"] == device])
        simulated = []
        for unit in units:
            rows = np.sort(steps[steps["unit"] == unit], order="step")
            currents, dwell = rows["current_a"].copy(), float(rows["dwell_s"][0])
            widths = []
            for _ in range(LOOP_REPEATS):
                chip.set_state(name, -1)
                switching = loop_switching(currents, chip.dc_sweep(name, currents, dwell)[0].numpy())
                widths.append(np.nan if switching is None else (switching[0] - switching[1]) / 2)
            simulated.append(widths)
        means = np.nanmean(np.array(simulated), axis=0)
        currents = np.unique(steps["current_a"][steps["device"] == device])
        step = float(np.median(np.diff(currents)))
        low, high = np.nanpercentile(means, [0.5, 99.5])
        agree = low - step / 2 <= width <= high + step / 2
        out[name] = {"measured_loop_width_a": width, "simulated_loop_width_a": float(np.nanmedian(means)),
                     "simulated_range_a": [float(low), float(high)], "step_a": step,
                     "verdict": "agrees" if agree else "differs"}
    return out


def replay(session_path: str | Path, chip: Chip | str | Path | None = None,
           seed: int | None = None) -> dict[str, Any]:
    """Replay every run of a session on the simulator; the JSON-ready comparison."""
    chip = chip if isinstance(chip, Chip) else load_chip(chip, seed=seed)
    result: dict[str, Any] = {"session": str(session_path), "chip": chip.spec.name, "runs": []}
    with Session(session_path) as session:
        runs = [(run.name, run.protocol, run.parameters, run.table("trials"), run.table("steps"))
                for run in session.runs]
    devices_seen = set()
    for name, protocol, parameters, trials, steps in runs:
        entry: dict[str, Any] = {"name": name, "protocol": protocol}
        for table in (trials, steps):
            for device in np.unique(table["device"]) if table.size else []:
                if _text(device) not in chip.ids:
                    raise SessionError(f"device {_text(device)} of run {name} is not on chip {chip.spec.name!r}")
        if trials.size:
            reset_width = _reset_width(parameters)
            simulated = _simulate_trials(chip, trials, reset_width)
            measured_curves, simulated_curves = switching_curves(trials), switching_curves(simulated)
            entry["devices"] = _compare_curves(chip, measured_curves, simulated_curves)
            entry["reset_success"] = {
                _text(d): {"measured": float(trials["reset_ok"][trials["device"] == d].mean()),
                           "simulated": float(simulated["reset_ok"][simulated["device"] == d].mean())}
                for d in np.unique(trials["device"])}
        if steps.size:
            entry.setdefault("devices", {}).update(_compare_loops(chip, steps))
        for device, values in entry.get("devices", {}).items():
            devices_seen.add(device)
            values.setdefault("verdict", "agrees")
        result["runs"].append(entry)
    differing = sorted({d for run in result["runs"] for d, v in run.get("devices", {}).items()
                        if v["verdict"] == "differs"})
    result["devices_differing"] = differing
    result["verdict"] = "agrees" if not differing else "differs"
    result["n_devices"] = len(devices_seen)
    return result


def _reset_width(parameters: dict[str, Any]) -> float:
    from instruments.units import parse_quantity

    reset = parameters.get("reset") or {}
    return parse_quantity(reset.get("width", "100us"), "s", "reset.width")


def write_replay_report(result: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """``replay.json`` and one PNG per run comparing measured and simulated curves or loops."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "replay.json"]
    written[0].write_text(json.dumps(result, indent=2))
    for run in result["runs"]:
        curves = {d: v for d, v in run.get("devices", {}).items() if "measured_p" in v}
        if not curves:
            continue
        n = len(curves)
        cols = min(4, n)
        rows = int(np.ceil(n / cols))
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
        for ax, (device, v) in zip(axes.ravel(), sorted(curves.items()), strict=False):
            amps = np.array(v["amplitude_a"]) * 1e3
            mp, (lo, hi) = np.array(v["measured_p"]), np.array(v["measured_ci"])
            ax.errorbar(amps, mp, yerr=np.clip([mp - lo, hi - mp], 0, None), fmt="o", ms=3, label="measured",
                        color="tab:blue")
            sp = np.array([np.nan if x is None else x for x in v["simulated_p"]], dtype=float)
            ax.plot(amps, sp, "s", ms=3, label="simulated", color="tab:orange", alpha=0.7)
            ax.plot(amps, v["model_p"], "-", lw=1, label="model P", color="tab:orange")
            colour = "k" if v["verdict"] == "agrees" else "tab:red"
            ax.set_title(f"{device}: {v['verdict']}", fontsize=9, color=colour)
            ax.set_xlabel("I (mA)", fontsize=8)
        for ax in axes.ravel()[n:]:
            ax.axis("off")
        axes[0, 0].legend(fontsize=7)
        fig.suptitle(f"run {run['name']} ({run['protocol']}): measured vs simulated")
        fig.tight_layout()
        written.append(out_dir / f"replay_{run['name']}_{run['protocol']}.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    return written

