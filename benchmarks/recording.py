"""Recording overhead: a bias sweep on the emulated station recorded into the HDF5 session against the same
sweep into an in-memory sink, in interleaved repetitions.

Rows:

- ``recording_overhead``: seconds per sweep with the HDF5 session, reference: the in-memory sink (the
  overhead is ratio − 1);
- ``recording_overhead_vs_instrument_time``: the extra seconds of each repetition (session − memory, paired)
  as a percentage of the sweep's physical instrument time (the emulated station's virtual clock over the
  sweep: what the sweep takes on a real station); the sweep is sized to at least 10 s of it. Full garbage
  collections (~0.1 s each, more of them with the session) land in some repetitions and not others, so the
  repetitions are long (~1 s) and many;
- ``session_write_rate``: trial records appended in committed, flushed chunks.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable
from pathlib import Path

import yaml

from benchmarks.harness import Row, interleaved_times, ratio_row, value_row
from hil.session import SessionWriter
from hil.session.sinks import SessionStore
from instruments.config_files import CONFIGS
from instruments.station import Station
from protocols.bias_sweep import BiasSweep
from protocols.device_trial import TRIALS
from protocols.engine import MemoryStore, RunEngine
from sim_backend.emulated.probe_station import EmulatedStation

DEVICES = ["w3-1", "w5-1", "w10-1"]
TRIALS_PER_POINT = 1000  # 3 devices x 16 points x 1000 trials: about 26 s of instrument time
REPEATS = 20
CHUNK_ROWS, CHUNKS, WRITE_REPEATS = 1000, 200, 5


def _sweep(station: Station) -> BiasSweep:
    raw = yaml.safe_load((CONFIGS / "protocols" / "bias-sweep.yaml").read_text())
    raw["devices"] = DEVICES
    raw["trials_per_point"] = TRIALS_PER_POINT
    return BiasSweep(station.spec, raw).attach(station)


def _write_rate(folder: Path) -> Row:
    rows = TRIALS.rows(CHUNK_ROWS, 0)
    rows["device"] = DEVICES[0].encode()
    files = itertools.count()

    def write() -> None:
        with SessionWriter.create(folder / f"rate{next(files)}.h5", "characterization") as writer:
            run = writer.run(0)
            run.declare(TRIALS)
            for unit in range(CHUNKS):
                rows["unit"] = unit
                run.commit(unit, {TRIALS.name: rows})

    times = interleaved_times({"write": write}, repeats=WRITE_REPEATS)
    return value_row("session_write_rate", [CHUNK_ROWS * CHUNKS / t for t in times["write"]], "records/s",
                     f"{CHUNKS} chunks of {CHUNK_ROWS} trial records per file, each committed and flushed "
                     "(file creation included)")


def run() -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp, EmulatedStation(CONFIGS / "station.emulated.yaml") as emulated, \
            Station.open(emulated.spec) as station:
        folder = Path(tmp)
        protocol = _sweep(station)
        n_trials = sum(u.n_trials for u in protocol.plan())
        files = itertools.count()

        def recorded() -> None:
            with SessionWriter.create(folder / f"s{next(files)}.h5", "characterization") as writer:
                RunEngine(SessionStore(writer)).run([protocol])

        def in_memory() -> None:
            RunEngine(MemoryStore()).run([protocol])

        clock: dict[str, list[float]] = {"memory": [], "session": []}

        def timed_clock(name: str, fn: Callable[[], None]) -> Callable[[], None]:
            def call() -> None:  # the virtual clock's advance: the sweep's physical time
                start = emulated.clock_s
                fn()
                clock[name].append(emulated.clock_s - start)
            return call

        times = interleaved_times({"memory": timed_clock("memory", in_memory),
                                   "session": timed_clock("session", recorded)}, repeats=REPEATS, warmup=1)
        write_rate = _write_rate(folder)
    instrument = clock["memory"][-REPEATS:] + clock["session"][-REPEATS:]
    instrument_s = min(instrument)
    extra = [(s - m) / instrument_s * 100 for s, m in zip(times["session"], times["memory"], strict=True)]
    sweep = f"bias sweep of {n_trials} trials ({len(DEVICES)} devices x 16 points x {TRIALS_PER_POINT}) on the " \
            f"emulated station, {instrument_s:.1f} s of instrument time"
    return [
        ratio_row("recording_overhead", times, "session", "memory", "s",
                  note=f"{sweep}, recorded into the HDF5 session; reference: the in-memory sink; overhead = ratio - 1"),
        value_row("recording_overhead_vs_instrument_time", extra, "%",
                  f"(session - memory) per repetition over the sweep's physical instrument time (virtual clock: "
                  f"{min(instrument):.2f}-{max(instrument):.2f} s per sweep)"),
        write_rate,
    ]
