"""Instrument faults and interruptions: nothing measured is lost, the run resumes, the emulator serves."""

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import pyvisa
import yaml

from hil.characterize import characterize
from hil.session import Session
from instruments.adapters import open_connection
from instruments.drivers.keithley2450 import Keithley2450
from sim_backend.chip import DEFAULT_CHIP_FILE
from sim_backend.emulated.station import EmulatedStation
from tests.waiting import wait_for_committed_trials

CONFIGS = DEFAULT_CHIP_FILE.parent
STATION = CONFIGS / "station.emulated.yaml"


def small_sweep(tmp_path, path="fast", trials=100):
    raw = yaml.safe_load((CONFIGS / "protocols" / "bias-sweep.yaml").read_text())
    raw.update({"devices": ["w3-1", "w5-1"], "trials_per_point": trials, "batch": 50, "path": path})
    out = tmp_path / "sweep.yaml"
    out.write_text(yaml.safe_dump(raw))
    return out


def test_a_dropped_instrument_connection_loses_nothing_measured_and_the_run_resumes(tmp_path):
    protocol = small_sweep(tmp_path)
    out = tmp_path / "run.h5"
    with EmulatedStation(STATION) as emulated:
        # the source meter goes away in the middle of the sweep
        emulated.instruments["source_meter"].faults.drop_after_messages = 400
        with pytest.raises((pyvisa.VisaIOError, ConnectionError, OSError)):
            characterize(emulated.spec, [protocol], out, progress=False)
    with Session(out) as s:
        run = s.runs[0]
        assert run.status == "failed" and run.attrs["error"]
        measured = run.table("trials")
    assert 0 < measured.size < 2 * 16 * 100
    assert set(np.unique(measured["unit"], return_counts=True)[1]) == {50}  # only whole units were kept
    with EmulatedStation(STATION) as emulated:
        result = characterize(emulated.spec, [protocol], out, resume=True, progress=False)
    assert result.statuses == {"bias_sweep": "completed"}
    with Session(out) as s:
        trials = s.runs[0].table("trials")
    units, counts = np.unique(trials["unit"], return_counts=True)
    assert list(units) == list(range(2 * 16 * 2)) and set(counts) == {50}


def test_a_reply_past_the_timeout_raises_instead_of_hanging(tmp_path):
    with EmulatedStation(STATION) as emulated:
        smu = Keithley2450(open_connection(emulated.addresses["source_meter"], timeout_ms=200))
        emulated.instruments["source_meter"].faults.reply_delay_s = 0.5
        start = time.monotonic()
        with pytest.raises(pyvisa.VisaIOError):
            smu.id  # noqa: B018
        assert time.monotonic() - start < 2


def test_ctrl_c_stops_safely_and_the_run_resumes(tmp_path):
    protocol = small_sweep(tmp_path, path="naive", trials=60)
    out = tmp_path / "run.h5"
    cmd = [sys.executable, "-m", "hil.cli", "characterize", "--station", str(STATION), "--protocol", str(protocol),
           "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_committed_trials(out, 100, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted" in err and "--resume" in err
    with Session(out) as s:
        run = s.runs[0]
        assert run.status == "interrupted" and "Ctrl-C" in run.attrs["error"]
        done = run.table("trials").size
    assert done > 0
    resumed = subprocess.run([*cmd, "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    with Session(out) as s:
        assert s.runs[0].status == "completed" and s.runs[0].table("trials").size == 2 * 16 * 60


def test_hil_emulate_serves_the_station_until_interrupted():
    proc = subprocess.Popen([sys.executable, "-m", "hil.cli", "emulate", "--station", str(STATION)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while not any("switch_matrix" in line for line in lines):
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            lines.append(line)
        address = next(line.split()[-1] for line in lines if "source_meter" in line)
        assert address.startswith("TCPIP::127.0.0.1::") and address.endswith("::SOCKET")
        smu = Keithley2450(open_connection(address))
        assert "MODEL 2450" in smu.id
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "stopped" in out


def test_reset_check_reads_every_reset_back(tmp_path):
    out = tmp_path / "reset.h5"
    characterize(STATION, [CONFIGS / "protocols" / "reset-check.yaml"], out, progress=False)
    with Session(out) as s:
        run = s.runs[0]
        reset = run.analysis("reset")
        trials = run.table("trials")
    assert set(reset) == {f"w{w}-{k}" for w in (3, 5, 10) for k in range(1, 5)}
    assert all(v["n_resets"] == 200 and v["reset_success_rate"] == 1.0 for v in reset.values())
    assert trials["outcome"].sum() == 0  # a zero bias pulse never switches a device
