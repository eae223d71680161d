"""Characterization on the emulated station: fits, physical trends, sessions, crash and resume, reports.

The shipped station's chip has the non-idealities on (heating, drift, telegraph noise, pinning): the fits are judged
against each device's curve as the chip has it. The crash-and-resume tests count every trial exactly, so they run
on the ideal chip, whose resets never fail (no replays) — the machinery is the same.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from scipy import special, stats

from hil.lab.characterization import characterize
from hil.offline.figures import write_report
from hil.offline.summary import session_info
from hil.session import Session
from instruments.config_files import IDEAL_CHIP_FILE
from protocols.engine import ResumeError
from protocols.fits import fit_logistic
from sim_backend import load_chip
from sim_backend.chip import DEFAULT_CHIP_FILE
from sim_backend.sot import exact_i50
from tests.waiting import wait_for_committed_units

CONFIGS = DEFAULT_CHIP_FILE.parent
STATION = CONFIGS / "station.emulated.yaml"
PROTOCOLS = [CONFIGS / "protocols" / name for name in ("channel-resistance.yaml", "bias-sweep.yaml",
                                                        "hysteresis-loop.yaml")]
Z_999 = stats.norm.ppf(0.9995)  # two-sided 99.9 % interval


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    out = tmp_path_factory.mktemp("char") / "run.h5"
    result = characterize(STATION, PROTOCOLS, out, progress=False)
    assert set(result.statuses.values()) == {"completed"}
    return out


@pytest.fixture(scope="module")
def chip():
    return load_chip()  # the emulated station's chip: same file, same seed


def curves_of(path):
    with Session(path) as s:
        (run,) = list(s.runs_of("bias_sweep"))
        return run.analysis("curves"), run.analysis("fits"), run.table("trials")


def test_session_holds_every_trial_and_what_produced_it(session):
    with Session(session) as s:
        assert s.attrs["emulated"] is True and "emulated probe station" in s.attrs["notes"]
        assert s.attrs["station"]["name"] == "emulated-probe-station"
        assert "MODEL 2450" in s.attrs["instruments_idn"]["source_meter"]
        assert [r.protocol for r in s.runs] == ["channel_resistance", "bias_sweep", "hysteresis_loop"]
        sweep = s.runs[1]
        params = yaml.safe_load((CONFIGS / "protocols" / "bias-sweep.yaml").read_text())
        assert sweep.parameters["trials_per_point"] == params["trials_per_point"] and sweep.parameters["seed"] == 1
        trials, levels = sweep.table("trials"), sweep.table("read_levels")
        # every planned trial (16 points × 200, and 3 reference points × 100, per device) once, then the replays of
        # the few whose reset failed (or read as failed), each of a trial flagged reset_ok = 0
        first = trials[trials["attempt"] == 0]
        assert first.size == 12 * (16 * 200 + 3 * 100) == sweep.attrs["n_planned_trials"]
        assert (trials["attempt"] > 0).sum() == (trials["reset_ok"] == 0).sum() - (trials["reset_ok"][
            trials["attempt"] == 2] == 0).sum()
        assert 0 < (trials["reset_ok"] == 0).mean() < 0.01
        assert set(trials.dtype.names) >= {"device", "amplitude_a", "width_s", "outcome", "reading_ohm", "time_s"}
        assert np.all(trials["width_s"] == pytest.approx(10e-6))
        # switched trials read above their device's measured threshold, the others below it
        threshold = dict(zip(levels["device"], levels["threshold_ohm"], strict=True))
        above = trials["reading_ohm"] > np.array([threshold[d] for d in trials["device"]])
        valid = trials["reset_ok"] == 1
        assert np.array_equal(trials["outcome"][valid] == 1, above[valid])
        assert s.runs[0].table("resistance").size == 12


def test_fits_recover_the_simulators_true_parameters(session, chip):
    """Logistic fits recover the logistic closest to each device's true curve (with its heating, field and pinning)
    over the same sweep — the large-sample target of the fit — within 99.9 % intervals; the Néel–Brown fit puts the
    median where the device has it. (On the ideal chip the Néel–Brown fit recovers Ic0 and Δ themselves:
    tests/test_record_replay.py.)"""
    curves, fits, _ = curves_of(session)
    for device in chip.ids:
        i = chip.index(device)
        nb = fits[device]["neel_brown"]
        rows = curves[curves["device"] == device.encode()]
        # the current the station drives: the generator's part (all but the read current the source meter adds)
        # is a voltage set from the cold channel resistance, and the pulse warms the channel (less current)
        requested = torch.from_numpy(rows["amplitude_a"].copy())
        read_a = 100e-6
        driven = read_a + chip.currents_for_voltage(i, (requested - read_a) * (float(chip.r_ch_ohm[i]) + 50.0), 50.0)
        p_true = chip.switching_probability(torch.full((rows.size,), i), driven, 10e-6).numpy()
        huge = 10**7  # expected counts of a very long run: where the logistic fit converges to
        target = fit_logistic(rows["amplitude_a"], p_true * huge, np.full(rows.size, huge))
        logistic = fits[device]["logistic"]
        assert abs(logistic["i50_a"] - target.i50_a) < Z_999 * logistic["i50_err_a"], device
        assert abs(logistic["w_a"] - target.w_a) < Z_999 * logistic["w_err_a"], device
        # and the median of the device's curve (in the currents the station was asked for) lies near where the
        # fitted Néel–Brown curve puts it (the form has no pinning plateau below 1, which pulls its fit a little)
        median = float(exact_i50(torch.tensor(nb["ic0_a"]), torch.tensor(nb["delta"]), 10e-6))
        assert median == pytest.approx(target.i50_a, rel=0.03)


def test_measured_trends_narrower_is_lower_steeper_and_narrower_loop(session):
    info = session_info(session)
    by_width = {}
    for device in info["devices"]:
        entry = by_width.setdefault(round(device["width_m"] * 1e6), {"i50": [], "w": [], "loop": []})
        entry["i50"].append(device["fits"]["logistic"]["i50_a"])
        entry["w"].append(device["fits"]["logistic"]["w_a"])
        entry["loop"].append(device["loop_width_a"])
    means = {w: {k: np.mean(v) for k, v in entry.items()} for w, entry in by_width.items()}
    for key in ("i50", "w", "loop"):
        assert means[3][key] < means[5][key] < means[10][key], key
    # every 3 um device switches below every 10 um device
    assert max(by_width[3]["i50"]) < min(by_width[10]["i50"])


def test_info_json_reports_format_runs_devices_fits_and_loops(session):
    out = subprocess.run([sys.executable, "-m", "hil.cli", "info", str(session), "--json"], capture_output=True,
                         text=True, check=True).stdout
    info = json.loads(out)
    assert info["format_version"] == 2
    assert [(r["protocol"], r["status"]) for r in info["runs"]] == [
        ("channel_resistance", "completed"), ("bias_sweep", "completed"), ("hysteresis_loop", "completed")]
    assert info["runs"][1]["n_trials"] == 12 * (16 * 200 + 3 * 100)  # the planned trials, reference points included
    device = next(d for d in info["devices"] if d["id"] == "w5-3")
    assert device["width_m"] == pytest.approx(5e-6)
    logistic = device["fits"]["logistic"]
    assert 1.4e-3 < logistic["i50_a"] < 2.2e-3 and 0 < logistic["i50_err_a"] < 1e-4
    assert 10e-6 < logistic["w_a"] < 100e-6 and logistic["w_err_a"] > 0
    assert 0.5e-3 < device["loop_width_a"] < 3e-3


def test_report_writes_figures_and_summary(session, tmp_path):
    files = write_report(session, tmp_path)
    names = {f.name for f in files}
    assert names == {"switching_curves.png", "hysteresis_loops.png", "size_trends.png", "channel_resistance.png",
                     "summary.txt"}
    for f in files:
        assert f.stat().st_size > 1000
        if f.suffix == ".png":
            assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "w10-4" in (tmp_path / "summary.txt").read_text()


def _resume_protocol(tmp_path):
    raw = yaml.safe_load((CONFIGS / "protocols" / "bias-sweep.yaml").read_text())
    raw.update({"devices": ["w3-1", "w5-1", "w10-1"], "trials_per_point": 40, "batch": 10, "path": "naive"})
    raw.pop("reference")
    raw["bias"] = {"3um": {"start": "1.0mA", "stop": "1.25mA", "points": 8},
                   "5um": {"start": "1.6mA", "stop": "2.05mA", "points": 8},
                   "10um": {"start": "3.4mA", "stop": "4.1mA", "points": 8}}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.slow  # about 45 s of repeated kills and resumes: run by CI's slow step (pytest -m slow)
def test_sigkill_mid_sweep_then_resume_keeps_every_trial_exactly_once(tmp_path):
    protocol = _resume_protocol(tmp_path)
    out = tmp_path / "killed.h5"
    cmd = [sys.executable, "-m", "hil.cli", "characterize", "--station", str(STATION), "--protocol", str(protocol),
           "--out", str(out), "--chip", str(IDEAL_CHIP_FILE)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # wait until some units are on disk, then kill without warning
    wait_for_committed_units(out, 20, proc)  # 20 units of 10 trials
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with Session(out) as s:
        killed = s.runs[0].table("trials")
        assert s.runs[0].status == "running"  # it never got to say otherwise
    assert 200 <= killed.size < 960

    resumed = subprocess.run([*cmd, "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    with Session(out) as s:
        run = s.runs[0]
        assert run.status == "completed" and len(s.runs) == 1 and s.attrs["attempts"] == 2
        trials = run.table("trials")
    # every unit of the plan exactly once, with its 10 trials; the units measured before the kill kept as they were
    units, counts = np.unique(trials["unit"], return_counts=True)
    assert list(units) == list(range(3 * 8 * 4)) and set(counts) == {10}
    before = np.isin(trials["unit"], np.unique(killed["unit"]))
    assert np.array_equal(trials[before], killed)

    # the counts agree in distribution with an uninterrupted run of the same protocol
    fresh = tmp_path / "fresh.h5"
    characterize(STATION, [protocol], fresh, progress=False, chip=IDEAL_CHIP_FILE)
    with Session(fresh) as s:
        reference = s.runs[0].table("trials")
    for device in (b"w3-1", b"w5-1", b"w10-1"):
        a, b = trials[trials["device"] == device], reference[reference["device"] == device]
        table = [[a["outcome"].sum(), a.size - a["outcome"].sum()], [b["outcome"].sum(), b.size - b["outcome"].sum()]]
        assert stats.chi2_contingency(table).pvalue > 1e-3, device


def test_resume_skips_completed_runs_and_refuses_a_changed_protocol(tmp_path):
    protocol = _resume_protocol(tmp_path)
    raw = yaml.safe_load(protocol.read_text())
    raw.update({"devices": ["w3-1"], "path": "fast"})
    small = tmp_path / "small.yaml"
    small.write_text(yaml.safe_dump(raw))
    out = tmp_path / "s.h5"
    characterize(STATION, [small], out, progress=False, chip=IDEAL_CHIP_FILE)
    # a completed run is not measured again
    assert characterize(STATION, [small], out, resume=True, progress=False,
                        chip=IDEAL_CHIP_FILE).statuses == {"bias_sweep": "completed"}
    with Session(out) as s:
        assert len(s.runs) == 1 and s.runs[0].table("trials").size == 320
    with h5py.File(out, "a") as f:  # as if Ctrl-C had stopped it
        f["runs/000"].attrs["status"] = "interrupted"
    raw["trials_per_point"] = 60
    small.write_text(yaml.safe_dump(raw))
    with pytest.raises(ResumeError, match=r"parameters differ from the run being resumed \(trials_per_point: 40 in "
                                          r"the file, 60 now\)"):
        characterize(STATION, [small], out, resume=True, progress=False, chip=IDEAL_CHIP_FILE)


def test_unreadable_session_files_get_a_clear_error(tmp_path, session):
    truncated = tmp_path / "truncated.h5"
    data = Path(session).read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    result = subprocess.run([sys.executable, "-m", "hil.cli", "info", str(truncated)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "truncated" in result.stderr and "Traceback" not in result.stderr


def test_logistic_view_of_the_protocol_ranges_spans_the_curves(session):
    """The shipped protocol's ranges cover P ≈ 0 → 1 for every device (physics.md asks for it)."""
    curves, fits, _ = curves_of(session)
    for device in np.unique(curves["device"]):
        rows = curves[curves["device"] == device]
        assert rows["p"].min() < 0.05 and rows["p"].max() > 0.95, device
        logistic = fits[device.decode()]["logistic"]
        model = special.expit((rows["amplitude_a"] - logistic["i50_a"]) / logistic["w_a"])
        assert np.max(np.abs(model - rows["p"])) < 0.2
