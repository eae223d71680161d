"""hil sweep: sweep files, points as Ray tasks streamed into one session, failures, crashes, resume, figures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from hil.cli import main
from hil.session import Session
from hil.sweeps.sweep_points import SweepPointError
from hil.sweeps.sweep_run import FAILED, OK, SweepRun
from hil.sweeps.sweep_session import run_sweep
from hil.sweeps.sweep_spec import SweepSpecError, load_sweep, parse_sweep

REPO = Path(__file__).resolve().parents[1]


def spec_of(**changes):
    raw = {"format": "hil-sweep/1", "name": "t", "experiment": "tests.sweep_experiments:quadratic",
           "axes": {"grid": {"x": [0, 1, 2, -1]}, "seeds": 2}, "metrics": ["value"], "retries": 1}
    raw.update(changes)
    return parse_sweep(raw)


def exit_code(argv):
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.fixture(scope="module")
def ray_two_workers():
    """One local Ray instance with 2 worker CPUs for the module's sweeps (a sweep joins it and leaves it up)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


def test_points_are_the_grid_times_the_random_draws_times_the_seeds():
    spec = spec_of(axes={"grid": {"x": [1, 2, 3]}, "random": {"count": 2, "seed": 5, "ranges": {"y": [1e-3, 1.0]},
                                                              "log": ["y"]}, "seeds": 2}, seed=10)
    points = spec.points()
    assert len(points) == 3 * 2 * 2 and [p["point"] for p in points] == list(range(12))
    assert {p["seed"] for p in points} == {10, 11}
    ys = sorted({p["params"]["y"] for p in points})
    assert len(ys) == 2 and all(1e-3 <= y <= 1.0 for y in ys)
    assert [p["params"] for p in spec.points()] == [p["params"] for p in points]  # the draws are seeded
    assert spec.axis_names == ["x", "y"]


@pytest.mark.parametrize("changes, message", [
    ({"format": "hil-sweep/9"}, "format"),
    ({"colour": 1}, "colour"),
    ({"axes": {"grid": {"x": [1, 1]}}}, "grid.x: a value is repeated"),
    ({"axes": {"grid": {"seed": [1, 2]}}}, "seeds"),
    ({"axes": {"random": {"count": 2, "ranges": {"y": [0, 1]}, "log": ["y"]}}}, "log-uniform range must be positive"),
    ({"axes": {"grid": {"y": [1]}, "random": {"count": 1, "ranges": {"y": [0, 1]}}}}, "both on the grid"),
    ({"metrics": []}, "metrics"),
    ({"retries": -1}, "retries"),
])
def test_a_bad_sweep_file_is_refused_naming_the_key(changes, message):
    with pytest.raises(SweepSpecError, match=message):
        spec_of(**changes)


@pytest.mark.parametrize("changes, message", [
    ({"experiment": "train", "axes": {"grid": {"colour": [1]}}, "metrics": ["accuracy"]}, "colour: not a setting"),
    ({"experiment": "train", "axes": {"grid": {"width": ["3 s"]}}, "metrics": ["accuracy"]}, "width"),
    ({"experiment": "train", "axes": {"grid": {"neurons": ["quantum"]}}, "metrics": ["accuracy"]}, "neurons"),
    ({"experiment": "train", "metrics": ["happiness"]}, "happiness"),
    ({"experiment": "nowhere.module:f"}, "cannot load"),
    ({"experiment": "transfer", "base": {"states": 3}, "axes": {"grid": {"width": [3e-6]}},
      "metrics": ["hil_accuracy"]}, "no DW synapses"),
])
def test_every_point_is_checked_before_anything_runs(tmp_path, changes, message):
    with pytest.raises((SweepSpecError, SweepPointError), match=message):
        run_sweep(spec_of(**changes), tmp_path / "never.h5")
    assert not (tmp_path / "never.h5").exists()


def test_a_sweep_on_two_workers_streams_every_point_and_records_failures(tmp_path, ray_two_workers):
    out = tmp_path / "sweep.h5"
    began = time.time()
    result = run_sweep(spec_of(), out, progress=False)
    assert result.status == "completed" and result.points == 8
    with Session(out) as session:
        run = session.runs[0]
        rows = run.table("points")
        by_axis, summary = run.analysis("by_axis"), run.analysis("summary")
    assert sorted(rows["point"]) == list(range(8))  # every point exactly once
    ok, failed = rows[rows["status"] == OK], rows[rows["status"] == FAILED]
    assert np.allclose(ok["metric_value"], ok["axis_x"] ** 2 + ok["seed"])
    assert sorted(failed["axis_x"]) == [-1, -1] and np.isnan(failed["metric_value"]).all()
    assert all(e.startswith(b"ValueError: x must not be negative") for e in failed["error"])
    # when each task ended (its worker's clock) and how long it ran; a failed point has neither
    assert ((began <= ok["finished"] - ok["seconds"]) & (ok["finished"] <= time.time())).all()
    assert np.isnan(failed["finished"]).all() and np.isnan(failed["seconds"]).all()
    assert summary == {"points": 8, "ok": 6, "failed": 2, "experiment": "tests.sweep_experiments:quadratic",
                       "axes": ["x"], "metrics": ["value"]}
    assert by_axis["x"]["values"] == [0.0, 1.0, 2.0]
    assert by_axis["x"]["value"]["mean"] == pytest.approx([0.5, 1.5, 4.5])
    assert by_axis["x"]["value"]["n"] == [2, 2, 2]


def test_a_crashed_worker_is_retried_and_one_that_always_dies_is_recorded_failed(tmp_path, ray_two_workers):
    markers = tmp_path / "markers"
    markers.mkdir()
    spec = spec_of(experiment="tests.sweep_experiments:crash_once", base={"markers": str(markers)},
                   axes={"grid": {"x": [1, 2, 3]}})
    assert run_sweep(spec, tmp_path / "retried.h5", progress=False).status == "completed"
    with Session(tmp_path / "retried.h5") as session:
        rows = session.runs[0].table("points")
    assert (rows["status"] == OK).all() and sorted(rows["metric_value"]) == [1, 2, 3]
    assert len(list(markers.iterdir())) == 3  # every point's first worker died, the retry finished it

    spec = spec_of(experiment="tests.sweep_experiments:crash_once", base={"markers": str(markers)},
                   axes={"grid": {"x": [4], "always": [True, False]}}, retries=1)
    assert run_sweep(spec, tmp_path / "failed.h5", progress=False).status == "completed"
    with Session(tmp_path / "failed.h5") as session:
        rows = session.runs[0].table("points")
    dead = rows[rows["axis_always"] == b"True"]
    assert dead["status"][0] == FAILED
    assert dead["error"][0].startswith(b"WorkerCrashedError"), dead["error"][0]
    assert rows[rows["axis_always"] == b"False"]["status"][0] == OK


def test_an_interrupted_sweep_resumes_without_redoing_finished_points(tmp_path):
    log = tmp_path / "computed.txt"
    sweep = tmp_path / "slow.yaml"
    sweep.write_text(yaml.safe_dump({
        "format": "hil-sweep/1", "name": "slow", "experiment": "tests.sweep_experiments:quadratic",
        "base": {"log": str(log), "sleep": 0.4}, "axes": {"grid": {"x": list(range(10))}}, "metrics": ["value"]}))
    out = tmp_path / "slow.h5"
    command = [sys.executable, "-m", "hil.cli", "sweep", str(sweep), "--out", str(out), "--workers", "2",
               "--progress-every", "0"]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 4):
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)  # Ctrl-C: the points in flight are cancelled, the finished ones are kept
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "--resume" in err
    with Session(out) as session:
        before = session.runs[0].table("points")
        assert session.runs[0].status == "interrupted"
    assert 0 < before.size < 10
    done_before = set(before["point"].tolist())
    result = subprocess.run([*command, "--resume"], cwd=REPO, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "10 of 10 points ok" in result.stdout
    with Session(out) as session:
        rows = session.runs[0].table("points")
    assert sorted(rows["point"].tolist()) == list(range(10))  # every point once, none lost or repeated
    computed = [float(line.split()[0]) for line in log.read_text().splitlines()]
    for point in done_before:  # a point committed before the interruption was not computed again
        assert computed.count(float(point)) == 1


def test_hil_sweep_runs_a_built_in_experiment_and_hil_report_draws_every_axis(tmp_path, capsys):
    sweep = tmp_path / "small.yaml"
    raw = yaml.safe_load((REPO / "configs" / "sweeps" / "width-bias.yaml").read_text())
    raw["base"] = {"epochs": 1, "hidden": [8], "eval_samples": 2}
    raw["axes"]["seeds"] = 1
    sweep.write_text(yaml.safe_dump(raw))
    out = tmp_path / "small.h5"
    assert main(["sweep", str(sweep), "--out", str(out), "--workers", "2", "--progress-every", "0"]) == 0
    assert "4 of 4 points ok, 0 failed" in capsys.readouterr().out
    with Session(out) as session:
        rows = session.runs[0].table("points")
    assert set(rows["axis_width"].tolist()) == {3e-6, 10e-6} and set(rows["axis_bias_error"].tolist()) == {0, 1e-4}
    # energy per inference grows with the device width (Ic0 ∝ w, R_ch ∝ 1/w)
    narrow = rows[rows["axis_width"] == 3e-6]["metric_energy_per_inference_j"].mean()
    wide = rows[rows["axis_width"] == 10e-6]["metric_energy_per_inference_j"].mean()
    assert wide > 2 * narrow
    assert main(["info", str(out)]) == 0
    assert "sweep of bias: 4 points ok, 0 failed" in capsys.readouterr().out
    figures = tmp_path / "figures"
    assert main(["report", str(out), "--out", str(figures)]) == 0
    assert {p.name for p in figures.iterdir()} >= {"sweep_width.png", "sweep_bias_error.png"}
    # the file is not replaced, nor resumed with another sweep file
    assert exit_code(["sweep", str(sweep), "--out", str(out)]) != 0
    raw["base"]["epochs"] = 2
    sweep.write_text(yaml.safe_dump(raw))
    assert exit_code(["sweep", str(sweep), "--out", str(out), "--resume"]) != 0
    assert "sweep" in capsys.readouterr().err
    assert load_sweep(REPO / "configs" / "sweeps" / "width-bias.yaml").experiment == "bias"


def test_the_margin_sweep_counts_the_reprogrammings_of_training_beside_all_programming_events():
    raw = yaml.safe_load((REPO / "configs" / "sweeps" / "dw-margin.yaml").read_text())
    assert load_sweep(REPO / "configs" / "sweeps" / "dw-margin.yaml").experiment == "synapses"
    raw["base"] = {"epochs": 3, "hidden": [16, 16]}
    raw["axes"] = {"grid": {"margin": [0, 2]}, "seeds": 1}
    run = SweepRun(parse_sweep(raw))
    rows = {float(r["axis_margin"][0]): r for r in (run.measure(u)["points"] for u in run.plan())}
    weights = 64 * 16 + 16 * 16 + 16 * 10  # every synapse programmed once before training (in situ)
    for row in rows.values():
        assert row["status"][0] == OK
        assert row["metric_program_events"][0] == row["metric_reprogrammings"][0] + weights
    # a wide margin holds devices in their states while the shadow weights move: far fewer reprogrammings
    assert rows[2.0]["metric_reprogrammings"][0] < rows[0.0]["metric_reprogrammings"][0] / 3


def test_without_ray_a_point_is_measured_in_process_with_the_same_rows():
    run = SweepRun(spec_of(axes={"grid": {"x": [3, -2]}}))
    units = run.plan()
    ok, failed = (run.measure(u)["points"] for u in units)
    assert ok["metric_value"][0] == 9 and ok["status"][0] == OK
    assert failed["status"][0] == FAILED and failed["error"][0].startswith(b"ValueError")
    assert os.environ.get("RAY_ADDRESS") is None
