"""Timing helpers and the row format shared by all benchmark entries."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass


@dataclass
class Row:
    """One benchmark result. ``ratio = value / reference`` when there is a reference.

    ``spread``: ``{"min", "median", "max"}`` over the interleaved repetitions, of the ratio when there is a
    reference (each repetition's value over the reference measured beside it), else of the value.
    """

    name: str
    value: float
    unit: str
    reference: float | None = None
    ratio: float | None = None
    note: str = ""
    spread: dict[str, float] | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def spread_of(values: list[float]) -> dict[str, float]:
    """``{"min", "median", "max"}`` of ``values``."""
    ordered = sorted(values)
    return {"min": ordered[0], "median": statistics.median(ordered), "max": ordered[-1]}


def interleaved_times(fns: dict[str, Callable[[], object]], repeats: int = 7,
                      warmup: int = 1) -> dict[str, list[float]]:
    """Wall times in s of every repetition of several functions measured in alternation (the order rotates
    each repetition, so load changes and caches hit all alike)."""
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    gc.collect()
    times: dict[str, list[float]] = {name: [] for name in names}
    for k in range(repeats):
        for name in names[k % len(names):] + names[:k % len(names)]:
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return times


def ratio_row(name: str, times: dict[str, list[float]], measured: str, reference: str, unit: str = "s",
              scale: float = 1.0, note: str = "", per_time: bool = False) -> Row:
    """A row of ``measured`` against ``reference`` from :func:`interleaved_times`: value and reference are the
    medians (times ``scale``, or ``scale / time`` with ``per_time``, e.g. items per second), the ratio is the
    median of the repetitions' own ratios and the spread their min/median/max."""
    convert = (lambda t: scale / t) if per_time else (lambda t: scale * t)
    values = [convert(t) for t in times[measured]]
    references = [convert(t) for t in times[reference]]
    ratios = [v / r for v, r in zip(values, references, strict=True)]
    spread = spread_of(ratios)
    return Row(name, statistics.median(values), unit, statistics.median(references), spread["median"], note, spread)


def value_row(name: str, values: list[float], unit: str, note: str = "") -> Row:
    """A row without a reference: the median of ``values`` (one per repetition or seed) and their spread."""
    return Row(name, statistics.median(values), unit, note=note, spread=spread_of(values))

