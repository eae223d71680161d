"""``reset_check``: reset pulses, each read back — the reset success rate of every device.

A reset can only fail on a device that is not already reset, so each trial's "bias" pulse is a strong one the
other way (the reset's amplitude, opposite sign): it switches the device, and the next trial's reset must bring it
back. Every reading after a reset should show the reset state; the fraction that does is the device's reset
success rate (``reset`` in the analysis), and every outcome should be "switched" (a strong pulse that leaves the
device unswitched shows pinning at the other polarity). Failed resets are counted, not played again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from instruments.station_config import StationSpec
from protocols.base import integer
from protocols.device_trial import TrialProtocol
from protocols.engine import Unit


class ResetCheck(TrialProtocol):
    name = "reset_check"
    keys = TrialProtocol.keys | {"repeats"}
    default_reset_retries = 0  # it measures how often resets fail: a failed one is counted, not played again

    def __init__(self, spec: StationSpec, raw: Mapping[str, Any]) -> None:
        super().__init__(spec, raw)
        self.repeats = integer(raw, "repeats", "", default=100)

    def plan(self) -> list[Unit]:
        return [Unit(i, device, {}, self.repeats) for i, device in enumerate(self.devices)]

    def measure_unit(self, unit: Unit) -> dict[str, np.ndarray]:
        reset_a = self.lookup(self.reset_a, unit.device, "reset.current")
        return self.run_trials(unit, np.full(self.repeats, -reset_a))
