"""Progress of long work: how much is done of how much, at what rate, and the time left.

On a terminal a progress bar; off a terminal (a log file, nohup, CI) one plain line every ``every_s``
seconds (default :data:`LOG_EVERY_S`) with the same figures, and one at the end, so that long work is
never silent. ``every_s`` 0 shows nothing.

- :class:`ProgressSink` follows the run engine's document stream (a characterization): trials (or units)
  of each protocol, and, given the work of all protocols, an overall bar and time left too.
- :class:`TrainingProgress` is a trainer's progress callback: steps of each epoch with the loss and
  accuracy, and overall the steps of all epochs of all the runs of a session (the baselines included).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

import numpy as np
from tqdm import tqdm

from protocols.engine import COMPLETED, BaseSink, RunStart, RunStop, Unit

LOG_EVERY_S = 30.0
Clock = Callable[[], float]


def duration(seconds: float) -> str:
    """``"45 s"``, ``"12 min"``, ``"3.2 h"``."""
    if not np.isfinite(seconds):
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def per_second(rate: float) -> str:
    """``"1,204"``, ``"3.2"``, ``"0.17"``: a rate to two significant digits or whole."""
    return f"{rate:,.0f}" if rate >= 10 else f"{rate:.2g}"


def work_of(units: Sequence[Unit]) -> int:
    """The work of a plan in steps: a unit counts its trials, or 1 if it plays none (a resistance, a loop)."""
    return int(sum(max(u.n_trials, 1) for u in units))


class Meter:
    """``done`` of ``total`` (in ``what``), the rate since it started counting, and the time left.

    Work done before (a resumed run) is :meth:`skip`-ped: it counts as done but not in the rate.
    """

    def __init__(self, total: int, what: str, clock: Clock = time.monotonic) -> None:
        self.total, self.what, self.clock = int(total), what, clock
        self.done = self.skipped = 0
        self.started = clock()

    def skip(self, n: int) -> None:
        self.done += n
        self.skipped += n

    def add(self, n: int) -> None:
        self.done += n

    def elapsed_s(self) -> float:
        return self.clock() - self.started

    def rate(self) -> float:
        """Work per second since counting started."""
        elapsed = self.elapsed_s()
        return (self.done - self.skipped) / elapsed if elapsed > 0 else 0.0

    def left_s(self) -> float:
        rate = self.rate()
        return max(self.total - self.done, 0) / rate if rate > 0 else float("inf")

    def fraction(self) -> str:
        """``"1,200/4,800 trials (25 %)"``."""
        percent = 100 * self.done / self.total if self.total else 100.0
        return f"{self.done:,}/{self.total:,} {self.what} ({percent:.0f} %)"

    def status(self) -> str:
        """The fraction, the rate and the time left, as a log line says them."""
        return f"{self.fraction()}, {per_second(self.rate())} {self.what}/s, about {duration(self.left_s())} left"

    def bar(self, stream: TextIO, desc: str, position: int, leave: bool) -> tqdm:
        """A terminal bar over the same work."""
        return tqdm(total=self.total, initial=self.done, desc=desc, unit=self.what.rstrip("s"), file=stream,
                    dynamic_ncols=True, smoothing=0.1, position=position, leave=leave)


class LogLines:
    """Plain progress lines off a terminal, one every ``every_s`` at most.

    :meth:`tick` says a status when one is due; :meth:`keep_alive` also ticks from a timer thread, so that a
    line still comes every interval while the work is inside one long step (a test evaluation on hardware,
    a slow unit) and nothing calls :meth:`tick`.
    """

    def __init__(self, stream: TextIO, every_s: float, clock: Clock) -> None:
        self.stream, self.every_s, self.clock = stream, every_s, clock
        self.last = clock()
        self.lock = threading.RLock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def due(self) -> bool:
        return self.clock() - self.last >= self.every_s

    def say(self, text: str) -> None:
        with self.lock:
            self.last = self.clock()
            print(text, file=self.stream, flush=True)

    def tick(self, status: Callable[[], str | None]) -> None:
        """Say ``status()`` if a line is due (and it has something to say)."""
        with self.lock:
            if self.due() and (text := status()) is not None:
                self.say(text)

    def keep_alive(self, status: Callable[[], str | None]) -> None:
        """Tick from a timer thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stopped.clear()

        def run() -> None:
            while not self._stopped.wait(min(self.every_s, 1.0)):
                self.tick(status)

        self._thread = threading.Thread(target=run, name="progress lines", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stopped.set()
            self._thread.join()
            self._thread = None


def _shows(enabled: bool | None, stream: TextIO, every_s: float) -> tuple[bool, bool]:
    """(shown at all, as a bar): ``enabled`` None means a bar on a terminal and lines elsewhere."""
    if enabled is False or every_s <= 0:
        return False, False
    return True, stream.isatty() if enabled is None else bool(enabled)


class ProgressSink(BaseSink):
    """Shows how far a characterization is (see the module docstring).

    ``enabled``: ``None`` shows a bar on a terminal and lines elsewhere, ``True`` a bar, ``False`` nothing.
    ``overall_work``: the work (:func:`work_of`) of all the runs to come, for an overall bar and time left.
    ``keep_alive``: off a terminal, a timer thread keeps the lines coming during a long unit.
    ``units_label``: what the units of a run without trials are called (``points`` for a sweep).
    """

    def __init__(self, enabled: bool | None = None, stream: TextIO | None = None,
                 log_every_s: float = LOG_EVERY_S, overall_work: int | None = None,
                 clock: Clock = time.monotonic, keep_alive: bool = True, units_label: str = "units") -> None:
        self.stream = stream or sys.stderr
        self.units_label = units_label
        self.shown, self.bar_mode = _shows(enabled, self.stream, log_every_s)
        self.clock = clock
        self.lines = LogLines(self.stream, log_every_s, clock)
        self.keep_alive = keep_alive
        self.overall = Meter(overall_work, "steps", clock) if overall_work else None
        self.overall_bar: tqdm | None = None
        self.bar: tqdm | None = None
        self.name = ""
        self.by_trials = True
        self.meter = Meter(0, "trials", clock)

    def start(self, run: RunStart) -> None:
        self.name = run.name
        self.by_trials = run.n_planned_trials > 0
        self.meter = Meter(run.n_planned_trials if self.by_trials else len(run.units),
                           "trials" if self.by_trials else self.units_label, self.clock)
        self.meter.skip(sum(u.n_trials if self.by_trials else 1 for u in run.units if u.index in run.done))
        if self.overall is not None:
            self.overall.skip(work_of([u for u in run.units if u.index in run.done]))
        if not self.shown:
            return
        if self.bar_mode:
            if self.overall is not None and self.overall_bar is None:
                self.overall_bar = self.overall.bar(self.stream, "overall", 0, leave=True)
            self.bar = self.meter.bar(self.stream, run.name, 1 if self.overall is not None else 0,
                                      leave=self.overall is None)
        else:
            if self.meter.done:
                self._line(f"resuming at {self.meter.fraction()}")
            if self.keep_alive:
                self.lines.keep_alive(self._status)

    def records(self, unit: Unit, tables: Mapping[str, np.ndarray], state: bytes | None) -> None:
        step = unit.n_trials if self.by_trials else 1
        self.meter.add(step)
        if self.overall is not None:
            self.overall.add(max(unit.n_trials, 1))
        if not self.shown:
            return
        if self.bar is not None:
            self.bar.update(step)
            if self.overall_bar is not None:
                self.overall_bar.update(max(unit.n_trials, 1))
        else:
            self.lines.tick(self._status)

    def _status(self) -> str | None:
        if self.meter.done >= self.meter.total:
            return None  # the stop line says it
        overall = f"; overall {self.overall.status()}" if self.overall is not None else ""
        return f"{self.name}: {self.meter.status()}{overall}"

    def stop(self, stop: RunStop) -> None:
        self.lines.stop()
        if not self.shown:
            return
        summary = f"{stop.status}: {self.meter.fraction()} in {duration(self.meter.elapsed_s())}"
        if self.bar is not None:
            self.bar.set_postfix_str(stop.status)
            self.bar.close()
            self.bar = None
            if self.overall_bar is not None:
                tqdm.write(f"{self.name}: {summary}", file=self.stream)
        else:
            self._line(summary)
        if self.overall is not None and (stop.status != COMPLETED or self.overall.done >= self.overall.total):
            self.close()

    def close(self) -> None:
        """End the periodic lines and the overall bar (the runs are over)."""
        self.lines.stop()
        if self.overall_bar is not None:
            self.overall_bar.close()
            self.overall_bar = None

    def _line(self, text: str) -> None:
        self.lines.say(f"{self.name}: {text}")


class TrainingProgress:
    """A trainer's progress callback: each epoch's steps, loss and accuracy, and the steps of all the runs.

    :meth:`plan` gives the runs to come so that the overall figures cover them all; a run not planned is
    added when it first reports. The time left adds up each run's steps at its own rate: a run not started
    yet at the rate of a run of its kind (``"devices"``: trials through instruments; ``"software"``) or,
    with none measured yet, named as not yet timed (software baselines after a hardware run take seconds,
    not the hardware's hours). ``enabled`` as for :class:`ProgressSink`.
    """

    def __init__(self, enabled: bool | None = None, stream: TextIO | None = None,
                 log_every_s: float = LOG_EVERY_S, clock: Clock = time.monotonic, keep_alive: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.keep_alive = keep_alive
        self.shown, self.bar_mode = _shows(enabled, self.stream, log_every_s)
        self.clock = clock
        self.lines = LogLines(self.stream, log_every_s, clock)
        self.runs: dict[str, Meter] = {}  # run label → its steps
        self.kinds: dict[str, str] = {}  # run label → what sets its pace: "devices" or "software"
        self.started_at: dict[str, float] = {}  # run label → when it started (the first run: its first step)
        self.overall_bar: tqdm | None = None
        self.epoch_bar: tqdm | None = None
        self._epoch: tuple[str, int] | None = None
        self._last_report: float | None = None
        self._latest: Any = None  # the last step reported

    @property
    def enabled(self) -> bool:
        return self.shown

    def plan(self, runs: Sequence[tuple[str, int, int, str]]) -> None:
        """The runs to come, in order: ``(label, epochs, steps per epoch, kind)``."""
        for label, epochs, steps, kind in runs:
            self._add_run(label, epochs * steps, kind)

    def _add_run(self, label: str, steps: int, kind: str) -> None:
        with self.lines.lock:  # the keep-alive thread reads the runs under this lock
            self.runs[label] = Meter(steps, "steps", self.clock)
            self.kinds[label] = kind
        if self.overall_bar is not None:
            self.overall_bar.total = self.total

    @property
    def done(self) -> int:
        return sum(meter.done for meter in self.runs.values())

    @property
    def total(self) -> int:
        return sum(meter.total for meter in self.runs.values())

    def fraction(self) -> str:
        done, total = self.done, self.total
        return f"{done:,}/{total:,} steps ({100 * done / total if total else 100:.0f} %)"

    def time_left(self) -> str:
        """``"about 3 min left"``, naming the runs that could not be timed yet."""
        seconds, untimed = 0.0, []
        for label, meter in self.runs.items():
            if meter.done >= meter.total:
                continue
            rates = [meter.rate()] if label in self.started_at else [
                other.rate() for name, other in self.runs.items()
                if name in self.started_at and self.kinds[name] == self.kinds[label]]
            rate = max(rates, default=0.0)
            if rate > 0:
                seconds += (meter.total - meter.done) / rate
            else:
                untimed.append(label)
        if untimed and not seconds:
            return "time left not known yet"
        return f"about {duration(seconds)} left" + (f" + {', '.join(untimed)} (not timed yet)" if untimed else "")

    def __call__(self, progress: Any) -> None:
        """After every training step (a :class:`hil.training.trainer.Progress`)."""
        if progress.run not in self.runs:
            self._add_run(progress.run, progress.epochs * progress.steps, "software")
        run = self.runs[progress.run]
        position = (progress.epoch - 1) * progress.steps + progress.step
        now = self.clock()
        with self.lines.lock:  # consistent for the keep-alive thread's status line
            if progress.run not in self.started_at:  # the rate counts from its first step on (resumed: after it)
                self.started_at[progress.run] = self._last_report if self._last_report is not None else now
                run.started = now
                run.skip(position)
                if self._last_report is None:
                    self.lines.last = now
                    if self.shown and not self.bar_mode and self.keep_alive:
                        self.lines.keep_alive(self._status)
            else:
                run.add(position - run.done)
            self._last_report, self._latest = now, progress
        if not self.shown:
            return
        last = progress.metrics is not None and progress.epoch == progress.epochs
        if self.bar_mode:
            self._show_bars(progress)
        elif not last:
            self.lines.tick(self._status)
        if last:
            self._say(f"{progress.run}: {progress.epochs} epochs in {duration(now - self.started_at[progress.run])}, "
                      f"{self._figures(progress)}; overall {self.fraction()}")

    def _show_bars(self, progress: Any) -> None:
        if self.overall_bar is None:
            self.overall_bar = tqdm(total=self.total, initial=self.done, desc="training overall", unit="step",
                                    file=self.stream, position=0, dynamic_ncols=True,
                                    bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")
        self.overall_bar.set_postfix_str(self.time_left(), refresh=False)
        self.overall_bar.update(self.done - self.overall_bar.n)
        key = (progress.run, progress.epoch)
        if key != self._epoch:
            if self.epoch_bar is not None:
                self.epoch_bar.close()
            self.epoch_bar = tqdm(total=progress.steps, desc=f"{progress.run} epoch {progress.epoch}/"
                                  f"{progress.epochs}", unit="step", file=self.stream, position=1, leave=False,
                                  dynamic_ncols=True)
            self._epoch = key
        assert self.epoch_bar is not None
        self.epoch_bar.n = progress.step
        postfix = {"loss": f"{progress.loss:.3f}", "acc": f"{progress.accuracy:.3f}"}
        if progress.metrics is not None and progress.metrics.test_accuracy is not None:
            postfix["test"] = f"{progress.metrics.test_accuracy:.3f}"
        self.epoch_bar.set_postfix(postfix, refresh=True)

    def _status(self) -> str | None:
        progress = self._latest
        if progress is None or self.done >= self.total:
            return None
        doing = " (evaluating on the test split)" if progress.step == progress.steps and progress.metrics is None \
            else ""
        rate = self.runs[progress.run].rate()
        return (f"training: {self.fraction()}, {self.time_left()}; {progress.run} epoch {progress.epoch}/"
                f"{progress.epochs} step {progress.step}/{progress.steps}{doing}, "
                f"{per_second(rate)} steps/s, loss {progress.loss:.3f}, "
                f"accuracy {progress.accuracy:.3f}")

    @staticmethod
    def _figures(progress: Any) -> str:
        test = progress.metrics.test_accuracy
        return f"loss {progress.loss:.3f}, train accuracy {progress.accuracy:.3f}" + (
            f", test accuracy {test:.4f}" if test is not None else "")

    def _say(self, text: str) -> None:
        if self.bar_mode:
            tqdm.write(text, file=self.stream)
        else:
            self.lines.say(text)

    def close(self) -> None:
        self.lines.stop()
        for bar in (self.epoch_bar, self.overall_bar):
            if bar is not None:
                bar.close()
        self.epoch_bar = self.overall_bar = None
        self._epoch = None
