"""Stochastic-neuron layers, datasets, the trainer and the experiments of physics.md §3.

The claims: trained with the simulated devices in the loop, a network reaches the ideal stochastic
software baseline; trained in software and moved onto varied devices, it loses accuracy; a bias-current
error hurts narrow (steep) devices more than wide ones; energy per inference grows with device width.
"""

import copy
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from hil.neurons import ReplayBackend, SimBackend, measure_curves, sweep_currents
from hil.neurons.curve_tracking import InLoopBackend
from hil.neurons.layers import IdealStochasticNeurons, NeuronConfig, SigmoidNeurons, StochasticNeurons
from hil.training import TrainConfig, Trainer, build_network, evaluate, train
from hil.training.datasets import DatasetError, load_dataset, load_digits, load_mnist, mnist_available, read_idx
from hil.training.drift_transfer import REMEASURE_EPOCHS, TRANSFER_CHIP
from hil.training.experiments import bias_experiment, energy_experiment, transfer_experiment
from hil.training.instrument_plan import plan_trials, sampling_calls
from hil.training.network import reseed_sampling
from sim_backend.chip import DEFAULT_CHIP_FILE, load_chip

MNIST_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"


@pytest.fixture(scope="module")
def digits():
    return load_digits(seed=0)


def strongly_varied_chip():
    """The embedded chip's material with twice its Ic0 spread and Δ spread (10 % and 20 % lognormal)."""
    raw = yaml.safe_load(DEFAULT_CHIP_FILE.read_text())
    raw["variation"] = {**raw["variation"], "ic0": 0.10, "delta": 0.20}
    return raw


# ---------------------------------------------------------------------------------------------
# layers
# ---------------------------------------------------------------------------------------------


def test_calibrated_devices_fire_like_sigmoids_and_pass_the_sigmoid_gradient():
    backend = SimBackend.virtual(64, width_m=5e-6, seed=2)
    layer = StochasticNeurons(backend, 64)
    x = torch.linspace(-4, 4, 64).expand(20000, -1).clone().requires_grad_()
    out = layer(x)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert set(out.unique().tolist()) == {0.0, 1.0}
    # the Gumbel-shaped device curve, mapped by its logistic view, is close to a sigmoid
    assert torch.allclose(out.mean(0), torch.sigmoid(x[0]).detach(), atol=0.06)
    out.sum().backward()
    assert torch.allclose(x.grad[0], torch.sigmoid(x[0]) * (1 - torch.sigmoid(x[0])), atol=1e-5)
    assert backend.pulses == 20000 * 64


def test_nominal_mapping_leaves_each_device_its_offset_and_gain():
    backend = SimBackend.virtual(64, width_m=3e-6, chip=strongly_varied_chip(), seed=4)
    calibrated = StochasticNeurons(backend, 64)
    nominal = StochasticNeurons(backend, 64, NeuronConfig(mapping="nominal"))
    assert torch.unique(nominal.bias_a).numel() == 1 and torch.unique(nominal.gain_a).numel() == 1
    x = torch.zeros(1, 64)
    spread_nominal = nominal.probability(x).std()
    assert float(calibrated.probability(x).sub(0.5).abs().max()) < 0.05
    assert float(spread_nominal) > 0.2
    # the surrogate gradient is the slope of each device's own curve at its (offset) operating point
    xg = torch.zeros(3, 64, requires_grad=True)
    nominal(xg).sum().backward()
    z = (nominal.bias_a - nominal.i50_a) / nominal.w_a
    expected = (nominal.gain_a / nominal.w_a) * torch.sigmoid(z) * (1 - torch.sigmoid(z))
    assert torch.allclose(xg.grad[0].double(), expected, rtol=1e-4, atol=1e-7)


def test_straight_through_passes_the_gradient_unchanged_and_bias_error_shifts_the_curve():
    backend = SimBackend.virtual(32, width_m=3e-6, seed=5)
    layer = StochasticNeurons(backend, 32, NeuronConfig(gradient="straight_through"))
    x = torch.randn(10, 32, requires_grad=True)
    (layer(x) * 3.0).sum().backward()
    assert torch.equal(x.grad, torch.full_like(x, 3.0))
    zero = torch.zeros(1, 32)
    layer.bias_error_a = float(backend.curve(layer.neuron_devices)[1].mean())  # one w_I
    shifted = layer.probability(zero)
    assert 0.6 < float(shifted.mean()) < 0.8  # ≈ sigmoid(1)
    with pytest.raises(ValueError, match="mapping"):
        NeuronConfig(mapping="per-device")


def test_currents_stay_within_the_backend_limit():
    backend = SimBackend.virtual(8, width_m=3e-6, seed=6)
    layer = StochasticNeurons(backend, 8)
    backend.reset_counters()
    layer(torch.full((5, 8), 1e6))
    limit = backend.max_current_a[:8]
    expected = float((limit**2 * backend.r_ch_ohm[:8] * backend.pulse_width_s).sum()) * 5
    assert backend.energy_j - backend.reset_energy_j == pytest.approx(expected, rel=1e-5)


def test_software_baselines():
    ideal = IdealStochasticNeurons(16, seed=3)
    x = torch.linspace(-3, 3, 16).expand(20000, -1).clone().requires_grad_()
    out = ideal(x)
    assert set(out.unique().tolist()) == {0.0, 1.0}
    assert torch.allclose(out.mean(0), torch.sigmoid(x[0]).detach(), atol=0.02)
    out.sum().backward()
    assert torch.allclose(x.grad[0], torch.sigmoid(x[0]) * (1 - torch.sigmoid(x[0])))
    ideal.reseed(3)
    assert torch.equal(ideal(x.detach()), out)
    assert torch.equal(SigmoidNeurons(16)(x.detach()), torch.sigmoid(x.detach()))


# ---------------------------------------------------------------------------------------------
# datasets
# ---------------------------------------------------------------------------------------------


def test_digits_split_is_stratified_and_fixed_by_its_seed(digits):
    assert digits.n_features == 64 and digits.n_classes == 10
    assert digits.x_train.shape[0] + digits.x_test.shape[0] == 1797
    assert float(digits.x_train.max()) == 1.0 and float(digits.x_train.min()) == 0.0
    counts = torch.bincount(digits.y_test, minlength=10)
    assert int(counts.min()) >= 43 and int(counts.max()) <= 47
    again, other = load_digits(seed=0), load_digits(seed=1)
    assert torch.equal(again.x_test, digits.x_test) and not torch.equal(other.x_test, digits.x_test)


def write_idx(path, array, magic_dims):
    header = bytes([0, 0, 8, magic_dims]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def test_mnist_from_standard_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (30, 28, 28)), 3)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, 30), 1)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", rng.integers(0, 256, (12, 28, 28)), 3)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(12) % 10, 1)
    data = load_dataset("mnist", data_dir=tmp_path)
    assert data.x_train.shape == (30, 784) and data.x_test.shape == (12, 784)
    assert data.y_test.tolist() == (np.arange(12) % 10).tolist()
    assert float(data.x_train.max()) <= 1.0 and data.x_train.dtype == torch.float32
    assert read_idx(tmp_path / "t10k-images-idx3-ubyte").shape == (12, 28, 28)


def test_mnist_errors_name_the_folder_and_the_file(tmp_path):
    with pytest.raises(DatasetError, match="no such folder"):
        load_mnist(tmp_path / "absent")
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte"):
        load_mnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x09\x03junk")
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x02\x01\x02")
    with pytest.raises(DatasetError, match="bad magic number"):
        load_mnist(tmp_path)
    with pytest.raises(DatasetError, match="--data-dir"):
        load_dataset("mnist")
    with pytest.raises(DatasetError, match="digits, mnist"):
        load_dataset("cifar")


@pytest.mark.skipif(not mnist_available(MNIST_DIR), reason="real MNIST test split not present (../shared/data/mnist)")
def test_real_mnist_test_split_is_divided_8000_2000():
    data = load_mnist(MNIST_DIR)
    assert data.x_train.shape == (8000, 784) and data.x_test.shape == (2000, 784)
    assert sorted(torch.unique(data.y_train).tolist()) == list(range(10))
    assert "first 8000 train" in data.info["split"]


# ---------------------------------------------------------------------------------------------
# trainer
# ---------------------------------------------------------------------------------------------


def test_trainer_reports_every_epoch_and_is_reproducible(digits):
    config = TrainConfig(hidden=(32,), epochs=3, eval_samples=4, seed=5)
    seen = []
    first = train(digits, SimBackend.virtual(32, seed=1), config, progress=seen.append)
    assert [m.epoch for m in first.epochs] == [1, 2, 3]
    steps = -(-digits.x_train.shape[0] // config.batch_size)
    assert len(seen) == 3 * (steps + 1) and seen[-1].metrics is first.epochs[-1]
    train_pulses = digits.x_train.shape[0] * 32
    test_pulses = digits.x_test.shape[0] * 32 * 4
    assert all(m.pulses == train_pulses + test_pulses for m in first.epochs)
    assert all(m.energy_j > 0 for m in first.epochs)
    assert first.epochs[-1].loss < first.epochs[0].loss
    second = train(digits, SimBackend.virtual(32, seed=1), config)
    assert [m.loss for m in second.epochs] == [m.loss for m in first.epochs]
    assert second.test_accuracy == first.test_accuracy
    record = first.as_dict()
    json.dumps(record)
    assert record["backend"]["backend"] == "sim" and record["seeds"] == {"init": 5, "shuffle": 6, "sampling": 7}
    assert record["neuron_config"] == {"mapping": "calibrated", "gradient": "curve", "bias_error_a": 0.0}


def test_software_baselines_learn_digits(digits):
    config = TrainConfig(hidden=(64,), epochs=15)
    deterministic = train(digits, "deterministic", config)
    stochastic = train(digits, "stochastic", config)
    assert deterministic.test_accuracy > 0.95 and stochastic.test_accuracy > 0.93
    assert deterministic.pulses == 0 and deterministic.backend is None


def test_evaluation_averages_stochastic_samples(digits):
    config = TrainConfig(hidden=(64,), epochs=8)
    result = train(digits, "stochastic", config)
    single = evaluate(result.model, digits.x_test, digits.y_test, samples=1)
    averaged = evaluate(result.model, digits.x_test, digits.y_test, samples=32)
    assert averaged > single


def test_a_replayed_chip_trains_a_network(digits):
    sim = SimBackend.from_chip_file()
    replay = ReplayBackend.from_curves(measure_curves(sim, sweep_currents(sim), 300), source="simulated sweep")
    result = train(digits, replay, TrainConfig(hidden=(48,), epochs=10))
    assert result.test_accuracy > 0.9 and result.backend["backend"] == "replay"


def test_two_hidden_layers_use_distinct_devices(digits):
    backend = SimBackend.virtual(80, seed=3)
    model = build_network(digits, TrainConfig(hidden=(48, 32)), backend)
    first, second = (m.neuron_devices for m in model.neurons)
    assert first.tolist() == list(range(48)) and second.tolist() == list(range(48, 80))
    Trainer(model, digits, TrainConfig(hidden=(48, 32), epochs=1)).fit()
    assert backend.pulses > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_training_runs_on_cuda(digits):
    backend = SimBackend.virtual(32, seed=1, device="cuda")
    result = train(digits, backend, TrainConfig(hidden=(32,), epochs=2))
    assert next(result.model.parameters()).is_cuda and result.pulses > 0


# ---------------------------------------------------------------------------------------------
# the claims
# ---------------------------------------------------------------------------------------------


def test_devices_in_the_loop_reach_the_software_baseline_and_software_transfer_does_not(digits):
    """Digits, 128 hidden neurons, one simulated device each, nominal mapping (one bias current and gain
    for every device of the width, so each device keeps its own offset and gain error).

    The chip's variation is set to twice the embedded chip's (Ic0 10 %, Δ 20 % lognormal) so that the
    spread of switching thresholds (several w_I) is clearly larger than what a software-trained
    network tolerates; with the embedded chip's variation the loss is a few percentage points.
    """
    backend = SimBackend.virtual(128, width_m=3e-6, chip=strongly_varied_chip(), seed=10)
    result = transfer_experiment(digits, backend, TrainConfig(seed=0), mapping="nominal")
    assert result.software_accuracy > 0.95
    assert result.hil_accuracy >= result.software_accuracy - 0.01
    assert result.software_on_devices["nominal"] < result.software_accuracy - 0.05
    # a per-device calibration repairs most of the transfer: the loss comes from the devices' variation
    assert result.software_on_devices["calibrated"] >= result.software_accuracy - 0.02
    names = [row["network"] for row in result.table()]
    assert names[0] == "software, ideal stochastic sigmoid" and names[-1].startswith("hardware-in-loop")
    json.dumps(result.as_dict())


@pytest.mark.slow  # trains a network per width and bias error: about 17 s
def test_bias_current_error_hurts_narrow_devices_more_than_wide_ones(digits):
    """One network per width (3, 5, 10 µm; devices drawn from the embedded chip), trained in the loop
    with per-device calibration, then run with every neuron's bias current off by the same amount."""
    backend = SimBackend.virtual(3 * 128, seed=20)
    errors = [0.0, 50e-6, 75e-6, 100e-6]
    result = bias_experiment(digits, backend, errors, TrainConfig(seed=0))
    assert [r.width_m for r in result.widths] == [3e-6, 5e-6, 10e-6]
    assert all(r.accuracy[0] > 0.95 for r in result.widths)
    drop = {r.width_m: np.mean(result.accuracy_drop(r.width_m)[1:]) for r in result.widths}
    assert drop[3e-6] > drop[5e-6] + 0.05 and drop[3e-6] > drop[10e-6] + 0.1
    assert drop[10e-6] < 0.02
    assert len(result.table()) == 3 * len(errors)
    json.dumps(result.as_dict())


def test_energy_per_inference_grows_with_device_width(digits):
    backend = SimBackend.virtual(3 * 32, seed=21)
    result = energy_experiment(digits, backend, TrainConfig(hidden=(32,), epochs=5, eval_samples=8))
    energy = {row["width_m"]: row["energy_per_inference_j"] for row in result.table()}
    assert energy[3e-6] < energy[5e-6] < energy[10e-6]
    assert energy[10e-6] / energy[3e-6] == pytest.approx(10 / 3, rel=0.15)
    assert all(row["pulses_per_inference"] == 32 * 8 for row in result.table())
    # with 100 µs resets at 1.3 × Ic0 and 10 µs bias pulses below Ic0, the resets dominate
    assert all(0.9 < row["reset_energy_fraction"] < 1.0 for row in result.table())
    json.dumps(result.as_dict())


def test_result_records_are_independent_of_the_model(digits):
    result = train(digits, "stochastic", TrainConfig(hidden=(16,), epochs=1))
    record = copy.deepcopy(result.as_dict())
    assert "model" not in record and record["neurons"] == "stochastic"
    assert record["dataset"]["name"] == "digits" and record["config"]["hidden"] == [16]


# ---------------------------------------------------------------------------------------------
# devices that drift: instrument time, pulse and curve mode
# ---------------------------------------------------------------------------------------------


def test_the_transfer_chip_has_the_realistic_chips_effects():
    """chip.varied.yaml carries chip.default.yaml's effects: section unchanged (the two files must not part)."""
    varied, realistic = load_chip(TRANSFER_CHIP), load_chip(DEFAULT_CHIP_FILE.parent / "chip.default.yaml")
    assert varied.effects == realistic.effects and "drift" in varied.effects.enabled
    assert varied.spec.variation["ic0"] == 2 * realistic.spec.variation["ic0"]


@pytest.mark.parametrize("mode", ["pulse", "curve"])
def test_the_planned_trials_are_the_trials_a_run_plays(digits, mode):
    """The instrument-time estimate of hil train: every trial of a run planned from its configuration (two hidden
    layers, an evaluation every other epoch, curve re-measurements every 30 calls)."""
    config = TrainConfig(hidden=(24, 8), epochs=3, evaluate_every=2, eval_samples=2)
    backend = InLoopBackend(SimBackend.virtual(32, width_m=3e-6, chip=TRANSFER_CHIP, seed=3), mode=mode,
                            remeasure_every=30)
    plan = plan_trials(digits, config, backend)
    train(digits, backend, config, NeuronConfig(mapping="nominal"))
    assert plan.trials == backend.physical_trials and plan.seconds == pytest.approx(backend.instrument_time_s)
    assert backend.calls == sampling_calls(digits, config) == 2 * (3 * 22 + 2)
    if mode == "pulse":
        assert plan.training == 3 * digits.x_train.shape[0] * 32 and plan.evaluation == 2 * 450 * 2 * 32
    else:
        assert plan.training == plan.evaluation == 0 and plan.curves == (1 + 136 // 30) * backend.measurement_trials


def test_curve_mode_plans_a_twentieth_of_the_trials_of_a_digits_run_in_pulse_mode(digits):
    """The transfer experiment's runs (digits, 128 devices, 20 epochs; curves of 16 currents × 25 trials a device,
    measured again every two epochs): what each would keep a station busy, before anything is trained."""
    config = TrainConfig(epochs=20)
    every = REMEASURE_EPOCHS * sampling_calls(digits, TrainConfig(epochs=1))
    plans = {}
    for mode in ("pulse", "curve"):
        chip = SimBackend.virtual(128, width_m=3e-6, chip=TRANSFER_CHIP, seed=10)
        plans[mode] = plan_trials(digits, config, InLoopBackend(chip, mode=mode, remeasure_every=every))
    assert plans["pulse"].trials >= 20 * plans["curve"].trials
    # 1.4 ms a trial on the shipped (DC-blocked) station: hours in pulse mode, minutes in curve mode
    assert plans["pulse"].seconds > 8 * 3600 and plans["curve"].seconds < 15 * 60
    assert "h (" in plans["pulse"].describe() and "min (" in plans["curve"].describe()


@pytest.mark.slow
def test_curve_mode_cuts_a_digits_runs_instrument_time_twentyfold_at_the_accuracy_of_pulse_mode(digits):
    """Digits, 128 hidden neurons on as many varied 3 µm devices that drift and heat, 20 epochs, seed 0. Pulse
    mode: every sample a trial on the chip (and the per-epoch evaluations); curve mode: samples from curves measured
    by trials (16 currents × 25 trials a device), measured again every two epochs. Both networks are then tested
    on the devices themselves. One seed moves the accuracy by about half a point either way, so this asserts the
    time ratio and accuracy within one point; the benchmark gives the mean over seeds with its interval."""
    config = TrainConfig(epochs=20, seed=0)
    every = REMEASURE_EPOCHS * sampling_calls(digits, TrainConfig(epochs=1))
    accuracy, trials = {}, {}
    for mode in ("pulse", "curve"):
        backend = InLoopBackend(SimBackend.virtual(128, width_m=3e-6, chip=TRANSFER_CHIP, seed=10), mode=mode,
                                remeasure_every=every)
        model = train(digits, backend, config, NeuronConfig(mapping="nominal")).model
        trials[mode] = backend.physical_trials
        backend.mode = "pulse"
        reseed_sampling(model, 99)
        accuracy[mode] = evaluate(model, digits.x_test, digits.y_test, config.eval_samples)
    assert trials["pulse"] >= 20 * trials["curve"]
    assert trials["pulse"] * 1.4e-3 / 3600 > 8.0  # hours of station time in pulse mode, minutes in curve mode
    assert accuracy["pulse"] > 0.94 and accuracy["curve"] >= accuracy["pulse"] - 0.01
