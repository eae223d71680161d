"""Record and replay: calibration from sessions, replay against the simulator, transport replay, replay backend."""

import copy
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

import sim_backend.chip
import sim_backend.sot
from hil.lab.characterization import characterize
from hil.neurons.sources import replay_backend
from hil.offline.calibration import calibrate, write_chip
from hil.offline.comparison import replay
from hil.offline.transport_check import replay_transport
from hil.session import Session
from hil.training import TrainConfig, train
from instruments.config_files import IDEAL_CHIP_FILE
from instruments.transport import TransportMismatch
from sim_backend.chip import DEFAULT_CHIP_FILE, load_chip

CONFIGS = DEFAULT_CHIP_FILE.parent
STATION = CONFIGS / "station.emulated.yaml"
DATA_SESSION = CONFIGS.parent / "data" / "emulated-session.h5"
MODIFIED = {"w3-1": {"ic0": 1.8e-3, "delta": 50.0}, "w5-2": {"ic0": 2.0e-3}, "w10-3": {"delta": 30.0}}
Z = 3.3  # 99.9 % two-sided


@pytest.fixture(scope="module")
def known_chip(tmp_path_factory):
    """The embedded chip's ideal devices, three of them given explicit, non-default parameters (the textbook Néel–Brown
    calibration; the effects' calibration: tests/test_calibrate_effects.py)."""
    raw = yaml.safe_load(IDEAL_CHIP_FILE.read_text())
    for device in raw["devices"]:
        device.update(MODIFIED.get(device["id"], {}))
    path = tmp_path_factory.mktemp("chip") / "known.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def known_session(known_chip, tmp_path_factory):
    sweep = yaml.safe_load((CONFIGS / "protocols" / "bias-sweep.yaml").read_text())
    sweep.update({"devices": ["w3-1", "w5-1", "w5-2", "w10-3"], "trials_per_point": 300, "reference": None})
    sweep["bias"] = {"3um": {"start": "1.30mA", "stop": "1.62mA", "points": 16},
                     "5um": {"start": "1.30mA", "stop": "2.10mA", "points": 28},
                     "10um": {"start": "2.90mA", "stop": "3.95mA", "points": 18}}
    resistance = {"protocol": "channel_resistance", "devices": sweep["devices"]}
    out = tmp_path_factory.mktemp("known") / "known.h5"
    characterize(STATION, [resistance, sweep], out, chip=known_chip, progress=False)
    return out


def test_calibration_recovers_known_parameters(known_session, known_chip, tmp_path):
    truth = load_chip(known_chip)
    chip = calibrate(known_session, base_chip=IDEAL_CHIP_FILE)
    errors = chip["calibration"]["standard_errors"]
    fitted = {d["id"]: d for d in chip["devices"]}
    assert set(fitted) == set(truth.ids)
    for device in ("w3-1", "w5-1", "w5-2", "w10-3"):
        i, got, err = truth.index(device), fitted[device], errors[device]
        assert abs(got["ic0"] - float(truth.ic0_a[i])) < Z * err["ic0"], device
        assert abs(got["delta"] - float(truth.delta[i])) < Z * err["delta"], device
        assert abs(got["delta_r_ahe"] - float(truth.delta_r_ahe_ohm[i])) < Z * err["delta_r_ahe"] + 1e-3, device
        assert abs(got["r0"] - float(truth.r0_ohm[i])) < Z * err["r0"] + 1e-3, device
        assert got["r_ch"] == pytest.approx(float(truth.r_ch_ohm[i]), rel=1e-6)
    assert chip["material"]["read_noise"] == pytest.approx(0.02, rel=0.1)
    # the calibrated file loads as a chip, with the fitted values
    path = write_chip(chip, tmp_path / "calibrated.yaml")
    loaded = load_chip(path)
    assert float(loaded.ic0_a[loaded.index("w3-1")]) == pytest.approx(fitted["w3-1"]["ic0"])


def test_replay_agrees_with_the_calibration_and_flags_the_default_chip(known_session, tmp_path):
    calibrated = write_chip(calibrate(known_session, base_chip=IDEAL_CHIP_FILE), tmp_path / "calibrated.yaml")
    own = replay(known_session, chip=calibrated)
    assert own["verdict"] == "agrees", own["devices_differing"]
    default = replay(known_session, chip=IDEAL_CHIP_FILE)
    assert set(default["devices_differing"]) == {"w3-1", "w5-2", "w10-3"}  # w5-1 is as the default chip has it
    sweep = next(r for r in default["runs"] if r["protocol"] == "bias_sweep")
    assert sweep["devices"]["w3-1"]["points_disagreeing"] >= 5


@pytest.mark.slow  # replays the shipped session against the simulator: about 24 s
def test_replay_command_writes_figures_and_json(tmp_path):
    out = subprocess.run([sys.executable, "-m", "hil.cli", "replay", str(DATA_SESSION), "--out", str(tmp_path)],
                         capture_output=True, text=True, check=True).stdout
    assert "verdict: agrees" in out  # recorded from the default chip, replayed against it
    assert (tmp_path / "replay.json").is_file()
    # P(I) of the bias sweep and, as the README says, the loops of the hysteresis run: measured vs simulated; and the
    # effects the session shows (here the loops' plateau sag)
    assert {p.name for p in tmp_path.glob("*.png")} == {"replay_001_bias_sweep.png", "replay_002_hysteresis_loop.png",
                                                        "replay_effects.png"}


def test_transport_replay_reproduces_the_recorded_trials_exactly():
    result = replay_transport(DATA_SESSION)
    assert result["identical"]
    assert [r["protocol"] for r in result["runs"]] == ["channel_resistance", "bias_sweep", "hysteresis_loop"]
    # the trials (and the replays of those whose reset failed), and each device's measured levels
    with Session(DATA_SESSION) as session:
        replays = int((session.runs[1].table("trials")["attempt"] > 0).sum())
    assert result["runs"][1]["n_records"] == 12 * 16 * 50 + replays + 12


def test_transport_replay_stops_at_the_first_changed_command():
    with Session(DATA_SESSION) as s:
        plans = [run.parameters for run in s.runs]
    changed = copy.deepcopy(plans)
    changed[1]["pulse_width"] = "20us"  # a longer bias pulse
    with pytest.raises(TransportMismatch) as err:
        replay_transport(DATA_SESSION, changed)
    # the first command that differs: the source meter's trigger-model delay across the (longer) bias pulse, its
    # balancing lobes (4 widths on either side, through the station's DC block) and the gap, programmed before the
    # waveform is uploaded: 9 × 10 µs + 5 µs, then 9 × 20 µs + 5 µs
    assert str(err.value) == ("source_meter: command #131 differs from the recording: expected "
                              "b':TRIG:BLOC:DEL:CONS 5, 9.5e-05', sent b':TRIG:BLOC:DEL:CONS 5, 0.000185'")


def test_replay_backend_trains_from_the_shipped_session_without_physics(monkeypatch):
    backend = replay_backend(DATA_SESSION, seed=3)
    assert sorted(backend.device_ids) == sorted(load_chip().ids)

    def no_physics(*args, **kwargs):
        raise AssertionError("the replay backend must not call the simulator")

    monkeypatch.setattr(sim_backend.sot, "switching_probability", no_physics)
    monkeypatch.setattr(sim_backend.chip, "switching_probability", no_physics)
    from hil.training.datasets import load_digits

    result = train(load_digits(seed=0), backend, TrainConfig(hidden=(48,), epochs=6, eval_samples=8))
    assert result.test_accuracy > 0.8
    assert result.pulses > 0 and np.isfinite(result.energy_j)  # R_ch and the resets come from the session
    # the backend follows the measured curves: its probabilities reproduce the recorded fractions
    with Session(DATA_SESSION) as s:
        curves = next(s.runs_of("bias_sweep")).analysis("curves")
    rows = curves[curves["device"] == b"w5-3"]
    d = backend.device_ids.index("w5-3")
    p = backend.probability(torch.full((rows.size,), d), torch.from_numpy(rows["amplitude_a"].copy())).numpy()
    assert np.max(np.abs(p - rows["p"])) < 0.15


def test_calibration_uses_every_pulse_width_of_a_session(tmp_path):
    """Sweeps at two pulse widths: one joint Néel–Brown fit, and the width dependence comes out as t_p/τ."""
    base = yaml.safe_load((CONFIGS / "protocols" / "bias-sweep.yaml").read_text())
    base.update({"devices": ["w5-4"], "trials_per_point": 300, "reference": None})
    base["bias"] = {"5um": {"start": "1.45mA", "stop": "2.10mA", "points": 20}}
    short = {**base, "pulse_width": "2us"}
    out = tmp_path / "two-widths.h5"
    characterize(STATION, [base, short], out, progress=False, chip=IDEAL_CHIP_FILE)
    chip = calibrate(out, base_chip=IDEAL_CHIP_FILE)
    err = chip["calibration"]["standard_errors"]["w5-4"]
    truth = load_chip(IDEAL_CHIP_FILE)
    i = truth.index("w5-4")
    fitted = next(d for d in chip["devices"] if d["id"] == "w5-4")
    assert abs(fitted["ic0"] - float(truth.ic0_a[i])) < Z * err["ic0"]
    assert abs(fitted["delta"] - float(truth.delta[i])) < Z * err["delta"]
    assert abs(err["width_exponent"] - 1.0) < Z * err["width_exponent_err"]
