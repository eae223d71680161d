"""The figures of a sweep session: every metric against every swept axis, with intervals over the seeds."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from hil.sweeps.sweep_run import OK, POINTS
from protocols.fits import mean_interval

MAX_LINES = 8  # more combinations of the other axes than this: pooled into one line
UNITS = {"width": ("um", 1e6), "bias_error": ("uA", 1e6), "pulse_width": ("us", 1e6)}


def _label(axis: str) -> tuple[str, float]:
    unit, scale = UNITS.get(axis, ("", 1.0))
    return (f"{axis} ({unit})" if unit else axis), scale


def _decoded(values: np.ndarray) -> list[Any]:
    return [v.decode() if isinstance(v, bytes) else v for v in values.tolist()]


def sweep_axes(run: Any) -> list[str]:
    """The swept axes of a sweep run (its ``points`` table's ``axis_*`` columns)."""
    return [name.removeprefix("axis_") for name in run.table(POINTS).dtype.names if name.startswith("axis_")]


def axis_figure(plt: Any, rows: np.ndarray, axis: str, axes: Sequence[str], metrics: Sequence[str],
                title: str) -> Any:
    """One panel per metric: the metric against ``axis`` (mean over seeds, 95 % t interval), one line per
    combination of the other axes' values."""
    ok = rows[rows["status"] == OK]
    others = [a for a in axes if a != axis]
    combos = sorted({tuple(_decoded(np.array([r[f"axis_{a}"] for a in others], dtype=object))) for r in ok})
    pooled = len(combos) > MAX_LINES
    if pooled or not others:
        combos = [()]
    fig, panels = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.8), squeeze=False)
    label, scale = _label(axis)
    column = ok[f"axis_{axis}"]
    numeric = column.dtype.kind == "f"
    values = sorted(set(column.tolist()))
    positions = {v: (v * scale if numeric else i) for i, v in enumerate(values)}
    for panel, metric in zip(panels[0], metrics, strict=True):
        for combo, marker in zip(combos, itertools.cycle("osD^vP*X"), strict=False):
            chosen = ok
            for other, value in zip(others if combo else [], combo, strict=True):
                cell = chosen[f"axis_{other}"]
                chosen = chosen[np.array(_decoded(cell), dtype=object) == value]
            xs, means, errors = [], [], [[], []]
            for value in values:
                picked = [float(m) for m in chosen[f"metric_{metric}"][chosen[f"axis_{axis}"] == value]
                          if math.isfinite(float(m))]
                if not picked:
                    continue
                mean, low, high = mean_interval(picked)
                xs.append(positions[value])
                means.append(mean)
                errors[0].append(mean - low)
                errors[1].append(high - mean)
            name = ", ".join(f"{o}={_short(v, o)}" for o, v in zip(others, combo, strict=True)) if combo else \
                ("all points (other axes pooled)" if pooled else None)
            panel.errorbar(xs, means, yerr=errors, marker=marker, capsize=3, label=name)
        panel.set_xlabel(label)
        panel.set_ylabel(metric)
        if numeric and len(values) > 2 and min(values) > 0 and max(values) / min(values) > 20:
            panel.set_xscale("log")
        if not numeric:
            panel.set_xticks(range(len(values)), [v.decode() if isinstance(v, bytes) else str(v) for v in values])
        panel.grid(alpha=0.3)
        if panel is panels[0][0] and (len(combos) > 1 or pooled):
            panel.legend(fontsize=7)
    fig.suptitle(f"{title}: metrics vs {axis} (mean over seeds, 95 % interval)")
    fig.tight_layout()
    return fig


def _short(value: Any, axis: str) -> str:
    unit, scale = UNITS.get(axis, ("", 1.0))
    return f"{value * scale:g}{' ' + unit if unit else ''}" if isinstance(value, float) else str(value)
