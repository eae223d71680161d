"""Neuron backends: every backend passes the same interface tests; then what each one adds.

The interface: ``sample(neuron_devices, currents)`` → 0/1 of the currents' shape, dtype and device,
reproducible from a seed, following ``probability``; ``curve`` and ``nominal_curve`` give one logistic
``(I50, w_I)`` per neuron; ``pulses`` and ``energy_j`` count every trial (bias pulse and reset).
"""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from hil.neurons import (
    BackendError,
    NeuronBackend,
    ReplayBackend,
    SimBackend,
    measure_curves,
    sweep_currents,
    virtual_chip_mapping,
)
from hil.neurons.curve_tracking import CurveTrackingBackend, InLoopBackend
from hil.neurons.hardware import HardwareBackend
from instruments.config_files import IDEAL_CHIP_FILE
from sim_backend import load_chip
from sim_backend.chip import DEFAULT_CHIP_FILE
from sim_backend.sot import exact_i50

PULSE_S = 10e-6


def replay_of_default_chip(seed=0):
    """A recording of the embedded chip's ideal devices: a 31-point bias sweep per device, 400 trials per point."""
    sim = SimBackend.from_chip_file(IDEAL_CHIP_FILE, seed=seed)
    return ReplayBackend.from_curves(measure_curves(sim, sweep_currents(sim), 400), source="simulated sweep")


# the interface's contract on ideal devices (a logistic-like curve from 0 to 1); the default chip's devices, which
# saturate below 1 and drift, have their own test below
BACKENDS = {
    "sim-chip": lambda: SimBackend.from_chip_file(IDEAL_CHIP_FILE),
    "sim-virtual": lambda: SimBackend.virtual(40, chip=IDEAL_CHIP_FILE, seed=3),
    "replay": replay_of_default_chip,
    # samples drawn from the curves measured by trials on the embedded chip (as the replay's sweep)
    "in-loop-curve": lambda: InLoopBackend(SimBackend.from_chip_file(IDEAL_CHIP_FILE), mode="curve",
                                           trials_per_point=400, n_points=31, span=(-10.0, 5.0)),
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request) -> NeuronBackend:
    return BACKENDS[request.param]()


def currents_around_curves(backend, neurons, batch, generator, spread=3.0, dtype=torch.float32):
    """Currents ``I50 + k·w_I`` with ``k`` uniform in ±spread, per neuron's device: shape (batch, neurons)."""
    i50, w = backend.curve(neurons)
    k = (torch.rand(batch, neurons.numel(), generator=generator, dtype=torch.float64) * 2 - 1) * spread
    return (i50 + w * k.to(i50.device)).to(dtype)


# ---------------------------------------------------------------------------------------------
# the shared interface
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sample_gives_zero_one_outcomes_of_the_currents_shape_and_dtype(backend, dtype):
    neurons = backend.assign(30)
    currents = currents_around_curves(backend, neurons, 50, torch.Generator().manual_seed(0), dtype=dtype)
    outcomes = backend.sample(neurons, currents)
    assert outcomes.shape == (50, 30) and outcomes.dtype == dtype and outcomes.device == currents.device
    assert set(outcomes.unique().tolist()) == {0.0, 1.0}
    # the same for a (samples, batch, neurons) stack
    assert backend.sample(neurons, currents.expand(4, 50, 30)).shape == (4, 50, 30)


def test_same_seed_same_outcomes_other_seed_other_outcomes(backend):
    neurons = backend.assign(64)
    currents = currents_around_curves(backend, neurons, 200, torch.Generator().manual_seed(1), spread=1.0)
    backend.reseed(7)
    first = backend.sample(neurons, currents)
    backend.reseed(7)
    assert torch.equal(backend.sample(neurons, currents), first)
    backend.reseed(8)
    assert not torch.equal(backend.sample(neurons, currents), first)


def test_curves_are_one_logistic_per_neuron_and_the_probability_follows_them(backend):
    neurons = backend.assign(2 * backend.n_devices)
    i50, w = backend.curve(neurons)
    assert i50.shape == w.shape == (neurons.numel(),) and i50.dtype == torch.float64
    assert torch.all(i50 > 0) and torch.all(w > 0) and torch.all(w < 0.2 * i50)
    # neurons on the same device share its curve
    assert torch.equal(i50[: backend.n_devices], i50[backend.n_devices:])
    steps = torch.linspace(-8, 8, 161, dtype=torch.float64)[:, None]
    p = backend.probability(neurons, i50 + w * steps)
    assert torch.all((p >= 0) & (p <= 1)) and torch.all(torch.diff(p, dim=0) >= 0)
    assert torch.all(p[0] < 0.01) and torch.all(p[-1] > 0.99)
    # a logistic fitted to a measured (Gumbel-shaped) curve crosses it near, not exactly at, P = 1/2
    at_i50 = backend.probability(neurons, i50[None, :])[0]
    assert torch.all((at_i50 - 0.5).abs() < 0.12)


def test_nominal_curve_is_one_curve_per_width(backend):
    neurons = backend.assign(backend.n_devices)
    i50, w = backend.nominal_curve(neurons)
    own_i50, own_w = backend.curve(neurons)
    for width in torch.unique(backend.width_m):
        same = backend.width_m[neurons] == width
        assert torch.allclose(i50[same], i50[same][0]) and torch.allclose(w[same], w[same][0])
        assert abs(float(i50[same][0] / own_i50[same].mean()) - 1) < 0.1
    # narrow devices switch at lower current and are steeper in absolute current
    by_width = sorted({float(wd): (float(a), float(b)) for wd, a, b in zip(backend.width_m[neurons], i50, w,
                                                                            strict=True)}.items())
    assert [v[0] for _, v in by_width] == sorted(v[0] for _, v in by_width)
    assert [v[1] for _, v in by_width] == sorted(v[1] for _, v in by_width)


def test_sampled_frequencies_agree_with_the_probability(backend):
    neurons = backend.assign(backend.n_devices)
    i50, w = backend.curve(neurons)
    currents = (i50 + 0.5 * w)[None, :].expand(4000, -1).float()
    p = backend.probability(neurons, currents[:1])[0]  # before the trials, which may age drifting devices
    counts = backend.sample(neurons, currents).sum(0)
    for k, prob in zip(counts.tolist(), p.tolist(), strict=True):
        assert stats.binomtest(int(k), 4000, prob).pvalue > 1e-4


def test_pulses_and_energy_count_every_bias_pulse_and_reset(backend):
    backend.reset_counters()
    neurons = backend.assign(12)
    currents = currents_around_curves(backend, neurons, 25, torch.Generator().manual_seed(2), dtype=torch.float64)
    backend.sample(neurons, currents)
    assert backend.pulses == 25 * 12
    r = backend.r_ch_ohm[neurons]
    bias = float((currents**2 * r * backend.pulse_width_s).sum())
    reset = float((backend.reset_current_a[neurons] ** 2 * r * backend.reset_width_s[neurons]).sum()) * 25
    assert backend.energy_j == pytest.approx(bias + reset, rel=1e-5)
    assert backend.reset_energy_j == pytest.approx(reset, rel=1e-5)
    backend.probability(neurons, currents)  # sends nothing
    assert backend.pulses == 25 * 12
    backend.reset_counters()
    assert backend.pulses == 0 and backend.energy_j == 0.0


def test_more_neurons_than_devices_share_devices_in_turn(backend):
    neurons = backend.assign(backend.n_devices * 2 + 3, start=2)
    assert neurons.dtype == torch.long and int(neurons.max()) < backend.n_devices
    assert neurons[:3].tolist() == [2, 3, 4] and int(neurons[backend.n_devices]) == 2


def test_currents_of_the_wrong_shape_are_refused_without_a_pulse(backend):
    backend.reset_counters()
    with pytest.raises(ValueError, match="neurons"):
        backend.sample(backend.assign(5), torch.ones(3, 4))
    assert backend.pulses == 0


def test_describe_is_plain_data(backend):
    info = backend.describe()
    assert info["backend"] == backend.name and len(info["devices"]) == backend.n_devices
    assert info["pulse_width_s"] == PULSE_S


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_backends_run_on_cuda(backend):
    backend.to("cuda")
    neurons = backend.assign(16)
    currents = currents_around_curves(backend, neurons, 8, torch.Generator().manual_seed(0))
    assert currents.is_cuda
    outcomes = backend.sample(neurons, currents)
    assert outcomes.is_cuda and set(outcomes.unique().tolist()) <= {0.0, 1.0}
    assert backend.energy_j > 0
    i50, _ = backend.curve(neurons)
    assert i50.is_cuda


# ---------------------------------------------------------------------------------------------
# the simulator
# ---------------------------------------------------------------------------------------------


def test_sim_probability_is_the_chip_closed_form():
    chip = load_chip(IDEAL_CHIP_FILE)
    backend = SimBackend(chip)
    neurons = backend.assign(12)
    currents = torch.linspace(-1e-3, 8e-3, 500, dtype=torch.float64)[:, None].expand(-1, 12)
    expected = chip.switching_probability(neurons, currents, PULSE_S)
    got = backend.probability(neurons, currents)
    assert torch.allclose(got, expected, rtol=1e-9, atol=1e-15)
    got32 = backend.probability(neurons, currents.float())
    assert torch.allclose(got32.double(), expected, rtol=1e-4, atol=1e-6)


def test_sim_curve_is_the_exact_median_and_the_logistic_width_of_physics_md():
    chip = load_chip(IDEAL_CHIP_FILE)
    backend = SimBackend(chip, pulse_width_s=PULSE_S)
    i50, w = backend.curve(torch.arange(12))
    assert torch.allclose(i50, exact_i50(chip.ic0_a, chip.delta, PULSE_S))
    assert torch.allclose(w, 0.69 * chip.ic0_a / chip.delta)
    assert torch.allclose(backend.probability(torch.arange(12), i50[None, :])[0], torch.full((12,), 0.5,
                                                                                        dtype=torch.float64))


def test_virtual_chip_draws_one_device_per_neuron_from_the_file_distributions():
    backend = SimBackend.virtual(400, width_m=5e-6, chip=IDEAL_CHIP_FILE, seed=11)
    assert backend.n_devices == 400 and torch.all(backend.width_m == 5e-6)
    nominal_ic0 = 1.0e11 * 5e-6 * 5e-9
    spread = (backend.chip.ic0_a / nominal_ic0).log()
    assert abs(float(spread.std()) - 0.05) < 0.01 and abs(float(spread.mean())) < 0.01
    assert abs(float(backend.chip.delta.log().std()) - 0.10) < 0.015
    again = SimBackend.virtual(400, width_m=5e-6, chip=IDEAL_CHIP_FILE, seed=11)
    assert torch.equal(again.chip.ic0_a, backend.chip.ic0_a)
    other = SimBackend.virtual(400, width_m=5e-6, chip=IDEAL_CHIP_FILE, seed=12)
    assert not torch.equal(other.chip.ic0_a, backend.chip.ic0_a)


def test_virtual_chip_takes_the_file_widths_in_turn_and_its_variation():
    mapping = virtual_chip_mapping(7, chip=IDEAL_CHIP_FILE)
    assert [d["width"] for d in mapping["devices"]] == [3e-6] * 4 + [5e-6] * 3
    backend = SimBackend.virtual(24, chip=IDEAL_CHIP_FILE)
    assert sorted(set(backend.width_m.tolist())) == [3e-6, 5e-6, 10e-6]
    # a chip mapping with its own variation is honoured
    mapping = virtual_chip_mapping(300, 3e-6, chip=IDEAL_CHIP_FILE)
    mapping["variation"] = {**mapping["variation"], "ic0": 0.0, "delta": 0.0}
    flat = SimBackend(load_chip(mapping))
    i50, w = flat.curve(flat.assign(300))
    nominal_i50, nominal_w = flat.nominal_curve(flat.assign(300))
    assert torch.allclose(i50, nominal_i50) and torch.allclose(w, nominal_w)
    with pytest.raises(BackendError, match="n_devices"):
        SimBackend.virtual(0, chip=IDEAL_CHIP_FILE)


def test_sim_backend_leaves_the_chip_state_alone():
    chip = load_chip(IDEAL_CHIP_FILE)
    backend = SimBackend(chip)
    before = (chip.m_z.clone(), chip.cycles.clone())
    backend.sample(backend.assign(12), torch.full((100, 12), 5e-3))
    assert torch.equal(chip.m_z, before[0]) and torch.equal(chip.cycles, before[1])


def test_sim_energy_per_trial_grows_with_width():
    """Ic0 ∝ w and R_ch ∝ 1/w: a trial at the same point of the curve costs energy ∝ w (physics.md §3.4)."""
    energy = {}
    for width in (3e-6, 5e-6, 10e-6):
        backend = SimBackend.virtual(50, width_m=width, chip=IDEAL_CHIP_FILE, seed=1)
        neurons = backend.assign(50)
        backend.sample(neurons, backend.curve(neurons)[0][None, :].expand(100, -1))
        energy[width] = backend.energy_j / backend.pulses
    assert energy[3e-6] < energy[5e-6] < energy[10e-6]
    assert energy[10e-6] / energy[3e-6] == pytest.approx(10 / 3, rel=0.1)


# ---------------------------------------------------------------------------------------------
# replay
# ---------------------------------------------------------------------------------------------


def two_device_curves():
    currents = np.linspace(1.0e-3, 1.4e-3, 9)
    return {
        "a": {"width_m": 3e-6, "current_a": currents, "n_switched": [0, 2, 10, 30, 52, 71, 90, 98, 100],
              "n_trials": 100, "r_ch_ohm": 1000.0, "reset_current_a": -1.95e-3, "reset_width_s": 100e-6},
        # not monotone as measured (finite counts): the replay makes it so
        "b": {"width_m": 3e-6, "current_a": currents, "n_switched": [0, 5, 3, 25, 60, 55, 92, 100, 100],
              "n_trials": 100, "r_ch_ohm": 1100.0, "reset_current_a": -1.95e-3, "reset_width_s": 100e-6},
    }


def test_replay_passes_through_monotone_measured_points():
    backend = ReplayBackend.from_curves(two_device_curves())
    currents = torch.tensor(two_device_curves()["a"]["current_a"])[:, None]
    p = backend.probability(torch.tensor([0]), currents)[:, 0]
    expected = np.array(two_device_curves()["a"]["n_switched"]) / 100
    assert np.allclose(p.numpy(), expected, atol=2e-3)


def test_replay_makes_a_measured_curve_monotone_and_holds_its_ends():
    backend = ReplayBackend.from_curves(two_device_curves())
    fine = torch.linspace(0.5e-3, 2e-3, 2001, dtype=torch.float64)[:, None]
    p = backend.probability(torch.tensor([1]), fine)[:, 0]
    assert torch.all(torch.diff(p) >= 0)
    assert float(p[0]) == pytest.approx(0.0, abs=1e-12) and float(p[-1]) == pytest.approx(1.0, abs=1e-12)
    # the violating pair (5/100 then 3/100) is pooled to their mean
    at = backend.probability(torch.tensor([1]), torch.tensor([[1.05e-3], [1.1e-3]], dtype=torch.float64))
    assert at[:, 0].tolist() == pytest.approx([0.04, 0.04], abs=2e-3)


def test_replay_curve_is_the_binomial_logistic_fit_and_nominal_the_pooled_fit():
    from protocols.fits import fit_logistic

    curves = two_device_curves()
    backend = ReplayBackend.from_curves(curves)
    i50, w = backend.curve(torch.tensor([0, 1]))
    fit = fit_logistic(curves["a"]["current_a"], curves["a"]["n_switched"], np.full(9, 100))
    assert float(i50[0]) == pytest.approx(fit.i50_a) and float(w[0]) == pytest.approx(fit.w_a)
    nominal_i50, nominal_w = backend.nominal_curve(torch.tensor([0, 1]))
    assert float(nominal_i50[0]) == float(nominal_i50[1])
    assert min(i50) < nominal_i50[0] < max(i50)


def test_replay_of_a_simulated_sweep_follows_the_simulator():
    sim = SimBackend.from_chip_file(IDEAL_CHIP_FILE)
    replay = ReplayBackend.from_curves(measure_curves(sim, sweep_currents(sim), 2000))
    neurons = sim.assign(12)
    i50, w = sim.curve(neurons)
    grid = i50 + w * torch.linspace(-6, 6, 301, dtype=torch.float64)[:, None]
    assert float((replay.probability(neurons, grid) - sim.probability(neurons, grid)).abs().mean()) < 0.01
    r_i50, r_w = replay.curve(neurons)
    assert torch.allclose(r_i50, i50, rtol=0.01) and torch.allclose(r_w, w, rtol=0.15)
    assert torch.equal(replay.r_ch_ohm, sim.r_ch_ohm)


def test_replay_refuses_curves_it_cannot_describe():
    curves = two_device_curves()
    curves["b"] = {**curves["b"], "current_a": [1.2e-3], "n_switched": [40], "n_trials": [100]}
    with pytest.raises(BackendError, match="device 'b': need measured points at two or more currents"):
        ReplayBackend.from_curves(curves)
    curves = two_device_curves()
    del curves["a"]["width_m"]
    with pytest.raises(BackendError, match="device 'a': missing 'width_m'"):
        ReplayBackend.from_curves(curves)
    curves = two_device_curves()
    curves["a"]["n_switched"] = [0] * 9
    with pytest.raises(BackendError, match="device 'a': no logistic fit"):
        ReplayBackend.from_curves(curves)
    with pytest.raises(BackendError, match="n_switched"):
        ReplayBackend(["a"], [3e-6], [0, 0], [1e-3, 2e-3], [5, 120], [100, 100])


def test_replay_without_channel_resistance_reports_unknown_energy():
    curves = two_device_curves()
    for entry in curves.values():
        del entry["r_ch_ohm"]
    backend = ReplayBackend.from_curves(curves)
    backend.sample(torch.tensor([0, 1]), torch.full((3, 2), 1.2e-3))
    assert backend.pulses == 6 and math.isnan(backend.energy_j)


# ---------------------------------------------------------------------------------------------
# devices in the loop: trials and the curves they measure (pulse and curve mode)
# ---------------------------------------------------------------------------------------------


def drifting_chip(n=24, seed=4):
    """A virtual chip of the realistic chip's 3 µm devices, every effect on (drift among them)."""
    return SimBackend.virtual(n, width_m=3e-6, chip=DEFAULT_CHIP_FILE.parent / "chip.default.yaml", seed=seed)


def test_the_station_and_the_simulator_share_one_curve_tracking():
    assert issubclass(HardwareBackend, CurveTrackingBackend) and issubclass(InLoopBackend, CurveTrackingBackend)
    assert "_draw" not in vars(HardwareBackend) and "measure_curves" not in vars(HardwareBackend)


def test_pulse_mode_plays_every_sample_on_the_chip_and_ages_it():
    sim = drifting_chip()
    backend = InLoopBackend(sim, mode="pulse", trials_per_point=25, n_points=16)
    measured = 24 * 16 * 25
    assert backend.physical_trials == measured == backend.measurement_trials
    assert sim.chip.time_s == pytest.approx(measured * sim.chip.trial_time_s)  # the sweep took station time
    neurons = backend.assign(24)
    i50, w = backend.curve(neurons)
    true_i50, true_w = sim.curve(neurons)
    # measured, not told: a logistic fitted to the Gumbel-shaped curve sits a fraction of a width below its median
    assert torch.all((i50 - true_i50).abs() < 0.7 * true_w) and torch.allclose(w, true_w, rtol=0.3)
    outcomes = backend.sample(neurons, (i50 + w)[None, :].expand(500, -1).float())
    assert backend.physical_trials == measured + 500 * 24 == sim.pulses
    assert backend.instrument_time_s == pytest.approx(backend.physical_trials * 1.4e-3)  # the station's trial
    assert sim.chip.time_s == pytest.approx(backend.instrument_time_s)
    assert 0.6 < float(outcomes.mean()) < 0.8  # P(I50 + w) of a logistic: 0.73


def test_curve_mode_samples_measured_curves_remeasures_every_k_calls_and_follows_drift():
    sim = drifting_chip()
    backend = InLoopBackend(sim, mode="curve", remeasure_every=3)
    neurons = backend.assign(24)
    i50, w = backend.curve(neurons)
    currents = (i50 + w)[None, :].expand(50, -1).float()
    backend.sample(neurons, currents)
    backend.sample(neurons, currents)
    assert backend.physical_trials == backend.measurement_trials  # drawn from the curves: no trials
    true_before = sim.curve(neurons)[0]
    sim.chip.idle(86_400.0)  # a day on the shelf: the devices drift by about a logistic width
    backend.sample(neurons, currents)  # the third call measures them again
    assert backend.physical_trials == 2 * backend.measurement_trials
    moved, truth = backend.curve(neurons)[0] - i50, sim.curve(neurons)[0] - true_before
    assert float((truth / w).abs().mean()) > 0.5
    assert float(((moved - truth) / w).abs().mean()) < 0.3  # the re-measured curves moved as the devices did
    # the measured curves go with the backend's state
    saved = backend.state_dict()
    backend.measure_curves()
    backend.load_state_dict(saved)
    assert torch.equal(backend.curve(neurons)[0], InLoopBackend.curve(backend, neurons)[0])
    assert backend.physical_trials == 2 * backend.measurement_trials and backend.calls == 3
    backend.mode = "pulse"  # the same devices, now every sample a trial
    backend.sample(neurons, currents)
    assert backend.physical_trials == 2 * backend.measurement_trials + 50 * 24
    with pytest.raises(BackendError, match="mode"):
        backend.mode = "replay"


def test_the_default_chips_devices_follow_their_curve_and_saturate_below_one():
    backend = SimBackend.from_chip_file()
    neurons = backend.assign(12)
    i50, w = backend.curve(neurons)
    p = backend.probability(neurons, torch.stack([i50 - 6 * w, i50, i50 + 6 * w]))
    assert torch.allclose(p[1], torch.full_like(p[1], 0.5), atol=0.01)
    # well above I50 a reversal can still stop at a pinning site (less often as the current nears Ic0)
    pin = backend.chip.pin_probability
    assert bool((p[0] < 0.02).all()) and bool((p[2] > 0.9).all()) and bool((1 - p[2] > 0.3 * pin).all())
    currents = (i50 + 0.5 * w)[None, :].expand(4000, -1).float()
    expected = backend.probability(neurons, currents[:1])[0]
    counts = backend.sample(neurons, currents).sum(0)
    for k, prob in zip(counts.tolist(), expected.tolist(), strict=True):
        assert stats.binomtest(int(k), 4000, prob).pvalue > 1e-4
