"""The network: a multilayer perceptron whose hidden neurons are devices or their software baselines.

The hidden neurons are one of

- ``"deterministic"``: sigmoid (software baseline);
- ``"stochastic"``: ideal binary stochastic neurons, ``bernoulli(sigmoid(x))`` (software baseline);
- a :class:`~hil.neurons.backend.NeuronBackend`: the devices (hardware-in-loop, simulated or replayed).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from hil.neurons.backend import NeuronBackend
from hil.neurons.layers import IdealStochasticNeurons, NeuronConfig, SigmoidNeurons, StochasticNeurons
from hil.synapses.dw_linear import DWLinear, SynapseConfig
from hil.synapses.synapse_backend import SynapseBackend
from hil.training.config import TrainConfig
from hil.training.datasets import Dataset

Neurons = str | NeuronBackend  # "deterministic" | "stochastic" | a backend
SOFTWARE_NEURONS = ("deterministic", "stochastic")
EVAL_BATCH = 1024  # test images per forward pass of an evaluation


class MLP(nn.Module):
    """``input → (Linear → neurons) × len(hidden) → Linear``.

    ``make_neurons(layer, size, first_neuron)`` builds the activation of each hidden layer
    (``first_neuron``: how many hidden neurons come before this layer, for device assignment);
    ``make_linear(layer, in, out)`` each weight layer (default ``nn.Linear``; layer ``len(hidden)`` is the
    output layer), e.g. a :class:`~hil.synapses.dw_linear.DWLinear` on DW synapses.
    ``forward(x, samples=T)`` averages the output over ``T`` stochastic samples of the hidden neurons
    (one batched pass: the first layer's pre-activation is computed once).
    """

    def __init__(self, n_inputs: int, hidden: Sequence[int], n_outputs: int,
                 make_neurons: Callable[[int, int, int], nn.Module],
                 make_linear: Callable[[int, int, int], nn.Module] | None = None) -> None:
        super().__init__()
        linear = make_linear or (lambda _, a, b: nn.Linear(a, b))
        sizes = [int(n_inputs), *(int(h) for h in hidden)]
        pairs = zip(sizes[:-1], sizes[1:], strict=True)
        self.linears = nn.ModuleList(linear(i, a, b) for i, (a, b) in enumerate(pairs))
        first = [sum(sizes[1:i + 1]) for i in range(len(hidden))]
        self.neurons = nn.ModuleList(make_neurons(i, h, first[i]) for i, h in enumerate(sizes[1:]))
        self.output = linear(len(hidden), sizes[-1], int(n_outputs))

    @property
    def stochastic(self) -> bool:
        return any(isinstance(m, StochasticNeurons | IdealStochasticNeurons) for m in self.neurons)

    def forward(self, x: torch.Tensor, samples: int = 1) -> torch.Tensor:
        h = x
        for i, (linear, neurons) in enumerate(zip(self.linears, self.neurons, strict=True)):
            h = linear(h)
            if i == 0 and samples > 1:
                h = h.unsqueeze(0).expand(samples, *h.shape)
            h = neurons(h)
        out = self.output(h)
        return out.mean(0) if samples > 1 else out


def build_network(dataset: Dataset, config: TrainConfig, neurons: Neurons,
                  neuron_config: NeuronConfig | None = None,
                  neuron_devices: Sequence[torch.Tensor] | None = None,
                  synapses: SynapseBackend | None = None, synapse_config: SynapseConfig | None = None) -> MLP:
    """The MLP of ``config`` for ``dataset`` with the given hidden neurons, initialized from ``config.seed``.

    With a backend, hidden neuron ``k`` (counting across layers) sits on device ``k mod n_devices``
    unless ``neuron_devices`` gives each layer's map. With ``synapses``, every weight layer (the output
    layer too) is a :class:`~hil.synapses.dw_linear.DWLinear` on that backend's DW synapses, trained as
    ``synapse_config`` says; otherwise ``nn.Linear``.
    """
    seeds = config.seeds()

    def make_linear(layer: int, n_in: int, n_out: int) -> nn.Module:
        # Glorot initialization for the activation that follows: sigmoid-like neurons (gain 4) in the
        # hidden layers, linear at the output; deep sigmoid networks do not train from nn.Linear's default
        std = (4.0 if layer < len(config.hidden) else 1.0) * math.sqrt(2.0 / (n_in + n_out))
        if synapses is None:
            linear = nn.Linear(n_in, n_out)
            nn.init.uniform_(linear.weight, -math.sqrt(3.0) * std, math.sqrt(3.0) * std)
            nn.init.zeros_(linear.bias)
            return linear
        return DWLinear(n_in, n_out, synapses, synapse_config, seed=seeds["init"] * 1000 + layer, init_std=std)

    def make(layer: int, size: int, first: int) -> nn.Module:
        if neurons == "deterministic":
            return SigmoidNeurons(size)
        if neurons == "stochastic":
            return IdealStochasticNeurons(size, gradient=(neuron_config or NeuronConfig()).gradient,
                                          seed=seeds["sampling"] + layer)
        if isinstance(neurons, NeuronBackend):
            devices = None if neuron_devices is None else neuron_devices[layer]
            return StochasticNeurons(neurons, size, neuron_config, neuron_devices=devices, first_device=first)
        raise ValueError(f"neurons: expected 'deterministic', 'stochastic' or a NeuronBackend, got {neurons!r}")

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seeds["init"])
        return MLP(dataset.n_features, config.hidden, dataset.n_classes, make, make_linear)


def model_device(model: nn.Module) -> torch.device:
    """Where a model's parameters live."""
    return next(model.parameters()).device


def on_devices(model: MLP, backend: NeuronBackend, neuron_config: NeuronConfig | None = None,
               neuron_devices: Sequence[torch.Tensor] | None = None) -> MLP:
    """A copy of ``model`` (its trained weights, no retraining) whose hidden neurons are ``backend``'s devices."""
    sizes = [m.n_neurons for m in model.neurons]
    first = [sum(sizes[:i]) for i in range(len(sizes))]

    def make(layer: int, size: int, _: int) -> nn.Module:
        devices = None if neuron_devices is None else neuron_devices[layer]
        return StochasticNeurons(backend, size, neuron_config, neuron_devices=devices, first_device=first[layer])

    copy = MLP(model.linears[0].in_features, sizes, model.output.out_features, make)
    copy.linears.load_state_dict(model.linears.state_dict())
    copy.output.load_state_dict(model.output.state_dict())
    return copy.to(model_device(model))


@torch.no_grad()
def evaluate(model: MLP, x: torch.Tensor, y: torch.Tensor, samples: int = 16, batch_size: int = EVAL_BATCH) -> float:
    """Accuracy of ``model`` on ``(x, y)``, averaging its output over ``samples`` stochastic samples."""
    was_training = model.training
    model.eval()
    samples = samples if model.stochastic else 1
    correct = 0
    for start in range(0, x.shape[0], batch_size):
        out = model(x[start:start + batch_size], samples=samples)
        correct += int((out.argmax(dim=1) == y[start:start + batch_size]).sum())
    model.train(was_training)
    return correct / max(1, x.shape[0])


def backends_of(model: nn.Module) -> list[NeuronBackend]:
    found: dict[int, NeuronBackend] = {}
    for m in model.modules():
        if isinstance(m, StochasticNeurons):
            found[id(m.backend)] = m.backend
    return list(found.values())


def counters(model: nn.Module) -> tuple[int, float, float]:
    """(pulses, energy in J, reset energy in J) of the model's backends so far."""
    backends = backends_of(model)
    return (sum(b.pulses for b in backends), sum(b.energy_j for b in backends),
            sum(b.reset_energy_j for b in backends))


def reseed_sampling(model: nn.Module, seed: int) -> None:
    for b in backends_of(model):
        b.reseed(seed)
    for i, m in enumerate(m for m in model.modules() if isinstance(m, IdealStochasticNeurons)):
        m.reseed(seed + i)


def synapse_backends_of(model: nn.Module) -> list[SynapseBackend]:
    found: dict[int, SynapseBackend] = {}
    for m in model.modules():
        if isinstance(m, DWLinear):
            found[id(m.backend)] = m.backend
    return list(found.values())


def synapse_counters(model: nn.Module) -> tuple[int, float]:
    """(programming events, programming energy in J) of the model's DW synapses so far."""
    backends = synapse_backends_of(model)
    return sum(b.program_events for b in backends), sum(b.program_energy_j for b in backends)


def sampling_state(model: nn.Module) -> dict[str, Any]:
    """The random streams of a model's stochastic neurons and its backends' counters, and its DW synapses'
    states, realized weights and counters, and their ex-situ training noise streams (for a checkpoint)."""
    return {"backends": [b.state_dict() for b in backends_of(model)],
            "synapses": [b.state_dict() for b in synapse_backends_of(model)],
            "synapse_noise": [m.noise_state() for m in model.modules() if isinstance(m, DWLinear)],
            "ideal": [m.sampling_state() for m in model.modules() if isinstance(m, IdealStochasticNeurons)]}


def load_sampling_state(model: nn.Module, state: dict[str, Any]) -> None:
    """Continue the random streams and counters saved by :func:`sampling_state`."""
    for backend, saved in zip(backends_of(model), state["backends"], strict=True):
        backend.load_state_dict(saved)
    for synapses, saved in zip(synapse_backends_of(model), state.get("synapses", []), strict=True):
        synapses.load_state_dict(saved)
    for layer, saved in zip([m for m in model.modules() if isinstance(m, DWLinear)], state["synapse_noise"],
                            strict=True):
        layer.load_noise_state(saved)
    ideal = [m for m in model.modules() if isinstance(m, IdealStochasticNeurons)]
    for layer, saved in zip(ideal, state["ideal"], strict=True):
        layer.load_sampling_state(saved)
