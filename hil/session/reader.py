"""Reading session files: runs, their record tables (committed rows only), analyses and the transport log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from hil.session.format import (
    ANALYSIS,
    UNITS,
    SessionError,
    check_format,
    committed_count,
    committed_rows,
    decode,
    decode_attrs,
    open_file,
)
from protocols.records import Descriptor


class RunView:
    """One run of a session, read-only."""

    def __init__(self, group: h5py.Group) -> None:
        self._group = group
        self.name = group.name.rsplit("/", 1)[-1]
        self.attrs = decode_attrs(group.attrs)

    @property
    def protocol(self) -> str:
        """The name of what was run (a protocol, or ``training``)."""
        return str(self.attrs.get("protocol", ""))

    @property
    def status(self) -> str:
        return str(self.attrs.get("status", ""))

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.attrs.get("parameters") or {})

    @property
    def descriptors(self) -> dict[str, Descriptor]:
        """The record tables the run declared (none for a version 1 file)."""
        return {name: Descriptor.from_dict(raw) for name, raw in (self.attrs.get("descriptors") or {}).items()}

    def table(self, name: str) -> np.ndarray:
        """The committed rows of table ``name`` (empty when absent)."""
        return committed_rows(self._group, name)

    def table_names(self) -> list[str]:
        """The record tables of the run (the declared ones; every dataset of a version 1 file)."""
        names = list(self.descriptors) or [k for k in self._group if isinstance(self._group[k], h5py.Dataset)]
        return [name for name in names if name != UNITS]

    def tables(self) -> dict[str, np.ndarray]:
        """Every declared record table, committed rows only."""
        return {name: self.table(name) for name in self.table_names()}

    def row_counts(self) -> dict[str, int]:
        """Committed rows per record table, without reading them."""
        return {name: committed_count(self._group, name) for name in self.table_names()}

    def units(self) -> np.ndarray:
        """The commit log: one row per committed unit (unit, attempt, time, where each table ended)."""
        return self.table(UNITS)

    def analysis(self, name: str) -> Any:
        """A derived result: a structured table, or the decoded JSON; ``None`` if absent."""
        if ANALYSIS not in self._group or name not in self._group[ANALYSIS]:
            return None
        data = self._group[ANALYSIS][name][()]
        return decode(data) if isinstance(data, bytes | str) else data

    def analyses(self) -> dict[str, Any]:
        if ANALYSIS not in self._group:
            return {}
        return {name: self.analysis(name) for name in self._group[ANALYSIS]}


class Session:
    """A session file open for reading (``with Session(path) as s: ...``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file = open_file(self.path, "r")
        try:
            self.format_version = check_format(self._file, self.path)
            self.attrs = decode_attrs(self._file.attrs)
            self.runs = [RunView(self._file["runs"][name]) for name in sorted(self._file.get("runs", {}))]
        except (KeyError, OSError) as exc:
            self._file.close()
            raise SessionError(f"{self.path}: damaged session file ({exc})") from None
        except SessionError:
            self._file.close()
            raise

    @property
    def kind(self) -> str:
        return str(self.attrs.get("kind", ""))

    def transport_records(self) -> dict[str, Any]:
        """The recorded transport log as columns (``seq``, ``time_s``, ``instrument``, ``direction``, ``data``)."""
        if "transport" not in self._file:
            raise SessionError(f"{self.path}: no transport log (record with --record-transport)")
        group = self._file["transport"]
        rows = committed_rows(group, "entries")
        data = committed_rows(group, "bytes")
        blob = data["byte"].tobytes() if data.size else b""
        if rows.size and int((rows["offset"] + rows["length"]).max()) > len(blob):
            raise SessionError(f"{self.path}: the transport log's entries point past its committed bytes; the "
                               "recording is damaged")
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


def committed_units(path: str | Path, run: int = 0) -> int:
    """How many units run ``run`` of a session has committed, read while another process may be writing it
    (no file locking; 0 while the file or the run does not exist yet, or is caught between two writes)."""
    try:
        with h5py.File(path, "r", locking=False) as f:
            log = f.get(f"runs/{run:03d}/{UNITS}")
            return int(log.attrs["n_committed"]) if log is not None else 0
    except (OSError, KeyError):
        return 0
