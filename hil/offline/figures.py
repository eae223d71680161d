"""``hil report``: the figures and the text summary of a session.

A characterization gives P(I) per device (small multiples by width), the hysteresis loops, the size trends
with their power-law fits (:mod:`hil.offline.scaling`), the channel resistances and, for DW synapse tracks,
the per-state histograms of the realized weight with the fitted Gaussians; a training session gives its loss
and accuracy per epoch. PNG by default, PDF or SVG on request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hil.offline.plot_style import DeviceStyles, checked_format, natural_order, pyplot, save, state_colour, width_label
from hil.offline.scaling import Series, exponent_text, format_scaling, scaling
from hil.offline.summary import format_info, session_info
from hil.offline.sweep_figures import axis_figure, sweep_axes
from hil.outputs import check_outputs
from hil.session import Session
from hil.sweeps.sweep_run import POINTS, SweepRun
from hil.training.epoch_records import EPOCHS
from protocols.analysis import curves_by_device, fitted_logistic, loops_of, readable
from protocols.bias_sweep import BiasSweep
from protocols.dw_programming import STATE_FITS_RESULT, DWProgramming, programmings, weights_by_track
from protocols.fits import wilson_interval
from protocols.hysteresis_loop import STEPS, HysteresisLoop
from protocols.weight_distributions import NormalFit

FIGURES = ("switching_curves", "hysteresis_loops", "size_trends", "channel_resistance", "dw_states",
           "training_curves")
SUMMARY = "summary.txt"
TREND_PANELS = ("i50", "w_i", "loop")


def _small_multiples(plt: Any, styles: DeviceStyles, width: float = 4.2, height: float = 3.6) -> tuple[Any, Any]:
    n = max(len(styles.groups), 1)
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False, sharey=True)
    return fig, axes[0]


def _switching_curves(plt: Any, run: Any, styles: DeviceStyles) -> Any:
    fits = run.analysis("fits") or {}
    counts = curves_by_device(run.analysis("curves"))
    fig, axes = _small_multiples(plt, styles)
    for ax, (width, devices) in zip(axes, styles.groups.items(), strict=True):
        for device in devices:
            c = counts.get(device)
            if c is None:
                continue
            style = styles(device)
            low, high = wilson_interval(c.n_switched, c.n_trials)
            logistic = fitted_logistic(fits, device)
            label = device + (f": $I_{{50}}$ = {logistic.i50_a * 1e3:.3f} mA" if logistic else "")
            ax.errorbar(c.current_a * 1e3, c.p, yerr=np.clip([c.p - low, high - c.p], 0, None), fmt=style["marker"],
                        ms=3.5, color=style["color"], capsize=1.5, lw=0.8, label=label)
            if logistic is not None:
                grid = np.linspace(c.current_a.min(), c.current_a.max(), 200)
                ax.plot(grid * 1e3, logistic.probability(grid), color=style["color"], ls=style["linestyle"], lw=1.2)
        ax.set_title(f"W = {width_label(width)}")
        ax.set_xlabel("bias current I (mA)")
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("switching probability P")
    n = int(np.median([np.median(c.n_trials) for c in counts.values()])) if counts else 0
    fig.suptitle(f"P(I) per device: {n} trials per point, 95 % Wilson intervals, logistic ML fits")
    fig.tight_layout()
    return fig


def _hysteresis_loops(plt: Any, run: Any, styles: DeviceStyles, info: dict[str, Any]) -> Any:
    by_id = {d["id"]: d for d in info["devices"]}
    fig, axes = _small_multiples(plt, styles)
    panel = {device: ax for ax, devices in zip(axes, styles.groups.values(), strict=True) for device in devices}
    labelled: set[str] = set()
    for device, current, reading in loops_of(run.table(STEPS.name)):
        ax = panel.get(device)
        if ax is None:
            continue
        ok = readable(reading)
        style = styles(device)
        label = None
        if device not in labelled:
            labelled.add(device)
            loop = by_id.get(device, {}).get("loop_width_a")
            label = device + (f": $I_\\mathrm{{loop}}$ = {loop * 1e3:.2f} mA" if loop is not None else "")
        ax.plot(current[ok] * 1e3, reading[ok], color=style["color"], ls=style["linestyle"], lw=1.1, label=label)
    for ax, width in zip(axes, styles.groups, strict=True):
        ax.set_title(f"W = {width_label(width)}")
        ax.set_xlabel("DC current I (mA)")
        ax.axvline(0, color="0.8", lw=0.6)
        ax.legend(fontsize=7, loc="center left")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Hall resistance $R_{xy}$ (Ω)")
    fig.suptitle("Current-induced switching loops ($-I_\\max \\to +I_\\max \\to -I_\\max$); "
                 "$I_\\mathrm{loop}$: loop half-width")
    fig.tight_layout()
    return fig


def _trend_panel(ax: Any, series: Series, styles: DeviceStyles) -> None:
    q = series.quantity
    for device, w, v, lo, hi in zip(series.devices, series.width_m, series.value, series.low, series.high,
                                    strict=True):
        style = styles(device)
        ax.errorbar([w * 1e6 * styles.offset(device)], [v / q.scale], yerr=[[(v - lo) / q.scale], [(hi - v) / q.scale]],
                    fmt=style["marker"], color=style["color"], ms=4, capsize=2, lw=0.8)
    fit = series.fit
    if fit is not None:
        grid = np.geomspace(series.width_m.min() / 1.15, series.width_m.max() * 1.15, 100)
        low, high = fit.band(grid)
        ax.fill_between(grid * 1e6, low / q.scale, high / q.scale, color="0.6", alpha=0.3, lw=0,
                        label=f"{fit.confidence * 100:g} % band of the fit")
        ax.plot(grid * 1e6, fit.value(grid) / q.scale, "k-", lw=1, label=f"{q.tex} ∝ $W^\\alpha$")
    ax.text(0.04, 0.96, exponent_text(series), transform=ax.transAxes, va="top", fontsize=9,
            bbox={"boxstyle": "round", "fc": "white", "ec": "0.7"})
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("device width W (µm)")
    ax.set_ylabel(f"{q.tex} ({q.unit})")
    ax.set_title(q.title)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3, which="both")


def _plain_log_axes(ax: Any, widths_m: np.ndarray) -> None:
    """Log axes labelled in plain numbers: the widths measured on x, ``2``, ``3``... (not ``3×10⁰``) on y."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ticks = sorted({float(w) * 1e6 for w in widths_m})
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.tick_params(axis="y", which="minor", labelsize=7)


def _device_legend(fig: Any, styles: DeviceStyles, devices: list[str]) -> None:
    handles = [fig.axes[0].errorbar([], [], fmt=styles(d)["marker"], color=styles(d)["color"], ms=4)
               for d in devices]
    fig.legend(handles, devices, loc="center right", fontsize=7, title="device", title_fontsize=8)


def _size_trends(plt: Any, trends: dict[str, Series], styles: DeviceStyles) -> Any:
    keys = [k for k in TREND_PANELS if k in trends]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.4 * len(keys), 4.0), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        _trend_panel(ax, trends[key], styles)
        _plain_log_axes(ax, trends[key].width_m)
    notes = []
    if "i50" in trends or "w_i" in trends:
        notes.append("I50, w_I: logistic ML fit ± 1 s.e.")
    if "loop" in trends:
        notes.append("I_loop: mean over loops, interval widened by one current step")
    fig.suptitle("Size trends, one point per device" + (f" ({'; '.join(notes)})" if notes else ""), fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.91, 1))
    _device_legend(fig, styles, trends[keys[0]].devices)
    return fig


def _channel_resistance(plt: Any, series: Series, styles: DeviceStyles) -> Any:
    fig, ax = plt.subplots(figsize=(6.2, 4.2))
    _trend_panel(ax, series, styles)
    for width in np.unique(series.width_m):
        values = series.value[series.width_m == width]
        spread = values.std(ddof=1) if values.size > 1 else 0.0
        ax.errorbar([width * 1e6 * 1.12], [values.mean()], yerr=[spread], fmt="_", ms=12, color="k", capsize=3,
                    lw=1.2)
    ax.plot([], [], "k_", ms=10, label="mean ± sample std per width")
    ax.legend(fontsize=7, loc="lower left")
    _plain_log_axes(ax, series.width_m)
    ax.set_title("channel resistance per device (two-wire)")
    fig.tight_layout(rect=(0, 0, 0.82, 1))
    _device_legend(fig, styles, series.devices)
    return fig


def _dw_states(plt: Any, run: Any) -> Any:
    """Per DW track, the histogram of the realized weight of every state with its fitted Gaussian."""
    by_track = weights_by_track(programmings(run.tables()))
    fits = {(row["device"].decode(), int(row["state"])): row for row in run.analysis(STATE_FITS_RESULT)}
    tracks = natural_order(by_track)
    columns = min(len(tracks), 2)
    rows = -(-len(tracks) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.6 * columns, 4.0 * rows), squeeze=False, sharex=True)
    every = np.concatenate([w for states in by_track.values() for w in states.values()])
    bins = np.linspace(every.min(), every.max(), 61)
    grid = np.linspace(bins[0], bins[-1], 400)
    confidence = float(run.parameters.get("confidence", 0.95))
    for ax, track in zip(axes.flat, tracks, strict=False):
        states = by_track[track]
        for k, weights in sorted(states.items()):
            colour = state_colour(k, len(states))
            ax.hist(weights, bins=bins, color=colour, alpha=0.45, lw=0)
            row = fits.get((track, k))
            if row is None:
                continue
            fit = NormalFit(int(row["n"]), row["level"], row["level_low"], row["level_high"], row["sigma"],
                            row["sigma_low"], row["sigma_high"], confidence)
            ax.plot(grid, fit.density(grid) * fit.n * (bins[1] - bins[0]), color=colour, lw=1.3,
                    label=f"{k}: {fit.mean:+.3f}, σ/s {row['sigma_spacing']:.3f} "
                          f"[{row['sigma_spacing_low']:.3f}, {row['sigma_spacing_high']:.3f}]")
        ax.set_ylim(0, ax.get_ylim()[1] * 1.7)  # room for the legend above the peaks
        ax.set_title(f"DW track {track}")
        ax.set_xlabel("realized weight w")
        ax.legend(fontsize=6.5, loc="upper center", title="state: level, σ/spacing", title_fontsize=7)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(tracks):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("programmings")
    n = int(np.median([len(w) for states in by_track.values() for w in states.values()]))
    fig.suptitle(f"Realized weight per programmed state: {n} programmings each, fitted Gaussians\n"
                 f"({confidence * 100:g} % χ² intervals of σ in units of the spacing s)", fontsize=10)
    fig.tight_layout()
    return fig


def _training_curves(plt: Any, runs: dict[str, np.ndarray]) -> Any:
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    colours = {"hil": "tab:blue", "deterministic": "tab:green", "stochastic": "tab:orange"}
    for role, epochs in runs.items():
        colour = colours.get(role, "k")
        label = "devices in the loop" if role == "hil" else f"{role} software baseline"
        loss_ax.plot(epochs["epoch"], epochs["loss"], "o-", color=colour, ms=3, label=label)
        acc_ax.plot(epochs["epoch"], epochs["train_accuracy"], "--", color=colour, lw=1, label=f"{label}, train")
        tested = np.isfinite(epochs["test_accuracy"])
        acc_ax.plot(epochs["epoch"][tested], epochs["test_accuracy"][tested], "o-", color=colour, ms=3,
                    label=f"{label}, test")
    loss_ax.set_ylabel("training loss (cross-entropy)")
    acc_ax.set_ylabel("accuracy")
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle("Training: loss and accuracy per epoch")
    fig.tight_layout()
    return fig


def write_report(path: str | Path, out_dir: str | Path, force: bool = False, fmt: str = "png") -> list[Path]:
    """The figures (``fmt``: png, pdf or svg) and ``summary.txt`` of a session into ``out_dir``; existing files
    are replaced only with ``force``."""
    checked_format(fmt)
    plt = pyplot()
    out_dir = Path(out_dir)
    info = session_info(path)
    trends = scaling(info)
    styles = DeviceStyles({d["id"]: d["width_m"] for d in info["devices"] if d.get("width_m")})
    with Session(path) as session:
        sweeps = [run for run in session.runs_of(BiasSweep.name) if run.analysis("curves") is not None]
        loops = list(session.runs_of(HysteresisLoop.name))
        programmed = [run for run in session.runs_of(DWProgramming.name) if run.analysis(STATE_FITS_RESULT) is not None
                      and run.analysis(STATE_FITS_RESULT).size]
        training = {run.parameters.get("role", ""): run.table(EPOCHS.name) for run in session.runs_of("training")}
        training = {role: epochs for role, epochs in training.items() if epochs.size}
        draw = {
            "switching_curves": (lambda: _switching_curves(plt, sweeps[-1], styles)) if sweeps else None,
            "hysteresis_loops": (lambda: _hysteresis_loops(plt, loops[-1], styles, info)) if loops else None,
            "size_trends": ((lambda: _size_trends(plt, trends, styles))
                            if any(k in trends for k in TREND_PANELS) else None),
            "channel_resistance": (lambda: _channel_resistance(plt, trends["r_ch"], styles)) if "r_ch" in trends
            else None,
            "dw_states": (lambda: _dw_states(plt, programmed[-1])) if programmed else None,
            "training_curves": (lambda: _training_curves(plt, training)) if training else None,
        }
        swept = [run for run in session.runs_of(SweepRun.name) if run.table(POINTS).size]
        names = [name for name in FIGURES if draw[name] is not None]
        if swept:  # a sweep: every metric against every swept axis
            rows, axes = swept[-1].table(POINTS), sweep_axes(swept[-1])
            metrics = [n.removeprefix("metric_") for n in rows.dtype.names if n.startswith("metric_")]
            title = (swept[-1].parameters.get("spec") or {}).get("name", "sweep")
            for axis in axes:
                draw[f"sweep_{axis}"] = lambda axis=axis: axis_figure(plt, rows, axis, axes, metrics, title)
                names.append(f"sweep_{axis}")
        planned = [out_dir / f"{name}.{fmt}" for name in names]
        check_outputs([*planned, out_dir / SUMMARY], force)
        out_dir.mkdir(parents=True, exist_ok=True)
        written = [save(draw[p.stem](), p) for p in planned]
    summary = out_dir / SUMMARY
    summary.write_text("\n\n".join(part for part in (format_info(info), format_scaling(trends)) if part) + "\n")
    return [*written, summary]
