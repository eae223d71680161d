"""Training as a record stream: per-epoch records and a checkpoint committed to the session as it goes.

A :class:`TrainingRun` is a measurement for the run engine like a characterization protocol: its plan is
the epochs (or chunks of ``steps_per_unit`` steps), each unit's records (the ``epochs`` table) are
committed with a checkpoint of everything the rest of the run depends on (weights, optimizer, schedule,
minibatch order, random streams, backend counters). Ctrl-C or SIGKILL loses at most the steps since the
last commit; ``--resume`` restores the last checkpoint and continues, and on the simulator ends with the
same metrics as an uninterrupted run. A hardware backend's device trials go into the same run (its
``trials`` table), committed with the unit they belong to, so a hardware run can be replayed.

:func:`train_to_session` composes a session: the run with the devices and, if asked, the two software
baselines of the same architecture, each a run of its own.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hil import __version__
from hil.display.progress import LOG_EVERY_S, TrainingProgress
from hil.lab.provenance import check_instruments, check_resume, mark_resumable
from hil.neurons.backend import NeuronBackend
from hil.neurons.layers import NeuronConfig
from hil.session.sinks import SessionStore
from hil.session.writer import SessionWriter, check_new
from hil.synapses.dw_linear import SynapseConfig
from hil.synapses.synapse_backend import SynapseBackend
from hil.training.config import TrainConfig, TrainConfigError
from hil.training.datasets import Dataset
from hil.training.epoch_records import EPOCHS, summarise
from hil.training.network import Neurons
from hil.training.trainer import ProgressCallback, describe_neurons, prepare
from protocols.engine import RunEngine, Unit, check_resumable
from protocols.records import Descriptor

ROLES = {"hil": "the devices in the loop", "deterministic": "software baseline, sigmoid",
         "stochastic": "software baseline, ideal stochastic sigmoid"}


class TrainingRun:
    """One network trained unit by unit for the run engine (see the module docstring)."""

    name = "training"

    def __init__(self, dataset: Dataset, neurons: Neurons, config: TrainConfig,
                 neuron_config: NeuronConfig | None = None, role: str = "hil", steps_per_unit: int | None = None,
                 progress: ProgressCallback | None = None, synapses: SynapseBackend | None = None,
                 synapse_config: SynapseConfig | None = None) -> None:
        if role not in ROLES:
            raise TrainConfigError(f"role: expected one of {', '.join(ROLES)}, got {role!r}")
        if steps_per_unit is not None and steps_per_unit < 1:
            raise TrainConfigError(f"checkpoint every: at least 1 step, got {steps_per_unit}")
        self.dataset, self.neurons, self.config, self.role = dataset, neurons, config, role
        self.neuron_config = neuron_config if isinstance(neurons, NeuronBackend) or neurons == "stochastic" else None
        self.steps_per_unit = steps_per_unit
        label = f"hil ({neurons.name})" if isinstance(neurons, NeuronBackend) else role
        self.trainer = prepare(dataset, neurons, config, self.neuron_config, progress, run=label, synapses=synapses,
                               synapse_config=synapse_config)
        trial_table = getattr(neurons, "trial_descriptor", None)
        self.descriptors: tuple[Descriptor, ...] = (EPOCHS,) + ((trial_table,) if trial_table is not None else ())
        self._trial_table = trial_table.name if trial_table is not None else ""
        self.stage: Callable[[str, np.ndarray], None] | None = None  # where trials of the unit in flight go
        self._unit = 0

    def parameters(self) -> dict[str, Any]:
        backend = self.neurons if isinstance(self.neurons, NeuronBackend) else None
        return {"role": self.role, "neurons": describe_neurons(self.neurons), "config": self.config.as_dict(),
                "seeds": self.config.seeds(), "dataset": self.dataset.describe(),
                "neuron_config": self.neuron_config.as_dict() if self.neuron_config else None,
                "backend": NeuronBackend.describe(backend) if backend is not None else None,
                "steps_per_unit": self.steps_per_unit}

    def plan(self) -> list[Unit]:
        steps = self.trainer.steps_per_epoch
        chunk = self.steps_per_unit or steps
        units = []
        for epoch in range(1, self.config.epochs + 1):
            for first in range(0, steps, chunk):
                units.append(Unit(len(units), "", {"epoch": epoch, "until_step": min(steps, first + chunk)}))
        return units

    def measure(self, unit: Unit) -> dict[str, np.ndarray]:
        self._unit = unit.index
        for rows in getattr(self.neurons, "take_unrecorded", list)():
            self.record_trials(rows)  # played before this run recorded (the backend measuring its curves)
        metrics = self.trainer.train_steps(unit.params["until_step"])
        if metrics is None:
            return {}
        rows = EPOCHS.rows(1, unit.index)
        rows["epoch"], rows["loss"], rows["train_accuracy"] = metrics.epoch, metrics.loss, metrics.train_accuracy
        rows["test_accuracy"] = np.nan if metrics.test_accuracy is None else metrics.test_accuracy
        rows["pulses"], rows["energy_j"], rows["seconds"] = metrics.pulses, metrics.energy_j, metrics.seconds
        rows["program_events"], rows["program_energy_j"] = metrics.program_events, metrics.program_energy_j
        return {EPOCHS.name: rows}

    def record_trials(self, rows: np.ndarray) -> None:
        """A hardware backend's trials, recorded with the unit in flight."""
        if self.stage is not None:
            rows["unit"] = self._unit
            self.stage(self._trial_table, rows)

    def state(self) -> bytes:
        return self.trainer.checkpoint()

    def restore(self, state: bytes) -> None:
        self.trainer.restore(state)

    def analyse(self, tables: Mapping[str, np.ndarray]) -> dict[str, Any]:
        return {"summary": {"role": self.role, "neurons": describe_neurons(self.neurons),
                            **summarise(tables[EPOCHS.name])}}


def training_identity(dataset: Dataset, backend: str, source: Mapping[str, Any] | None,
                      config: TrainConfig, synapses: SynapseBackend | None = None,
                      synapse_config: SynapseConfig | None = None) -> dict[str, Any]:
    """What a resumed training session must match: the backend (``sim``, ``replay``, ``hardware``) and its
    source's identity, the dataset, the seed, the software version and the DW synapses (if any)."""
    described = dataset.describe()
    identity = {"software_version": __version__, "backend": backend, "source": source,
                "dataset": {k: described.get(k) for k in ("name", "n_train", "n_test", "split", "split_seed",
                                                          "source")},
                "seed": config.seed}
    if synapses is not None:
        described_synapses = {k: v for k, v in synapses.describe().items() if k != "devices"}
        identity["synapses"] = {**described_synapses, **(synapse_config or SynapseConfig()).as_dict()}
    return identity


def train_to_session(out: str | Path, dataset: Dataset, backend: NeuronBackend, source: Mapping[str, Any],
                     config: TrainConfig, neuron_config: NeuronConfig, baselines: bool = False,
                     resume: bool = False, force: bool = False, progress: bool | None = None,
                     steps_per_unit: int | None = None, progress_every_s: float = LOG_EVERY_S,
                     synapses: SynapseBackend | None = None, synapse_config: SynapseConfig | None = None) -> list[str]:
    """Train with ``backend`` (and the software baselines) into the session ``out``; the runs' statuses.

    With ``synapses``, the network's weights are that backend's DW synapses (``synapse_config``: in situ or
    ex situ, the margin); the software baselines keep full-precision weights.

    ``resume`` continues ``out`` from its last commit (refused if the backend's source, the dataset, the
    seed or the software version differ); ``force`` replaces an existing ``out``. ``progress``: ``None``
    shows bars on a terminal and a line every ``progress_every_s`` seconds elsewhere (overall steps of
    all the runs, rate, time left), ``False`` nothing.
    """
    out = Path(out)
    identity = training_identity(dataset, backend.name, source.get("identity"), config, synapses, synapse_config)
    bar = TrainingProgress(progress, stream=sys.stderr, log_every_s=progress_every_s)
    runs = [TrainingRun(dataset, backend, config, neuron_config, "hil", steps_per_unit, bar, synapses, synapse_config)]
    if baselines:
        runs += [TrainingRun(dataset, role, config, role=role, steps_per_unit=steps_per_unit, progress=bar)
                 for role in ("deterministic", "stochastic")]
    bar.plan([(run.trainer.run, config.epochs, run.trainer.steps_per_epoch,
               "devices" if run is runs[0] and backend.name == "hardware" else "software") for run in runs])
    if resume:
        check_resume(out, identity)
        writer = SessionWriter.resume(out)
        if "instruments_idn" in source:
            try:
                check_instruments((writer.attrs.get("source") or {}).get("instruments_idn") or {},
                                  source["instruments_idn"], out)
            except BaseException:
                writer.close()
                raise
    else:
        check_new(out, force)
        metadata = {"source": {k: v for k, v in source.items() if k not in ("emulated_chip", "identity")},
                    "identity": identity}
        writer = SessionWriter.create(out, "training", metadata, overwrite=force)
    try:
        store = SessionStore(writer)
        if resume:
            check_resumable(runs, store.recorded())
        hil_run = runs[0]
        if hasattr(backend, "record"):
            hil_run.stage = store.sink(0).stage
            backend.record = hil_run.record_trials  # type: ignore[attr-defined]
        chip = source.get("emulated_chip")
        cycles = int(chip.cycles.sum()) if chip is not None else 0
        try:
            statuses = RunEngine(store, []).run(runs, resume=resume)
        except BaseException as exc:
            mark_resumable(exc, out)
            raise
        finally:
            if chip is not None:  # the pulses the emulated chip counted, resets included: a cross-check
                writer.set_attrs(emulator_cycles=int(writer.attrs.get("emulator_cycles", 0))
                                 + int(chip.cycles.sum()) - cycles)
    finally:
        bar.close()
        if hasattr(backend, "record"):
            backend.record = None  # type: ignore[attr-defined]
        writer.close()
    return statuses
