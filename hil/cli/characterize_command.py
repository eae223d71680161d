"""``hil characterize``: run characterization protocols on a station into a session file."""

from __future__ import annotations

import argparse

from hil.cli.train_command import add_progress_option
from hil.live.launch import add_live_option, live_view


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("characterize", help="run characterization protocols into a session file",
                       description="Run characterization protocols on a station into one HDF5 session. Every "
                       "protocol is checked against the station file before any instrument is connected; the "
                       "outputs go off and the matrix opens on exit, Ctrl-C or error, confirmed by the instruments.")
    p.add_argument("--station", required=True, help="station file (configs/station.emulated.yaml: emulated)")
    p.add_argument("--protocol", required=True, action="append",
                   help="protocol file (configs/protocols/*.yaml); repeat to run several in order")
    p.add_argument("--out", required=True, help="session file to write (.h5)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted session without repeating or "
                   "losing completed trials (refused if the station, chip, seed or version differ)")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    p.add_argument("--chip", default=None, help="emulated station only: chip file on the chuck")
    p.add_argument("--seed", type=int, default=None, help="emulated station only: chip seed")
    p.add_argument("--record-transport", action="store_true",
                   help="also record every command and reply into the session (for hil replay --transport)")
    add_progress_option(p)
    add_live_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hil.lab.characterization import characterize

    with live_view(args, args.out):
        result = characterize(args.station, args.protocol, args.out, resume=args.resume, force=args.force,
                              chip=args.chip, seed=args.seed, record_transport=args.record_transport,
                              progress_every_s=args.progress_every)
    for name, status in result.statuses.items():
        print(f"{name}: {status}")
    if result.virtual_time_s is not None:
        print(f"modeled instrument time: {result.virtual_time_s:.3f} s (virtual clock of the emulated station)")
    if result.safe_state is not None:
        print(f"instruments: {result.safe_state.describe()}")
    print(f"session: {result.path}")
    return 0
