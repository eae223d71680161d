"""The training commands as a user runs them: hil train (sim, replay), hil info, hil experiment --json."""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hil.session import Session
from instruments.config_files import CONFIGS
from tests.waiting import wait_for_committed_units

DATA_SESSION = Path(__file__).resolve().parents[1] / "data" / "emulated-session.h5"


def hil(*args):
    return subprocess.run([sys.executable, "-m", "hil.cli", *map(str, args)], capture_output=True, text=True,
                          check=True).stdout


@pytest.mark.parametrize("backend", ["sim", "replay"])
def test_train_writes_a_session_that_info_reports(tmp_path, backend):
    out = tmp_path / f"{backend}.h5"
    extra = ["--session", DATA_SESSION] if backend == "replay" else []
    printed = hil("train", "--backend", backend, *extra, "--epochs", "4", "--hidden", "48", "--baselines",
                  "--out", out)
    assert "test accuracy" in printed
    training = json.loads(hil("info", out, "--json"))["training"]
    assert training["backend"] == backend and training["dataset"] == "digits"
    assert training["test_accuracy"] > 0.7
    assert training["deterministic_accuracy"] > 0.7 and training["stochastic_accuracy"] > 0.7
    assert training["seeds"] == {"init": 0, "shuffle": 1, "sampling": 2}
    source = training["source"]
    assert source == ({"session": str(DATA_SESSION)} if backend == "replay" else {"chip": "configs/chip.default.yaml"})


def test_experiment_bias_prints_its_table_as_json(tmp_path):
    rows = json.loads(hil("experiment", "bias", "--json", "--epochs", "3", "--hidden", "32", "--out", tmp_path))
    widths = sorted({row["width_m"] for row in rows})
    assert widths == pytest.approx([3e-6, 5e-6, 10e-6])
    assert {"width_m", "bias_error_a", "accuracy"} <= set(rows[0])
    assert (tmp_path / "bias.png").read_bytes()[:4] == b"\x89PNG"
    worst = {w: min(r["accuracy"] for r in rows if r["width_m"] == w) for w in widths}
    assert worst[widths[0]] < worst[widths[-1]]  # the narrow devices lose more to the same bias error


def test_training_killed_mid_run_resumes_to_the_same_metrics_as_an_uninterrupted_run(tmp_path):
    """SIGKILL loses at most the steps since the last checkpoint; the resumed run ends exactly where an
    uninterrupted one does (sim backend, same seed)."""
    args = ["train", "--backend", "sim", "--epochs", "5", "--hidden", "32", "--eval-samples", "4",
            "--checkpoint-every", "6", "--baselines"]
    reference = tmp_path / "reference.h5"
    hil(*args, "--out", reference)
    killed = tmp_path / "killed.h5"
    cmd = [sys.executable, "-m", "hil.cli", *map(str, args), "--out", str(killed)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_committed_units(killed, 7, proc)  # into the second epoch of the first run
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with Session(killed) as s:
        assert s.runs[0].status == "running" and s.runs[0].table("epochs").size < 5
    hil(*args, "--out", killed, "--resume")
    with Session(reference) as a, Session(killed) as b:
        assert [r.status for r in b.runs] == ["completed"] * 3 and b.attrs["attempts"] == 2
        for run_a, run_b in zip(a.runs, b.runs, strict=True):
            epochs_a, epochs_b = run_a.table("epochs"), run_b.table("epochs")
            for field in ("epoch", "loss", "train_accuracy", "test_accuracy", "pulses", "energy_j"):
                assert np.array_equal(epochs_a[field], epochs_b[field], equal_nan=True), (run_a.name, field)


def test_a_training_resume_with_another_seed_or_backend_source_is_refused(tmp_path):
    out = tmp_path / "t.h5"
    hil("train", "--backend", "sim", "--epochs", "1", "--hidden", "16", "--out", out)
    other_seed = subprocess.run([sys.executable, "-m", "hil.cli", "train", "--backend", "sim", "--epochs", "1",
                                 "--hidden", "16", "--seed", "3", "--out", str(out), "--resume"],
                                capture_output=True, text=True)
    assert other_seed.returncode == 2 and "Traceback" not in other_seed.stderr
    assert "cannot resume with a different" in other_seed.stderr and "seed: 0 in the file, 3 now" in other_seed.stderr
    other_chip = subprocess.run([sys.executable, "-m", "hil.cli", "train", "--backend", "sim", "--epochs", "1",
                                 "--hidden", "16", "--chip", str(CONFIGS / "chip.varied.yaml"), "--out", str(out),
                                 "--resume"], capture_output=True, text=True)
    assert other_chip.returncode == 2 and "different source (source.chip." in other_chip.stderr


def test_experiment_transfer_prints_the_four_arm_table_with_intervals(tmp_path):
    """Two seeds of a small network on the drifting, heating varied chip: every arm and condition is a row with its
    95 % interval over the seeds; only what the physics forces is asserted of their order."""
    rows = json.loads(hil("experiment", "transfer", "--json", "--epochs", "3", "--hidden", "16", "--seeds", "2",
                          "--eval-samples", "4", "--progress-every", "0", "--out", tmp_path))
    assert (tmp_path / "transfer.png").read_bytes()[:4] == b"\x89PNG"
    by = {(row["arm"], row["condition"]): row for row in rows}
    arms = [row["arm"] for row in rows if row["group"] == "arm"]
    assert arms == ["software, nominal mapping", "software, one-time calibration", "hardware-in-loop, pulse mode",
                    "hardware-in-loop, curve mode"]
    for row in rows:
        assert row["seeds"] == 2 and len(row["accuracies"]) == 2
        assert row["accuracy_low"] <= row["accuracy"] <= row["accuracy_high"]
    software = by[("software, ideal stochastic sigmoid", "no devices")]
    nominal = by[("software, nominal mapping", "deployed at T")]
    calibrated = by[("software, one-time calibration", "calibrated at 0, deployed at T")]
    pulse = by[("hardware-in-loop, pulse mode", "at the end of its run (T)")]
    curve = by[("hardware-in-loop, curve mode", "at the end of its run")]
    # twice the embedded chip's spread: one bias per width misses most devices' switching ranges
    assert nominal["accuracy"] < software["accuracy"] - 0.15
    assert nominal["accuracy"] < min(calibrated["accuracy"], pulse["accuracy"]) - 0.1
    # without drift time changes nothing: the calibration made a week ago is as good as new
    still = by[("software, one-time calibration, no drift", "deployed a week after calibration")]
    fresh = by[("software, one-time calibration", "deployed right after calibration")]
    assert still["accuracies"] == pytest.approx(fresh["accuracies"], abs=1 / 450 + 1e-9)  # one test image
    # only the devices' trials count, and curve mode plays far fewer of them
    assert nominal["trials"] == 0 and 0 < calibrated["trials"] < curve["trials"] < pulse["trials"]
    assert pulse["instrument_hours"] == pytest.approx(pulse["trials"] * 1.4e-3 / 3600)


def test_train_on_the_emulated_station_prints_the_instrument_time_before_it_starts(tmp_path):
    """A tiny pulse-mode run: the estimate is printed before training and matches the trials the station played."""
    out = tmp_path / "hw.h5"
    done = subprocess.run([sys.executable, "-m", "hil.cli", "train", "--backend", "hardware", "--station",
                           str(CONFIGS / "station.emulated.yaml"), "--epochs", "1", "--hidden", "4", "--eval-samples",
                           "1", "--progress-every", "0", "--out", str(out)], capture_output=True, text=True, check=True)
    estimate = re.search(r"estimated instrument time \(pulse mode\): ([\d.]+) s \(([\d,]+) trials × (\d+) µs: "
                         r"training ([\d,]+), evaluation ([\d,]+), curve measurements ([\d,]+)\)", done.stderr)
    assert estimate is not None, done.stderr
    planned, training, evaluation = (int(estimate.group(k).replace(",", "")) for k in (2, 4, 5))
    assert training == 1347 * 4 and evaluation == 450 * 4
    played = re.search(r"instrument time: [\d.]+ \w+ \(([\d,]+) trials played on the devices\)", done.stdout)
    assert played is not None, done.stdout
    # trials the station adds on its own (a trial played again after its reset failed) come on top of the plan
    assert planned <= int(played.group(1).replace(",", "")) <= 1.01 * planned
