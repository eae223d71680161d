"""Progress of long work: trials (or units) done, rate, time left.

- :class:`ProgressSink` follows the run engine's document stream: on a terminal a progress bar; off a
  terminal (a log file, nohup, CI) a plain line every :data:`LOG_EVERY_S` seconds and one at the end, so
  that long work is never silent.
- :class:`StepBar` follows a training run step by step on a terminal: steps, loss, accuracy, time left.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

import numpy as np
from tqdm import tqdm

from protocols.engine import BaseSink, RunStart, RunStop, Unit

LOG_EVERY_S = 30.0


def duration(seconds: float) -> str:
    """``"45 s"``, ``"12 min"``, ``"3.2 h"``."""
    if not np.isfinite(seconds):
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class ProgressSink(BaseSink):
    """Shows how far a run is (see the module docstring). ``enabled``: ``None`` shows it on a terminal
    as a bar and elsewhere as periodic lines; ``False`` shows nothing."""

    def __init__(self, enabled: bool | None = None, stream: TextIO | None = None,
                 log_every_s: float = LOG_EVERY_S) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.bar_mode = self.stream.isatty() if enabled is None else bool(enabled)
        self.log_every_s = log_every_s
        self.bar: tqdm | None = None
        self.name = ""
        self.by_trials = True
        self.total = self.done = self.start_done = 0
        self.started = self.last_line = 0.0

    def start(self, run: RunStart) -> None:
        self.name = run.name
        total_trials = run.n_planned_trials
        self.by_trials = total_trials > 0
        self.total = total_trials if self.by_trials else len(run.units)
        self.done = self.start_done = sum(u.n_trials if self.by_trials else 1 for u in run.units
                                          if u.index in run.done)
        self.started = self.last_line = time.monotonic()
        if self.enabled is False:
            return
        if self.bar_mode:
            self.bar = tqdm(total=self.total, initial=self.done, desc=run.name, unit="trial" if self.by_trials
                            else "unit", file=self.stream, dynamic_ncols=True, smoothing=0.1)
        elif self.done:
            self._line(f"resuming at {self._fraction()}")

    def records(self, unit: Unit, tables: Mapping[str, np.ndarray], state: bytes | None) -> None:
        step = unit.n_trials if self.by_trials else 1
        self.done += step
        if self.bar is not None:
            self.bar.update(step)
        elif self.enabled is not False and time.monotonic() - self.last_line >= self.log_every_s:
            self._line(self._status())

    def stop(self, stop: RunStop) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(stop.status)
            self.bar.close()
            self.bar = None
        elif self.enabled is not False:
            self._line(f"{stop.status}: {self._fraction()} in {duration(time.monotonic() - self.started)}")

    def _fraction(self) -> str:
        what = "trials" if self.by_trials else "units"
        percent = 100 * self.done / self.total if self.total else 100.0
        return f"{self.done:,}/{self.total:,} {what} ({percent:.0f} %)"

    def _status(self) -> str:
        elapsed = time.monotonic() - self.started
        rate = (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        what = "trials" if self.by_trials else "units"
        return f"{self._fraction()}, {rate:,.0f} {what}/s, about {duration(left)} left"

    def _line(self, text: str) -> None:
        self.last_line = time.monotonic()
        print(f"{self.name}: {text}", file=self.stream, flush=True)


class StepBar:
    """A progress bar per training epoch (steps, loss, accuracy, time left); a trainer's progress callback.

    ``enabled``: ``None`` shows it on a terminal only.
    """

    def __init__(self, enabled: bool | None = None, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else bool(enabled)
        self.bar: tqdm | None = None
        self._key: tuple[str, int] | None = None

    def __call__(self, progress: Any) -> None:
        if not self.enabled:
            return
        key = (progress.run, progress.epoch)
        if key != self._key:
            self.close()
            self.bar = tqdm(total=progress.steps, desc=f"{progress.run} epoch {progress.epoch}/{progress.epochs}",
                            unit="step", file=self.stream, leave=False)
            self._key = key
        assert self.bar is not None
        self.bar.n = progress.step
        postfix = {"loss": f"{progress.loss:.3f}", "acc": f"{progress.accuracy:.3f}"}
        if progress.metrics is not None and progress.metrics.test_accuracy is not None:
            postfix["test"] = f"{progress.metrics.test_accuracy:.3f}"
        self.bar.set_postfix(postfix, refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
