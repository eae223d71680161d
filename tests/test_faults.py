"""Instrument faults and interruptions: errors surface, the instruments end safe (as they confirm, and as the
emulated instruments show), nothing measured is lost or repeated, and the run resumes.

The emulated station carries the ideal chip here: its resets never fail, so every unit holds exactly its planned
trials and a lost or repeated one shows in the counts (replays of failed resets: tests/test_protocols_cope.py)."""

import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from hil.lab.characterization import characterize
from hil.session import Session
from instruments.adapters import open_connection
from instruments.config_files import EMULATED_STATION_FILE, IDEAL_CHIP_FILE, PROTOCOL_FILES
from instruments.drivers.errors import InstrumentConnectionError, InstrumentError, InstrumentErrors
from instruments.drivers.keithley2450 import Keithley2450
from sim_backend.emulated.probe_station import EmulatedStation
from tests.waiting import wait_for_committed_units

HIL = [sys.executable, "-m", "hil.cli"]


def small_sweep(tmp_path, path="fast", trials=100, devices=("w3-1", "w5-1"), batch=50):
    raw = yaml.safe_load((PROTOCOL_FILES / "bias-sweep.yaml").read_text())
    raw.update({"devices": list(devices), "trials_per_point": trials, "batch": batch, "path": path})
    raw.pop("reference")  # no drift-tracking points: the units are the sweep's own
    out = tmp_path / "sweep.yaml"
    out.write_text(yaml.safe_dump(raw))
    return out


def served_station_file(emulated, tmp_path):
    """A station file naming the addresses of emulated instruments served by this test process."""
    raw = yaml.safe_load(EMULATED_STATION_FILE.read_text())
    for role, address in emulated.addresses.items():
        raw["instruments"][role]["address"] = address
    raw.pop("chip")
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def assert_instruments_safe(emulated):
    """Asked of the emulated instruments themselves: every output off, every crosspoint open."""
    generator = emulated.instruments["pulse_generator"]
    assert not any(channel.output for channel in generator.channels.values())
    assert not emulated.instruments["source_meter"].output_on
    assert not emulated.instruments["switch_matrix"].closed
    assert emulated.bench.routed_device is None


def exactly_once(path, n_units, per_unit):
    with Session(path) as s:
        run = s.runs[0]
        assert run.status == "completed", run.attrs.get("error")
        trials = run.table("trials")
    units, counts = np.unique(trials["unit"], return_counts=True)
    assert list(units) == list(range(n_units)) and set(counts) == {per_unit}
    return trials


def test_an_instrument_error_mid_sweep_stops_safely_is_recorded_and_the_run_resumes(tmp_path):
    protocol = small_sweep(tmp_path)
    out = tmp_path / "run.h5"
    with EmulatedStation(EMULATED_STATION_FILE, chip=IDEAL_CHIP_FILE) as emulated:
        station = served_station_file(emulated, tmp_path)
        cmd = [*HIL, "characterize", "--station", str(station), "--protocol", str(protocol), "--out", str(out)]
        # the source meter rejects a command in the middle of the sweep, as a real one does (error queue)
        emulated.instruments["source_meter"].faults.error_after_messages = 580  # a command, not a query
        failed = subprocess.run(cmd, capture_output=True, text=True)
        assert failed.returncode == 3, failed.stderr
        error_lines = [line for line in failed.stderr.splitlines() if "error:" in line]
        assert len(error_lines) == 1 and "source_meter reports: -200: Execution error" in error_lines[0]
        assert "Traceback" not in failed.stderr
        assert "instruments: outputs off and matrix open, confirmed by every instrument" in failed.stderr
        assert f"everything recorded so far is in {out}" in failed.stderr
        assert_instruments_safe(emulated)
        with Session(out) as s:
            run = s.runs[0]
            assert run.status == "failed" and "InstrumentErrors" in run.attrs["error"]
            errors = run.attrs["instrument_errors"]  # the rejection, and what may have followed from it
            assert (errors[0]["instrument"], errors[0]["model"], errors[0]["code"], errors[0]["message"]) == (
                "source_meter", "Keithley2450", -200, "Execution error")
            for error in errors:
                assert error["unit"] == run.attrs["stopped_at"]["unit"] and error["device"] in ("w3-1", "w5-1")
            assert 0 < run.table("trials").size < 3200
        resumed = subprocess.run([*cmd, "--resume"], capture_output=True, text=True)
        assert resumed.returncode == 0, resumed.stderr
        assert_instruments_safe(emulated)
    exactly_once(out, 2 * 16 * 2, 50)


def test_a_dropped_connection_stops_the_run_safely_and_it_resumes(tmp_path):
    protocol = small_sweep(tmp_path)
    out = tmp_path / "run.h5"
    with EmulatedStation(EMULATED_STATION_FILE, chip=IDEAL_CHIP_FILE) as emulated:
        emulated.instruments["source_meter"].faults.drop_after_messages = 400
        with pytest.raises(InstrumentConnectionError, match="source_meter .* at TCPIP::127.0.0.1::") as caught:
            characterize(emulated.spec, [protocol], out, progress=False)
        # the link was opened again and the source meter confirmed it is off
        assert caught.value.safe_state.ok and caught.value.safe_state.reconnected == (
            f"source meter (Keithley2450 at {emulated.addresses['source_meter']})",)
        assert_instruments_safe(emulated)
    with Session(out) as s:
        assert s.runs[0].status == "failed" and 0 < s.runs[0].table("trials").size < 3200
    with EmulatedStation(EMULATED_STATION_FILE, chip=IDEAL_CHIP_FILE) as emulated:
        assert characterize(emulated.spec, [protocol], out, resume=True, progress=False).statuses == {
            "bias_sweep": "completed"}
    exactly_once(out, 2 * 16 * 2, 50)


def test_a_silent_instrument_and_a_refused_connection_name_the_instrument(tmp_path):
    with EmulatedStation(EMULATED_STATION_FILE, chip=IDEAL_CHIP_FILE) as emulated:
        address = emulated.addresses["source_meter"]
        smu = Keithley2450(open_connection(address, timeout_ms=200, instrument="source_meter (Keithley2450)"))
        emulated.instruments["source_meter"].faults.reply_delay_s = 0.5
        with pytest.raises(InstrumentConnectionError, match=r"source_meter \(Keithley2450\) at TCPIP.*: no reply "
                                                            r"within 0.2 s; is it on"):
            smu.id  # noqa: B018
        station = served_station_file(emulated, tmp_path)
    # the servers are gone: nothing listens at those addresses any more
    result = subprocess.run([*HIL, "characterize", "--station", str(station), "--protocol",
                             str(PROTOCOL_FILES / "channel-resistance.yaml"), "--out", str(tmp_path / "x.h5")],
                            capture_output=True, text=True)
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert "pulse_generator (Keysight81160A) at TCPIP::127.0.0.1::" in result.stderr
    assert "the connection was refused; is the instrument on, and is its address" in result.stderr
    assert not (tmp_path / "x.h5").exists()


def test_ctrl_c_at_ten_random_moments_is_always_safe_and_loses_nothing(tmp_path):
    protocol = small_sweep(tmp_path, trials=60, batch=20, devices=("w3-1", "w5-1", "w10-1"))
    out = tmp_path / "run.h5"
    rng = random.Random(7)
    with EmulatedStation(EMULATED_STATION_FILE, chip=IDEAL_CHIP_FILE) as emulated:
        station = served_station_file(emulated, tmp_path)
        cmd = [*HIL, "characterize", "--station", str(station), "--protocol", str(protocol), "--out", str(out)]
        interrupted = 0
        for attempt in range(10):
            proc = subprocess.Popen(cmd + (["--resume"] if attempt else []), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            done = 0 if attempt == 0 else wait_for_committed_units(out, 0, proc, may_end=True)
            if done is not None and wait_for_committed_units(out, done + 1, proc, may_end=True) is not None:
                time.sleep(rng.uniform(0.0, 0.08))  # anywhere in the next unit(s): mid-query, -upload, -commit
                proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=120)
            if "bias_sweep: completed" in err:  # it finished before the signal arrived (or as it exited)
                break
            interrupted += 1
            assert proc.returncode == 130, err
            assert "NOT CONFIRMED" not in err and "Traceback" not in err
            assert "instruments: outputs off and matrix open, confirmed by every instrument" in err
            assert_instruments_safe(emulated)
        assert interrupted >= 5
        finished = subprocess.run(cmd + ["--resume"], capture_output=True, text=True)
        assert finished.returncode == 0, finished.stderr
    trials = exactly_once(out, 3 * 16 * 3, 20)
    assert trials.size == 3 * 16 * 60


def test_hil_emulate_serves_the_station_until_interrupted():
    proc = subprocess.Popen([*HIL, "emulate"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while not any("Ctrl-C stops" in line for line in lines):
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            lines.append(line)
        address = next(line.split()[-1] for line in lines if "source_meter" in line)
        assert address.startswith("TCPIP::127.0.0.1::") and address.endswith("::SOCKET")
        smu = Keithley2450(open_connection(address, timeout_ms=20_000))
        assert "MODEL 2450" in smu.id
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "stopped" in out


def test_reset_check_reads_every_reset_back(tmp_path):
    out = tmp_path / "reset.h5"
    characterize(EMULATED_STATION_FILE, [PROTOCOL_FILES / "reset-check.yaml"], out, progress=False,
                 chip=IDEAL_CHIP_FILE)
    with Session(out) as s:
        run = s.runs[0]
        reset = run.analysis("reset")
        trials = run.table("trials")
    assert set(reset) == {f"w{w}-{k}" for w in (3, 5, 10) for k in range(1, 5)}
    assert all(v["n_resets"] == 200 and v["reset_success_rate"] == 1.0 for v in reset.values())
    # each reset follows a strong pulse the other way, which switches every ideal device: the reset undoes it
    assert trials["outcome"].all()


def test_a_device_that_breaks_down_is_reported_lost_and_gets_no_more_pulses(tmp_path):
    protocol = small_sweep(tmp_path, devices=("w3-1", "w3-2", "w5-1"))
    out = tmp_path / "run.h5"
    with EmulatedStation(EMULATED_STATION_FILE, chip=IDEAL_CHIP_FILE) as emulated:
        # in the middle of w3-2's 32 units (one waveform each, after one measuring each device's Hall levels)
        emulated.bench.faults.break_after_waveforms = 42
        result = characterize(emulated.spec, [protocol], out, progress=False)
        assert result.statuses == {"bias_sweep": "completed"}
        broken = emulated.chip.index("w3-2")
        assert bool(emulated.chip.destroyed[broken])
        cycles = int(emulated.chip.cycles[broken])
    with Session(out) as s:
        run = s.runs[0]
        assert set(run.analysis("lost_devices")) == {"w3-2"}
        trials = run.table("trials")
        fits = run.analysis("fits")
    lost = trials[trials["device"] == b"w3-2"]
    assert lost.size == 50 * 8  # its 8th unit broke it: 8 units recorded, then no pulse for its other 24
    # its trials and the 20 pairs that measured its Hall levels: two pulses each, each between its balancing lobes
    # (the default station's DC block)
    assert cycles <= 6 * (lost.size + 20)
    assert np.all(trials["reset_ok"][trials["device"] != b"w3-2"] == 1)  # the others were measured as usual
    assert "logistic" in fits["w3-1"] and "logistic" in fits["w5-1"]


def test_a_forbidden_crosspoint_anywhere_in_the_run_is_refused_before_any_command(tmp_path):
    raw = yaml.safe_load(EMULATED_STATION_FILE.read_text())
    raw["matrix"]["forbidden"] = ["?G*", "4C09"]  # the source meter's force line to w10-4's I+ pad
    station = tmp_path / "station.yaml"
    raw["chip"] = str(EMULATED_STATION_FILE.parent / raw["chip"])
    station.write_text(yaml.safe_dump(raw))
    with EmulatedStation(station, chip=IDEAL_CHIP_FILE) as emulated:
        with pytest.raises(Exception, match="routing w10-4: crosspoint 4C09 is forbidden"):
            characterize(emulated.spec, [PROTOCOL_FILES / "channel-resistance.yaml"], tmp_path / "x.h5",
                         progress=False)
        assert all(not inst.log for inst in emulated.instruments.values())  # not even *IDN? was sent
    assert not (tmp_path / "x.h5").exists()


def test_errors_in_the_queue_from_before_the_run_do_not_stop_it(tmp_path):
    with EmulatedStation(EMULATED_STATION_FILE, chip=IDEAL_CHIP_FILE) as emulated:
        emulated.instruments["source_meter"].push_error(-113, "Undefined header")
        result = characterize(emulated.spec, [PROTOCOL_FILES / "channel-resistance.yaml"], tmp_path / "x.h5",
                              progress=False)
    assert result.statuses == {"channel_resistance": "completed"}


def test_instrument_errors_read_by_the_station_name_role_model_and_code():
    with EmulatedStation(EMULATED_STATION_FILE, chip=IDEAL_CHIP_FILE) as emulated:
        from instruments.station import Station

        with Station.open(emulated.spec) as station:
            emulated.instruments["pulse_generator"].push_error(-222, "Data out of range")
            with pytest.raises(InstrumentErrors) as caught, station.checked("a test unit"):
                pass
    (entry,) = caught.value.entries
    assert (entry.instrument, entry.model, entry.code, entry.message) == ("pulse_generator", "Keysight81160A", -222,
                                                                          "Data out of range")
    assert str(caught.value) == "pulse_generator reports: -222: Data out of range (a test unit)"


def test_a_device_lost_before_an_interruption_gets_nothing_after_the_resume(tmp_path):
    """The lost device is remembered by the session: the resumed run and the next protocol leave it alone."""
    protocol = small_sweep(tmp_path, devices=("w3-1", "w3-2", "w5-1"))
    loop = yaml.safe_load((PROTOCOL_FILES / "hysteresis-loop.yaml").read_text())
    loop["devices"] = ["w3-2", "w5-1"]
    out = tmp_path / "run.h5"
    with EmulatedStation(EMULATED_STATION_FILE, chip=IDEAL_CHIP_FILE) as emulated:
        emulated.bench.faults.break_after_waveforms = 40  # w3-2's 8th unit
        emulated.instruments["pulse_generator"].faults.error_after_messages = 410  # soon after: the run stops
        with pytest.raises(InstrumentError):
            characterize(emulated.spec, [protocol, loop], out, progress=False)
        broken = emulated.chip.index("w3-2")
        cycles = int(emulated.chip.cycles[broken])
        result = characterize(emulated.spec, [protocol, loop], out, resume=True, progress=False)
        assert result.statuses == {"bias_sweep": "completed", "hysteresis_loop": "completed"}
        assert int(emulated.chip.cycles[broken]) == cycles  # not one more pulse or current step
    with Session(out) as s:
        assert set(s.runs[0].analysis("lost_devices")) == {"w3-2"}
        assert "found open earlier" in s.runs[1].analysis("lost_devices")["w3-2"]
        assert set(np.unique(s.runs[1].table("steps")["device"])) == {b"w5-1"}


def test_ctrl_c_while_the_station_opens_is_not_swallowed(monkeypatch):
    """Held while the instruments are made safe, then raised: the run does not start."""
    import os

    from instruments.adapters import Keithley2450Adapter
    from instruments.station import Station

    make_safe = Keithley2450Adapter.make_safe

    def interrupted(self):
        os.kill(os.getpid(), signal.SIGINT)
        make_safe(self)

    monkeypatch.setattr(Keithley2450Adapter, "make_safe", interrupted)
    with EmulatedStation(EMULATED_STATION_FILE, chip=IDEAL_CHIP_FILE) as emulated:
        with pytest.raises(KeyboardInterrupt):
            Station.open(emulated.spec)
        assert_instruments_safe(emulated)


def test_both_pulse_generator_channels_end_off_and_are_confirmed(tmp_path):
    from pymeasure.instruments.keysight import Keysight81160A as StockKeysight81160A

    with EmulatedStation(EMULATED_STATION_FILE, chip=IDEAL_CHIP_FILE) as emulated:
        stock = StockKeysight81160A(open_connection(emulated.addresses["pulse_generator"]))
        stock.channels[2].output = True  # someone left the channel the station does not use on
        assert stock.channels[2].output  # (the query also waits until the instrument took the command)
        stock.adapter.close()
        assert emulated.instruments["pulse_generator"].channels[2].output
        result = characterize(emulated.spec, [PROTOCOL_FILES / "channel-resistance.yaml"], tmp_path / "x.h5",
                              progress=False)
        assert result.safe_state.ok
        assert_instruments_safe(emulated)


def test_a_resume_on_other_instruments_is_refused_before_any_unit(tmp_path):
    out = tmp_path / "run.h5"
    with EmulatedStation(EMULATED_STATION_FILE, chip=IDEAL_CHIP_FILE) as emulated:
        emulated.instruments["pulse_generator"].faults.error_after_messages = 200
        with pytest.raises(InstrumentError):
            characterize(emulated.spec, [small_sweep(tmp_path)], out, progress=False)
    with Session(out) as s:
        done = s.runs[0].table("trials").size
    with EmulatedStation(EMULATED_STATION_FILE, chip=IDEAL_CHIP_FILE) as emulated:
        source_meter = emulated.instruments["source_meter"]
        source_meter.idn = source_meter.idn.replace("04096331", "04099999")  # another unit of the same model
        with pytest.raises(Exception, match=r"cannot resume with a different source_meter: the file was measured "
                                            r"with .*04096331.*, the station now answers .*04099999"):
            characterize(emulated.spec, [small_sweep(tmp_path)], out, resume=True, progress=False)
    with Session(out) as s:
        assert s.runs[0].table("trials").size == done
