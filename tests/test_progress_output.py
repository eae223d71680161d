"""Progress off a terminal (a log file, nohup, CI): one plain line per interval with done/total, rate and
time left, for characterizations (each protocol and overall) and for training (all the runs)."""

import io
import re
import subprocess
import sys
import time
from types import SimpleNamespace

from hil.cli.train_command import PROGRESS_EVERY_S
from hil.display.progress import LOG_EVERY_S, ProgressSink, TrainingProgress, work_of
from protocols.engine import RunStart, RunStop, Unit


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def run_start(name, units, done=()):
    return RunStart(name, {}, (), tuple(units), frozenset(done), 0, "")


def test_a_characterization_prints_a_line_per_interval_with_its_figures_and_overall():
    clock, stream = FakeClock(), io.StringIO()
    sweep = [Unit(i, "w3-1", {}, 100) for i in range(10)]  # 1,000 trials
    loop = [Unit(i, "w3-1") for i in range(4)]  # units without trials
    sink = ProgressSink(stream=stream, log_every_s=30, overall_work=work_of(sweep) + work_of(loop), clock=clock,
                        keep_alive=False)
    sink.start(run_start("bias_sweep", sweep))
    for unit in sweep:
        clock.now += 10  # 10 trials/s
        sink.records(unit, {}, None)
    sink.stop(RunStop("completed"))
    sink.start(run_start("hysteresis_loop", loop))
    for unit in loop:
        clock.now += 20
        sink.records(unit, {}, None)
    sink.stop(RunStop("completed"))
    lines = stream.getvalue().splitlines()
    assert lines == [
        "bias_sweep: 300/1,000 trials (30 %), 10 trials/s, about 70 s left; "
        "overall 300/1,004 steps (30 %), 10 steps/s, about 70 s left",
        "bias_sweep: 600/1,000 trials (60 %), 10 trials/s, about 40 s left; "
        "overall 600/1,004 steps (60 %), 10 steps/s, about 40 s left",
        "bias_sweep: 900/1,000 trials (90 %), 10 trials/s, about 10 s left; "
        "overall 900/1,004 steps (90 %), 10 steps/s, about 10 s left",
        "bias_sweep: completed: 1,000/1,000 trials (100 %) in 2 min",
        "hysteresis_loop: 2/4 units (50 %), 0.05 units/s, about 40 s left; "
        "overall 1,002/1,004 steps (100 %), 7.2 steps/s, about 0 s left",
        "hysteresis_loop: completed: 4/4 units (100 %) in 80 s",
    ]


def test_a_resumed_run_counts_what_was_done_but_not_in_the_rate():
    clock, stream = FakeClock(), io.StringIO()
    units = [Unit(i, "w3-1", {}, 50) for i in range(8)]
    sink = ProgressSink(stream=stream, log_every_s=5, clock=clock, keep_alive=False)
    sink.start(run_start("bias_sweep", units, done={0, 1, 2, 3}))
    for unit in units[4:6]:
        clock.now += 5
        sink.records(unit, {}, None)
    assert stream.getvalue().splitlines() == [
        "bias_sweep: resuming at 200/400 trials (50 %)",
        "bias_sweep: 250/400 trials (62 %), 10 trials/s, about 15 s left",
        "bias_sweep: 300/400 trials (75 %), 10 trials/s, about 10 s left",
    ]


def step(run, epoch, number, epochs=2, steps=10, test_accuracy=None, evaluated=True):
    """A trainer's report of a step; the epoch's last one carries its metrics once it was evaluated."""
    last = number == steps and evaluated
    return SimpleNamespace(run=run, epoch=epoch, epochs=epochs, step=number, steps=steps, loss=0.5, accuracy=0.75,
                           metrics=SimpleNamespace(test_accuracy=test_accuracy) if last else None)


def test_training_prints_overall_steps_of_all_runs_at_the_interval_and_a_line_per_run():
    clock, stream = FakeClock(), io.StringIO()
    progress = TrainingProgress(stream=stream, log_every_s=30, clock=clock, keep_alive=False)
    progress.plan([("hil (hardware)", 2, 10, "devices"), ("deterministic", 2, 10, "software")])  # 40 steps
    for run, seconds in (("hil (hardware)", 6), ("deterministic", 1)):
        for epoch in (1, 2):
            for number in range(1, 11):
                if (run, epoch, number) != ("hil (hardware)", 1, 1):
                    clock.now += seconds
                progress(step(run, epoch, number, test_accuracy=0.9))
    lines = stream.getvalue().splitlines()
    assert lines == [
        "training: 6/40 steps (15 %), about 84 s left + deterministic (not timed yet); "
        "hil (hardware) epoch 1/2 step 6/10, 0.17 steps/s, loss 0.500, accuracy 0.750",
        "training: 11/40 steps (28 %), about 54 s left + deterministic (not timed yet); "
        "hil (hardware) epoch 2/2 step 1/10, 0.17 steps/s, loss 0.500, accuracy 0.750",
        "training: 16/40 steps (40 %), about 24 s left + deterministic (not timed yet); "
        "hil (hardware) epoch 2/2 step 6/10, 0.17 steps/s, loss 0.500, accuracy 0.750",
        "hil (hardware): 2 epochs in 2 min, loss 0.500, train accuracy 0.750, test accuracy 0.9000; "
        "overall 20/40 steps (50 %)",
        "deterministic: 2 epochs in 20 s, loss 0.500, train accuracy 0.750, test accuracy 0.9000; "
        "overall 40/40 steps (100 %)",
    ]  # the baseline's 20 s: no interval line (the hardware run's end line was the last), only its end


def test_the_commands_default_interval_is_the_displays():
    assert PROGRESS_EVERY_S == LOG_EVERY_S  # kept apart only so that --help need not import the display


def test_an_interval_of_zero_shows_no_progress():
    clock, stream = FakeClock(), io.StringIO()
    progress, sink = TrainingProgress(stream=stream, log_every_s=0, clock=clock, keep_alive=False), ProgressSink(
        stream=stream, log_every_s=0, clock=clock)
    sink.start(run_start("bias_sweep", [Unit(0, "w3-1", {}, 10)]))
    for number in range(1, 11):
        clock.now += 60
        progress(step("stochastic", 2, number, test_accuracy=0.5))
    sink.records(Unit(0, "w3-1", {}, 10), {}, None)
    sink.stop(RunStop("completed"))
    assert stream.getvalue() == ""


def test_lines_keep_coming_while_one_step_takes_long():
    """A hardware epoch's test evaluation reports no steps: the lines still come every interval."""
    stream = io.StringIO()
    progress = TrainingProgress(stream=stream, log_every_s=0.05)
    progress.plan([("hil (hardware)", 2, 10, "devices")])
    progress(step("hil (hardware)", 1, 9))
    progress(step("hil (hardware)", 1, 10, evaluated=False))
    time.sleep(0.3)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 2, lines
    where = "; hil (hardware) epoch 1/2 step 10/10 (evaluating on the test split), "
    assert all(line.startswith("training: 10/20 steps (50 %), about ") and where in line for line in lines), lines


def test_hil_train_off_a_terminal_prints_progress_lines_at_the_chosen_interval(tmp_path):
    lines = subprocess.run([sys.executable, "-m", "hil.cli", "train", "--backend", "sim", "--epochs", "2", "--hidden",
                            "16", "--eval-samples", "2", "--baselines", "--out", str(tmp_path / "run.h5"),
                            "--progress-every", "0.02"], capture_output=True, text=True, check=True).stderr.splitlines()
    periodic = [line for line in lines if line.startswith("training: ")]
    assert len(periodic) >= 2, lines
    # the runs not timed yet are named after the time left of the others
    figures = re.compile(r"training: (\d+)/132 steps \(\d+ %\), (about [^;]+ left( \+ [^;]+ \(not timed yet\))?|"
                         r"time left not known yet); "
                         r"(hil \(sim\)|deterministic|stochastic) epoch [12]/2 step \d+/22( \(evaluating on the test "
                         r"split\))?, [\d.,]+ steps/s, loss [\d.]+, accuracy")
    done = [int(figures.match(line).group(1)) for line in periodic]
    assert done == sorted(done) and done[-1] < 132
    ends = [line for line in lines if re.match(r".+: 2 epochs in \d+ s, loss .+, test accuracy 0\.\d+; overall", line)]
    assert [line.split(":")[0] for line in ends] == ["hil (sim)", "deterministic", "stochastic"]
    assert [line.split("overall ")[1] for line in ends] == ["44/132 steps (33 %)", "88/132 steps (67 %)",
                                                            "132/132 steps (100 %)"]
