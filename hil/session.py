"""HDF5 session files: one file per measurement or training run. The only module that touches h5py.

The layout is documented in ``docs/session-format.md`` (format ``hil-session``, version
:data:`FORMAT_VERSION`). Records are appended in chunks: each :meth:`RunWriter.append` resizes a
table, writes the rows, raises the table's ``n_committed`` and flushes the file, so a killed process
loses at most the chunk in flight; readers ignore rows past ``n_committed``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from hil import __version__

FORMAT_NAME = "hil-session"
FORMAT_VERSION = 1
RUNNING, COMPLETED, INTERRUPTED, FAILED = "running", "completed", "interrupted", "failed"
STATUSES = (RUNNING, COMPLETED, INTERRUPTED, FAILED)
TRANSPORT_DTYPE = np.dtype([("seq", "i8"), ("time_s", "f8"), ("instrument", "S32"), ("direction", "S8"),
                            ("offset", "i8"), ("length", "i8")])
BYTES_DTYPE = np.dtype([("byte", "u1")])
CHUNK_ROWS = 1024  # small chunks, no compression: appending a few hundred rows stays cheap


class SessionError(Exception):
    """A session file that cannot be read or written as asked (the message says why and what to do)."""


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in a session")


def _open(path: Path, mode: str) -> h5py.File:
    try:
        return h5py.File(path, mode)
    except FileNotFoundError:
        raise SessionError(f"{path}: no such session file") from None
    except OSError as exc:
        raise SessionError(f"{path}: cannot be read as an HDF5 session ({exc}); the file may be truncated, still "
                           "open in another process, or not a session file") from None


def _check_format(f: h5py.File, path: Path) -> int:
    name = f.attrs.get("format")
    if name != FORMAT_NAME:
        raise SessionError(f"{path}: not a hil session file (format attribute {name!r})")
    version = int(f.attrs.get("format_version", -1))
    if version > FORMAT_VERSION:
        raise SessionError(f"{path}: written with session format version {version}, this hil reads up to "
                           f"{FORMAT_VERSION}; upgrade hil to read it")
    if version < 1:
        raise SessionError(f"{path}: unknown session format version {version}")
    return version


class RunWriter:
    """Appends the records of one protocol run (or training run) to its group."""

    def __init__(self, session: SessionWriter, group: h5py.Group) -> None:
        self._session = session
        self.group = group
        self._open_tables: dict[str, tuple[h5py.Dataset, np.dtype, int]] = {}  # dataset, dtype, rows committed

    @property
    def name(self) -> str:
        return self.group.name.rsplit("/", 1)[-1]

    @property
    def attrs(self) -> dict[str, Any]:
        return _decode_attrs(self.group.attrs)

    def append(self, table: str, rows: np.ndarray) -> None:
        """Append structured ``rows`` to ``table`` (created with their dtype on first use), then flush."""
        rows = np.asarray(rows)
        if rows.dtype.names is None:
            raise SessionError(f"table {table}: rows must be a structured array")
        if table not in self._open_tables:
            if table not in self.group:
                dataset = self.group.create_dataset(table, shape=(0,), maxshape=(None,), dtype=rows.dtype,
                                                    chunks=(CHUNK_ROWS,))
                dataset.attrs["n_committed"] = 0
            dataset = self.group[table]
            self._open_tables[table] = (dataset, dataset.dtype, int(dataset.attrs["n_committed"]))
        dataset, dtype, start = self._open_tables[table]
        if rows.dtype != dtype:
            rows = rows.astype(dtype)
        dataset.resize((start + rows.size,))
        dataset[start:] = rows
        dataset.attrs["n_committed"] = start + rows.size
        self._open_tables[table] = (dataset, dtype, start + rows.size)
        self._session.flush()

    def table(self, table: str) -> np.ndarray:
        """The committed rows of ``table`` (empty if it does not exist yet)."""
        return _read_table(self.group, table)

    def set_attrs(self, **values: Any) -> None:
        """Store run attributes (JSON for mappings and lists), then flush."""
        for key, value in values.items():
            self.group.attrs[key] = _json(value) if isinstance(value, Mapping | list | tuple) else value
        self._session.flush()

    def finish(self, status: str, error: str = "") -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        self.set_attrs(status=status, finished_utc=_now(), error=error)
        self._session.sync()

    def write_analysis(self, name: str, value: np.ndarray | Mapping[str, Any]) -> None:
        """Replace the derived result ``analysis/<name>``: a structured table, or JSON for a mapping."""
        analysis = self.group.require_group("analysis")
        if name in analysis:
            del analysis[name]
        if isinstance(value, Mapping):
            analysis.create_dataset(name, data=_json(value))
        else:
            analysis.create_dataset(name, data=np.asarray(value))
        self._session.flush()


class SessionWriter:
    """A session file open for writing: a sink for the records of protocol and training runs."""

    def __init__(self, path: Path, f: h5py.File) -> None:
        self.path = path
        self._file = f

    @classmethod
    def create(cls, path: str | Path, kind: str, metadata: Mapping[str, Any] | None = None,
               overwrite: bool = False) -> SessionWriter:
        """Create a new session file. ``metadata`` (station snapshot, chip, seeds...) is stored as JSON."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise SessionError(f"{path} already exists: pass --resume to continue it, or choose another --out")
        path.parent.mkdir(parents=True, exist_ok=True)
        f = _open(path, "w")
        f.attrs.update({"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "software_version": __version__,
                        "created_utc": _now(), "kind": kind})
        for key, value in (metadata or {}).items():
            f.attrs[key] = _json(value) if isinstance(value, Mapping | list | tuple) else value
        f.create_group("runs")
        writer = cls(path, f)
        writer.flush()
        return writer

    @classmethod
    def append_to(cls, path: str | Path) -> SessionWriter:
        """Open an existing session to continue it (``--resume``)."""
        path = Path(path)
        f = _open(path, "a")
        try:
            _check_format(f, path)
        except SessionError:
            f.close()
            raise
        return cls(path, f)

    @property
    def attrs(self) -> dict[str, Any]:
        return _decode_attrs(self._file.attrs)

    def set_attrs(self, **values: Any) -> None:
        for key, value in values.items():
            self._file.attrs[key] = _json(value) if isinstance(value, Mapping | list | tuple) else value
        self.flush()

    def start_run(self, protocol: str, parameters: Mapping[str, Any], **attrs: Any) -> RunWriter:
        """A new run group ``runs/NNN`` with status ``running``."""
        runs = self._file["runs"]
        group = runs.create_group(f"{len(runs):03d}")
        run = RunWriter(self, group)
        run.set_attrs(protocol=protocol, parameters=dict(parameters), status=RUNNING, started_utc=_now(),
                      software_version=__version__, **attrs)
        return run

    def runs(self) -> list[RunWriter]:
        return [RunWriter(self, self._file["runs"][name]) for name in sorted(self._file["runs"])]

    def unfinished_run(self, protocol: str) -> RunWriter | None:
        """The last run of ``protocol`` that did not complete (to resume), if any."""
        for run in reversed(self.runs()):
            if run.attrs.get("protocol") == protocol and run.attrs.get("status") != COMPLETED:
                return run
        return None

    def group(self, name: str) -> RunWriter:
        """A top-level group (e.g. ``training``) written like a run."""
        return RunWriter(self, self._file.require_group(name))

    def append_transport(self, records: dict[str, Any]) -> None:
        """Append transport-log entries (columns ``seq``, ``time_s``, ``instrument``, ``direction``, ``data``).

        ``transport/entries`` holds one row per command or reply with the offset and length of its
        bytes in ``transport/bytes``.
        """
        n = len(records["seq"])
        if n == 0:
            return
        group = self.group("transport")
        payloads = [bytes(d) for d in records["data"]]
        offset = int(group.table("bytes").size)
        lengths = np.array([len(p) for p in payloads], dtype=np.int64)
        rows = np.zeros(n, dtype=TRANSPORT_DTYPE)
        rows["seq"] = records["seq"]
        rows["time_s"] = records["time_s"]
        rows["instrument"] = [i.encode() for i in records["instrument"]]
        rows["direction"] = [d.encode() for d in records["direction"]]
        rows["offset"] = offset + np.concatenate([[0], np.cumsum(lengths)[:-1]])
        rows["length"] = lengths
        blob = np.frombuffer(b"".join(payloads), dtype=np.uint8).view(BYTES_DTYPE)
        if blob.size:
            group.append("bytes", blob)
        group.append("entries", rows)

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

    def close(self) -> None:
        if self._file.id.valid:
            self.sync()
            self._file.close()

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def _decode_attrs(attrs: h5py.AttributeManager) -> dict[str, Any]:
    return {key: _decode(attrs[key]) for key in attrs}


def _read_table(group: h5py.Group, table: str) -> np.ndarray:
    if table not in group:
        return np.zeros(0)
    dataset = group[table]
    n = int(dataset.attrs.get("n_committed", dataset.shape[0]))
    return dataset[:n]


class RunView:
    """One run of a session, read-only."""

    def __init__(self, group: h5py.Group) -> None:
        self._group = group
        self.name = group.name.rsplit("/", 1)[-1]
        self.attrs = _decode_attrs(group.attrs)

    @property
    def protocol(self) -> str:
        return str(self.attrs.get("protocol", ""))

    @property
    def status(self) -> str:
        return str(self.attrs.get("status", ""))

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.attrs.get("parameters") or {})

    def tables(self) -> list[str]:
        return [k for k in self._group if isinstance(self._group[k], h5py.Dataset)]

    def table(self, name: str) -> np.ndarray:
        return _read_table(self._group, name)

    def analysis(self, name: str) -> Any:
        """A derived result: a structured table, or the decoded JSON mapping; ``None`` if absent."""
        if "analysis" not in self._group or name not in self._group["analysis"]:
            return None
        data = self._group["analysis"][name][()]
        return _decode(data) if isinstance(data, bytes | str) else data


class Session:
    """A session file open for reading (``with Session(path) as s: ...``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file = _open(self.path, "r")
        try:
            self.format_version = _check_format(self._file, self.path)
            self.attrs = _decode_attrs(self._file.attrs)
            self.runs = [RunView(self._file["runs"][name]) for name in sorted(self._file.get("runs", {}))]
        except (KeyError, OSError) as exc:
            self._file.close()
            raise SessionError(f"{self.path}: damaged session file ({exc})") from None
        except SessionError:
            self._file.close()
            raise

    def group(self, name: str) -> RunView | None:
        return RunView(self._file[name]) if name in self._file else None

    def transport_records(self) -> dict[str, Any]:
        """The recorded transport log as columns (see :meth:`SessionWriter.append_transport`)."""
        group = self.group("transport")
        if group is None:
            raise SessionError(f"{self.path}: no transport log (record with --record-transport)")
        rows = group.table("entries")
        data = group.table("bytes")
        blob = data["byte"].tobytes() if data.size else b""
        return {"seq": rows["seq"], "time_s": rows["time_s"],
                "instrument": [i.decode() for i in rows["instrument"]],
                "direction": [d.decode() for d in rows["direction"]],
                "data": [blob[o:o + n] for o, n in zip(rows["offset"], rows["length"], strict=True)]}

    def runs_of(self, protocol: str) -> Iterator[RunView]:
        return (run for run in self.runs if run.protocol == protocol)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
