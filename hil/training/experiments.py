"""The experiments of physics.md §3: what hardware-in-loop training buys, as numbers.

- :func:`transfer_experiment` — trained in software with ideal stochastic sigmoids, then run on the
  varied devices without retraining, vs trained with the devices in the loop, on one backend as it is (the
  sweeps' ``transfer`` point; ``hil experiment transfer`` runs the four-arm table on a drifting chip,
  :mod:`hil.training.drift_transfer`);
- :func:`bias_experiment` — accuracy vs an absolute bias-current error, one curve per device width;
- :func:`energy_experiment` — energy per inference (bias pulses and resets) per device width.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from hil.neurons.backend import NeuronBackend
from hil.neurons.layers import NeuronConfig
from hil.training.config import TrainConfig
from hil.training.datasets import Dataset
from hil.training.network import build_network, counters, evaluate, on_devices, reseed_sampling
from hil.training.trainer import ProgressCallback, Trainer, TrainResult, train


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
        reseed_sampling(model, config.seeds()["sampling"])
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
        reseed_sampling(model, config.seeds()["sampling"])
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
            reseed_sampling(model, config.seeds()["sampling"] + 1)
            before = counters(model)
            accuracy.append(evaluate(model, data.x_test, data.y_test, config.eval_samples))
            if k == 0:
                pulses, energy, reset = (a - b for a, b in zip(counters(model), before, strict=True))
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
