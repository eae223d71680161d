"""Transport record and replay at the PyMeasure adapter level.

- :class:`RecordingAdapter` wraps the adapter a driver talks through and logs every command and reply
  (instrument role, time, direction, bytes) into a shared :class:`TransportLog`.
- :class:`ReplayAdapter` serves a recorded log to the same drivers, offline: each command must be
  exactly the recorded one, and the recorded reply comes back. The first command that differs stops
  the replay with a :class:`TransportMismatch` naming the instrument, the position, what was expected
  and what was sent.

The drivers cannot tell either apart from a live instrument.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pymeasure.adapters import Adapter

WRITE, READ = "write", "read"


def _show(data: bytes) -> str:
    """A readable excerpt of a command or reply (binary uploads are long)."""
    return repr(data) if len(data) <= 80 else f"{data[:60]!r}... ({len(data)} bytes)"


class TransportMismatch(AssertionError):
    """A replayed driver sent something other than what was recorded."""


@dataclass
class TransportEntry:
    seq: int
    time_s: float
    instrument: str
    direction: str
    data: bytes


@dataclass
class TransportLog:
    """Every command and reply, in order, across the instruments of a station."""

    entries: list[TransportEntry] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, instrument: str, direction: str, data: bytes) -> None:
        with self._lock:
            self.entries.append(TransportEntry(len(self.entries), time.time(), instrument, direction, data))

    def for_instrument(self, instrument: str) -> list[TransportEntry]:
        return [e for e in self.entries if e.instrument == instrument]

    def to_records(self, start: int = 0) -> dict[str, Any]:
        """Entries from ``start`` on as columns: fixed fields plus a list of payloads (any length)."""
        chosen = self.entries[start:]
        return {"seq": np.array([e.seq for e in chosen], dtype="i8"),
                "time_s": np.array([e.time_s for e in chosen], dtype="f8"),
                "instrument": [e.instrument for e in chosen],
                "direction": [e.direction for e in chosen],
                "data": [e.data for e in chosen]}

    @classmethod
    def from_records(cls, records: dict[str, Any]) -> TransportLog:
        log = cls()
        for seq, t, inst, direction, data in zip(records["seq"], records["time_s"], records["instrument"],
                                                 records["direction"], records["data"], strict=True):
            log.entries.append(TransportEntry(int(seq), float(t), str(inst), str(direction), bytes(data)))
        return log


class RecordingAdapter(Adapter):
    """Passes everything to ``inner`` and logs it under ``instrument``."""

    def __init__(self, inner: Adapter, log: TransportLog, instrument: str) -> None:
        super().__init__()
        self.inner = inner
        self.transport_log = log
        self.instrument = instrument
        self.connection = getattr(inner, "connection", None)

    def _write(self, command: str, **kwargs: Any) -> None:
        self.transport_log.add(self.instrument, WRITE, command.encode("latin-1"))
        self.inner._write(command, **kwargs)

    def _write_bytes(self, content: bytes, **kwargs: Any) -> None:
        self.transport_log.add(self.instrument, WRITE, bytes(content))
        self.inner._write_bytes(content, **kwargs)

    def _read(self, **kwargs: Any) -> str:
        reply = self.inner._read(**kwargs)
        self.transport_log.add(self.instrument, READ, reply.encode("latin-1"))
        return reply

    def _read_bytes(self, count: int, break_on_termchar: bool = False, **kwargs: Any) -> bytes:
        reply = self.inner._read_bytes(count, break_on_termchar, **kwargs)
        self.transport_log.add(self.instrument, READ, bytes(reply))
        return reply

    def flush_read_buffer(self) -> None:
        self.inner.flush_read_buffer()

    def close(self) -> None:
        self.inner.close()


class ReplayAdapter(Adapter):
    """Serves the recorded replies of one instrument; refuses the first command that differs."""

    def __init__(self, entries: list[TransportEntry], instrument: str) -> None:
        super().__init__()
        self.instrument = instrument
        self.entries = entries
        self.position = 0
        self.connection = None

    def _next(self) -> TransportEntry | None:
        return self.entries[self.position] if self.position < len(self.entries) else None

    def _expect_write(self, sent: bytes) -> None:
        entry = self._next()
        if entry is None or entry.direction != WRITE or entry.data != sent:
            expected = "the end of the recording" if entry is None else (
                f"a read (reply {_show(entry.data)})" if entry.direction == READ else _show(entry.data))
            raise TransportMismatch(f"{self.instrument}: command #{self.position} differs from the recording: "
                                    f"expected {expected}, sent {_show(sent)}")
        self.position += 1

    def _expect_read(self) -> bytes:
        entry = self._next()
        if entry is None or entry.direction != READ:
            expected = "the end of the recording" if entry is None else f"command {_show(entry.data)}"
            raise TransportMismatch(f"{self.instrument}: position #{self.position}: the driver reads a reply, "
                                    f"the recording has {expected}")
        self.position += 1
        return entry.data

    def _write(self, command: str, **kwargs: Any) -> None:
        self._expect_write(command.encode("latin-1"))

    def _write_bytes(self, content: bytes, **kwargs: Any) -> None:
        self._expect_write(bytes(content))

    def _read(self, **kwargs: Any) -> str:
        return self._expect_read().decode("latin-1")

    def _read_bytes(self, count: int, break_on_termchar: bool = False, **kwargs: Any) -> bytes:
        return self._expect_read()

    def flush_read_buffer(self) -> None:
        pass

    @property
    def finished(self) -> bool:
        return self.position == len(self.entries)

    def close(self) -> None:
        pass
