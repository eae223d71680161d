"""Experiments of the sweep tests' own (``experiment: tests.sweep_experiments:NAME``), run in Ray workers."""

from __future__ import annotations

import os
import time
from pathlib import Path


def quadratic(settings: dict, seed: int) -> dict:
    """``value = x² + seed``; ``x < 0`` fails (an error of the experiment, not of the worker)."""
    x = float(settings["x"])
    if x < 0:
        raise ValueError(f"x must not be negative, got {x}")
    if "log" in settings:  # one line per computed point, to count how often each was computed
        with open(settings["log"], "a") as log:
            log.write(f"{x} {seed}\n")
    time.sleep(float(settings.get("sleep", 0.0)))
    return {"value": x * x + seed, "x": x}


def crash_once(settings: dict, seed: int) -> dict:
    """The worker process dies the first time a point runs (its marker file is absent), then it succeeds;
    a point with ``always: true`` kills its worker every time."""
    marker = Path(settings["markers"]) / f"{settings['x']}-{seed}"
    if settings.get("always") or not marker.exists():
        marker.touch()
        os._exit(1)
    return {"value": float(settings["x"])}
