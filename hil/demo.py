"""``hil demo``: the main job end to end on the emulated probe station.

1. characterize: channel resistance, bias sweep and hysteresis loop of all 12 devices, into a session;
2. fit and report: switching curves with intervals and fits, loops, size trends (PNG + summary);
3. train: a network whose hidden neurons are the emulated devices, every activation a real trial
   through the instruments (hardware backend, pulse mode), next to the software baselines;
4. report the accuracies, trials and energy.
"""

from __future__ import annotations

import time
from pathlib import Path

from hil.characterize import characterize
from hil.datasets import load_digits
from hil.report import format_info, session_info, write_report
from hil.train import open_backend, run_training, write_training_session
from hil.training import TrainConfig
from sim_backend.chip import DEFAULT_CHIP_FILE

CONFIGS = DEFAULT_CHIP_FILE.parent
STATION = CONFIGS / "station.emulated.yaml"
PROTOCOLS = [CONFIGS / "protocols" / name for name in ("channel-resistance.yaml", "bias-sweep.yaml",
                                                        "hysteresis-loop.yaml")]


def run_demo(out_dir: str | Path, epochs: int = 8, hidden: int = 48, progress: bool | None = None,
             say=print) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    session = out_dir / "characterization.h5"
    session.unlink(missing_ok=True)
    start = time.perf_counter()
    say(f"[1/3] characterizing 12 emulated devices ({STATION.name}) ...")
    result = characterize(STATION, PROTOCOLS, session, progress=progress)
    say(f"      {', '.join(f'{k}: {v}' for k, v in result.statuses.items())}; modeled instrument time "
        f"{result.virtual_time_s:.1f} s, wall time {time.perf_counter() - start:.1f} s")
    figures = write_report(session, out_dir / "report")
    say(format_info(session_info(session)))
    say(f"[2/3] report: {', '.join(str(f) for f in figures)}")

    say(f"[3/3] training a 64-{hidden}-10 network on scikit-learn digits with the emulated devices in the loop "
        "(every activation a trial through the instruments) ...")
    dataset = load_digits(seed=0)
    config = TrainConfig(hidden=(hidden,), epochs=epochs, batch_size=64, eval_samples=8, seed=0)
    start = time.perf_counter()
    with open_backend("hardware", station=STATION, trials_per_point=50) as (backend, source):
        cycles_before = int(source["emulated_chip"].cycles.sum())
        trials_before = backend.physical_trials  # after the backend measured its devices' curves
        trained, baselines = run_training(dataset, backend, config, "calibrated", "curve", baselines=True,
                                          progress=progress)
        source["emulator_cycles"] = int(source["emulated_chip"].cycles.sum()) - cycles_before
        source["physical_trials"] = backend.physical_trials - trials_before
        training_session = write_training_session(out_dir / "training.h5", trained, source, baselines)
    elapsed = time.perf_counter() - start
    say(f"      {source['physical_trials']} device trials through the instruments in {elapsed:.1f} s "
        f"({source['emulator_cycles']} pulses, resets included, counted by the emulated chip)")
    summary = {
        "hil_hardware_accuracy": trained.test_accuracy,
        "deterministic_accuracy": baselines["deterministic"].test_accuracy,
        "ideal_stochastic_accuracy": baselines["stochastic"].test_accuracy,
        "energy_j": trained.energy_j,
        "characterization": str(session), "training": str(training_session),
    }
    say(f"test accuracy: hardware-in-loop {summary['hil_hardware_accuracy']:.4f} | software deterministic "
        f"{summary['deterministic_accuracy']:.4f} | software ideal stochastic "
        f"{summary['ideal_stochastic_accuracy']:.4f}")
    say(f"sessions: {session} and {training_session}")
    return summary
