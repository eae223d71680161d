"""The hardware backend: neurons time-multiplexed onto the physical devices of a station.

Two modes (the curve tracking of :mod:`hil.neurons.curve_tracking`, which the simulator in the loop shares):

- ``pulse``: every sample is a real device trial (reset → bias pulse → read), built by the protocols'
  :class:`~protocols.device_trial.DeviceTrials` like every trial of a bias sweep; the neurons mapped to
  one device are played as one batch, split to the instruments' limits;
- ``curve``: samples are drawn from the devices' latest measured curves, which are re-measured on the
  station every ``remeasure_every`` calls, so drift is tracked at a fraction of the pulses.

``probability`` and ``curve`` always come from the latest measured curves (a :class:`ReplayBackend`
of the station's own measurements), which the layers use to map inputs to currents and for the
surrogate gradient. Every instrument's error queue is read after each call's trials; ``record``, when
set, receives the ``trials`` rows of every batch (a training session stores them). ``instrument_time_s``: the
trials played × the station's modeled time of one trial (:attr:`HardwareBackend.trial_time_s`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from hil.neurons.backend import DEFAULT_PULSE_S, BackendError
from hil.neurons.curve_tracking import CurveTrackingBackend, check_tracking
from instruments.station import Station
from instruments.trials import DEFAULT_TIMING, TrialTiming
from protocols.device_trial import TRIALS, DeviceTrials, TrialSettings, final_outcomes


class HardwareBackend(CurveTrackingBackend):
    """Neuron trials on a station's devices (see the module docstring)."""

    name = "hardware"
    trial_descriptor = TRIALS

    def __init__(self, station: Station, sweeps: Mapping[str, np.ndarray], reset_current_a: Mapping[str, float],
                 mode: str = "pulse", pulse_width_s: float = DEFAULT_PULSE_S, trials_per_point: int = 100,
                 remeasure_every: int = 50, timing: TrialTiming = DEFAULT_TIMING, seed: int = 0,
                 path: str = "fast", record: Callable[[np.ndarray], None] | None = None) -> None:
        check_tracking(mode, trials_per_point, remeasure_every)
        ids = list(sweeps)
        for device_id in ids:
            station.spec.device(device_id)
            if device_id not in reset_current_a:
                raise BackendError(f"device {device_id!r}: no reset current given")
        self.station = station
        self.reset_current = {d: float(reset_current_a[d]) for d in ids}
        self.timing = timing
        self.trials = DeviceTrials(station, TrialSettings(pulse_width_s, timing, path))
        self.record = record
        self.unrecorded: list[np.ndarray] = []  # trials played while nothing recorded them (see take_unrecorded)
        r_ch = [station.channel_resistance(d) for d in ids]
        specs = [station.spec.device(d) for d in ids]
        super().__init__(ids, [s.width_m for s in specs], r_ch, pulse_width_s, sweeps,
                         timing.trial_time(pulse_width_s, station.source_meter.aperture_s), mode, trials_per_point,
                         remeasure_every, reset_current_a=[self.reset_current[d] for d in ids],
                         reset_width_s=timing.reset_width_s, max_current_a=[s.max_current_a for s in specs], seed=seed,
                         source=f"station {station.spec.name}")

    @property
    def trial_time_s(self) -> float:
        """The modeled time (s) of one trial on this station: as the trials played so far took it in the trials'
        own model (their path, timing and the station's wiring); before any, the fast path's
        :meth:`~instruments.trials.TrialTiming.trial_time`."""
        if self.trials.trials_played:
            return self.trials.instrument_time_s / self.trials.trials_played
        return self.timing.trial_time(self.pulse_width_s, self.station.source_meter.aperture_s)

    # -- trials -------------------------------------------------------------------------------------

    def _play(self, neuron_devices: torch.Tensor, currents_a: torch.Tensor, what: str) -> torch.Tensor:
        flat = currents_a.detach().reshape(-1, currents_a.shape[-1]).to("cpu", torch.float64).numpy()
        devices = neuron_devices.to("cpu").numpy()
        out = np.zeros(flat.shape, dtype=np.float64)
        with self.station.checked(f"hardware backend: {what}"):
            for d in np.unique(devices):
                columns = np.flatnonzero(devices == d)
                currents = np.clip(flat[:, columns], 0.0, float(self.max_current_a[d])).ravel()
                out[:, columns] = self._trials(self.device_ids[d], currents).reshape(-1, columns.size)
        return torch.from_numpy(out).to(device=currents_a.device, dtype=currents_a.dtype).reshape(currents_a.shape)

    def _trials(self, device_id: str, currents_a: np.ndarray) -> np.ndarray:
        rows = self.trials.run(device_id, currents_a, self.reset_current[device_id])
        self.trials.take_extra()  # the devices' measured Hall levels stay in self.trials.levels
        if self.record is not None:
            self.record(rows)
        else:
            self.unrecorded.append(rows)
        self.physical_trials += int(rows.size)
        return final_outcomes(rows, currents_a.size)  # a trial whose reset failed counts by its replay

    def take_unrecorded(self) -> list[np.ndarray]:
        """The trials played while nothing recorded them (the curve measurement when the backend started),
        handed over once, so that a session can record every trial."""
        taken, self.unrecorded = self.unrecorded, []
        return taken

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "station": self.station.spec.name, "path": self.trials.settings.path}
