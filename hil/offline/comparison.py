"""``hil replay``: run a recorded session's protocols again on the simulator and compare, device by device.

The simulator here is the emulated probe station: the session's own station (its file, as recorded) with
emulated instruments in front of a simulated chip (the embedded one, or a given or calibrated one). Each
recorded run is measured again by the same protocol with the same parameters and seed — the same
devices, currents, pulse widths, resets and order, through the same drivers. Per device the comparison
gives measured vs simulated P(I) with Wilson intervals, a per-point binomial test of the measured counts
against the simulator's probability as the station drives the chip (Bonferroni over the device's points; on a
chip that drifts, against the simulated run's counts), the reset success rates, and for hysteresis loops the
measured loop width against the spread of :data:`LOOP_REPEATS` simulated loops. The chip's effects are judged
row by row (:mod:`hil.offline.effect_comparison`: I50 against pulse width, drift rates, failed resets, the loops'
plateau sag); the verdict is ``differs`` where a device or a row does.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from hil.lab.characterization import station_guard
from hil.offline.effect_comparison import compare_effects, draw_effects, two_counts_p_value
from hil.offline.plot_style import checked_format, natural_order, save
from hil.outputs import check_outputs
from hil.session import Session
from instruments.station import Station
from instruments.station_config import StationSpec, parse_station
from protocols.analysis import (
    curves_by_device,
    loop_width_by_device,
    loop_widths_per_loop,
    loops_of,
    readable,
    step_current,
    switching_curves,
)
from protocols.bias_sweep import REFERENCE_POINTS
from protocols.device_trial import TRIALS
from protocols.engine import MemoryStore, RunEngine
from protocols.fits import wilson_interval
from protocols.hysteresis_loop import STEPS, HysteresisLoop
from protocols.registry import load_protocol
from sim_backend.chip import Chip, load_chip

ALPHA = 0.01  # family-wise error rate per device for the agreement test
LOOP_REPEATS = 100  # simulated repetitions of each recorded loop: the spread a measured loop is judged against


def _emulated(spec: StationSpec) -> StationSpec:
    return dataclasses.replace(spec, instruments={role: dataclasses.replace(inst, address="emulated")
                                                  for role, inst in spec.instruments.items()})


def simulate(spec: StationSpec, runs: list[dict[str, Any]], chip: Chip) -> list[dict[str, Any]]:
    """Measure every run again on the emulated station with ``chip``; per run its tables and analyses."""
    from sim_backend.emulated.probe_station import EmulatedStation

    plans = []
    for run in runs:
        parameters = dict(run["parameters"])
        if run["protocol"] == HysteresisLoop.name:
            parameters = HysteresisLoop.repeated(parameters, LOOP_REPEATS)
        plans.append(parameters)
    store = MemoryStore()
    with EmulatedStation(_emulated(spec), chip=chip) as emulated, Station.open(emulated.spec) as station:
        protocols = [load_protocol(p, emulated.spec).attach(station) for p in plans]
        RunEngine(store, guard=station_guard(station)).run(protocols)
    return [{"tables": sink.tables(), "analyses": sink.results} for sink in store.runs]


def _curve_points(run: dict[str, Any]) -> np.ndarray | None:
    """A run's switching curves (its ``curves`` analysis); for a bias sweep with reference points, without them: a
    reference point pools a drifting device's trials over the whole run, and the ``drift`` row judges it."""
    curves = run["analyses"].get("curves")
    reference = run["tables"].get(REFERENCE_POINTS.name)
    if curves is None or reference is None or not reference.size:
        return curves
    trials = run["tables"][TRIALS.name]
    return switching_curves(trials[~np.isin(trials["unit"], reference["unit"])])


def _model_curves(chip: Chip, spec: StationSpec, curves: np.ndarray | None) -> dict[str, np.ndarray]:
    """Per device of a run's ``curves``, the chip's switching probability at each point as the station drives it (the
    voltage for the requested current through the measured channel, :meth:`~sim_backend.chip.Chip.currents_for_voltage`:
    a heating channel carries a little less)."""
    if curves is None:
        return {}
    r_out = spec.source_impedance_ohm
    out = {}
    for device, c in curves_by_device(curves).items():
        index = chip.index(device)
        r_ch = float(chip.channel_resistance([index])[0])
        current = chip.currents_for_voltage(index, torch.from_numpy(c.current_a * (r_ch + r_out)), r_out)
        out[device] = chip.switching_probability(torch.full((c.current_a.size,), index), current.to(torch.float64),
                                                 torch.from_numpy(c.width_s.copy())).numpy()
    return out


def _compare_curves(measured: np.ndarray, simulated: np.ndarray | None, model: dict[str, np.ndarray],
                    drifting: bool) -> dict[str, Any]:
    """Per device, each point's measured count against the model's probability (binomial test), or, on a chip that
    drifts (whose curve at the start does not hold through the run), against the simulated run's count (the
    conditional binomial test of two counts); Bonferroni over the device's points."""
    out: dict[str, Any] = {}
    simulated_counts = curves_by_device(simulated) if simulated is not None else {}
    for device, c in curves_by_device(measured).items():
        p_model = model[device]
        sim = simulated_counts.get(device)
        sim_p: list[float | None] = [None] * c.current_a.size
        sim_k: list[tuple[float, float] | None] = [None] * c.current_a.size
        if sim is not None:
            lookup = {(a, w): (k, n) for a, w, k, n in zip(sim.current_a, sim.width_s, sim.n_switched, sim.n_trials,
                                                           strict=True)}
            sim_k = [lookup.get((a, w)) for a, w in zip(c.current_a, c.width_s, strict=True)]
            sim_p = [None if kn is None else kn[0] / max(kn[1], 1) for kn in sim_k]
        if drifting:
            pvalues = np.array([two_counts_p_value(k, n, kn) for k, n, kn in zip(c.n_switched, c.n_trials, sim_k,
                                                                           strict=True)])
        else:
            pvalues = np.array([stats.binomtest(int(k), int(n), float(np.clip(p, 0.0, 1.0))).pvalue
                                for k, n, p in zip(c.n_switched, c.n_trials, p_model, strict=True)])
        flagged = pvalues < ALPHA / pvalues.size
        low, high = wilson_interval(c.n_switched, c.n_trials)
        out[device] = {
            "amplitude_a": c.current_a.tolist(),
            "measured_p": c.p.tolist(),
            "measured_ci": [low.tolist(), high.tolist()],
            "simulated_p": [None if p is None else float(p) for p in sim_p],
            "model_p": p_model.tolist(),
            "p_values": pvalues.tolist(),
            "tested_against": "simulated counts" if drifting else "model probability",
            "points_disagreeing": int(flagged.sum()),
            "n_points": int(pvalues.size),
            "verdict": "agrees" if not flagged.any() else "differs",
        }
    return out


def _compare_loops(measured_steps: np.ndarray, simulated_steps: np.ndarray) -> dict[str, Any]:
    """Measured loop width per device against the spread of the simulator's loop widths.

    Switching in a DC sweep is stochastic too, so one loop's width scatters by a step or two: each
    recorded loop is simulated :data:`LOOP_REPEATS` times and the measured width (mean over the device's
    loops) must lie within the central 99 % of the simulated means (widened by half a step).
    """
    out: dict[str, Any] = {}
    measured_loops = loop_widths_per_loop(measured_steps)
    simulated_loops = loop_widths_per_loop(simulated_steps)
    for device, widths in measured_loops.items():
        width = float(np.nanmean(widths))
        simulated = np.array(simulated_loops.get(device, []), dtype=float)
        if simulated.size == 0 or not np.isfinite(width):
            continue
        means = np.nanmean(simulated[:simulated.size - simulated.size % len(widths)].reshape(-1, len(widths)),
                           axis=1)
        step = step_current(measured_steps, device)
        low, high = np.nanpercentile(means, [0.5, 99.5])
        agree = low - step / 2 <= width <= high + step / 2
        out[device] = {"measured_loop_width_a": width, "simulated_loop_width_a": float(np.nanmedian(means)),
                       "simulated_range_a": [float(low), float(high)], "step_a": step,
                       "verdict": "agrees" if agree else "differs"}
    return out


def replay(session_path: str | Path, chip: Chip | str | Path | None = None,
           seed: int | None = None) -> dict[str, Any]:
    """Replay every run of a session on the simulator; the JSON-ready comparison."""
    chip = chip if isinstance(chip, Chip) else load_chip(chip, seed=seed)
    with Session(session_path) as session:
        spec = parse_station(session.attrs["station"])
        runs = [{"name": run.name, "protocol": run.protocol, "parameters": run.parameters,
                 "analyses": run.analyses(), "tables": run.tables()} for run in session.runs]
    curves = [_curve_points(run) for run in runs]
    models = [_model_curves(chip, spec, c) for c in curves]  # before the chip drifts
    drifting = chip.drift is not None
    simulated = simulate(spec, runs, chip)
    result: dict[str, Any] = {"session": str(session_path), "chip": chip.spec.name, "runs": []}
    for run, sim, model, points in zip(runs, simulated, models, curves, strict=True):
        entry: dict[str, Any] = {"name": run["name"], "protocol": run["protocol"], "devices": {}}
        measured = run["analyses"]
        if points is not None:
            entry["devices"] = _compare_curves(points, _curve_points(sim), model, drifting)
            entry["reset_success"] = {device: {"measured": v["reset_success_rate"],
                                               "simulated": sim["analyses"]["reset"][device]["reset_success_rate"]}
                                      for device, v in (measured.get("reset") or {}).items()}
        if measured.get("loops") is not None:
            entry["devices"].update(_compare_loops(run["tables"][STEPS.name], sim["tables"][STEPS.name]))
            entry["loops"] = {"measured": loop_width_by_device(measured["loops"]),
                              "simulated_example": _first_loops(sim["tables"][STEPS.name])}
        result["runs"].append(entry)
    result["effects"] = compare_effects(runs, simulated)
    differing = sorted({d for run in result["runs"] for d, v in run["devices"].items() if v["verdict"] == "differs"})
    result["devices_differing"] = differing
    result["effects_differing"] = [name for name, row in result["effects"].items() if row["verdict"] == "differs"]
    result["verdict"] = "agrees" if not differing and not result["effects_differing"] else "differs"
    result["n_devices"] = len({d for run in result["runs"] for d in run["devices"]})
    return result


def _first_loops(steps: np.ndarray) -> dict[str, dict[str, list[float]]]:
    """One simulated loop per device, for the figure."""
    out: dict[str, dict[str, list[float]]] = {}
    for device, current, reading in loops_of(steps):
        out.setdefault(device, {"current_a": current.tolist(), "reading_ohm": reading.tolist()})
    return out


def write_replay_report(result: dict[str, Any], out_dir: str | Path, session_path: str | Path | None = None,
                        force: bool = False, fmt: str = "png") -> list[Path]:
    """``replay.json``, one figure per run (``fmt``: png, pdf or svg) comparing measured and simulated curves or
    loops, and where the session shows effects ``replay_effects``
    (:func:`hil.offline.effect_comparison.draw_effects`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    checked_format(fmt)
    figures = [out_dir / f"replay_{run['name']}_{run['protocol']}.{fmt}" for run in result["runs"]
               if run.get("devices") or run.get("loops")]
    effects = out_dir / f"replay_effects.{fmt}"
    check_outputs([out_dir / "replay.json", *figures, *([effects] if result.get("effects") else [])], force)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "replay.json"]
    written[0].write_text(json.dumps({k: v for k, v in result.items()}, indent=2))
    if result.get("effects"):
        written.append(save(draw_effects(plt, result["effects"]), effects))
    measured_steps = {}
    if session_path is not None:
        with Session(session_path) as session:
            measured_steps = {run.name: run.table(STEPS.name) for run in session.runs_of(HysteresisLoop.name)}
    for run in result["runs"]:
        curves = {d: v for d, v in run["devices"].items() if "measured_p" in v}
        loops = run.get("loops")
        if not curves and not loops:
            continue
        devices = natural_order(curves if curves else loops["simulated_example"])
        cols = min(4, len(devices))
        rows = int(np.ceil(len(devices) / cols))
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
        for ax, device in zip(axes.ravel(), devices, strict=False):
            if curves:
                v = curves[device]
                amps = np.array(v["amplitude_a"]) * 1e3
                mp, (lo, hi) = np.array(v["measured_p"]), np.array(v["measured_ci"])
                ax.errorbar(amps, mp, yerr=np.clip([mp - lo, hi - mp], 0, None), fmt="o", ms=3, label="measured",
                            color="tab:blue")
                sp = np.array([np.nan if x is None else x for x in v["simulated_p"]], dtype=float)
                ax.plot(amps, sp, "s", ms=3, label="simulated", color="tab:orange", alpha=0.7)
                ax.plot(amps, v["model_p"], "-", lw=1, label="model P", color="tab:orange")
                ax.set_xlabel("bias current I (mA)", fontsize=8)
                ax.set_ylabel("switching probability P", fontsize=8)
            else:
                v = run["devices"].get(device, {"verdict": "no loop"})
                label = "measured"
                for name, current, reading in loops_of(measured_steps.get(run["name"], np.zeros(0, STEPS.dtype))):
                    if name == device:
                        ok = readable(reading)
                        ax.plot(current[ok] * 1e3, reading[ok], "-", lw=1.2, color="tab:blue", label=label)
                        label = None
                example = loops["simulated_example"][device]
                current, reading = np.array(example["current_a"]), np.array(example["reading_ohm"])
                ok = readable(reading)
                ax.plot(current[ok] * 1e3, reading[ok], "--", lw=1.2, color="tab:orange", label="simulated")
                ax.set_xlabel("DC current I (mA)", fontsize=8)
                ax.set_ylabel("$R_{xy}$ (Ω)", fontsize=8)
            colour = "k" if v["verdict"] == "agrees" else "tab:red"
            title = f"{device}: {v['verdict']}"
            if "measured_loop_width_a" in v:
                low, high = v["simulated_range_a"]
                title += (f"\n$I_\\mathrm{{loop}}$ {v['measured_loop_width_a'] * 1e3:.2f} mA, "
                          f"simulated 99 %: {low * 1e3:.2f}–{high * 1e3:.2f} mA")
            ax.set_title(title, fontsize=8, color=colour)
        for ax in axes.ravel()[len(devices):]:
            ax.axis("off")
        axes[0, 0].legend(fontsize=7, loc="center" if loops and not curves else "best")
        fig.suptitle(f"run {run['name']} ({run['protocol']}): measured vs simulated")
        fig.tight_layout()
        written.append(save(fig, out_dir / f"replay_{run['name']}_{run['protocol']}.{fmt}"))
    return written
