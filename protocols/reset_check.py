"""``reset_check``: reset pulses, each read back — the reset success rate of every device.

A trial with a zero bias pulse: every outcome should be "not switched", and every reading after the
reset should show the reset state.
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

    def __init__(self, spec: StationSpec, raw: Mapping[str, Any]) -> None:
        super().__init__(spec, raw)
        self.repeats = integer(raw, "repeats", "", default=100)

    def plan(self) -> list[Unit]:
        return [Unit(i, device, {}, self.repeats) for i, device in enumerate(self.devices)]

    def measure_unit(self, unit: Unit) -> dict[str, np.ndarray]:
        return self.run_trials(unit, np.zeros(self.repeats))
