"""``hil experiment transfer|bias|energy``: the research claims of physics.md §3 as a table and a PNG.

Every experiment runs on the simulator with a *virtual chip*: one device per hidden neuron, drawn from
a chip file's distributions.

- ``transfer``: on a drifting, heating chip (``configs/chip.varied.yaml``: twice the embedded chip's
  device-to-device spread, the realistic chip's effects; 3 µm devices), software with the nominal mapping and
  with a one-time per-device calibration vs hardware-in-loop in pulse and curve mode, over seeds, with the
  instrument time of each and the conditions where calibration suffices
  (:mod:`hil.training.drift_transfer`).
- ``bias``: accuracy vs an absolute bias-current error, one curve per device width.
- ``energy``: energy per inference (Σ I²·R_ch·t_p over bias pulses and resets) per device width.
- ``synapses``: few-state DW synapses in deep networks (:mod:`hil.training.synapse_experiment`): floating
  point vs 2/3/5-state in situ (with and without the noise tolerance margin) and ex situ, with programming
  events and energy per inference, beside the reference work's values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hil.neurons.simulated import SimBackend
from hil.outputs import check_outputs
from hil.training.config import TrainConfig
from hil.training.datasets import Dataset
from hil.training.drift_transfer import DriftTransferResult, drift_transfer_experiment
from hil.training.experiments import bias_experiment, energy_experiment
from hil.training.synapse_experiment import REFERENCE, SynapseResult, synapse_experiment
from hil.training.trainer import ProgressCallback

BIAS_ERRORS_A = (0.0, 25e-6, 50e-6, 75e-6, 100e-6, 150e-6)


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def run_experiment(name: str, dataset: Dataset, config: TrainConfig, chip: str | Path | None = None,
                   out_dir: str | Path = "experiments", device: str = "cpu", force: bool = False,
                   progress: ProgressCallback | None = None,
                   synapse_options: Mapping[str, Any] | None = None, seeds: Sequence[int] | None = None
                   ) -> dict[str, Any]:
    """Run one experiment; returns ``{"table", "text", "files", "result"}`` and writes PNG + JSON.
    ``progress`` is called with each training step of every network the experiment trains.
    ``synapse_options`` (``synapses`` only): keyword arguments of :func:`synapse_experiment`; ``seeds``
    (``transfer`` only): the training seeds (default: ``config.seed``)."""
    out_dir = Path(out_dir)
    check_outputs([out_dir / f"{name}.png", out_dir / f"{name}.json"], force)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_neurons = sum(config.hidden)
    plt = _plt()
    if name == "synapses":
        result = synapse_experiment(dataset, config, progress=progress, device=device, **(synapse_options or {}))
        table = result.table()
        text = synapse_text(result)
        fig = synapse_figure(plt, result)
    elif name == "transfer":
        result = drift_transfer_experiment(dataset, config, seeds or [config.seed], chip=chip, device=device,
                                           progress=progress)
        table = result.table()
        text = result.text()
        fig = transfer_figure(plt, result)
    elif name == "bias":
        backend = SimBackend.virtual(3 * n_neurons, chip=chip, seed=config.seed + 20, device=device)
        result = bias_experiment(dataset, backend, BIAS_ERRORS_A, config, progress=progress)
        table = result.table()
        lines = [f"{'width':>8} " + " ".join(f"{e * 1e6:7.0f}uA" for e in result.bias_errors_a)]
        fig, ax = plt.subplots(figsize=(6, 4))
        for run in result.widths:
            lines.append(f"{run.width_m * 1e6:6.0f}um " + " ".join(f"{a:9.4f}" for a in run.accuracy))
            ax.plot([e * 1e6 for e in result.bias_errors_a], run.accuracy, "o-", label=f"{run.width_m * 1e6:g} um")
        text = "\n".join(lines)
        ax.set_xlabel("absolute bias-current error (uA)")
        ax.set_ylabel("test accuracy")
        ax.set_title("Narrow (steep) devices are more sensitive to bias error")
        ax.legend(title="device width")
    elif name == "energy":
        backend = SimBackend.virtual(3 * n_neurons, chip=chip, seed=config.seed + 20, device=device)
        result = energy_experiment(dataset, backend, config, progress=progress)
        table = result.table()
        text = "\n".join(f"{row['width_m'] * 1e6:6.0f}um  {row['energy_per_inference_j']:.4g} J per inference "
                         f"({row['pulses_per_inference']:.0f} pulses, {row['reset_energy_fraction']:.0%} in resets), "
                         f"accuracy {row['accuracy']:.4f}" for row in table)
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot([r["width_m"] * 1e6 for r in table], [r["energy_per_inference_j"] * 1e6 for r in table], "o-")
        ax.set_xlabel("device width (um)")
        ax.set_ylabel("energy per inference (uJ)")
        ax.set_title("Neuron energy per inference (bias pulses + resets)")
    else:
        raise ValueError(f"unknown experiment {name!r} (transfer, bias, energy, synapses)")
    fig.tight_layout()
    png = out_dir / f"{name}.png"
    fig.savefig(png, dpi=120)
    plt.close(fig)
    data = out_dir / f"{name}.json"
    data.write_text(json.dumps(result.as_dict(), indent=2, default=str))
    return {"table": table, "text": text, "files": [png, data], "result": result}


def synapse_text(result: SynapseResult) -> str:
    """The synapse table as text, with the reference work's values where it has them."""
    lines = [f"{'network':30} {'accuracy':>9} {'95% interval':>17} {'draws min-max':>15} {'prog. events':>13} "
             f"{'prog. J/inference':>18} {'reference':>10}"]
    for row in result.table():
        interval = (f"[{row['accuracy_low']:.4f}, {row['accuracy_high']:.4f}]" if row["seeds"] > 1 else "")
        draws = (f"{row['draw_min']:.4f}-{row['draw_max']:.4f}" if row["draw_min"] is not None else "")
        reference = REFERENCE.get(row["network"])
        lines.append(f"{row['network']:30} {row['accuracy']:9.4f} {interval:>17} {draws:>15} "
                     f"{row['program_events']:13.0f} {row['program_energy_per_inference_j']:18.3g} "
                     f"{'' if reference is None else f'{reference:.4f}':>10}")
    seeds = ", ".join(str(s) for s in result.seeds)
    data = result.dataset
    lines.append(f"{data.get('name')} ({data.get('n_train')} train / {data.get('n_test')} test), hidden "
                 f"{tuple(result.config['hidden'])}, {result.config['epochs']} epochs, seeds {seeds}; reference: "
                 "full MNIST, 5-layer networks, 13 pJ programming energy per inference")
    return "\n".join(lines)


def synapse_figure(plt: Any, result: SynapseResult) -> Any:
    """Accuracy (with intervals over seeds, ex situ: the draws' range) and programming events per network."""
    table = result.table()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    names = [r["network"] for r in table]
    y = list(range(len(table)))
    colours = ["0.3" if r["mode"] == "float" else {"in-situ": "tab:blue", "ex-situ": "tab:orange"}[r["mode"]]
               for r in table]
    errors = [[r["accuracy"] - r["accuracy_low"] for r in table], [r["accuracy_high"] - r["accuracy"] for r in table]]
    left.barh(y, [r["accuracy"] for r in table], xerr=errors, color=colours, capsize=3)
    for i, r in enumerate(table):
        if r["draw_min"] is not None:
            left.plot([r["draw_min"], r["draw_max"]], [i, i], "k|-", lw=1, ms=8)
    draw_low = min((r["draw_min"] for r in table if r["draw_min"] is not None), default=1.0)
    low = min(min(r["accuracy_low"] for r in table), draw_low)
    left.set_xlim(max(0.0, low - 0.02), 1.0)
    left.set_yticks(y, names)
    left.invert_yaxis()
    left.set_xlabel(f"test accuracy ({result.dataset.get('name')}; bars: 95 % interval over seeds, "
                    "ex situ: range of draws)")
    initial = [r["program_events"] - r["training_events"] for r in table]
    training = [r["training_events"] for r in table]
    right.barh(y, initial, color=colours, alpha=0.35, label="initial / deployment programming")
    right.barh(y, training, left=initial, color=colours, label="reprogramming during training")
    for i, r in enumerate(table):
        if r["mode"] == "float":
            right.text(0, i, " no devices", va="center", fontsize=8)
    right.set_yticks(y, [""] * len(y))
    right.invert_yaxis()
    right.set_xlabel("programming events (mean over seeds)")
    right.legend(fontsize=8, loc="lower right")
    neurons = "sigmoid" if result.neurons == "deterministic" else result.neurons
    fig.suptitle(f"Few-state stochastic DW synapses: {result.dataset.get('name')}, hidden "
                 f"{tuple(result.config['hidden'])}, {neurons} neurons, {len(result.seeds)} seed(s)")
    fig.tight_layout()
    return fig


def transfer_figure(plt: Any, result: DriftTransferResult) -> Any:
    """Accuracy on the devices per arm and condition (bars: 95 % interval over seeds) and each arm's instrument
    time before deployment (log scale)."""
    table = result.table()
    colours = {"software": "0.3", "arm": "tab:blue", "condition": "tab:orange"}
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.5), sharey=True, gridspec_kw={"width_ratios": [3, 2]})
    y = list(range(len(table)))
    errors = [[r["accuracy"] - r["accuracy_low"] for r in table], [r["accuracy_high"] - r["accuracy"] for r in table]]
    left.barh(y, [r["accuracy"] for r in table], xerr=errors, color=[colours[r["group"]] for r in table], capsize=3)
    left.set_xlim(max(0.0, min(r["accuracy_low"] for r in table) - 0.02), 1.0)
    left.set_yticks(y, [f"{r['arm']}\n{r['condition']}" for r in table], fontsize=7)
    left.invert_yaxis()
    left.set_xlabel(f"test accuracy on the devices ({result.dataset.get('name')}; bars: 95 % interval over "
                    f"{len(result.seeds)} seed(s))")
    hours = [r["instrument_hours"] if r["trials"] else float("nan") for r in table]
    right.barh(y, hours, color=[colours[r["group"]] for r in table])
    if any(h > 0 for h in hours):
        right.set_xscale("log")
    for i, r in enumerate(table):
        if not r["trials"]:
            right.text(0.01, i, "no trials", va="center", fontsize=7, transform=right.get_yaxis_transform())
    right.tick_params(labelleft=False)
    right.set_xlabel("instrument time before deployment (h)")
    fig.suptitle(f"Transfer on a drifting, heating chip: {result.n_devices} devices of {result.width_m * 1e6:g} um "
                 f"({result.chip}); grey: software, blue: the four arms, orange: conditions")
    fig.tight_layout()
    return fig
