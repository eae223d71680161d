"""Training networks whose hidden neurons are stochastic devices, and the experiments of physics.md §3.

The network is a multilayer perceptron: input → hidden layers of neurons → linear output. The hidden
neurons are one of

- ``"deterministic"``: sigmoid (software baseline);
- ``"stochastic"``: ideal binary stochastic neurons, ``bernoulli(sigmoid(x))`` (software baseline);
- a :class:`~hil.backends.NeuronBackend`: the devices (hardware-in-loop, simulated or replayed).

:class:`Trainer` runs Adam on the cross-entropy over minibatches; evaluation averages the network's
output over ``eval_samples`` stochastic samples. Every result is a dataclass whose ``as_dict()`` holds
plain values (config, seeds, per-epoch metrics, backend description) for a session writer.

Experiments:

- :func:`transfer_experiment` — trained in software with ideal stochastic sigmoids, then run on the
  varied devices without retraining, vs trained with the devices in the loop;
- :func:`bias_experiment` — accuracy vs an absolute bias-current error, one curve per device width;
- :func:`energy_experiment` — energy per inference (bias pulses and resets) per device width.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hil.backends import NeuronBackend
from hil.datasets import Dataset
from hil.layers import IdealStochasticNeurons, NeuronConfig, SigmoidNeurons, StochasticNeurons

Neurons = str | NeuronBackend  # "deterministic" | "stochastic" | a backend
SOFTWARE_NEURONS = ("deterministic", "stochastic")


@dataclass(frozen=True)
class TrainConfig:
    """Network shape and optimization. ``eval_samples``: stochastic samples averaged per evaluation."""

    hidden: tuple[int, ...] = (128,)
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-2
    seed: int = 0
    eval_samples: int = 16
    evaluate_every: int = 1  # epochs between test evaluations (the last epoch is always evaluated)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden: need one or more positive layer sizes, got {self.hidden!r}")
        for key in ("epochs", "batch_size", "eval_samples", "evaluate_every"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"{key}: must be at least 1, got {getattr(self, key)!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate: must be positive, got {self.learning_rate!r}")

    def seeds(self) -> dict[str, int]:
        """The seeds of one run: weight initialization, minibatch order, stochastic sampling."""
        return {"init": self.seed, "shuffle": self.seed + 1, "sampling": self.seed + 2}

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["hidden"] = list(self.hidden)
        return out


@dataclass
class EpochMetrics:
    """One epoch. ``train_accuracy`` is measured on the minibatches as they were trained (one sample each,
    no extra pulses); ``test_accuracy`` averages ``eval_samples`` samples (None when not evaluated);
    ``pulses``/``energy_j`` are this epoch's device trials (training and evaluation)."""

    epoch: int
    loss: float
    train_accuracy: float
    test_accuracy: float | None
    pulses: int
    energy_j: float
    seconds: float


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


# ---------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------


class MLP(nn.Module):
    """``input → (Linear → neurons) × len(hidden) → Linear``.

    ``make_neurons(layer, size, first_neuron)`` builds the activation of each hidden layer
    (``first_neuron``: how many hidden neurons come before this layer, for device assignment).
    ``forward(x, samples=T)`` averages the output over ``T`` stochastic samples of the hidden neurons
    (one batched pass: the first layer's pre-activation is computed once).
    """

    def __init__(self, n_inputs: int, hidden: Sequence[int], n_outputs: int,
                 make_neurons: Callable[[int, int, int], nn.Module]) -> None:
        super().__init__()
        sizes = [int(n_inputs), *(int(h) for h in hidden)]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        first = [sum(sizes[1:i + 1]) for i in range(len(hidden))]
        self.neurons = nn.ModuleList(make_neurons(i, h, first[i]) for i, h in enumerate(sizes[1:]))
        self.output = nn.Linear(sizes[-1], int(n_outputs))

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
                  neuron_devices: Sequence[torch.Tensor] | None = None) -> MLP:
    """The MLP of ``config`` for ``dataset`` with the given hidden neurons, initialized from ``config.seed``.

    With a backend, hidden neuron ``k`` (counting across layers) sits on device ``k mod n_devices``
    unless ``neuron_devices`` gives each layer's map.
    """
    seeds = config.seeds()

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
        return MLP(dataset.n_features, config.hidden, dataset.n_classes, make)


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
    return copy.to(model.output.weight.device)


@torch.no_grad()
def evaluate(model: MLP, x: torch.Tensor, y: torch.Tensor, samples: int = 16, batch_size: int = 1024) -> float:
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


def _backends(model: nn.Module) -> list[NeuronBackend]:
    found: dict[int, NeuronBackend] = {}
    for m in model.modules():
        if isinstance(m, StochasticNeurons):
            found[id(m.backend)] = m.backend
    return list(found.values())


def _counters(model: nn.Module) -> tuple[int, float, float]:
    """(pulses, energy in J, reset energy in J) of the model's backends so far."""
    backends = _backends(model)
    return (sum(b.pulses for b in backends), sum(b.energy_j for b in backends),
            sum(b.reset_energy_j for b in backends))


def _reseed_sampling(model: nn.Module, seed: int) -> None:
    for b in _backends(model):
        b.reseed(seed)
    for i, m in enumerate(m for m in model.modules() if isinstance(m, IdealStochasticNeurons)):
        m.reseed(seed + i)


# ---------------------------------------------------------------------------------------------
# Trainer
# ---------------------------------------------------------------------------------------------


class Trainer:
    """Adam on the cross-entropy over shuffled minibatches (learning rate decaying on a cosine to zero
    over ``config.epochs``), evaluated on the test split every ``evaluate_every`` epochs."""

    def __init__(self, model: MLP, dataset: Dataset, config: TrainConfig, progress: ProgressCallback | None = None,
                 run: str = "train") -> None:
        self.model = model
        self.device = model.output.weight.device
        self.dataset = dataset if dataset.x_train.device == self.device else dataset.to(self.device)
        self.config = config
        self.progress = progress
        self.run = run
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        # cosine decay to zero over the run: the last epochs settle instead of jumping between minima
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=config.epochs)
        self.shuffle = torch.Generator().manual_seed(config.seeds()["shuffle"])
        self.history: list[EpochMetrics] = []

    def evaluate(self, samples: int | None = None) -> float:
        """Test accuracy averaging ``samples`` (default ``config.eval_samples``) stochastic samples."""
        return evaluate(self.model, self.dataset.x_test, self.dataset.y_test,
                        self.config.eval_samples if samples is None else samples)

    def train_epoch(self) -> EpochMetrics:
        """One pass over the shuffled training set (and the test evaluation when it is due)."""
        cfg, data = self.config, self.dataset
        epoch = len(self.history) + 1
        start_time = time.perf_counter()
        pulses0, energy0, _ = _counters(self.model)
        n = data.x_train.shape[0]
        order = torch.randperm(n, generator=self.shuffle).to(self.device)
        steps = math.ceil(n / cfg.batch_size)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        self.model.train()
        for step in range(steps):
            idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            out = self.model(data.x_train[idx])
            loss = F.cross_entropy(out, data.y_train[idx])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            loss_sum += loss.detach() * idx.numel()
            correct += (out.argmax(dim=1) == data.y_train[idx]).sum()
            if self.progress is not None:
                seen = min(n, (step + 1) * cfg.batch_size)
                self.progress(Progress(self.run, epoch, cfg.epochs, step + 1, steps, float(loss_sum) / seen,
                                       int(correct) / seen))
        self.schedule.step()
        due = epoch % cfg.evaluate_every == 0 or epoch == cfg.epochs
        test_accuracy = self.evaluate() if due else None
        pulses1, energy1, _ = _counters(self.model)
        metrics = EpochMetrics(epoch, float(loss_sum) / n, int(correct) / n, test_accuracy, pulses1 - pulses0,
                               energy1 - energy0, time.perf_counter() - start_time)
        self.history.append(metrics)
        if self.progress is not None:
            self.progress(Progress(self.run, epoch, cfg.epochs, steps, steps, metrics.loss, metrics.train_accuracy,
                                   metrics))
        return metrics

    def fit(self) -> list[EpochMetrics]:
        """Train for the remaining epochs of ``config.epochs``; returns the per-epoch metrics."""
        while len(self.history) < self.config.epochs:
            self.train_epoch()
        return self.history


def _describe_neurons(neurons: Neurons) -> str:
    return neurons.name if isinstance(neurons, NeuronBackend) else str(neurons)


def train(dataset: Dataset, neurons: Neurons, config: TrainConfig | None = None,
          neuron_config: NeuronConfig | None = None, progress: ProgressCallback | None = None,
          device: str | torch.device | None = None, run: str | None = None) -> TrainResult:
    """Build, train and evaluate one network; the result keeps the trained model in ``model``.

    ``device`` (default: the backend's, else the dataset's) is where the network runs.
    """
    config = config or TrainConfig()
    if device is None:
        device = neurons.device if isinstance(neurons, NeuronBackend) else dataset.x_train.device
    model = build_network(dataset, config, neurons, neuron_config).to(device)
    _reseed_sampling(model, config.seeds()["sampling"])
    label = run or _describe_neurons(neurons)
    start = time.perf_counter()
    history = Trainer(model, dataset, config, progress, run=label).fit()
    backend = neurons.describe() if isinstance(neurons, NeuronBackend) else None
    uses_config = isinstance(neurons, NeuronBackend) or neurons == "stochastic"
    return TrainResult(
        neurons=_describe_neurons(neurons),
        dataset=dataset.describe(),
        config=config.as_dict(),
        seeds=config.seeds(),
        neuron_config=(neuron_config or NeuronConfig()).as_dict() if uses_config else None,
        backend=backend,
        epochs=history,
        test_accuracy=float(history[-1].test_accuracy),
        pulses=sum(m.pulses for m in history),
        energy_j=sum(m.energy_j for m in history),
        seconds=time.perf_counter() - start,
        model=model,
    )


# ---------------------------------------------------------------------------------------------
# Experiments
# ---------------------------------------------------------------------------------------------


@dataclass
class TransferResult:
    """Software-trained networks moved onto the devices vs networks trained with the devices in the loop.

    ``software_on_devices``: test accuracy of the software-trained network on the devices, per mapping
    (``"nominal"``: one bias and gain per width, the devices' own offsets and gains left uncorrected;
    ``"calibrated"``: each device mapped by its own fitted curve).
    """

    mapping: str
    deterministic_accuracy: float | None
    software_accuracy: float
    software_on_devices: dict[str, float]
    hil_accuracy: float
    runs: dict[str, TrainResult]

    def table(self) -> list[dict[str, Any]]:
        """Rows ``{"network", "accuracy"}`` for printing and for ``--json``."""
        rows = []
        if self.deterministic_accuracy is not None:
            rows.append({"network": "software, deterministic sigmoid", "accuracy": self.deterministic_accuracy})
        rows.append({"network": "software, ideal stochastic sigmoid", "accuracy": self.software_accuracy})
        for mapping, acc in self.software_on_devices.items():
            rows.append({"network": f"software → devices ({mapping} mapping)", "accuracy": acc})
        rows.append({"network": f"hardware-in-loop ({self.mapping} mapping)", "accuracy": self.hil_accuracy})
        return rows

    def as_dict(self) -> dict[str, Any]:
        return {"experiment": "transfer", "mapping": self.mapping, "table": self.table(),
                "deterministic_accuracy": self.deterministic_accuracy, "software_accuracy": self.software_accuracy,
                "software_on_devices": dict(self.software_on_devices), "hil_accuracy": self.hil_accuracy,
                "runs": {name: run.as_dict() for name, run in self.runs.items()}}


def transfer_experiment(dataset: Dataset, backend: NeuronBackend, config: TrainConfig | None = None,
                        mapping: str = "nominal", deterministic: bool = False,
                        progress: ProgressCallback | None = None) -> TransferResult:
    """Train with ideal stochastic sigmoids, run that network on ``backend``'s devices (both mappings),
    and train the same network with the devices in the loop (``mapping``). Same seeds throughout."""
    config = config or TrainConfig()
    runs: dict[str, TrainResult] = {}
    if deterministic:
        runs["deterministic"] = train(dataset, "deterministic", config, progress=progress, device=backend.device,
                                      run="deterministic")
    runs["software"] = train(dataset, "stochastic", config, progress=progress, device=backend.device, run="software")
    data = dataset.to(backend.device)
    moved = {}
    for name in dict.fromkeys((mapping, "nominal", "calibrated")):
        model = on_devices(runs["software"].model, backend, NeuronConfig(mapping=name))
        _reseed_sampling(model, config.seeds()["sampling"])
        moved[name] = evaluate(model, data.x_test, data.y_test, config.eval_samples)
    runs["hil"] = train(dataset, backend, config, NeuronConfig(mapping=mapping), progress=progress, run="hil")
    return TransferResult(mapping, runs["deterministic"].test_accuracy if deterministic else None,
                          runs["software"].test_accuracy, moved, runs["hil"].test_accuracy, runs)


def devices_by_width(backend: NeuronBackend) -> dict[float, torch.Tensor]:
    """The device indices of each width (m), ascending widths."""
    widths = backend.width_m.cpu()
    return {float(w): torch.nonzero(widths == w).reshape(-1).to(backend.device) for w in torch.unique(widths)}


def _width_layers(devices: torch.Tensor, hidden: Sequence[int]) -> list[torch.Tensor]:
    """Neuron → device maps for each hidden layer, cycling through ``devices``."""
    out, start = [], 0
    for size in hidden:
        out.append(devices[(torch.arange(size, device=devices.device) + start) % devices.numel()])
        start += size
    return out


@dataclass
class WidthRun:
    """One network trained on the devices of one width, evaluated under several bias-current errors."""

    width_m: float
    n_devices: int
    accuracy: list[float]            # one per bias error
    energy_per_inference_j: float    # with eval_samples samples, no bias error
    pulses_per_inference: float
    reset_energy_fraction: float
    run: TrainResult


@dataclass
class BiasResult:
    """Accuracy vs absolute bias-current error, one curve per device width (and energy per inference)."""

    bias_errors_a: list[float]
    mapping: str
    eval_samples: int
    widths: list[WidthRun]

    def accuracy_drop(self, width_m: float) -> list[float]:
        """Accuracy lost at each bias error relative to the first (normally zero) error, for one width."""
        run = next(r for r in self.widths if math.isclose(r.width_m, width_m))
        return [run.accuracy[0] - a for a in run.accuracy]

    def table(self) -> list[dict[str, Any]]:
        """One row per (width, bias error): ``{"width_m", "bias_error_a", "accuracy"}``."""
        return [{"width_m": r.width_m, "bias_error_a": e, "accuracy": a}
                for r in self.widths for e, a in zip(self.bias_errors_a, r.accuracy, strict=True)]

    def energy_table(self) -> list[dict[str, Any]]:
        return [{"width_m": r.width_m, "energy_per_inference_j": r.energy_per_inference_j,
                 "pulses_per_inference": r.pulses_per_inference, "reset_energy_fraction": r.reset_energy_fraction,
                 "accuracy": r.accuracy[0]} for r in self.widths]

    def as_dict(self) -> dict[str, Any]:
        return {"experiment": "bias", "mapping": self.mapping, "eval_samples": self.eval_samples,
                "bias_errors_a": list(self.bias_errors_a), "table": self.table(), "energy": self.energy_table(),
                "runs": {f"{r.width_m * 1e6:g}um": r.run.as_dict() for r in self.widths}}


def bias_experiment(dataset: Dataset, backend: NeuronBackend, bias_errors_a: Sequence[float],
                    config: TrainConfig | None = None, mapping: str = "calibrated",
                    progress: ProgressCallback | None = None) -> BiasResult:
    """For each device width of ``backend``: train a network on the devices of that width (in the loop,
    ``mapping``), then evaluate it with every neuron's current off by each absolute error in ``bias_errors_a``.

    Narrow devices are steeper in absolute current (``w_I ∝ width``), so the same error moves them
    further along their curves. The energy per inference is measured in the evaluation without error.
    """
    config = config or TrainConfig()
    data = dataset.to(backend.device)
    runs = []
    for width, devices in devices_by_width(backend).items():
        layers = _width_layers(devices, config.hidden)
        model = build_network(dataset, config, backend, NeuronConfig(mapping=mapping), neuron_devices=layers)
        model = model.to(backend.device)
        _reseed_sampling(model, config.seeds()["sampling"])
        label = f"hil-{width * 1e6:g}um"
        start = time.perf_counter()
        history = Trainer(model, data, config, progress, run=label).fit()
        result = TrainResult(backend.name, dataset.describe(), config.as_dict(), config.seeds(),
                             NeuronConfig(mapping=mapping).as_dict(),
                             {**backend.describe(), "width_m": width, "devices_used": int(devices.numel())},
                             history, float(history[-1].test_accuracy), sum(m.pulses for m in history),
                             sum(m.energy_j for m in history), time.perf_counter() - start, model)
        accuracy = []
        for k, error in enumerate(bias_errors_a):
            for m in model.neurons:
                m.bias_error_a = float(error)
            _reseed_sampling(model, config.seeds()["sampling"] + 1)
            before = _counters(model)
            accuracy.append(evaluate(model, data.x_test, data.y_test, config.eval_samples))
            if k == 0:
                pulses, energy, reset = (a - b for a, b in zip(_counters(model), before, strict=True))
        for m in model.neurons:
            m.bias_error_a = 0.0
        n_test = data.x_test.shape[0]
        runs.append(WidthRun(width, int(devices.numel()), accuracy, energy / n_test, pulses / n_test,
                             reset / energy if energy > 0 else float("nan"), result))
    return BiasResult([float(e) for e in bias_errors_a], mapping, config.eval_samples, runs)


@dataclass
class EnergyResult:
    """Energy per inference (``eval_samples`` samples per hidden neuron, bias pulses and resets) per width."""

    eval_samples: int
    rows: list[dict[str, Any]]
    runs: dict[str, TrainResult]

    def table(self) -> list[dict[str, Any]]:
        return list(self.rows)

    def as_dict(self) -> dict[str, Any]:
        return {"experiment": "energy", "eval_samples": self.eval_samples, "table": self.table(),
                "runs": {name: run.as_dict() for name, run in self.runs.items()}}


def energy_experiment(dataset: Dataset, backend: NeuronBackend, config: TrainConfig | None = None,
                      mapping: str = "calibrated", progress: ProgressCallback | None = None) -> EnergyResult:
    """Train on the devices of each width and measure the energy of classifying the test set.

    Energy is Σ I²·R_ch·t_p over the bias pulses plus the reset pulse before every trial
    (physics.md §3.4); with ``Ic0 ∝ w`` and ``R_ch ∝ 1/w`` it grows in proportion to the width.
    """
    result = bias_experiment(dataset, backend, [0.0], config, mapping, progress)
    return EnergyResult(result.eval_samples, result.energy_table(),
                        {f"{r.width_m * 1e6:g}um": r.run for r in result.widths})


__all__ = ["MLP", "BiasResult", "EnergyResult", "EpochMetrics", "Progress", "TrainConfig", "TrainResult",
           "Trainer", "TransferResult", "WidthRun", "bias_experiment", "build_network", "devices_by_width",
           "energy_experiment", "evaluate", "on_devices", "train", "transfer_experiment"]
