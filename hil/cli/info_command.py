"""``hil info``: what a session file holds, and its fits."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="what a session file holds, and its fits")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from hil.offline.summary import format_info, session_info

    info = session_info(args.file)
    print(json.dumps(info, indent=2, default=str) if args.json else format_info(info))
    return 0
