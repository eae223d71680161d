"""Instrument errors: the SCPI error queue read to the end, every entry raised with its code and text."""

from __future__ import annotations


class InstrumentError(RuntimeError):
    """An instrument reported an error in its queue."""


class RaisingErrorQueue:
    """Mixin for SCPI drivers: :meth:`check_errors` reads ``SYST:ERR?`` until ``0`` and raises on any error.

    Each reply ``<code>,"<message>"`` is split at its first comma only, so messages with commas stay whole.
    """

    MAX_ERRORS = 100  # the queue is shorter; a longer run means the instrument is not answering sensibly

    def read_error(self) -> tuple[int, str]:
        """The oldest entry of the error queue: ``(code, message)``; ``(0, "No error")`` when empty."""
        code, _, message = self.ask("SYST:ERR?").strip().partition(",")  # type: ignore[attr-defined]
        return int(float(code)), message.strip().strip('"')

    def check_errors(self) -> list:
        """Read the error queue; raise :class:`InstrumentError` naming every error found."""
        errors = []
        for _ in range(self.MAX_ERRORS):
            code, message = self.read_error()
            if code == 0:
                break
            errors.append((code, message))
        if errors:
            text = "; ".join(f"{code}: {message}" for code, message in errors)
            raise InstrumentError(f"{self.name} reports: {text}")  # type: ignore[attr-defined]
        return errors
