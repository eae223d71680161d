"""``hil info``: what a session holds — its runs, how far each got, the devices' fits, a training's result.

Everything is read from the file's own descriptions: the runs' commit logs (units and trials done), their
record tables (rows per table, from the descriptors) and their analyses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hil.session import RUNNING, Session
from hil.training.epoch_records import EPOCHS, summarise
from protocols.analysis import loop_width_by_device, loop_width_intervals, width_statistics
from protocols.base import LOST_RESULT
from protocols.dw_programming import MODEL_RESULT, STATE_FITS_RESULT
from protocols.hysteresis_loop import STEPS


def _run_entry(run: Any) -> dict[str, Any]:
    units = run.units()
    records = run.row_counts()
    if units.size:
        n_trials, n_units_done = int(units["n_trials"].sum()), int(units.size)
    else:  # a run that has committed nothing, or a version 1 file (no commit log)
        n_trials = int(run.attrs.get("n_planned_trials", 0)) if run.status == "completed" else 0
        n_units_done = int(run.attrs.get("n_units", 0)) if run.status == "completed" else 0
    entry = {"name": run.name, "protocol": run.protocol, "status": run.status, "n_trials": n_trials,
             "n_units": int(run.attrs.get("n_units", 0)), "n_units_done": n_units_done, "records": records,
             "started_utc": run.attrs.get("started_utc"), "finished_utc": run.attrs.get("finished_utc"),
             "attempts": run.attrs.get("attempts", []), "error": run.attrs.get("error", ""),
             "instrument_errors": run.attrs.get("instrument_errors") or []}
    lost = run.analysis(LOST_RESULT)
    if lost:
        entry["lost_devices"] = lost
    if run.attrs.get("stopped_at"):
        entry["stopped_at"] = run.attrs["stopped_at"]
    if run.status == RUNNING:
        entry["note"] = "not finished: the process stopped while measuring; continue with --resume"
    if run.protocol == "sweep":
        summary, axes = run.analysis("summary"), run.analysis("by_axis")
        if summary is not None:
            entry["sweep"] = {**summary, "by_axis": axes}
    return entry


def _training(session: Session) -> dict[str, Any] | None:
    """A training session's main run and baselines, in the shape ``hil info --json`` has always given."""
    runs = {run.parameters.get("role", ""): run for run in session.runs_of("training")}
    main = runs.get("hil")
    if main is None:
        return None
    p = main.parameters
    done = summarise(main.table(EPOCHS.name))
    out = {"backend": p.get("neurons"), "dataset": (p.get("dataset") or {}).get("name", ""), "status": main.status,
           "test_accuracy": done["test_accuracy"], "epochs_done": done["epochs"], "pulses": done["pulses"],
           "energy_j": done["energy_j"], "seconds": done["seconds"], "config": p.get("config"),
           "seeds": p.get("seeds"), "neuron_config": p.get("neuron_config") or {},
           "backend_description": p.get("backend") or {}, "dataset_description": p.get("dataset"),
           "source": session.attrs.get("source"), "emulator_cycles": session.attrs.get("emulator_cycles"),
           "trials_recorded": sum(n for name, n in main.row_counts().items() if name != EPOCHS.name)}
    for role in ("deterministic", "stochastic"):
        if role in runs:
            out[f"{role}_accuracy"] = summarise(runs[role].table(EPOCHS.name))["test_accuracy"]
    return out


def _dw_results(run: Any, entry: dict[str, Any], tracks: dict[str, dict[str, Any]]) -> None:
    """A dw_programming run's fits: per track and state into ``tracks``, the pooled model into ``entry``."""
    fits = run.analysis(STATE_FITS_RESULT)
    if fits is None:
        return
    for row in fits:
        track = tracks.setdefault(row["device"].decode(), {"id": row["device"].decode(), "states": {}})
        track["run"] = run.name
        track["states"][int(row["state"])] = {
            "n": int(row["n"]), "level": float(row["level"]),
            "level_interval": [float(row["level_low"]), float(row["level_high"])],
            "sigma": float(row["sigma"]), "sigma_interval": [float(row["sigma_low"]), float(row["sigma_high"])],
            "sigma_spacing": float(row["sigma_spacing"]),
            "sigma_spacing_interval": [float(row["sigma_spacing_low"]), float(row["sigma_spacing_high"])],
            "conductance_s": float(row["conductance_s"]), "read_noise": float(row["read_noise"])}
    model = run.analysis(MODEL_RESULT)
    if model:
        entry["synapse_model"] = model


def session_info(path: str | Path) -> dict[str, Any]:
    """A JSON-ready description of a session: format, runs, devices with their fits and loop widths."""
    with Session(path) as session:
        attrs = session.attrs
        info: dict[str, Any] = {
            "path": str(path), "format": attrs.get("format"), "format_version": session.format_version,
            "software_version": attrs.get("software_version"), "created_utc": attrs.get("created_utc"),
            "kind": attrs.get("kind"), "emulated": bool(attrs.get("emulated", False)), "notes": attrs.get("notes", ""),
            "station": (attrs.get("station") or {}).get("name"), "attempts": attrs.get("attempts"), "runs": [],
        }
        devices = {d["id"]: {"id": d["id"], "width_m": d["width_m"], "fits": {}} for d in attrs.get("devices") or []}
        tracks: dict[str, dict[str, Any]] = {}  # DW tracks: their per-state fits (the latest run's)

        def device(name: str) -> dict[str, Any]:
            return devices.setdefault(name, {"id": name, "fits": {}})

        for run in session.runs:
            entry = _run_entry(run)
            info["runs"].append(entry)
            for name, fit in (run.analysis("fits") or {}).items():
                target = device(name)
                target["fits"].update({form: fit[form] for form in ("logistic", "neel_brown") if form in fit})
                target["n_trials"] = fit.get("n_trials")
            loops = run.analysis("loops")
            if loops is not None:
                for name, width in loop_width_by_device(loops).items():
                    device(name)["loop_width_a"] = width
                for name, interval in loop_width_intervals(run.table(STEPS.name)).items():
                    device(name).update(loop_width_interval_a=[interval["low_a"], interval["high_a"]],
                                        n_loops=interval["n_loops"])
            for name, values in (run.analysis("reset") or {}).items():
                device(name)["reset_success_rate"] = values["reset_success_rate"]
            for name, drift in (run.analysis("drift") or {}).items():
                device(name)["drift"] = drift
            for row in run.table("read_levels") if "read_levels" in run.table_names() else ():
                device(row["device"].decode())["read_levels_ohm"] = [float(row["low_ohm"]), float(row["high_ohm"])]
            resistances = run.analysis("channel_resistance") or {}
            for name, r_ch in resistances.items():
                device(name)["r_ch_ohm"] = r_ch
            if resistances:
                widths = {name: d["width_m"] for name, d in devices.items() if "width_m" in d}
                entry["by_width"] = width_statistics(resistances, widths, "r_ch_ohm")
            summary = run.analysis("summary")
            if summary and "by_width" in summary:
                entry["by_width"] = summary["by_width"]
            _dw_results(run, entry, tracks)
        info["devices"] = list(devices.values())
        if tracks:
            info["dw_tracks"] = list(tracks.values())
        training = _training(session)
        if training is not None:
            info["training"] = training
    return info


def format_info(info: dict[str, Any]) -> str:
    """The human-readable form of :func:`session_info`."""
    lines = [f"{info['path']}: {info['kind']} session, format {info['format']} v{info['format_version']}, "
             f"hil {info['software_version']}, created {info['created_utc']}, started {info.get('attempts')} "
             "time(s)"]
    if info.get("station"):
        lines.append(f"station: {info['station']}" + (" (emulated)" if info.get("emulated") else ""))
    for run in info["runs"]:
        records = ", ".join(f"{n} {table}" for table, n in run["records"].items())
        lines.append(f"run {run['name']}: {run['protocol']:18} {run['status']:11} {run['n_units_done']}/"
                     f"{run['n_units']} units, {run['n_trials']} trials ({records})"
                     + (f"  {run['error']}" if run.get("error") else ""))
        for device, reason in (run.get("lost_devices") or {}).items():
            lines.append(f"  lost {device}: {reason}")
        for error in run["instrument_errors"]:
            lines.append(f"  instrument error: {error.get('instrument')} ({error.get('model')}) {error.get('code')} "
                         f"\"{error.get('message')}\" at unit {error.get('unit')} (device {error.get('device')}), "
                         f"attempt {error.get('attempt')}")
        sweep = run.get("sweep")
        if sweep:
            lines.append(f"  sweep of {sweep['experiment']}: {sweep['ok']} points ok, {sweep['failed']} failed; "
                         "per value of each axis, the mean over the other axes and seeds [95 % interval]:")
            for axis, entry in (sweep.get("by_axis") or {}).items():
                for metric in sweep["metrics"]:
                    cells = [f"{value}: {mean:.4g} [{low:.4g}, {high:.4g}]" for value, mean, low, high in zip(
                        entry["values"], entry[metric]["mean"], entry[metric]["low"], entry[metric]["high"],
                        strict=True)]
                    lines.append(f"    {metric} vs {axis}: " + "; ".join(cells))
        model = run.get("synapse_model")
        if model and "levels" in model:
            lines.append(f"  synapse model ({len(model['tracks'])} tracks, {model['confidence'] * 100:g} % intervals, "
                         f"spacing {model['spacing']:.4f}, level variation {model['level_variation']:.4f} spacings):")
            for k, (level, sigma) in enumerate(zip(model["levels"], model["sigma"], strict=True)):
                (l_low, l_high), (s_low, s_high) = model["level_intervals"][k], model["sigma_intervals"][k]
                lines.append(f"    state {k}: level {level:+.4f} [{l_low:+.4f}, {l_high:+.4f}], sigma {sigma:.4f} "
                             f"[{s_low:.4f}, {s_high:.4f}] spacings, {model['n'][k]} programmings")
        elif model:
            lines.append(f"  synapse model: {model.get('error', 'not fitted')}")
        for row in run.get("by_width", []):
            parts = [f"  width {row['width_m'] * 1e6:4.1f} µm:"]
            if "i50_a_mean" in row:
                parts.append(f"I50 {row['i50_a_mean'] * 1e3:.4f} ± {row['i50_a_std'] * 1e3:.4f} mA,")
                parts.append(f"w_I {row['w_a_mean'] * 1e6:.2f} ± {row['w_a_std'] * 1e6:.2f} µA")
            if "r_ch_ohm_mean" in row:
                parts.append(f"R_ch {row['r_ch_ohm_mean']:.1f} ± {row['r_ch_ohm_std']:.1f} Ω "
                             f"({row['n_devices']} devices)")
            if "loop_width_a_mean" in row:
                parts.append(f"loop half-width {row['loop_width_a_mean'] * 1e3:.4f} ± "
                             f"{row['loop_width_a_std'] * 1e3:.4f} mA")
            lines.append(" ".join(parts))
    if any(d.get("fits") or "loop_width_a" in d or "r_ch_ohm" in d for d in info["devices"]):
        lines.append(f"{'device':10} {'width':>7} {'R_ch (Ω)':>9} {'I50 (mA)':>20} {'w_I (µA)':>16} "
                     f"{'loop half-width (mA)':>26}")
        for d in info["devices"]:
            logistic = d.get("fits", {}).get("logistic")
            i50 = f"{logistic['i50_a'] * 1e3:.4f} ± {logistic['i50_err_a'] * 1e3:.4f}" if logistic else "-"
            w = f"{logistic['w_a'] * 1e6:.2f} ± {logistic['w_err_a'] * 1e6:.2f}" if logistic else "-"
            loop = f"{d['loop_width_a'] * 1e3:.4f}" if "loop_width_a" in d else "-"
            if "loop_width_interval_a" in d:
                low, high = d["loop_width_interval_a"]
                loop += f" [{low * 1e3:.4f}, {high * 1e3:.4f}]"
            r_ch = f"{d['r_ch_ohm']:.1f}" if "r_ch_ohm" in d else "-"
            width = f"{d['width_m'] * 1e6:.1f}µm" if "width_m" in d else "?"
            lines.append(f"{d['id']:10} {width:>7} {r_ch:>9} {i50:>20} {w:>16} {loop:>26}")
    drifting = [d for d in info["devices"] if "drift" in d]
    if drifting:
        lines.append("drift from the reference points (I50 per hour of station time, 95 % interval):")
        for d in drifting:
            drift = d["drift"]
            if "i50_drift_a_per_hour" in drift:
                lines.append(f"  {d['id']:10} {drift['i50_drift_a_per_hour'] * 1e6:+.2f} µA/h "
                             f"[{drift['ci_low'] * 1e6:+.2f}, {drift['ci_high'] * 1e6:+.2f}] over "
                             f"{drift['n_points']} points, {drift['station_time_h'][-1] * 3600:.1f} s")
            else:
                lines.append(f"  {d['id']:10} no estimate: {drift.get('error', '')}")
    failing = [d for d in info["devices"] if d.get("reset_success_rate", 1.0) < 1.0]
    if failing:
        lines.append("failed resets (flagged, left out of the curves): " + ", ".join(
            f"{d['id']} {1 - d['reset_success_rate']:.2%}" for d in failing))
    if info.get("dw_tracks"):
        lines.append(f"{'DW track':10} {'state':>5} {'n':>5} {'level (weight)':>27} {'sigma / spacing':>24} "
                     f"{'G (mS)':>8}")
        for track in info["dw_tracks"]:
            for k, fit in sorted(track["states"].items()):
                low, high = fit["level_interval"]
                s_low, s_high = fit["sigma_spacing_interval"]
                lines.append(f"{track['id']:10} {k:>5} {fit['n']:>5} {fit['level']:+8.4f} [{low:+.4f}, {high:+.4f}] "
                             f"{fit['sigma_spacing']:7.4f} [{s_low:.4f}, {s_high:.4f}] "
                             f"{fit['conductance_s'] * 1e3:8.3f}")
    if "training" in info:
        t = info["training"]
        config = t.get("config") or {}
        lines.append(f"training: {t.get('backend')} backend on {t.get('dataset')}, hidden {config.get('hidden')}, "
                     f"{t.get('epochs_done')}/{config.get('epochs')} epochs ({t.get('status')}), "
                     f"seeds {t.get('seeds')}")
        accuracies = [f"test accuracy {t.get('test_accuracy', float('nan')):.4f}"]
        for name in ("deterministic", "stochastic"):
            if f"{name}_accuracy" in t:
                accuracies.append(f"{name} software baseline {t[f'{name}_accuracy']:.4f}")
        lines.append("  " + ", ".join(accuracies))
        lines.append(f"  {t.get('pulses')} device trials ({t.get('trials_recorded')} recorded), "
                     f"{t.get('energy_j', float('nan')):.4g} J, {t.get('seconds', float('nan')):.1f} s")
    return "\n".join(lines)
