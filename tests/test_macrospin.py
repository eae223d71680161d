"""The macrospin sLLG (sim_backend.macrospin): its threshold is the twin's Ic0, its thermal field obeys Boltzmann,
ns pulses switch unlike the closed form, and long pulses agree with the Néel–Brown form of the same macrospin."""

import math

import numpy as np
import pytest
import torch

from sim_backend.macrospin import (
    CLOSED_FORM_MIN_PULSE_S,
    NEEL_BROWN_EXPONENT,
    HeunIntegrator,
    MacrospinParameters,
    ShortPulseError,
    critical_damping_like_field,
    macrospin_twin,
    neel_brown_attempt_time_s,
    require_closed_form_pulse,
    sllg_probability,
    sllg_states,
    sllg_switched,
)
from sim_backend.sot import switching_probability

IC0_A = torch.tensor([1.5e-3, 2.5e-3, 5e-3], dtype=torch.float64)  # the chip's three widths
# the cross-check's macrospin: a bias at which escape from the down state lands in the up state (module docstring)
CROSS_CHECK = MacrospinParameters(bias_field_t=0.06)
CROSS_CHECK_DELTA = 15.0


def f64(values):
    return torch.as_tensor(values, dtype=torch.float64)


def binomial_z(p_measured, p_expected, trials):
    return (p_measured - p_expected) / torch.sqrt(p_expected * (1 - p_expected) / trials)


def neel_brown(fraction_of_ic0, width_s, delta, params):
    """The macrospin's own Néel–Brown probability (Ic0 = 1: currents as fractions of Ic0)."""
    tau0 = neel_brown_attempt_time_s(delta, params)
    return switching_probability(f64(fraction_of_ic0), width_s, f64(1.0), f64(delta), tau0, NEEL_BROWN_EXPONENT)


def test_threshold_is_the_known_saddle_node():
    """B_DL,c ≈ B_k/2 − B_x/√2 (Liu et al. 2012) at a small bias, and it rises with a weaker bias."""
    params = MacrospinParameters()
    approx = params.anisotropy_t / 2 - params.bias_field_t / math.sqrt(2)
    assert critical_damping_like_field(params) == pytest.approx(approx, rel=1e-3)
    assert critical_damping_like_field(MacrospinParameters(bias_field_t=0.005)) > critical_damping_like_field(params)


def test_zero_temperature_switching_starts_at_ic0():
    """T = 0, a 5 ns pulse with 1 ns edges (quasi-static onset): 0.97 Ic0 leaves every device as it was, 1.03 Ic0
    switches it, in both directions; a pulse toward the state a device is already in does nothing."""
    params = MacrospinParameters(temperature_k=0.0, edge_s=1e-9)
    factors = f64([0.97, 1.03, -0.97, -1.03, 1.5, -1.5])
    initial_up = torch.tensor([False, False, True, True, True, False])
    levels = (IC0_A[:, None] * factors)[..., None]
    final = sllg_states(IC0_A[:, None], 40.0, levels, [5e-9], initial_up, params=params)
    expected_up = torch.tensor([False, True, True, False, True, False])
    assert torch.equal(final > 0, expected_up.expand(3, -1))


def test_abrupt_pulses_switch_precessionally_below_ic0():
    """An ideally rectangular pulse switches at T = 0 from about 0.82 Ic0 (module docstring), not at 0.75 Ic0."""
    params = MacrospinParameters(temperature_k=0.0)
    switched = sllg_switched(IC0_A[:, None], 40.0, IC0_A[:, None] * f64([0.75, 0.9]), 5e-9, params=params)
    assert torch.equal(switched, f64([[0.0, 1.0]]).expand(3, -1))


def test_thermal_field_gives_the_boltzmann_spread():
    """Started without fluctuations at the bottom of the down well, after six relaxation times at no current
    ⟨m_y²⟩ is the Boltzmann average of the well (energy −(M_sB_kV/2)(m_z² + 2h m_x), quadrature over the sphere)."""
    params = MacrospinParameters()
    n, delta = 4000, 15.0
    h = params.bias_field_t / params.anisotropy_t
    m = torch.zeros(3, n, dtype=torch.float64)
    m[0], m[2] = h, -math.sqrt(1 - h * h)
    twin = macrospin_twin(f64(1e-3).expand(n), f64(delta).expand(n), params)
    HeunIntegrator(m, params, twin.thermal_variance_t2_s, torch.Generator().manual_seed(5)).run(None, 6e-9)
    delta0 = delta / (1 - h) ** 2  # M_s B_k V / (2 k_B T)
    theta = np.linspace(math.pi / 2, math.pi, 2001)[:, None]  # the lower hemisphere
    phi = np.linspace(0, 2 * math.pi, 2001)[None, :]
    mx, my, mz = np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)
    weight = np.exp(delta0 * (mz ** 2 + 2 * h * mx) - delta0) * np.sin(theta)
    expected = float((my ** 2 * weight).sum() / weight.sum())
    samples = m[1] ** 2
    assert bool((m[2] < 0).all())
    assert abs(float(samples.mean()) - expected) < 3 * float(samples.std()) / math.sqrt(n)


def test_ns_pulses_depend_on_current_without_the_closed_form_plateau():
    """2 ns pulses, Δ = 40: below Ic0 P rises steeply with the current (precessional switching); above Ic0 the
    default macrospin (μ0H_x = 10 mT) is pulled in plane and reads up or down about equally, far from the closed
    form's 1 − e^(−t/τ0) (0.865 at τ0 = 1 ns, 1.0 at the twin's τ0). At μ0H_x = 60 mT P is near 1 just above Ic0
    and falls toward 1/2 well above it (in-plane state from 1.29 Ic0)."""
    trials, generator = 400, torch.Generator().manual_seed(1)
    factors = f64([0.7, 0.8, 0.9, 1.2, 1.6, 2.4])
    p = sllg_probability(2.5e-3, 40.0, 2.5e-3 * factors, 2e-9, trials, generator=generator)
    sigma = math.sqrt(0.25 / trials)
    assert p[0] < 0.1 and p[1] - p[0] > 3 * sigma and p[2] - p[1] > 3 * sigma
    above = p[3:]
    assert bool(((above - 0.5).abs() < 0.15).all())
    assert bool((binomial_z(above, f64(1 - math.exp(-2.0)), trials) < -5).all())
    p_60 = sllg_probability(2.5e-3, 40.0, 2.5e-3 * f64([1.2, 2.4]), 2e-9, trials, params=CROSS_CHECK,
                            generator=generator)
    assert p_60[0] > 0.7 and p_60[0] - p_60[1] > 5 * sigma


def check_against_neel_brown(fractions, width_s, trials, seed):
    generator = torch.Generator().manual_seed(seed)
    p = sllg_probability(IC0_A[1], CROSS_CHECK_DELTA, IC0_A[1] * f64(fractions), width_s, trials,
                         params=CROSS_CHECK, generator=generator)
    expected = neel_brown(fractions, width_s, CROSS_CHECK_DELTA, CROSS_CHECK)
    return p, expected, binomial_z(p, expected, trials)


def test_long_pulses_agree_with_neel_brown_20ns():
    """Thermally activated regime, Δ = 15, 20 ns pulses at 0.6–0.7 Ic0: P of the sLLG is the macrospin's own
    Néel–Brown P = 1 − exp(−t/τ0 e^(Δ(1 − I/Ic0)^n)) within the binomial error (|z| < 3 per point)."""
    p, expected, z = check_against_neel_brown([0.6, 0.65, 0.7], 20e-9, 500, seed=2)
    assert bool((torch.diff(p) > 0).all()) and 0.2 < float(expected[0]) and float(expected[-1]) < 0.95
    assert bool((z.abs() < 3).all()), (p, expected, z)


@pytest.mark.slow
def test_long_pulses_agree_with_neel_brown_100ns():
    """The same at 100 ns pulses (0.5–0.6 Ic0), 1000 macrospins per point."""
    p, expected, z = check_against_neel_brown([0.5, 0.55, 0.6], 100e-9, 1000, seed=3)
    assert bool((z.abs() < 3).all()), (p, expected, z)


@pytest.mark.slow
def test_long_pulses_agree_with_neel_brown_1us():
    """The µs regime the chips' pulses live in: 1 µs pulses (10⁶ Heun steps) at 0.33–0.41 Ic0, 400 macrospins per
    point; P rises with the current and sits within the binomial error of Néel–Brown."""
    p, expected, z = check_against_neel_brown([0.33, 0.37, 0.41], 1e-6, 400, seed=5)
    assert 0.15 < float(expected[0]) and float(expected[-1]) < 0.9 and bool((torch.diff(p) > 0).all())
    assert bool((z.abs() < 3).all()), (p, expected, z)


@pytest.mark.slow
def test_closed_form_departs_below_its_bound():
    """At half the bound (10 ns) the closed form no longer holds: over 0.6–0.75 Ic0 the sLLG switches more often
    (precession at the onset), χ² of the four points (4 degrees of freedom) above 18.5 (p < 0.001)."""
    p, expected, z = check_against_neel_brown([0.6, 0.65, 0.7, 0.75], CLOSED_FORM_MIN_PULSE_S / 2, 1000, seed=4)
    assert float((z ** 2).sum()) > 18.5 and float(z.sum()) > 0, (p, expected, z)


def test_short_pulses_are_refused_by_the_closed_form():
    with pytest.raises(ShortPulseError, match="shorter than 20 ns"):
        require_closed_form_pulse(5e-9)
    require_closed_form_pulse(10e-6)


def test_seeded_runs_repeat_and_shapes_broadcast():
    params = MacrospinParameters(settle_s=1e-9)
    currents = 2.5e-3 * f64([0.8, 0.9, 1.0])

    def run(seed):
        return sllg_switched(f64([[2.5e-3], [2.6e-3]]), 40.0, currents, 1e-9, params=params,
                             generator=torch.Generator().manual_seed(seed))

    first = run(7)
    assert first.shape == (2, 3) and first.dtype == torch.float64
    assert torch.equal(first, run(7))
    p = sllg_probability(2.5e-3, f64([30.0, 40.0]), currents[:, None], 1e-9, 50, params=params,
                         generator=torch.Generator().manual_seed(7))
    assert p.shape == (3, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_the_device_of_its_inputs():
    params = MacrospinParameters(settle_s=1e-9)
    currents = 2.5e-3 * f64([0.8, 1.2]).cuda()
    out = sllg_switched(2.5e-3, 40.0, currents, 1e-9, params=params,
                        generator=torch.Generator(device="cuda").manual_seed(0))
    assert out.device.type == "cuda" and out.shape == (2,)
