"""Sweeps on Ray: throughput with 2 workers against 1, and the cost of a point beyond its own work.

Rows (every point the same fixed CPU work, :mod:`benchmarks.sweep_work`, about 0.5 s on one thread):

- ``sweep_throughput_2_vs_1_workers``: points per second of a sweep on a local Ray instance with 2 worker
  CPUs, reference the same sweep with 1 (goal: ratio ≥ 1.8 on 2 cores). Ray is started (and its workers
  warmed up) before each timed sweep, which is then timed whole: tasks, results, the HDF5 session commits.
- ``sweep_overhead_per_point``: seconds a point costs beyond its work on 1 Ray worker (the sweep's wall
  time minus the same points' work done in this process, per point), reference the work per point; the ratio
  is the overhead as a fraction of the point's time (goal ≤ 0.02). Everything Ray adds is in it, its own
  processes competing for the cores included; being the difference of two sweeps of several seconds, it carries
  their noise (a few tens of ms per point).
- ``sweep_dispatch_per_point``: the part of that overhead a point's task, result and session commit cost alone:
  a sweep of points with almost no work on the same Ray instance right after the timed 1-worker sweep, minus the
  same work in-process, per point; same reference.

Repetitions alternate the two configurations; the spread is over the repetitions.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.harness import Row, spread_of
from benchmarks.sweep_work import matmuls
from hil.sweeps.sweep_session import run_sweep
from hil.sweeps.sweep_spec import parse_sweep

POINTS = 12
REPEATS = 2000  # matrix products per point: about 0.5 s
REPETITIONS = 3
EMPTY_POINTS = 60  # the dispatch sweep: points of one matrix product each


def _spec(points: int, repeats: int, name: str):  # noqa: ANN202 — SweepSpec
    return parse_sweep({"format": "hil-sweep/1", "name": name, "experiment": "benchmarks.sweep_work:matmuls",
                        "base": {"repeats": repeats}, "axes": {"grid": {"i": list(range(points))}},
                        "metrics": ["trace"], "retries": 0})


def _timed_sweep(workers: int, folder: Path) -> tuple[float, float | None]:
    """Seconds of the timed sweep and, on 1 worker, of the dispatch sweep (points with almost no work) after it."""
    import ray

    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        run_sweep(_spec(2 * workers, 10, "warm-up"), folder / "warm.h5", force=True, progress=False)
        start = time.perf_counter()
        run_sweep(_spec(POINTS, REPEATS, "timed"), folder / "timed.h5", force=True, progress=False)
        timed = time.perf_counter() - start
        if workers != 1:
            return timed, None
        start = time.perf_counter()
        run_sweep(_spec(EMPTY_POINTS, 1, "dispatch"), folder / "dispatch.h5", force=True, progress=False)
        return timed, time.perf_counter() - start
    finally:
        ray.shutdown()


def run() -> list[Row]:
    with tempfile.TemporaryDirectory() as folder:
        times: dict[int, list[float]] = {1: [], 2: []}
        empty_sweeps: list[float] = []
        in_process: list[float] = []
        empty_in_process: list[float] = []
        for rep in range(REPETITIONS):
            for workers in ((1, 2) if rep % 2 == 0 else (2, 1)):
                timed, dispatch_s = _timed_sweep(workers, Path(folder))
                times[workers].append(timed)
                if dispatch_s is not None:
                    empty_sweeps.append(dispatch_s)
            start = time.perf_counter()
            for i in range(POINTS):
                matmuls({"repeats": REPEATS}, i)
            in_process.append(time.perf_counter() - start)
            start = time.perf_counter()
            for i in range(EMPTY_POINTS):
                matmuls({"repeats": 1}, i)
            empty_in_process.append(time.perf_counter() - start)
    speedups = [one / two for one, two in zip(times[1], times[2], strict=True)]
    rate2 = [POINTS / t for t in times[2]]
    rate1 = [POINTS / t for t in times[1]]
    overheads = [(ray_s - work_s) / POINTS for ray_s, work_s in zip(times[1], in_process, strict=True)]
    dispatch = [(ray_s - work_s) / EMPTY_POINTS for ray_s, work_s in zip(empty_sweeps, empty_in_process, strict=True)]
    work = [work_s / POINTS for work_s in in_process]
    fractions = [o / w for o, w in zip(overheads, work, strict=True)]
    dispatch_fractions = [d / w for d, w in zip(dispatch, work, strict=True)]
    return [
        Row("sweep_throughput_2_vs_1_workers", statistics.median(rate2), "points/s", statistics.median(rate1),
            spread_of(speedups)["median"], f"{POINTS} points of {statistics.median(work):.2f} s CPU work on a local "
            "Ray instance, into an HDF5 session; reference: 1 worker (goal >= 1.8)", spread_of(speedups)),
        Row("sweep_overhead_per_point", statistics.median(overheads), "s", statistics.median(work),
            spread_of(fractions)["median"], "1 Ray worker: sweep wall time minus the same work in-process, per "
            "point; reference: the work per point (goal <= 0.02)", spread_of(fractions)),
        Row("sweep_dispatch_per_point", statistics.median(dispatch), "s", statistics.median(work),
            spread_of(dispatch_fractions)["median"], f"1 Ray worker: a sweep of {EMPTY_POINTS} points of almost no "
            "work (a task, its result, its record committed) minus the same work in-process, per point; reference: "
            "the work per point", spread_of(dispatch_fractions)),
    ]
