"""The ``hil`` command line."""

from __future__ import annotations

import argparse
import sys

from hil.session import SessionError
from sim_backend.chip import DEFAULT_CHIP_FILE

CONFIGS = DEFAULT_CHIP_FILE.parent


def _demo(args: argparse.Namespace) -> int:
    """Characterize, fit, report and train with the emulated devices in the loop."""
    from hil.demo import run_demo

    run_demo(args.out, epochs=args.epochs, hidden=args.hidden)
    return 0


def _emulate(args: argparse.Namespace) -> int:
    """Run the emulated instruments of a station file in the foreground until Ctrl-C."""
    import time

    from sim_backend.emulated.station import EmulatedStation

    with EmulatedStation(args.station, chip=args.chip, seed=args.seed, realtime=args.realtime) as station:
        print(f"emulated station {station.spec.name!r} on chip {station.chip.spec.name!r}")
        for role, inst in station.spec.instruments.items():
            print(f"  {role:16} {inst.model:14} {inst.address}")
        print("Ctrl-C stops the servers.", flush=True)
        try:
            while True:
                time.sleep(0.5)
        except KeyboardInterrupt:
            print(f"stopped; virtual clock at {station.clock_s:.6f} s")
    return 0


def _characterize(args: argparse.Namespace) -> int:
    from hil.characterize import characterize

    try:
        result = characterize(args.station, args.protocol, args.out, resume=args.resume, chip=args.chip,
                              seed=args.seed, record_transport=args.record_transport)
    except KeyboardInterrupt:
        print(f"\ninterrupted: everything measured so far is in {args.out}; continue with --resume",
              file=sys.stderr)
        return 130
    for name, status in result.statuses.items():
        print(f"{name}: {status}")
    if result.virtual_time_s is not None:
        print(f"modeled instrument time: {result.virtual_time_s:.3f} s (virtual clock of the emulated station)")
    print(f"session: {result.path}")
    return 0


def _replay(args: argparse.Namespace) -> int:
    import json

    if args.transport:
        from hil.transport_replay import replay_transport

        result = replay_transport(args.file)
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            for run in result["runs"]:
                print(f"{run['protocol']:16} {run['n_records']:8d} records  "
                      f"{'identical' if run['identical'] else 'DIFFERENT'}")
        return 0 if result["identical"] else 1
    from hil.replay import replay, write_replay_report

    if not args.out:
        raise ValueError("--out DIR is needed for the comparison figures")
    result = replay(args.file, chip=args.chip)
    files = write_replay_report(result, args.out)
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "runs"} | {
            "runs": [{"name": r["name"], "protocol": r["protocol"],
                      "devices": {d: v["verdict"] for d, v in r.get("devices", {}).items()}} for r in result["runs"]]},
            indent=2))
    else:
        for run in result["runs"]:
            verdicts = run.get("devices", {})
            differing = [d for d, v in verdicts.items() if v["verdict"] == "differs"]
            print(f"run {run['name']} {run['protocol']:16} {len(verdicts) - len(differing)}/{len(verdicts)} devices "
                  f"agree" + (f"; differ: {', '.join(differing)}" if differing else ""))
        print(f"verdict: {result['verdict']} (chip {result['chip']!r})")
        for path in files:
            print(path)
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from hil.calibrate import calibrate, write_chip

    chip = calibrate(args.file, base_chip=args.base_chip)
    path = write_chip(chip, args.out)
    errors = chip["calibration"]["standard_errors"]
    for device in chip["devices"]:
        err = errors.get(device["id"], {})
        parts = [f"{device['id']:8}"]
        if "ic0" in device:
            parts.append(f"Ic0 {device['ic0'] * 1e3:.4f} ± {err['ic0'] * 1e3:.4f} mA")
            parts.append(f"Δ {device['delta']:.2f} ± {err['delta']:.2f}")
        if "delta_r_ahe" in device:
            parts.append(f"ΔR_AHE {device['delta_r_ahe']:.4f} ± {err['delta_r_ahe']:.4f} Ω")
        if "r_ch" in device:
            parts.append(f"R_ch {device['r_ch']:.1f} Ω")
        print("  ".join(parts))
    print(f"chip file: {path}")
    return 0


def _info(args: argparse.Namespace) -> int:
    import json

    from hil.report import format_info, session_info

    info = session_info(args.file)
    print(json.dumps(info, indent=2, default=str) if args.json else format_info(info))
    return 0


def _report(args: argparse.Namespace) -> int:
    from hil.report import write_report

    for path in write_report(args.file, args.out):
        print(path)
    return 0


def _train_config(args: argparse.Namespace):
    from hil.training import TrainConfig

    return TrainConfig(hidden=tuple(args.hidden), epochs=args.epochs, batch_size=args.batch_size,
                       learning_rate=args.lr, seed=args.seed, eval_samples=args.eval_samples)


def _train(args: argparse.Namespace) -> int:
    from hil.datasets import load_dataset
    from hil.train import open_backend, run_training, write_training_session

    dataset = load_dataset(args.dataset, args.data_dir, seed=args.seed)
    config = _train_config(args)
    with open_backend(args.backend, station=args.station, chip=args.chip, session=args.session, seed=args.seed,
                      mode=args.mode, device=args.device) as (backend, source):
        print(f"{backend!r} on {dataset.describe().get('name')}: {config.hidden} hidden neurons, "
              f"{config.epochs} epochs", file=sys.stderr)
        result, baselines = run_training(dataset, backend, config, args.mapping, args.gradient, args.baselines)
        emulated_chip = source.get("emulated_chip")
        if emulated_chip is not None:
            source["emulator_cycles"] = int(emulated_chip.cycles.sum())
        write_training_session(args.out, result, source, baselines)
    print(f"test accuracy ({result.neurons}): {result.test_accuracy:.4f}")
    for name, base in baselines.items():
        print(f"test accuracy ({name} software baseline): {base.test_accuracy:.4f}")
    print(f"pulses: {result.pulses}, energy: {result.energy_j:.4g} J; session: {args.out}")
    return 0


def _experiment(args: argparse.Namespace) -> int:
    import json

    from hil.datasets import load_dataset
    from hil.experiments import run_experiment

    dataset = load_dataset(args.dataset, args.data_dir, seed=args.seed)
    result = run_experiment(args.name, dataset, _train_config(args), chip=args.chip, out_dir=args.out,
                            device=args.device)
    if args.json:
        print(json.dumps(result["table"], indent=2))
    else:
        print(result["text"])
        for path in result["files"]:
            print(path)
    return 0


def _add_training_options(parser: argparse.ArgumentParser, epochs: int) -> None:
    parser.add_argument("--dataset", default="digits", choices=["digits", "mnist"],
                        help="digits: scikit-learn's 8x8 digits (embedded); mnist: IDX files in --data-dir")
    parser.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files")
    parser.add_argument("--hidden", type=int, nargs="+", default=[128], help="hidden layer sizes")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate")
    parser.add_argument("--eval-samples", type=int, default=16, help="stochastic samples averaged per evaluation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="torch device for the network and simulator (cpu, cuda)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hil", description="Hardware-in-loop experiments with stochastic "
                                     "spintronic devices.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="characterize → fit → report → train with the emulated devices in the loop")
    demo.add_argument("--out", default="demo-output", help="folder for the sessions and the report")
    demo.add_argument("--epochs", type=int, default=8, help="training epochs")
    demo.add_argument("--hidden", type=int, default=48, help="hidden neurons (time-multiplexed on 12 devices)")
    demo.set_defaults(func=_demo)

    emulate = sub.add_parser("emulate", help="run the emulated probe station's instruments on loopback TCP")
    emulate.add_argument("--station", default=str(CONFIGS / "station.emulated.yaml"), help="station file")
    emulate.add_argument("--chip", default=None, help="chip file (default: the station file's chip)")
    emulate.add_argument("--seed", type=int, default=None, help="override the chip's seed")
    emulate.add_argument("--realtime", action="store_true", help="wait for the modeled instrument time")
    emulate.set_defaults(func=_emulate)

    char = sub.add_parser("characterize", help="run characterization protocols into a session file")
    char.add_argument("--station", required=True, help="station file (configs/station.emulated.yaml: emulated)")
    char.add_argument("--protocol", required=True, action="append",
                      help="protocol file (configs/protocols/*.yaml); repeat to run several in order")
    char.add_argument("--out", required=True, help="session file to write (.h5)")
    char.add_argument("--resume", action="store_true", help="continue an interrupted session without repeating "
                      "or losing completed trials")
    char.add_argument("--chip", default=None, help="emulated station only: chip file on the chuck")
    char.add_argument("--seed", type=int, default=None, help="emulated station only: chip seed")
    char.add_argument("--record-transport", action="store_true",
                      help="also record every command and reply into the session (for hil replay --transport)")
    char.set_defaults(func=_characterize)

    rp = sub.add_parser("replay", help="re-run a recorded session on the simulator and compare, device by device")
    rp.add_argument("file")
    rp.add_argument("--chip", help="chip file to replay against (default: the embedded chip; or a calibrated one)")
    rp.add_argument("--out", help="folder for the PNG figures and replay.json")
    rp.add_argument("--transport", action="store_true", help="instead: replay the recorded instrument commands "
                    "and replies through the drivers and protocols, offline, and check the trials are identical")
    rp.add_argument("--json", action="store_true", help="print the summary as JSON")
    rp.set_defaults(func=_replay)

    cal = sub.add_parser("calibrate", help="fit every device's simulator parameters from a session into a chip file")
    cal.add_argument("file")
    cal.add_argument("--out", required=True, help="chip file to write (.yaml)")
    cal.add_argument("--base-chip", help="chip file whose material values the calibration starts from")
    cal.set_defaults(func=_calibrate)

    info = sub.add_parser("info", help="what a session file holds, and its fits")
    info.add_argument("file")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(func=_info)

    report = sub.add_parser("report", help="PNG figures and a text summary of a session")
    report.add_argument("file")
    report.add_argument("--out", required=True, help="output folder")
    report.set_defaults(func=_report)

    tr = sub.add_parser("train", help="train a network whose hidden neurons are the devices")
    tr.add_argument("--backend", required=True, choices=["hardware", "sim", "replay"])
    tr.add_argument("--station", help="hardware: station file (emulated: configs/station.emulated.yaml)")
    tr.add_argument("--chip", help="sim: chip file (default configs/chip.default.yaml); hardware on the emulated "
                    "station: the chip on the chuck")
    tr.add_argument("--session", help="replay: a recorded characterization session (.h5)")
    tr.add_argument("--mode", default="pulse", choices=["pulse", "curve"],
                    help="hardware: every sample a real trial (pulse) or sampled from re-measured curves (curve)")
    tr.add_argument("--mapping", default="calibrated", choices=["calibrated", "nominal"],
                    help="input → current: each device's own curve, or one nominal curve per width")
    tr.add_argument("--gradient", default="curve", choices=["curve", "straight_through"])
    tr.add_argument("--baselines", action="store_true", help="also train the software baselines "
                    "(deterministic sigmoid, ideal stochastic sigmoid) with the same architecture")
    tr.add_argument("--out", required=True, help="session file for the training run (.h5)")
    _add_training_options(tr, epochs=20)
    tr.set_defaults(func=_train)

    ex = sub.add_parser("experiment", help="reproduce a research claim: a table and a PNG")
    ex.add_argument("name", choices=["transfer", "bias", "energy"])
    ex.add_argument("--chip", help="chip file whose distributions the virtual devices are drawn from")
    ex.add_argument("--out", default="experiments", help="folder for the PNG and JSON")
    ex.add_argument("--json", action="store_true", help="print the table as JSON")
    _add_training_options(ex, epochs=20)
    ex.set_defaults(func=_experiment)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, KeyError, OSError, SessionError) as exc:
        # configuration, safety, session and instrument errors: the message says what is wrong and where
        print(f"hil {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
