"""What one point of a sweep computes: an experiment with settings, returning its metrics.

Every built-in experiment trains one network on the simulator (a *virtual chip*: one device per hidden
neuron, drawn from a chip file's distributions) and measures it:

- ``train``: hidden neurons of ``neurons`` (``sim`` devices by default), weights full precision or, with
  ``states``, DW synapses;
- ``bias`` and ``energy``: ``train`` reported for the questions of ``hil experiment bias|energy`` (the
  ``bias_error`` is the absolute bias-current error every neuron sees at evaluation; calibrated mapping);
- ``synapses``: ``train`` with software sigmoid neurons and 5-state DW synapses by default;
- ``transfer``: trained in software (ideal stochastic sigmoids), then run on the devices without
  retraining (``software_on_devices_accuracy``), and trained with the devices in the loop (``hil_accuracy``).

A sweep may also name a function of its own, ``package.module:function``: it is called as
``function(settings: dict, seed: int) -> dict[str, float]`` in the worker.

:data:`PARAMETERS` lists every setting with its unit (values may carry units: ``3um``, ``50uA``) or its
choices; :func:`settings_of` checks a point's settings before anything runs.
"""

from __future__ import annotations

import importlib
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from instruments.failures import UserFacingError
from instruments.units import QuantityError, parse_quantity

BUILT_IN = ("train", "bias", "energy", "synapses", "transfer")

# name: (kind, unit or choices, default); kind: "quantity" (float in the SI unit), "int", "ints", "choice", "path"
PARAMETERS: dict[str, tuple[str, Any, Any]] = {
    "dataset": ("choice", ("digits", "mnist"), "digits"),
    "data_dir": ("path", None, None),
    "hidden": ("ints", None, [64]),
    "epochs": ("int", None, 10),
    "batch_size": ("int", None, 64),
    "lr": ("quantity", "", 1e-2),
    "eval_samples": ("int", None, 16),
    "neurons": ("choice", ("sim", "stochastic", "deterministic"), "sim"),
    "chip": ("path", None, None),
    "width": ("quantity", "m", None),          # every device of this width (default: the chip's widths in turn)
    "variation": ("quantity", "", 1.0),        # the chip's device-to-device spread, scaled by this factor
    "mapping": ("choice", ("calibrated", "nominal"), "calibrated"),
    "bias_error": ("quantity", "A", 0.0),
    "pulse_width": ("quantity", "s", 10e-6),
    "states": ("int", None, None),             # DW synapses with this many states (none: full precision)
    "margin": ("quantity", "", 0.25),
    "sigma": ("quantity", "", 0.2),
    "synapse_mode": ("choice", ("in-situ", "ex-situ"), "in-situ"),
}
METRICS = {
    "train": ("accuracy", "energy_per_inference_j", "pulses_per_inference", "program_events", "reprogrammings",
              "program_energy_per_inference_j", "train_seconds"),
    "transfer": ("software_accuracy", "software_on_devices_accuracy", "hil_accuracy", "train_seconds"),
}
DEFAULTS = {"bias": {"mapping": "calibrated"}, "energy": {}, "synapses": {"neurons": "deterministic", "states": 5},
            "transfer": {"mapping": "nominal", "width": 3e-6}, "train": {}}


class SweepPointError(UserFacingError, ValueError):
    """A point's settings that the experiment cannot use; the message names the setting."""


def metrics_of(experiment: str) -> tuple[str, ...] | None:
    """The metrics a built-in experiment reports (``None`` for a function of the sweep's own)."""
    if experiment not in BUILT_IN:
        return None
    return METRICS["transfer" if experiment == "transfer" else "train"]


def _whole(name: str, value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SweepPointError(f"{name}: expected a whole number of at least 1, got {value!r}")
    return value


def _value(name: str, value: Any) -> Any:
    kind, detail, _ = PARAMETERS[name]
    if kind == "quantity":
        try:
            number = parse_quantity(value, detail, name)
        except QuantityError as exc:
            raise SweepPointError(str(exc)) from None
        if not math.isfinite(number):
            raise SweepPointError(f"{name}: expected a finite value, got {value!r}")
        return number
    if kind == "int":
        return _whole(name, value)
    if kind == "ints":
        values = [value] if isinstance(value, int | float) else value
        if not isinstance(values, list) or not values:
            raise SweepPointError(f"{name}: expected a layer size or a list of them, got {value!r}")
        return [_whole(name, v) for v in values]
    if kind == "choice":
        if value not in detail:
            raise SweepPointError(f"{name}: expected one of {', '.join(detail)}, got {value!r}")
        return value
    if not isinstance(value, str):
        raise SweepPointError(f"{name}: expected a path, got {value!r}")
    return value


def settings_of(experiment: str, base: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The full settings of one point: defaults, the experiment's defaults, ``base``, then ``params``, each
    checked; unknown names are refused. A function of the sweep's own gets ``base`` and ``params`` as written."""
    if experiment not in BUILT_IN:
        return {**base, **params}
    settings = {name: default for name, (_, _, default) in PARAMETERS.items()}
    settings.update(DEFAULTS[experiment])
    for source in (base, params):
        for name, value in source.items():
            if name not in PARAMETERS:
                raise SweepPointError(f"{name}: not a setting of experiment {experiment} (settings: "
                                      f"{', '.join(PARAMETERS)})")
            settings[name] = _value(name, value)
    if settings["dataset"] == "mnist" and settings["data_dir"] is None:
        raise SweepPointError("data_dir: the mnist dataset needs the folder of its IDX files")
    if experiment == "transfer" and settings["states"] is not None:
        raise SweepPointError("states: the transfer experiment has no DW synapses")
    return settings


def resolve(experiment: str) -> Callable[[dict[str, Any], int], dict[str, float]]:
    """The function that computes a point of ``experiment``."""
    if experiment in BUILT_IN:
        return transfer_point if experiment == "transfer" else train_point
    module, _, name = experiment.partition(":")
    if not module or not name:
        raise SweepPointError(f"experiment: expected one of {', '.join(BUILT_IN)} or package.module:function, "
                              f"got {experiment!r}")
    try:
        function = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise SweepPointError(f"experiment: cannot load {experiment!r} ({exc})") from None
    if not callable(function):
        raise SweepPointError(f"experiment: {experiment!r} is not a function")
    return function


# -- the built-in points (run in the workers) --------------------------------------------------------------------


def _dataset(settings: dict[str, Any], seed: int) -> Any:
    from hil.training.datasets import load_dataset

    return load_dataset(settings["dataset"], settings["data_dir"], seed=seed)


def _config(settings: dict[str, Any], seed: int) -> Any:
    from hil.training.config import TrainConfig

    return TrainConfig(hidden=tuple(settings["hidden"]), epochs=settings["epochs"], batch_size=settings["batch_size"],
                       learning_rate=settings["lr"], seed=seed, eval_samples=settings["eval_samples"])


def _devices(settings: dict[str, Any], n: int, seed: int) -> Any:
    """A virtual chip of ``n`` devices from the chip file, its spread scaled by ``variation``."""
    from hil.neurons.simulated import SimBackend, virtual_chip_mapping
    from sim_backend.chip import load_chip

    mapping = virtual_chip_mapping(n, settings["width"], settings["chip"], seed=seed + 30)
    mapping["variation"] = {k: v * settings["variation"] for k, v in mapping["variation"].items()}
    return SimBackend(load_chip(mapping), pulse_width_s=settings["pulse_width"])


def train_point(settings: dict[str, Any], seed: int) -> dict[str, float]:
    """Train one network of ``settings`` (see the module docstring) and measure it."""
    import torch

    from hil.neurons.layers import NeuronConfig
    from hil.synapses.dw_linear import SynapseConfig
    from hil.synapses.sim_synapses import SimSynapseBackend
    from hil.training.network import counters, evaluate, reseed_sampling
    from hil.training.trainer import train
    from sim_backend.dw_synapse import DWSynapseConfig

    torch.set_num_threads(1)
    started = time.perf_counter()
    data, config = _dataset(settings, seed), _config(settings, seed)
    neurons: Any = settings["neurons"]
    if neurons == "sim":
        neurons = _devices(settings, sum(config.hidden), seed)
    synapses = synapse_config = None
    if settings["states"] is not None:
        device = DWSynapseConfig(sigma=settings["sigma"]).with_states(settings["states"])
        synapses = SimSynapseBackend(device, seed=seed + 17)
        synapse_config = SynapseConfig(settings["synapse_mode"], settings["margin"])
    neuron_config = NeuronConfig(mapping=settings["mapping"])
    run = train(data, neurons, config, neuron_config, synapses=synapses, synapse_config=synapse_config)
    model = run.model
    for layer in model.neurons:
        if hasattr(layer, "bias_error_a"):
            layer.bias_error_a = settings["bias_error"]
    reseed_sampling(model, config.seeds()["sampling"] + 1)
    before = counters(model)
    accuracy = evaluate(model, data.x_test, data.y_test, config.eval_samples)
    pulses, energy, _ = (a - b for a, b in zip(counters(model), before, strict=True))
    n_test, n_train = data.x_test.shape[0], data.x_train.shape[0]
    events = synapses.program_events if synapses else 0  # the initial programming and training's (or ex situ's one)
    return {
        "accuracy": float(accuracy),
        "energy_per_inference_j": float(energy) / n_test,
        "pulses_per_inference": float(pulses) / n_test,
        "program_events": float(events),
        # beyond each device's one whole programming (in situ the first, ex situ the deployment): the training's
        "reprogrammings": float(events - synapses.n_devices) if synapses else 0.0,
        "program_energy_per_inference_j": (float(events) * synapses.config.write_energy_j / (config.epochs * n_train)
                                           if synapses else 0.0),
        "train_seconds": time.perf_counter() - started,
    }


def transfer_point(settings: dict[str, Any], seed: int) -> dict[str, float]:
    """The transfer experiment at ``settings`` (see the module docstring)."""
    import torch

    from hil.training.experiments import transfer_experiment

    torch.set_num_threads(1)
    started = time.perf_counter()
    data, config = _dataset(settings, seed), _config(settings, seed)
    result = transfer_experiment(data, _devices(settings, sum(config.hidden), seed), config,
                                 mapping=settings["mapping"])
    return {"software_accuracy": result.software_accuracy,
            "software_on_devices_accuracy": result.software_on_devices[settings["mapping"]],
            "hil_accuracy": result.hil_accuracy, "train_seconds": time.perf_counter() - started}


def check_paths(settings: Mapping[str, Any]) -> None:
    """Refuse a chip file or data folder that is not there (before the sweep starts)."""
    for name in ("chip", "data_dir"):
        value = settings.get(name)
        if value is not None and not Path(value).exists():
            raise SweepPointError(f"{name}: {value} does not exist")
