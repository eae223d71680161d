"""What a new user sees on a mistake: one line naming the option and what to do, exit code 2, no traceback;
warnings for implausible training values; help that answers without importing torch; and an emulator on
fixed ports that a station file can point at."""

import signal
import socket
import subprocess
import sys

import pytest
import yaml

from hil.cli import COMMANDS, main
from hil.training.config import TrainConfig
from instruments.config_files import EMULATED_STATION_FILE
from instruments.station import Station
from instruments.station_config import load_station_spec
from sim_backend.emulated.probe_station import station_ports


def one_line_error(capsys, argv):
    """Run ``hil argv`` in-process; the one stderr line of its refusal (exit code 2 asserted)."""
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's refusals
        code = exit_.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert "Traceback" not in "\n".join(err)
    return err[-1]


def test_an_unavailable_torch_device_is_one_line_naming_the_option(capsys, tmp_path):
    import torch

    device = "cuda" if not torch.cuda.is_available() else "cuda:64"
    for command in (["train", "--backend", "sim", "--out", str(tmp_path / "t.h5")],
                    ["experiment", "bias", "--out", str(tmp_path)]):
        line = one_line_error(capsys, [*command, "--device", device])
        assert line.startswith(f"hil {command[0]}: error: --device {device}: ") and "use --device cpu" in line
        assert not list(tmp_path.iterdir())  # refused before anything was written
    line = one_line_error(capsys, ["train", "--backend", "sim", "--out", str(tmp_path / "t.h5"), "--device", "gpu"])
    assert "--device gpu: not a torch device name" in line


@pytest.mark.parametrize(("argv", "expected"), [
    (["train", "--backend", "sim", "--lr", "inf"], "learning_rate: must be a positive number, got inf"),
    (["train", "--backend", "sim", "--epochs", "ten"], "argument --epochs: expected a whole number, got 'ten'"),
    (["train", "--backend", "sim", "--progress-every", "-5"], "argument --progress-every: expected 0 or more"),
    (["train", "--backend", "sim", "--station", str(EMULATED_STATION_FILE)],
     "--station is not used by --backend sim (only by --backend hardware): leave it out"),
    (["train", "--backend", "sim", "--data-dir", "."], "--data-dir is for --dataset mnist"),
    (["demo", "--epochs", "0"], "argument --epochs: expected at least 1, got 0"),
    (["train", "--backend", "sim", "--live", "99999"], "argument --live: a port from 0 to 65535, got 99999"),
    (["experiment", "bias", "--out", str(EMULATED_STATION_FILE)], "is a file: give a folder"),
    (["emulate", "--host", "no-such-host.invalid"], "host 'no-such-host.invalid': not found"),
    (["emulate", "--port", "65534"], "base port 65534: the 3 instruments need ports 65534 to 65536"),
    (["emulate", "--port", "http"], "argument --port: expected a port number, got 'http'"),
])
def test_expected_mistakes_are_one_line_and_exit_2(capsys, tmp_path, argv, expected):
    if argv[0] == "train":
        argv = [*argv, "--out", str(tmp_path / "t.h5")]
    if argv[0] == "demo":
        argv = [*argv, "--out", str(tmp_path)]  # refused before anything is written
    assert expected in one_line_error(capsys, argv)


def test_implausible_training_values_warn_but_are_used():
    assert TrainConfig().warnings() == {}
    warned = TrainConfig(learning_rate=1e9, epochs=5000).warnings()
    assert "1e+09 is outside the range Adam trains with" in warned["learning_rate"]
    assert "5000 epochs" in warned["epochs"]
    assert "learning_rate" in TrainConfig(learning_rate=1e-8).warnings()


def test_hil_train_warns_of_a_learning_rate_on_stderr(capsys, tmp_path):
    code = main(["train", "--backend", "sim", "--lr", "1e9", "--epochs", "1", "--hidden", "8", "--eval-samples", "1",
                 "--out", str(tmp_path / "t.h5"), "--progress-every", "0"])
    err = capsys.readouterr().err
    assert code == 0
    assert "hil train: warning: --lr 1e+09 is outside the range Adam trains with" in err


def test_help_of_every_command_imports_no_torch():
    script = ("import contextlib, io, sys\nfrom hil.cli import COMMANDS, main\n"
              "for argv in [['--help'], *([name, '--help'] for name in COMMANDS)]:\n"
              "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
              "        main(argv)\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'h5py', 'matplotlib')))\n")
    imported = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert imported.strip() == "[]", imported
    assert "emulate" in COMMANDS


def free_base_port(count=3):
    """A base port with ``count`` free ports after it (asked of the system, then released)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + count > 65535:
            continue
        try:
            held = []
            for port in range(base, base + count):
                held.append(socket.socket())
                held[-1].bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    raise RuntimeError("no free ports")


def test_emulate_on_fixed_ports_serves_a_station_file_pointing_at_it(tmp_path, capsys):
    base = free_base_port()
    proc = subprocess.Popen([sys.executable, "-m", "hil.cli", "emulate", "--port", str(base)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        printed = []
        while not printed or not printed[-1].startswith("Ctrl-C"):
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            printed.append(line)
        snippet = yaml.safe_load("".join(printed[printed.index("instruments:\n"):-1]))
        addresses = [inst["address"] for inst in snippet["instruments"].values()]
        assert addresses == [f"TCPIP::127.0.0.1::{base + i}::SOCKET" for i in range(3)]
        assert list(snippet["instruments"]) == ["pulse_generator", "source_meter", "switch_matrix"]

        station_file = tmp_path / "station.yaml"
        station = yaml.safe_load(EMULATED_STATION_FILE.read_text())
        station["instruments"] = snippet["instruments"]
        station.pop("chip")
        station_file.write_text(yaml.safe_dump(station))
        connected = Station.open(station_file, timeout_ms=2000)
        try:
            assert "2450" in connected.instruments["source_meter"].idn
        finally:
            connected.close()

        # the station file's own ports are where a plain `hil emulate --station FILE` serves next time
        assert station_ports(load_station_spec(station_file)) == {role: base + i for i, role in enumerate(
            snippet["instruments"])}
        # the same ports while it runs: a second emulator is refused in one line
        assert f"port {base}" in one_line_error(capsys, ["emulate", "--port", str(base)])
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "stopped; virtual clock at" in out


@pytest.mark.parametrize(("text", "expected"), [("", "got an empty file"), ("- bias_sweep\n", "got list"),
                                                ("protocol: [1, 2]\n", "protocol")])
def test_an_empty_or_list_valued_protocol_file_is_one_line_naming_the_file(capsys, tmp_path, text, expected):
    protocol = tmp_path / "protocol.yaml"
    protocol.write_text(text)
    line = one_line_error(capsys, ["characterize", "--station", str(EMULATED_STATION_FILE), "--protocol",
                                   str(protocol), "--out", str(tmp_path / "run.h5")])
    assert f"protocol file '{protocol}'" in line and expected in line
    assert not (tmp_path / "run.h5").exists()
