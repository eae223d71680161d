"""``hil emulate``: the emulated probe station's instruments on TCP, until Ctrl-C.

With ``--port BASE`` the instruments serve on BASE, BASE+1, ... in the station file's role order; without
it, on the ports of the file's ``TCPIP::host::port::SOCKET`` addresses, or on any free ports. The printed
``instruments:`` section is a station file's, so a station file can point at a running emulator and stay
the same between starts.
"""

from __future__ import annotations

import argparse
import signal
import threading

from instruments.config_files import EMULATED_STATION_FILE


def port_number(text: str) -> int:
    """A TCP port argument, 1 to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 1 to 65535, got {value}")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("emulate", help="run the emulated probe station's instruments on TCP",
                       description="Serve the emulated probe station's instruments on TCP until Ctrl-C, and print "
                       "the station file's instruments section with their addresses.")
    p.add_argument("--station", default=str(EMULATED_STATION_FILE), help="station file")
    p.add_argument("--chip", default=None, help="chip file (default: the station file's chip)")
    p.add_argument("--seed", type=int, default=None, help="override the chip's seed")
    p.add_argument("--realtime", action="store_true", help="wait for the modeled instrument time")
    p.add_argument("--port", type=port_number, default=None, metavar="BASE",
                   help="serve the instruments on BASE, BASE+1, BASE+2 in the station file's role order (default: "
                   "the ports of the file's TCPIP::host::port::SOCKET addresses, else any free ports)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import yaml

    from instruments.station_config import load_station_spec
    from sim_backend.emulated.probe_station import EmulatedStation, station_ports

    spec = load_station_spec(args.station)
    ports = station_ports(spec, args.port)
    stop = threading.Event()
    # Ctrl-C (and SIGTERM) only set the event: the servers always stop cleanly, whenever it arrives
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with EmulatedStation(spec, chip=args.chip, seed=args.seed, realtime=args.realtime, ports=ports,
                             host=args.host) as station:
            print(f"emulated station {station.spec.name!r} on chip {station.chip.spec.name!r}")
            for role, inst in station.spec.instruments.items():
                print(f"  {role:16} {inst.model:14} {inst.address}")
            print(f"# for a station file (the rest as in {args.station}):")
            instruments = {role: {"model": inst.model, "address": inst.address, **(
                {"options": inst.options} if inst.options else {})} for role, inst in station.spec.instruments.items()}
            print(yaml.safe_dump({"instruments": instruments}, sort_keys=False, default_flow_style=False), end="")
            print("Ctrl-C stops the servers.", flush=True)
            stop.wait()
            print(f"stopped; virtual clock at {station.clock_s:.6f} s", flush=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
