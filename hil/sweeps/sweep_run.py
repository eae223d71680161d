"""A sweep as a run of the record engine, its points computed as tasks on Ray.

:class:`SweepRun` is a :class:`~protocols.engine.Concurrent` measurement: its plan is the sweep's points
(one unit each), every point is one Ray task (with the point's own seed), and each point's row is committed
to the session as soon as its task finishes, in whatever order they finish. An interrupted sweep resumes
with only the points not yet committed. A point whose task raises is recorded as ``failed`` with its error
(the sweep goes on); a point whose worker dies (a crashed process, a lost node) is run again up to the
spec's ``retries`` times by Ray, and recorded as failed after that.

Ray runs locally by default (``ray.init`` with ``workers`` CPUs: an embedded instance, no set-up), or joins
a cluster with ``address`` (``ray start --head`` on one machine, ``ray start --address=HEAD:6379`` on the
others; every machine needs this package installed).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from hil.sweeps.sweep_points import check_paths, metrics_of, resolve, settings_of
from hil.sweeps.sweep_spec import SweepSpec, SweepSpecError
from protocols.engine import Unit
from protocols.fits import mean_interval
from protocols.records import Descriptor, Field

POINTS = "points"
OK, FAILED = b"ok", b"failed"
ERROR_CHARS = 400


def _numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def point_task(experiment: str, settings: dict[str, Any], seed: int) -> dict[str, Any]:
    """One point, in a worker: the experiment's metrics, the wall time, when it finished and the node."""
    started = time.perf_counter()
    metrics = resolve(experiment)(settings, seed)
    node = ""
    try:
        import ray

        node = ray.get_runtime_context().get_node_id()[:12]
    except Exception:  # noqa: BLE001 — run outside Ray (the sequential fallback): no node to name
        pass
    return {"metrics": {k: float(v) for k, v in metrics.items()}, "seconds": time.perf_counter() - started,
            "finished": time.time(), "node": node}


class SweepRun:
    """The sweep ``spec`` (see the module docstring). ``workers``: CPUs of the local Ray instance (default:
    this machine's); ``address``: a Ray cluster to join instead."""

    name = "sweep"

    def __init__(self, spec: SweepSpec, workers: int | None = None, address: str | None = None) -> None:
        self.spec = spec
        self.workers = workers
        self.address = address
        resolve(spec.experiment)  # an experiment that cannot be loaded is refused before anything runs
        known = metrics_of(spec.experiment)
        if known is not None:
            unknown = [m for m in spec.metrics if m not in known]
            if unknown:
                raise SweepSpecError(f"metrics: {unknown[0]!r} is not a metric of experiment {spec.experiment} "
                                     f"(metrics: {', '.join(known)})")
        self.points = spec.points()
        check_paths(spec.base)
        # every point's settings checked in full now: a bad value stops the sweep before any task starts
        self.settings = [settings_of(spec.experiment, spec.base, p["params"]) for p in self.points]
        self.axes = spec.axis_names
        self.numeric_axes = {name: _numeric([s[name] for s in self.settings]) for name in self.axes}
        fields = [Field("point", "i8", "", "index of the point in the sweep's plan"),
                  Field("seed", "i8", "", "the point's own seed")]
        fields += [Field(f"axis_{name}", "f8" if self.numeric_axes[name] else "S64", "",
                         f"swept setting {name} (SI units)") for name in self.axes]
        fields += [Field(f"metric_{name}", "f8", "", f"metric {name} (NaN when the point failed)")
                   for name in spec.metrics]
        fields += [Field("status", "S8", "", "ok, or failed (the error is in error)"),
                   Field("error", f"S{ERROR_CHARS}", "", "why the point failed (empty when ok)"),
                   Field("seconds", "f8", "s", "wall time of the point's task", reproducible=False),
                   Field("finished", "f8", "s", "when the point's task ended (Unix time, its node's clock)",
                         reproducible=False),
                   Field("node", "S16", "", "the Ray node that computed it", reproducible=False)]
        self.descriptors = (Descriptor(POINTS, tuple(fields), "one row per finished point of the sweep"),)

    def parameters(self) -> dict[str, Any]:
        return {"spec": self.spec.as_dict()}

    def plan(self) -> list[Unit]:
        return [Unit(p["point"], params={"seed": p["seed"], "params": p["params"]}) for p in self.points]

    # -- measuring --------------------------------------------------------------------------------------------

    def _row(self, unit: Unit, result: Mapping[str, Any] | None, error: str = "") -> dict[str, np.ndarray]:
        rows = self.descriptors[0].rows(1, unit.index)
        rows["point"], rows["seed"] = unit.index, unit.params["seed"]
        settings = self.settings[unit.index]
        for name in self.axes:
            value = settings[name]
            rows[f"axis_{name}"] = value if self.numeric_axes[name] else str(value).encode()[:64]
        metrics = (result or {}).get("metrics", {})
        missing = [m for m in self.spec.metrics if m not in metrics] if result is not None else []
        if missing:
            error, result = f"the experiment returned no {', '.join(missing)}", None
        for name in self.spec.metrics:
            rows[f"metric_{name}"] = metrics.get(name, math.nan) if result is not None else math.nan
        rows["status"] = OK if result is not None else FAILED
        rows["error"] = error.encode("utf-8", "replace")[:ERROR_CHARS]
        rows["seconds"] = (result or {}).get("seconds", math.nan)
        rows["finished"] = (result or {}).get("finished", math.nan)
        rows["node"] = str((result or {}).get("node", "")).encode()[:16]
        return {POINTS: rows}

    def measure(self, unit: Unit) -> dict[str, np.ndarray]:
        """One point in this process (what a sweep does without Ray: the same rows)."""
        try:
            result = point_task(self.spec.experiment, self.settings[unit.index], unit.params["seed"])
        except Exception as exc:  # noqa: BLE001 — a failed point is recorded, not fatal
            return self._row(unit, None, f"{type(exc).__name__}: {exc}")
        return self._row(unit, result)

    def measure_all(self, units: Sequence[Unit]) -> Iterator[tuple[Unit, dict[str, np.ndarray]]]:
        """Every point of ``units`` as a Ray task; yields each as it finishes (see the module docstring)."""
        if not units:
            return
        import ray
        from ray.exceptions import RayError, RayTaskError

        started_here = start_ray(self.workers, self.address)
        try:
            remote = ray.remote(num_cpus=1, max_retries=self.spec.retries, retry_exceptions=False)(point_task)
            capacity = max(1, int(ray.cluster_resources().get("CPU", 1)))
            waiting = list(units)
            pending: dict[Any, Unit] = {}
            try:
                while waiting or pending:
                    while waiting and len(pending) < 2 * capacity:
                        unit = waiting.pop(0)
                        pending[remote.remote(self.spec.experiment, self.settings[unit.index],
                                              unit.params["seed"])] = unit
                    done, _ = ray.wait(list(pending), num_returns=1)
                    unit = pending.pop(done[0])
                    try:
                        row = self._row(unit, ray.get(done[0]))
                    except RayTaskError as exc:
                        cause = exc.cause if isinstance(exc.cause, BaseException) else exc
                        row = self._row(unit, None, f"{type(cause).__name__}: {cause}")
                    except RayError as exc:  # the worker died (after the retries) or the node was lost
                        row = self._row(unit, None, f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
                    yield unit, row
            finally:
                # the points in flight are dropped: a local instance started here goes down with its workers
                # below; on an instance that was already up, they are asked to stop (a forced cancel racing the
                # shutdown can abort Ray's core worker)
                if not started_here:
                    for ref in pending:
                        ray.cancel(ref)
        finally:
            if started_here:
                ray.shutdown()

    # -- analysis ---------------------------------------------------------------------------------------------

    def analyse(self, tables: Mapping[str, np.ndarray]) -> dict[str, Any]:
        rows = tables[POINTS]
        return {"summary": {"points": int(rows.size), "ok": int((rows["status"] == OK).sum()),
                            "failed": int((rows["status"] == FAILED).sum()), "experiment": self.spec.experiment,
                            "axes": self.axes, "metrics": list(self.spec.metrics)},
                "by_axis": by_axis(rows, self.axes, self.spec.metrics)}


def start_ray(workers: int | None, address: str | None) -> bool:
    """Start a local Ray instance with ``workers`` CPUs, or join the cluster at ``address``; ``False`` when
    this process was already connected."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR,
             "configure_logging": True}
    if address is not None:
        ray.init(address=address, **quiet)
    else:
        ray.init(num_cpus=workers or os.cpu_count() or 1, **quiet)
    return True


def by_axis(rows: np.ndarray, axes: Sequence[str], metrics: Sequence[str]) -> dict[str, Any]:
    """For every axis and metric: per value of the axis, the mean over the finished points with that value
    (all seeds and the other axes' values) and its 95 % t interval."""
    ok = rows[rows["status"] == OK]
    out: dict[str, Any] = {}
    for axis in axes:
        column = ok[f"axis_{axis}"]
        values = sorted(set(column.tolist()))
        entry: dict[str, Any] = {"values": [v.decode() if isinstance(v, bytes) else v for v in values]}
        for metric in metrics:
            stats_ = []
            for value in values:
                picked = [float(x) for x in ok[f"metric_{metric}"][column == value] if math.isfinite(x)]
                stats_.append(list(mean_interval(picked)) + [len(picked)] if picked else [math.nan] * 3 + [0])
            entry[metric] = {"mean": [s[0] for s in stats_], "low": [s[1] for s in stats_],
                             "high": [s[2] for s in stats_], "n": [s[3] for s in stats_]}
        out[axis] = entry
    return out
