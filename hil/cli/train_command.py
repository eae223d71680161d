"""``hil train``: a network whose hidden neurons are the devices, trained into a session file."""

from __future__ import annotations

import argparse

from hil.live.launch import add_live_option, live_view

PROGRESS_EVERY_S = 30.0  # hil.display.progress.LOG_EVERY_S, which --help must not import (it brings numpy, tqdm)


def add_training_options(parser: argparse.ArgumentParser, epochs: int) -> None:
    """The dataset and network options ``hil train`` and ``hil experiment`` share."""
    parser.add_argument("--dataset", default="digits", choices=["digits", "mnist"],
                        help="digits: scikit-learn's 8x8 digits (embedded); mnist: IDX files in --data-dir")
    parser.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files")
    parser.add_argument("--hidden", type=positive, nargs="+", default=None,
                        help="hidden layer sizes (default: 128; hil experiment synapses: 100 100 100 100)")
    parser.add_argument("--epochs", type=positive, default=epochs)
    parser.add_argument("--batch-size", type=positive, default=64)
    parser.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate")
    parser.add_argument("--eval-samples", type=positive, default=16,
                        help="stochastic samples averaged per evaluation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="torch device for the network and simulator (cpu, cuda)")


def add_progress_option(parser: argparse.ArgumentParser) -> None:
    """``--progress-every``: the interval of the progress lines off a terminal (0: no progress output)."""
    parser.add_argument("--progress-every", type=seconds, default=PROGRESS_EVERY_S, metavar="SECONDS",
                        help="off a terminal (a log file, nohup, CI), a progress line every SECONDS with done/total, "
                        "rate and time left (on a terminal: bars); 0 shows no progress (default: %(default)g)")


def seconds(text: str) -> float:
    """An argument that must be a number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected 0 or more seconds, got {text!r}")
    return value


def positive(text: str) -> int:
    """An argument that must be a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


OPTIONS = {"learning_rate": "--lr", "epochs": "--epochs"}  # TrainConfig setting → the option that sets it


def folder(text: str) -> str:
    """An argument naming a folder to write into: it may not exist yet, but must not be a file."""
    from pathlib import Path

    if Path(text).exists() and not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file: give a folder (it is created if missing)")
    return text


BACKEND_OPTIONS = {"station": ("hardware",), "chip": ("sim", "hardware"), "session": ("replay",)}


def check_backend_options(args: argparse.Namespace) -> None:
    """Refuse an option the chosen ``--backend`` would silently ignore (it is a mistake: the user meant it)."""
    from hil.training.config import TrainConfigError

    for option, backends in BACKEND_OPTIONS.items():
        if getattr(args, option) is not None and args.backend not in backends:
            raise TrainConfigError(f"--{option} is not used by --backend {args.backend} (only by --backend "
                                   f"{' or '.join(backends)}): leave it out, or choose that backend")


def train_config(args: argparse.Namespace, default_hidden: tuple[int, ...] = (128,)):  # noqa: ANN201 — TrainConfig
    """The training configuration of the options, checked: implausible values are warned about on stderr,
    and a torch ``--device`` this machine cannot use is refused (before any work starts)."""
    import sys

    from hil.training.config import TrainConfig, TrainConfigError, check_device

    if args.data_dir is not None and args.dataset != "mnist":
        raise TrainConfigError(f"--data-dir is for --dataset mnist (the {args.dataset} dataset is embedded): leave it "
                               "out, or add --dataset mnist")
    config = TrainConfig(hidden=tuple(args.hidden or default_hidden), epochs=args.epochs, batch_size=args.batch_size,
                         learning_rate=args.lr, seed=args.seed, eval_samples=args.eval_samples)
    for key, text in config.warnings().items():
        print(f"hil {args.command}: warning: {OPTIONS.get(key, key)} {text}", file=sys.stderr)
    if getattr(args, "device", None) is not None:
        check_device(args.device)
    return config


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a network whose hidden neurons are the devices",
                       description="Train a network whose hidden neurons are the devices, into a session file: "
                       "per-epoch records and a checkpoint are committed as it goes, so Ctrl-C or a crash loses at "
                       "most the steps since the last checkpoint and --resume continues.")
    p.add_argument("--backend", required=True, choices=["hardware", "sim", "replay"])
    p.add_argument("--station", help="hardware: station file (emulated: configs/station.emulated.yaml)")
    p.add_argument("--chip", help="sim: chip file (default configs/chip.default.yaml); hardware on the emulated "
                   "station: the chip on the chuck")
    p.add_argument("--session", help="replay: a recorded characterization session (.h5)")
    p.add_argument("--mode", default="pulse", choices=["pulse", "curve"],
                   help="hardware: every sample a real trial (pulse) or sampled from re-measured curves (curve)")
    p.add_argument("--mapping", default="calibrated", choices=["calibrated", "nominal"],
                   help="input → current: each device's own curve, or one nominal curve per width")
    p.add_argument("--gradient", default="curve", choices=["curve", "straight_through"])
    p.add_argument("--baselines", action="store_true", help="also train the software baselines "
                   "(deterministic sigmoid, ideal stochastic sigmoid) with the same architecture")
    p.add_argument("--out", required=True, help="session file for the training run (.h5)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted training session from its last "
                   "checkpoint (refused if the backend's source, the dataset, the seed or the version differ)")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    p.add_argument("--checkpoint-every", type=positive, default=None, metavar="STEPS",
                   help="commit a checkpoint every STEPS training steps (default: every epoch)")
    add_training_options(p, epochs=20)
    synapses = p.add_argument_group("DW synapses", "put every weight on few-state stochastic domain-wall synapses "
                                    "(with --backend sim: an all-spintronic network)")
    synapses.add_argument("--synapses", type=positive, default=None, metavar="K",
                          help="number of synapse states (2, 3, 5, ...; levels evenly spaced in [-1, 1])")
    synapses.add_argument("--synapse-model", default=None, metavar="FILE",
                          help="a synapse model file fitted from a programming characterization, instead of --synapses")
    synapses.add_argument("--synapse-session", default=None, metavar="FILE",
                          help="a session with a DW programming characterization: every programming draws one of "
                          "its recorded outcomes, instead of --synapses")
    synapses.add_argument("--synapse-mode", default="in-situ", choices=["in-situ", "ex-situ"],
                          help="in-situ: the devices are programmed during training; ex-situ: trained against the "
                          "device model, programmed once at the end")
    synapses.add_argument("--margin", type=float, default=0.25,
                          help="noise tolerance margin in level spacings (default: %(default)g)")
    synapses.add_argument("--synapse-sigma", type=float, default=None,
                          help="programming noise in level spacings (default: the chip file's, else 0.2)")
    add_progress_option(p)
    add_live_option(p)
    p.set_defaults(func=run)


def synapse_setup(args: argparse.Namespace, seed: int):  # noqa: ANN201 — (SynapseBackend, SynapseConfig) | None
    """The DW synapses of the options (``None`` without --synapses, --synapse-model or --synapse-session),
    refused before any work starts when the options do not fit together."""
    from dataclasses import replace

    from hil.synapses.dw_linear import SynapseConfig
    from hil.synapses.sim_synapses import SimSynapseBackend, chip_synapses
    from hil.training.config import TrainConfigError
    from sim_backend.dw_synapse import DWSynapseConfig

    given = [option for option, value in (("--synapses", args.synapses), ("--synapse-model", args.synapse_model),
                                          ("--synapse-session", args.synapse_session)) if value is not None]
    if len(given) > 1:
        raise TrainConfigError(f"{' and '.join(given)} {'both' if len(given) == 2 else 'all'} give the synapse "
                               "states: choose one")
    if not given:
        for option, value, default in (("synapse-sigma", args.synapse_sigma, None), ("margin", args.margin, 0.25),
                                       ("synapse-mode", args.synapse_mode, "in-situ")):
            if value != default:
                raise TrainConfigError(f"--{option} needs DW synapses: add --synapses K, --synapse-model FILE or "
                                       "--synapse-session FILE")
        return None
    if not (args.margin >= 0 and args.margin < float("inf")):
        raise TrainConfigError(f"--margin: expected a number of level spacings, 0 or more, got {args.margin!r}")
    if args.synapse_sigma is not None and args.synapses is None:
        raise TrainConfigError(f"--synapse-sigma does not apply with {given[0]} (it gives the noise): leave it out")
    synapse_config = SynapseConfig(args.synapse_mode, args.margin)
    if args.synapse_session is not None:
        from hil.synapses.recorded_synapses import RecordedSynapseBackend

        return (RecordedSynapseBackend.from_session(args.synapse_session, seed=seed + 17, device=args.device),
                synapse_config)
    if args.synapse_model is not None:
        from hil.synapses.synapse_model_file import load_synapse_model

        device = load_synapse_model(args.synapse_model)
    else:
        if args.synapses < 2:
            raise TrainConfigError(f"--synapses: a synapse needs at least 2 states, got {args.synapses}")
        device = chip_synapses(args.chip) if args.backend != "replay" else DWSynapseConfig()
        device = device.with_states(args.synapses)
        if args.synapse_sigma is not None:
            device = replace(device, sigma=args.synapse_sigma)
    return SimSynapseBackend(device, seed=seed + 17, device=args.device), synapse_config


def run(args: argparse.Namespace) -> int:
    import sys

    from hil.lab.characterization import RESUMED_OUTCOME_SEED
    from hil.lab.provenance import check_resume
    from hil.neurons.curve_tracking import CurveTrackingBackend
    from hil.neurons.layers import NeuronConfig
    from hil.neurons.sources import open_backend, source_identity
    from hil.offline.summary import session_info
    from hil.outputs import check_outputs
    from hil.session import Session
    from hil.training.datasets import load_dataset
    from hil.training.instrument_plan import duration_text, plan_trials
    from hil.training.training_run import train_to_session, training_identity

    check_backend_options(args)
    config = train_config(args)
    synapses, synapse_config = synapse_setup(args, config.seed) or (None, None)
    dataset = load_dataset(args.dataset, args.data_dir, seed=args.seed)
    outcome_seed = None
    if args.resume:  # refused before any instrument is touched or any trial played
        check_resume(args.out, training_identity(dataset, args.backend, source_identity(
            args.backend, args.station, args.chip, args.session), config, synapses, synapse_config))
        with Session(args.out) as recorded:
            outcome_seed = RESUMED_OUTCOME_SEED + int(recorded.attrs.get("attempts", 0))
    else:
        check_outputs([args.out], args.force)
    with live_view(args, args.out), open_backend(args.backend, station=args.station, chip=args.chip,
                                                 session=args.session, seed=args.seed, mode=args.mode,
                                                 device=args.device, outcome_seed=outcome_seed) as (backend, source):
        print(f"{backend!r} on {dataset.describe().get('name')}: {config.hidden} hidden neurons, "
              f"{config.epochs} epochs", file=sys.stderr)
        if isinstance(backend, CurveTrackingBackend):  # the devices play trials: say how long they will take
            plan = plan_trials(dataset, config, backend)
            print(f"estimated instrument time ({backend.mode} mode): {plan.describe()}", file=sys.stderr)
        train_to_session(args.out, dataset, backend, source, config,
                         NeuronConfig(mapping=args.mapping, gradient=args.gradient), baselines=args.baselines,
                         resume=args.resume, force=args.force, steps_per_unit=args.checkpoint_every,
                         progress_every_s=args.progress_every, synapses=synapses, synapse_config=synapse_config)
        played = backend.physical_trials if isinstance(backend, CurveTrackingBackend) else None
        instrument_s = backend.instrument_time_s if isinstance(backend, CurveTrackingBackend) else 0.0
    training = session_info(args.out)["training"]
    print(f"test accuracy ({training['backend']}): {training['test_accuracy']:.4f}")
    for name in ("deterministic", "stochastic"):
        if f"{name}_accuracy" in training:
            print(f"test accuracy ({name} software baseline): {training[f'{name}_accuracy']:.4f}")
    print(f"pulses: {training['pulses']}, energy: {training['energy_j']:.4g} J; session: {args.out}")
    if played is not None:
        print(f"instrument time: {duration_text(instrument_s)} ({played:,} trials played on the devices)")
    if synapses is not None:
        print(f"DW synapses: {synapses.n_devices} devices of {synapses.states} states ({synapse_config.mode}, margin "
              f"{synapse_config.margin:g}), {synapses.program_events} programming events, "
              f"{synapses.program_energy_j:.4g} J")
    return 0
