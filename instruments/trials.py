"""Device trials — reset pulse → bias pulse → read → switched or not — on two paths.

- **Fast path**: one arbitrary waveform carries many trials (reset, gap, read window, bias, gap, read
  window). The generator's trigger output starts the source meter's trigger model, which takes one
  reading in each read window (its delays follow the waveform's timing) into its buffer; one query
  fetches them all. Waveforms are split where the generator's memory or the source meter's buffer is
  full (both limits come from the instruments' adapters).
- **Naive path**: separate commands for every pulse and every read; the reference the fast path is
  measured against, and the path for instruments without markers or buffers.

Both return a :class:`TrialBatch`. Its ``instrument_time_s`` is the time the instruments spend
physically (pulses, gaps, read windows and reading apertures), modeled from the plan.

Through a DC block (the station file's ``wiring``) every pulse is played between its balancing lobes
(:meth:`instruments.station.Station.balanced`), so that the waveform carries no net charge, trial by trial, and the
capacitor shifts no baseline; the fast path's levels allow for the read current the source meter sources through
every pulse, and a pulse whose voltage across the channel the source meter's compliance would clamp is refused
before anything is sent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from instruments.roles import Segment
from instruments.station import Station, balanced_span
from instruments.station_config import SafetyError


@dataclass(frozen=True)
class TrialTiming:
    """The shape of one trial on the fast path, in s; ``reads``: readings in each read window (their median is
    what the trial's outcome is read from)."""

    reset_width_s: float = 100e-6
    gap_s: float = 5e-6
    read_window_s: float = 10e-6  # at least the source meter's apertures (it is widened to them)
    reads: int = 1
    balanced: bool = False  # each pulse between its balancing lobes (a DC-blocked generator: set by the fast path)

    def window(self, aperture_s: float) -> float:
        return max(self.read_window_s, self.reads * aperture_s)

    def span(self, width_s: float) -> float:
        """How long a pulse of ``width_s`` takes in the waveform (with its balancing lobes when ``balanced``)."""
        return balanced_span(width_s) if self.balanced else width_s

    def trial_time(self, bias_width_s: float, aperture_s: float = 0.0) -> float:
        return self.span(self.reset_width_s) + self.span(bias_width_s) + 2 * (self.gap_s + self.window(aperture_s))


DEFAULT_TIMING = TrialTiming()


@dataclass(frozen=True)
class ReadLevels:
    """A device's two Hall levels as measured (Ω): ``low`` after a reset, ``high`` after a pulse that surely switched
    it; a reading is read as switched above the midpoint between them."""

    low_ohm: float
    high_ohm: float

    @property
    def threshold_ohm(self) -> float:
        return 0.5 * (self.low_ohm + self.high_ohm)


@dataclass
class TrialBatch:
    """Outcomes of ``n`` trials on one device. Readings in Ω, currents in A.

    ``reset_readings_ohm``/``readings_ohm``: the reading the outcome was read from, after the reset and after the
    bias pulse (the median of the window's readings); ``raw_readings_ohm``: every reading, shape ``(n, 2, reads)``
    (window 0 after the reset, 1 after the bias pulse).
    """

    device: str
    path: str
    bias_a: np.ndarray
    width_s: float
    reset_a: float
    reset_readings_ohm: np.ndarray
    readings_ohm: np.ndarray
    switched: np.ndarray
    reset_ok: np.ndarray
    instrument_time_s: float
    raw_readings_ohm: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.bias_a.size)


def classify(reset_readings: np.ndarray, readings: np.ndarray, hall_step_ohm: float,
             levels: ReadLevels | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(switched, reset_ok)`` from the readings after reset and after the bias pulse.

    With the device's measured ``levels``: the reset worked where its reading lies below their midpoint, and the
    trial switched where the reading after the bias pulse lies above it. Without: the reset leaves the device down,
    at its low level (the median of the batch's reset readings); a switch moves the reading up by about the
    station's nominal Hall step, half of which is the threshold. An open reading (``inf``/overflow) counts as
    neither switched nor reset.
    """
    finite = np.isfinite(reset_readings) & (np.abs(reset_readings) < 1e30)
    after_finite = np.isfinite(readings) & (np.abs(readings) < 1e30)
    if levels is not None:
        reset_ok = finite & (reset_readings < levels.threshold_ohm)
        return reset_ok & after_finite & (readings > levels.threshold_ohm), reset_ok
    low = np.median(reset_readings[finite]) if finite.any() else np.nan
    threshold = 0.5 * hall_step_ohm
    reset_ok = finite & (reset_readings - low < threshold)
    switched = reset_ok & after_finite & (readings - reset_readings > threshold)
    return switched, reset_ok


def window_medians(readings: np.ndarray) -> np.ndarray:
    """The median of each row's readings (``(n, reads)``); a row with an open reading keeps it open."""
    if readings.shape[1] == 1:
        return readings[:, 0].copy()
    return np.median(readings, axis=1)


def fast_path_timing(station: Station, timing: TrialTiming = DEFAULT_TIMING) -> TrialTiming:
    """``timing`` as the fast path plays it on ``station``: balanced through a DC block (its ``trial_time`` is then
    the instrument time of a trial there)."""
    wiring = station.spec.wiring
    return dataclasses.replace(timing, balanced=wiring is not None and wiring.blocks_dc)


def _check(station: Station, device: str, bias_a: np.ndarray, width_s: float, reset_a: float,
           timing: TrialTiming) -> None:
    if reset_a >= 0:
        raise SafetyError(f"reset current on {device} must be negative (switches the device down), got {reset_a} A")
    station.check_pulses(device, [*bias_a, reset_a], [width_s, timing.reset_width_s])


def play_timed(station: Station, segments: Sequence[Segment], per_item: int, offsets: Sequence[float],
               period_s: float, what: str) -> np.ndarray:
    """Play ``segments`` (items of ``per_item`` segments, one every ``period_s``) through the pulse generator's
    waveform memory, as many items per waveform as it and the source meter's buffer hold, with the source
    meter triggered by each waveform to read at ``offsets`` within every item.

    Returns the readings, shape ``(items, len(offsets))``. Every item has the same segment durations, so the
    memory holds the same number of items each time; :class:`SafetyError` if not even one fits.
    """
    segments = list(segments)
    items = len(segments) // per_item
    fit = min(station.pulse_generator.max_segments(segments) // per_item,
              station.source_meter.max_buffer_readings // len(offsets))
    if fit < 1:
        raise SafetyError(f"one {what} does not fit into the pulse generator's waveform memory")
    data: list[np.ndarray] = []
    for start in range(0, items, fit):
        n = min(fit, items - start)
        station.source_meter.arm_timed_readings(n, offsets, period_s)
        station.pulse_generator.play_waveform(segments[start * per_item:(start + n) * per_item])
        data.append(np.asarray(station.source_meter.fetch_readings(len(offsets) * n, n * period_s), dtype=np.float64))
    return np.concatenate(data).reshape(items, len(offsets))


def run_trials_fast(station: Station, device: str, bias_a: Sequence[float], width_s: float, reset_a: float,
                    timing: TrialTiming = DEFAULT_TIMING, levels: ReadLevels | None = None) -> TrialBatch:
    """``len(bias_a)`` trials on ``device`` through arbitrary waveforms and buffered triggered readings
    (``timing.reads`` readings per read window; outcomes read against ``levels`` when given, see :func:`classify`)."""
    if not station.spec.fast_path_wired:
        raise SafetyError("the fast path needs the pulse generator's marker wired to the source meter's "
                          "trigger input (station file: triggers); use run_trials_naive")
    bias = np.asarray(bias_a, dtype=np.float64).reshape(-1)
    _check(station, device, bias, width_s, reset_a, timing)
    timing = fast_path_timing(station, timing)
    station.route(device)
    station.prepare_reads()
    # V per A (R_ch + 50 Ω), and the level of no current beside the read current (0 V for an undeclared wiring)
    r_total = station.voltage_for(device, 1.0)
    offset = station.voltage_beside_read_current(device, 0.0)
    window = timing.window(station.source_meter.aperture_s)
    reset_v, bias_v = offset + reset_a * r_total, offset + bias * r_total
    station.check_levels(device, [reset_v, *bias_v])
    station.check_clamp(device, [reset_a], "reset pulse")
    station.check_clamp(device, bias, "bias pulse")

    # every trial starts alike, and the trials of a batch share few bias levels: their segments are built once
    head = [*station.balanced(reset_v, timing.reset_width_s), Segment(0.0, timing.gap_s), Segment(0.0, window)]
    tail = [Segment(0.0, timing.gap_s), Segment(0.0, window)]
    built: dict[float, list[Segment]] = {}

    def trial_segments(level_v: float) -> list[Segment]:
        segments = built.get(level_v)
        if segments is None:
            segments = built[level_v] = [*head, *station.balanced(level_v, width_s), *tail]
        return segments

    per_trial = len(trial_segments(1.0))
    aperture = station.source_meter.aperture_s
    period = timing.trial_time(width_s, aperture)
    # the readings of each read window, one aperture apart from the window's start
    offsets = [start + k * aperture for start in (timing.span(timing.reset_width_s) + timing.gap_s, period - window)
               for k in range(timing.reads)]
    all_segments = [s for level in bias_v for s in trial_segments(float(level))]
    data = play_timed(station, all_segments, per_trial, offsets, period, "trial")
    return _batch(station, device, "fast", bias, width_s, reset_a, data.reshape(bias.size, 2, timing.reads),
                  bias.size * period, levels)


def _batch(station: Station, device: str, path: str, bias: np.ndarray, width_s: float, reset_a: float,
           raw: np.ndarray, instrument_time_s: float, levels: ReadLevels | None) -> TrialBatch:
    """The batch of trials whose readings are ``raw`` ``(n, 2, reads)``: outcomes read from each window's median."""
    reset_readings, after = window_medians(raw[:, 0, :]), window_medians(raw[:, 1, :])
    switched, reset_ok = classify(reset_readings, after, station.spec.readout.hall_step_ohm, levels)
    return TrialBatch(device, path, bias, width_s, reset_a, reset_readings, after, switched, reset_ok,
                      instrument_time_s, raw)


def run_trials_naive(station: Station, device: str, bias_a: Sequence[float], width_s: float, reset_a: float,
                     timing: TrialTiming = DEFAULT_TIMING, levels: ReadLevels | None = None) -> TrialBatch:
    """The same trials with separate commands for every pulse and every read."""
    bias = np.asarray(bias_a, dtype=np.float64).reshape(-1)
    _check(station, device, bias, width_s, reset_a, timing)
    station.route(device)
    station.prepare_reads()
    raw = np.empty((bias.size, 2, timing.reads))
    aperture_s = station.source_meter.aperture_s
    for k, current in enumerate(bias):
        station.pulse(device, reset_a, timing.reset_width_s)
        raw[k, 0] = station.read_hall(device, timing.reads)
        station.pulse(device, float(current), width_s)
        raw[k, 1] = station.read_hall(device, timing.reads)
    per_trial = (station.pulse_time_s(timing.reset_width_s) + station.pulse_time_s(width_s)
                 + 2 * timing.reads * aperture_s)
    return _batch(station, device, "naive", bias, width_s, reset_a, raw, bias.size * per_trial, levels)
