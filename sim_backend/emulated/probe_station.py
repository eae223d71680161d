"""The emulated probe station: the three emulated instruments of a station file on loopback TCP.

They share one :class:`~sim_backend.emulated.bench.Bench` (chip, virtual clock, routing, trigger
line), wired as the station file says: the switch matrix's crosspoints route the file's devices, the
pulse generator's marker triggers the source meter. ``EmulatedStation(...).spec`` is the station
spec with the servers' VISA addresses filled in, ready for ``instruments.station.Station.open``.

Ports: any free one by default; fixed ones (:func:`station_ports`) so that a station file can point at a
running emulator without edits between starts: a base port and the next ones in the file's role order,
or the ports of the file's own ``TCPIP::host::port::SOCKET`` addresses.
"""

from __future__ import annotations

import dataclasses
import errno
import importlib
import socket
from pathlib import Path

from pyvisa import rname

from instruments.adapters import MODELS
from instruments.failures import UserFacingError
from instruments.station_config import DW_TRACK, HALL_BAR, StationSpec, load_station_spec
from sim_backend.chip import Chip, load_chip
from sim_backend.emulated.bench import Bench
from sim_backend.emulated.server import EmulatedInstrument, InstrumentServer


def emulation_of(model: str) -> type[EmulatedInstrument]:
    """The emulated instrument class of a model, from the one registry of models (``instruments.adapters``)."""
    if model not in MODELS:
        raise EmulatedStationError(f"{model!r} is not a supported instrument model ({', '.join(MODELS)})")
    module, _, name = MODELS[model].emulator.partition(":")
    return getattr(importlib.import_module(module), name)


class EmulatedStationError(UserFacingError, ValueError):
    """The station file and the chip do not fit together, a model has no emulation, or a port is taken."""


def station_ports(spec: StationSpec, base: int | None = None) -> dict[str, int]:
    """The port of each role: ``base``, ``base + 1``, ... in the file's role order; without ``base``, the
    port of each address of the file that is a ``TCPIP::host::port::SOCKET`` (others: any free port)."""
    if base is not None:
        last = base + len(spec.instruments) - 1
        if not 1 <= base <= last <= 65535:
            raise EmulatedStationError(f"base port {base}: the {len(spec.instruments)} instruments need ports "
                                       f"{base} to {last}, within 1 to 65535")
        return {role: base + i for i, role in enumerate(spec.instruments)}
    ports = {}
    for role, inst in spec.instruments.items():
        try:
            resource = rname.parse_resource_name(inst.address)
        except rname.InvalidResourceName:
            continue  # "emulated", or not a VISA address at all: any free port
        if isinstance(resource, rname.TCPIPSocket):
            ports[role] = int(resource.port)
    return ports


def serve(emulated: EmulatedInstrument, role: str, host: str, port: int) -> InstrumentServer:
    """A server for ``role`` on ``host:port`` (0: any free port); a port or host that cannot be used is one line."""
    try:
        return InstrumentServer(emulated, port=port, host=host)
    except socket.gaierror as exc:
        raise EmulatedStationError(f"host {host!r}: not found ({exc.strerror}): give an address or name of this "
                                   "machine") from None
    except OSError as exc:
        advice = {errno.EADDRINUSE: "stop what uses it, or choose other ports",
                  errno.EACCES: "ports below 1024 need privileges: choose ports from 1024 up",
                  errno.EADDRNOTAVAIL: f"{host} is not an address of this machine"}.get(exc.errno)
        if advice is None:
            raise
        raise EmulatedStationError(f"{role}: cannot serve on {host} port {port} ({exc.strerror}): {advice}") from None


class EmulatedStation:
    """Start the emulated instruments of a station file; a context manager that stops them."""

    def __init__(self, station: StationSpec | str | Path, chip: Chip | str | Path | None = None,
                 seed: int | None = None, realtime: bool = False, ports: dict[str, int] | None = None,
                 host: str = "127.0.0.1") -> None:
        spec = station if isinstance(station, StationSpec) else load_station_spec(station)
        if not isinstance(chip, Chip):
            chip = load_chip(chip if chip is not None else spec.chip, seed=seed)
        tracks = chip.tracks.ids if chip.tracks is not None else []
        missing = [d for d in spec.devices if d not in chip.ids and d not in tracks]
        if missing:
            raise EmulatedStationError(f"station devices {', '.join(missing)} are not on chip {chip.spec.name!r} "
                                       f"(its devices: {', '.join([*chip.ids, *tracks])})")
        for device_id, device in spec.devices.items():
            on_chip = DW_TRACK if device_id in tracks else HALL_BAR
            if device.kind != on_chip:
                raise EmulatedStationError(f"device {device_id}: the station says it is a {device.kind}, the chip "
                                           f"has a {on_chip}")
            if on_chip == DW_TRACK:
                continue
            chip_width = float(chip.width_m[chip.index(device_id)])
            if abs(chip_width - device.width_m) > 1e-12:
                raise EmulatedStationError(f"device {device_id}: the station says width {device.width_m:.3g} m, "
                                           f"the chip {chip_width:.3g} m")
        self.chip = chip
        self.bench = Bench(chip, {device: spec.route(device) for device in spec.devices}, realtime=realtime,
                           wiring=spec.wiring,
                           generator_channel=spec.instruments["pulse_generator"].options.get("channel", 1))
        self.instruments: dict[str, EmulatedInstrument] = {}
        self.servers: dict[str, InstrumentServer] = {}
        ports = ports or {}
        try:
            for role, inst in spec.instruments.items():
                emulated = emulation_of(inst.model)(self.bench)
                self.instruments[role] = emulated
                self.servers[role] = serve(emulated, role, host, ports.get(role, 0))
        except BaseException:
            self.close()
            raise
        instruments = {role: dataclasses.replace(inst, address=self.servers[role].address)
                       for role, inst in spec.instruments.items()}
        self.spec = dataclasses.replace(spec, instruments=instruments)

    @property
    def addresses(self) -> dict[str, str]:
        """VISA resource name of each role's server."""
        return {role: server.address for role, server in self.servers.items()}

    @property
    def clock_s(self) -> float:
        """The virtual clock: instrument time a real station would have spent so far."""
        return self.bench.clock_s

    def close(self) -> None:
        for server in self.servers.values():
            server.close()

    def __enter__(self) -> EmulatedStation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
