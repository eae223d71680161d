"""``bias_sweep``: for each device and bias current, N trials of reset → bias pulse → read.

Units are (device, bias point, batch of trials); the bias points of a device come in a seeded random
order by default, so slow drift does not bias the curve. The analysis gives each device's switching
curve with Wilson intervals, logistic and Néel–Brown fits, and the per-width summary.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from instruments.station_config import StationSpec
from protocols import analysis
from protocols.base import ProtocolConfigError, integer, known_keys, per_width, quantity
from protocols.device_trial import TRIALS, TrialProtocol
from protocols.engine import Unit

ORDERS = ("shuffled", "ascending")


class BiasSweep(TrialProtocol):
    name = "bias_sweep"
    keys = TrialProtocol.keys | {"bias", "trials_per_point", "order"}

    def __init__(self, spec: StationSpec, raw: Mapping[str, Any]) -> None:
        super().__init__(spec, raw)
        self.trials_per_point = integer(raw, "trials_per_point", "", default=200)
        self.batch = integer(raw, "batch", "", default=self.trials_per_point)
        self.order = raw.get("order", "shuffled")
        if self.order not in ORDERS:
            raise ProtocolConfigError(f"order: expected 'shuffled' or 'ascending', got {self.order!r}")
        self.bias: dict[float, np.ndarray] = {}
        for width, entry in per_width(raw.get("bias"), "bias").items():
            where = f"bias[{width * 1e6:g}um]."
            if isinstance(entry, Mapping):
                known_keys(entry, {"start", "stop", "points"}, where)
                start, stop = quantity(entry, "start", "A", where), quantity(entry, "stop", "A", where)
                if stop <= start:
                    raise ProtocolConfigError(f"{where}stop: must be above start, got {entry['stop']!r}")
                currents = np.linspace(start, stop, integer(entry, "points", where, minimum=2))
            elif isinstance(entry, list) and entry:
                currents = np.array([quantity({"i": v}, "i", "A", where) for v in entry])
            else:
                raise ProtocolConfigError(f"{where[:-1]}: expected {{start, stop, points}} or a list of currents")
            self.bias[width] = currents
        for device in self.devices:
            for current in self.currents(device):
                spec.check_current(device, float(current))  # refused now, not in the middle of the run

    def currents(self, device: str) -> np.ndarray:
        """The bias currents of ``device`` in A, ascending."""
        return self.lookup(self.bias, device, "bias")

    def reset_current(self, device: str) -> float:
        return self.lookup(self.reset_a, device, "reset.current")

    def plan(self) -> list[Unit]:
        rng = np.random.default_rng(self.seed)
        units: list[Unit] = []
        for device in self.devices:
            currents = self.currents(device)
            order = rng.permutation(currents.size) if self.order == "shuffled" else np.arange(currents.size)
            for point in order:
                remaining = self.trials_per_point
                while remaining > 0:
                    n = min(self.batch, remaining)
                    units.append(Unit(len(units), device, {"amplitude_a": float(currents[point])}, n))
                    remaining -= n
        return units

    def measure_unit(self, unit: Unit) -> dict[str, np.ndarray]:
        return self.run_trials(unit, np.full(unit.n_trials, unit.params["amplitude_a"]))

    def analyse(self, tables: Mapping[str, np.ndarray]) -> dict[str, Any]:
        results = super().analyse(tables)
        fits = analysis.fit_curves(results["curves"])
        return {**results, "fits": fits, "summary": {"by_width": analysis.size_summary(fits, self.widths())}}


def trial_table(tables: Mapping[str, np.ndarray]) -> np.ndarray:
    """The trials of a bias sweep or reset check run (an empty table when there are none)."""
    return tables.get(TRIALS.name, np.zeros(0, TRIALS.dtype))
