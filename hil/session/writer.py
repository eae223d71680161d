"""Writing session files: runs that commit their records unit by unit, so that nothing is lost or duplicated.

A run's records are committed one plan unit at a time, in two flushes:

1. the unit's rows are written past the end of each record table, the unit's state (if any) into the
   state slot the last commit did not use, and the unit's row into the ``units`` commit log past its
   committed end — then everything is handed to the operating system (flush);
2. the commit log's ``n_committed`` (and each table's) is raised — flush again.

A process killed at any moment therefore leaves either the unit committed or not at all: readers take each
table's extent from the last committed ``units`` row, and a resumed run first truncates every table to
it (:meth:`RunWriter.repair`), then skips the committed units. Rows staged outside a unit (a hardware
backend's trials while a training step runs) are committed with the next unit, or rolled back with it.
"""

from __future__ import annotations

import functools
import os
import platform
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from hil import __version__
from hil.session.format import (
    ANALYSIS,
    BYTES_DTYPE,
    CHUNK_ROWS,
    END_PREFIX,
    FORMAT_NAME,
    FORMAT_VERSION,
    STATE,
    TRANSPORT_DTYPE,
    UNITS,
    OutputExistsError,
    SessionError,
    check_format,
    committed_ends,
    committed_rows,
    decode,
    decode_attrs,
    encode,
    now_utc,
    open_file,
    units_dtype,
)
from instruments.interrupts import interrupts_held
from protocols.engine import STATUSES
from protocols.records import Descriptor

SLOTS = ("0", "1")
# record tables are compressed (deflate, level 1, after byte shuffling: ~5x smaller trial tables for little
# time); every HDF5 reader decodes deflate without a plug-in
RECORD_FILTERS = {"compression": "gzip", "compression_opts": 1, "shuffle": True}


def held(method: Callable[..., Any]) -> Callable[..., Any]:
    """A writing method that Ctrl-C cannot cut in half: an interrupt is raised once it is done."""
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with interrupts_held(what="the session file is written"):
            return method(*args, **kwargs)
    return wrapper


def check_new(path: str | Path, force: bool = False) -> None:
    """Refuse (:class:`OutputExistsError`) to start a session where a file exists, unless ``force``."""
    if Path(path).exists() and not force:
        raise OutputExistsError(f"{path} already exists: pass --resume to continue it, --force to replace it, "
                                "or choose another --out")


class RunWriter:
    """One run's group: record tables declared from descriptors, committed unit by unit."""

    def __init__(self, session: SessionWriter, group: h5py.Group) -> None:
        self._session = session
        self.group = group
        # what a commit needs, looked up once: the tables in commit-log order, their datasets and dtypes,
        # where each one's rows end (committed or staged), and the commit log's length and last state slot
        self._names: list[str] | None = None
        self._datasets: dict[str, tuple[h5py.Dataset, np.dtype]] = {}
        self._ends: dict[str, int] = {}
        self._log: tuple[int, int] | None = None

    @property
    def name(self) -> str:
        return self.group.name.rsplit("/", 1)[-1]

    @property
    def attrs(self) -> dict[str, Any]:
        return decode_attrs(self.group.attrs)

    @held
    def set_attrs(self, **values: Any) -> None:
        """Store run attributes (JSON for mappings and lists), then flush."""
        for key, value in values.items():
            self.group.attrs[key] = encode(value)
        self._session.flush()

    # -- tables ------------------------------------------------------------------------------------

    @held
    def declare(self, descriptor: Descriptor) -> None:
        """Create the record table of ``descriptor`` (an existing one must have its dtype)."""
        if descriptor.name in self.group:
            if self.group[descriptor.name].dtype != descriptor.dtype:
                raise SessionError(f"{self._session.path}: run {self.name} table {descriptor.name} was recorded "
                                   "with other fields than this version declares; it cannot be continued")
        else:
            dataset = self.group.create_dataset(descriptor.name, shape=(0,), maxshape=(None,), dtype=descriptor.dtype,
                                                chunks=(CHUNK_ROWS,), **RECORD_FILTERS)
            dataset.attrs["n_committed"] = 0
        descriptors = dict(self.attrs.get("descriptors") or {})
        descriptors[descriptor.name] = descriptor.as_dict()
        self.group.attrs["descriptors"] = encode(descriptors)
        self._names = None

    def _tables(self) -> list[str]:
        if self._names is None:
            self._names = list(self.attrs.get("descriptors") or {})
        return self._names

    def _dataset(self, table: str) -> tuple[h5py.Dataset, np.dtype]:
        if table not in self._datasets:
            if table not in self._tables():
                raise SessionError(f"run {self.name}: table {table} was not declared")
            dataset = self.group[table]
            self._datasets[table] = (dataset, dataset.dtype)
            self._ends[table] = int(dataset.attrs["n_committed"])
        return self._datasets[table]

    @held
    def stage(self, table: str, rows: np.ndarray) -> None:
        """Write ``rows`` after the rows written so far; they count once the next unit commits."""
        rows = np.asarray(rows)
        dataset, dtype = self._dataset(table)
        start = self._ends[table]
        if rows.dtype != dtype:
            rows = rows.astype(dtype)
        if dataset.shape[0] < start + rows.size:
            dataset.resize((start + rows.size,))
        dataset[start:start + rows.size] = rows
        self._ends[table] = start + rows.size

    @held
    def commit(self, unit: int, tables: Mapping[str, np.ndarray], state: bytes | None = None,
               attempt: int = 1, n_trials: int = 0) -> None:
        """Commit one unit: its rows, its state and its line in the commit log (two flushes)."""
        for table, rows in tables.items():
            self.stage(table, rows)
        names = self._tables()
        if UNITS not in self.group:
            log = self.group.create_dataset(UNITS, shape=(0,), maxshape=(None,), dtype=units_dtype(names),
                                            chunks=(CHUNK_ROWS,))
            log.attrs["n_committed"] = 0
        log = self.group[UNITS]
        if self._log is None:
            n = int(log.attrs["n_committed"])
            self._log = (n, int(log[n - 1]["state_slot"]) if n else -1)
        n, last_slot = self._log
        slot = -1
        if state is not None:
            slot = 1 - last_slot if last_slot >= 0 else 0
            self._write_state(slot, state, unit)
        row = np.zeros(1, dtype=log.dtype)
        row["unit"], row["attempt"], row["time_s"], row["state_slot"] = unit, attempt, time.time(), slot
        row["n_trials"] = n_trials
        for name in names:
            self._dataset(name)
            if END_PREFIX + name not in log.dtype.names:
                raise SessionError(f"run {self.name}: table {name} is not in the commit log")
            row[END_PREFIX + name] = self._ends[name]
        if log.shape[0] < n + 1:
            log.resize((n + 1,))
        log[n] = row[0]
        self._session.flush()  # phase 1: every byte of the unit is with the operating system
        for name in names:
            self._datasets[name][0].attrs["n_committed"] = self._ends[name]
        log.attrs["n_committed"] = n + 1
        self._session.flush()  # phase 2: the unit counts
        self._log = (n + 1, slot if slot >= 0 else last_slot)

    def _write_state(self, slot: int, state: bytes, unit: int) -> None:
        states = self.group.require_group(STATE)
        data = np.frombuffer(state, dtype=np.uint8)
        name = SLOTS[slot]
        if name not in states:
            states.create_dataset(name, shape=(0,), maxshape=(None,), dtype=np.uint8, chunks=(1 << 16,))
        dataset = states[name]
        dataset.resize((data.size,))
        dataset[:] = data
        dataset.attrs["unit"] = unit

    @held
    def repair(self) -> None:
        """Truncate every record table to its last committed unit (rows of a unit in flight are dropped)."""
        ends = committed_ends(self.group)
        if ends is None:
            return
        for name, end in ends.items():
            if name in self.group:
                dataset = self.group[name]
                if dataset.shape[0] != end or int(dataset.attrs["n_committed"]) != end:
                    dataset.resize((end,))
                    dataset.attrs["n_committed"] = end
        log = self.group[UNITS]
        log.resize((int(log.attrs["n_committed"]),))
        self._datasets, self._ends, self._log = {}, {}, None
        self._session.flush()

    # -- reading back ----------------------------------------------------------------------------------

    def table(self, table: str) -> np.ndarray:
        """The committed rows of ``table`` (empty if it does not exist yet)."""
        return committed_rows(self.group, table)

    def committed_units(self) -> frozenset[int]:
        return frozenset(int(u) for u in committed_rows(self.group, UNITS)["unit"]) if UNITS in self.group \
            else frozenset()

    def last_state(self) -> bytes | None:
        """The state committed with the last unit (``None`` when the run keeps none)."""
        log = committed_rows(self.group, UNITS) if UNITS in self.group else np.zeros(0)
        if log.size == 0 or log["state_slot"][-1] < 0:
            return None
        return self.group[STATE][SLOTS[int(log["state_slot"][-1])]][()].tobytes()

    # -- end of the run ------------------------------------------------------------------------------

    @held
    def finish(self, status: str, error: str = "", **attrs: Any) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        self.set_attrs(status=status, finished_utc=now_utc(), error=error, **attrs)
        self._session.sync()

    @held
    def write_analysis(self, name: str, value: Any) -> None:
        """Replace the derived result ``analysis/<name>``: a structured table, or JSON for anything else."""
        analysis = self.group.require_group(ANALYSIS)
        if name in analysis:
            del analysis[name]
        if isinstance(value, np.ndarray) and value.dtype.names is not None:
            analysis.create_dataset(name, data=value)
        else:
            analysis.create_dataset(name, data=encode(value if isinstance(value, Mapping | list | tuple)
                                                      else {"value": value}))
        self._session.flush()


class SessionWriter:
    """A session file open for writing: runs, session attributes and the transport log."""

    def __init__(self, path: Path, f: h5py.File) -> None:
        self.path = path
        self._file = f

    @classmethod
    @held
    def create(cls, path: str | Path, kind: str, metadata: Mapping[str, Any] | None = None,
               overwrite: bool = False) -> SessionWriter:
        """Create a new session file. ``metadata`` (station snapshot, chip, seeds...) is stored as JSON.

        An existing file is refused (:class:`OutputExistsError`) unless ``overwrite`` (``--force``).
        """
        path = Path(path)
        check_new(path, overwrite)
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open_file(path, "w")
        f.attrs.update({"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "software_version": __version__,
                        "created_utc": now_utc(), "kind": kind, "attempts": 0})
        for key, value in (metadata or {}).items():
            f.attrs[key] = encode(value)
        f.create_group("runs")
        writer = cls(path, f)
        writer.flush()
        return writer

    @classmethod
    @held
    def resume(cls, path: str | Path) -> SessionWriter:
        """Open an existing session to continue it (``--resume``); a unit in flight when it stopped is dropped."""
        path = Path(path)
        if not path.exists():
            raise SessionError(f"{path}: nothing to resume (no such file)")
        f = open_file(path, "a")
        try:
            version = check_format(f, path)
            if version != FORMAT_VERSION:
                raise SessionError(f"{path}: written in session format version {version}; this hil continues only "
                                   f"version {FORMAT_VERSION} files (it still reads the file)")
        except SessionError:
            f.close()
            raise
        writer = cls(path, f)
        for run in writer.runs():
            run.repair()
        return writer

    @property
    def attrs(self) -> dict[str, Any]:
        return decode_attrs(self._file.attrs)

    @held
    def set_attrs(self, **values: Any) -> None:
        for key, value in values.items():
            self._file.attrs[key] = encode(value)
        self.flush()

    @held
    def begin_attempt(self) -> int:
        """Count one more start of the session (``attempts``, and a line in ``attempt_log``); its number."""
        attempt = int(self._file.attrs.get("attempts", 0)) + 1
        entries = list(decode(self._file.attrs.get("attempt_log", "[]")) or [])
        entries.append({"attempt": attempt, "started_utc": now_utc(), "hostname": platform.node(),
                        "software_version": __version__, "pid": os.getpid()})
        self.set_attrs(attempts=attempt, attempt_log=entries)
        return attempt

    def run(self, index: int) -> RunWriter:
        """Run ``index`` (``runs/NNN``); the next index creates it."""
        runs = self._file["runs"]
        name = f"{index:03d}"
        if name not in runs:
            if index != len(runs):
                raise SessionError(f"{self.path}: run {name} would leave a gap after {len(runs)} runs")
            runs.create_group(name)
        return RunWriter(self, runs[name])

    def runs(self) -> list[RunWriter]:
        return [RunWriter(self, self._file["runs"][name]) for name in sorted(self._file["runs"])]

    @held
    def append_transport(self, records: Mapping[str, Any]) -> None:
        """Append transport-log entries (columns ``seq``, ``time_s``, ``instrument``, ``direction``, ``data``).

        ``transport/entries`` holds one row per command or reply with the offset and length of its bytes
        in ``transport/bytes``. The bytes are committed first, so an entry never points past them.
        """
        n = len(records["seq"])
        if n == 0:
            return
        group = self._file.require_group("transport")
        payloads = [bytes(d) for d in records["data"]]
        blob = np.frombuffer(b"".join(payloads), dtype=np.uint8).view(BYTES_DTYPE)
        offset = self._append_committed(group, "bytes", blob, commit=False)
        lengths = np.array([len(p) for p in payloads], dtype=np.int64)
        rows = np.zeros(n, dtype=TRANSPORT_DTYPE)
        rows["seq"] = records["seq"]
        rows["time_s"] = records["time_s"]
        rows["instrument"] = [i.encode() for i in records["instrument"]]
        rows["direction"] = [d.encode() for d in records["direction"]]
        rows["offset"] = offset + np.concatenate([[0], np.cumsum(lengths)[:-1]])
        rows["length"] = lengths
        self._append_committed(group, "entries", rows, commit=False)
        self.flush()
        for name in ("bytes", "entries"):  # the bytes count before the entries that point into them
            group[name].attrs["n_committed"] = group[name].shape[0]
            self.flush()

    @staticmethod
    def _append_committed(group: h5py.Group, name: str, rows: np.ndarray, commit: bool) -> int:
        if name not in group:
            dataset = group.create_dataset(name, shape=(0,), maxshape=(None,), dtype=rows.dtype,
                                           chunks=(CHUNK_ROWS * (64 if name == "bytes" else 1),), **RECORD_FILTERS)
            dataset.attrs["n_committed"] = 0
        dataset = group[name]
        start = int(dataset.attrs["n_committed"])
        dataset.resize((start + rows.size,))
        dataset[start:] = rows
        if commit:
            dataset.attrs["n_committed"] = start + rows.size
        return start

    def flush(self) -> None:
        """Hand everything written to the operating system: it survives the process being killed."""
        self._file.flush()

    def sync(self) -> None:
        """Flush and wait until the data is on the disk (survives a power cut); at the end of a run."""
        self._file.flush()
        try:
            os.fsync(self._file.id.get_vfd_handle())
        except (OSError, AttributeError, ValueError):
            pass

    @held
    def close(self) -> None:
        if self._file.id.valid:
            self.sync()
            self._file.close()

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
