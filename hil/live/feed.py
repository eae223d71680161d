"""What the live page shows, read from a session file that another process may still be writing.

:class:`SessionFeed` opens the file afresh on every :meth:`~SessionFeed.snapshot` (read-only, committed
units only, as :class:`~hil.session.Session` reads them) and turns each run into plain JSON:

- ``progress``: units and trials done of those planned, the rate of the current attempt and the ETA;
- ``curves``: per device (and pulse width) the P(I) points with their 95 % Wilson intervals, and the
  running logistic fit once three currents are measured (bias sweeps, reset checks, a hardware
  training run's own curves);
- ``loops``: every hysteresis loop, current and reading in step order;
- ``epochs``: a training run's loss and accuracies per epoch;
- ``tables``: the latest rows of any other record table (channel resistance, a sweep's points), with
  the fields' units as the descriptors declare them;
- ``errors``: the instrument errors recorded in the run, the error that stopped it, and lost devices.

The writer never waits for the reader: a read caught between two of its writes (HDF5 reports a damaged
object, or a count points past the rows) is retried a few times, and then the last good snapshot is
served; it is marked ``stale`` (with the reason) once reads have failed for ``QUIET_S``. Tables are
re-analysed only when their committed row count changed.
The process must not lock the file: ``hil watch`` sets ``HDF5_USE_FILE_LOCKING=FALSE`` before h5py loads.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hil.session import RunView, Session, SessionError
from protocols.analysis import loops_of, readable, switching_curves, text
from protocols.fits import FitError, fit_logistic, wilson_interval

# tables with a view of their own; every other record table is listed as rows
TRIALS, STEPS, EPOCHS, LOST = "trials", "steps", "epochs", "lost_devices"
TABLE_ROWS = 20  # latest rows shown of any other table
FIT_SAMPLES = 80  # points of a drawn fit curve
READ_TRIES, READ_PAUSE_S = 5, 0.05
QUIET_S = 5.0  # reads failing for longer than this are shown as such ("showing the last good read: why")
TRANSIENT = (OSError, KeyError, ValueError, RuntimeError, SessionError)


def finite(value: Any) -> float | None:
    """A float for JSON: NaN and infinities (which JSON cannot carry) become ``None``."""
    value = float(value)
    return value if math.isfinite(value) else None


def column(values: np.ndarray) -> list[Any]:
    if values.dtype.kind == "S":
        return [text(v) for v in values]
    if values.dtype.kind in "iub":
        return [int(v) for v in values]
    return [finite(v) for v in values]


def utc_seconds(stamp: Any) -> float | None:
    try:
        return dt.datetime.fromisoformat(str(stamp)).timestamp()
    except ValueError:
        return None


def progress(run: RunView, now: float) -> dict[str, Any]:
    """Units and trials done, the rate of the attempt now running and, while it runs, the time left."""
    units = run.units()
    n_units = int(run.attrs.get("n_units", 0))
    n_trials = int(run.attrs.get("n_planned_trials", 0))
    trials_done = int(units["n_trials"].sum()) if units.size else 0
    by_trials = n_trials > 0
    out: dict[str, Any] = {"units_done": int(units.size), "n_units": n_units, "trials_done": trials_done,
                           "n_trials": n_trials, "rate": None, "rate_unit": "trials/s" if by_trials else "units/s",
                           "eta_s": None}
    if not units.size:
        return out
    attempt = units[units["attempt"] == units["attempt"][-1]]
    work = attempt["n_trials"].astype(float) if by_trials else np.ones(attempt.size)
    if attempt.size >= 2:  # from the first to the last commit of this attempt
        elapsed, done = float(attempt["time_s"][-1] - attempt["time_s"][0]), float(work[1:].sum())
    else:  # from the start of the attempt to its first commit
        began = utc_seconds(run.attrs.get("resumed_utc") or run.attrs.get("started_utc"))
        elapsed, done = (float(attempt["time_s"][-1]) - began if began else 0.0), float(work.sum())
    if elapsed > 0 and done > 0:
        out["rate"] = done / elapsed
        if run.status == "running":
            left = (n_trials - trials_done) if by_trials else (n_units - int(units.size))
            last_commit = float(units["time_s"][-1])
            out["eta_s"] = max(0.0, left / out["rate"] - max(0.0, now - last_commit))
    return out


def curves(counts: dict[tuple[str, float, float], tuple[int, int]]) -> list[dict[str, Any]]:
    """P(I) per device and pulse width from ``(device, current, width) → (trials, switched)``: the points
    with their Wilson intervals, and the logistic fit once it has one."""
    out = []
    for device, width in sorted({(d, w) for d, _, w in counts}):
        current = np.array(sorted(a for d, a, w in counts if (d, w) == (device, width)))
        n, k = (np.array([counts[(device, a, width)][i] for a in current], dtype=float) for i in (0, 1))
        low, high = wilson_interval(k, n)
        entry: dict[str, Any] = {"device": device, "width_s": width, "current_a": column(current),
                                 "p": column(k / n), "ci_low": column(low), "ci_high": column(high),
                                 "n_trials": [int(v) for v in n], "fit": None}
        if current.size >= 3 and current.max() > 0:
            try:
                fit = fit_logistic(current, k, n)
            except FitError:
                fit = None
            if fit is not None and math.isfinite(fit.i50_a) and math.isfinite(fit.w_a) and fit.w_a > 0:
                grid = np.linspace(current.min(), current.max(), FIT_SAMPLES)
                entry["fit"] = {"i50_a": fit.i50_a, "i50_err_a": finite(fit.i50_err_a), "w_a": fit.w_a,
                                "w_err_a": finite(fit.w_err_a), "current_a": column(grid),
                                "p": column(fit.probability(grid))}
        out.append(entry)
    return out


class SwitchingTally:
    """The P(I) of a growing ``trials`` table: each committed row is counted once, when it first appears,
    so a sweep of hundreds of thousands of trials is not recounted at every read."""

    def __init__(self) -> None:
        self.rows = 0
        self.counts: dict[tuple[str, float, float], tuple[int, int]] = {}

    def __call__(self, trials: np.ndarray) -> list[dict[str, Any]]:
        if trials.size < self.rows:  # another file under the same name: start again
            self.rows, self.counts = 0, {}
        if trials.size > self.rows:
            for point in switching_curves(trials[self.rows:]):  # the new rows' counts, reset failures left out
                key = (text(point["device"]), float(point["amplitude_a"]), float(point["width_s"]))
                n, k = self.counts.get(key, (0, 0))
                self.counts[key] = (n + int(point["n_trials"]), k + int(point["n_switched"]))
            self.rows = int(trials.size)
        return curves(self.counts)


def loops(steps: np.ndarray) -> list[dict[str, Any]]:
    """Every hysteresis loop recorded so far, numbered per device."""
    if not steps.size:
        return []
    out, count = [], {}
    for device, current, reading in loops_of(steps):
        count[device] = count.get(device, 0) + 1
        shown = np.where(readable(reading), reading, np.nan)  # an overflow reading is drawn as a gap
        out.append({"device": device, "loop": count[device], "current_a": column(current),
                    "reading_ohm": column(shown)})
    return out


def epochs(rows: np.ndarray) -> dict[str, list[Any]] | None:
    if not rows.size:
        return None
    return {name: column(rows[name]) for name in ("epoch", "loss", "train_accuracy", "test_accuracy")}


def latest_rows(run: RunView, name: str, rows: np.ndarray) -> dict[str, Any]:
    """The last rows of a record table, with its fields' names and units."""
    descriptor = run.descriptors.get(name)
    units = {f.name: f.unit for f in descriptor.all_fields} if descriptor else {}
    names = list(rows.dtype.names or ())
    shown = rows[-TABLE_ROWS:]
    return {"name": name, "n_rows": int(rows.size), "fields": [{"name": n, "unit": units.get(n, "")} for n in names],
            "rows": [list(r) for r in zip(*(column(shown[n]) for n in names), strict=True)] if shown.size else []}


def errors(run: RunView, lost: np.ndarray) -> dict[str, Any]:
    recorded = run.attrs.get("instrument_errors") or []
    return {"instrument_errors": [dict(e) for e in recorded if isinstance(e, dict)],
            "stopped": str(run.attrs.get("error") or ""), "stopped_at": run.attrs.get("stopped_at"),
            "lost_devices": [{"device": text(d), "reason": text(r)} for d, r in zip(lost["device"], lost["reason"],
                                                                                     strict=True)] if lost.size else []}


class SessionFeed:
    """Snapshots of one session file for the live page (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._derived: dict[tuple[str, str], tuple[int, Any]] = {}  # (run, table) → (rows, view)
        self._tallies: dict[str, SwitchingTally] = {}  # run → its P(I) counts so far
        self._identity: tuple[str, str] | None = None  # which file, which start: the caches hold for it only
        self._last: dict[str, Any] | None = None
        self._last_at = -math.inf  # when it was read (monotonic clock)

    def snapshot(self) -> dict[str, Any]:
        """The session as the page shows it, read now (or the last good read, marked ``stale``)."""
        problem = ""
        for attempt in range(READ_TRIES):
            try:
                self._last, self._last_at = self._read(), time.monotonic()
                return self._last
            except TRANSIENT as exc:  # caught between two of the writer's flushes: read again
                problem = str(exc)
                if attempt + 1 < READ_TRIES:
                    time.sleep(READ_PAUSE_S)
        if not self.path.exists():
            problem = f"{self.path} does not exist (yet)"
        if self._last is not None and time.monotonic() - self._last_at < QUIET_S:
            return self._last  # a writer busy committing: its last good state, unremarked for a moment
        base = self._last or {"file": self.path.name, "kind": "", "runs": []}
        return {**base, "stale": True, "problem": problem, "note": f"showing the last good read: {problem}"}

    def _read(self) -> dict[str, Any]:
        now = time.time()
        with Session(self.path) as session:
            identity = (str(session.attrs.get("created_utc")), str(session.attrs.get("attempt_log")))
            if identity != self._identity:  # a file replaced (--force) or continued (--resume): count afresh
                self._derived.clear()
                self._tallies.clear()
                self._identity = identity
            runs = [self._run(index, run, now) for index, run in enumerate(session.runs)]
            return {"file": self.path.name, "kind": session.kind, "created_utc": str(session.attrs.get(
                "created_utc", "")), "read_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    "stale": False, "note": "", "runs": runs}

    def _run(self, index: int, run: RunView, now: float) -> dict[str, Any]:
        counts = run.row_counts()
        out: dict[str, Any] = {"index": index, "name": run.name, "protocol": run.protocol, "status": run.status,
                               "role": str(run.parameters.get("role", "")), "progress": progress(run, now),
                               "curves": [], "loops": [], "epochs": None, "tables": []}
        views: dict[str, tuple[str, Callable[[np.ndarray], Any]]] = {
            TRIALS: ("curves", self._tallies.setdefault(run.name, SwitchingTally())), STEPS: ("loops", loops),
            EPOCHS: ("epochs", epochs)}
        for table, rows in counts.items():
            key, view = views.get(table, ("tables", None))
            if table == LOST:
                continue
            cached = self._derived.get((run.name, table))
            if cached is None or cached[0] != rows:
                data = run.table(table)  # the writer may have committed more since the count: keyed by what was read
                cached = (int(data.size), view(data) if view else latest_rows(run, table, data))
                self._derived[(run.name, table)] = cached
            if view:
                out[key] = cached[1]
            else:
                out["tables"].append(cached[1])
        out["errors"] = errors(run, run.table(LOST) if LOST in counts else np.zeros(0))
        return out
