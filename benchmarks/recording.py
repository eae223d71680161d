"""Recording overhead: the bias sweep on the emulated station with and without the HDF5 session."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from benchmarks.harness import Row
from hil.session import SessionWriter
from hil.session.sinks import SessionStore
from instruments.config_files import CONFIGS
from instruments.station import Station
from protocols.bias_sweep import BiasSweep
from protocols.device_trial import TRIALS
from protocols.engine import MemoryStore, RunEngine
from sim_backend.emulated.probe_station import EmulatedStation

REPEATS = 3
CHUNK_ROWS = 1000
CHUNKS = 200


def _sweep(station: Station) -> BiasSweep:
    raw = yaml.safe_load((CONFIGS / "protocols" / "bias-sweep.yaml").read_text())
    raw["devices"] = ["w3-1", "w5-1", "w10-1"]
    return BiasSweep(station.spec, raw).attach(station)


def run() -> list[Row]:
    best = {"memory": np.inf, "session": np.inf}
    n_trials = 0
    with tempfile.TemporaryDirectory() as tmp, EmulatedStation(CONFIGS / "station.emulated.yaml") as emulated, \
            Station.open(emulated.spec) as station:
        protocol = _sweep(station)
        n_trials = sum(u.n_trials for u in protocol.plan())
        clock = emulated.clock_s
        RunEngine(MemoryStore()).run([protocol])  # warm-up: routes, R_ch, caches
        instrument_s = emulated.clock_s - clock  # what the sweep takes on a real station
        for k in range(REPEATS):
            start = time.perf_counter()
            RunEngine(MemoryStore()).run([protocol])
            best["memory"] = min(best["memory"], time.perf_counter() - start)
            start = time.perf_counter()
            with SessionWriter.create(Path(tmp) / f"s{k}.h5", "characterization") as writer:
                RunEngine(SessionStore(writer)).run([protocol])
            best["session"] = min(best["session"], time.perf_counter() - start)

        # sustained writing: chunks of trial records appended, each committed and flushed
        rows = TRIALS.rows(CHUNK_ROWS, 0)
        rows["device"] = b"w3-1"
        with SessionWriter.create(Path(tmp) / "rate.h5", "characterization") as writer:
            run = writer.run(0)
            run.declare(TRIALS)
            start = time.perf_counter()
            for unit in range(CHUNKS):
                rows["unit"] = unit
                run.commit(unit, {TRIALS.name: rows})
            write_s = time.perf_counter() - start
    overhead = best["session"] / best["memory"] - 1
    return [
        Row("recording_overhead", overhead * 100, "%", None, None,
            f"bias sweep of {n_trials} trials (3 devices x 16 points x 200) on the emulated station: "
            f"{best['session']:.3f} s with the HDF5 session vs {best['memory']:.3f} s in memory"),
        Row("recording_overhead_vs_instrument_time", (best["session"] - best["memory"]) / instrument_s * 100, "%",
            None, None, f"the same extra time against the sweep's modeled instrument time ({instrument_s:.2f} s)"),
        Row("session_write_rate", CHUNK_ROWS * CHUNKS / write_s, "records/s", None, None,
            f"trial records appended in committed, flushed chunks of {CHUNK_ROWS}"),
    ]
