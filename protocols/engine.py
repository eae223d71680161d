"""The run engine: executes a protocol's plan unit by unit and streams its records into sinks.

A protocol (see :mod:`protocols.characterization`) describes its whole plan up front as numbered
units (e.g. one batch of trials of one device at one bias current) and measures one unit at a time,
returning records (structured numpy rows per table). It never formats files: the engine hands the
records to sinks — the session writer, a progress bar, an in-memory list — in the style of Bluesky's
document stream (start → records → stop).

Interruption and resume live here, not in each protocol: ``Ctrl-C`` stops after the unit in flight
is abandoned (the station context puts the instruments into the safe state) and marks the run
``interrupted``; any exception marks it ``failed``; a resumed run skips the units its sink already
holds, so no completed trial is repeated or lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

RUNNING, COMPLETED, INTERRUPTED, FAILED = "running", "completed", "interrupted", "failed"


@dataclass(frozen=True)
class Unit:
    """One step of a plan: measured as a whole and recorded as one chunk."""

    index: int
    device: str
    params: dict[str, Any] = field(default_factory=dict)
    n_trials: int = 0  # trials this unit performs (for progress and rates)


class Sink(Protocol):
    """Receives the document stream of one run."""

    def start(self, protocol: str, parameters: dict[str, Any], units: Sequence[Unit]) -> None: ...

    def records(self, unit: Unit, tables: dict[str, np.ndarray]) -> None: ...

    def stop(self, status: str, error: str = "") -> None: ...


class Measurement(Protocol):
    """What the engine needs from a protocol."""

    name: str

    def parameters(self) -> dict[str, Any]: ...

    def plan(self) -> list[Unit]: ...

    def measure(self, unit: Unit) -> dict[str, np.ndarray]: ...


class MemorySink:
    """Keeps every record in memory (tests, benchmarks, analysis without a file)."""

    def __init__(self) -> None:
        self.tables: dict[str, list[np.ndarray]] = {}
        self.status = ""
        self.error = ""
        self.units_done: list[int] = []

    def start(self, protocol: str, parameters: dict[str, Any], units: Sequence[Unit]) -> None:
        self.protocol, self.parameters, self.status = protocol, parameters, RUNNING

    def records(self, unit: Unit, tables: dict[str, np.ndarray]) -> None:
        for name, rows in tables.items():
            self.tables.setdefault(name, []).append(rows)
        self.units_done.append(unit.index)

    def stop(self, status: str, error: str = "") -> None:
        self.status, self.error = status, error

    def table(self, name: str) -> np.ndarray:
        parts = self.tables.get(name)
        return np.concatenate(parts) if parts else np.zeros(0)


def run(measurement: Measurement, sinks: Iterable[Sink], done: Iterable[int] = ()) -> str:
    """Measure every unit of the plan not in ``done``, streaming records to ``sinks``; return the status.

    ``KeyboardInterrupt`` ends the run as ``interrupted`` and is re-raised after the sinks are told;
    any other exception ends it as ``failed`` and is re-raised.
    """
    sinks = list(sinks)
    units = measurement.plan()
    skip = set(done)
    for sink in sinks:
        sink.start(measurement.name, measurement.parameters(), units)
    try:
        for unit in units:
            if unit.index in skip:
                continue
            tables = measurement.measure(unit)
            for name, rows in tables.items():
                if "unit" not in (rows.dtype.names or ()):
                    raise ValueError(f"{measurement.name}: table {name} rows carry no unit index")
            for sink in sinks:
                sink.records(unit, tables)
    except KeyboardInterrupt:
        _stop(sinks, INTERRUPTED, "interrupted by the user (Ctrl-C)")
        raise
    except BaseException as exc:
        _stop(sinks, FAILED, f"{type(exc).__name__}: {exc}")
        raise
    _stop(sinks, COMPLETED)
    return COMPLETED


def _stop(sinks: list[Sink], status: str, error: str = "") -> None:
    for sink in sinks:
        sink.stop(status, error)
