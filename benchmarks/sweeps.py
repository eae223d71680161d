"""Sweeps on Ray: throughput with 2 workers against 1, and the cost of a point beyond its own work.

Rows (every point the same fixed CPU work, :mod:`benchmarks.sweep_work`, about 0.5 s on one thread):

- ``sweep_throughput_2_vs_1_workers``: points per second of a sweep on a local Ray instance with 2 worker
  CPUs, reference the same sweep with 1 (goal: ratio ≥ 1.8 on 2 cores). Ray is started (and its workers
  warmed up) before each timed sweep, which is then timed whole: tasks, results, the HDF5 session commits.
- ``sweep_overhead_per_point``: what a point costs beyond its task on 1 Ray worker: the gap between one task's
  end and the next one's start on the worker (each point's ``finished`` time and task ``seconds`` as its session
  records them), median over the sweep's consecutive points; reference: the task time per point, so the ratio is
  the overhead as a fraction of a point's time (goal ≤ 0.02). The gap holds the result's hand-over and the next
  task's dispatch; the driver's ``ray.get`` and session commit overlap the next task (two are in flight per
  worker) and show only where they outlast it. The sweep's fixed costs (creating and closing the session
  file, the function's export, the first task's start) are not per point and not in this row.
- ``sweep_work_in_worker_vs_in_process``: a point's task time in the Ray worker against the same work run in
  this process right after, in the same repetition: how much Ray's own processes, competing for the cores,
  slow the work itself (not part of the overhead above).

Repetitions alternate the two configurations; the spread is over the repetitions.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import Row, spread_of
from benchmarks.sweep_work import matmuls
from hil.session import Session
from hil.sweeps.sweep_session import run_sweep
from hil.sweeps.sweep_spec import parse_sweep

POINTS = 24
REPEATS = 2000  # matrix products per point: about 0.5 s
REPETITIONS = 3
IN_PROCESS_POINTS = 6  # the in-process reference: the same work, fewer points


def _spec(points: int, repeats: int, name: str):  # noqa: ANN202 — SweepSpec
    return parse_sweep({"format": "hil-sweep/1", "name": name, "experiment": "benchmarks.sweep_work:matmuls",
                        "base": {"repeats": repeats}, "axes": {"grid": {"i": list(range(points))}},
                        "metrics": ["trace"], "retries": 0})


def _timed_sweep(workers: int, folder: Path) -> tuple[float, np.ndarray, np.ndarray]:
    """Seconds of the timed sweep on ``workers`` worker CPUs, and its points' task times and end times."""
    import ray

    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        run_sweep(_spec(2 * workers, 10, "warm-up"), folder / "warm.h5", force=True, progress=False)
        start = time.perf_counter()
        run_sweep(_spec(POINTS, REPEATS, "timed"), folder / "timed.h5", force=True, progress=False)
        timed = time.perf_counter() - start
    finally:
        ray.shutdown()
    with Session(folder / "timed.h5") as session:
        points = session.runs[0].table("points")
    return timed, points["seconds"], points["finished"]


def _gaps(seconds: np.ndarray, finished: np.ndarray) -> np.ndarray:
    """On one worker, from each task's end to the next task's start (the points in the order they ended)."""
    order = np.argsort(finished)
    ends, starts = finished[order], (finished - seconds)[order]
    return starts[1:] - ends[:-1]


def run() -> list[Row]:
    with tempfile.TemporaryDirectory() as folder:
        times: dict[int, list[float]] = {1: [], 2: []}
        task_s: list[float] = []
        gap_s: list[float] = []
        in_process: list[float] = []
        for rep in range(REPETITIONS):
            for workers in ((1, 2) if rep % 2 == 0 else (2, 1)):
                timed, seconds, finished = _timed_sweep(workers, Path(folder))
                times[workers].append(timed)
                if workers == 1:
                    task_s.append(float(np.median(seconds)))
                    gap_s.append(float(np.median(_gaps(seconds, finished))))
            start = time.perf_counter()
            for i in range(IN_PROCESS_POINTS):
                matmuls({"repeats": REPEATS}, i)
            in_process.append((time.perf_counter() - start) / IN_PROCESS_POINTS)
    speedups = [one / two for one, two in zip(times[1], times[2], strict=True)]
    rate2 = [POINTS / t for t in times[2]]
    rate1 = [POINTS / t for t in times[1]]
    fractions = [gap / task for gap, task in zip(gap_s, task_s, strict=True)]
    slowdowns = [task / work for task, work in zip(task_s, in_process, strict=True)]
    work = statistics.median(in_process)
    return [
        Row("sweep_throughput_2_vs_1_workers", statistics.median(rate2), "points/s", statistics.median(rate1),
            spread_of(speedups)["median"], f"{POINTS} points of {work:.2f} s CPU work on a local Ray instance, into "
            "an HDF5 session; reference: 1 worker (goal >= 1.8)", spread_of(speedups)),
        Row("sweep_overhead_per_point", statistics.median(gap_s), "s", statistics.median(task_s),
            spread_of(fractions)["median"], "1 Ray worker: from a task's end to the next one's start (the session's "
            "finished and seconds columns), median over the sweep; reference: the task time per point (goal <= 0.02)",
            spread_of(fractions)),
        Row("sweep_work_in_worker_vs_in_process", statistics.median(task_s), "s", work, spread_of(slowdowns)["median"],
            "a point's task time in the 1-worker sweep; reference: the same work in this process, same repetition "
            "(the slowdown from Ray's processes sharing the cores)", spread_of(slowdowns)),
    ]
