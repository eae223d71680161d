"""Sinks for the run engine's record stream: the HDF5 session, and a progress bar."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from hil.session import RunWriter, SessionWriter
from protocols.engine import Unit


class SessionSink:
    """Writes one protocol run into a session: one chunk (flushed) per measured unit."""

    def __init__(self, session: SessionWriter, run: RunWriter | None = None, **run_attrs: Any) -> None:
        self.session = session
        self.run = run
        self.run_attrs = run_attrs

    def start(self, protocol: str, parameters: dict[str, Any], units: Sequence[Unit]) -> None:
        if self.run is None:
            self.run = self.session.start_run(protocol, parameters, n_units=len(units),
                                              n_planned_trials=int(sum(u.n_trials for u in units)), **self.run_attrs)
        else:
            self.run.set_attrs(status="running", resumed_utc=time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    def records(self, unit: Unit, tables: dict[str, np.ndarray]) -> None:
        assert self.run is not None
        for name, rows in tables.items():
            self.run.append(name, rows)

    def stop(self, status: str, error: str = "") -> None:
        if self.run is not None:
            self.run.finish(status, error)

    def done_units(self) -> set[int]:
        """Units already recorded (a resumed run skips them)."""
        if self.run is None:
            return set()
        done: set[int] = set()
        for name in ("trials", "steps", "resistance"):
            table = self.run.table(name)
            if table.size:
                done.update(int(u) for u in np.unique(table["unit"]))
        return done


class ProgressSink:
    """A progress bar on stderr: trials (or units) done, rate, time left."""

    def __init__(self, enabled: bool | None = None, done: set[int] | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.done = done or set()  # units recorded before a resume: counted as done from the start
        self.bar: tqdm | None = None
        self._by_trials = True

    def start(self, protocol: str, parameters: dict[str, Any], units: Sequence[Unit]) -> None:
        total_trials = sum(u.n_trials for u in units)
        self._by_trials = total_trials > 0
        total = total_trials if self._by_trials else len(units)
        initial = sum(u.n_trials if self._by_trials else 1 for u in units if u.index in self.done)
        self.bar = tqdm(total=total, initial=initial, desc=protocol, unit="trial" if self._by_trials else "unit",
                        disable=not self.enabled, file=sys.stderr, dynamic_ncols=True, smoothing=0.1)

    def records(self, unit: Unit, tables: dict[str, np.ndarray]) -> None:
        if self.bar is not None:
            self.bar.update(unit.n_trials if self._by_trials else 1)

    def stop(self, status: str, error: str = "") -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(status)
            self.bar.close()
