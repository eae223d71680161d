"""The session file format (``hil-session``): names, version, attribute encoding, committed extents.

Documented in ``docs/session-format.md``. Version 2 commits every unit of a run in a ``units`` table
(the unit, the attempt, and where each record table ends after it); version 1 files (one ``n_committed``
per table) are still read.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from instruments.failures import UserFacingError
from protocols.records import Descriptor

FORMAT_NAME = "hil-session"
FORMAT_VERSION = 2
READS_VERSIONS = (1, 2)
CHUNK_ROWS = 1024  # small chunks: appending a few hundred rows stays cheap
UNITS = "units"  # the commit log of a run
STATE = "state"  # a run's two state slots (checkpoints of stateful runs)
ANALYSIS = "analysis"
END_PREFIX = "end__"  # units-table column: the end row of a record table after the unit
TRANSPORT_DTYPE = np.dtype([("seq", "i8"), ("time_s", "f8"), ("instrument", "S32"), ("direction", "S8"),
                            ("offset", "i8"), ("length", "i8")])
BYTES_DTYPE = np.dtype([("byte", "u1")])


class SessionError(UserFacingError):
    """A session file that cannot be read or written as asked (the message says why and what to do)."""


class OutputExistsError(SessionError):
    """An output file exists and the command was not told to replace it."""


def now_utc() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in a session")


def encode(value: Any) -> Any:
    """An attribute value: mappings, lists and tuples as JSON text, anything else as it is."""
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, sort_keys=True, default=_default)
    if value is None:
        return "null"
    return value


def decode(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and (value[:1] in "{[" or value == "null"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def decode_attrs(attrs: h5py.AttributeManager) -> dict[str, Any]:
    return {key: decode(attrs[key]) for key in attrs}


def open_file(path: Path, mode: str) -> h5py.File:
    try:
        return h5py.File(path, mode)
    except FileNotFoundError:
        raise SessionError(f"{path}: no such session file") from None
    except OSError as exc:
        raise SessionError(f"{path}: cannot be read as an HDF5 session ({exc}); the file may be truncated, still "
                           "open in another process, or not a session file") from None


def check_format(f: h5py.File, path: Path) -> int:
    name = f.attrs.get("format")
    if name != FORMAT_NAME:
        raise SessionError(f"{path}: not a hil session file (format attribute {name!r})")
    version = int(f.attrs.get("format_version", -1))
    if version > FORMAT_VERSION:
        raise SessionError(f"{path}: written with session format version {version}, this hil reads up to "
                           f"{FORMAT_VERSION}; upgrade hil to read it")
    if version not in READS_VERSIONS:
        raise SessionError(f"{path}: unknown session format version {version}")
    return version


def units_dtype(descriptors: Mapping[str, Descriptor] | list[str]) -> np.dtype:
    """The commit log of a run with these record tables."""
    names = list(descriptors)
    return np.dtype([("unit", "i8"), ("attempt", "i4"), ("time_s", "f8"), ("n_trials", "i8"), ("state_slot", "i1"),
                     *((END_PREFIX + name, "i8") for name in names)])


def committed_ends(group: h5py.Group) -> dict[str, int] | None:
    """Where each record table of a run ends after its last committed unit (``None``: no commit log)."""
    if UNITS not in group:
        return None
    units = group[UNITS]
    n = int(units.attrs.get("n_committed", 0))
    names = [name[len(END_PREFIX):] for name in units.dtype.names if name.startswith(END_PREFIX)]
    if n == 0:
        return dict.fromkeys(names, 0)
    last = units[n - 1]
    return {name: int(last[END_PREFIX + name]) for name in names}


def committed_count(group: h5py.Group, table: str) -> int:
    """How many rows of ``table`` are committed (read from the commit log, not from the rows)."""
    if table not in group:
        return 0
    ends = committed_ends(group)
    if ends is not None and table in ends:
        return ends[table]
    dataset = group[table]
    return int(dataset.attrs.get("n_committed", dataset.shape[0]))


def committed_rows(group: h5py.Group, table: str) -> np.ndarray:
    """The committed rows of ``table`` (rows of a unit in flight when the process died are left out)."""
    if table not in group:
        return np.zeros(0)
    return group[table][:committed_count(group, table)]
