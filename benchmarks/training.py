"""Training with simulated devices in the loop: time per epoch against software, and the accuracy table.

Rows:

- ``train_epoch_sim_backend``: seconds per training epoch on digits with the sim backend (one device per
  hidden neuron), reference: the same network with ideal stochastic sigmoid neurons (aim: ratio ≤ 1.3);
- ``<dataset>_accuracy_*``: test accuracy of the same architecture trained as software (deterministic
  sigmoid, ideal stochastic sigmoid), with the simulated devices in the loop (sim), with replayed curves of
  those devices in the loop (replay), and trained in software then run on the devices (software→devices);
  reference: the ideal stochastic network. Devices: a virtual chip drawn from the embedded chip file
  (widths 3/5/10 µm in turn, its device-to-device variation), nominal mapping (one bias and gain per width).
  MNIST rows appear when ``../shared/data/mnist`` holds the MNIST test split (8,000 train / 2,000 test).
"""

from __future__ import annotations

from pathlib import Path

import torch

from benchmarks.harness import Row, interleaved_best_times
from hil.neurons import ReplayBackend, SimBackend, measure_curves, sweep_currents
from hil.neurons.layers import NeuronConfig
from hil.training import TrainConfig, Trainer, build_network, train
from hil.training.datasets import Dataset, load_digits, load_mnist, mnist_available
from hil.training.experiments import transfer_experiment

MNIST_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"
HIDDEN = 128
SWEEP_TRIALS = 200  # trials per point of the simulated bias sweep that the replay backend replays


def _epoch_time(data: Dataset) -> Row:
    # many epochs configured so the learning-rate schedule and the end-of-run evaluation stay out of the timing
    config = TrainConfig(hidden=(HIDDEN,), epochs=10_000, evaluate_every=10_000)
    backend = SimBackend.virtual(HIDDEN, seed=1)
    trainers = {name: Trainer(build_network(data, config, neurons), data, config)
                for name, neurons in (("sim", backend), ("ideal", "stochastic"))}
    times = interleaved_best_times({name: t.train_epoch for name, t in trainers.items()}, repeats=7)
    steps = -(-data.x_train.shape[0] // config.batch_size)
    return Row("train_epoch_sim_backend", times["sim"], "s", times["ideal"], times["sim"] / times["ideal"],
               f"{data.name}: {data.x_train.shape[0]} images, {steps} steps of {config.batch_size}, "
               f"{data.n_features}-{HIDDEN}-{data.n_classes}; reference: ideal stochastic sigmoid neurons")


def _accuracy_rows(data: Dataset, config: TrainConfig) -> list[Row]:
    sim = SimBackend.virtual(sum(config.hidden), seed=config.seed + 100)
    transfer = transfer_experiment(data, sim, config, mapping="nominal", deterministic=True)
    replay = ReplayBackend.from_curves(measure_curves(sim, sweep_currents(sim), SWEEP_TRIALS),
                                       source="simulated bias sweep", seed=config.seed)
    replayed = train(data, replay, config, NeuronConfig(mapping="nominal"), run="hil-replay")
    reference = transfer.software_accuracy
    shape = f"{data.n_features}-{'-'.join(map(str, config.hidden))}-{data.n_classes}, {config.epochs} epochs"
    values = [
        ("deterministic", transfer.deterministic_accuracy, "software, sigmoid"),
        ("ideal_stochastic", transfer.software_accuracy, f"software, bernoulli(sigmoid), T={config.eval_samples}"),
        ("hil_sim", transfer.hil_accuracy, "sim devices in the loop, nominal mapping"),
        ("hil_replay", replayed.test_accuracy,
         f"replayed bias sweeps ({SWEEP_TRIALS} trials/point) of the same devices in the loop"),
        ("software_to_devices", transfer.software_on_devices["nominal"],
         "ideal-stochastic network run on the sim devices, no retraining"),
    ]
    return [Row(f"{data.name}_accuracy_{name}", value, "accuracy", reference, value / reference, f"{note}; {shape}")
            for name, value, note in values]


def run() -> list[Row]:
    torch.manual_seed(0)
    digits = load_digits()
    rows = [_epoch_time(digits)]
    rows += _accuracy_rows(digits, TrainConfig(hidden=(HIDDEN,)))
    if mnist_available(MNIST_DIR):
        rows += _accuracy_rows(load_mnist(MNIST_DIR), TrainConfig(hidden=(HIDDEN,), epochs=20))
    return rows
