"""Training networks whose hidden neurons are devices: datasets, the network, the trainer, training as a
record stream, and the experiments of physics.md §3.

The names below load on first use, so that reading a training session's records (``epoch_records``) does
not import torch.
"""

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "hil.training.config",
    "Dataset": "hil.training.datasets", "load_dataset": "hil.training.datasets", "load_digits": "hil.training.datasets",
    "load_mnist": "hil.training.datasets", "mnist_available": "hil.training.datasets",
    "MLP": "hil.training.network", "build_network": "hil.training.network", "evaluate": "hil.training.network",
    "on_devices": "hil.training.network",
    "EpochMetrics": "hil.training.trainer", "Progress": "hil.training.trainer", "Trainer": "hil.training.trainer",
    "TrainResult": "hil.training.trainer", "train": "hil.training.trainer",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hil.training' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
