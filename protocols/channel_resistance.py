"""``channel_resistance``: the two-wire channel resistance of each device (sets the current → voltage map)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from protocols.base import StationProtocol
from protocols.engine import Unit
from protocols.records import Descriptor, Field

RESISTANCE = Descriptor("resistance", (
    Field("device", "S32", "", "device id"),
    Field("r_ch_ohm", "f8", "ohm", "two-wire channel resistance at the read current"),
    Field("time_s", "f8", "s", "Unix time of the reading", reproducible=False),
), "channel resistance; one row per device")


class ChannelResistance(StationProtocol):
    name = "channel_resistance"
    records = (RESISTANCE,)

    def plan(self) -> list[Unit]:
        return [Unit(i, device) for i, device in enumerate(self.devices)]

    def measure_unit(self, unit: Unit) -> dict[str, np.ndarray]:
        rows = RESISTANCE.rows(1, unit.index)
        rows["device"] = unit.device
        rows["r_ch_ohm"] = self.station.measure_channel_resistance(unit.device)
        rows["time_s"] = time.time()
        return {RESISTANCE.name: rows}

    def analyse(self, tables: Mapping[str, np.ndarray]) -> dict[str, Any]:
        return {**super().analyse(tables), "channel_resistance": channel_resistances(tables)}


def resistance_readings(tables: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Device id → every channel-resistance reading (Ω) of a run's tables (or of several runs' tables)."""
    rows = tables.get(RESISTANCE.name, np.zeros(0, RESISTANCE.dtype))
    return {d.decode(): rows["r_ch_ohm"][rows["device"] == d] for d in np.unique(rows["device"])}


def channel_resistances(tables: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Device id → mean channel resistance in Ω of a run's ``resistance`` table."""
    return {device: float(np.mean(values)) for device, values in resistance_readings(tables).items()}
