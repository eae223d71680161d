"""The device trial — reset pulse → bias pulse → read → switched or not — as records.

:class:`DeviceTrials` is the one place a batch of trials for a device is built: the bias sweep, the
reset check and the hardware neuron backend all use it. It plays the trials on the station's fast path
(or the naive one), split to the instruments' limits by the trial paths, checks every instrument's error
queue when the batch is done (so outcomes the instruments may have spoiled are never recorded), and
returns the rows of the ``trials`` table declared here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from instruments.station import DeviceOpenError, Station
from instruments.station_config import StationSpec
from instruments.trials import DEFAULT_TIMING, TrialTiming, run_trials_fast, run_trials_naive
from protocols import analysis
from protocols.base import ProtocolConfigError, StationProtocol, known_keys, per_width, quantity
from protocols.engine import Unit
from protocols.records import Descriptor, Field

PATHS = ("fast", "naive")
OPEN_OHM = 1e30  # a reading at or above this (or not finite) is an open circuit

TRIALS = Descriptor("trials", (
    Field("device", "S32", "", "device id"),
    Field("amplitude_a", "f8", "A", "bias pulse current (0 for a reset check)"),
    Field("width_s", "f8", "s", "bias pulse width"),
    Field("reset_a", "f8", "A", "reset pulse current (negative)"),
    Field("outcome", "i1", "", "1: switched by the bias pulse"),
    Field("reset_ok", "i1", "", "1: the reading after the reset showed the reset state"),
    Field("reading_ohm", "f8", "ohm", "R_xy after the bias pulse (inf: open)"),
    Field("reset_reading_ohm", "f8", "ohm", "R_xy after the reset pulse"),
    Field("time_s", "f8", "s", "Unix time when the batch was measured", reproducible=False),
), "device trials: reset pulse, bias pulse, read; one row per trial")


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of a run shares: the bias pulse width, the trial's timing and the path."""

    width_s: float
    timing: TrialTiming = DEFAULT_TIMING
    path: str = "fast"

    def __post_init__(self) -> None:
        if self.path not in PATHS:
            raise ValueError(f"path: expected 'fast' or 'naive', got {self.path!r}")


def switched(rows: np.ndarray) -> np.ndarray:
    """Whether each trial of ``trials`` rows switched (bool)."""
    return rows["outcome"].astype(bool)


class DeviceTrials:
    """Batches of device trials on a connected station, as ``trials`` records."""

    descriptor = TRIALS

    def __init__(self, station: Station, settings: TrialSettings) -> None:
        self.station = station
        self.settings = settings
        self.trials_played = 0  # every trial played, whatever became of its records
        self.instrument_time_s = 0.0  # modeled physical time of those trials

    def run(self, device: str, bias_a: Sequence[float] | np.ndarray, reset_a: float, unit: int = 0) -> np.ndarray:
        """``len(bias_a)`` trials on ``device`` (bias currents in A, reset current in A, negative).

        Returns the ``trials`` rows marked with ``unit``. Raises before any command when a current,
        width or voltage is beyond a limit, and :class:`~instruments.drivers.errors.InstrumentError`
        when an instrument reports an error at the end of the batch.
        """
        s = self.settings
        runner = run_trials_fast if s.path == "fast" else run_trials_naive
        with self.station.checked(f"trials on device {device}"):
            batch = runner(self.station, device, np.asarray(bias_a, dtype=np.float64), s.width_s, reset_a, s.timing)
        self.trials_played += len(batch)
        self.instrument_time_s += batch.instrument_time_s
        rows = TRIALS.rows(len(batch), unit)
        rows["device"] = device
        rows["amplitude_a"] = batch.bias_a
        rows["width_s"] = batch.width_s
        rows["reset_a"] = reset_a
        rows["outcome"] = batch.switched
        rows["reset_ok"] = batch.reset_ok
        rows["reading_ohm"] = batch.readings_ohm
        rows["reset_reading_ohm"] = batch.reset_readings_ohm
        rows["time_s"] = time.time()
        last = np.array([batch.reset_readings_ohm[-1], batch.readings_ohm[-1]]) if len(batch) else np.zeros(0)
        if last.size and not np.any(np.isfinite(last) & (np.abs(last) < OPEN_OHM)):
            raise DeviceOpenError(device, f"device {device}: reads open after its trials (both readings of the last "
                                  "trial); it may have broken down. No further pulse will be sent to it", rows)
        return rows


class TrialProtocol(StationProtocol):
    """Base of the protocols made of device trials: the reset pulse, the bias pulse width and the path."""

    records = (TRIALS,)
    keys = StationProtocol.keys | {"reset", "pulse_width", "path", "batch"}

    def __init__(self, spec: StationSpec, raw: Mapping[str, Any]) -> None:
        super().__init__(spec, raw)
        reset = raw.get("reset")
        if not isinstance(reset, Mapping):
            raise ProtocolConfigError(f"reset: expected a mapping with width and current, got {reset!r}")
        known_keys(reset, {"width", "current"}, "reset.")
        timing = TrialTiming(reset_width_s=quantity(reset, "width", "s", "reset.", default="100us"))
        self.reset_a = {w: quantity({"current": v}, "current", "A", f"reset.current[{w * 1e6:g}um].", sign=-1)
                        for w, v in per_width(reset.get("current"), "reset.current").items()}
        path = raw.get("path", "fast")
        if path not in PATHS:
            raise ProtocolConfigError(f"path: expected 'fast' or 'naive', got {path!r}")
        if path == "fast" and not spec.fast_path_wired:
            raise ProtocolConfigError("path: fast needs the pulse generator's marker wired to the source meter's "
                                      "trigger input (station file: triggers); wire it or use path: naive")
        self.settings = TrialSettings(quantity(raw, "pulse_width", "s", "", default="10us"), timing, path)
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
        return {TRIALS.name: self.trials.run(unit.device, bias_a, reset_a, unit.index)}

    def analyse(self, tables: Mapping[str, np.ndarray]) -> dict[str, Any]:
        trials = tables[TRIALS.name]
        return {**super().analyse(tables), "curves": analysis.switching_curves(trials),
                "reset": analysis.reset_summary(trials)}
