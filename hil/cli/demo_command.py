"""``hil demo``: the main job end to end on the emulated probe station.

1. characterize: channel resistance, bias sweep and hysteresis loop of all 12 devices, into a session;
2. fit and report: switching curves with intervals and fits, loops, size trends (PNG + summary);
3. train: a network whose hidden neurons are the emulated devices, every activation a real trial
   through the instruments (hardware backend, pulse mode), next to the software baselines, into a
   training session that also holds every device trial;
4. report the accuracies, trials and energy.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hil.cli.train_command import PROGRESS_EVERY_S, add_progress_option, folder, positive
from instruments.config_files import EMULATED_STATION_FILE, PROTOCOL_FILES

PROTOCOLS = [PROTOCOL_FILES / name for name in ("channel-resistance.yaml", "bias-sweep.yaml", "hysteresis-loop.yaml")]
OUTPUTS = ("characterization.h5", "training.h5", "report")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="characterize → fit → report → train with the emulated devices in the loop")
    p.add_argument("--out", type=folder, default="demo-output", help="folder for the sessions and the report")
    p.add_argument("--force", action="store_true", help="replace an earlier demo's files in --out")
    p.add_argument("--epochs", type=positive, default=8, help="training epochs")
    p.add_argument("--hidden", type=positive, default=48, help="hidden neurons (time-multiplexed on 12 devices)")
    add_progress_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    run_demo(args.out, epochs=args.epochs, hidden=args.hidden, force=args.force, progress_every_s=args.progress_every)
    return 0


def run_demo(out_dir: str | Path, epochs: int = 8, hidden: int = 48, progress: bool | None = None,
             force: bool = False, say: Callable[[str], Any] = print,
             progress_every_s: float = PROGRESS_EVERY_S) -> dict[str, Any]:
    import shutil

    from hil.lab.characterization import characterize
    from hil.neurons.layers import NeuronConfig
    from hil.neurons.sources import open_backend
    from hil.offline.figures import write_report
    from hil.offline.summary import format_info, session_info
    from hil.outputs import check_outputs
    from hil.training.config import TrainConfig
    from hil.training.datasets import load_digits
    from hil.training.training_run import train_to_session

    out_dir = Path(out_dir)
    check_outputs([out_dir / name for name in OUTPUTS], force)
    if force and (out_dir / "report").exists():
        shutil.rmtree(out_dir / "report")
    out_dir.mkdir(parents=True, exist_ok=True)
    session, training = out_dir / "characterization.h5", out_dir / "training.h5"
    start = time.perf_counter()
    say(f"[1/3] characterizing 12 emulated devices ({EMULATED_STATION_FILE.name}) ...")
    result = characterize(EMULATED_STATION_FILE, PROTOCOLS, session, progress=progress, force=force,
                          progress_every_s=progress_every_s)
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
    with open_backend("hardware", station=EMULATED_STATION_FILE, trials_per_point=50) as (backend, source):
        chip = source["emulated_chip"]
        cycles_before, trials_before = int(chip.cycles.sum()), backend.physical_trials
        train_to_session(training, dataset, backend, source, config, NeuronConfig(), baselines=True,
                         progress=progress, force=force, progress_every_s=progress_every_s)
        cycles, trials = int(chip.cycles.sum()) - cycles_before, backend.physical_trials - trials_before
    say(f"      {trials} device trials through the instruments in {time.perf_counter() - start:.1f} s "
        f"({cycles} pulses, resets included, counted by the emulated chip)")
    info = session_info(training)["training"]
    summary = {"hil_hardware_accuracy": info["test_accuracy"], "deterministic_accuracy": info["deterministic_accuracy"],
               "ideal_stochastic_accuracy": info["stochastic_accuracy"], "energy_j": info["energy_j"],
               "trials_recorded": info["trials_recorded"], "characterization": str(session),
               "training": str(training)}
    say(f"test accuracy: hardware-in-loop {summary['hil_hardware_accuracy']:.4f} | software deterministic "
        f"{summary['deterministic_accuracy']:.4f} | software ideal stochastic "
        f"{summary['ideal_stochastic_accuracy']:.4f}")
    say(f"sessions: {session} and {training} ({summary['trials_recorded']} device trials recorded)")
    return summary
