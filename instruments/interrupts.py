"""Holding Ctrl-C while something must not be cut in half (a commit to a file, the safe state).

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be, including inside a library
writing a file or in the middle of an instrument exchange. Work that must finish as a whole runs inside
:func:`interrupts_held`: a Ctrl-C that arrives meanwhile is noted, and raised when the work is done (or,
with ``reraise=False``, only logged).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

log = logging.getLogger(__name__)
_depth = 0  # nested blocks: the outermost holds and re-raises


@contextlib.contextmanager
def interrupts_held(reraise: bool = True, what: str = "") -> Iterator[None]:
    """Hold SIGINT in the block (main thread only); raise ``KeyboardInterrupt`` after it if one arrived."""
    global _depth
    if threading.current_thread() is not threading.main_thread() or _depth:
        yield
        return
    received: list[int] = []

    def note(signum: int, frame: object) -> None:
        received.append(signum)
        if what:
            log.warning("Ctrl-C held until %s is done", what)

    previous = signal.signal(signal.SIGINT, note)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        signal.signal(signal.SIGINT, previous)
    if received and reraise:
        raise KeyboardInterrupt
