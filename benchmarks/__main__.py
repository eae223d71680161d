"""Run the benchmarks and print a table (or ``--json``)."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

import torch

# name → module in this package with a ``run() -> list[Row]``
ENTRIES = {
    "sampling": "benchmarks.sampling",
    "instruments": "benchmarks.instruments",
    "recording": "benchmarks.recording",
    "training": "benchmarks.training",
    "reliability": "benchmarks.reliability",
    "synapses": "benchmarks.synapses",
}
DEFAULT = ("sampling", "instruments", "recording", "training", "synapses")  # reliability runs on its own (minutes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the rows as a JSON list")
    parser.add_argument("--only", choices=sorted(ENTRIES), help="run one entry")
    args = parser.parse_args(argv)
    rows = []
    for name in [args.only] if args.only else DEFAULT:
        if not args.json:
            print(f"running {name} ...", file=sys.stderr, flush=True)
        rows.extend(importlib.import_module(ENTRIES[name]).run())
    if args.json:
        print(json.dumps([row.as_dict() for row in rows], indent=2))
        return 0
    header = f"{'name':40} {'value':>14} {'unit':12} {'reference':>14} {'ratio':>8}  note"
    print(header)
    print("-" * len(header))
    for row in rows:
        ref = f"{row.reference:14.4g}" if row.reference is not None else " " * 14
        ratio = f"{row.ratio:8.3f}" if row.ratio is not None else " " * 8
        print(f"{row.name:40} {row.value:14.4g} {row.unit:12} {ref} {ratio}  {row.note}")
    print(f"\n(torch {torch.__version__}, {torch.get_num_threads()} threads; ratio = value / reference)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
