"""Training with simulated devices in the loop: time per epoch against software, the accuracy table over
seeds, and the instrument hours the same runs would take on a real station.

Rows:

- ``train_epoch_sim_backend``: seconds per training epoch on digits with the sim backend on the ideal chip (one
  device per hidden neuron), reference: the same network with ideal stochastic sigmoid neurons, in interleaved
  repetitions of several epochs each (aim: ratio ≤ 1.1); ``train_epoch_sim_backend_effects``: the same on the
  default chip, every effect on;
- ``<dataset>_accuracy_*``: test accuracy of the same architecture trained as software (deterministic
  sigmoid, ideal stochastic sigmoid), with the simulated devices in the loop (sim), with replayed curves of
  those devices in the loop (replay), and trained in software then run on the devices (software→devices);
  reference: the ideal stochastic network. Each row is the mean over ``SEEDS`` (weights, minibatch order,
  sampling and the virtual chip all follow the seed), with the 95 % t interval of the mean in the note; the
  ratio is mean / mean and the spread is that of the per-seed ratios (same seed, same chip). Devices: a
  virtual chip drawn from the embedded chip file (widths 3/5/10 µm in turn, its device-to-device
  variation), nominal mapping (one bias and gain per width);
- ``<dataset>_hil_instrument_hours``: how long the devices-in-the-loop run above would keep a real station
  busy: the device trials it made (counted by the backend: one per hidden neuron per training image, plus
  ``eval_samples`` per hidden neuron per test image at every evaluation) × the physical time per trial
  (the emulated station's virtual clock over a hardware-backend call of the training batch's shape);
- ``<dataset>_transfer_*``: the four-arm transfer table of ``hil experiment transfer`` (its defaults: 128 hidden
  neurons on as many varied 3 µm devices that drift and heat, 20 epochs) over ``SEEDS``: software with the
  nominal mapping, software with a one-time calibration (deployed when the pulse-mode run ends), hardware-in-loop
  in pulse and in curve mode, and the calibrated and the pulse-mode networks deployed a week later; accuracy on the
  devices, reference the ideal stochastic network, the 95 % t interval, the paired difference to the pulse-mode
  network and the instrument time in the note;
- ``<dataset>_hil_instrument_hours_pulse`` / ``_curve``: the instrument time of those two hardware-in-loop runs
  (their trials × the chip's modeled 1.4 ms per trial); the curve row's reference is the pulse row, so its ratio is
  the fraction of the station time curve mode needs (aim ≤ 0.05) and its note the accuracy it costs (aim ≤ 0.3 pp).
  On the MNIST split only the planned trials of the same two runs are given (:func:`plan_trials`, which a test
  checks against the trials a run plays): their accuracy is not measured here.

MNIST rows appear when ``../shared/data/mnist`` holds the MNIST test split (8,000 train / 2,000 test).
"""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path

import torch

from benchmarks.harness import Row, interleaved_times, ratio_row, spread_of
from benchmarks.instruments import modeled_trial_time_s
from hil.neurons import ReplayBackend, SimBackend, measure_curves, sweep_currents
from hil.neurons.curve_tracking import InLoopBackend
from hil.neurons.layers import NeuronConfig
from hil.training import TrainConfig, Trainer, build_network, train
from hil.training.datasets import Dataset, load_digits, load_mnist, mnist_available
from hil.training.drift_transfer import (
    CALIBRATED,
    CHIP_SEED_OFFSET,
    HIL_CURVE,
    HIL_PULSE,
    REMEASURE_EPOCHS,
    SOFTWARE_NOMINAL,
    TRANSFER_CHIP,
    TRANSFER_WIDTH_M,
    drift_transfer_experiment,
)
from hil.training.experiments import transfer_experiment
from hil.training.instrument_plan import plan_trials, sampling_calls
from instruments.config_files import IDEAL_CHIP_FILE
from protocols.fits import mean_interval

MNIST_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"
HIDDEN = 128
SEEDS = (0, 1, 2, 3, 4)
SWEEP_TRIALS = 200  # trials per point of the simulated bias sweep that the replay backend replays
EPOCHS_PER_REPEAT, EPOCH_REPEATS = 10, 11  # one epoch on digits is ~15 ms: too short to time alone
TRANSFER_EPOCHS = 20  # hil experiment transfer's default
TRANSFER_ROWS = {  # row name: (arm, condition)
    "software_nominal": (SOFTWARE_NOMINAL, "deployed at T"),
    "software_calibrated": (CALIBRATED, "calibrated at 0, deployed at T"),
    "hil_pulse": (HIL_PULSE, "at the end of its run (T)"),
    "hil_curve": (HIL_CURVE, "at the end of its run"),
    "software_calibrated_week": (CALIBRATED, "deployed a week after calibration"),
    "hil_pulse_week": (HIL_PULSE, "deployed a week after its run"),
}

NOTES = {
    "deterministic": "software, sigmoid",
    "ideal_stochastic": "software, bernoulli(sigmoid), T={T}",
    "hil_sim": "sim devices in the loop, nominal mapping",
    "hil_replay": f"replayed bias sweeps ({SWEEP_TRIALS} trials/point) of the same devices in the loop",
    "software_to_devices": "ideal-stochastic network run on the sim devices, no retraining",
}


def _epoch_time(data: Dataset) -> list[Row]:
    # many epochs configured so the learning-rate schedule and the end-of-run evaluation stay out of the timing
    config = TrainConfig(hidden=(HIDDEN,), epochs=10_000, evaluate_every=10_000)
    backends = {"sim": SimBackend.virtual(HIDDEN, chip=IDEAL_CHIP_FILE, seed=1),
                "effects": SimBackend.virtual(HIDDEN, seed=1)}
    trainers = {name: Trainer(build_network(data, config, neurons), data, config)
                for name, neurons in (*backends.items(), ("ideal", "stochastic"))}

    def epochs(trainer: Trainer):
        def run() -> None:
            for _ in range(EPOCHS_PER_REPEAT):
                trainer.train_epoch()
        return run

    times = interleaved_times({name: epochs(t) for name, t in trainers.items()}, repeats=EPOCH_REPEATS)
    steps = -(-data.x_train.shape[0] // config.batch_size)
    shape = (f"{data.name}: {data.x_train.shape[0]} images, {steps} steps of {config.batch_size}, "
             f"{data.n_features}-{HIDDEN}-{data.n_classes}; {EPOCH_REPEATS} repetitions of {EPOCHS_PER_REPEAT} epochs")
    return [ratio_row("train_epoch_sim_backend", times, "sim", "ideal", "s", scale=1 / EPOCHS_PER_REPEAT,
                      note=f"{shape}; the ideal chip's devices (chip.ideal.yaml); reference: ideal stochastic "
                           "sigmoid neurons"),
            ratio_row("train_epoch_sim_backend_effects", times, "effects", "ideal", "s", scale=1 / EPOCHS_PER_REPEAT,
                      note=f"{shape}; the default chip's devices with every effect on (tabulated switching, drift "
                           "aging them by every trial); reference: ideal stochastic sigmoid neurons")]


def _one_seed(data: Dataset, config: TrainConfig) -> tuple[dict[str, float], int]:
    """The accuracies of one seed, and the device trials of its devices-in-the-loop run."""
    sim = SimBackend.virtual(sum(config.hidden), seed=config.seed + 100)
    transfer = transfer_experiment(data, sim, config, mapping="nominal", deterministic=True)
    replay = ReplayBackend.from_curves(measure_curves(sim, sweep_currents(sim), SWEEP_TRIALS),
                                       source="simulated bias sweep", seed=config.seed)
    replayed = train(data, replay, config, NeuronConfig(mapping="nominal"), run="hil-replay")
    accuracy = {"deterministic": transfer.deterministic_accuracy, "ideal_stochastic": transfer.software_accuracy,
                "hil_sim": transfer.hil_accuracy, "hil_replay": replayed.test_accuracy,
                "software_to_devices": transfer.software_on_devices["nominal"]}
    return accuracy, transfer.runs["hil"].pulses


def _dataset_rows(data: Dataset, config: TrainConfig, trial_s: float) -> list[Row]:
    runs = [_one_seed(data, TrainConfig(**{**config.as_dict(), "seed": seed})) for seed in SEEDS]
    shape = f"{data.n_features}-{'-'.join(map(str, config.hidden))}-{data.n_classes}, {config.epochs} epochs"
    seeds = f"seeds {SEEDS[0]}-{SEEDS[-1]}, {data.x_test.shape[0]} test images"
    references = [accuracy["ideal_stochastic"] for accuracy, _ in runs]
    reference = statistics.fmean(references)
    rows = []
    for name, note in NOTES.items():
        values = [accuracy[name] for accuracy, _ in runs]
        mean, low, high = mean_interval(values)
        low, high = max(0.0, low), min(1.0, high)  # an accuracy's interval stays within [0, 1]
        rows.append(Row(f"{data.name}_accuracy_{name}", mean, "accuracy", reference, mean / reference,
                        f"{note.format(T=config.eval_samples)}; {shape}; mean of {seeds}, 95% t interval "
                        f"[{low:.4f}, {high:.4f}]",
                        spread_of([v / r for v, r in zip(values, references, strict=True)])))
    trials = [pulses for _, pulses in runs]
    hours = [n * trial_s / 3600 for n in trials]
    neurons = sum(config.hidden)
    training_hours = data.x_train.shape[0] * neurons * config.epochs * trial_s / 3600
    rows.append(Row(f"{data.name}_hil_instrument_hours", statistics.median(hours), "h", note=(
        f"hil_sim run on a real station: {statistics.median(trials) / config.epochs:.4g} trials per epoch "
        f"({data.x_train.shape[0]} training images x {neurons} neurons, plus an evaluation every epoch: "
        f"{config.eval_samples} samples x {data.x_test.shape[0]} test images x {neurons} neurons) x "
        f"{config.epochs} epochs x {trial_s * 1e6:.0f} us per trial (virtual clock, hardware backend, pulse mode, "
        f"{config.batch_size}x{neurons} currents per call); training alone "
        f"{training_hours:.2f} h; spread over seeds {SEEDS[0]}-{SEEDS[-1]}"), spread=spread_of(hours)))
    return rows


def _interval(row: dict, key: str = "accuracy", unit: str = "") -> str:
    """``[low, high]`` of a transfer-table row's ``key`` (accuracy, or the difference to the pulse mode in pp)."""
    if unit:
        return f"{row[f'{key}_pp']:+.2f} {unit} [{row[f'{key}_low_pp']:+.2f}, {row[f'{key}_high_pp']:+.2f}]"
    return f"{row[key]:.4f} [{row[f'{key}_low']:.4f}, {row[f'{key}_high']:.4f}]"


def _transfer_rows(data: Dataset) -> list[Row]:
    """The four-arm transfer table over ``SEEDS`` and the instrument hours of its two in-loop runs."""
    config = TrainConfig(hidden=(HIDDEN,), epochs=TRANSFER_EPOCHS)
    result = drift_transfer_experiment(data, config, SEEDS)
    table = {(row["arm"], row["condition"]): row for row in result.table()}
    references = table[("software, ideal stochastic sigmoid", "no devices")]["accuracies"]
    reference = statistics.fmean(references)
    shape = (f"{data.n_features}-{HIDDEN}-{data.n_classes}, {config.epochs} epochs, {HIDDEN} devices of 3 um "
             f"({result.chip}: {', '.join(result.effects)}); seeds {SEEDS[0]}-{SEEDS[-1]}")
    rows = []
    for name, key in TRANSFER_ROWS.items():
        row = table[key]
        vs_pulse = "" if name == "hil_pulse" else f"; vs pulse mode {_interval(row, 'vs_hil_pulse', 'pp')}"
        rows.append(Row(f"{data.name}_transfer_{name}", row["accuracy"], "accuracy", reference,
                        row["accuracy"] / reference,
                        f"{key[0]}, {key[1]}: {_interval(row)}{vs_pulse}; instrument time "
                        f"{row['instrument_hours']:.3g} h ({row['trials']:,.0f} trials); {shape}",
                        spread_of([a / r for a, r in zip(row["accuracies"], references, strict=True)])))
    pulse, curve = table[TRANSFER_ROWS["hil_pulse"]], table[TRANSFER_ROWS["hil_curve"]]
    hours = {mode: [s / 3600 for s in result.row(*TRANSFER_ROWS[f"hil_{mode}"]).instrument_s]
             for mode in ("pulse", "curve")}
    split = result.pulse_trials
    rows.append(Row(f"{data.name}_hil_instrument_hours_pulse", pulse["instrument_hours"], "h", note=(
        f"pulse mode: {pulse['trials']:,.0f} trials ({split['training']:,} training samples, {split['evaluation']:,} "
        f"in the per-epoch evaluations, {split['curves']:,} measuring the curves) x "
        f"{pulse['instrument_hours'] * 3.6e9 / pulse['trials']:.0f} us; accuracy on the devices "
        f"{_interval(pulse)}; {shape}"), spread=spread_of(hours["pulse"])))
    ratios = [c / p for c, p in zip(hours["curve"], hours["pulse"], strict=True)]
    rows.append(Row(f"{data.name}_hil_instrument_hours_curve", curve["instrument_hours"], "h",
                    pulse["instrument_hours"], curve["instrument_hours"] / pulse["instrument_hours"], (
                        f"curve mode: {curve['trials']:,.0f} trials, all measuring the curves (16 currents x 25 trials "
                        f"a device, again every K = {result.remeasure_every} calls); reference: pulse mode; accuracy "
                        f"on the devices {_interval(curve)}, {_interval(curve, 'vs_hil_pulse', 'pp')} against pulse "
                        f"mode (paired over seeds); aim: ratio <= 0.05 at <= 0.3 pp; {shape}"), spread_of(ratios)))
    return rows


def _planned_hours_rows(data: Dataset) -> list[Row]:
    """The instrument hours the transfer experiment's two in-loop runs would take on ``data`` (planned, not run)."""
    config = TrainConfig(hidden=(HIDDEN,), epochs=TRANSFER_EPOCHS)
    every = REMEASURE_EPOCHS * sampling_calls(data, dataclasses.replace(config, epochs=1))
    hours = {}
    for mode in ("pulse", "curve"):
        chip = SimBackend.virtual(HIDDEN, width_m=TRANSFER_WIDTH_M, chip=TRANSFER_CHIP, seed=CHIP_SEED_OFFSET)
        hours[mode] = plan_trials(data, config, InLoopBackend(chip, mode=mode, remeasure_every=every))
    pulse, curve = hours["pulse"], hours["curve"]
    shape = (f"{data.n_features}-{HIDDEN}-{data.n_classes}, {config.epochs} epochs, {HIDDEN} devices of 3 um; planned "
             f"trials x {pulse.trial_time_s * 1e6:.0f} us (not run: accuracy not measured)")
    return [Row(f"{data.name}_hil_instrument_hours_pulse", pulse.seconds / 3600, "h",
                note=f"pulse mode: {pulse.describe()}; {shape}"),
            Row(f"{data.name}_hil_instrument_hours_curve", curve.seconds / 3600, "h", pulse.seconds / 3600,
                curve.seconds / pulse.seconds, f"curve mode, re-measured every K = {every} calls: {curve.describe()}; "
                f"reference: pulse mode; {shape}")]


def run() -> list[Row]:
    torch.manual_seed(0)
    digits = load_digits()
    config = TrainConfig(hidden=(HIDDEN,))
    trial_s = modeled_trial_time_s(config.batch_size, HIDDEN)
    rows = _epoch_time(digits)
    rows += _dataset_rows(digits, config, trial_s)
    rows += _transfer_rows(digits)
    if mnist_available(MNIST_DIR):
        mnist = load_mnist(MNIST_DIR)
        rows += _dataset_rows(mnist, config, trial_s)
        rows += _planned_hours_rows(mnist)
    return rows
