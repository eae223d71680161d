"""The transfer experiment on a drifting, heating chip: what one-time calibration and hardware-in-loop each buy.

Every seed draws a virtual chip (one device per hidden neuron, all of one width) from a chip file — by default
``configs/chip.varied.yaml``: twice the embedded chip's device-to-device spread, with the realistic chip's effects
(Joule heating, bias field, drift, telegraph noise, reversal pinning). Each arm gets its own copy of that chip: the
same devices and the same drift (a chip's random streams are its seed's), so the arms differ only in what they do.
Same training seeds in every arm:

- **software, nominal mapping**: trained with ideal stochastic sigmoids, run on the devices with one bias and gain
  per width (the design's curve);
- **software, one-time calibration**: the same network, every device mapped by its own curve as measured once at
  t = 0 (a sweep of trials on the chip, :mod:`hil.neurons.curve_tracking`);
- **hardware-in-loop, pulse mode**: trained with every sample a trial on the chip (nominal mapping, as the network
  learns each device's offset);
- **hardware-in-loop, curve mode**: trained on the devices' curves measured by trials on the chip and measured
  again every K calls (nominal mapping).

**Timeline** (the chip's clock: a trial keeps the station busy for the chip's ``trial_time_s``, one device at a
time, and ages a drifting device by that time and two pulses; idle time ages it by time alone). t = 0 is a chip's
first trial. The pulse-mode run ends at T (its trials × the trial time: training, its per-epoch evaluations on the
devices and its first curve measurement); its network is tested on the devices then. The software networks are
deployed at the same T: the calibrated one T after its calibration. That is the fair comparison the question
needs — both networks meet the devices as they are at the same moment, each with what it learnt of them:
calibration as they were at t = 0, hardware-in-loop up to T. The curve-mode network is tested when its own (much
shorter) run ends. Between trials a software arm's chip only idles (it drifts with time, it does not wear).

**Conditions** (where calibration suffices, where it does not): the calibrated network deployed right after its
calibration, a day and a week after it; the same a week after on a copy of the chip without drift (is it the
drift?); the pulse-mode network deployed a day and a week after its run (does training in the loop protect a
network from drift after training?).

Accuracy: test accuracy on the devices (trials; ``eval_samples`` samples per neuron and image, the same sampling
seed for every arm). Instrument time: what an arm needs of the station before it is deployed (the calibration
sweep; the run with its curve measurements and evaluations) — the deployment test costs every arm the same trials
(``eval_samples`` × test images × neurons) and is not counted.
"""

from __future__ import annotations

import copy
import dataclasses
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hil.neurons.curve_tracking import InLoopBackend
from hil.neurons.layers import NeuronConfig
from hil.neurons.simulated import SimBackend, virtual_chip_mapping
from hil.training.config import TrainConfig
from hil.training.datasets import Dataset
from hil.training.instrument_plan import duration_text, plan_trials, sampling_calls
from hil.training.network import evaluate, on_devices, reseed_sampling
from hil.training.trainer import ProgressCallback, train
from instruments.config_files import CONFIGS
from protocols.fits import mean_interval
from sim_backend.chip import load_chip

TRANSFER_CHIP = CONFIGS / "chip.varied.yaml"
TRANSFER_WIDTH_M = 3e-6  # the narrow, steep devices: their spread is widest in units of their logistic width
REMEASURE_EPOCHS = 2  # curve mode measures the curves again every this many epochs' calls
DAY_S, WEEK_S = 86_400.0, 7 * 86_400.0
SUFFICES_PP = 1.0  # calibration "suffices" within this many percentage points of the pulse-mode network
CHIP_SEED_OFFSET = 10  # seed s draws the chip of seed s + 10 (as the single-chip experiment does)

SOFTWARE_NOMINAL = "software, nominal mapping"
CALIBRATED = "software, one-time calibration"
HIL_PULSE = "hardware-in-loop, pulse mode"
HIL_CURVE = "hardware-in-loop, curve mode"


@dataclass
class TransferRow:
    """One row of the table over seeds: per-seed accuracies on the devices, trials and instrument time (s)."""

    arm: str
    condition: str
    group: str  # "software" (no devices), "arm" (the four arms), "condition" (where calibration does or does not do)
    accuracy: list[float] = field(default_factory=list)
    trials: list[int] = field(default_factory=list)
    instrument_s: list[float] = field(default_factory=list)

    def summary(self, reference: Sequence[float]) -> dict[str, Any]:
        """Plain values: mean accuracy with its t interval, the paired difference to ``reference`` (per seed) in
        percentage points with its interval, mean trials and instrument hours."""
        mean, low, high = mean_interval(self.accuracy)
        diff, diff_low, diff_high = mean_interval([100 * (a - r) for a, r in zip(self.accuracy, reference,
                                                                                   strict=True)])
        return {"arm": self.arm, "condition": self.condition, "group": self.group, "accuracy": mean,
                "accuracy_low": max(0.0, low), "accuracy_high": min(1.0, high), "accuracies": list(self.accuracy),
                "vs_hil_pulse_pp": diff, "vs_hil_pulse_low_pp": diff_low, "vs_hil_pulse_high_pp": diff_high,
                "trials": statistics.fmean(self.trials), "instrument_hours": statistics.fmean(self.instrument_s) / 3600,
                "seeds": len(self.accuracy)}


@dataclass
class DriftTransferResult:
    """The table over seeds (see the module docstring) and what it was run on."""

    rows: list[TransferRow]
    seeds: list[int]
    config: dict[str, Any]
    dataset: dict[str, Any]
    chip: str
    effects: list[str]
    n_devices: int
    width_m: float
    remeasure_every: int
    run_hours: dict[str, list[float]]  # "pulse", "curve": each seed's run length (h)
    pulse_trials: dict[str, int]  # the pulse-mode run's trials: "training", "evaluation", "curves"
    deployment_trials: int

    def row(self, arm: str, condition: str | None = None) -> TransferRow:
        return next(r for r in self.rows if r.arm == arm and (condition is None or r.condition == condition))

    def table(self) -> list[dict[str, Any]]:
        """The rows as plain values (:meth:`TransferRow.summary`; differences against the pulse-mode network)."""
        reference = self.row(HIL_PULSE).accuracy
        return [r.summary(reference) for r in self.rows]

    def calibration_verdicts(self) -> list[tuple[str, float, bool]]:
        """``(condition, difference in pp to the pulse-mode network, suffices)`` for every calibrated row."""
        return [(row["condition"] + row["arm"][len(CALIBRATED):], row["vs_hil_pulse_pp"],
                 row["vs_hil_pulse_pp"] >= -SUFFICES_PP) for row in self.table() if row["arm"].startswith(CALIBRATED)]

    def text(self) -> str:
        table = self.table()
        reference = self.rows.index(self.row(HIL_PULSE))
        lines = [f"{'network':42} {'condition':34} {'accuracy':>8} {'95% interval':>17} {'vs HIL pulse, pp':>22} "
                 f"{'instrument':>10} {'trials':>11}"]
        for row in table:
            interval = f"[{row['accuracy_low']:.4f}, {row['accuracy_high']:.4f}]" if row["seeds"] > 1 else ""
            diff = (f"{row['vs_hil_pulse_pp']:+5.1f} [{row['vs_hil_pulse_low_pp']:+5.1f}, "
                    f"{row['vs_hil_pulse_high_pp']:+5.1f}]") if row is not table[reference] else ""
            hours = duration_text(row["instrument_hours"] * 3600) if row["trials"] else "-"
            lines.append(f"{row['arm']:42} {row['condition']:34} {row['accuracy']:8.4f} {interval:>17} {diff:>22} "
                         f"{hours:>10} {row['trials']:11,.0f}")
        pulse, curve = (duration_text(3600 * statistics.fmean(self.run_hours[k])) for k in ("pulse", "curve"))
        data, seeds, split = self.dataset, ", ".join(map(str, self.seeds)), self.pulse_trials
        effects = ", ".join(self.effects) or "none"
        lines.append(f"{data.get('name')} ({data.get('n_train')} train / {data.get('n_test')} test), hidden "
                     f"{tuple(self.config['hidden'])}, {self.config['epochs']} epochs, seeds {seeds}; chip "
                     f"{self.chip}: {self.n_devices} devices of {self.width_m * 1e6:g} um, effects {effects}")
        lines.append(f"T = the pulse-mode run, {pulse} on the chip's clock ({split['training']:,} training samples, "
                     f"{split['evaluation']:,} in its per-epoch evaluations, {split['curves']:,} measuring the "
                     f"curves); the curve-mode run {curve} (re-measured every K = {self.remeasure_every} calls, "
                     f"{REMEASURE_EPOCHS} epochs); the deployment test costs every network "
                     f"{self.deployment_trials:,} trials (not counted above)")
        verdicts = self.calibration_verdicts()
        good = [c for c, _, ok in verdicts if ok]
        bad = [f"{c} ({d:+.1f} pp)" for c, d, ok in verdicts if not ok]
        lines.append(f"one-time calibration suffices (within {SUFFICES_PP:g} pp of the pulse-mode network) when "
                     f"{'; '.join(good) or 'never'}; it does not when {'; '.join(bad) or '(no condition here)'}")
        stale = [f"{row['vs_hil_pulse_pp']:+.1f} pp {row['condition'].removeprefix('deployed ')}" for row in table
                 if row["arm"] == HIL_PULSE and row["group"] == "condition"]
        lines.append(f"the pulse-mode network itself, deployed later: {'; '.join(stale)}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"experiment": "transfer", "table": self.table(), "seeds": list(self.seeds), "config": self.config,
                "dataset": self.dataset, "chip": self.chip, "effects": list(self.effects), "n_devices": self.n_devices,
                "width_m": self.width_m, "remeasure_every": self.remeasure_every, "run_hours": self.run_hours,
                "pulse_trials": dict(self.pulse_trials),
                "deployment_trials": self.deployment_trials,
                "calibration_suffices": {c: ok for c, _, ok in self.calibration_verdicts()}}


def drift_transfer_experiment(dataset: Dataset, config: TrainConfig | None = None, seeds: Sequence[int] = (0,),
                              chip: str | Path | Mapping[str, Any] | None = None, width_m: float = TRANSFER_WIDTH_M,
                              device: str = "cpu", progress: ProgressCallback | None = None) -> DriftTransferResult:
    """The table of the module docstring over ``seeds`` (each the training seed of ``config`` and, plus
    :data:`CHIP_SEED_OFFSET`, the chip's seed)."""
    config = config or TrainConfig()
    n = sum(config.hidden)
    spec = load_chip(chip if chip is not None else TRANSFER_CHIP).spec
    every = REMEASURE_EPOCHS * sampling_calls(dataset, dataclasses.replace(config, epochs=1))
    rows: dict[tuple[str, str], TransferRow] = {}
    log: dict[str, list[Any]] = {"pulse": [], "curve": [], "plan": []}
    data = dataset.to(device)
    for seed in seeds:
        seeded = dataclasses.replace(config, seed=int(seed))
        mapping = virtual_chip_mapping(n, width_m, spec, seed=int(seed) + CHIP_SEED_OFFSET)
        for key, value in _one_seed(data, seeded, mapping, every, device, progress, log).items():
            row = rows.setdefault(key[:2], TransferRow(*key))
            accuracy, trials, seconds = value
            row.accuracy.append(accuracy)
            row.trials.append(trials)
            row.instrument_s.append(seconds)
    plan = log.pop("plan")[0]
    return DriftTransferResult(list(rows.values()), [int(s) for s in seeds], config.as_dict(), dataset.describe(),
                               spec.name, spec.effects.enabled, n, width_m, every, log,
                               {"training": plan.training, "evaluation": plan.evaluation, "curves": plan.curves},
                               data.x_test.shape[0] * config.eval_samples * n)


def _one_seed(data: Dataset, config: TrainConfig, mapping: dict[str, Any], every: int, device: str,
              progress: ProgressCallback | None, log: dict[str, list[Any]]
              ) -> dict[tuple[str, str, str], tuple[float, int, float]]:
    """Every row of one seed, in table order: ``{(arm, condition, group): (accuracy, trials, instrument time in s)}``;
    the runs' lengths (h) and the pulse-mode run's plan go to ``log``."""
    def chip(drift: bool = True) -> SimBackend:
        return SimBackend(load_chip(mapping if drift else _without_drift(mapping), device=device))

    def deployed(model: Any) -> float:
        reseed_sampling(model, config.seeds()["sampling"] + 1)
        return evaluate(model, data.x_test, data.y_test, config.eval_samples)

    def cost(backend: InLoopBackend) -> tuple[int, float]:
        return backend.physical_trials, backend.instrument_time_s

    runs = {neurons: train(data, neurons, config, progress=progress, device=device, run=neurons)
            for neurons in ("deterministic", "stochastic")}
    software, nominal = runs["stochastic"].model, NeuronConfig(mapping="nominal")

    pulse = InLoopBackend(chip(), mode="pulse")
    log["plan"].append(plan_trials(data, config, pulse))
    pulse_model = train(data, pulse, config, nominal, progress=progress, run="hil-pulse").model
    end, pulse_cost = pulse.trial_backend.chip.time_s, cost(pulse)
    log["pulse"].append(end / 3600)
    hil_pulse = {0.0: deployed(pulse_model)}
    for delay_s in (DAY_S, WEEK_S):  # the same network, later: the devices drift on
        pulse.trial_backend.chip.sync(end + delay_s)
        hil_pulse[delay_s] = deployed(pulse_model)

    curve = InLoopBackend(chip(), mode="curve", remeasure_every=every)
    curve_model = train(data, curve, config, nominal, progress=progress, run="hil-curve").model
    log["curve"].append(curve.trial_backend.chip.time_s / 3600)
    curve_cost = cost(curve)
    curve.mode = "pulse"  # the trained network on the devices themselves
    hil_curve = deployed(curve_model)

    devices = chip()
    devices.chip.sync(end)
    software_nominal = deployed(on_devices(software, devices, nominal))

    calibration = InLoopBackend(chip(), mode="pulse")  # every device's curve measured now, at t = 0
    calibration_cost = cost(calibration)
    calibrated_model = on_devices(software, calibration, NeuronConfig(mapping="calibrated"))
    calibrated = []  # right after the calibration, at T, a day and a week after it
    for at_s in (0.0, end, DAY_S, WEEK_S):
        calibration.trial_backend.chip.sync(at_s)
        calibrated.append(deployed(calibrated_model))

    still = InLoopBackend(chip(drift=False), mode="pulse")
    still_model = on_devices(software, still, NeuronConfig(mapping="calibrated"))
    still.trial_backend.chip.sync(WEEK_S)
    still_calibrated = deployed(still_model)

    return {
        ("software, deterministic sigmoid", "no devices", "software"): (runs["deterministic"].test_accuracy, 0, 0.0),
        ("software, ideal stochastic sigmoid", "no devices", "software"): (runs["stochastic"].test_accuracy, 0, 0.0),
        (SOFTWARE_NOMINAL, "deployed at T", "arm"): (software_nominal, 0, 0.0),
        (CALIBRATED, "calibrated at 0, deployed at T", "arm"): (calibrated[1], *calibration_cost),
        (HIL_PULSE, "at the end of its run (T)", "arm"): (hil_pulse[0.0], *pulse_cost),
        (HIL_CURVE, "at the end of its run", "arm"): (hil_curve, *curve_cost),
        (CALIBRATED, "deployed right after calibration", "condition"): (calibrated[0], *calibration_cost),
        (CALIBRATED, "deployed a day after calibration", "condition"): (calibrated[2], *calibration_cost),
        (CALIBRATED, "deployed a week after calibration", "condition"): (calibrated[3], *calibration_cost),
        (f"{CALIBRATED}, no drift", "deployed a week after calibration", "condition"): (still_calibrated,
                                                                                         *calibration_cost),
        (HIL_PULSE, "deployed a day after its run", "condition"): (hil_pulse[DAY_S], *pulse_cost),
        (HIL_PULSE, "deployed a week after its run", "condition"): (hil_pulse[WEEK_S], *pulse_cost),
    }


def _without_drift(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """The chip mapping with its drift off (every other effect as it was)."""
    raw = copy.deepcopy(dict(mapping))
    raw["effects"] = {**raw.get("effects", {}), "drift": False}
    return raw
