"""The protocols on devices that behave like fabricated ones, measured on the emulated station over TCP.

Each test characterizes the realistic chip (``configs/chip.default.yaml``), with one effect made strong enough to
see in a short run where needed, and checks the trend in the recorded data: heated loops have curved plateaus and
I50 falls with pulse width faster than ln t_p alone; the field's sign reverses the polarity (the levels
measurement says so); wear moves I50 and the reference points catch it; resets fail at the pinning model's rate,
are flagged and replayed; read errors fall with repeated reads; every reading is kept.
"""

import copy
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from hil.lab.characterization import characterize
from hil.session import Session
from instruments.config_files import EMULATED_STATION_FILE, IDEAL_CHIP_FILE, PROTOCOL_FILES
from protocols.device_trial import LevelsError
from protocols.fits import fit_logistic
from sim_backend.chip import DEFAULT_CHIP_FILE, load_chip

REALISTIC = DEFAULT_CHIP_FILE


def chip_file(tmp_path, read_noise=None, **effects):
    """The realistic chip with ``effects`` sections replaced, written to ``tmp_path``."""
    raw = yaml.safe_load(REALISTIC.read_text())
    for name, value in effects.items():
        raw["effects"][name] = copy.deepcopy(value)
    if read_noise is not None:
        raw["material"]["read_noise"] = read_noise
    path = tmp_path / "chip.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def protocol(name, **changes):
    raw = yaml.safe_load((PROTOCOL_FILES / name).read_text())
    raw.update(changes)
    return raw


def run(tmp_path, chip, *protocols, out="run.h5"):
    characterize(EMULATED_STATION_FILE, list(protocols), tmp_path / out, progress=False, chip=chip)
    with Session(tmp_path / out) as session:
        return [(r.protocol, r.tables(), r.analyses()) for r in session.runs]


def i50_of(curves, device):
    rows = curves[curves["device"] == device.encode()]
    return fit_logistic(rows["amplitude_a"], rows["n_switched"], rows["n_trials"]).i50_a


def test_resets_fail_at_the_pinning_rate_are_flagged_and_the_bias_sweep_replays_them(tmp_path):
    chip = chip_file(tmp_path, reversal_pinning={"probability": 0.2, "overdrive_scale": 0.3, "spread": 0.0})
    (_, check, results), (_, sweep, _) = run(
        tmp_path, chip, protocol("reset-check.yaml", devices=["w3-1", "w10-1"], repeats=1500),
        protocol("bias-sweep.yaml", devices=["w3-1"], trials_per_point=100, bias={"3um": {
            "start": "0.85mA", "stop": "1.40mA", "points": 6}}))
    emulated = load_chip(chip)
    for device in ("w3-1", "w10-1"):
        trials = check["trials"][check["trials"]["device"] == device.encode()]
        failed = int((trials["reset_ok"] == 0).sum())
        # the chip's own chance that its reset (100 µs at the protocol's current, heated) leaves it switched
        reset_a = {"w3-1": 1.95e-3, "w10-1": 6.5e-3}[device]
        p_fail = 1.0 - float(emulated.switching_probability(torch.tensor([emulated.index(device)]),
                                                            torch.tensor([reset_a], dtype=torch.float64), 100e-6))
        # a reset can fail only where the trial before left the device switched
        tried = int(trials["outcome"][:-1].sum())
        expected, spread = tried * p_fail, np.sqrt(tried * p_fail * (1 - p_fail))
        assert abs(failed - expected) < 4 * spread + 1, (device, failed, expected)
        assert results["reset"][device]["reset_success_rate"] == pytest.approx(1 - failed / 1500)
    assert (check["trials"]["attempt"] == 0).all()  # a reset check counts failed resets, it does not replay them
    assert check["trials"]["outcome"].mean() > 0.7  # its strong pulse the other way switches the device back
    trials = sweep["trials"]
    replayed = trials[trials["attempt"] > 0]
    assert replayed.size > 0
    # every replay is of a trial whose reset failed, and each point ends with its planned valid trials
    for row in replayed:
        earlier = trials[(trials["unit"] == row["unit"]) & (trials["trial"] == row["trial"])
                         & (trials["attempt"] == row["attempt"] - 1)]
        assert earlier.size == 1 and earlier["reset_ok"][0] == 0
    final = trials[np.lexsort((trials["attempt"], trials["trial"], trials["unit"]))]
    _, last = np.unique(final[["unit", "trial"]], return_index=True)
    last = np.r_[last[1:] - 1, final.size - 1]
    assert (final["reset_ok"][last] == 1).mean() > 0.99


def test_outcomes_are_read_against_each_devices_measured_levels(tmp_path):
    chip = chip_file(tmp_path)
    ((_, tables, _),) = run(tmp_path, chip, protocol("reset-check.yaml", devices=["w3-1", "w5-2"], repeats=50))
    emulated = load_chip(chip)
    levels = tables["read_levels"]
    assert sorted(levels["device"]) == [b"w3-1", b"w5-2"]
    for row in levels:
        i = emulated.index(row["device"].decode())
        r0, half = float(emulated.r0_ohm[i]), 0.5 * float(emulated.delta_r_ahe_ohm[i])
        assert row["low_ohm"] == pytest.approx(r0 - half, abs=0.15)
        assert row["high_ohm"] == pytest.approx(r0 + half, abs=0.15)
        assert row["threshold_ohm"] == pytest.approx(0.5 * (row["low_ohm"] + row["high_ohm"]))


def test_the_field_sign_reverses_the_polarity_and_the_levels_measurement_says_so(tmp_path):
    chip = chip_file(tmp_path, bias_field={"field": "-10 mT"})
    with pytest.raises(LevelsError, match="moved its Hall reading by -.*Check the bias field's sign"):
        characterize(EMULATED_STATION_FILE, [protocol("reset-check.yaml", devices=["w3-1"], repeats=10)],
                     tmp_path / "run.h5", progress=False, chip=chip)


def test_heated_loops_have_curved_plateaus(tmp_path):
    chip = chip_file(tmp_path, read_noise=0.02, telegraph_noise=False)
    ((_, tables, _),) = run(tmp_path, chip, protocol("hysteresis-loop.yaml", devices=["w3-1"]))
    steps = tables["steps"]
    current, reading = steps["current_a"], steps["reading_ohm"]
    up = (reading > np.median(reading)) & np.isfinite(reading)
    large, small = up & (np.abs(current) > 0.8 * np.abs(current).max()), up & (np.abs(current) < 0.2e-3)
    assert large.any() and small.any()
    # ΔR_AHE follows M_s(T): the up plateau sags where the loop's own current heats the bar
    assert reading[large].mean() < reading[small].mean() - 0.05


def test_i50_falls_with_pulse_width_faster_than_the_log_law_on_a_heated_chip(tmp_path):
    chip = chip_file(tmp_path, drift=False, reversal_pinning=False)
    bias = {"3um": {"start": "0.75mA", "stop": "1.50mA", "points": 16}}
    runs = run(tmp_path, chip, *[protocol("bias-sweep.yaml", devices=["w3-1"], trials_per_point=150,
                                          pulse_width=width, bias=bias) for width in ("1us", "10us", "100us")])
    i50 = [i50_of(results["curves"], "w3-1") for _, _, results in runs]
    ideal = load_chip(IDEAL_CHIP_FILE)
    drop_ideal = float(ideal.logistic_view(1e-6)[0][0] - ideal.logistic_view(10e-6)[0][0])
    # the first decade (the bar still warming through the first µs) drops more than the second, and more than
    # ln t_p alone gives an unheated bar
    assert i50[0] - i50[1] > 1.2 * (i50[1] - i50[2])
    assert i50[0] - i50[1] > 1.15 * drop_ideal


def test_wear_moves_i50_and_the_reference_points_catch_it(tmp_path):
    chip = chip_file(tmp_path, drift={"ic0_walk": 0, "delta_walk": 0, "wear": 30.0, "wear_spread": 0,
                                      "ambient_sigma": "0 K", "interval": "1 s"})
    sweep = protocol("bias-sweep.yaml", devices=["w3-1"], trials_per_point=100, batch=50,
                     bias={"3um": {"start": "0.85mA", "stop": "1.40mA", "points": 8}},
                     reference={"every": 4, "trials": 300, "current": {"3um": "0.95mA"}})
    ((_, tables, results),) = run(tmp_path, chip, sweep)
    points = tables["reference_points"]
    assert points.size == 5 and np.all(np.diff(points["station_time_s"]) > 0)
    drift = results["drift"]["w3-1"]
    # wear lowers Ic0: the same reference current switches more and more often, I50 falls
    assert points["n_switched"][-1] / points["n_trials"][-1] > points["n_switched"][0] / points["n_trials"][0]
    assert drift["ci_high"] < 0
    shown = subprocess.run([sys.executable, "-m", "hil.cli", "info", str(tmp_path / "run.h5")],
                           capture_output=True, text=True, check=True).stdout
    assert "drift from the reference points" in shown
    assert f"w3-1       {drift['i50_drift_a_per_hour'] * 1e6:+.2f} µA/h" in shown


def test_read_errors_fall_with_repeated_reads_and_every_reading_is_kept(tmp_path):
    chip = chip_file(tmp_path, read_noise=0.45, reversal_pinning=False, drift=False)
    runs = run(tmp_path, chip, *[protocol("reset-check.yaml", devices=["w3-2"], repeats=4000, reads=reads,
                                          thresholds="measured") for reads in (1, 5)])
    misread = [float((tables["trials"]["reset_ok"] == 0).mean()) for _, tables, _ in runs]
    # without pinning a reset never fails: every reset that reads as failed is a read error
    assert misread[0] > 2e-3 and misread[1] < misread[0] / 3
    tables = runs[1][1]
    readings = tables["trial_readings"]
    assert readings.size == 4000 * 2 * 5
    first = readings[(readings["trial"] == 7) & (readings["window"] == 0)]["reading_ohm"]
    assert np.median(first) == tables["trials"][tables["trials"]["trial"] == 7]["reset_reading_ohm"][0]
