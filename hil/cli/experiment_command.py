"""``hil experiment``: a research claim of physics.md §3 reproduced as a table and a PNG."""

from __future__ import annotations

import argparse

from hil.cli.train_command import add_progress_option, add_training_options, folder, train_config


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", help="reproduce a research claim: a table and a PNG")
    p.add_argument("name", choices=["transfer", "bias", "energy"])
    p.add_argument("--chip", help="chip file whose distributions the virtual devices are drawn from")
    p.add_argument("--out", type=folder, default="experiments", help="folder for the PNG and JSON")
    p.add_argument("--force", action="store_true", help="replace the experiment's files already in --out")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    add_training_options(p, epochs=20)
    add_progress_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from hil.display.progress import TrainingProgress
    from hil.training.claims import run_experiment
    from hil.training.datasets import load_dataset

    dataset = load_dataset(args.dataset, args.data_dir, seed=args.seed)
    progress = TrainingProgress(log_every_s=args.progress_every)
    try:
        result = run_experiment(args.name, dataset, train_config(args), chip=args.chip, out_dir=args.out,
                                device=args.device, force=args.force, progress=progress)
    finally:
        progress.close()
    if args.json:
        print(json.dumps(result["table"], indent=2))
    else:
        print(result["text"])
        for path in result["files"]:
            print(path)
    return 0
