"""The run engine with a protocol it has never seen: its own table, killed mid-run, resumed — every unit once."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hil.lab.characterization import characterize
from hil.offline.summary import session_info
from hil.session import Session
from instruments.config_files import EMULATED_STATION_FILE
from protocols.base import StationProtocol, integer
from protocols.engine import MemoryStore, ResumeError, RunEngine, Unit
from protocols.records import Descriptor, Field
from protocols.registry import PROTOCOLS, register_protocol
from sim_backend.chip import load_chip
from tests.waiting import wait_for_committed_units

ROOT = Path(__file__).resolve().parents[1]
NOISE = Descriptor("noise", (
    Field("device", "S32", "", "device id"),
    Field("repeat", "i4", "", "reading number within the unit"),
    Field("reading_ohm", "f8", "ohm", "R_xy with no pulse"),
    Field("time_s", "f8", "s", "Unix time", reproducible=False),
), "repeated Hall readings of a device at rest: the read noise")


class ReadNoise(StationProtocol):
    """A protocol the project does not ship: ``readings`` Hall readings per unit, ``units`` units per device."""

    name = "read_noise"
    records = (NOISE,)
    keys = StationProtocol.keys | {"readings", "units"}

    def __init__(self, spec, raw):
        super().__init__(spec, raw)
        self.readings = integer(raw, "readings", "", default=20)
        self.units = integer(raw, "units", "", default=4)

    def plan(self):
        return [Unit(i * self.units + k, device, {"repeat": k}, 0)
                for i, device in enumerate(self.devices) for k in range(self.units)]

    def measure_unit(self, unit):
        readings = np.asarray(self.station.read_hall(unit.device, self.readings), dtype=np.float64)
        rows = NOISE.rows(readings.size, unit.index)
        rows["device"], rows["repeat"], rows["reading_ohm"], rows["time_s"] = unit.device, unit.params["repeat"], \
            readings, time.time()
        time.sleep(0.01)  # slow enough for a kill to land mid-run
        return {NOISE.name: rows}

    def analyse(self, tables):
        noise = tables[NOISE.name]
        return {**super().analyse(tables),
                "spread": {d.decode(): float(np.std(noise["reading_ohm"][noise["device"] == d]))
                           for d in np.unique(noise["device"])}}


PROTOCOL = {"protocol": "read_noise", "devices": ["w3-1", "w5-1", "w10-1"], "readings": 20, "units": 30}
RUN = f"""
import sys
from hil.lab.characterization import characterize
from protocols.registry import register_protocol
from tests.test_engine import PROTOCOL, ReadNoise
register_protocol(ReadNoise)
characterize({str(EMULATED_STATION_FILE)!r}, [PROTOCOL], sys.argv[1], resume="--resume" in sys.argv, progress=False)
"""


def test_a_new_protocol_killed_mid_run_resumes_with_every_unit_exactly_once(tmp_path):
    out = tmp_path / "noise.h5"
    cmd = [sys.executable, "-c", RUN, str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for_committed_units(out, 25, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with Session(out) as s:
        killed = s.runs[0].table("noise")
        assert s.runs[0].status == "running" and 25 * 20 <= killed.size < 90 * 20
    resumed = subprocess.run([*cmd, "--resume"], cwd=ROOT, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    with Session(out) as s:
        run = s.runs[0]
        assert run.status == "completed" and s.attrs["attempts"] == 2
        assert set(run.descriptors) == {"noise", "lost_devices"}
        noise = run.table("noise")
        units = run.units()
        spread = run.analysis("spread")
    ids, counts = np.unique(noise["unit"], return_counts=True)
    assert list(ids) == list(range(90)) and set(counts) == {20}  # every unit once, whole
    assert list(np.sort(units["unit"])) == list(range(90)) and set(units["attempt"]) == {1, 2}
    assert np.array_equal(noise[np.isin(noise["unit"], np.unique(killed["unit"]))], killed)  # kept as they were
    # the spread of a device's readings: the chip's Gaussian read noise, and its telegraph noise between units
    noise_ohm = load_chip().read_noise_ohm
    assert set(spread) == {"w3-1", "w5-1", "w10-1"} and all(0.8 * noise_ohm < v < 2.5 * noise_ohm
                                                               for v in spread.values())
    info = session_info(out)
    assert info["runs"][0]["records"] == {"noise": 1800, "lost_devices": 0}


def test_a_registered_protocol_runs_from_a_mapping_and_its_name_is_not_taken_twice(tmp_path):
    register_protocol(ReadNoise)
    try:
        result = characterize(EMULATED_STATION_FILE, [{**PROTOCOL, "units": 2}], tmp_path / "n.h5", progress=False)
        assert result.statuses == {"read_noise": "completed"}
        class Other(ReadNoise):
            pass
        with pytest.raises(ValueError, match="taken by ReadNoise"):
            register_protocol(Other)
    finally:
        PROTOCOLS.pop("read_noise", None)


class Counter:
    """A stateful measurement: each unit adds to a running sum that the next unit needs."""

    name = "counter"
    descriptors = (Descriptor("sums", (Field("total", "i8"),)),)

    def __init__(self, units=6, fail_at=None):
        self.units, self.fail_at, self.total = units, fail_at, 0

    def parameters(self):
        return {"units": self.units}

    def plan(self):
        return [Unit(i) for i in range(self.units)]

    def measure(self, unit):
        if unit.index == self.fail_at:
            raise KeyboardInterrupt
        self.total += unit.index + 1
        rows = self.descriptors[0].rows(1, unit.index)
        rows["total"] = self.total
        return {"sums": rows}

    def state(self):
        return str(self.total).encode()

    def restore(self, state):
        self.total = int(state.decode())

    def analyse(self, tables):
        return {"final": int(tables["sums"]["total"][-1])}


def test_a_stateful_measurement_continues_from_its_last_committed_state():
    store = MemoryStore()
    with pytest.raises(KeyboardInterrupt):
        RunEngine(store).run([Counter(fail_at=3)])
    assert store.runs[0].status == "interrupted" and store.runs[0].units_done == [0, 1, 2]
    resumed = Counter()  # a new process: its running sum starts from nothing, the state restores it
    assert RunEngine(store).run([resumed], resume=True) == ["completed"]
    assert list(store.runs[0].table("sums")["total"]) == [1, 3, 6, 10, 15, 21]
    assert store.runs[0].results == {"final": 21}


def test_a_resume_with_other_parameters_or_another_plan_is_refused():
    store = MemoryStore()
    with pytest.raises(KeyboardInterrupt):
        RunEngine(store).run([Counter(fail_at=2)])
    with pytest.raises(ResumeError, match=r"run 000 \(counter\): the parameters differ .*units: 6 in the file, 7 now"):
        RunEngine(store).run([Counter(units=7)], resume=True)
    with pytest.raises(ResumeError, match="the file holds 1 runs, but only 0 are given"):
        RunEngine(store).run([], resume=True)


def test_records_that_do_not_match_their_descriptor_are_refused():
    class Wrong(Counter):
        def measure(self, unit):
            return {"sums": np.zeros(1, dtype=[("unit", "i8"), ("other", "f8")])}

    with pytest.raises(ValueError, match="table sums: rows have fields"):
        RunEngine(MemoryStore()).run([Wrong()])

    class Undeclared(Counter):
        def measure(self, unit):
            return {"extra": self.descriptors[0].rows(1, unit.index)}

    with pytest.raises(ValueError, match="records for table 'extra', which it does not declare"):
        RunEngine(MemoryStore()).run([Undeclared()])
