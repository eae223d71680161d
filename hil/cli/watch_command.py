"""``hil watch``: follow a session in the browser while it is being written (the live view, ``hil/live/``)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hil.live.launch import live_port
from instruments.failures import UserFacingError

DEFAULT_PORT = 8765


class WatchError(UserFacingError):
    """``hil watch`` was asked for something it cannot serve."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("watch", help="follow a session live in the browser while it is being written",
                       description="Serve a page that follows a session file while another process writes it: "
                       "P(I) points with Wilson intervals and the running logistic fit per device, hysteresis "
                       "loops, progress with rate and ETA per run, training curves, other record tables, and the "
                       "instrument errors recorded. Loopback only unless --host says otherwise (then the URL "
                       "carries a random token). Serves until Ctrl-C.")
    p.add_argument("file", help="session file (.h5) being written, or written")
    p.add_argument("--port", type=live_port, default=DEFAULT_PORT,
                   help=f"port to serve on (default {DEFAULT_PORT}; 0: any free port)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1, this machine only; "
                   "any other address needs the printed token)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between the page's updates (default 1)")
    p.add_argument("--pending", action="store_true", help="the file may not exist yet: serve at once, and show the "
                   "session once the run creates it (how --live of the measuring commands starts it)")
    p.add_argument("--parent", type=int, default=None, help=argparse.SUPPRESS)  # --live: end when that process ends
    p.set_defaults(func=run)


def check_file(path: Path) -> None:
    if not path.is_file():
        raise WatchError(f"{path}: no such session file; give the .h5 file a run is writing (hil characterize/train "
                         "--out)")


def run(args: argparse.Namespace) -> int:
    if not args.interval > 0:
        raise WatchError(f"--interval {args.interval}: a positive number of seconds")
    if not args.pending:
        check_file(Path(args.file))
    # the file is read while another process writes it: this process must not take HDF5's file lock (read
    # before h5py is first imported)
    os.environ["HDF5_USE_FILE_LOCKING"] = "FALSE"
    from hil.live.feed import SessionFeed
    from hil.live.page_server import watch

    feed = SessionFeed(args.file)
    if not args.pending and (first := feed.snapshot())["stale"]:
        problem = first["problem"]
        raise WatchError(problem if args.file in problem else f"{args.file}: {problem}")

    if args.parent is not None:
        follow_parent(args.parent)

    def announce(url: str) -> None:
        print(f"hil watch: {args.file} live at {url} (Ctrl-C to stop)", flush=True)

    try:
        watch(feed, args.host, args.port, args.interval, announce)
    except KeyboardInterrupt:
        print("hil watch: stopped", file=sys.stderr)
    return 0


def follow_parent(pid: int, every_s: float = 1.0) -> None:
    """End this watcher once the process that started it is gone, however it ended (a killed ``hil
    characterize --live`` must not leave its page serving and its port taken). It only reads, so it simply
    exits (not by a signal: a process started in the background may ignore SIGINT)."""
    import threading
    import time

    def watch_parent() -> None:
        while os.getppid() == pid:
            time.sleep(every_s)
        os._exit(0)

    threading.Thread(target=watch_parent, name="parent watch", daemon=True).start()
