"""The records of a training run: one row per epoch, and what they add up to (numpy only, no torch)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from protocols.records import Descriptor, Field

EPOCHS = Descriptor("epochs", (
    Field("epoch", "i4", "", "epoch number, from 1"),
    Field("loss", "f8", "", "mean cross-entropy over the epoch's minibatches"),
    Field("train_accuracy", "f8", "", "accuracy on the minibatches as they were trained (one sample each)"),
    Field("test_accuracy", "f8", "", "test accuracy averaging eval_samples samples (NaN: not evaluated)"),
    Field("pulses", "i8", "", "device trials of the epoch (training and evaluation)"),
    Field("energy_j", "f8", "J", "energy of those trials: bias pulses and resets"),
    Field("seconds", "f8", "s", "wall time of the epoch", reproducible=False),
    Field("program_events", "i8", "", "DW synapse programming events of the epoch (0 without DW synapses)"),
    Field("program_energy_j", "f8", "J", "energy of those programming events"),
), "one row per epoch")


def summarise(epochs: np.ndarray) -> dict[str, Any]:
    """The last test accuracy, and the trials, energy, time and epochs so far, of an ``epochs`` table."""
    if epochs.size == 0:
        return {"test_accuracy": math.nan, "pulses": 0, "energy_j": 0.0, "seconds": 0.0, "epochs": 0}
    tested = epochs[np.isfinite(epochs["test_accuracy"])]
    return {"test_accuracy": float(tested["test_accuracy"][-1]) if tested.size else math.nan,
            "pulses": int(epochs["pulses"].sum()), "energy_j": float(epochs["energy_j"].sum()),
            "seconds": float(epochs["seconds"].sum()), "epochs": int(epochs.size)}
