"""``hil report``: figures and a text summary of a session."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="figures (PNG, or PDF/SVG) and a text summary of a session")
    p.add_argument("file")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--format", default="png", choices=("png", "pdf", "svg"),
                   help="figure format: png (default), or vector pdf/svg")
    p.add_argument("--force", action="store_true", help="replace figures already in --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hil.offline.figures import write_report

    for path in write_report(args.file, args.out, force=args.force, fmt=args.format):
        print(path)
    return 0
