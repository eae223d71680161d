"""Calibration and replay of the chip's effects: heating, drift and pinning recovered from a session, and judged.

The session is recorded on the emulated station from the realistic chip (``configs/chip.default.yaml``) with its
Joule heating, bias field and telegraph noise as shipped, and with wear and pinning made strong enough to resolve in a
short run (no walk, no room drift, one wear rate and one pinning probability for every device): bias sweeps at three
pulse widths with reference points, a reset check with repeated reads, and hysteresis loops.
"""

import copy
import dataclasses

import numpy as np
import pytest
import torch
import yaml

from hil.lab.characterization import characterize
from hil.offline.calibration import calibrate, write_chip
from hil.offline.comparison import replay
from hil.offline.heating_fit import ChipLaws, HeatedFit, SwitchingData, fit_heated
from instruments.config_files import EMULATED_STATION_FILE, IDEAL_CHIP_FILE, PROTOCOL_FILES
from protocols.fits import fit_neel_brown
from sim_backend.chip import DEFAULT_CHIP_FILE, load_chip

REALISTIC = DEFAULT_CHIP_FILE
DEVICES = ["w3-1", "w5-1", "w10-1"]
WEAR = 1.5  # per 10^6 pulses: 300 times the shipped chip's, about 2 % of Ic0 over one sweep
PINNING = 0.2
INTERVAL = "0.1 s"  # the drift moves this often: finely enough for a run of a few seconds
Z = 3.3  # 99.9 % two-sided
BIAS = {"3um": {"start": "0.7mA", "stop": "1.5mA", "points": 16},
        "5um": {"start": "1.15mA", "stop": "2.5mA", "points": 16},
        "10um": {"start": "2.4mA", "stop": "5.0mA", "points": 16}}
REFERENCE = {"1us": {"3um": "1.2mA", "5um": "2.0mA", "10um": "4.2mA"},  # near each width's I50
             "10us": {"3um": "1.0mA", "5um": "1.68mA", "10um": "3.6mA"},
             "100us": {"3um": "0.95mA", "5um": "1.59mA", "10um": "3.3mA"}}


def realistic(**effects):
    raw = yaml.safe_load(REALISTIC.read_text())
    for name, value in effects.items():
        raw["effects"][name] = copy.deepcopy(value)
    if isinstance(raw["effects"]["drift"], dict):
        raw["effects"]["drift"]["interval"] = INTERVAL
    return raw


def protocol(name, **changes):
    raw = yaml.safe_load((PROTOCOL_FILES / name).read_text())
    raw.update(changes)
    return raw


@pytest.fixture(scope="module")
def chips(tmp_path_factory):
    """``(truth, base)``: the chip the session is recorded from, and the realistic chip the calibration starts from
    (the shipped settings; its drift steps as often as the truth's)."""
    folder = tmp_path_factory.mktemp("chips")
    truth = realistic(drift={"ic0_walk": 0, "delta_walk": 0, "wear": WEAR, "wear_spread": 0, "ambient_sigma": "0 K",
                             "interval": INTERVAL},
                      reversal_pinning={"probability": PINNING, "overdrive_scale": 0.3, "spread": 0.0})
    (folder / "truth.yaml").write_text(yaml.safe_dump(truth))
    (folder / "base.yaml").write_text(yaml.safe_dump(realistic()))
    return folder / "truth.yaml", folder / "base.yaml"


@pytest.fixture(scope="module")
def session(chips, tmp_path_factory):
    plans = [{"protocol": "channel_resistance", "devices": DEVICES}]
    for width, currents in REFERENCE.items():
        plans.append(protocol("bias-sweep.yaml", devices=DEVICES, trials_per_point=100, pulse_width=width, bias=BIAS,
                              reference={"every": 3, "trials": 300, "current": currents}))
    plans.append(protocol("reset-check.yaml", devices=DEVICES, repeats=1000, reads=5))
    plans.append(protocol("hysteresis-loop.yaml", devices=DEVICES))
    out = tmp_path_factory.mktemp("session") / "effects.h5"
    characterize(EMULATED_STATION_FILE, plans, out, progress=False, chip=chips[0])
    return out


@pytest.fixture(scope="module")
def calibrated(session, chips, tmp_path_factory):
    chip = calibrate(session, base_chip=chips[1])
    return chip, write_chip(chip, tmp_path_factory.mktemp("calibrated") / "calibrated.yaml")


def test_heated_fit_recovers_the_heating_from_counts_drawn_from_the_chip():
    """Binomial counts drawn from the realistic chip's heated probabilities (driven as the station drives it, a
    voltage through the warming channel) at three widths: the joint fit finds the specific thermal resistance, Ic0 and
    Δ within their errors, from starting values that are not the truth; the isothermal fit is far worse."""
    chip = load_chip(realistic(drift=False, reversal_pinning=False, telegraph_noise=False))
    rng = np.random.default_rng(7)
    rows = []
    for d, device in enumerate(DEVICES):
        index = chip.index(device)
        for width in (1e-6, 10e-6, 100e-6):
            i50 = float(chip.logistic_view(width)[0][index])
            current = np.linspace(0.75, 1.15, 14) * i50
            r_ch = float(chip.r_ch_ohm[index])
            driven = chip.currents_for_voltage(index, torch.from_numpy(current * (r_ch + 50.0)), 50.0)
            p = chip.switching_probability(torch.full((current.size,), index), driven, width).numpy()
            rows += [(d, a, width, rng.binomial(300, q), 300) for a, q in zip(current, p, strict=True)]
    device, current, width, k, n = (np.array(c) for c in zip(*rows, strict=True))
    data = SwitchingData(device, current, width, k.astype(float), n.astype(float), np.zeros(device.size))
    laws = ChipLaws(np.array([float(chip.width_m[chip.index(d)]) for d in DEVICES]),
                    np.array([float(chip.r_ch_ohm[chip.index(d)]) for d in DEVICES]), 10e-6, 50.0,
                    chip.effects.temperature)
    starts = [fit_neel_brown(current[device == d], k[device == d], n[device == d], width[device == d])
              for d in range(len(DEVICES))]
    zero = np.zeros(len(DEVICES))
    start = HeatedFit(np.array([s.ic0_a for s in starts]), zero, np.array([s.delta for s in starts]), zero, zero, zero,
                      zero, zero, 1.0e-7, None, 1e-6)
    fit = fit_heated(data, laws, start, True, False, False, False)
    truth = chip.effects.joule_heating.specific_resistance
    assert abs(fit.r_th - truth) < Z * fit.r_th_err, (fit.r_th, fit.r_th_err)
    assert fit.r_th_err < 0.2 * truth  # resolved, not merely consistent
    for d, device in enumerate(DEVICES):
        i = chip.index(device)
        assert abs(fit.ic0_a[d] - float(chip.ic0_a[i])) < Z * fit.ic0_err_a[d], device
        assert abs(fit.delta[d] - float(chip.delta[i])) < Z * fit.delta_err[d], device
    isothermal = fit_heated(data, laws, dataclasses.replace(start, r_th=None), False, False, False, False)
    assert fit.log_likelihood - isothermal.log_likelihood > 20


def test_calibration_recovers_the_heating_the_wear_and_the_pinning(calibrated, chips):
    chip, path = calibrated
    effects = chip["calibration"]["effects"]
    truth = load_chip(chips[0]).effects
    heating = effects["joule_heating"]
    r_th = heating["specific_resistance"]
    assert abs(r_th - truth.joule_heating.specific_resistance) < Z * heating["specific_resistance_err"]
    low, high = heating["specific_resistance_interval"]
    assert low < truth.joule_heating.specific_resistance < high  # over the thermal time's interval
    assert heating["isothermal_log_likelihood"] < heating["log_likelihood"] - 20
    # 1–100 µs pulses do not pin down a 1 µs thermal lag: it is held, and the file says so
    assert heating["time_note"].startswith("not constrained by the pulse widths 1–100 µs")
    drift = effects["drift"]
    assert abs(drift["wear_mean"] - WEAR) < Z * drift["wear_mean_err"]
    assert drift["wear_mean_err"] < 0.3 * WEAR
    assert drift["ic0_walk_interval"][0] == 0.0  # no walk resolved (the truth has none)
    assert drift["delta_walk"].startswith("not fitted")
    pinning = effects["reversal_pinning"]
    low, high = pinning["probability_interval"]
    assert low < PINNING < high
    assert pinning["overdrive_scale"].startswith("not fitted")
    for device in DEVICES:
        entry = pinning["devices"][device]
        assert entry["failed"] > 10 and entry["probability_interval"][0] < PINNING < entry["probability_interval"][1]
    readout = effects["readout"]
    assert readout["telegraph_note"].startswith("fitted")
    assert readout["telegraph_noise"]["amplitude_ohm"] == pytest.approx(truth.telegraph_noise.amplitude_ohm, rel=0.15)
    assert effects["bias_field"]["sign"] == 1
    # the file loads, with the fitted effects on
    loaded = load_chip(path)
    assert loaded.effects.joule_heating.specific_resistance == pytest.approx(r_th)
    assert loaded.effects.drift.wear == pytest.approx(chip["effects"]["drift"]["wear"])
    assert loaded.effects.reversal_pinning.probability == pytest.approx(pinning["probability"])
    assert loaded.effects.bias_field.field_t > 0


def test_calibration_without_the_data_keeps_the_base_chips_effects_and_says_why(chips, tmp_path):
    sweep = protocol("bias-sweep.yaml", devices=["w3-2"], trials_per_point=100, reference=None,
                     bias={"3um": {"start": "0.8mA", "stop": "1.4mA", "points": 12}})
    out = tmp_path / "one-width.h5"
    characterize(EMULATED_STATION_FILE, [sweep], out, progress=False, chip=chips[0])
    chip = calibrate(out, base_chip=chips[1])
    base = load_chip(chips[1]).effects
    notes = chip["calibration"]["effects"]
    assert notes["joule_heating"].startswith("not fitted: the bias sweeps have one pulse width")
    assert notes["drift"].startswith("not fitted: the session has no bias sweep with reference points")
    assert notes["reversal_pinning"] == "not fitted: the session has no reset check"
    assert "not fitted" in notes["readout"]["telegraph_note"]
    loaded = load_chip(chip)
    assert loaded.effects.joule_heating == base.joule_heating
    assert loaded.effects.drift == base.drift
    assert loaded.effects.reversal_pinning == base.reversal_pinning
    assert loaded.effects.telegraph_noise == base.telegraph_noise


@pytest.mark.slow
def test_replay_agrees_with_the_calibrated_chip_and_flags_the_ideal_chips_effects(session, calibrated):
    own = replay(session, chip=calibrated[1])
    assert own["verdict"] == "agrees", (own["devices_differing"], own["effects_differing"])
    assert set(own["effects"]) == {"i50_vs_width", "drift", "reset_failures", "plateau_sag"}
    ideal = replay(session, chip=IDEAL_CHIP_FILE)
    # no heating, no wear, no pinning: I50 falls with the width as ln t_p alone, stays put, and every reset holds
    assert {"i50_vs_width", "drift", "reset_failures"} <= set(ideal["effects_differing"])
    assert ideal["effects"]["drift"]["pooled"]["p_value"] < 1e-6
    assert all(v["simulated_failed"] == 0 for v in ideal["effects"]["reset_failures"]["devices"].values())
