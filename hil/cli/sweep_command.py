"""``hil sweep``: a design-space sweep on Ray, every point a task, every finished point into one session."""

from __future__ import annotations

import argparse

from hil.cli.train_command import add_progress_option, positive
from hil.live.launch import add_live_option, live_view


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="sweep an experiment over a design space on Ray, into one session",
                       description="Run the points of a sweep file (an experiment, its axes, its metrics) as tasks on "
                       "Ray: a local instance by default, or a cluster with --address. Every finished point is "
                       "committed to the session at once, so an interrupted sweep resumes with the points not yet "
                       "done; a point that fails is recorded with its error and the sweep goes on. hil report draws "
                       "the metrics against every swept axis.")
    p.add_argument("spec", help="sweep file (YAML, format hil-sweep/1; see configs/sweeps/)")
    p.add_argument("--out", required=True, help="session file to write (.h5)")
    p.add_argument("--workers", type=positive, default=None,
                   help="CPUs of the local Ray instance (default: all of this machine's)")
    p.add_argument("--address", default=None,
                   help="join the Ray cluster at this address (HEAD:6379; started with `ray start --head`) instead "
                   "of starting a local instance")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted sweep session: only the points not yet recorded run (refused if "
                   "the sweep file or the version differ)")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    add_progress_option(p)
    add_live_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hil.sweeps.sweep_session import run_sweep
    from hil.sweeps.sweep_spec import SweepSpecError, load_sweep

    if args.workers is not None and args.address is not None:
        raise SweepSpecError("--workers sets the local Ray instance's CPUs; a cluster (--address) has its own: "
                             "give one of them")
    spec = load_sweep(args.spec)
    with live_view(args, args.out):
        result = run_sweep(spec, args.out, workers=args.workers, address=args.address, resume=args.resume,
                           force=args.force, progress_every_s=args.progress_every)
    from hil.session import Session

    with Session(result.out) as session:
        summary = session.runs[-1].analysis("summary") or {}
    print(f"sweep {spec.name}: {result.status}, {summary.get('ok', 0)} of {result.points} points ok, "
          f"{summary.get('failed', 0)} failed; session: {result.out}")
    return 0
