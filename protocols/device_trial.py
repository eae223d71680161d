"""The device trial — reset pulse → bias pulse → read → switched or not — as records.

:class:`DeviceTrials` is the one place a batch of trials for a device is built: the bias sweep, the
reset check and the hardware neuron backend all use it. It plays the trials on the station's fast path
(or the naive one), split to the instruments' limits by the trial paths, checks every instrument's error
queue when the batch is done (so outcomes the instruments may have spoiled are never recorded), and
returns the rows of the ``trials`` table declared here.

What real devices need of it (physics.md §5):

- **thresholds from the measured levels** (``thresholds: measured``, the default): before its first trials a
  device's two Hall levels are measured — reset, read; a strong pulse the other way (the reset's amplitude),
  read; ``level_trials`` times — and every outcome is read against their midpoint (``read_levels`` table). A
  device whose strong pulse does not move it (a bias field of the other sign, a dead device) is refused with the
  reason instead of giving a flat curve;
- **repeated reads** (``reads: N``): N readings in each read window, the outcome read from their median (a majority
  vote); every reading is kept in the ``trial_readings`` table so that analyses can be redone;
- **reset verification with retry** (``reset_retries: N``): a trial whose reset failed (its read-back shows the
  device still switched) is flagged (``reset_ok = 0``, left out of the curves) and played again, up to N times,
  so that every point gets its planned number of valid trials; each play is a row (``attempt``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from instruments.station import DeviceOpenError, Station
from instruments.station_config import StationSpec
from instruments.trials import DEFAULT_TIMING, ReadLevels, TrialBatch, TrialTiming, run_trials_fast, run_trials_naive
from protocols import analysis
from protocols.base import ProtocolConfigError, StationProtocol, integer, known_keys, per_width, quantity
from protocols.engine import Unit
from protocols.records import Descriptor, Field

PATHS = ("fast", "naive")
THRESHOLDS = ("measured", "nominal")
OPEN_OHM = 1e30  # a reading at or above this (or not finite) is an open circuit
LEVEL_SEPARATION = 0.5  # the measured levels must lie at least this many nominal Hall steps apart

TRIALS = Descriptor("trials", (
    Field("device", "S32", "", "device id"),
    Field("trial", "i4", "", "index of the trial in its batch (its replays keep it)"),
    Field("attempt", "i1", "", "0: the trial's first play; k: its k-th replay after a failed reset"),
    Field("amplitude_a", "f8", "A", "bias pulse current (0 for a reset check)"),
    Field("width_s", "f8", "s", "bias pulse width"),
    Field("reset_a", "f8", "A", "reset pulse current (negative)"),
    Field("outcome", "i1", "", "1: switched by the bias pulse"),
    Field("reset_ok", "i1", "", "1: the reading after the reset showed the reset state"),
    Field("reading_ohm", "f8", "ohm", "R_xy after the bias pulse (the median of the window's readings; inf: open)"),
    Field("reset_reading_ohm", "f8", "ohm", "R_xy after the reset pulse (the median of the window's readings)"),
    Field("time_s", "f8", "s", "Unix time when the batch was measured", reproducible=False),
), "device trials: reset pulse, bias pulse, read; one row per play of a trial")

READ_LEVELS = Descriptor("read_levels", (
    Field("device", "S32", "", "device id"),
    Field("low_ohm", "f8", "ohm", "median R_xy after a reset"),
    Field("high_ohm", "f8", "ohm", "median R_xy after a strong pulse the other way"),
    Field("threshold_ohm", "f8", "ohm", "the midpoint: readings above it count as switched"),
    Field("low_spread_ohm", "f8", "ohm", "robust spread (1.4826 MAD) of the low readings"),
    Field("high_spread_ohm", "f8", "ohm", "robust spread (1.4826 MAD) of the high readings"),
    Field("n_trials", "i4", "", "reset / strong-pulse pairs measured"),
    Field("time_s", "f8", "s", "Unix time of the measurement", reproducible=False),
), "each device's two Hall levels, measured before its trials; outcomes are read against their midpoint")

TRIAL_READINGS = Descriptor("trial_readings", (
    Field("device", "S32", "", "device id"),
    Field("trial", "i4", "", "the trial's index in its batch"),
    Field("attempt", "i1", "", "the play of the trial"),
    Field("window", "i1", "", "0: after the reset pulse; 1: after the bias pulse"),
    Field("reading", "i1", "", "index of the reading in its window"),
    Field("reading_ohm", "f8", "ohm", "R_xy"),
), "every reading of the trials with more than one reading per window (reads: N)")


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of a run shares: the bias pulse width, the trial's timing (with its ``reads`` per window),
    the path, how outcomes are read (``thresholds``, with ``level_trials`` pairs measuring the levels) and how many
    times a trial whose reset failed is played again."""

    width_s: float
    timing: TrialTiming = DEFAULT_TIMING
    path: str = "fast"
    thresholds: str = "measured"
    reset_retries: int = 2
    level_trials: int = 20

    def __post_init__(self) -> None:
        if self.path not in PATHS:
            raise ValueError(f"path: expected 'fast' or 'naive', got {self.path!r}")
        if self.thresholds not in THRESHOLDS:
            raise ValueError(f"thresholds: expected 'measured' or 'nominal', got {self.thresholds!r}")


def switched(rows: np.ndarray) -> np.ndarray:
    """Whether each trial of ``trials`` rows switched (bool)."""
    return rows["outcome"].astype(bool)


def final_outcomes(rows: np.ndarray, n: int) -> np.ndarray:
    """Per trial ``0 … n−1`` of a batch, the outcome of its last play (bool): what a trial whose reset failed
    gave once it was played again (still not switched if every replay's reset failed too)."""
    out = np.zeros(n, dtype=bool)
    order = np.lexsort((rows["attempt"], rows["trial"]))  # the last play of each trial comes last
    out[rows["trial"][order]] = rows["outcome"][order].astype(bool)
    return out


class DeviceTrials:
    """Batches of device trials on a connected station, as ``trials`` records (and ``read_levels`` and
    ``trial_readings``, collected by :meth:`take_extra`)."""

    descriptor = TRIALS

    def __init__(self, station: Station, settings: TrialSettings) -> None:
        self.station = station
        self.settings = settings
        self.trials_played = 0  # every trial played, whatever became of its records
        self.instrument_time_s = 0.0  # modeled physical time of those trials
        self.levels: dict[str, ReadLevels] = {}
        self._extra: dict[str, list[np.ndarray]] = {READ_LEVELS.name: [], TRIAL_READINGS.name: []}

    def run(self, device: str, bias_a: Sequence[float] | np.ndarray, reset_a: float, unit: int = 0) -> np.ndarray:
        """``len(bias_a)`` trials on ``device`` (bias currents in A, reset current in A, negative), trials whose reset
        failed played again (``reset_retries``).

        Returns the ``trials`` rows marked with ``unit``, one per play. Raises before any command when a current,
        width or voltage is beyond a limit, and :class:`~instruments.drivers.errors.InstrumentError` when an
        instrument reports an error at the end of a batch.
        """
        bias = np.asarray(bias_a, dtype=np.float64).reshape(-1)
        levels = self.read_levels(device, reset_a, unit)
        batch = self._play(device, bias, reset_a)
        parts = [self._rows(batch, np.arange(bias.size), 0, unit)]
        for attempt in range(1, self.settings.reset_retries + 1):
            again = np.flatnonzero(~batch.reset_ok & np.isfinite(batch.reset_readings_ohm)
                                   & (np.abs(batch.reset_readings_ohm) < OPEN_OHM))
            if not again.size:
                break
            indices = parts[-1]["trial"][again]
            batch = self._play(device, batch.bias_a[again], reset_a, levels)
            parts.append(self._rows(batch, indices, attempt, unit))
        rows = np.concatenate(parts)
        last = np.array([batch.reset_readings_ohm[-1], batch.readings_ohm[-1]]) if len(batch) else np.zeros(0)
        if last.size and not np.any(np.isfinite(last) & (np.abs(last) < OPEN_OHM)):
            raise DeviceOpenError(device, f"device {device}: reads open after its trials (both readings of the last "
                                  "trial); it may have broken down. No further pulse will be sent to it", rows)
        return rows

    def _play(self, device: str, bias: np.ndarray, reset_a: float, levels: ReadLevels | None = None) -> TrialBatch:
        s = self.settings
        runner = run_trials_fast if s.path == "fast" else run_trials_naive
        levels = levels if levels is not None else self.levels.get(device)
        with self.station.checked(f"trials on device {device}"):
            batch = runner(self.station, device, bias, s.width_s, reset_a, s.timing, levels)
        self.trials_played += len(batch)
        self.instrument_time_s += batch.instrument_time_s
        return batch

    def _rows(self, batch: TrialBatch, indices: np.ndarray, attempt: int, unit: int) -> np.ndarray:
        rows = TRIALS.rows(len(batch), unit)
        rows["device"] = batch.device
        rows["trial"] = indices
        rows["attempt"] = attempt
        rows["amplitude_a"] = batch.bias_a
        rows["width_s"] = batch.width_s
        rows["reset_a"] = batch.reset_a
        rows["outcome"] = batch.switched
        rows["reset_ok"] = batch.reset_ok
        rows["reading_ohm"] = batch.readings_ohm
        rows["reset_reading_ohm"] = batch.reset_readings_ohm
        rows["time_s"] = time.time()
        raw = batch.raw_readings_ohm
        if raw is not None and raw.shape[2] > 1:
            n, windows, reads = raw.shape
            readings = TRIAL_READINGS.rows(raw.size, unit)
            readings["device"] = batch.device
            readings["trial"] = np.repeat(indices, windows * reads)
            readings["attempt"] = attempt
            readings["window"] = np.tile(np.repeat(np.arange(windows), reads), n)
            readings["reading"] = np.tile(np.arange(reads), n * windows)
            readings["reading_ohm"] = raw.reshape(-1)
            self._extra[TRIAL_READINGS.name].append(readings)
        return rows

    def read_levels(self, device: str, reset_a: float, unit: int = 0) -> ReadLevels | None:
        """The device's measured Hall levels (measured on first use; ``None`` with ``thresholds: nominal``)."""
        if self.settings.thresholds != "measured":
            return None
        if device not in self.levels:
            n = self.settings.level_trials
            batch = self._play(device, np.full(n, -reset_a), reset_a, ReadLevels(-np.inf, np.inf))
            low, high = batch.reset_readings_ohm, batch.readings_ohm
            usable = np.isfinite(low) & np.isfinite(high) & (np.abs(low) < OPEN_OHM) & (np.abs(high) < OPEN_OHM)
            if not usable.any():
                raise DeviceOpenError(device, f"device {device}: reads open while its Hall levels were measured; it "
                                      "may have broken down. No further pulse will be sent to it")
            levels = ReadLevels(float(np.median(low[usable])), float(np.median(high[usable])))
            step = self.station.spec.readout.hall_step_ohm
            if levels.high_ohm - levels.low_ohm < LEVEL_SEPARATION * step:
                raise LevelsError(f"device {device}: a pulse of {-reset_a * 1e3:.3g} mA the other way from its reset "
                                  f"moved its Hall reading by {levels.high_ohm - levels.low_ohm:+.3g} Ω, less than "
                                  f"half the station's {step:g} Ω Hall step: it does not switch back and forth. "
                                  "Check the bias field's sign (it sets which current polarity resets the device), "
                                  "the reset current, and the device's contacts")
            self.levels[device] = levels
            row = READ_LEVELS.rows(1, unit)
            row["device"], row["low_ohm"], row["high_ohm"] = device, levels.low_ohm, levels.high_ohm
            row["threshold_ohm"], row["n_trials"], row["time_s"] = levels.threshold_ohm, n, time.time()
            row["low_spread_ohm"] = 1.4826 * np.median(np.abs(low[usable] - levels.low_ohm))
            row["high_spread_ohm"] = 1.4826 * np.median(np.abs(high[usable] - levels.high_ohm))
            self._extra[READ_LEVELS.name].append(row)
        return self.levels[device]

    def take_extra(self) -> dict[str, np.ndarray]:
        """The ``read_levels`` and ``trial_readings`` rows made since the last call (tables with rows only)."""
        out = {name: np.concatenate(parts) for name, parts in self._extra.items() if parts}
        for parts in self._extra.values():
            parts.clear()
        return out


class LevelsError(ProtocolConfigError):
    """A device whose Hall levels cannot be told apart: it does not switch back and forth."""


class TrialProtocol(StationProtocol):
    """Base of the protocols made of device trials: the reset pulse, the bias pulse width and the path."""

    records = (TRIALS, READ_LEVELS, TRIAL_READINGS)
    keys = StationProtocol.keys | {"reset", "pulse_width", "path", "batch", "reads", "thresholds", "reset_retries",
                                   "level_trials"}
    default_reset_retries = 2

    def __init__(self, spec: StationSpec, raw: Mapping[str, Any]) -> None:
        super().__init__(spec, raw)
        reset = raw.get("reset")
        if not isinstance(reset, Mapping):
            raise ProtocolConfigError(f"reset: expected a mapping with width and current, got {reset!r}")
        known_keys(reset, {"width", "current"}, "reset.")
        timing = TrialTiming(reset_width_s=quantity(reset, "width", "s", "reset.", default="100us"),
                             reads=integer(raw, "reads", "", default=1))
        self.reset_a = {w: quantity({"current": v}, "current", "A", f"reset.current[{w * 1e6:g}um].", sign=-1)
                        for w, v in per_width(reset.get("current"), "reset.current").items()}
        path = raw.get("path", "fast")
        if path not in PATHS:
            raise ProtocolConfigError(f"path: expected 'fast' or 'naive', got {path!r}")
        if path == "fast" and not spec.fast_path_wired:
            raise ProtocolConfigError("path: fast needs the pulse generator's marker wired to the source meter's "
                                      "trigger input (station file: triggers); wire it or use path: naive")
        thresholds = raw.get("thresholds", "measured")
        if thresholds not in THRESHOLDS:
            raise ProtocolConfigError(f"thresholds: expected 'measured' (from each device's Hall levels) or 'nominal' "
                                      f"(the station's Hall step), got {thresholds!r}")
        self.settings = TrialSettings(quantity(raw, "pulse_width", "s", "", default="10us"), timing, path, thresholds,
                                      integer(raw, "reset_retries", "", default=self.default_reset_retries,
                                              minimum=0),
                                      integer(raw, "level_trials", "", default=20))
        self.trials: DeviceTrials | None = None
        for device in self.devices:
            reset_a = self.lookup(self.reset_a, device, "reset.current")
            spec.check_width(device, self.settings.width_s)
            spec.check_width(device, timing.reset_width_s)
            spec.check_current(device, reset_a, what="reset pulse")

    def attach(self, station: Station) -> TrialProtocol:
        super().attach(station)
        self.trials = DeviceTrials(station, self.settings)
        return self

    def run_trials(self, unit: Unit, bias_a: np.ndarray) -> dict[str, np.ndarray]:
        assert self.trials is not None, "attach a station first"
        reset_a = self.lookup(self.reset_a, unit.device, "reset.current")
        return {TRIALS.name: self.trials.run(unit.device, bias_a, reset_a, unit.index), **self.trials.take_extra()}

    def analyse(self, tables: Mapping[str, np.ndarray]) -> dict[str, Any]:
        trials = tables[TRIALS.name]
        return {**super().analyse(tables), "curves": analysis.switching_curves(trials),
                "reset": analysis.reset_summary(trials)}
