"""Training a network: Adam on the cross-entropy over shuffled minibatches, evaluated on the test split.

:class:`Trainer` runs steps and epochs and can save and restore everything a training run depends on
(:meth:`Trainer.state_dict`: weights, optimizer, learning-rate schedule, minibatch order, the random
streams of the stochastic neurons and the backends' counters), also in the middle of an epoch, so that a
resumed run continues exactly where the checkpoint was taken. Evaluation averages the network's output
over ``eval_samples`` stochastic samples. Every result is a dataclass whose ``as_dict()`` holds plain
values (config, seeds, per-epoch metrics, backend description) for a session writer.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hil.neurons.backend import NeuronBackend
from hil.neurons.layers import NeuronConfig
from hil.synapses.dw_linear import DWLinear, SynapseConfig
from hil.synapses.reprogramming import reprogramming_groups
from hil.synapses.synapse_backend import SynapseBackend
from hil.training.config import TrainConfig
from hil.training.datasets import Dataset
from hil.training.network import (
    MLP,
    Neurons,
    build_network,
    counters,
    evaluate,
    load_sampling_state,
    model_device,
    reseed_sampling,
    sampling_state,
    synapse_counters,
)


@dataclass
class EpochMetrics:
    """One epoch. ``train_accuracy`` is measured on the minibatches as they were trained (one sample each,
    no extra pulses); ``test_accuracy`` averages ``eval_samples`` samples (None when not evaluated);
    ``pulses``/``energy_j`` are this epoch's device trials (training and evaluation), ``program_events``/
    ``program_energy_j`` its DW synapses' programming events."""

    epoch: int
    loss: float
    train_accuracy: float
    test_accuracy: float | None
    pulses: int
    energy_j: float
    seconds: float
    program_events: int = 0     # DW synapse programming events of the epoch (training and evaluation)
    program_energy_j: float = 0.0


@dataclass
class Progress:
    """What a progress display gets after every training step; ``metrics`` is set at the end of an epoch."""

    run: str
    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    accuracy: float
    metrics: EpochMetrics | None = None


ProgressCallback = Callable[[Progress], None]


@dataclass
class TrainResult:
    """A finished training run: everything but ``model`` is plain data (``as_dict``)."""

    neurons: str
    dataset: dict[str, Any]
    config: dict[str, Any]
    seeds: dict[str, int]
    neuron_config: dict[str, Any] | None
    backend: dict[str, Any] | None
    epochs: list[EpochMetrics]
    test_accuracy: float
    pulses: int
    energy_j: float
    seconds: float
    model: nn.Module | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("model", "epochs")}
        out["epochs"] = [asdict(m) for m in self.epochs]
        return out


@dataclass
class _EpochInFlight:
    """An epoch between two steps: its minibatch order, how far it is, and its running sums."""

    epoch: int
    order: torch.Tensor
    step: int
    loss_sum: torch.Tensor
    correct: torch.Tensor
    pulses0: int
    energy0: float
    seconds: float
    events0: int = 0
    program_energy0: float = 0.0


class Trainer:
    """Adam on the cross-entropy over shuffled minibatches (learning rate decaying on a cosine to zero
    over ``config.epochs``), evaluated on the test split every ``evaluate_every`` epochs."""

    def __init__(self, model: MLP, dataset: Dataset, config: TrainConfig, progress: ProgressCallback | None = None,
                 run: str = "train") -> None:
        self.model = model
        self.device = model_device(model)
        self.dataset = dataset if dataset.x_train.device == self.device else dataset.to(self.device)
        self.config = config
        self.progress = progress
        self.run = run
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        # cosine decay to zero over the run: the last epochs settle instead of jumping between minima
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=config.epochs)
        self.shuffle = torch.Generator().manual_seed(config.seeds()["shuffle"])
        self.history: list[EpochMetrics] = []
        self._current: _EpochInFlight | None = None
        self._synapse_layers = [m for m in model.modules() if isinstance(m, DWLinear)]
        self._reprogramming = reprogramming_groups(self._synapse_layers)  # after each step, all layers at once

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.dataset.x_train.shape[0] / self.config.batch_size)

    def evaluate(self, samples: int | None = None) -> float:
        """Test accuracy averaging ``samples`` (default ``config.eval_samples``) stochastic samples."""
        return evaluate(self.model, self.dataset.x_test, self.dataset.y_test,
                        self.config.eval_samples if samples is None else samples)

    def train_steps(self, until_step: int | None = None) -> EpochMetrics | None:
        """Continue the present epoch up to step ``until_step`` (default: its end; steps count from 0).

        Returns the epoch's metrics when it ended (after the test evaluation, when due), else ``None``.
        """
        cfg, data = self.config, self.dataset
        n = data.x_train.shape[0]
        steps = self.steps_per_epoch
        if self._current is None:
            pulses0, energy0, _ = counters(self.model)
            order = torch.randperm(n, generator=self.shuffle).to(self.device)
            self._current = _EpochInFlight(len(self.history) + 1, order, 0, torch.zeros((), device=self.device),
                                           torch.zeros((), dtype=torch.long, device=self.device), pulses0, energy0,
                                           0.0, *synapse_counters(self.model))
        now = self._current
        started = time.perf_counter()
        until = steps if until_step is None else min(steps, until_step)
        self.model.train()
        for step in range(now.step, until):
            idx = now.order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            out = self.model(data.x_train[idx])
            loss = F.cross_entropy(out, data.y_train[idx])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            for group in self._reprogramming:
                group.step()
            now.loss_sum += loss.detach() * idx.numel()
            now.correct += (out.argmax(dim=1) == data.y_train[idx]).sum()
            now.step = step + 1
            if self.progress is not None:
                seen = min(n, (step + 1) * cfg.batch_size)
                self.progress(Progress(self.run, now.epoch, cfg.epochs, step + 1, steps, float(now.loss_sum) / seen,
                                       int(now.correct) / seen))
        now.seconds += time.perf_counter() - started
        if now.step < steps:
            return None
        started = time.perf_counter()
        self.schedule.step()
        if now.epoch == cfg.epochs:
            for layer in self._synapse_layers:
                if not bool(layer.deployed):
                    layer.deploy()  # ex situ: training is over, the devices are programmed once
        due = now.epoch % cfg.evaluate_every == 0 or now.epoch == cfg.epochs
        test_accuracy = self.evaluate() if due else None
        pulses1, energy1, _ = counters(self.model)
        events1, program_energy1 = synapse_counters(self.model)
        metrics = EpochMetrics(now.epoch, float(now.loss_sum) / n, int(now.correct) / n, test_accuracy,
                               pulses1 - now.pulses0, energy1 - now.energy0,
                               now.seconds + time.perf_counter() - started, events1 - now.events0,
                               program_energy1 - now.program_energy0)
        self.history.append(metrics)
        self._current = None
        if self.progress is not None:
            self.progress(Progress(self.run, now.epoch, cfg.epochs, steps, steps, metrics.loss,
                                   metrics.train_accuracy, metrics))
        return metrics

    def train_epoch(self) -> EpochMetrics:
        """The rest of the present epoch (a whole pass over the shuffled training set)."""
        metrics = self.train_steps()
        assert metrics is not None
        return metrics

    def fit(self) -> list[EpochMetrics]:
        """Train for the remaining epochs of ``config.epochs``; returns the per-epoch metrics."""
        while len(self.history) < self.config.epochs:
            self.train_epoch()
        return self.history

    # -- checkpoints -------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything the rest of the run depends on (see the module docstring)."""
        now = self._current
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(), "shuffle": self.shuffle.get_state(),
            "sampling": sampling_state(self.model), "history": [asdict(m) for m in self.history],
            "in_flight": None if now is None else {**asdict(now), "order": now.order.cpu(),
                                                   "loss_sum": now.loss_sum.cpu(), "correct": now.correct.cpu()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.shuffle.set_state(state["shuffle"].cpu())  # a generator state is a CPU tensor, wherever it was loaded
        load_sampling_state(self.model, state["sampling"])
        self.history = [EpochMetrics(**m) for m in state["history"]]
        now = state["in_flight"]
        self._current = None if now is None else _EpochInFlight(
            **{**now, "order": now["order"].to(self.device), "loss_sum": now["loss_sum"].to(self.device),
               "correct": now["correct"].to(self.device)})

    def checkpoint(self) -> bytes:
        """:meth:`state_dict` as bytes (``torch.save``)."""
        buffer = io.BytesIO()
        torch.save(self.state_dict(), buffer)
        return buffer.getvalue()

    def restore(self, checkpoint: bytes) -> None:
        """Continue from :meth:`checkpoint` bytes."""
        self.load_state_dict(torch.load(io.BytesIO(checkpoint), map_location=self.device, weights_only=True))


def describe_neurons(neurons: Neurons) -> str:
    return neurons.name if isinstance(neurons, NeuronBackend) else str(neurons)


def result_of(trainer: Trainer, dataset: Dataset, neurons: Neurons, neuron_config: NeuronConfig | None,
              seconds: float) -> TrainResult:
    """The :class:`TrainResult` of a trainer that has run every epoch."""
    config, history = trainer.config, trainer.history
    uses_config = isinstance(neurons, NeuronBackend) or neurons == "stochastic"
    return TrainResult(
        neurons=describe_neurons(neurons),
        dataset=dataset.describe(),
        config=config.as_dict(),
        seeds=config.seeds(),
        neuron_config=(neuron_config or NeuronConfig()).as_dict() if uses_config else None,
        backend=neurons.describe() if isinstance(neurons, NeuronBackend) else None,
        epochs=list(history),
        test_accuracy=float(history[-1].test_accuracy),
        pulses=sum(m.pulses for m in history),
        energy_j=sum(m.energy_j for m in history),
        seconds=seconds,
        model=trainer.model,
    )


def prepare(dataset: Dataset, neurons: Neurons, config: TrainConfig, neuron_config: NeuronConfig | None = None,
            progress: ProgressCallback | None = None, device: str | torch.device | None = None,
            run: str | None = None, synapses: SynapseBackend | None = None,
            synapse_config: SynapseConfig | None = None) -> Trainer:
    """A trainer for a new network of ``config`` with ``neurons`` (weights and sampling seeded from ``config``)
    and, with ``synapses``, every weight on that backend's DW synapses (trained as ``synapse_config`` says).

    ``device`` (default: the neuron backend's, else the synapse backend's, else the dataset's) is where the
    network runs.
    """
    if device is None:
        device = (neurons.device if isinstance(neurons, NeuronBackend) else
                  synapses.device if synapses is not None else dataset.x_train.device)
    model = build_network(dataset, config, neurons, neuron_config, synapses=synapses,
                          synapse_config=synapse_config).to(device)
    reseed_sampling(model, config.seeds()["sampling"])
    return Trainer(model, dataset, config, progress, run=run or describe_neurons(neurons))


def train(dataset: Dataset, neurons: Neurons, config: TrainConfig | None = None,
          neuron_config: NeuronConfig | None = None, progress: ProgressCallback | None = None,
          device: str | torch.device | None = None, run: str | None = None,
          synapses: SynapseBackend | None = None, synapse_config: SynapseConfig | None = None) -> TrainResult:
    """Build, train and evaluate one network; the result keeps the trained model in ``model``."""
    config = config or TrainConfig()
    trainer = prepare(dataset, neurons, config, neuron_config, progress, device, run, synapses, synapse_config)
    start = time.perf_counter()
    trainer.fit()
    return result_of(trainer, dataset, neurons, neuron_config, time.perf_counter() - start)
