"""Instrument errors: what an instrument reports in its error queue, and an instrument that stops answering.

- :class:`InstrumentErrors`: entries read from error queues, each with the instrument, its code and its
  whole message. The drivers' :meth:`RaisingErrorQueue.check_errors` raises it; PyMeasure's own hooks
  (``check_set_errors`` / ``check_get_errors``, called after a property flagged with them) call
  ``check_errors`` and so raise it too.
- :class:`InstrumentConnectionError`: an instrument that refuses the connection, does not answer within
  the timeout, or drops the link; the message names the instrument, its address and what to do.
- :class:`InstrumentReplyError`: a reply that cannot be read as what was asked (garbled on the line).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from instruments.failures import UserFacingError

log = logging.getLogger(__name__)


class InstrumentError(UserFacingError, RuntimeError):
    """An instrument reported an error, answered nonsense, or stopped answering."""


@dataclass(frozen=True)
class ErrorEntry:
    """One entry of an instrument's error queue."""

    instrument: str  # the role at the station (or the driver's name outside a station)
    code: int
    message: str
    model: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class InstrumentErrors(InstrumentError):
    """Errors read from the error queue of one or more instruments (``entries``)."""

    def __init__(self, entries: Sequence[ErrorEntry], where: str = "") -> None:
        self.entries = tuple(entries)
        self.where = where
        by_instrument: dict[str, list[ErrorEntry]] = {}
        for entry in self.entries:
            by_instrument.setdefault(entry.instrument, []).append(entry)
        text = "; ".join(f"{name} reports: " + "; ".join(str(e) for e in items)
                         for name, items in by_instrument.items())
        super().__init__(text + (f" ({where})" if where else ""))


class InstrumentConnectionError(InstrumentError):
    """An instrument that cannot be reached: connection refused, no reply in time, or the link dropped."""

    def __init__(self, instrument: str, address: str, reason: str, advice: str = "") -> None:
        self.instrument, self.address, self.reason = instrument, address, reason
        super().__init__(f"{instrument} at {address}: {reason}" + (f"; {advice}" if advice else ""))


class InstrumentReplyError(InstrumentError, ValueError):
    """A reply that cannot be read as what the command asked for."""


class RaisingErrorQueue:
    """Mixin for SCPI drivers: :meth:`check_errors` reads ``SYST:ERR?`` until ``0`` and raises on any error.

    Each reply ``<code>,"<message>"`` is split at its first comma only, so messages with commas stay whole.
    PyMeasure's ``check_set_errors``/``check_get_errors`` call :meth:`check_errors`, so a property
    declared with ``check_set_errors=True`` raises :class:`InstrumentErrors` right after the command
    the instrument refused.
    """

    MAX_ERRORS = 100  # the queue is shorter; a longer run means the instrument is not answering sensibly

    def read_error(self) -> tuple[int, str]:
        """The oldest entry of the error queue: ``(code, message)``; ``(0, "No error")`` when empty."""
        reply = self.ask("SYST:ERR?").strip()  # type: ignore[attr-defined]
        code, _, message = reply.partition(",")
        try:
            return int(float(code)), message.strip().strip('"')
        except ValueError:
            name = self.name  # type: ignore[attr-defined]
            raise InstrumentReplyError(f"{name}: error-queue reply {reply!r} is not <code>,<message>") from None

    def check_errors(self) -> list:
        """Read the error queue to the end; raise :class:`InstrumentErrors` naming every error found."""
        return raise_errors(self.name, drain_queue(self.read_error))  # type: ignore[attr-defined]


def drain_queue(read_error: Any, limit: int = RaisingErrorQueue.MAX_ERRORS) -> list[tuple[int, str]]:
    """Call ``read_error()`` until it returns code 0 (at most ``limit`` times); the errors before it."""
    errors = []
    for _ in range(limit):
        code, message = read_error()
        if code == 0:
            break
        errors.append((code, message))
    return errors


def raise_errors(instrument: str, errors: Sequence[tuple[int, str]]) -> list:
    """Raise :class:`InstrumentErrors` for ``errors`` of ``instrument`` (logged); ``[]`` when there are none."""
    if errors:
        entries = [ErrorEntry(instrument, code, message) for code, message in errors]
        for entry in entries:
            log.info("%s: %s", instrument, entry)
        raise InstrumentErrors(entries)
    return []



def operation_complete(instrument: Any) -> None:
    """``*OPC?``: wait until the instrument has done everything sent so far; its reply must be ``1``."""
    reply = instrument.ask("*OPC?").strip()
    if reply != "1":
        raise InstrumentReplyError(f"{instrument.name}: *OPC? answered {reply[:40]!r} instead of 1")
