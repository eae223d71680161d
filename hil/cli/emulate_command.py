"""``hil emulate``: the emulated probe station's instruments on loopback TCP, until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import threading

from instruments.config_files import EMULATED_STATION_FILE


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("emulate", help="run the emulated probe station's instruments on loopback TCP")
    p.add_argument("--station", default=str(EMULATED_STATION_FILE), help="station file")
    p.add_argument("--chip", default=None, help="chip file (default: the station file's chip)")
    p.add_argument("--seed", type=int, default=None, help="override the chip's seed")
    p.add_argument("--realtime", action="store_true", help="wait for the modeled instrument time")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sim_backend.emulated.probe_station import EmulatedStation

    stop = threading.Event()
    # Ctrl-C (and SIGTERM) only set the event: the servers always stop cleanly, whenever it arrives
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with EmulatedStation(args.station, chip=args.chip, seed=args.seed, realtime=args.realtime) as station:
            print(f"emulated station {station.spec.name!r} on chip {station.chip.spec.name!r}")
            for role, inst in station.spec.instruments.items():
                print(f"  {role:16} {inst.model:14} {inst.address}")
            print("Ctrl-C stops the servers.", flush=True)
            stop.wait()
            print(f"stopped; virtual clock at {station.clock_s:.6f} s", flush=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
