"""``hil experiment``: a research claim of physics.md §3 reproduced as a table and a PNG."""

from __future__ import annotations

import argparse
from typing import Any

from hil.cli.train_command import add_progress_option, add_training_options, folder, positive, train_config

TRANSFER_SEEDS = 3  # the transfer table's default seeds: a t interval needs several


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", help="reproduce a research claim: a table and a PNG")
    p.add_argument("name", choices=["transfer", "bias", "energy", "synapses"])
    p.add_argument("--chip", help="chip file whose distributions the virtual devices are drawn from")
    p.add_argument("--out", type=folder, default="experiments", help="folder for the PNG and JSON")
    p.add_argument("--force", action="store_true", help="replace the experiment's files already in --out")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.add_argument("--seeds", type=positive, default=None,
                   help="transfer and synapses: training seeds from --seed, with intervals over them (default: "
                   f"transfer {TRANSFER_SEEDS}, synapses 1)")
    add_training_options(p, epochs=20)
    synapses = p.add_argument_group("synapses", "options of hil experiment synapses")
    synapses.add_argument("--states", type=positive, nargs="+", default=None, metavar="K",
                          help="numbers of synapse states to compare (default: 2 3 5)")
    synapses.add_argument("--margin", type=fraction, default=None,
                          help="noise tolerance margin in level spacings (default: 0.25)")
    synapses.add_argument("--sigma", type=fraction, default=None,
                          help="programming noise in level spacings (default: the chip file's, else 0.2)")
    synapses.add_argument("--synapse-model", default=None, metavar="FILE",
                          help="a synapse model file fitted from a programming characterization (its levels "
                          "and per-state noise; --states and --sigma do not apply)")
    synapses.add_argument("--synapse-session", default=None, metavar="FILE",
                          help="a session with a DW programming characterization: every programming draws one "
                          "of its recorded outcomes (--states and --sigma do not apply)")
    synapses.add_argument("--draws", type=positive, default=5, help="ex situ: programming-noise draws evaluated")
    synapses.add_argument("--neurons", default="sigmoid", choices=["sigmoid", "sim"],
                          help="hidden neurons: software sigmoids, or simulated SOT devices of --chip "
                          "(an all-spintronic network)")
    add_progress_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from hil.display.progress import TrainingProgress
    from hil.training.claims import run_experiment
    from hil.training.config import TrainConfigError
    from hil.training.datasets import load_dataset
    from hil.training.synapse_experiment import DEFAULT_HIDDEN

    if args.seeds is not None and args.name not in ("transfer", "synapses"):
        raise TrainConfigError(f"--seeds is for hil experiment transfer and synapses (the {args.name} experiment "
                               "trains one seed): leave it out")
    config = train_config(args, DEFAULT_HIDDEN if args.name == "synapses" else (128,))
    options = synapse_options(args, config) if args.name == "synapses" else None
    seeds = [args.seed + i for i in range(args.seeds or TRANSFER_SEEDS)] if args.name == "transfer" else None
    dataset = load_dataset(args.dataset, args.data_dir, seed=args.seed)
    progress = TrainingProgress(log_every_s=args.progress_every)
    try:
        result = run_experiment(args.name, dataset, config, chip=args.chip, out_dir=args.out,
                                device=args.device, force=args.force, progress=progress, synapse_options=options,
                                seeds=seeds)
    finally:
        progress.close()
    if args.json:
        print(json.dumps(result["table"], indent=2))
    else:
        print(result["text"])
        for path in result["files"]:
            print(path)
    return 0


def fraction(text: str) -> float:
    """An argument that must be a number of 0 or more (a fraction of the level spacing)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of 0 or more, got {text!r}")
    return value


def synapse_options(args: argparse.Namespace, config: Any) -> dict[str, Any]:
    """The keyword arguments of the synapse experiment from the options, refusing ones that do not apply."""
    from dataclasses import replace

    from hil.neurons.simulated import SimBackend
    from hil.synapses.sim_synapses import chip_synapses
    from hil.training.config import TrainConfigError
    from hil.training.synapse_experiment import DEFAULT_MARGIN, DEFAULT_STATES
    from sim_backend.dw_synapse import DWSynapseConfig

    make_synapses = None
    if args.synapse_model is not None and args.synapse_session is not None:
        raise TrainConfigError("--synapse-model and --synapse-session both describe the synapses: choose one")
    given = "--synapse-model" if args.synapse_model is not None else "--synapse-session"
    if args.synapse_model is not None or args.synapse_session is not None:
        for option in ("states", "sigma"):
            if getattr(args, option) is not None:
                raise TrainConfigError(f"--{option} does not apply with {given} (it gives the levels and the "
                                       "per-state noise): leave it out")
    if args.synapse_model is not None:
        from hil.synapses.synapse_model_file import load_synapse_model

        synapse, states = load_synapse_model(args.synapse_model), ()
    elif args.synapse_session is not None:
        from hil.synapses.recorded_synapses import RecordedSynapseBackend

        session = args.synapse_session
        synapse, states = RecordedSynapseBackend.from_session(session).config, ()

        def make_synapses(_: DWSynapseConfig, seed: int) -> RecordedSynapseBackend:
            return RecordedSynapseBackend.from_session(session, seed=seed, device=args.device)
    else:
        synapse = chip_synapses(args.chip)
        if args.sigma is not None:
            synapse = replace(synapse, sigma=args.sigma)
        states = tuple(args.states or DEFAULT_STATES)
    neurons: Any = "deterministic"
    if args.neurons == "sim":
        neurons = SimBackend.virtual(sum(config.hidden), chip=args.chip, seed=config.seed + 30, device=args.device)
    return {"synapse": synapse, "states": states, "margin": DEFAULT_MARGIN if args.margin is None else args.margin,
            "seeds": [args.seed + i for i in range(args.seeds or 1)], "draws": args.draws, "neurons": neurons,
            "make_synapses": make_synapses}
