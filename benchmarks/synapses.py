"""DW synapse networks: the accuracy/energy table beside the reference work's values, and the layer's cost.

Rows:

- ``dw_epoch_5state_in_situ``: seconds per training epoch of a 5-layer network whose weights are all DW
  synapses (in situ, margin 0.25), reference: the same network with ``nn.Linear`` weights, in interleaved
  repetitions (goal: ratio ≤ 1.5);
- ``<dataset>_synapses_*``: the synapse experiment (``hil experiment synapses``) on the MNIST split
  (8,000 train / 2,000 test of ``../shared/data/mnist``; skipped where absent): floating point, 2/3/5-state
  in situ and ex situ, over 5 seeds (mean, the 95 % t interval in the note, the per-seed spread), with the
  programming energy per inference; reference: the reference work's value where it has one (full MNIST,
  60,000 training images, 10 epochs: floating point 97.1 %, 5-state in situ 96.67 %, ex situ 96.63 %, 13 pJ
  per inference).

``python -m benchmarks`` pins torch to one thread before this runs.
"""

from __future__ import annotations

from benchmarks.harness import Row, interleaved_times, ratio_row, spread_of
from benchmarks.training import MNIST_DIR
from hil.synapses.dw_linear import SynapseConfig
from hil.synapses.sim_synapses import SimSynapseBackend
from hil.training import TrainConfig, Trainer, build_network
from hil.training.datasets import Dataset, load_mnist, mnist_available
from hil.training.synapse_experiment import DEFAULT_HIDDEN, DEFAULT_MARGIN, REFERENCE, synapse_experiment
from sim_backend.dw_synapse import DWSynapseConfig

SEEDS = (0, 1, 2, 3, 4)
EPOCHS = 10  # as the reference work
EPOCH_REPEATS = 7


def _epoch_time(data: Dataset) -> Row:
    config = TrainConfig(hidden=DEFAULT_HIDDEN, epochs=10_000, evaluate_every=10_000)
    synapses = SimSynapseBackend(DWSynapseConfig(), seed=0)
    trainers = {
        "dw": Trainer(build_network(data, config, "deterministic", synapses=synapses,
                                    synapse_config=SynapseConfig("in-situ", DEFAULT_MARGIN)), data, config),
        "linear": Trainer(build_network(data, config, "deterministic"), data, config),
    }
    times = interleaved_times({name: t.train_epoch for name, t in trainers.items()}, repeats=EPOCH_REPEATS)
    shape = "-".join(str(n) for n in (data.n_features, *DEFAULT_HIDDEN, data.n_classes))
    return ratio_row("dw_epoch_5state_in_situ", times, "dw", "linear", "s",
                     note=f"{data.name} {shape}, {synapses.n_devices} synapses, {EPOCH_REPEATS} repetitions of one "
                          "epoch; reference: nn.Linear weights (goal <= 1.5)")


def _table(data: Dataset) -> list[Row]:
    config = TrainConfig(hidden=DEFAULT_HIDDEN, epochs=EPOCHS)
    result = synapse_experiment(data, config, seeds=SEEDS, draws=3, without_margin=False)
    rows = []
    for row in result.table():
        name = row["network"].replace(" ", "_").replace("-", "_")
        interval = f"95% t interval [{row['accuracy_low']:.4f}, {row['accuracy_high']:.4f}] over seeds {list(SEEDS)}"
        if row["draw_min"] is not None:
            interval += f"; draws {row['draw_min']:.4f}-{row['draw_max']:.4f}"
        reference = REFERENCE.get(row["network"])
        per_seed = [a / (reference or 1.0) for a in row["accuracy_per_seed"]]  # spread of the ratio, or the value
        rows.append(Row(f"{data.name}_synapses_{name}", row["accuracy"], "accuracy", reference,
                        None if reference is None else row["accuracy"] / reference, interval, spread_of(per_seed)))
        if row["network"] == "5-state in-situ":
            energy = row["program_energy_per_inference_j"]
            reference_j = REFERENCE["programming energy per inference (J)"]
            rows.append(Row(f"{data.name}_synapses_5state_in_situ_energy", energy, "J/inference", reference_j,
                            energy / reference_j,
                            f"{row['program_events']:.0f} programming events ({row['training_events']:.0f} in "
                            f"training) over {EPOCHS} epochs x {data.x_train.shape[0]} images at 5 fJ; "
                            f"reads {row['read_energy_per_inference_j']:.3g} J/inference",
                            spread_of([e / reference_j for e in
                                       result.row(row["network"]).program_energy_per_inference_j])))
    return rows


def run() -> list[Row]:
    if not mnist_available(MNIST_DIR):
        return [Row("mnist_synapses", float("nan"), "", note=f"skipped: no MNIST in {MNIST_DIR}")]
    data = load_mnist(MNIST_DIR)
    return [_epoch_time(data), *_table(data)]
