"""The hardware backend: neurons time-multiplexed onto the physical devices of a station.

Two modes:

- ``pulse``: every sample is a real device trial (reset → bias pulse → read), built by the protocols'
  :class:`~protocols.device_trial.DeviceTrials` like every trial of a bias sweep; the neurons mapped to
  one device are played as one batch, split to the instruments' limits;
- ``curve``: samples are drawn from the devices' latest measured curves, which are re-measured on the
  station every ``remeasure_every`` calls, so drift is tracked at a fraction of the pulses.

``probability`` and ``curve`` always come from the latest measured curves (a :class:`ReplayBackend`
of the station's own measurements), which the layers use to map inputs to currents and for the
surrogate gradient. Every instrument's error queue is read after each call's trials; ``record``, when
set, receives the ``trials`` rows of every batch (a training session stores them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from hil.neurons.backend import DEFAULT_PULSE_S, BackendError, NeuronBackend
from hil.neurons.measured import ReplayBackend
from instruments.station import Station
from instruments.trials import DEFAULT_TIMING, TrialTiming
from protocols.device_trial import TRIALS, DeviceTrials, TrialSettings, switched


class HardwareBackend(NeuronBackend):
    """Neuron trials on a station's devices (see the module docstring)."""

    name = "hardware"
    trial_descriptor = TRIALS

    def __init__(self, station: Station, sweeps: Mapping[str, np.ndarray], reset_current_a: Mapping[str, float],
                 mode: str = "pulse", pulse_width_s: float = DEFAULT_PULSE_S, trials_per_point: int = 100,
                 remeasure_every: int = 50, timing: TrialTiming = DEFAULT_TIMING, seed: int = 0,
                 path: str = "fast", record: Callable[[np.ndarray], None] | None = None) -> None:
        if mode not in ("pulse", "curve"):
            raise BackendError(f"mode: expected 'pulse' or 'curve', got {mode!r}")
        if remeasure_every < 1 or trials_per_point < 1:
            raise BackendError("remeasure_every and trials_per_point must be at least 1")
        ids = list(sweeps)
        for device_id in ids:
            station.spec.device(device_id)
            if device_id not in reset_current_a:
                raise BackendError(f"device {device_id!r}: no reset current given")
        self.station = station
        self.mode = mode
        self.sweeps = {d: np.asarray(v, dtype=np.float64) for d, v in sweeps.items()}
        self.reset_current = {d: float(reset_current_a[d]) for d in ids}
        self.trials_per_point = int(trials_per_point)
        self.remeasure_every = int(remeasure_every)
        self.timing = timing
        self.trials = DeviceTrials(station, TrialSettings(pulse_width_s, timing, path))
        self.record = record
        self.unrecorded: list[np.ndarray] = []  # trials played while nothing recorded them (see take_unrecorded)
        self.physical_trials = 0  # trials actually played on the station (pulse mode: all of them)
        self.calls = 0
        r_ch = [station.channel_resistance(d) for d in ids]
        specs = [station.spec.device(d) for d in ids]
        super().__init__(ids, [s.width_m for s in specs], r_ch, pulse_width_s,
                         reset_current_a=[self.reset_current[d] for d in ids], reset_width_s=timing.reset_width_s,
                         max_current_a=[s.max_current_a for s in specs], seed=seed)
        self.curves = self.measure_curves()

    # -- curves -------------------------------------------------------------------------------------

    def measure_curves(self) -> ReplayBackend:
        """Measure every device's switching curve on the station (fast path) and use it from now on."""
        counts = {}
        with self.station.checked("hardware backend: measuring the device curves"):
            for device_id in self.device_ids:
                currents = np.repeat(self.sweeps[device_id], self.trials_per_point)
                counts[device_id] = self._trials(device_id, currents).reshape(-1, self.trials_per_point).sum(axis=1)
        return self._use_curves(counts)

    def _use_curves(self, counts: Mapping[str, np.ndarray]) -> ReplayBackend:
        """Switched counts per sweep point of every device → the curves the backend follows from now on."""
        self.counts = {d: np.asarray(c, dtype=np.float64) for d, c in counts.items()}
        curves = {device_id: {"width_m": float(self.width_m[d]), "current_a": self.sweeps[device_id],
                              "n_switched": self.counts[device_id], "n_trials": self.trials_per_point}
                  for d, device_id in enumerate(self.device_ids)}
        self.curves = ReplayBackend.from_curves(curves, pulse_width_s=self.pulse_width_s, seed=self.seed,
                                                source=f"station {self.station.spec.name}", device=self._device)
        self.refresh_energy_model()
        return self.curves

    def probability(self, neuron_devices: torch.Tensor, currents_a: torch.Tensor) -> torch.Tensor:
        return self.curves.probability(neuron_devices, currents_a)

    def curve(self, neuron_devices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.curves.curve(neuron_devices)

    def nominal_curve(self, neuron_devices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.curves.nominal_curve(neuron_devices)

    # -- trials -------------------------------------------------------------------------------------

    def _trials(self, device_id: str, currents_a: np.ndarray) -> np.ndarray:
        rows = self.trials.run(device_id, currents_a, self.reset_current[device_id])
        if self.record is not None:
            self.record(rows)
        else:
            self.unrecorded.append(rows)
        self.physical_trials += int(rows.size)
        return switched(rows)

    def take_unrecorded(self) -> list[np.ndarray]:
        """The trials played while nothing recorded them (the curve measurement when the backend started),
        handed over once, so that a session can record every trial."""
        taken, self.unrecorded = self.unrecorded, []
        return taken

    def _draw(self, neuron_devices: torch.Tensor, currents_a: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.mode == "curve":
            if self.calls % self.remeasure_every == 0:
                self.measure_curves()
            return super()._draw(neuron_devices, currents_a)
        flat = currents_a.detach().reshape(-1, currents_a.shape[-1]).to("cpu", torch.float64).numpy()
        devices = neuron_devices.to("cpu").numpy()
        out = np.zeros(flat.shape, dtype=np.float64)
        with self.station.checked("hardware backend trials"):
            for d in np.unique(devices):
                columns = np.flatnonzero(devices == d)
                currents = np.clip(flat[:, columns], 0.0, float(self.max_current_a[d])).ravel()
                out[:, columns] = self._trials(self.device_ids[d], currents).reshape(-1, columns.size)
        return torch.from_numpy(out).to(device=currents_a.device, dtype=currents_a.dtype).reshape(currents_a.shape)

    def state_dict(self) -> dict[str, Any]:
        """Besides the random stream and counters: the measured curves the backend follows."""
        return {**super().state_dict(), "calls": self.calls, "physical_trials": self.physical_trials,
                "curve_counts": {d: torch.from_numpy(c) for d, c in self.counts.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.calls = int(state["calls"])
        self.physical_trials = int(state["physical_trials"])
        self._use_curves({d: c.numpy() for d, c in state["curve_counts"].items()})

    def to(self, device: str | torch.device) -> HardwareBackend:
        super().to(device)
        self.curves.to(device)
        return self

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "mode": self.mode, "station": self.station.spec.name,
                "remeasure_every": self.remeasure_every, "trials_per_point": self.trials_per_point,
                "path": self.trials.settings.path, "physical_trials": self.physical_trials}
