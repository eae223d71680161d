"""Transport at the PyMeasure adapter level: guarding, recording and replaying what goes over the line.

- :class:`GuardedAdapter` names the instrument in every transport failure: a reply that does not come
  within the timeout, a dropped or reset link become an
  :class:`~instruments.drivers.errors.InstrumentConnectionError` that says which instrument, at which
  address, and what to do.
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
import pyvisa
from pymeasure.adapters import Adapter

from instruments.drivers.errors import InstrumentConnectionError
from instruments.failures import UserFacingError

WRITE, READ = "write", "read"


def _show(data: bytes) -> str:
    """A readable excerpt of a command or reply (binary uploads are long)."""
    return repr(data) if len(data) <= 80 else f"{data[:60]!r}... ({len(data)} bytes)"


class TransportMismatch(UserFacingError, AssertionError):
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
    """Every command and reply, in order, across the instruments of a station.

    A recording session drains what it has written (:meth:`take`), so a long run keeps only the entries
    since the last unit in memory.
    """

    entries: list[TransportEntry] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _next_seq: int = 0

    def add(self, instrument: str, direction: str, data: bytes) -> None:
        with self._lock:
            self.entries.append(TransportEntry(self._next_seq, time.time(), instrument, direction, data))
            self._next_seq += 1

    def for_instrument(self, instrument: str) -> list[TransportEntry]:
        return [e for e in self.entries if e.instrument == instrument]

    def take(self) -> dict[str, Any]:
        """Remove every entry logged so far and return them as columns (see :meth:`columns`)."""
        with self._lock:
            taken, self.entries = self.entries, []
        return self.columns(taken)

    @staticmethod
    def columns(entries: list[TransportEntry]) -> dict[str, Any]:
        """Entries as columns: fixed fields plus a list of payloads (any length)."""
        return {"seq": np.array([e.seq for e in entries], dtype="i8"),
                "time_s": np.array([e.time_s for e in entries], dtype="f8"),
                "instrument": [e.instrument for e in entries],
                "direction": [e.direction for e in entries],
                "data": [e.data for e in entries]}

    @classmethod
    def from_records(cls, records: dict[str, Any]) -> TransportLog:
        log = cls()
        for seq, t, inst, direction, data in zip(records["seq"], records["time_s"], records["instrument"],
                                                 records["direction"], records["data"], strict=True):
            log.entries.append(TransportEntry(int(seq), float(t), str(inst), str(direction), bytes(data)))
        log._next_seq = len(log.entries)
        return log


def connection_error(instrument: str, address: str, exc: BaseException, timeout_s: float | None = None
                     ) -> InstrumentConnectionError:
    """An :class:`InstrumentConnectionError` for a transport failure ``exc`` of ``instrument`` at ``address``."""
    code = getattr(exc, "error_code", None)
    if code == pyvisa.constants.StatusCode.error_timeout:
        after = f" within {timeout_s:g} s" if timeout_s is not None else " in time"
        return InstrumentConnectionError(instrument, address, f"no reply{after}",
                                         "is it on, connected and not busy? Check its front panel")
    if isinstance(exc, ConnectionRefusedError):
        return InstrumentConnectionError(instrument, address, "the connection was refused",
                                         "is the instrument on, and is its address in the station file right?")
    reason = getattr(exc, "description", None) or getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return InstrumentConnectionError(instrument, address, f"the connection failed ({reason})",
                                     "check the cable or network and that the instrument is on")


class GuardedAdapter(Adapter):
    """Passes everything to ``inner``; a transport failure becomes an :class:`InstrumentConnectionError`."""

    def __init__(self, inner: Adapter, instrument: str, address: str, timeout_s: float | None = None) -> None:
        super().__init__()
        self.inner = inner
        self.instrument = instrument
        self.address = address
        self.timeout_s = timeout_s
        self.connection = getattr(inner, "connection", None)

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except (pyvisa.errors.VisaIOError, OSError, EOFError) as exc:
            raise connection_error(self.instrument, self.address, exc, self.timeout_s) from exc

    def _write(self, command: str, **kwargs: Any) -> None:
        self._call(self.inner.write, command, **kwargs)

    def _write_bytes(self, content: bytes, **kwargs: Any) -> None:
        self._call(self.inner.write_bytes, content, **kwargs)

    def _read(self, **kwargs: Any) -> str:
        return self._call(self.inner.read, **kwargs)

    def _read_bytes(self, count: int, break_on_termchar: bool = False, **kwargs: Any) -> bytes:
        return self._call(self.inner.read_bytes, count, break_on_termchar=break_on_termchar, **kwargs)

    def flush_read_buffer(self) -> None:
        self._call(self.inner.flush_read_buffer)

    def close(self) -> None:
        try:
            self.inner.close()
        except (pyvisa.errors.Error, OSError):
            pass  # a link that is already gone is closed


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
        self.inner.write(command, **kwargs)

    def _write_bytes(self, content: bytes, **kwargs: Any) -> None:
        self.transport_log.add(self.instrument, WRITE, bytes(content))
        self.inner.write_bytes(content, **kwargs)

    def _read(self, **kwargs: Any) -> str:
        reply = self.inner.read(**kwargs)
        self.transport_log.add(self.instrument, READ, reply.encode("latin-1"))
        return reply

    def _read_bytes(self, count: int, break_on_termchar: bool = False, **kwargs: Any) -> bytes:
        reply = self.inner.read_bytes(count, break_on_termchar=break_on_termchar, **kwargs)
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
