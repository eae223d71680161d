"""A sweep into a session file: the run engine, the session writer and the progress display together."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

from hil import __version__
from hil.display.progress import LOG_EVERY_S, ProgressSink
from hil.lab.provenance import check_resume, mark_resumable
from hil.session.sinks import SessionStore
from hil.session.writer import SessionWriter, check_new
from hil.sweeps.sweep_run import SweepRun
from hil.sweeps.sweep_spec import SweepSpec
from protocols.engine import RunEngine, check_resumable


@dataclass
class SweepResult:
    out: Path
    status: str
    points: int


def sweep_identity(spec: SweepSpec) -> dict:
    """What a resumed sweep session must match: the whole sweep file and the software version."""
    return {"software_version": __version__, "sweep": spec.as_dict()}


def run_sweep(spec: SweepSpec, out: str | Path, workers: int | None = None, address: str | None = None,
              resume: bool = False, force: bool = False, progress: bool | None = None,
              progress_every_s: float = LOG_EVERY_S) -> SweepResult:
    """Run ``spec`` into the session ``out`` (``resume``: continue it; ``force``: replace it)."""
    out = Path(out)
    run = SweepRun(spec, workers=workers, address=address)  # checks every point before anything starts
    identity = sweep_identity(spec)
    if resume:
        check_resume(out, identity)
        writer = SessionWriter.resume(out)
    else:
        check_new(out, force)
        writer = SessionWriter.create(out, "sweep", {"identity": identity, "sweep": spec.as_dict(),
                                                     "hostname": platform.node(),
                                                     "ray_address": address or "local"}, overwrite=force)
    progress_sink = ProgressSink(progress, log_every_s=progress_every_s, units_label="points")
    try:
        store = SessionStore(writer)
        if resume:
            check_resumable([run], store.recorded())
        try:
            statuses = RunEngine(store, [progress_sink]).run([run], resume=resume)
        except BaseException as exc:
            mark_resumable(exc, out)
            raise
        finally:
            progress_sink.close()
    finally:
        writer.close()
    return SweepResult(out, statuses[0], len(run.points))
