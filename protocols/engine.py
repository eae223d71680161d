"""The run engine: executes measurements unit by unit and streams their records into sinks.

A measurement (a characterization protocol, a training run) declares the tables it records
(:class:`~protocols.records.Descriptor`), describes its whole plan up front as numbered units (e.g. one
batch of trials of one device at one bias current) and measures one unit at a time, returning records
(structured numpy rows per table). It never formats files. The engine sends a stream of documents to
sinks, in the style of Bluesky: ``start`` → ``descriptor`` (one per table) → ``records`` (one per
unit) → ``analysis`` → ``stop``. The session writer, a progress display, a transport log and an
in-memory list are all sinks.

The engine owns what every measurement would otherwise repeat:

- **resume**: a :class:`RunStore` (the session file) says which units of each run are committed; a
  resumed run skips them, so no unit is measured twice or lost. A resume is refused, with the difference
  named, when a run's name, parameters or plan differ from what the store holds. A measurement with
  state (training) commits its state with every unit and is restored from the last one;
- **status**: ``running`` → ``completed``, ``interrupted`` (Ctrl-C) or ``failed`` (any error, with the
  unit in flight and any instrument errors recorded);
- **attempts**: every start of a stored session is counted;
- **checks**: an optional guard wraps every unit (the station checks every instrument's error queue
  when a unit ends, before its records are committed);
- **analysis**: when every unit is in, the measurement analyses all its tables and the results go to
  the sinks;
- **concurrency**: a :class:`Concurrent` measurement (a sweep's points as tasks on a cluster) delivers its
  units in the order they finish; each is committed as it comes, and a resume runs only the others.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from instruments.failures import UserFacingError
from instruments.interrupts import interrupts_held
from protocols.records import UNIT_FIELD, Descriptor, by_name

RUNNING, COMPLETED, INTERRUPTED, FAILED = "running", "completed", "interrupted", "failed"
STATUSES = (RUNNING, COMPLETED, INTERRUPTED, FAILED)


class ResumeError(UserFacingError, ValueError):
    """A resume that would mix two different runs in one file; the message names the difference."""


@dataclass(frozen=True)
class Unit:
    """One step of a plan: measured as a whole and recorded as one chunk."""

    index: int
    device: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    n_trials: int = 0  # trials this unit performs (for progress and rates)

    def describe(self) -> str:
        return f"unit {self.index}" + (f" (device {self.device})" if self.device else "")


@dataclass(frozen=True)
class RunStart:
    """The ``start`` document of a run."""

    name: str
    parameters: dict[str, Any]
    descriptors: tuple[Descriptor, ...]
    units: tuple[Unit, ...]
    done: frozenset[int]
    attempt: int
    plan_digest: str

    @property
    def n_planned_trials(self) -> int:
        return int(sum(u.n_trials for u in self.units))


@dataclass(frozen=True)
class RunStop:
    """The ``stop`` document: how the run ended, and where."""

    status: str
    error: str = ""
    unit: Unit | None = None  # the unit in flight when the run stopped
    instrument_errors: tuple[dict[str, Any], ...] = ()


class Sink(Protocol):
    """Receives the document stream of one run."""

    def start(self, run: RunStart) -> None: ...

    def descriptor(self, descriptor: Descriptor) -> None: ...

    def records(self, unit: Unit, tables: Mapping[str, np.ndarray], state: bytes | None) -> None: ...

    def analysis(self, results: Mapping[str, Any]) -> None: ...

    def stop(self, stop: RunStop) -> None: ...


class BaseSink:
    """A sink that ignores every document; subclasses override what they need."""

    def start(self, run: RunStart) -> None:
        pass

    def descriptor(self, descriptor: Descriptor) -> None:
        pass

    def records(self, unit: Unit, tables: Mapping[str, np.ndarray], state: bytes | None) -> None:
        pass

    def analysis(self, results: Mapping[str, Any]) -> None:
        pass

    def stop(self, stop: RunStop) -> None:
        pass


class Measurement(Protocol):
    """What the engine needs from a protocol (or any other measurement)."""

    name: str
    descriptors: tuple[Descriptor, ...]

    def parameters(self) -> dict[str, Any]: ...

    def plan(self) -> list[Unit]: ...

    def measure(self, unit: Unit) -> Mapping[str, np.ndarray]: ...

    def analyse(self, tables: Mapping[str, np.ndarray]) -> Mapping[str, Any]: ...


@runtime_checkable
class Concurrent(Protocol):
    """A measurement whose units run concurrently (e.g. as tasks on a cluster) and finish in any order:
    ``measure_all(units)`` yields ``(unit, tables)`` as each unit finishes, and the engine commits each as it
    comes. Closing the iterator (Ctrl-C, an error) must stop the units still in flight."""

    def measure_all(self, units: Sequence[Unit]) -> Iterator[tuple[Unit, Mapping[str, np.ndarray]]]: ...


@runtime_checkable
class Stateful(Protocol):
    """A measurement whose later units depend on the earlier ones (training): its state is committed with
    every unit, and a resume restores it from the last committed unit instead of skipping units."""

    def state(self) -> bytes: ...

    def restore(self, state: bytes) -> None: ...


@dataclass(frozen=True)
class RecordedRun:
    """What a store holds of one run."""

    name: str
    parameters: dict[str, Any]
    plan_digest: str
    status: str
    done: frozenset[int]
    state: bytes | None = None


class RunStore(Protocol):
    """Where the runs of one session are kept (the session file, or memory)."""

    def recorded(self) -> list[RecordedRun]: ...

    def begin_attempt(self) -> int: ...

    def sink(self, index: int) -> Sink: ...

    def tables(self, index: int) -> Mapping[str, np.ndarray]: ...


Guard = Callable[[Measurement, Unit], contextlib.AbstractContextManager[Any]]


def normalised(value: Any) -> Any:
    """``value`` as it reads back from a file (a JSON round trip), for comparisons on resume."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def plan_digest(units: Sequence[Unit]) -> str:
    """A fingerprint of a plan: the same units in the same order give the same digest."""
    text = json.dumps([[u.index, u.device, u.params, u.n_trials] for u in units], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def first_difference(recorded: Any, current: Any, path: str = "") -> str | None:
    """The first key path where two JSON-like values differ, as ``"path: X in the file, Y now"``."""
    if isinstance(recorded, dict) and isinstance(current, dict):
        for key in sorted(set(recorded) | set(current), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in recorded:
                return f"{where}: absent in the file, {current[key]!r} now"
            if key not in current:
                return f"{where}: {recorded[key]!r} in the file, absent now"
            found = first_difference(recorded[key], current[key], where)
            if found:
                return found
        return None
    if isinstance(recorded, list) and isinstance(current, list) and len(recorded) == len(current):
        for i, (a, b) in enumerate(zip(recorded, current, strict=True)):
            found = first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        return None
    if recorded != current:
        return f"{path or 'value'}: {recorded!r} in the file, {current!r} now"
    return None


@contextlib.contextmanager
def _no_guard(measurement: Measurement, unit: Unit) -> Iterator[None]:
    yield


class RunEngine:
    """Runs measurements in order into a :class:`RunStore`, streaming to the store and to extra sinks.

    ``sinks`` receive every run's documents besides the store; ``guard``
    wraps the measurement of every unit (see the module docstring).
    """

    def __init__(self, store: RunStore, sinks: Sequence[Sink] = (), guard: Guard | None = None) -> None:
        self.store = store
        self.sinks = list(sinks)
        self.guard = guard or _no_guard

    def run(self, measurements: Sequence[Measurement], resume: bool = False) -> list[str]:
        """Run every measurement not already completed in the store; their statuses, in order.

        ``KeyboardInterrupt`` ends the run in flight as ``interrupted`` and is re-raised after the sinks
        are told; any other exception ends it as ``failed`` and is re-raised.
        """
        recorded = self.store.recorded() if resume else []
        if resume:
            check_resumable(measurements, recorded)
        attempt = self.store.begin_attempt()
        statuses = []
        for index, measurement in enumerate(measurements):
            previous = recorded[index] if index < len(recorded) else None
            if previous is not None and previous.status == COMPLETED:
                statuses.append(COMPLETED)
                continue
            statuses.append(self._run_one(measurement, index, previous, attempt))
        return statuses

    def _run_one(self, measurement: Measurement, index: int, previous: RecordedRun | None, attempt: int) -> str:
        units = list(measurement.plan())
        if [u.index for u in units] != list(range(len(units))):
            raise ValueError(f"{measurement.name}: plan units must be numbered 0, 1, 2, ... in order")
        descriptors = by_name(measurement.descriptors)
        done = previous.done if previous is not None else frozenset()
        stateful = isinstance(measurement, Stateful)
        if stateful and done:
            if done != frozenset(range(len(done))):
                raise ResumeError(f"{measurement.name}: the committed units are not the first of the plan")
            if previous is None or previous.state is None:
                raise ResumeError(f"{measurement.name}: the file holds no state to continue from")
            measurement.restore(previous.state)
        start = RunStart(measurement.name, dict(measurement.parameters()), tuple(descriptors.values()),
                         tuple(units), frozenset(done), attempt, plan_digest(units))
        sinks = [self.store.sink(index), *self.sinks]
        for sink in sinks:
            sink.start(start)
            for descriptor in descriptors.values():
                sink.descriptor(descriptor)
        current: Unit | None = None
        todo = [unit for unit in units if unit.index not in done]
        finished = measurement.measure_all(todo) if isinstance(measurement, Concurrent) else None
        try:
            if finished is not None:  # units in flight together: each committed as it finishes
                with contextlib.closing(finished):
                    for unit, tables in finished:
                        tables = _checked(measurement.name, unit, tables, descriptors)
                        with interrupts_held():
                            for sink in sinks:
                                sink.records(unit, tables, None)
            for unit in todo if finished is None else ():
                current = unit
                with self.guard(measurement, unit):
                    tables = _checked(measurement.name, unit, measurement.measure(unit), descriptors)
                state = measurement.state() if stateful else None  # type: ignore[attr-defined]
                with interrupts_held():  # every sink hears of the unit; a Ctrl-C meanwhile comes after
                    for sink in sinks:
                        sink.records(unit, tables, state)
                    current = None  # committed: not the unit in flight any more
            results = dict(measurement.analyse(self.store.tables(index)))
            for sink in sinks:
                sink.analysis(results)
        except KeyboardInterrupt:
            _stop(sinks, RunStop(INTERRUPTED, "interrupted by the user (Ctrl-C)", current))
            raise
        except BaseException as exc:
            entries = tuple(e.as_dict() for e in getattr(exc, "entries", ()))
            where = f" in {current.describe()}" if current is not None else ""
            _stop(sinks, RunStop(FAILED, f"{type(exc).__name__}{where}: {exc}", current, entries))
            raise
        _stop(sinks, RunStop(COMPLETED))
        return COMPLETED


def check_resumable(measurements: Sequence[Measurement], recorded: Sequence[RecordedRun]) -> None:
    """Refuse (:class:`ResumeError`, naming the difference) to continue runs with other measurements."""
    if len(recorded) > len(measurements):
        raise ResumeError(f"the file holds {len(recorded)} runs, but only {len(measurements)} are given: "
                          "resume with the same protocol files, in the same order")
    for index, (measurement, run) in enumerate(zip(measurements, recorded, strict=False)):
        where = f"run {index:03d} ({run.name})"
        if run.name != measurement.name:
            raise ResumeError(f"{where}: the file holds a {run.name} run where {measurement.name} is given; "
                              "resume with the same protocol files, in the same order")
        difference = first_difference(normalised(run.parameters), normalised(measurement.parameters()))
        if difference:
            raise ResumeError(f"{where}: the parameters differ from the run being resumed ({difference}); "
                              "resume with the same protocol files, in the same order")
        if run.plan_digest and run.plan_digest != plan_digest(measurement.plan()):
            raise ResumeError(f"{where}: the plan differs from the run being resumed (same parameters, other "
                              "units): was the file recorded with another version?")


def _checked(name: str, unit: Unit, tables: Mapping[str, np.ndarray],
             descriptors: Mapping[str, Descriptor]) -> dict[str, np.ndarray]:
    out = {}
    for table, rows in tables.items():
        if table not in descriptors:
            raise ValueError(f"{name}: records for table {table!r}, which it does not declare "
                             f"(declared: {', '.join(descriptors)})")
        rows = descriptors[table].check(rows, f"{name} {unit.describe()}: ")
        if rows.size and not np.all(rows[UNIT_FIELD] == unit.index):
            raise ValueError(f"{name}: table {table} rows of {unit.describe()} carry another unit index")
        out[table] = rows
    return out


def _stop(sinks: Sequence[Sink], stop: RunStop) -> None:
    """Tell every sink; a Ctrl-C meanwhile is held (and raised after, only when the run completed: a run
    that is ending with an error keeps that error)."""
    errors = []
    with interrupts_held(reraise=stop.status == COMPLETED):
        for sink in sinks:
            try:
                sink.stop(stop)
            except Exception as exc:  # noqa: BLE001 — every sink must hear the stop; the first failure is raised
                errors.append(exc)
    if errors and stop.status == COMPLETED:
        raise errors[0]


class MemorySink(BaseSink):
    """Keeps every record of one run in memory (tests, benchmarks, offline replays)."""

    def __init__(self) -> None:
        self.run: RunStart | None = None
        self.descriptors: dict[str, Descriptor] = {}
        self.parts: dict[str, list[np.ndarray]] = {}
        self.units_done: list[int] = []
        self.state: bytes | None = None
        self.results: dict[str, Any] = {}
        self.status = ""
        self.error = ""

    def start(self, run: RunStart) -> None:
        self.run, self.status = run, RUNNING

    def descriptor(self, descriptor: Descriptor) -> None:
        self.descriptors[descriptor.name] = descriptor

    def records(self, unit: Unit, tables: Mapping[str, np.ndarray], state: bytes | None) -> None:
        for name, rows in tables.items():
            self.parts.setdefault(name, []).append(rows)
        self.units_done.append(unit.index)
        self.state = state

    def analysis(self, results: Mapping[str, Any]) -> None:
        self.results.update(results)

    def stop(self, stop: RunStop) -> None:
        self.status, self.error = stop.status, stop.error

    def table(self, name: str) -> np.ndarray:
        parts = self.parts.get(name)
        if parts:
            return np.concatenate(parts)
        descriptor = self.descriptors.get(name)
        return np.zeros(0, dtype=descriptor.dtype) if descriptor is not None else np.zeros(0)

    def tables(self) -> dict[str, np.ndarray]:
        return {name: self.table(name) for name in self.descriptors}


class MemoryStore:
    """A :class:`RunStore` in memory: one :class:`MemorySink` per run."""

    def __init__(self) -> None:
        self.runs: list[MemorySink] = []
        self.attempts = 0

    def recorded(self) -> list[RecordedRun]:
        return [RecordedRun(s.run.name, s.run.parameters, s.run.plan_digest, s.status,
                            frozenset(s.units_done) | s.run.done, s.state) for s in self.runs if s.run is not None]

    def begin_attempt(self) -> int:
        self.attempts += 1
        return self.attempts

    def sink(self, index: int) -> MemorySink:
        while len(self.runs) <= index:
            self.runs.append(MemorySink())
        return self.runs[index]

    def tables(self, index: int) -> dict[str, np.ndarray]:
        return self.runs[index].tables()


def check_identity(recorded: Mapping[str, Any] | None, current: Mapping[str, Any], path: str = "the file") -> None:
    """Refuse (:class:`ResumeError`) to continue a session whose identity (station, chip, seed, software
    version, dataset...) differs from the present one, naming the first difference."""
    if recorded is None:
        raise ResumeError(f"{path}: records no identity (station, chip, seed, version) to check a resume against")
    difference = first_difference(normalised(dict(recorded)), normalised(dict(current)))
    if difference:
        what = difference.split(":")[0].split(".")[0].split("[")[0]
        raise ResumeError(f"{path}: cannot resume with a different {what.replace('_', ' ')} ({difference}); "
                          "resume with the same options the run started with, or start a new file")
