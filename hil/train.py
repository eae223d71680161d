"""``hil train`` and ``hil experiment``: backends from the command line, training runs into sessions."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tqdm import tqdm

from hil.backends import NeuronBackend, SimBackend
from hil.datasets import Dataset
from hil.session import SessionWriter
from hil.training import Progress, TrainConfig, TrainResult, train
from sim_backend.chip import load_chip

DEFAULT_SWEEP = Path(__file__).resolve().parents[1] / "configs" / "protocols" / "bias-sweep.yaml"


class TrainingProgress:
    """A tqdm bar per training run: steps, loss, accuracy, time left."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bar: tqdm | None = None
        self._key: tuple[str, int] | None = None

    def __call__(self, progress: Progress) -> None:
        key = (progress.run, progress.epoch)
        if key != self._key:
            if self.bar is not None:
                self.bar.close()
            self.bar = tqdm(total=progress.steps, desc=f"{progress.run} epoch {progress.epoch}/{progress.epochs}",
                            unit="step", disable=not self.enabled, file=sys.stderr, leave=False)
            self._key = key
        assert self.bar is not None
        self.bar.n = progress.step
        postfix = {"loss": f"{progress.loss:.3f}", "acc": f"{progress.accuracy:.3f}"}
        if progress.metrics is not None and progress.metrics.test_accuracy is not None:
            postfix["test"] = f"{progress.metrics.test_accuracy:.3f}"
        self.bar.set_postfix(postfix, refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def hardware_sweeps(station: Any, protocol_file: str | Path = DEFAULT_SWEEP,
                    devices: list[str] | None = None) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Bias currents and reset current per device, from a bias-sweep protocol file."""
    from protocols.characterization import BiasSweep

    raw = yaml.safe_load(Path(protocol_file).read_text())
    if devices is not None:
        raw = {**raw, "devices": devices}
    sweep = BiasSweep(station, raw)
    return ({d: sweep.lookup(sweep.bias, d, "bias") for d in sweep.devices},
            {d: sweep.lookup(sweep.reset_a, d, "reset.current") for d in sweep.devices})


@contextlib.contextmanager
def open_backend(kind: str, station: str | Path | None = None, chip: str | Path | None = None,
                 session: str | Path | None = None, seed: int = 0, mode: str = "pulse",
                 devices: list[str] | None = None, trials_per_point: int = 50, remeasure_every: int = 50,
                 device: str = "cpu") -> Iterator[tuple[NeuronBackend, dict[str, Any]]]:
    """The backend a command asked for, and what a session should record about its source."""
    if kind == "sim":
        # the chip file's own seed draws its devices; ``seed`` restarts the switching outcomes
        backend = SimBackend(load_chip(chip, device=device), seed=seed)
        yield backend, {"chip": str(chip or "configs/chip.default.yaml")}
    elif kind == "replay":
        if session is None:
            raise ValueError("--backend replay needs --session FILE.h5 (a recorded characterization)")
        from hil.recorded import replay_backend

        yield replay_backend(session, seed=seed, device=device), {"session": str(session)}
    elif kind == "hardware":
        if station is None:
            raise ValueError("--backend hardware needs --station FILE")
        from hil.characterize import open_station
        from hil.hardware import HardwareBackend

        with open_station(station, chip=chip) as (connected, emulated):
            sweeps, resets = hardware_sweeps(connected, devices=devices)
            backend = HardwareBackend(connected, sweeps, resets, mode=mode, trials_per_point=trials_per_point,
                                      remeasure_every=remeasure_every, seed=seed)
            yield backend, {"station": connected.spec.snapshot(), "emulated": emulated is not None,
                            "emulated_chip": emulated.chip if emulated is not None else None}
    else:
        raise ValueError(f"--backend: expected hardware, sim or replay, got {kind!r}")


EPOCH_DTYPE = np.dtype([("epoch", "i4"), ("loss", "f8"), ("train_accuracy", "f8"), ("test_accuracy", "f8"),
                        ("pulses", "i8"), ("energy_j", "f8"), ("seconds", "f8")])


def write_training_session(out: str | Path, result: TrainResult, source: dict[str, Any],
                           baselines: dict[str, TrainResult]) -> Path:
    """One session file for one training run: config, seeds, source, per-epoch metrics, energy, baselines."""
    source = {k: v for k, v in source.items() if k != "emulated_chip"}
    with SessionWriter.create(out, kind="training", metadata={"source": source}, overwrite=True) as writer:
        group = writer.group("training")
        attrs = {
            "backend": result.neurons, "dataset": result.dataset.get("name", ""),
            "test_accuracy": result.test_accuracy, "pulses": result.pulses, "energy_j": result.energy_j,
            "seconds": result.seconds, "config": result.config, "seeds": result.seeds,
            "neuron_config": result.neuron_config or {}, "backend_description": result.backend or {},
            "dataset_description": result.dataset, "source": source,
        }
        for name, base in baselines.items():
            attrs[f"{name}_accuracy"] = base.test_accuracy
        group.set_attrs(**attrs)
        rows = np.zeros(len(result.epochs), dtype=EPOCH_DTYPE)
        for i, m in enumerate(result.epochs):
            rows[i] = (m.epoch, m.loss, m.train_accuracy,
                       np.nan if m.test_accuracy is None else m.test_accuracy, m.pulses, m.energy_j, m.seconds)
        group.append("epochs", rows)
        for name, base in baselines.items():
            b = writer.group(f"baselines/{name}")
            b.set_attrs(test_accuracy=base.test_accuracy, config=base.config, seeds=base.seeds)
    return Path(out)


def run_training(dataset: Dataset, backend: NeuronBackend, config: TrainConfig, mapping: str,
                 gradient: str, baselines: bool, progress: bool | None = None) -> tuple[TrainResult, dict]:
    from hil.layers import NeuronConfig

    bar = TrainingProgress(progress)
    try:
        result = train(dataset, backend, config, NeuronConfig(mapping=mapping, gradient=gradient), progress=bar,
                       run=f"hil ({backend.name})")
        base: dict[str, TrainResult] = {}
        if baselines:
            base["deterministic"] = train(dataset, "deterministic", config, progress=bar, run="deterministic")
            base["stochastic"] = train(dataset, "stochastic", config, progress=bar, run="ideal stochastic")
    finally:
        bar.close()
    return result, base
