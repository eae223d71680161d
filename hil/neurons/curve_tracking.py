"""Devices that play trials, and the switching curves measured by those trials: pulse and curve mode.

A :class:`CurveTrackingBackend` owns devices on which it plays device trials (reset → bias pulse → read): a
station's (:class:`~hil.neurons.hardware.HardwareBackend`) or those of any backend whose samples are trials
(:class:`InLoopBackend`: the simulator of a drifting chip). When it starts it measures every device's curve with
its own trials (``trials_per_point`` trials at each current of the device's sweep), and then samples in one of two
modes:

- ``pulse``: every sample is a trial on the devices;
- ``curve``: samples are drawn from the latest measured curves, measured again every ``remeasure_every`` calls,
  so drift is tracked at a fraction of the trials.

``probability`` and ``curve`` always come from the latest measured curves (a :class:`ReplayBackend` of the
backend's own measurements): the layers map inputs to currents and take the surrogate gradient from them.
``physical_trials`` counts every trial played (curve measurements included) and ``instrument_time_s`` is how long
they keep a station busy: trials × ``trial_time_s``, the modeled time of one trial.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from hil.neurons.backend import BackendError, NeuronBackend
from hil.neurons.measured import ReplayBackend, sweep_currents

MODES = ("pulse", "curve")
SWEEP_POINTS = 16  # currents of a sweep in the simulator's curve measurement
SWEEP_SPAN = (-8.0, 4.0)  # in logistic widths around each device's I50: P ≈ 0.003 → 1 on a Néel–Brown curve
TRIALS_PER_POINT = 25  # 400 trials a device: I50 to about a tenth of a logistic width


def check_tracking(mode: str, trials_per_point: int = 1, remeasure_every: int = 1) -> None:
    """Refuse (:class:`BackendError`) a mode or measurement a :class:`CurveTrackingBackend` cannot use."""
    if mode not in MODES:
        raise BackendError(f"mode: expected 'pulse' or 'curve', got {mode!r}")
    if remeasure_every < 1 or trials_per_point < 1:
        raise BackendError("remeasure_every and trials_per_point must be at least 1")


class CurveTrackingBackend(NeuronBackend):
    """Trials on devices, and the devices' curves measured by them (see the module docstring).

    ``sweeps``: the bias currents (A) of each device's curve measurement, by device id. ``trial_time_s``: the
    modeled time one trial keeps the station busy. Subclasses implement :meth:`_play` (and set up what it needs
    before calling this constructor, which measures the curves).
    """

    def __init__(self, device_ids: Sequence[str], width_m: Any, r_ch_ohm: Any, pulse_width_s: float,
                 sweeps: Mapping[str, Any], trial_time_s: float, mode: str = "pulse", trials_per_point: int = 100,
                 remeasure_every: int = 50, reset_current_a: Any = 0.0, reset_width_s: Any = 0.0,
                 max_current_a: Any = math.inf, seed: int = 0, device: str | torch.device = "cpu",
                 source: str = "") -> None:
        check_tracking(mode, trials_per_point, remeasure_every)
        if not trial_time_s > 0:
            raise BackendError(f"trial_time_s: must be positive, got {trial_time_s!r}")
        super().__init__(device_ids, width_m, r_ch_ohm, pulse_width_s, reset_current_a=reset_current_a,
                         reset_width_s=reset_width_s, max_current_a=max_current_a, seed=seed, device=device)
        for device_id in self.device_ids:
            if device_id not in sweeps:
                raise BackendError(f"device {device_id!r}: no sweep currents given")
        self.mode = mode
        self.sweeps = {d: np.asarray(sweeps[d], dtype=np.float64).reshape(-1) for d in self.device_ids}
        self.trials_per_point = int(trials_per_point)
        self.remeasure_every = int(remeasure_every)
        self._trial_time_s = float(trial_time_s)
        self.source = source
        self.physical_trials = 0  # trials actually played on the devices (pulse mode: every sample, and the curves)
        self.calls = 0
        self.curves = self.measure_curves()

    @property
    def mode(self) -> str:
        """``pulse`` (every sample a trial) or ``curve`` (samples from the measured curves); may be changed, e.g. to
        run a network trained in curve mode on the devices themselves."""
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        check_tracking(mode)
        self._mode = mode

    @property
    def trial_time_s(self) -> float:
        """The modeled time (s) one trial keeps the station busy."""
        return self._trial_time_s

    @property
    def measurement_trials(self) -> int:
        """The trials of one curve measurement (every device's sweep, ``trials_per_point`` at each current)."""
        return sum(s.size for s in self.sweeps.values()) * self.trials_per_point

    @property
    def instrument_time_s(self) -> float:
        """How long the trials played so far keep a station busy (s): ``physical_trials × trial_time_s``."""
        return self.physical_trials * self.trial_time_s

    # -- curves -------------------------------------------------------------------------------------

    def measure_curves(self) -> ReplayBackend:
        """Measure every device's switching curve with its own trials and follow it from now on.

        Each device plays ``trials_per_point`` trials at each current of its sweep, in sweep order.
        """
        n = self.trials_per_point
        repeated = [np.repeat(self.sweeps[d], n) for d in self.device_ids]
        sizes = torch.tensor([r.size for r in repeated])
        columns = torch.repeat_interleave(torch.arange(self.n_devices), sizes).to(self._device)
        currents = torch.from_numpy(np.concatenate(repeated)).to(self._device)[None, :]
        outcomes = self._play(columns, currents, "measuring the device curves")[0].to("cpu", torch.float64).numpy()
        ends = np.cumsum(sizes.numpy())
        counts = {d: part.reshape(-1, n).sum(axis=1)
                  for d, part in zip(self.device_ids, np.split(outcomes, ends[:-1]), strict=True)}
        return self._use_curves(counts)

    def _use_curves(self, counts: Mapping[str, np.ndarray]) -> ReplayBackend:
        """Switched counts per sweep point of every device → the curves the backend follows from now on."""
        self.counts = {d: np.asarray(counts[d], dtype=np.float64) for d in self.device_ids}
        curves = {device_id: {"width_m": float(self.width_m[d]), "current_a": self.sweeps[device_id],
                              "n_switched": self.counts[device_id], "n_trials": self.trials_per_point}
                  for d, device_id in enumerate(self.device_ids)}
        self.curves = ReplayBackend.from_curves(curves, pulse_width_s=self.pulse_width_s, seed=self.seed,
                                                source=self.source, device=self._device)
        self.refresh_energy_model()
        return self.curves

    def probability(self, neuron_devices: torch.Tensor, currents_a: torch.Tensor) -> torch.Tensor:
        return self.curves.probability(neuron_devices, currents_a)

    def curve(self, neuron_devices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.curves.curve(neuron_devices)

    def nominal_curve(self, neuron_devices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.curves.nominal_curve(neuron_devices)

    # -- trials -------------------------------------------------------------------------------------

    @abc.abstractmethod
    def _play(self, neuron_devices: torch.Tensor, currents_a: torch.Tensor, what: str) -> torch.Tensor:
        """One trial on its neuron's device per element of ``currents_a`` (…, neurons), clipped to the devices' limits;
        the outcomes (0/1) in the currents' shape, dtype and torch device. Counts them in ``physical_trials``;
        ``what`` names the work in an error."""

    def _draw(self, neuron_devices: torch.Tensor, currents_a: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.mode == "pulse":
            return self._play(neuron_devices, currents_a, "trials")
        if self.calls % self.remeasure_every == 0:
            self.measure_curves()
        return super()._draw(neuron_devices, currents_a)

    # -- bookkeeping ----------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Besides the random stream and counters: the measured curves the backend follows."""
        return {**super().state_dict(), "calls": self.calls, "physical_trials": self.physical_trials,
                "curve_counts": {d: torch.from_numpy(c) for d, c in self.counts.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.calls = int(state["calls"])
        self.physical_trials = int(state["physical_trials"])
        self._use_curves({d: c.numpy() for d, c in state["curve_counts"].items()})

    def to(self, device: str | torch.device) -> CurveTrackingBackend:
        super().to(device)
        self.curves.to(device)
        return self

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "mode": self.mode, "remeasure_every": self.remeasure_every,
                "trials_per_point": self.trials_per_point, "measurement_trials": self.measurement_trials,
                "physical_trials": self.physical_trials, "trial_time_s": self.trial_time_s,
                "instrument_time_s": self.instrument_time_s}


class InLoopBackend(CurveTrackingBackend):
    """Another backend's samples as the device trials, in pulse or curve mode: the simulator in the loop as a
    station would be.

    ``trials`` plays every trial (a :class:`~hil.neurons.simulated.SimBackend`, whose drifting chip ages by the
    trials' time and pulses). Each device's sweep is ``n_points`` currents ``I50 + k·w_I``, ``k`` evenly spaced in
    ``span``, around the curve ``trials`` reports when this backend starts (where a prior characterization found
    the device; drift of a fraction of ``w_I`` stays well inside it). ``nominal_curve`` is ``trials``' own (the
    design's one curve per width), so the nominal mapping is the same with or without the loop. ``trial_time_s``
    defaults to ``trials``' own (the chip's modeled time of a trial).
    """

    name = "in-loop"

    def __init__(self, trials: NeuronBackend, mode: str = "pulse", trials_per_point: int = TRIALS_PER_POINT,
                 remeasure_every: int = 50, n_points: int = SWEEP_POINTS,
                 span: tuple[float, float] = SWEEP_SPAN, trial_time_s: float | None = None) -> None:
        self.trial_backend = trials
        trial_time = getattr(trials, "trial_time_s", None) if trial_time_s is None else trial_time_s
        if trial_time is None:
            raise BackendError(f"trial_time_s: the {trials.name} backend has no modeled trial time; give one")
        sweeps = dict(zip(trials.device_ids, sweep_currents(trials, n_points, span), strict=True))
        super().__init__(trials.device_ids, trials.width_m, trials.r_ch_ohm, trials.pulse_width_s, sweeps, trial_time,
                         mode, trials_per_point, remeasure_every, reset_current_a=trials.reset_current_a,
                         reset_width_s=trials.reset_width_s, max_current_a=trials.max_current_a, seed=trials.seed,
                         device=trials.device, source=f"trials of the {trials.name} backend")

    def _play(self, neuron_devices: torch.Tensor, currents_a: torch.Tensor, what: str) -> torch.Tensor:
        limit = self.max_current_a[neuron_devices].to(currents_a.dtype)
        outcomes = self.trial_backend.sample(neuron_devices, torch.minimum(currents_a.clamp(min=0.0), limit))
        self.physical_trials += currents_a.numel()
        return outcomes

    def nominal_curve(self, neuron_devices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.trial_backend.nominal_curve(neuron_devices)

    def reseed(self, seed: int) -> None:
        """Restart this backend's stream (curve-mode draws) and the trials' stream from ``seed``."""
        super().reseed(seed)
        self.trial_backend.reseed(seed)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "trials": self.trial_backend.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.trial_backend.load_state_dict(state["trials"])

    def to(self, device: str | torch.device) -> InLoopBackend:
        self.trial_backend.to(device)
        super().to(device)
        return self

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "trials": self.trial_backend.describe()}
