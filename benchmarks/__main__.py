"""Run the benchmarks and print a table (or ``--json``).

Torch runs on one intra-op and one inter-op thread, pinned before any entry runs: the machines are small and
shared, and torch's default threads on busy cores make the same work several times slower from run to run.
"""

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
    "sweeps": "benchmarks.sweeps",
    "macrospin": "benchmarks.macrospin_steps",
}
# reliability runs on its own (minutes)
DEFAULT = ("sampling", "instruments", "recording", "training", "synapses", "sweeps", "macrospin")
THREADS = 1


def pin_threads(threads: int = THREADS) -> str:
    """Pin torch's intra-op and inter-op threads; returns the sentence the output states it with."""
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already fixed: inter-op work ran in this process before (e.g. main called twice)
        pass
    return (f"torch {torch.__version__}: {torch.get_num_threads()} intra-op thread(s), "
            f"{torch.get_num_interop_threads()} inter-op thread(s), pinned before any entry ran")


def _spread(row) -> str:
    if row.spread is None:
        return ""
    return f"{row.spread['min']:.4g}/{row.spread['median']:.4g}/{row.spread['max']:.4g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the rows as a JSON list")
    parser.add_argument("--only", choices=sorted(ENTRIES), help="run one entry")
    args = parser.parse_args(argv)
    threads = pin_threads()
    print(threads, file=sys.stderr, flush=True)
    rows = []
    for name in [args.only] if args.only else DEFAULT:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows.extend(importlib.import_module(ENTRIES[name]).run())
    if args.json:
        print(json.dumps([row.as_dict() for row in rows], indent=2))
        return 0
    header = (f"{'name':40} {'value':>11} {'unit':11} {'reference':>11} {'ratio':>8}  "
              f"{'spread min/med/max':26}  note")
    print(header)
    print("-" * len(header))
    for row in rows:
        ref = f"{row.reference:11.4g}" if row.reference is not None else " " * 11
        ratio = f"{row.ratio:8.4g}" if row.ratio is not None else " " * 8
        print(f"{row.name:40} {row.value:11.4g} {row.unit:11} {ref} {ratio}  {_spread(row):26}  {row.note}")
    print(f"\n({threads}; ratio = value / reference; spread = min/median/max over the interleaved repetitions "
          "(or seeds) of the ratio, or of the value where there is no reference)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
