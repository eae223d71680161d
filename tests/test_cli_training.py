"""The training commands as a user runs them: hil train (sim, replay), hil info, hil experiment --json."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
