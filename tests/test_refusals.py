"""Nothing lost, nothing mixed: no command writes over a file unless told to, and no resume mixes two runs.

Each refusal names the file or the difference, exits non-zero without a traceback, and leaves the file as
it was.
"""

import re
import shutil
import subprocess
import sys

import pytest
import yaml

from hil import __version__
from hil.lab import provenance
from hil.lab.characterization import characterize
from hil.session import Session
from instruments.config_files import CONFIGS, EMULATED_SESSION, EMULATED_STATION_FILE, PROTOCOL_FILES
from protocols.engine import ResumeError

RESISTANCE = PROTOCOL_FILES / "channel-resistance.yaml"


def hil(*args):
    return subprocess.run([sys.executable, "-m", "hil.cli", *map(str, args)], capture_output=True, text=True)


def refused(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.fixture()
def measured(tmp_path):
    """A copy of the shipped measured session."""
    path = tmp_path / "measured.h5"
    shutil.copy(EMULATED_SESSION, path)
    return path


def unchanged(path, before):
    return path.read_bytes() == before


def test_training_onto_a_measured_session_is_refused(measured):
    before = measured.read_bytes()
    result = hil("train", "--backend", "sim", "--epochs", "1", "--hidden", "8", "--out", measured)
    refused(result, f"{measured} already exists", "--force")
    assert unchanged(measured, before)


def test_calibrate_never_writes_yaml_over_a_session_nor_over_a_chip_file(measured, tmp_path):
    before = measured.read_bytes()
    refused(hil("calibrate", measured, "--out", measured), "a chip file is YAML")
    refused(hil("calibrate", measured, "--out", measured, "--force"), "a chip file is YAML")
    assert unchanged(measured, before)
    chip = tmp_path / "chip.yaml"
    chip.write_text("name: mine\n")
    refused(hil("calibrate", measured, "--out", chip), f"{chip} already exists", "--force")
    assert chip.read_text() == "name: mine\n"
    assert hil("calibrate", measured, "--out", chip, "--force").returncode == 0
    assert "calibrated from measured.h5" in chip.read_text()


def test_characterize_report_replay_and_demo_do_not_write_over_files(measured, tmp_path):
    before = measured.read_bytes()
    refused(hil("characterize", "--station", EMULATED_STATION_FILE, "--protocol", RESISTANCE, "--out", measured),
            f"{measured} already exists: pass --resume to continue it, --force to replace it")
    assert unchanged(measured, before)
    report = tmp_path / "report"
    assert hil("report", measured, "--out", report).returncode == 0
    figure = (report / "switching_curves.png").read_bytes()
    refused(hil("report", measured, "--out", report), "switching_curves.png", "already exist", "--force")
    assert (report / "switching_curves.png").read_bytes() == figure
    assert hil("report", measured, "--out", report, "--force").returncode == 0
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "training.h5").write_bytes(b"mine")
    refused(hil("demo", "--out", tmp_path / "demo"), "training.h5 already exists")
    assert (tmp_path / "demo" / "training.h5").read_bytes() == b"mine"


@pytest.fixture()
def emulated_run(tmp_path):
    """An interrupted-looking emulated characterization with chip seed 5."""
    out = tmp_path / "run.h5"
    characterize(EMULATED_STATION_FILE, [RESISTANCE], out, seed=5, progress=False)
    return out


@pytest.mark.parametrize(("change", "message"), [
    ({"seed": 6}, r"cannot resume with a different chip \(chip.seed: 5 in the file, 6 now\)"),
    ({"chip": CONFIGS / "chip.varied.yaml"}, r"cannot resume with a different chip \(chip.digest: "),
])
def test_a_resume_on_another_chip_or_seed_is_refused(emulated_run, change, message):
    with pytest.raises(ResumeError, match=message):
        characterize(EMULATED_STATION_FILE, [RESISTANCE], emulated_run, resume=True, progress=False,
                     **{"seed": 5, **change})
    with Session(emulated_run) as s:
        assert s.attrs["attempts"] == 1  # refused before anything was started


def test_a_resume_on_another_station_or_software_version_is_refused(emulated_run, tmp_path, monkeypatch):
    raw = yaml.safe_load(EMULATED_STATION_FILE.read_text())
    raw["safety"]["max_current"]["3um"] = "2.5mA"
    raw["chip"] = str(CONFIGS / raw["chip"])
    station = tmp_path / "station.yaml"
    station.write_text(yaml.safe_dump(raw))
    with pytest.raises(ResumeError, match=r"different station \(station.safety.max_current.3um: '3mA' in the file, "
                                          r"'2.5mA' now\)"):
        characterize(station, [RESISTANCE], emulated_run, resume=True, seed=5, progress=False)
    monkeypatch.setattr(provenance, "__version__", "9.9.9")
    with pytest.raises(ResumeError, match=rf"different software version \(software_version: '{re.escape(__version__)}' "
                                          r"in the file, '9.9.9' now\)"):
        characterize(EMULATED_STATION_FILE, [RESISTANCE], emulated_run, resume=True, seed=5, progress=False)


def test_the_cli_names_a_refused_resume_in_one_line_and_leaves_the_file_untouched(emulated_run):
    before = emulated_run.stat().st_mtime_ns, emulated_run.read_bytes()
    result = hil("characterize", "--station", EMULATED_STATION_FILE, "--protocol", RESISTANCE, "--out",
                 emulated_run, "--resume", "--seed", "7")
    refused(result, "cannot resume with a different chip (chip.seed: 5 in the file, 7 now)")
    assert result.stderr.count("\n") == 1 and "continue with" not in result.stderr
    assert (emulated_run.stat().st_mtime_ns, emulated_run.read_bytes()) == before
    debug = hil("--debug", "characterize", "--station", EMULATED_STATION_FILE, "--protocol", RESISTANCE, "--out",
                emulated_run, "--resume", "--seed", "7")
    assert debug.returncode == 2 and "Traceback" in debug.stderr
