"""The DW synapse experiment (physics.md §2, research.md): few-state stochastic synapses in deep networks.

For one network shape, trained on the same data from the same seeds:

- ``floating point``: ``nn.Linear`` weights (the software network of the same shape);
- for each number of states ``K``: **in situ** with the noise tolerance margin, **in situ without** it
  (margin 0: a device is reprogrammed whenever its shadow weight's nearest state changes), and **ex situ**
  (trained against the device model with the margin, programmed once, evaluated over ``draws``
  programming-noise draws).

Every row reports the test accuracy (mean over seeds, with a t interval when there are several), the
programming events (the initial programming and every reprogramming during training; ex situ: the one
programming of each draw) and the **programming energy per inference** as the reference work counts it:
the training's programming energy divided over the training inferences (``epochs × n_train``). The read
energy per inference (every synapse read once) is given beside it.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from hil.neurons.backend import NeuronBackend
from hil.neurons.layers import NeuronConfig
from hil.synapses.dw_linear import DWLinear, SynapseConfig
from hil.synapses.sim_synapses import SimSynapseBackend
from hil.synapses.synapse_backend import SynapseBackend
from hil.training.config import TrainConfig
from hil.training.datasets import Dataset
from hil.training.network import evaluate, reseed_sampling
from hil.training.trainer import ProgressCallback, train
from protocols.fits import mean_interval
from sim_backend.dw_synapse import DWSynapseConfig

DEFAULT_STATES = (2, 3, 5)
DEFAULT_MARGIN = 0.25  # in level spacings: about the programming noise (sigma = 0.2 spacing), so a typical
# programming error is tolerated
DEFAULT_HIDDEN = (100, 100, 100, 100)  # the reference work's 5-layer networks: four hidden layers and the output
DEFAULT_DRAWS = 5
# the reference values (full MNIST, 60,000 training images, 10 epochs): Misba et al., IEEE Access 10, 84946
REFERENCE = {"floating point": 0.971, "5-state in-situ": 0.9667, "5-state ex-situ": 0.9663,
             "programming energy per inference (J)": 13e-12}


@dataclass
class SynapseRow:
    """One network of the table over seeds: accuracies (one per seed; ex situ the mean over draws),
    the per-draw accuracies of ex situ, programming events and energies (per seed)."""

    network: str
    states: int | None
    mode: str
    margin: float | None
    accuracy: list[float] = field(default_factory=list)
    draws: list[list[float]] = field(default_factory=list)
    program_events: list[int] = field(default_factory=list)
    training_events: list[int] = field(default_factory=list)
    program_energy_per_inference_j: list[float] = field(default_factory=list)
    read_energy_per_inference_j: float = 0.0
    n_weights: int = 0

    def summary(self) -> dict[str, Any]:
        mean, low, high = mean_interval(self.accuracy)
        low, high = max(0.0, low), min(1.0, high)  # an accuracy's interval stays within [0, 1]
        spread = [a for draws in self.draws for a in draws]
        return {
            "network": self.network, "states": self.states, "mode": self.mode, "margin": self.margin,
            "accuracy": mean, "accuracy_low": low, "accuracy_high": high, "seeds": len(self.accuracy),
            "accuracy_per_seed": list(self.accuracy),
            "draw_min": min(spread) if spread else None, "draw_max": max(spread) if spread else None,
            "program_events": statistics.fmean(self.program_events) if self.program_events else 0,
            "training_events": statistics.fmean(self.training_events) if self.training_events else 0,
            "program_energy_per_inference_j": (statistics.fmean(self.program_energy_per_inference_j)
                                               if self.program_energy_per_inference_j else 0.0),
            "read_energy_per_inference_j": self.read_energy_per_inference_j, "weights": self.n_weights,
        }


@dataclass
class SynapseResult:
    """The table of :func:`synapse_experiment` and what it was run with."""

    dataset: dict[str, Any]
    config: dict[str, Any]
    synapse: dict[str, Any]
    seeds: list[int]
    draws: int
    neurons: str
    rows: list[SynapseRow]

    def table(self) -> list[dict[str, Any]]:
        return [row.summary() for row in self.rows]

    def row(self, network: str) -> SynapseRow:
        return next(r for r in self.rows if r.network == network)

    def as_dict(self) -> dict[str, Any]:
        return {"experiment": "synapses", "dataset": self.dataset, "config": self.config, "synapse": self.synapse,
                "seeds": self.seeds, "draws": self.draws, "neurons": self.neurons, "reference": REFERENCE,
                "table": self.table()}


def _dw_layers(model: torch.nn.Module) -> list[DWLinear]:
    return [m for m in model.modules() if isinstance(m, DWLinear)]


def synapse_experiment(dataset: Dataset, config: TrainConfig | None = None,
                       synapse: DWSynapseConfig | None = None, states: Sequence[int] = DEFAULT_STATES,
                       margin: float = DEFAULT_MARGIN, seeds: Sequence[int] = (0,), draws: int = DEFAULT_DRAWS,
                       neurons: str | NeuronBackend = "deterministic", neuron_config: NeuronConfig | None = None,
                       progress: ProgressCallback | None = None, device: str | torch.device = "cpu",
                       without_margin: bool = True,
                       make_synapses: Callable[[DWSynapseConfig, int], SynapseBackend] | None = None) -> SynapseResult:
    """Train the table's networks (module docstring) for every seed in ``seeds``.

    ``synapse``: the device (default: the model's defaults; its levels are replaced by ``K`` even levels
    for each ``K`` in ``states`` unless ``states`` is empty, in which case the device is used as it is,
    e.g. a model fitted from a programming characterization). ``neurons``: the hidden neurons
    (``"deterministic"`` sigmoids, ``"stochastic"``, or a neuron backend: an all-spintronic network).
    ``make_synapses(device, seed)`` builds each network's synapse backend (default: simulated synapses of
    ``device``; e.g. the synapses replayed from a recorded programming characterization).
    """
    make_synapses = make_synapses or (lambda config, seed: SimSynapseBackend(config, seed=seed, device=device))
    base = config or TrainConfig(hidden=DEFAULT_HIDDEN)
    synapse = synapse or DWSynapseConfig()
    devices = [synapse.with_states(k) for k in states] if states else [synapse]
    n_train = int(dataset.x_train.shape[0])
    data = dataset.to(device)
    rows: dict[str, SynapseRow] = {}

    def row(name: str, k: int | None, mode: str, m: float | None) -> SynapseRow:
        return rows.setdefault(name, SynapseRow(name, k, mode, m))

    for seed in seeds:
        config = TrainConfig(**{**base.as_dict(), "hidden": base.hidden, "seed": int(seed)})
        inferences = config.epochs * n_train
        float_run = train(dataset, neurons, config, neuron_config, progress, device=device, run=f"float s{seed}")
        row("floating point", None, "float", None).accuracy.append(float_run.test_accuracy)
        for device_config in devices:
            k = device_config.states
            variants = [("in-situ", margin)] + ([("in-situ", 0.0)] if without_margin and margin > 0 else [])
            variants.append(("ex-situ", margin))
            for mode, m in variants:
                name = f"{k}-state {mode}" + (" (no margin)" if mode == "in-situ" and m == 0 and margin > 0 else "")
                backend = make_synapses(device_config, 1000 * int(seed) + 17)
                run = train(dataset, neurons, config, neuron_config, progress, device=device,
                            run=f"{name} s{seed}", synapses=backend, synapse_config=SynapseConfig(mode, m))
                result = row(name, k, mode, m)
                result.n_weights = backend.n_devices
                result.read_energy_per_inference_j = backend.n_devices * device_config.read_energy_j
                initial = backend.n_devices if mode == "in-situ" else 0
                training_events = sum(e.program_events for e in run.epochs)
                if mode == "ex-situ":
                    # the deployment at the end of training was the first draw; each further draw reprograms
                    model = run.model
                    accuracies = [run.test_accuracy]
                    for draw in range(1, draws):
                        for layer in _dw_layers(model):
                            layer.deploy()
                        reseed_sampling(model, config.seeds()["sampling"] + draw)
                        accuracies.append(evaluate(model, data.x_test, data.y_test, config.eval_samples))
                    result.draws.append(accuracies)
                    result.accuracy.append(statistics.fmean(accuracies))
                    result.program_events.append(backend.n_devices)
                    result.training_events.append(0)
                    result.program_energy_per_inference_j.append(backend.n_devices * device_config.write_energy_j
                                                                 / inferences)
                else:
                    result.accuracy.append(run.test_accuracy)
                    result.program_events.append(initial + training_events)
                    result.training_events.append(training_events)
                    result.program_energy_per_inference_j.append(
                        (initial + training_events) * device_config.write_energy_j / inferences)
    return SynapseResult(dataset.describe(), base.as_dict(), synapse.as_dict(), [int(s) for s in seeds], draws,
                         neurons.name if isinstance(neurons, NeuronBackend) else str(neurons), list(rows.values()))


__all__ = ["DEFAULT_HIDDEN", "DEFAULT_MARGIN", "DEFAULT_STATES", "REFERENCE", "SynapseResult", "SynapseRow",
           "synapse_experiment"]
