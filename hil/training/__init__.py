"""Training networks whose hidden neurons are devices: datasets, the network, the trainer, training as a
record stream, and the experiments of physics.md §3."""

from hil.training.config import TrainConfig
from hil.training.datasets import Dataset, load_dataset, load_digits, load_mnist, mnist_available
from hil.training.network import MLP, build_network, evaluate, on_devices
from hil.training.trainer import EpochMetrics, Progress, Trainer, TrainResult, train

__all__ = ["MLP", "Dataset", "EpochMetrics", "Progress", "TrainConfig", "TrainResult", "Trainer", "build_network",
           "evaluate", "load_dataset", "load_digits", "load_mnist", "mnist_available", "on_devices", "train"]
