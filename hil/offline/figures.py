"""``hil report``: PNG figures and a text summary of a characterization session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hil.offline.summary import format_info, session_info
from hil.outputs import check_outputs
from hil.session import Session
from protocols.analysis import curves_by_device, fitted_logistic, loops_of
from protocols.bias_sweep import BiasSweep
from protocols.fits import wilson_interval
from protocols.hysteresis_loop import STEPS, HysteresisLoop

WIDTH_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
FIGURES = ("switching_curves.png", "hysteresis_loops.png", "size_trends.png", "summary.txt")


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


def write_report(path: str | Path, out_dir: str | Path, force: bool = False) -> list[Path]:
    """PNG figures and a text summary of a characterization session into ``out_dir`` (existing files are
    replaced only with ``force``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    info = session_info(path)
    check_outputs([out_dir / name for name in FIGURES], force)
    out_dir.mkdir(parents=True, exist_ok=True)
    widths = {d["id"]: d.get("width_m", 0.0) for d in info["devices"]}
    distinct = sorted({w for w in widths.values() if w})
    colour = {w: WIDTH_COLOURS[i % len(WIDTH_COLOURS)] for i, w in enumerate(distinct)}
    written: list[Path] = []
    with Session(path) as session:
        sweeps = [run for run in session.runs_of(BiasSweep.name) if run.analysis("curves") is not None]
        loops_runs = list(session.runs_of(HysteresisLoop.name))
        if sweeps:
            run = sweeps[-1]
            fits = run.analysis("fits") or {}
            fig, ax = plt.subplots(figsize=(8, 5))
            for name, counts in curves_by_device(run.analysis("curves")).items():
                c = colour.get(widths.get(name), "k")
                low, high = wilson_interval(counts.n_switched, counts.n_trials)
                p = counts.p
                ax.errorbar(counts.current_a * 1e3, p, yerr=np.clip([p - low, high - p], 0, None), fmt="o", ms=3,
                            color=c, alpha=0.8, capsize=1.5)
                logistic = fitted_logistic(fits, name)
                if logistic is not None:
                    grid = np.linspace(counts.current_a.min(), counts.current_a.max(), 200)
                    ax.plot(grid * 1e3, logistic.probability(grid), color=c, lw=1)
            written.append(_save_by_width(plt, fig, ax, colour, "o-", "bias current (mA)", "switching probability",
                                          "P(I) per device: 95 % Wilson intervals, logistic ML fits",
                                          out_dir / "switching_curves.png"))
        if loops_runs:
            fig, ax = plt.subplots(figsize=(8, 5))
            for name, current, reading in loops_of(loops_runs[-1].table(STEPS.name)):
                finite = np.isfinite(reading) & (np.abs(reading) < 1e30)
                ax.plot(current[finite] * 1e3, reading[finite], "-", lw=1, color=colour.get(widths.get(name), "k"),
                        alpha=0.8)
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
