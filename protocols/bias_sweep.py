"""``bias_sweep``: for each device and bias current, N trials of reset → bias pulse → read.

Units are (device, bias point, batch of trials); the bias points of a device come in a seeded random
order by default, so slow drift does not bias the curve. The analysis gives each device's switching
curve with Wilson intervals, logistic and Néel–Brown fits, and the per-width summary.

**Drift tracking** (``reference:``): every ``every`` units of a device, a reference point — ``trials`` trials at
one fixed current per width (default: the middle of the device's bias range) — is measured again. Its
switching fraction against the station time elapsed before it (the planned trials of every earlier unit, at the
trial's modeled duration) shows whether the device moved during the run: the analysis fits the drift of each
device's I50 per hour with its interval (``drift``), and the ``reference_points`` table keeps every point.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from instruments.station_config import StationSpec
from protocols import analysis
from protocols.base import ProtocolConfigError, integer, known_keys, per_width, quantity
from protocols.device_trial import TRIALS, TrialProtocol, switched
from protocols.engine import Unit
from protocols.records import Descriptor, Field

ORDERS = ("shuffled", "ascending")
REFERENCE_POINTS = Descriptor("reference_points", (
    Field("device", "S32", "", "device id"),
    Field("amplitude_a", "f8", "A", "the reference current"),
    Field("station_time_s", "f8", "s", "station time elapsed before the point: the planned trials of every earlier "
                                       "unit at the trial's modeled duration"),
    Field("n_trials", "i4", "", "trials whose reset held"),
    Field("n_switched", "i4", "", "of those, trials that switched"),
), "drift tracking: a fixed reference point of every device measured again every few units")


class BiasSweep(TrialProtocol):
    name = "bias_sweep"
    keys = TrialProtocol.keys | {"bias", "trials_per_point", "order", "reference"}
    records = (*TrialProtocol.records, REFERENCE_POINTS)

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
        self.reference_every, self.reference_trials, self.reference_a = self._reference(raw.get("reference"))
        for device in self.devices:
            for current in (*self.currents(device), *self.reference_currents(device)):
                spec.check_current(device, float(current))  # refused now, not in the middle of the run

    def _reference(self, raw: Any) -> tuple[int, int, dict[float, float]]:
        """``(every, trials, current per width)`` of the ``reference:`` mapping (``every = 0``: no reference
        points); a width without a current takes the middle of its bias range."""
        if raw is None or raw is False:
            return 0, 0, {}
        if not isinstance(raw, Mapping):
            raise ProtocolConfigError(f"reference: expected a mapping with every, trials and current, got {raw!r}")
        known_keys(raw, {"every", "trials", "current"}, "reference.")
        every = integer(raw, "every", "reference.")
        trials = integer(raw, "trials", "reference.", default=self.trials_per_point)
        currents = {width: quantity({"current": v}, "current", "A", f"reference.current[{width * 1e6:g}um].")
                    for width, v in per_width(raw["current"], "reference.current").items()} \
            if raw.get("current") is not None else {}
        for width, bias in self.bias.items():
            currents.setdefault(width, float(0.5 * (bias[0] + bias[-1])))
        return every, trials, currents

    def reference_currents(self, device: str) -> list[float]:
        """The device's reference current (none without ``reference:``)."""
        return [self.lookup(self.reference_a, device, "reference.current")] if self.reference_every else []

    def currents(self, device: str) -> np.ndarray:
        """The bias currents of ``device`` in A, ascending."""
        return self.lookup(self.bias, device, "bias")

    def reset_current(self, device: str) -> float:
        return self.lookup(self.reset_a, device, "reset.current")

    def plan(self) -> list[Unit]:
        rng = np.random.default_rng(self.seed)
        units: list[Unit] = []
        planned = 0  # trials planned before the next unit

        def add(device: str, params: dict[str, Any], n: int) -> None:
            nonlocal planned
            if params.get("reference"):
                params["trials_before"] = planned
            units.append(Unit(len(units), device, params, n))
            planned += n

        for device in self.devices:
            currents = self.currents(device)
            order = rng.permutation(currents.size) if self.order == "shuffled" else np.arange(currents.size)
            device_units = 0
            for point in order:
                remaining = self.trials_per_point
                while remaining > 0:
                    if self.reference_every and device_units % self.reference_every == 0:
                        add(device, {"amplitude_a": self.reference_currents(device)[0], "reference": 1},
                            self.reference_trials)
                    n = min(self.batch, remaining)
                    add(device, {"amplitude_a": float(currents[point])}, n)
                    device_units += 1
                    remaining -= n
            if self.reference_every:  # and one after the device's last point: the drift over its whole sweep
                add(device, {"amplitude_a": self.reference_currents(device)[0], "reference": 1},
                    self.reference_trials)
        return units

    def measure_unit(self, unit: Unit) -> dict[str, np.ndarray]:
        tables = self.run_trials(unit, np.full(unit.n_trials, unit.params["amplitude_a"]))
        if unit.params.get("reference"):
            trials = tables[TRIALS.name]
            held = trials["reset_ok"] == 1
            row = REFERENCE_POINTS.rows(1, unit.index)
            row["device"], row["amplitude_a"] = unit.device, unit.params["amplitude_a"]
            assert self.trials is not None
            aperture_s = self.trials.station.source_meter.aperture_s
            trial_s = self.settings.timing.trial_time(self.settings.width_s, aperture_s)
            row["station_time_s"] = unit.params["trials_before"] * trial_s
            row["n_trials"], row["n_switched"] = int(held.sum()), int(switched(trials[held]).sum())
            tables[REFERENCE_POINTS.name] = row
        return tables

    def analyse(self, tables: Mapping[str, np.ndarray]) -> dict[str, Any]:
        results = super().analyse(tables)
        fits = analysis.fit_curves(results["curves"])
        results = {**results, "fits": fits, "summary": {"by_width": analysis.size_summary(fits, self.widths())}}
        if REFERENCE_POINTS.name in tables and tables[REFERENCE_POINTS.name].size:
            results["drift"] = analysis.drift_tracking(tables[REFERENCE_POINTS.name], fits)
        return results


def trial_table(tables: Mapping[str, np.ndarray]) -> np.ndarray:
    """The trials of a bias sweep or reset check run (an empty table when there are none)."""
    return tables.get(TRIALS.name, np.zeros(0, TRIALS.dtype))
