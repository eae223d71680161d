"""Reliability figures: kills, interrupts and instrument faults during real runs, and what survives them.

``python -m benchmarks --only reliability`` runs, the way a user runs them:

- ``hil characterize`` SIGKILLed at 20 random moments of one sweep, resumed after each;
- ``hil train`` (simulator) SIGKILLed at 5 random moments, resumed after each, compared with an
  uninterrupted run of the same seed;
- each fault the emulator can inject, once, in the middle of a sweep: a reply past the timeout, a dropped
  connection, a garbled reply, an instrument error, a device breakdown; the run is resumed if it stopped.

Per case: what was planned, what is in the file at the end, what was lost or duplicated, and the outcome —
``recovered`` (the run completed, or resumed to completion with nothing lost), ``safe-aborted-resumable``
(it stopped with the instruments confirmed safe, and ``--resume`` completed it), or ``other``. The goal
is 0 lost, 0 duplicated, and every case recovered or safe-aborted. Also the resident memory of a 20-epoch
hardware-in-loop training run on the emulated station.
"""

from __future__ import annotations

import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from benchmarks.harness import Row
from hil.lab.characterization import characterize
from hil.session import Session
from hil.session.reader import committed_units
from instruments.config_files import EMULATED_STATION_FILE, PROTOCOL_FILES
from instruments.failures import UserFacingError
from instruments.station_config import parse_station
from protocols.registry import load_protocol
from sim_backend.emulated.probe_station import EmulatedStation

HIL = [sys.executable, "-m", "hil.cli"]
KILLS_CHARACTERIZE, KILLS_TRAINING = 20, 5
SEED = 11
TRAINING = ["train", "--backend", "sim", "--epochs", "6", "--hidden", "32", "--eval-samples", "4",
            "--checkpoint-every", "2"]
MEMORY_RUN = ["train", "--backend", "hardware", "--station", str(EMULATED_STATION_FILE), "--epochs", "20",
              "--hidden", "48", "--eval-samples", "8"]


def _sweep(folder: Path, trials: int = 100, batch: int = 25) -> Path:
    raw = yaml.safe_load((PROTOCOL_FILES / "bias-sweep.yaml").read_text())
    raw.update({"devices": ["w3-1", "w5-1", "w10-1"], "trials_per_point": trials, "batch": batch})
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _kill_after(cmd: list[str], path: Path, rng: random.Random, more_units: int) -> bool:
    """Start ``cmd``, SIGKILL it a random moment after ``more_units`` more units; False if it finished first."""
    start = committed_units(path)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None and committed_units(path) < start + more_units:
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 0.05))
    if proc.poll() is not None:
        return False
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return True


def _tally(path: Path) -> dict[str, Any]:
    """Planned, present, lost and duplicated trials of run 000: its rows against its plan (rebuilt from the
    parameters and station the file records). Trials a lost (broken) device never got are ``skipped``."""
    with Session(path) as session:
        run = session.runs[0]
        trials, status = run.table("trials"), run.status
        lost_devices = set(run.analysis("lost_devices") or {})
        plan = load_protocol(run.parameters, parse_station(session.attrs["station"])).plan()
    counts = np.bincount(trials["unit"], minlength=len(plan)) if trials.size else np.zeros(len(plan), int)
    planned = np.array([u.n_trials for u in plan])
    missing = np.clip(planned - counts, 0, None)
    of_lost = np.array([u.device in lost_devices for u in plan], dtype=bool)
    return {"status": status, "planned": int(planned.sum()), "present": int(trials.size),
            "lost": int(missing[~of_lost].sum()), "skipped": int(missing[of_lost].sum()),
            "duplicated": int(np.clip(counts - planned, 0, None).sum()), "lost_devices": sorted(lost_devices)}


def _row(case: str, tally: dict[str, Any], outcome: str, note: str) -> Row:
    ok = tally["lost"] == 0 and tally["duplicated"] == 0
    outcome = outcome if ok else "other"
    return Row(case, tally["present"], "trials", tally["planned"], tally["present"] / max(1, tally["planned"]),
               f"planned {tally['planned']}, present {tally['present']}, lost {tally['lost']}, duplicated "
               f"{tally['duplicated']}" + (f", skipped {tally['skipped']} (device lost)" if tally["skipped"] else "")
               + f": {outcome}; {note}")


def characterize_kills(folder: Path, rng: random.Random) -> Row:
    protocol = _sweep(folder)
    out = folder / "killed.h5"
    cmd = [*HIL, "characterize", "--station", str(EMULATED_STATION_FILE), "--protocol", str(protocol), "--out",
           str(out)]
    kills, shrunk = 0, 0
    previous: dict[int, bytes] = {}
    while kills < KILLS_CHARACTERIZE:
        if not _kill_after(cmd + (["--resume"] if out.exists() else []), out, rng, rng.randint(1, 6)):
            break
        kills += 1
        with Session(out) as session:  # every unit committed before a kill is still there, unchanged
            trials = session.runs[0].table("trials")
        for unit, rows in previous.items():
            if trials[trials["unit"] == unit].tobytes() != rows:
                shrunk += 1
        previous = {int(u): trials[trials["unit"] == u].tobytes() for u in np.unique(trials["unit"])}
    finished = subprocess.run(cmd + ["--resume"], capture_output=True, text=True)
    tally = _tally(out)
    tally["lost"] += shrunk
    outcome = "recovered" if finished.returncode == 0 and tally["status"] == "completed" else "other"
    return _row(f"characterize: SIGKILL x{kills}", tally, outcome,
                f"{kills} kills at random moments, resumed after each (3 devices x 16 points x 100 trials)")


def training_kills(folder: Path, rng: random.Random) -> Row:
    reference, out = folder / "reference.h5", folder / "killed-training.h5"
    subprocess.run([*HIL, *TRAINING, "--out", str(reference)], check=True, capture_output=True)
    cmd = [*HIL, *TRAINING, "--out", str(out)]
    kills = 0
    while kills < KILLS_TRAINING:
        if not _kill_after(cmd + (["--resume"] if out.exists() else []), out, rng, rng.randint(1, 3)):
            break
        kills += 1
    finished = subprocess.run(cmd + ["--resume"], capture_output=True, text=True)
    with Session(reference) as a, Session(out) as b:
        epochs_a, epochs_b = a.runs[0].table("epochs"), b.runs[0].table("epochs")
        status = b.runs[0].status
    same = all(np.array_equal(epochs_a[f], epochs_b[f], equal_nan=True)
               for f in ("epoch", "loss", "train_accuracy", "test_accuracy", "pulses", "energy_j"))
    counts = np.bincount(epochs_b["epoch"], minlength=7)[1:]
    tally = {"status": status, "planned": 6, "present": int(epochs_b.size), "lost": int((counts == 0).sum()),
             "duplicated": int(np.clip(counts - 1, 0, None).sum()), "skipped": 0}
    outcome = "recovered" if finished.returncode == 0 and status == "completed" and same else "other"
    row = _row(f"training: SIGKILL x{kills}", tally, outcome,
               f"{kills} kills, resumed after each; final metrics {'identical to' if same else 'DIFFER from'} an "
               "uninterrupted run of the same seed")
    row.unit = "epochs"
    return row


FAULTS = {
    "reply timeout": lambda e, n: (setattr(e.instruments["source_meter"].faults, "delay_after_messages", n),
                                   setattr(e.instruments["source_meter"].faults, "reply_delay_s", 6.0)),
    "dropped connection": lambda e, n: setattr(e.instruments["source_meter"].faults, "drop_after_messages", n),
    "garbled reply": lambda e, n: setattr(e.instruments["source_meter"].faults, "garble_after_messages", n),
    "instrument error": lambda e, n: setattr(e.instruments["pulse_generator"].faults, "error_after_messages", n),
    "device breakdown": lambda e, n: setattr(e.bench.faults, "break_after_waveforms", max(1, n // 20)),
}


def _safe(emulated: EmulatedStation) -> bool:
    generator = emulated.instruments["pulse_generator"]
    return (not any(channel.output for channel in generator.channels.values())
            and not emulated.instruments["source_meter"].output_on and not emulated.instruments["switch_matrix"].closed)


def fault(folder: Path, name: str, rng: random.Random) -> Row:
    protocol = _sweep(folder)
    out = folder / f"{name.replace(' ', '-')}.h5"
    stopped, safe = "", True
    with EmulatedStation(EMULATED_STATION_FILE) as emulated:
        FAULTS[name](emulated, rng.randint(200, 1200))
        try:
            characterize(emulated.spec, [protocol], out, progress=False)
        except UserFacingError as exc:
            stopped = f"stopped: {type(exc).__name__}: {str(exc)[:70]}"
            safe = bool(getattr(exc, "safe_state", None) and exc.safe_state.ok)
        safe = safe and _safe(emulated)
    if stopped:
        with EmulatedStation(EMULATED_STATION_FILE) as emulated:
            characterize(emulated.spec, [protocol], out, resume=True, progress=False)
    tally = _tally(out)
    done = tally["status"] == "completed"
    outcome = ("safe-aborted-resumable" if stopped and safe and done else "recovered" if not stopped and done
               else "other")
    note = stopped or ("completed; lost devices: " + ", ".join(tally["lost_devices"]) if tally["lost_devices"]
                       else "completed")
    return _row(f"fault: {name}", tally, outcome, note + ("" if safe else "; SAFE STATE NOT CONFIRMED"))


def memory() -> Row:
    """Peak resident memory of a 20-epoch hardware-in-loop training run on the emulated station."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([*HIL, *MEMORY_RUN, "--out", str(Path(tmp) / "hw.h5")], check=True, capture_output=True)
        seconds = time.perf_counter() - start
        with Session(Path(tmp) / "hw.h5") as session:
            trials = session.runs[0].table("trials").size
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return Row("hardware training peak RSS", peak_mb, "MB", 1024.0, peak_mb / 1024.0,
               f"hil train --backend hardware, 20 epochs, 48 hidden neurons on the emulated station: {trials} device "
               f"trials recorded in {seconds:.0f} s; reference: the 1 GB bound")


def run() -> list[Row]:
    rng = random.Random(SEED)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows.append(characterize_kills(folder, rng))
        rows.append(training_kills(folder, rng))
        for name in FAULTS:
            print(f"  fault: {name} ...", file=sys.stderr, flush=True)
            rows.append(fault(folder, name, rng))
    rows.append(memory())
    return rows
