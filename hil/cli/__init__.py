"""The ``hil`` command line: one module per command, each with ``add_parser(subparsers)`` and ``run(args)``.

Nothing heavy is imported until a command runs, so ``hil --help`` answers at once. Expected failures
(a bad config file, a refused request, an instrument error, a file that must not be overwritten) print
one line — what went wrong, and what to do — and exit non-zero; ``--debug`` shows the traceback.

Exit codes: 0 done; 1 a comparison found differences; 2 a configuration, file or safety refusal;
3 an instrument reported an error or stopped answering; 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
import warnings
from pathlib import Path

from hil import __version__
from instruments.failures import UserFacingError, UserFacingWarning

COMMANDS = ("demo", "emulate", "characterize", "info", "report", "replay", "calibrate", "train", "experiment",
            "sweep", "watch")
EXIT_USER, EXIT_INSTRUMENT, EXIT_INTERRUPTED = 2, 3, 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hil", description="Hardware-in-loop experiments with stochastic "
                                     "spintronic devices.")
    parser.add_argument("--version", action="version", version=f"hil {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"hil.cli.{name}_command").add_parser(sub)
    return parser


def _is_instrument_failure(exc: BaseException) -> bool:
    """An instrument reported an error, stopped answering, or could not confirm its safe state."""
    from instruments.drivers.errors import InstrumentError
    from instruments.station import SafeStateError

    return isinstance(exc, InstrumentError | SafeStateError)


def report_failure(args: argparse.Namespace, exc: BaseException) -> None:
    """One line naming what went wrong, then what the instruments confirmed and where the data are."""
    if getattr(args, "debug", False):
        traceback.print_exception(exc)
    if isinstance(exc, KeyboardInterrupt):
        print(f"\nhil {args.command}: interrupted (Ctrl-C)", file=sys.stderr)
    else:
        print(f"hil {args.command}: error: {exc}", file=sys.stderr)
    safe_state = getattr(exc, "safe_state", None)
    if safe_state is not None:
        print(f"hil {args.command}: instruments: {safe_state.describe()}", file=sys.stderr)
    session = getattr(exc, "resumable_session", None)
    if session is not None and Path(session).exists():
        print(f"hil {args.command}: everything recorded so far is in {session}; continue with the same command "
              "and --resume", file=sys.stderr)


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int, file=None,
                  line: str | None = None) -> None:
    """A warning meant for the user (a station that may not measure what it should) as one line; others as usual."""
    if issubclass(category, UserFacingWarning):
        print(f"warning: {message}", file=sys.stderr if file is None else file)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.showwarning = _show_warning
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as exc:
        report_failure(args, exc)
        return EXIT_INTERRUPTED
    except (UserFacingError, OSError) as exc:
        report_failure(args, exc)
        return EXIT_INSTRUMENT if _is_instrument_failure(exc) else EXIT_USER


if __name__ == "__main__":
    sys.exit(main())
