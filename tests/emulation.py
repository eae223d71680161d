"""A bench with the emulated station's chip and routes, and drivers connected to a served emulator."""

import pyvisa

from instruments.adapters import open_connection
from instruments.config_files import IDEAL_CHIP_FILE
from instruments.station_config import load_station_spec
from sim_backend.chip import DEFAULT_CHIP_FILE, load_chip
from sim_backend.emulated.bench import Bench

STATION_FILE = DEFAULT_CHIP_FILE.parent / "station.emulated.yaml"


def station_bench(routed=None, seed=1, chip=IDEAL_CHIP_FILE):
    """The emulated station's routes on a bench with ``chip`` (default: the ideal devices, so that what the
    emulated instruments do is not blurred by the devices' non-idealities) drawn with ``seed``; ``routed`` device
    switched in."""
    spec = load_station_spec(STATION_FILE)
    bench = Bench(load_chip(chip, seed=seed), {device: spec.route(device) for device in spec.devices})
    if routed is not None:
        bench.set_closed(spec.route(routed))
        assert bench.routed_device == routed
    return bench


def connect(server, driver_class):
    """A driver over pyvisa-py TCP to an emulator's server (2 s timeout)."""
    return driver_class(open_connection(server.address, timeout_ms=2000))


def open_raw(server, timeout_ms=2000):
    """A raw pyvisa-py session to an emulator's server, ``\n``-terminated both ways (as a lab script opens one)."""
    return pyvisa.ResourceManager("@py").open_resource(server.address, read_termination="\n",
                                                       write_termination="\n", timeout=timeout_ms)


def scpi_error_codes(resource) -> list[int]:
    """Every code in an SCPI instrument's error queue, oldest first (the queue is empty afterwards)."""
    codes = []
    while (code := int(resource.query(":SYST:ERR?").split(",")[0])) != 0:
        codes.append(code)
    return codes
