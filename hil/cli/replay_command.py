"""``hil replay``: a recorded session against the simulator, or (``--transport``) through the drivers."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="re-run a recorded session on the simulator and compare, device by device")
    p.add_argument("file")
    p.add_argument("--chip", help="chip file to replay against (default: the embedded chip; or a calibrated one)")
    p.add_argument("--out", help="folder for the PNG figures and replay.json")
    p.add_argument("--force", action="store_true", help="replace files already in --out")
    p.add_argument("--format", default="png", choices=("png", "pdf", "svg"),
                   help="figure format: png (default), or vector pdf/svg")
    p.add_argument("--transport", action="store_true", help="instead: replay the recorded instrument commands "
                   "and replies through the drivers and protocols, offline, and check the records are identical")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    if args.transport:
        from hil.offline.transport_check import replay_transport

        result = replay_transport(args.file)
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            for run_ in result["runs"]:
                print(f"{run_['protocol']:18} {run_['n_records']:8d} records  "
                      f"{'identical' if run_['identical'] else 'DIFFERENT: ' + ', '.join(run_['differences'])}")
        return 0 if result["identical"] else 1
    from hil.offline.comparison import replay, write_replay_report
    from hil.outputs import check_outputs
    from instruments.failures import UserFacingError

    if not args.out:
        raise UserFacingError("--out DIR is needed for the comparison figures")
    check_outputs([f"{args.out}/replay.json"], args.force)
    result = replay(args.file, chip=args.chip)
    files = write_replay_report(result, args.out, session_path=args.file, force=args.force, fmt=args.format)
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k not in ("runs", "effects")} | {
            "runs": [{"name": r["name"], "protocol": r["protocol"],
                      "devices": {d: v["verdict"] for d, v in r["devices"].items()}} for r in result["runs"]],
            "effects": {name: {"verdict": row["verdict"],
                               "devices": {d: v["verdict"] for d, v in row["devices"].items()}}
                        for name, row in result["effects"].items()}}, indent=2))
    else:
        for run_ in result["runs"]:
            verdicts = run_["devices"]
            differing = [d for d, v in verdicts.items() if v["verdict"] == "differs"]
            print(f"run {run_['name']} {run_['protocol']:18} {len(verdicts) - len(differing)}/{len(verdicts)} "
                  "devices agree" + (f"; differ: {', '.join(differing)}" if differing else ""))
        for name, row in result["effects"].items():
            differing = row["devices_differing"]
            print(f"effect {name:22} {row['verdict']}: {len(row['devices']) - len(differing)}/{len(row['devices'])} "
                  "devices agree" + (f"; differ: {', '.join(differing)}" if differing else "")
                  + (f"; pooled p = {row['pooled']['p_value']:.2g}" if "pooled" in row else ""))
        print(f"verdict: {result['verdict']} (chip {result['chip']!r})")
        for path in files:
            print(path)
    return 0
