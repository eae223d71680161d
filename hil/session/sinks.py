"""The session file as the run engine's store and sink, and the transport log as a sink.

- :class:`SessionStore` is the engine's :class:`~protocols.engine.RunStore` over a session file: which
  runs it holds, their committed units and state, and a :class:`RunSink` per run.
- :class:`RunSink` writes one run's document stream: ``start`` sets the run's attributes (what it is, its
  parameters, its plan, the attempt), ``descriptor`` declares a record table, ``records`` commits a unit,
  ``analysis`` stores the derived results, ``stop`` the status, the error and where it happened, and any
  instrument errors (with the unit in flight).
- :class:`TransportSink` appends the transport log's new entries after every unit.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from hil import __version__
from hil.session.format import now_utc
from hil.session.writer import RunWriter, SessionWriter, held
from instruments.transport import TransportLog
from protocols.engine import RUNNING, BaseSink, RecordedRun, RunStart, RunStop, Unit
from protocols.records import Descriptor


class RunSink(BaseSink):
    """Writes one run of the engine's stream into its group of the session file."""

    def __init__(self, run: RunWriter, **attrs: Any) -> None:
        self.run = run
        self.extra_attrs = attrs
        self.attempt = 1

    @held
    def start(self, run: RunStart) -> None:
        self.attempt = run.attempt
        attrs = self.run.attrs
        attempts = list(attrs.get("attempts") or []) + [run.attempt]
        if "protocol" not in attrs:
            self.run.set_attrs(protocol=run.name, parameters=run.parameters, plan_digest=run.plan_digest,
                               n_units=len(run.units), n_planned_trials=run.n_planned_trials, started_utc=now_utc(),
                               software_version=__version__, instrument_errors=[], **self.extra_attrs)
        else:
            self.run.set_attrs(resumed_utc=now_utc())
        self.run.set_attrs(status=RUNNING, attempts=attempts, error="")

    @held
    def descriptor(self, descriptor: Descriptor) -> None:
        self.run.declare(descriptor)

    @held
    def records(self, unit: Unit, tables: Mapping[str, np.ndarray], state: bytes | None) -> None:
        self.run.commit(unit.index, tables, state, self.attempt, unit.n_trials)

    @held
    def stage(self, table: str, rows: np.ndarray) -> None:
        """Rows recorded while a unit is in flight (committed with it, or rolled back with it)."""
        self.run.stage(table, rows)

    @held
    def analysis(self, results: Mapping[str, Any]) -> None:
        for name, value in results.items():
            self.run.write_analysis(name, value)

    @held
    def stop(self, stop: RunStop) -> None:
        attrs: dict[str, Any] = {}
        if stop.unit is not None:
            attrs["stopped_at"] = {"unit": stop.unit.index, "device": stop.unit.device, "attempt": self.attempt}
        if stop.instrument_errors:
            where = {"unit": stop.unit.index if stop.unit else None, "device": stop.unit.device if stop.unit else "",
                     "attempt": self.attempt, "time_utc": now_utc()}
            attrs["instrument_errors"] = list(self.run.attrs.get("instrument_errors") or []) + [
                {**entry, **where} for entry in stop.instrument_errors]
        self.run.finish(stop.status, stop.error, **attrs)


class SessionStore:
    """The run engine's store over a session file (see the module docstring)."""

    def __init__(self, writer: SessionWriter, **run_attrs: Any) -> None:
        self.writer = writer
        self.run_attrs = run_attrs
        self.sinks: dict[int, RunSink] = {}

    @held
    def recorded(self) -> list[RecordedRun]:
        out = []
        for run in self.writer.runs():
            attrs = run.attrs
            out.append(RecordedRun(str(attrs.get("protocol", "")), dict(attrs.get("parameters") or {}),
                                   str(attrs.get("plan_digest", "")), str(attrs.get("status", "")),
                                   run.committed_units(), run.last_state()))
        return out

    def begin_attempt(self) -> int:
        return self.writer.begin_attempt()

    def sink(self, index: int) -> RunSink:
        if index not in self.sinks:
            self.sinks[index] = RunSink(self.writer.run(index), **self.run_attrs)
        return self.sinks[index]

    @held
    def tables(self, index: int) -> Mapping[str, np.ndarray]:
        run = self.writer.run(index)
        return CommittedTables(run, list(run.attrs.get("descriptors") or {}))


class CommittedTables(Mapping):
    """A run's committed tables, each read from the file only when asked for (an analysis that needs one
    small table does not load a large one)."""

    def __init__(self, run: RunWriter, names: list[str]) -> None:
        self.run, self.names = run, names

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.names:
            raise KeyError(name)
        return self.run.table(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


class TransportSink(BaseSink):
    """Appends the transport log's new entries to the session after every unit (crash-safe like the records)."""

    def __init__(self, writer: SessionWriter, log: TransportLog) -> None:
        self.writer, self.log = writer, log

    def flush(self) -> None:
        self.writer.append_transport(self.log.take())

    def start(self, run: RunStart) -> None:
        self.flush()

    def records(self, unit: Unit, tables: Mapping[str, np.ndarray], state: bytes | None) -> None:
        self.flush()

    def stop(self, stop: RunStop) -> None:
        self.flush()
