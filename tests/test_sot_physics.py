"""The simulated SOT chip behaves like the devices of physics.md: closed form, trends, seeds, breakdown (the ideal
chip of ``configs/chip.ideal.yaml``: the textbook bar, which the non-idealities of the default chip build on)."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from instruments.config_files import IDEAL_CHIP_FILE
from protocols.fits import fit_logistic, fit_neel_brown
from sim_backend import load_chip, logistic_from_neel_brown, switching_probability
from sim_backend.sot import exact_i50

PULSE_S = 10e-6


@pytest.fixture()
def chip():
    return load_chip(IDEAL_CHIP_FILE)


def measured_curve(chip, device, currents, trials, width_s=PULSE_S):
    """Switching counts from the reset state at each current (stateless sampling)."""
    idx = torch.full((len(currents), trials), chip.index(device), dtype=torch.long)
    current = torch.as_tensor(currents, dtype=torch.float64)[:, None].expand(-1, trials)
    return chip.sample_switching(idx, current, width_s).sum(dim=1).numpy()


def test_probability_matches_the_closed_form():
    ic0, delta = torch.tensor(2.5e-3, dtype=torch.float64), torch.tensor(40.0, dtype=torch.float64)
    for current in (0.5e-3, 1.8e-3, 2.0e-3, 2.4e-3, 3e-3):
        tau = 1e-9 * math.exp(40.0 * max(0.0, 1 - current / 2.5e-3))
        expected = -math.expm1(-PULSE_S / tau)
        got = float(switching_probability(torch.tensor(current, dtype=torch.float64), PULSE_S, ic0, delta))
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-300)


def test_probability_rises_with_current_and_falls_with_shorter_pulses(chip):
    currents = torch.linspace(0.0, 3e-3, 400, dtype=torch.float64)
    idx = torch.zeros_like(currents, dtype=torch.long)
    p_long = chip.switching_probability(idx, currents, 10e-6)
    p_short = chip.switching_probability(idx, currents, 1e-6)
    assert torch.all(torch.diff(p_long) >= 0) and torch.all(torch.diff(p_short) >= 0)
    assert p_long[0] < 1e-6 and p_long[-1] > 0.999
    middle = (p_long > 1e-3) & (p_long < 0.999)
    assert middle.sum() > 10 and torch.all(p_short[middle] < p_long[middle])


def test_sampled_switching_agrees_with_the_probability(chip):
    device = chip.index("w5-2")
    i50 = float(exact_i50(chip.ic0_a[device], chip.delta[device], PULSE_S))
    currents = np.array([0.97, 1.0, 1.03]) * i50
    counts = measured_curve(chip, "w5-2", currents, 4000)
    p = chip.switching_probability(torch.full((3,), device), torch.tensor(currents), PULSE_S).numpy()
    for k, prob in zip(counts, p, strict=True):
        assert stats.binomtest(int(k), 4000, prob).pvalue > 1e-3


def test_positive_pulse_switches_up_and_same_direction_does_nothing(chip):
    chip.set_state("w3-1", -1)
    big = 1.2 * float(chip.ic0_a[chip.index("w3-1")])
    assert bool(chip.pulse("w3-1", big, 10e-6)[0]) and int(chip.state("w3-1")[0]) == 1
    # already up: another positive pulse cannot switch it
    assert not bool(chip.pulse("w3-1", big, 10e-6)[0]) and int(chip.state("w3-1")[0]) == 1
    # a negative pulse switches it back down; reset leaves every device down
    assert bool(chip.pulse("w3-1", -big, 10e-6)[0]) and int(chip.state("w3-1")[0]) == -1
    assert bool(chip.reset(["w3-1", "w10-4"]).all())


def test_waveform_integrates_the_rate_over_segments(chip):
    """A pulse of two segments switches with the survival integrated over both (exp(−Σ dt/τ))."""
    device = chip.index("w3-3")
    current = float(exact_i50(chip.ic0_a[device], chip.delta[device], PULSE_S))
    trials = 4000
    # one waveform carries every trial: reset, then a two-level bias pulse
    levels, durations = [], []
    for _ in range(trials):
        levels += [float(chip.reset_current_a[device]), current / 3, current / 3 * 2]
        durations += [100e-6, PULSE_S / 2, PULSE_S / 2]
    chip.set_state(device, -1)
    m = chip.apply_waveform([device], torch.tensor(levels), torch.tensor(durations))[0]
    switched = (m[2::3] == 1).sum().item()
    rate = lambda i: 1e9 * math.exp(-float(chip.delta[device]) * (1 - i / float(chip.ic0_a[device])))  # noqa: E731
    p = 1 - math.exp(-(rate(current / 3) + rate(2 * current / 3)) * PULSE_S / 2)
    assert stats.binomtest(int(switched), trials, p).pvalue > 1e-3
    assert chip.cycles[device] >= 3 * trials


def test_logistic_fit_agrees_with_the_conversion_formulas(chip):
    """physics.md: I50 ≈ Ic0(1 − (ln(t/τ0) + 0.37)/Δ) and w_I ≈ 0.69 Ic0/Δ."""
    for device in ("w3-1", "w5-1", "w10-1"):
        i = chip.index(device)
        ic0, delta = float(chip.ic0_a[i]), float(chip.delta[i])
        i50, w = logistic_from_neel_brown(ic0, delta, PULSE_S)
        currents = np.linspace(i50 - 6 * w, i50 + 4 * w, 41)
        counts = measured_curve(chip, device, currents, 5000)
        fit = fit_logistic(currents, counts, np.full(currents.shape, 5000))
        assert fit.i50_a == pytest.approx(i50, rel=0.01)
        assert fit.w_a == pytest.approx(w, rel=0.10)
        # the Néel–Brown form recovers the device's own parameters
        nb = fit_neel_brown(currents, counts, np.full(currents.shape, 5000), PULSE_S)
        assert abs(nb.ic0_a - ic0) < 4 * nb.ic0_err_a and abs(nb.delta - delta) < 4 * nb.delta_err


def test_narrower_devices_switch_at_lower_current_more_steeply(chip):
    fits = {}
    for width in (3, 5, 10):
        i50s, ws = [], []
        for k in range(1, 5):
            device = f"w{width}-{k}"
            i = chip.index(device)
            guess, w = logistic_from_neel_brown(float(chip.ic0_a[i]), float(chip.delta[i]), PULSE_S)
            currents = np.linspace(guess - 6 * w, guess + 4 * w, 25)
            fit = fit_logistic(currents, measured_curve(chip, device, currents, 400), np.full(25, 400))
            i50s.append(fit.i50_a)
            ws.append(fit.w_a)
        fits[width] = (np.mean(i50s), np.mean(ws))
    assert fits[3][0] < fits[5][0] < fits[10][0]
    assert fits[3][1] < fits[5][1] < fits[10][1]  # smaller w_I: steeper in absolute current


def loop_half_width(chip, device, dwell_s=1e-3):
    i_max = 1.2 * float(chip.nominal_ic0_a[chip.index(device)])
    up = np.linspace(-i_max, i_max, 241)
    currents = np.concatenate([up, up[::-1]])
    chip.set_state(device, -1)
    readings = chip.dc_sweep(device, currents, dwell_s)[0].numpy()
    r0 = float(chip.r0_ohm[chip.index(device)])
    high = readings > r0
    rising, falling = high[:241], high[241:]
    i_up = up[np.argmax(rising)]  # first step of the up-sweep reading high
    i_down = up[::-1][np.argmax(~falling)]  # first step of the down-sweep reading low
    return (i_up - i_down) / 2


def test_hysteresis_loop_is_square_and_narrower_for_narrower_devices(chip):
    widths = {w: np.mean([loop_half_width(chip, f"w{w}-{k}") for k in range(1, 5)]) for w in (3, 5, 10)}
    assert 0 < widths[3] < widths[5] < widths[10]
    # the half-width is about the I50 at the dwell time (physics.md)
    i = chip.index("w5-1")
    i50_dwell = float(exact_i50(chip.ic0_a[i], chip.delta[i], 1e-3))
    assert loop_half_width(chip, "w5-1") == pytest.approx(i50_dwell, rel=0.05)


def test_same_seed_same_chip_and_outcomes_different_seed_differs():
    a, b, c = load_chip(IDEAL_CHIP_FILE, seed=7), load_chip(IDEAL_CHIP_FILE, seed=7), load_chip(IDEAL_CHIP_FILE, seed=8)
    assert torch.equal(a.ic0_a, b.ic0_a) and torch.equal(a.delta, b.delta) and torch.equal(a.r_ch_ohm, b.r_ch_ohm)
    assert not torch.equal(a.ic0_a, c.ic0_a)
    idx = torch.arange(12).repeat(500)
    current = a.ic0_a[idx] * 0.76
    outcomes = [chip.sample_switching(idx, current, PULSE_S) for chip in (a, b, c)]
    assert torch.equal(outcomes[0], outcomes[1]) and not torch.equal(outcomes[0], outcomes[2])
    assert torch.equal(a.read(range(12), 3), b.read(range(12), 3))


def test_breakdown_destroys_the_device_for_good(chip):
    device = chip.index("w3-2")
    limit = float(chip.i_breakdown_a[device])
    assert limit == pytest.approx(4e11 * 3e-6 * 5e-9)
    chip.pulse(device, 0.99 * limit, 1e-6)
    assert not bool(chip.destroyed[device]) and math.isfinite(float(chip.read(device)[0, 0]))
    chip.pulse(device, -1.01 * limit, 1e-6)
    assert bool(chip.destroyed[device])
    assert torch.isinf(chip.read(device, 5)).all() and math.isinf(float(chip.channel_resistance(device)[0]))
    assert not bool(chip.reset(device)[0])  # a reset cannot bring it back
    assert torch.isinf(chip.read(device)).all()
    others = [i for i in range(len(chip)) if i != device]
    assert torch.isfinite(chip.read(others)).all()


def test_default_chip_matches_physics_md(chip):
    widths = chip.width_m.numpy()
    assert sorted(set(np.round(widths * 1e6).astype(int))) == [3, 5, 10]
    for width, r_ch, ic0 in ((3e-6, 1000, 1.5e-3), (5e-6, 600, 2.5e-3), (10e-6, 300, 5e-3)):
        sel = np.isclose(widths, width)
        assert sel.sum() == 4
        assert np.mean(chip.r_ch_ohm.numpy()[sel]) == pytest.approx(r_ch, rel=0.1)
        assert np.mean(chip.ic0_a.numpy()[sel]) == pytest.approx(ic0, rel=0.1)
    assert chip.reset_width_s == pytest.approx(100e-6)
    # device-to-device variation is present
    assert np.std(chip.ic0_a.numpy()[:4]) > 0 and np.std(chip.delta.numpy()) > 0
