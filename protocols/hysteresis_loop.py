"""``hysteresis_loop``: DC current from −I_max to +I_max and back, ``steps`` per branch, ``dwell`` per step,
``R_xy`` read at every step. The analysis gives each device's loop half-width and the per-width summary."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from instruments.station import DeviceOpenError
from instruments.station_config import StationSpec
from protocols import analysis
from protocols.base import StationProtocol, integer, per_width, quantity
from protocols.engine import Unit
from protocols.records import Descriptor, Field

OPEN_OHM = 1e30  # a reading at or above this (or not finite) is an open circuit

STEPS = Descriptor("steps", (
    Field("device", "S32", "", "device id"),
    Field("step", "i4", "", "order of the step within the loop"),
    Field("current_a", "f8", "A", "DC current of the step"),
    Field("dwell_s", "f8", "s", "how long the current flowed before the reading"),
    Field("reading_ohm", "f8", "ohm", "R_xy at the end of the dwell (inf: open)"),
    Field("time_s", "f8", "s", "Unix time when the loop was measured", reproducible=False),
), "current hysteresis loops; one row per step")


class HysteresisLoop(StationProtocol):
    name = "hysteresis_loop"
    records = (STEPS,)
    keys = StationProtocol.keys | {"max_current", "steps", "dwell", "loops"}

    def __init__(self, spec: StationSpec, raw: Mapping[str, Any]) -> None:
        super().__init__(spec, raw)
        self.max_current = {w: quantity({"i": v}, "i", "A", f"max_current[{w * 1e6:g}um].")
                            for w, v in per_width(raw.get("max_current"), "max_current").items()}
        self.steps = integer(raw, "steps", "", default=81, minimum=3)
        self.dwell_s = quantity(raw, "dwell", "s", "", default="1ms")
        self.loops = integer(raw, "loops", "", default=1)
        for device in self.devices:
            spec.check_current(device, self.lookup(self.max_current, device, "max_current"), what="DC current")

    @classmethod
    def repeated(cls, parameters: Mapping[str, Any], times: int) -> dict[str, Any]:
        """The parameters of the same loops measured ``times`` times over (a spread to judge one loop by)."""
        return {**parameters, "loops": int(parameters.get("loops", 1)) * times}

    def currents(self, device: str) -> np.ndarray:
        i_max = self.lookup(self.max_current, device, "max_current")
        up = np.linspace(-i_max, i_max, self.steps)
        return np.concatenate([up, up[::-1][1:]])

    def plan(self) -> list[Unit]:
        return [Unit(len(self.devices) * loop + i, device, {"loop": loop})
                for loop in range(self.loops) for i, device in enumerate(self.devices)]

    def measure_unit(self, unit: Unit) -> dict[str, np.ndarray]:
        currents = self.currents(unit.device)
        readings = np.asarray(self.station.dc_sweep(unit.device, list(currents), self.dwell_s), dtype=np.float64)
        rows = STEPS.rows(currents.size, unit.index)
        rows["device"] = unit.device
        rows["step"] = np.arange(currents.size)
        rows["current_a"] = currents
        rows["dwell_s"] = self.dwell_s
        rows["reading_ohm"] = readings
        rows["time_s"] = time.time()
        if not np.any(np.isfinite(readings) & (np.abs(readings) < OPEN_OHM)):
            raise DeviceOpenError(unit.device, f"device {unit.device}: every reading of its loop is open; it may have "
                                  "broken down. No further current will be sent to it", rows)
        return {STEPS.name: rows}

    def analyse(self, tables: Mapping[str, np.ndarray]) -> dict[str, Any]:
        loops = analysis.loop_widths(tables[STEPS.name])
        return {**super().analyse(tables), "loops": loops,
                "summary": {"by_width": analysis.size_summary({}, self.widths(), loops)}}
