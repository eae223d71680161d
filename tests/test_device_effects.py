"""The Hall bars' non-idealities (physics.md §5), one at a time on the realistic chip's devices.

Each test switches on the effect it is about (``configs/chip.default.yaml``'s settings) and checks the trend a
lab measures: heating curves the loop's plateaus and bends I50 against pulse width, the field's sign reverses the
polarity and its size moves Ic0, drift moves I50 over a million trials, resets fail at the pinning model's rate,
telegraph noise makes single reads err and spread-out repeated reads mend them, short pulses are refused. The
sampler's tables follow the exact probability with every effect on.
"""

import copy
import math

import numpy as np
import pytest
import torch
import yaml
from scipy import stats

from hil.neurons import SimBackend
from instruments.config_files import IDEAL_CHIP_FILE
from sim_backend.chip import DEFAULT_CHIP_FILE, ChipConfigError, ShortPulseError, load_chip
from sim_backend.first_order_lag import settle

REALISTIC = DEFAULT_CHIP_FILE
EFFECTS = ("joule_heating", "bias_field", "drift", "telegraph_noise", "reversal_pinning")


def realistic(*on, read_noise=None, **sections):
    """The realistic chip's mapping with only the effects ``on`` (the others off), sections replaced by ``sections``."""
    raw = yaml.safe_load(REALISTIC.read_text())
    for name in EFFECTS:
        if name not in on:
            raw["effects"][name] = False
    raw["effects"].update(copy.deepcopy(sections))
    if read_noise is not None:
        raw["material"]["read_noise"] = read_noise
    return raw


def test_the_default_chip_has_every_effect_and_the_ideal_chip_none():
    assert load_chip().effects.enabled == list(EFFECTS)
    assert load_chip(IDEAL_CHIP_FILE).effects.ideal


def test_first_order_lag_is_exact_segment_by_segment():
    generator = torch.Generator().manual_seed(3)
    targets = torch.randn((2, 300), generator=generator, dtype=torch.float64)
    durations = torch.rand((2, 300), generator=generator, dtype=torch.float64) * 3e-6
    starts, ends = settle(torch.tensor([1.0, -2.0], dtype=torch.float64), targets, durations, 1e-6)
    x = torch.tensor([1.0, -2.0], dtype=torch.float64)
    for k in range(300):
        assert torch.allclose(starts[:, k], x)
        x = targets[:, k] + (x - targets[:, k]) * torch.exp(-durations[:, k] / 1e-6)
        assert torch.allclose(ends[:, k], x)


def test_heating_curves_the_loop_plateaus_and_shrinks_the_hall_step():
    currents = np.concatenate([np.linspace(-2.4e-3, 2.4e-3, 49), np.linspace(2.4e-3, -2.4e-3, 49)])
    loops = {}
    for name, on in (("ideal", ()), ("heated", ("joule_heating",))):
        chip = load_chip(realistic(*on, read_noise=1e-4), seed=5)
        chip.set_state("w3-1", -1)
        loops[name] = chip.dc_sweep("w3-1", torch.tensor(currents), 1e-3)[0].numpy()
    for readings in loops.values():
        assert readings[:5].mean() < 0 < readings[45:53].mean()  # a loop: down at -I, switched up at +I
    ideal, heated = loops["ideal"], loops["heated"]
    up = slice(47, 52)  # the up plateau at the largest currents
    assert np.ptp(ideal[np.abs(currents) < 1e-3]) > 1.5  # the step itself
    # ideal plateaus are flat; heated ones sag at large |I| (ΔR_AHE ∝ M_s(T)) and recover near I = 0
    assert abs(ideal[up].mean() - ideal[70:75].mean()) < 1e-3
    assert heated[up].mean() < heated[70:75].mean() - 0.05
    assert heated[0] > heated[24] - 0.05 - (heated[24] - heated[0])  # a rounded, not square, down plateau


def test_heating_bends_i50_against_pulse_width_beyond_the_log_law():
    widths = [1e-6, 1e-5, 1e-4]
    drops = {}
    for name, on in (("ideal", ()), ("heated", ("joule_heating",))):
        chip = load_chip(realistic(*on))
        i50 = [chip.logistic_view(w)[0] for w in widths]
        drops[name] = (i50[0] - i50[1], i50[1] - i50[2])
    ideal, heated = drops["ideal"], drops["heated"]
    assert torch.allclose(ideal[0], ideal[1], rtol=1e-6)  # without heating I50 is linear in ln t_p
    # with heating the bar keeps warming through the first µs: I50 falls faster there than ln t_p alone gives
    assert bool((heated[0] > 1.2 * heated[1]).all()) and bool((heated[0] > ideal[0]).all())


@pytest.mark.parametrize("field", ["10 mT", "-10 mT"])
def test_the_field_sign_sets_which_current_switches_down_to_up(field):
    chip = load_chip(realistic("bias_field", bias_field={"field": field}), seed=2)
    devices = list(range(len(chip)))
    strong = 1.5 * chip.ic0_a
    chip.set_state(devices, -1)
    chip.apply_waveform(devices, strong[:, None], torch.tensor([10e-6]))
    positive_switches = bool((chip.state(devices) == 1).all())
    chip.set_state(devices, -1)
    chip.apply_waveform(devices, -strong[:, None], torch.tensor([10e-6]))
    negative_switches = bool((chip.state(devices) == 1).all())
    assert (positive_switches, negative_switches) == ((True, False) if field == "10 mT" else (False, True))
    chip.set_state(devices, 1)
    assert bool(chip.reset(devices).all())  # the reset follows the chirality


def test_a_stronger_field_lowers_ic0_as_liu_et_al():
    i50 = {}
    for field in ("10 mT", "50 mT"):
        chip = load_chip(realistic("bias_field", bias_field={"field": field, "anisotropy": "300 mT"}))
        i50[field] = chip.logistic_view(10e-6)[0]
    expected = (0.15 - 0.05 / math.sqrt(2)) / (0.15 - 0.01 / math.sqrt(2))  # Ic0 ∝ H_k/2 − |H_x|/√2
    assert torch.allclose(i50["50 mT"] / i50["10 mT"], torch.full_like(i50["10 mT"], expected), rtol=1e-6)
    with pytest.raises(ChipConfigError, match="effects.bias_field.field"):
        load_chip(realistic("bias_field", bias_field={"field": "250 mT"}))


def test_drift_moves_i50_by_about_a_percent_over_a_million_trials():
    backend = SimBackend(load_chip(realistic("drift")), pulse_width_s=10e-6)
    devices = torch.arange(12)
    before, _ = backend.curve(devices)
    currents = (before * torch.ones(10_000, 12, dtype=torch.float64)).to(torch.float32)
    for _ in range(100):  # 10⁶ trials on each device (two pulses each), 4.7 h of station time for the chip
        backend.sample(devices, currents)
    after, _ = backend.curve(devices)
    change = (after - before) / before
    assert backend.chip.time_s == pytest.approx(12e6 * 1.4e-3)
    assert 0.002 < float(change.abs().median()) < 0.05  # of order 1 %
    assert float(change.mean()) < 0  # wear lowers the critical current


def test_resets_fail_at_the_pinning_rate_and_differ_between_devices():
    chip = load_chip(realistic("joule_heating", "reversal_pinning"), seed=7)
    n = len(chip)
    rounds = 4000
    set_current = -chip.reset_current_a  # as strong as the reset, the other way
    levels = torch.stack([set_current, torch.zeros(n), chip.reset_current_a, torch.zeros(n)], dim=1)
    durations = torch.tensor([100e-6, 20e-6, 100e-6, 20e-6], dtype=torch.float64)
    m = chip.apply_waveform(list(range(n)), levels.repeat(1, rounds), durations.repeat(rounds))
    after_set, after_reset = m[:, 0::4], m[:, 2::4]
    tried = (after_set == 1)  # a reset is tried on a device that is up
    failed = (tried & (after_reset == 1)).sum(dim=1).double()
    p_fail = 1.0 - chip.switching_probability(torch.arange(n), chip.reset_current_a.abs(), 100e-6)
    expected = (tried.sum(dim=1).double() * p_fail)
    assert 1e-4 < float(failed.sum() / tried.sum()) < 1e-2  # physics.md's range
    z = (failed.sum() - expected.sum()) / expected.sum().sqrt()
    assert abs(float(z)) < 4
    assert float(p_fail.max() / p_fail.min()) > 5  # some devices hold a stronger pinning site


def test_a_device_given_its_own_pinning_and_wear_keeps_them_while_the_others_keep_their_draws():
    base = realistic("drift", "reversal_pinning")
    plain = load_chip(base, seed=7)
    raw = copy.deepcopy(base)
    raw["devices"][1]["pinning"] = 0.3  # w3-2: a cross with a strong pinning site
    raw["devices"][2]["wear"] = 0.5     # w3-3: wears about a hundred times faster than the median device
    chip = load_chip(raw, seed=7)
    assert float(chip.pin_probability[1]) == 0.3 and float(chip.drift.wear_rate[2]) == 0.5
    others = [i for i in range(len(chip)) if i not in (1, 2)]
    assert torch.equal(chip.pin_probability[others], plain.pin_probability[others])
    assert torch.equal(chip.drift.wear_rate[others], plain.drift.wear_rate[others])
    # w3-2's resets fail at its own rate: up, then reset, 2,000 times
    rounds = 2000
    levels = torch.tensor([[-float(chip.reset_current_a[1]), 0.0, float(chip.reset_current_a[1]), 0.0]])
    durations = torch.tensor([100e-6, 20e-6, 100e-6, 20e-6], dtype=torch.float64)
    m = chip.apply_waveform(["w3-2"], levels.repeat(1, rounds), durations.repeat(rounds))
    tried = m[0, 0::4] == 1
    failed = float((tried & (m[0, 2::4] == 1)).sum())
    p_fail = 1.0 - float(chip.switching_probability(torch.tensor([1]), chip.reset_current_a[1:2].abs(), 100e-6))
    expected = float(tried.sum()) * p_fail
    assert p_fail > 0.05 and abs(failed - expected) < 4 * math.sqrt(expected)
    # w3-3 wears: 10^5 trials (two pulses each) lower its I50 by about 1 − e^(−0.5 · 0.2) ≈ 10 %
    backend = SimBackend(chip, pulse_width_s=10e-6)
    devices = torch.arange(len(chip))
    before, _ = backend.curve(devices)
    currents = (before * torch.ones(10_000, len(chip), dtype=torch.float64)).to(torch.float32)
    for _ in range(10):
        backend.sample(devices, currents)
    change = (backend.curve(devices)[0] - before) / before
    assert -0.15 < float(change[2]) < -0.05
    assert float(change[others].abs().max()) < 0.02


def test_a_device_s_own_pinning_or_wear_is_refused_out_of_range_or_without_its_effect():
    raw = realistic("drift", "reversal_pinning")
    raw["devices"][1]["pinning"] = 1.5
    with pytest.raises(ChipConfigError, match=r"devices\[1\].pinning: must be a probability in \[0, 1\], got 1.5"):
        load_chip(raw)
    raw = realistic("drift")
    raw["devices"][1]["pinning"] = 0.1
    with pytest.raises(ChipConfigError, match="devices\\[1\\].pinning: the chip's effects.reversal_pinning is off"):
        load_chip(raw)
    raw = realistic("reversal_pinning")
    raw["devices"][0]["wear"] = 0.01
    with pytest.raises(ChipConfigError, match="devices\\[0\\].wear: the chip's effects.drift is off"):
        load_chip(raw)
    raw = realistic("drift")
    raw["devices"][0]["wear"] = -0.01
    with pytest.raises(ChipConfigError, match="devices\\[0\\].wear: must be ≥ 0"):
        load_chip(raw)


def test_telegraph_noise_makes_single_reads_err_and_spread_repeated_reads_mend_them():
    chip = load_chip(realistic("telegraph_noise"), seed=4)
    chip.set_state("w3-1", -1)
    threshold = float(chip.r0_ohm[0])  # midway between the levels
    single = chip.read("w3-1", 200_000, spacing_s=5e-3)[0]
    single_errors = float((single > threshold).double().mean())
    assert 1e-4 < single_errors < 2e-2
    # five reads averaged, 5 ms apart (several dwell times): the fluctuator's level averages out
    spread = chip.read("w3-1", 200_000, spacing_s=5e-3)[0].reshape(-1, 5).mean(dim=1)
    assert float((spread > threshold).double().mean()) < single_errors / 5
    # five back-to-back reads share the fluctuator's level: their average keeps its whole spread
    bunched = []
    for _ in range(4000):
        chip.idle(1e-3)
        bunched.append(chip.read("w3-1", 5, spacing_s=1e-6)[0].mean())
    bunched = torch.stack(bunched)
    assert float(bunched.std()) > 1.5 * float(spread.std())


def test_short_pulses_are_refused_where_the_closed_form_does_not_hold():
    chip = load_chip(realistic())
    with pytest.raises(ShortPulseError, match="macrospin"):
        chip.switching_probability(torch.tensor([0]), torch.tensor([2e-3]), 1e-9)
    with pytest.raises(ShortPulseError, match="1 ns"):
        chip.apply_waveform(["w3-1"], torch.tensor([[3e-3]]), torch.tensor([[1e-9]]))
    assert load_chip(IDEAL_CHIP_FILE).switching_probability(torch.tensor([0]), torch.tensor([2e-3]), 1e-9).item() > 0.6


def test_sampling_with_every_effect_follows_the_exact_probability():
    chip = load_chip(realistic("joule_heating", "bias_field", "reversal_pinning"), seed=9)
    i50, w = chip.logistic_view(10e-6)
    devices = torch.arange(12).repeat_interleave(5)
    currents = (i50[devices] + w[devices] * torch.tensor([-3.0, -1.0, 0.0, 1.0, 4.0]).repeat(12))
    p = chip.switching_probability(devices, currents, 10e-6)
    trials = 20_000
    batch = currents.to(torch.float32).expand(trials, -1).contiguous()
    switched = chip.sample_switching(devices, batch, 10e-6).double().sum(dim=0)
    z = (switched - trials * p) / (trials * p * (1 - p)).clamp(min=1e-12).sqrt()
    assert float(z.abs().max()) < 4.5
    assert stats.chi2.sf(float((z**2).sum()), df=z.numel()) > 1e-3


def test_the_sampler_follows_the_devices_as_they_drift():
    """The default chip, sampled, then a week of drift: the next draws on the same devices tensor follow the
    drifted devices' exact probability (the sampler's tables move with the drift; its grid stays put)."""
    chip = load_chip(REALISTIC, seed=5)
    devices = torch.arange(12).repeat_interleave(4)
    i50, w = chip.logistic_view(10e-6)
    currents = (i50[devices] + w[devices] * torch.tensor([-2.0, -0.5, 0.5, 2.0]).repeat(12))
    batch = currents.to(torch.float32).expand(5_000, -1).contiguous()
    chip.sample_switching(devices, batch, 10e-6)
    chip.idle(7 * 86_400.0)
    p = chip.switching_probability(devices, currents, 10e-6)
    p_before_aging = p.clone()
    switched = chip.sample_switching(devices, batch, 10e-6).double().sum(dim=0)
    trials = batch.shape[0]
    z = (switched - trials * p) / (trials * p * (1 - p)).clamp(min=1e-12).sqrt()
    assert float(z.abs().max()) < 4.5
    assert stats.chi2.sf(float((z**2).sum()), df=z.numel()) > 1e-3
    # the week moved the curves by more than the draws could hide
    fresh = load_chip(REALISTIC, seed=5).switching_probability(devices, currents, 10e-6)
    assert float((fresh - p_before_aging).abs().max()) > 0.1


def test_effects_config_errors_name_the_key():
    for section, value, key in (("joule_heating", {"time": "-1 us"}, "effects.joule_heating.time"),
                                ("drift", {"wear": "fast"}, "effects.drift.wear"),
                                ("telegraph_noise", {"colour": "pink"}, "effects.telegraph_noise.colour"),
                                ("short_pulses", {"model": "guess"}, "effects.short_pulses.model")):
        with pytest.raises(ChipConfigError, match=key):
            load_chip(realistic(**{section: value}))


def test_short_pulses_go_to_the_macrospin_twin_where_the_chip_says_so():
    chip = load_chip(realistic("bias_field", short_pulses={"model": "macrospin", "min_width": "20 ns"}), seed=3)
    ic0 = float(chip.bars().ic0_a[0])
    p = chip.switching_probability(torch.zeros(3, dtype=torch.long), torch.tensor([0.6, 0.8, 0.9]) * ic0, 2e-9)
    # a current-dependent probability in the ns regime, not the closed form's flat 1 − 1/e above Ic0
    assert float(p[0]) < 0.1 < float(p[1]) < float(p[2])
    chip.set_state("w3-1", -1)
    m = chip.apply_waveform(["w3-1"], torch.tensor([[0.0, 2.4 * ic0, 0.0]]), torch.tensor([[1e-6, 2e-9, 1e-6]]))
    assert m.shape == (1, 3) and int(chip.cycles[0]) == 1


def test_a_checkpointed_simulation_on_a_drifting_chip_continues_exactly():
    def fresh():
        return SimBackend(load_chip(realistic("drift", "joule_heating", "reversal_pinning")), pulse_width_s=10e-6)

    devices = torch.arange(12)
    currents = (fresh().curve(devices)[0] * torch.ones(5000, 12, dtype=torch.float64)).to(torch.float32)
    whole = fresh()
    outcomes = [whole.sample(devices, currents) for _ in range(20)]
    first = fresh()
    for _ in range(10):
        first.sample(devices, currents)
    resumed = fresh()
    resumed.load_state_dict(first.state_dict())
    for k in range(10, 20):  # the drift steps every 60 s of station time: several happen in the second half
        assert torch.equal(resumed.sample(devices, currents), outcomes[k]), k
    assert resumed.chip.time_s == whole.chip.time_s
    assert torch.equal(resumed.curve(devices)[0], whole.curve(devices)[0])
