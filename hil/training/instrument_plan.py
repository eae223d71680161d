"""How long a training run keeps a station busy, planned before it starts: its trials × the modeled trial time.

The trials of a run on a :class:`~hil.neurons.curve_tracking.CurveTrackingBackend` (:func:`plan_trials`):

- pulse mode: one per hidden neuron per training image every epoch, and ``eval_samples`` per hidden neuron per
  test image at every evaluation;
- both modes: the curve measurements — the one the backend made when it started and, in curve mode, one every
  ``remeasure_every`` sampling calls (a call per hidden layer per training step and per evaluation batch).

Trials the station adds on its own (a device's Hall levels measured before its first trial, a trial played again
after its reset failed) are not planned: the estimate is a floor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hil.neurons.curve_tracking import CurveTrackingBackend
from hil.training.config import TrainConfig
from hil.training.datasets import Dataset
from hil.training.network import EVAL_BATCH


@dataclass(frozen=True)
class TrialPlan:
    """The trials a run plans, by what they are for, and the modeled time of one trial (s)."""

    training: int
    evaluation: int
    curves: int
    trial_time_s: float

    @property
    def trials(self) -> int:
        return self.training + self.evaluation + self.curves

    @property
    def seconds(self) -> float:
        """The instrument time of the planned trials (s)."""
        return self.trials * self.trial_time_s

    def describe(self) -> str:
        """``'8.51 h (21,880,320 trials × 1.4 ms: training …, evaluation …, curve measurements …)'``."""
        parts = ", ".join(f"{name} {n:,}" for name, n in (("training", self.training), ("evaluation", self.evaluation),
                                                          ("curve measurements", self.curves)) if n)
        return f"{duration_text(self.seconds)} ({self.trials:,} trials × {self.trial_time_s * 1e6:.0f} µs: {parts})"


def duration_text(seconds: float) -> str:
    """A duration for people: hours from an hour on, minutes from a minute on, else seconds."""
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def evaluations(config: TrainConfig) -> int:
    """How many test evaluations a run makes (every ``evaluate_every`` epochs and after the last)."""
    return sum(1 for epoch in range(1, config.epochs + 1) if epoch % config.evaluate_every == 0
               or epoch == config.epochs)


def sampling_calls(dataset: Dataset, config: TrainConfig) -> int:
    """The backend calls of a run: one per hidden layer per training step and per evaluation batch."""
    steps = math.ceil(dataset.x_train.shape[0] / config.batch_size)
    batches = math.ceil(dataset.x_test.shape[0] / EVAL_BATCH)
    return len(config.hidden) * (config.epochs * steps + evaluations(config) * batches)


def plan_trials(dataset: Dataset, config: TrainConfig, backend: CurveTrackingBackend) -> TrialPlan:
    """The trials a whole run of ``config`` on ``dataset`` plays on ``backend``'s devices (see the module docstring),
    the backend's first curve measurement included; re-measurements count from the backend's calls so far."""
    measurement = backend.measurement_trials
    if backend.mode == "pulse":
        neurons = sum(config.hidden)
        return TrialPlan(config.epochs * dataset.x_train.shape[0] * neurons,
                         evaluations(config) * dataset.x_test.shape[0] * config.eval_samples * neurons, measurement,
                         backend.trial_time_s)
    every, start = backend.remeasure_every, backend.calls
    remeasured = (start + sampling_calls(dataset, config)) // every - start // every
    return TrialPlan(0, 0, measurement * (1 + remeasured), backend.trial_time_s)
