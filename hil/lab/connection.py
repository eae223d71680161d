"""Connecting to the station a file describes: the emulated probe station in-process, or the real one."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hil.lab.provenance import is_emulated
from instruments.station import Station
from instruments.station_config import StationConfigError, StationSpec, load_station_spec
from instruments.transport import TransportLog


def station_spec(station: str | Path | StationSpec) -> StationSpec:
    return station if isinstance(station, StationSpec) else load_station_spec(station)


@contextlib.contextmanager
def open_station(station: str | Path | StationSpec, chip: str | Path | None = None, seed: int | None = None,
                 outcome_seed: int | None = None,
                 record: TransportLog | None = None) -> Iterator[tuple[Station, Any]]:
    """Connect to the station; start an emulated one in-process when its addresses say ``emulated``.

    Yields ``(station, emulated)`` where ``emulated`` is the :class:`EmulatedStation` or ``None``. On exit
    the instruments are put in the safe state (and asked to confirm it), then disconnected.
    """
    spec = station_spec(station)
    emulated_roles = [role for role, inst in spec.instruments.items() if inst.address == "emulated"]
    if emulated_roles and not is_emulated(spec):
        raise StationConfigError(f"instruments {', '.join(emulated_roles)} are 'emulated' but the others are not: "
                                 "a station is either all emulated or all real")
    if not emulated_roles:
        if chip is not None or seed is not None:
            raise StationConfigError("--chip and --seed choose the emulated station's chip; this station file "
                                     "names real instruments")
        with Station.open(spec, record=record) as connected:
            yield connected, None
        return
    from sim_backend.emulated.probe_station import EmulatedStation

    with EmulatedStation(spec, chip=chip, seed=seed) as emulated:
        if outcome_seed is not None:
            emulated.chip.reseed(outcome_seed)
        with Station.open(emulated.spec, record=record) as connected:
            yield connected, emulated
