"""Record descriptors: what a table of a run holds, declared by the protocol that fills it.

A protocol (or any measurement the run engine drives) declares each table it records as a
:class:`Descriptor`: a name and its fields, each with a numpy dtype, an SI unit and a one-line meaning.
Every table also carries ``unit``, the index of the plan unit whose measurement produced the row; the
descriptor adds it as the first field. The engine checks every record against its descriptor, and every
sink (the session writer, a progress display, a transport log, a replay reader) learns the tables from
the descriptors: nothing outside the protocol names them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

UNIT_FIELD = "unit"
# names a run's storage uses for itself: no table may take them
RESERVED_TABLES = frozenset({"units", "analysis", "state", "errors"})


@dataclass(frozen=True)
class Field:
    """One column of a record table. ``dtype`` is a numpy type string (``"f8"``, ``"i1"``, ``"S32"``)."""

    name: str
    dtype: str
    unit: str = ""
    doc: str = ""
    reproducible: bool = True  # False for wall-clock times: a replayed run cannot reproduce them

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "unit": self.unit, "doc": self.doc,
                "reproducible": self.reproducible}


@dataclass(frozen=True)
class Descriptor:
    """A record table: its name, its fields (``unit`` first, added here) and what it holds."""

    name: str
    fields: tuple[Field, ...]
    doc: str = ""

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.name in RESERVED_TABLES:
            raise ValueError(f"table name {self.name!r}: an identifier other than {sorted(RESERVED_TABLES)}")
        names = [f.name for f in self.fields]
        if UNIT_FIELD in names or len(set(names)) != len(names):
            raise ValueError(f"table {self.name}: field names must be unique and not {UNIT_FIELD!r}: {names}")
        np.dtype([(f.name, f.dtype) for f in self.fields])  # an invalid type fails here, at declaration

    @property
    def all_fields(self) -> tuple[Field, ...]:
        return (Field(UNIT_FIELD, "i8", "", "index of the plan unit that recorded the row"), *self.fields)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype([(f.name, f.dtype) for f in self.all_fields])

    def rows(self, n: int, unit: int) -> np.ndarray:
        """``n`` zeroed rows of this table, already marked with ``unit``."""
        out = np.zeros(n, dtype=self.dtype)
        out[UNIT_FIELD] = unit
        return out

    @property
    def reproducible_fields(self) -> list[str]:
        """The fields a faithful replay of the run must reproduce exactly (all but wall-clock times)."""
        return [f.name for f in self.all_fields if f.reproducible]

    def check(self, rows: np.ndarray, where: str = "") -> np.ndarray:
        """``rows`` as this table's dtype; ValueError if their fields are not the declared ones."""
        rows = np.asarray(rows)
        if rows.dtype.names is None or set(rows.dtype.names) != set(self.dtype.names):
            raise ValueError(f"{where}table {self.name}: rows have fields {rows.dtype.names}, "
                             f"the descriptor declares {self.dtype.names}")
        return rows if rows.dtype == self.dtype else rows.astype(self.dtype)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "doc": self.doc, "fields": [f.as_dict() for f in self.all_fields]}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Descriptor:
        """The descriptor stored with a run (see :meth:`as_dict`)."""
        fields = tuple(Field(**f) for f in raw["fields"] if f["name"] != UNIT_FIELD)
        return cls(raw["name"], fields, raw.get("doc", ""))


def by_name(descriptors: Iterable[Descriptor]) -> dict[str, Descriptor]:
    """``{name: descriptor}``; ValueError on a repeated name."""
    out: dict[str, Descriptor] = {}
    for descriptor in descriptors:
        if descriptor.name in out:
            raise ValueError(f"table {descriptor.name} is declared twice")
        out[descriptor.name] = descriptor
    return out
