"""``--live`` for the measuring commands: a ``hil watch`` child process that follows the run's session file.

Wired into a command as::

    add_live_option(parser)                       # in add_parser
    with live_view(args, args.out):               # in run, around the measurement
        ...

The watcher runs in its own process (``python -m hil.cli watch FILE --port P --pending``), so the
measurement never waits for the page and the page never holds the measurement's interpreter; its URL is
printed to stderr as soon as it serves, and it is stopped when the block ends, however it ends.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from instruments.failures import UserFacingError

START_TIMEOUT_S = 30.0  # for the watcher to bind its port and print its URL
STOP_TIMEOUT_S = 5.0


class LiveStartError(UserFacingError):
    """The live view could not be started beside the run."""


def add_live_option(parser: argparse.ArgumentParser) -> None:
    """``--live [PORT]``, ``--live-host ADDR``: follow the run in the browser (``hil watch`` beside it)."""
    parser.add_argument("--live", nargs="?", type=live_port, const=0, default=None, metavar="PORT",
                        help="follow the run live in the browser: prints the page's URL (PORT: the port to serve "
                        "on, default any free one)")
    parser.add_argument("--live-host", default="127.0.0.1", metavar="ADDR",
                        help="address of the --live page (default 127.0.0.1; any other address needs the printed "
                        "token)")


def live_port(text: str) -> int:
    """A live-view port argument (``--live``, ``hil watch --port``): 0 (any free one) to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port from 0 to 65535, got {port}")
    return port


def watch_command(session_path: str | Path, port: int, host: str = "127.0.0.1", interval_s: float = 1.0) -> list[str]:
    """The watcher's command line; it also ends by itself if this process dies (``--parent``)."""
    return [sys.executable, "-m", "hil.cli", "watch", str(session_path), "--port", str(port), "--host", host,
            "--interval", str(interval_s), "--pending", "--parent", str(os.getpid())]


@contextlib.contextmanager
def live_view(args: argparse.Namespace, session_path: str | Path, interval_s: float = 1.0) -> Iterator[str | None]:
    """While the block runs, serve the live view of ``session_path`` if ``args.live`` asks for it (the page
    updated every ``interval_s``).

    Yields the page's URL (``None`` without ``--live``); the URL is also printed to stderr.
    """
    if getattr(args, "live", None) is None:
        yield None
        return
    # stderr to a file, not a pipe nobody reads during the run (a full pipe would stall the watcher)
    with tempfile.TemporaryFile("w+") as errors:
        command = watch_command(session_path, args.live, getattr(args, "live_host", "127.0.0.1"), interval_s)
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True)
        try:
            url = first_url(proc, errors)
        except BaseException:
            stop(proc)
            raise
        print(f"live view: {url}", file=sys.stderr, flush=True)
        try:
            yield url
        finally:
            stop(proc)


def first_url(proc: subprocess.Popen, errors: IO[str]) -> str:
    """The URL the watcher announces on its first line (or why it did not start: its last line of stderr)."""
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(START_TIMEOUT_S)
    text = line[0].strip() if line else ""
    if " live at " not in text:
        stop(proc)
        errors.seek(0)
        why = (errors.read().strip().splitlines() or [f"no URL within {START_TIMEOUT_S:.0f} s"])[-1]
        # the watcher speaks of its own options; the user gave --live and --live-host
        why = re.sub(r"--host\b", "--live-host", re.sub(r"--port\b", "--live", why))
        raise LiveStartError(f"--live: the live view did not start ({why})")
    return text.split(" live at ", 1)[1].split(" ", 1)[0]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
