"""``hil info`` and ``hil report``: what a session holds, as text, JSON and PNG figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hil.session import Session

WIDTH_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def session_info(path: str | Path) -> dict[str, Any]:
    """A JSON-ready description of a session: format, runs, devices with their fits and loop widths."""
    with Session(path) as session:
        attrs = session.attrs
        info: dict[str, Any] = {
            "path": str(path),
            "format": attrs.get("format"),
            "format_version": session.format_version,
            "software_version": attrs.get("software_version"),
            "created_utc": attrs.get("created_utc"),
            "kind": attrs.get("kind"),
            "emulated": bool(attrs.get("emulated", False)),
            "notes": attrs.get("notes", ""),
            "station": (attrs.get("station") or {}).get("name"),
            "runs": [],
        }
        devices = {d["id"]: {"id": d["id"], "width_m": d["width_m"], "fits": {}}
                   for d in attrs.get("devices") or []}
        for run in session.runs:
            trials = run.table("trials")
            steps = run.table("steps")
            entry = {"name": run.name, "protocol": run.protocol, "status": run.status,
                     "n_trials": int(trials.size), "n_steps": int(steps.size),
                     "started_utc": run.attrs.get("started_utc"), "finished_utc": run.attrs.get("finished_utc"),
                     "error": run.attrs.get("error", "")}
            if run.status == "running":
                entry["note"] = "not finished: the process stopped while measuring; continue with --resume"
            info["runs"].append(entry)
            fits = run.analysis("fits") or {}
            for device, fit in fits.items():
                target = devices.setdefault(device, {"id": device, "fits": {}})
                for form in ("logistic", "neel_brown"):
                    if form in fit:
                        target["fits"][form] = fit[form]
                target["n_trials"] = fit.get("n_trials")
            loops = run.analysis("loops")
            if loops is not None:
                for row in loops:
                    target = devices.setdefault(_text(row["device"]), {"id": _text(row["device"]), "fits": {}})
                    target["loop_width_a"] = float(row["loop_width_a"])
            reset = run.analysis("reset") or {}
            for device, values in reset.items():
                devices.setdefault(device, {"id": device, "fits": {}})["reset_success_rate"] = \
                    values["reset_success_rate"]
            summary = run.analysis("summary")
            if summary:
                entry["by_width"] = summary.get("by_width", [])
        info["devices"] = list(devices.values())
        training = session.group("training")
        if training is not None:
            info["training"] = {k: v for k, v in training.attrs.items()}
    return info


def format_info(info: dict[str, Any]) -> str:
    """The human-readable form of :func:`session_info`."""
    lines = [f"{info['path']}: {info['kind']} session, format {info['format']} v{info['format_version']}, "
             f"hil {info['software_version']}, created {info['created_utc']}"]
    if info.get("station"):
        lines.append(f"station: {info['station']}" + (" (emulated)" if info.get("emulated") else ""))
    for run in info["runs"]:
        lines.append(f"run {run['name']}: {run['protocol']:16} {run['status']:11} {run['n_trials']:8d} trials "
                     f"{run['n_steps']:6d} steps" + (f"  {run['error']}" if run.get("error") else ""))
        for row in run.get("by_width", []):
            parts = [f"  width {row['width_m'] * 1e6:4.1f} um:"]
            if "i50_a_mean" in row:
                parts.append(f"I50 {row['i50_a_mean'] * 1e3:.4f} ± {row['i50_a_std'] * 1e3:.4f} mA,")
                parts.append(f"w_I {row['w_a_mean'] * 1e6:.2f} ± {row['w_a_std'] * 1e6:.2f} uA")
            if "loop_width_a_mean" in row:
                parts.append(f"loop half-width {row['loop_width_a_mean'] * 1e3:.4f} ± "
                             f"{row['loop_width_a_std'] * 1e3:.4f} mA")
            lines.append(" ".join(parts))
    if any(d.get("fits") or "loop_width_a" in d for d in info["devices"]):
        lines.append(f"{'device':10} {'width':>7} {'I50 (mA)':>20} {'w_I (uA)':>16} {'loop (mA)':>10}")
        for device in info["devices"]:
            logistic = device.get("fits", {}).get("logistic")
            i50 = f"{logistic['i50_a'] * 1e3:.4f} ± {logistic['i50_err_a'] * 1e3:.4f}" if logistic else "-"
            w = f"{logistic['w_a'] * 1e6:.2f} ± {logistic['w_err_a'] * 1e6:.2f}" if logistic else "-"
            loop = f"{device['loop_width_a'] * 1e3:.4f}" if "loop_width_a" in device else "-"
            width = f"{device['width_m'] * 1e6:.1f}um" if "width_m" in device else "?"
            lines.append(f"{device['id']:10} {width:>7} {i50:>20} {w:>16} {loop:>10}")
    if "training" in info:
        t = info["training"]
        config = t.get("config", {})
        lines.append(f"training: {t.get('backend')} backend on {t.get('dataset')}, hidden {config.get('hidden')}, "
                     f"{config.get('epochs')} epochs, seeds {t.get('seeds')}")
        accuracies = [f"test accuracy {t.get('test_accuracy', float('nan')):.4f}"]
        for name in ("deterministic", "stochastic"):
            if f"{name}_accuracy" in t:
                accuracies.append(f"{name} software baseline {t[f'{name}_accuracy']:.4f}")
        lines.append("  " + ", ".join(accuracies))
        lines.append(f"  {t.get('pulses')} device trials, {t.get('energy_j', float('nan')):.4g} J, "
                     f"{t.get('seconds', float('nan')):.1f} s")
    return "\n".join(lines)


def _save_by_width(plt: Any, fig: Any, ax: Any, colour: dict[float, str], style: str, xlabel: str, ylabel: str,
                   title: str, path: Path) -> Path:
    """Label a figure whose curves are coloured by device width, save it as PNG and close it."""
    for width, c in colour.items():
        ax.plot([], [], style, color=c, label=f"{width * 1e6:g} um")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(title="device width")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(path: str | Path, out_dir: str | Path) -> list[Path]:
    """PNG figures and a text summary of a characterization session into ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import special

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = session_info(path)
    widths = {d["id"]: d.get("width_m", 0.0) for d in info["devices"]}
    distinct = sorted({w for w in widths.values() if w})
    colour = {w: WIDTH_COLOURS[i % len(WIDTH_COLOURS)] for i, w in enumerate(distinct)}
    written: list[Path] = []
    with Session(path) as session:
        sweeps = [run for run in session.runs_of("bias_sweep") if run.analysis("curves") is not None]
        loops_runs = [run for run in session.runs_of("hysteresis_loop")]
        if sweeps:
            run = sweeps[-1]
            curves, fits = run.analysis("curves"), run.analysis("fits") or {}
            fig, ax = plt.subplots(figsize=(8, 5))
            for device in np.unique(curves["device"]):
                name = _text(device)
                rows = curves[curves["device"] == device]
                c = colour.get(widths.get(name), "k")
                ax.errorbar(rows["amplitude_a"] * 1e3, rows["p"],
                            yerr=np.clip([rows["p"] - rows["ci_low"], rows["ci_high"] - rows["p"]], 0, None),
                            fmt="o", ms=3, color=c, alpha=0.8, capsize=1.5)
                logistic = fits.get(name, {}).get("logistic")
                if logistic:
                    grid = np.linspace(rows["amplitude_a"].min(), rows["amplitude_a"].max(), 200)
                    ax.plot(grid * 1e3, special.expit((grid - logistic["i50_a"]) / logistic["w_a"]), color=c, lw=1)
            written.append(_save_by_width(plt, fig, ax, colour, "o-", "bias current (mA)", "switching probability",
                                          "P(I) per device: 95 % Wilson intervals, logistic ML fits",
                                          out_dir / "switching_curves.png"))
        if loops_runs:
            fig, ax = plt.subplots(figsize=(8, 5))
            steps = loops_runs[-1].table("steps")
            for unit in np.unique(steps["unit"]):
                rows = np.sort(steps[steps["unit"] == unit], order="step")
                name = _text(rows["device"][0])
                finite = np.isfinite(rows["reading_ohm"]) & (np.abs(rows["reading_ohm"]) < 1e30)
                ax.plot(rows["current_a"][finite] * 1e3, rows["reading_ohm"][finite], "-", lw=1,
                        color=colour.get(widths.get(name), "k"), alpha=0.8)
            written.append(_save_by_width(plt, fig, ax, colour, "-", "DC current (mA)", "R_xy (ohm)",
                                          "Current hysteresis loops", out_dir / "hysteresis_loops.png"))
    trend = [(d["width_m"], d["fits"]["logistic"], d.get("loop_width_a")) for d in info["devices"]
             if d.get("fits", {}).get("logistic") and d.get("width_m")]
    loops_only = [(d["width_m"], d["loop_width_a"]) for d in info["devices"]
                  if "loop_width_a" in d and d.get("width_m")]
    if trend or loops_only:
        fig, axes = plt.subplots(1, 3, figsize=(12, 4))
        if trend:
            w = np.array([t[0] for t in trend]) * 1e6
            axes[0].errorbar(w, [t[1]["i50_a"] * 1e3 for t in trend], yerr=[t[1]["i50_err_a"] * 1e3 for t in trend],
                             fmt="o")
            axes[1].errorbar(w, [1e-3 / t[1]["w_a"] for t in trend],
                             yerr=[1e-3 * t[1]["w_err_a"] / t[1]["w_a"] ** 2 for t in trend], fmt="o")
        if loops_only:
            axes[2].plot([x[0] * 1e6 for x in loops_only], [x[1] * 1e3 for x in loops_only], "o")
        for ax, label in zip(axes, ("I50 (mA)", "slope 1/w_I (1/mA)", "loop half-width (mA)"), strict=True):
            ax.set_xlabel("device width (um)")
            ax.set_ylabel(label)
        fig.suptitle("Size trends: narrower devices switch at lower current, more steeply, with narrower loops")
        fig.tight_layout()
        written.append(out_dir / "size_trends.png")
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)
    summary = out_dir / "summary.txt"
    summary.write_text(format_info(info) + "\n")
    written.append(summary)
    return written
