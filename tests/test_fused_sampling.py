"""The fused Néel–Brown draws (a Gumbel threshold against η = ln(t_p/τ)) follow the exact switching probability.

Binomial tests over many trials at several devices and currents, in float32 and float64, through the chip
and the sim backend, including the clamps of η (no current below zero, τ = τ0 above Ic0) where they change
the outcome; the same seed gives the same outcomes, also when a large batch is drawn in blocks; the pulse and
energy counters keep their meaning.
"""

import pytest
import torch
from scipy import stats

from hil.neurons import SimBackend, virtual_chip_mapping
from instruments.config_files import IDEAL_CHIP_FILE
from sim_backend import load_chip
from sim_backend.sot import exact_i50

PULSE_S = 10e-6
TRIALS = 20_000
# 12 devices × several currents per test: a cell fails by chance with probability ≈ 1e-6
P_VALUE = 1e-6


def assert_binomial(counts, n, p):
    for k, prob in zip(counts.tolist(), p.tolist(), strict=True):
        assert stats.binomtest(int(k), n, prob).pvalue > P_VALUE, (k, n, prob)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_chip_draws_follow_the_neel_brown_probability_across_devices_and_currents(dtype):
    chip = load_chip(IDEAL_CHIP_FILE)
    devices = torch.arange(len(chip))
    # from the slow tail (P ~ 0.02) through the median to saturation, per device: I50 + k·w_I
    steps = torch.tensor([-5.0, -1.0, 0.5, 3.0], dtype=torch.float64)
    i50, w = exact_i50(chip.ic0_a, chip.delta, PULSE_S), 0.69 * chip.ic0_a / chip.delta
    currents = (i50[:, None] + w[:, None] * steps).reshape(-1).to(dtype)
    idx = devices.repeat_interleave(len(steps))
    p = chip.switching_probability(idx, currents.double(), PULSE_S)
    assert p.min() < 0.03 and p.max() > 0.97  # the cells span the curve
    outcomes = chip.sample_switching(idx.expand(TRIALS, -1), currents.expand(TRIALS, -1), PULSE_S,
                                     generator=torch.Generator().manual_seed(3))
    assert outcomes.dtype == dtype and set(outcomes.unique().tolist()) <= {0.0, 1.0}
    assert_binomial(outcomes.sum(0), TRIALS, p)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sim_backend_draws_follow_its_probability(dtype):
    backend = SimBackend.virtual(24, chip=IDEAL_CHIP_FILE, seed=5)
    neurons = backend.assign(24)
    i50, w = backend.curve(neurons)
    steps = torch.tensor([-3.0, -1.0, 0.0, 1.0, 2.5], dtype=torch.float64)
    currents = (i50[None, :] + w[None, :] * steps[:, None]).reshape(-1).to(dtype)
    cells = neurons.repeat(len(steps))
    p = backend.probability(cells, currents.double()[None, :])[0]
    counts = backend.sample(cells, currents.expand(TRIALS, -1)).sum(0)
    assert_binomial(counts, TRIALS, p)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_no_current_never_switches_and_a_current_above_ic0_always_does(dtype):
    backend = SimBackend.from_chip_file(IDEAL_CHIP_FILE)
    neurons = backend.assign(12)
    ic0 = backend.chip.ic0_a.to(dtype)
    for current, expected in ((0.0 * ic0, 0.0), (-ic0, 0.0), (1.2 * ic0, 1.0), (3.0 * ic0, 1.0)):
        outcomes = backend.sample(neurons, current.expand(5000, -1))
        assert torch.all(outcomes == expected)


def test_short_pulses_saturate_at_the_attempt_rate():
    """t_p = τ0: above Ic0 a pulse switches with 1 − 1/e, not 1 (the τ = τ0 clamp changes the draws)."""
    backend = SimBackend.from_chip_file(IDEAL_CHIP_FILE, pulse_width_s=1e-9)
    neurons = backend.assign(12)
    for dtype in (torch.float32, torch.float64):
        currents = (backend.chip.ic0_a * torch.tensor([1.0, 1.5, 3.0]).repeat_interleave(4)).to(dtype)
        p = backend.probability(neurons, currents.double()[None, :])[0]
        assert torch.allclose(p, torch.full_like(p, 1 - torch.e ** -1))
        assert_binomial(backend.sample(neurons, currents.expand(TRIALS, -1)).sum(0), TRIALS, p)


def test_a_weak_magnet_switches_at_zero_current_as_the_clamped_curve_says():
    """Δ = 5: P(I = 0) ≈ 1 and P(I < 0) holds at P(0) (no current below zero), in both dtypes."""
    mapping = virtual_chip_mapping(12, chip=IDEAL_CHIP_FILE)
    mapping["material"] = {**mapping["material"], "delta": 5.0}
    mapping["variation"] = {**mapping["variation"], "delta": 0.0}
    backend = SimBackend(load_chip(mapping), pulse_width_s=1e-9)  # P(0) = 1 − exp(−e^−5) ≈ 0.0067
    neurons = backend.assign(12)
    for dtype in (torch.float32, torch.float64):
        ic0 = backend.chip.ic0_a.to(dtype)
        currents = torch.cat([torch.zeros_like(ic0[:6]), -ic0[6:]])
        p = backend.probability(neurons, currents.double()[None, :])[0]
        assert torch.allclose(p, p[0].expand(12)) and 0.005 < float(p[0]) < 0.01
        assert_binomial(backend.sample(neurons, currents.expand(4 * TRIALS, -1)).sum(0), 4 * TRIALS, p)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_same_seed_same_outcomes_also_for_a_batch_drawn_in_blocks(dtype):
    chip = load_chip(IDEAL_CHIP_FILE)
    devices = torch.arange(12)
    # at each device's median, 240,000 pairs: drawn in blocks
    currents = exact_i50(chip.ic0_a, chip.delta, PULSE_S).to(dtype).expand(20_000, -1)
    broadcast = chip.sample_switching(devices, currents, PULSE_S, generator=torch.Generator().manual_seed(9))
    per_pair = chip.sample_switching(devices.expand(20_000, -1).contiguous(), currents, PULSE_S,
                                     generator=torch.Generator().manual_seed(9))
    assert torch.equal(broadcast, per_pair)
    other = chip.sample_switching(devices, currents, PULSE_S, generator=torch.Generator().manual_seed(10))
    assert not torch.equal(broadcast, other)
    backend = SimBackend(chip)
    backend.reseed(4)
    first = backend.sample(devices, currents)
    backend.reseed(4)
    assert torch.equal(backend.sample(devices, currents), first)


def test_counters_of_a_large_float32_batch_and_across_a_checkpoint():
    backend = SimBackend.virtual(100, chip=IDEAL_CHIP_FILE, seed=2)
    neurons = backend.assign(100)
    i50, w = backend.curve(neurons)
    currents = (i50 + w * torch.linspace(-3, 3, 3000, dtype=torch.float64)[:, None]).float()  # drawn in blocks
    backend.sample(neurons, currents)
    r = backend.r_ch_ohm[neurons]
    bias = float((currents.double() ** 2 * r * PULSE_S).sum())
    reset = float((backend.reset_current_a[neurons] ** 2 * r * backend.reset_width_s[neurons]).sum()) * 3000
    assert backend.pulses == 300_000
    assert backend.energy_j == pytest.approx(bias + reset, rel=1e-6)
    assert backend.reset_energy_j == pytest.approx(reset, rel=1e-12)
    # counting goes on exactly as it would have after a checkpoint is taken and restored
    small = currents[:64]
    state = backend.state_dict()
    for _ in range(300):  # more calls than the backend keeps before adding up
        backend.sample(neurons, small)
    uninterrupted = (backend.pulses, backend.energy_j)
    backend.load_state_dict(state)
    for k in range(300):
        backend.sample(neurons, small)
        if k == 150:
            backend.load_state_dict(backend.state_dict())
    assert (backend.pulses, backend.energy_j) == uninterrupted
