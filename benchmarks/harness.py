"""Timing helpers and the row format shared by all benchmark entries."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass


@dataclass
class Row:
    """One benchmark result. ``ratio = value / reference`` when there is a reference."""

    name: str
    value: float
    unit: str
    reference: float | None = None
    ratio: float | None = None
    note: str = ""

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def best_time(fn: Callable[[], object], repeats: int = 7, warmup: int = 2) -> float:
    """Best wall time in s of ``repeats`` calls (after ``warmup`` calls): the least disturbed run."""
    for _ in range(warmup):
        fn()
    gc.collect()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def interleaved_best_times(fns: dict[str, Callable[[], object]], repeats: int = 7,
                           warmup: int = 2) -> dict[str, float]:
    """Best times of several functions measured in alternation, so load changes hit all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    gc.collect()
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best
