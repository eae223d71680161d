"""Trials per second through the whole stack: driver → pyvisa-py → TCP → emulator → chip.

Every row comes from one set of interleaved repetitions (the order rotates each repetition):

- ``trials_fast_path``: the fast path (one waveform, buffered triggered readings) against the naive path
  (commands per pulse and per read), trials per second;
- ``trial_time_fast_vs_instrument`` / ``trial_time_naive_vs_instrument``: software time per trial against the
  physical instrument time per trial, i.e. how far the emulated station's virtual clock advanced (pulses,
  gaps, read windows, apertures, waveform uploads, switch settling), as a real station would take;
- ``hardware_backend_samples``: the hardware backend (pulse mode, every sample a trial) against the sim
  backend on the same shape, samples per second;
- ``hardware_backend_vs_instrument``: its software time per sample against the virtual clock's time per
  sample.

A ratio below 1 against the instrument time means the software keeps ahead of a real station: a real run is
bound by the instruments, not by the code.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from benchmarks.harness import Row, interleaved_times, ratio_row
from hil.neurons import SimBackend
from hil.neurons.sources import open_backend
from instruments.config_files import EMULATED_STATION_FILE as STATION
from instruments.station import Station
from instruments.trials import run_trials_fast, run_trials_naive
from sim_backend.emulated.probe_station import EmulatedStation

DEVICE, CURRENT_A, RESET_A, PULSE_S = "w5-1", 1.8e-3, -3.25e-3, 10e-6
FAST_TRIALS, NAIVE_TRIALS, REPEATS = 4000, 300, 9
BATCH, NEURONS = 64, 48
# calls per repetition: a fast-path call allocates its segments as ~24,000 Python objects, and one call in two
# or three then pays a full garbage collection (~90 ms, as long as the call); several calls per repetition
# give every repetition its share of them, where one call per repetition made the median flip between two modes
FAST_CALLS, HARDWARE_CALLS, SIM_CALLS = 10, 5, 200


def _repeated(fn: Callable[[], object], calls: int) -> Callable[[], None]:
    def call() -> None:
        for _ in range(calls):
            fn()
    return call


def _clocked(emulated: EmulatedStation, fn: Callable[[], object], advances: list[float]) -> Callable[[], None]:
    """``fn`` that also appends how far the emulated station's virtual clock advanced during the call."""
    def call() -> None:
        start = emulated.clock_s
        fn()
        advances.append(emulated.clock_s - start)
    return call


def _currents(backend, neurons: torch.Tensor, batch: int) -> torch.Tensor:
    i50, w = backend.curve(neurons)
    generator = torch.Generator().manual_seed(0)
    return (i50 + w * torch.randn(batch, neurons.numel(), dtype=torch.float64, generator=generator)).to(torch.float32)


def modeled_trial_time_s(batch: int, neurons: int) -> float:
    """Physical instrument time per trial of the hardware backend (pulse mode) on the emulated station, for
    calls of ``batch`` x ``neurons`` currents: the virtual clock's advance over one call / its trials."""
    with EmulatedStation(STATION) as emulated, \
            open_backend("hardware", station=emulated.spec, trials_per_point=20) as (backend, _):
        assigned = backend.assign(neurons)
        currents = _currents(backend, assigned, batch)
        start = emulated.clock_s
        backend.sample(assigned, currents)
        return (emulated.clock_s - start) / (batch * neurons)


def run() -> list[Row]:
    advances: dict[str, list[float]] = {"fast": [], "naive": [], "hardware": []}
    with EmulatedStation(STATION) as trial_station, Station.open(trial_station.spec) as station, \
            EmulatedStation(STATION) as backend_station, \
            open_backend("hardware", station=backend_station.spec, trials_per_point=20) as (hardware, _):
        station.measure_channel_resistance(DEVICE)
        neurons = hardware.assign(NEURONS)
        currents = _currents(hardware, neurons, BATCH)
        sim = SimBackend.from_chip_file()
        fast = _repeated(lambda: run_trials_fast(station, DEVICE, np.full(FAST_TRIALS, CURRENT_A), PULSE_S, RESET_A),
                         FAST_CALLS)
        fns = {
            "fast": _clocked(trial_station, fast, advances["fast"]),
            "naive": _clocked(trial_station, lambda: run_trials_naive(station, DEVICE, np.full(NAIVE_TRIALS, CURRENT_A),
                                                                      PULSE_S, RESET_A), advances["naive"]),
            "hardware": _clocked(backend_station, _repeated(lambda: hardware.sample(neurons, currents), HARDWARE_CALLS),
                                 advances["hardware"]),
            "sim": _repeated(lambda: sim.sample(neurons, currents), SIM_CALLS),
        }
        times = interleaved_times(fns, repeats=REPEATS, warmup=1)
    samples = BATCH * NEURONS
    items = {"fast": FAST_CALLS * FAST_TRIALS, "naive": NAIVE_TRIALS, "hardware": HARDWARE_CALLS * samples,
             "sim": SIM_CALLS * samples}
    per_item = {  # s per trial (per sample), every repetition; the virtual clock's without the warm-up call
        **{name: [t / items[name] for t in times[name]] for name in items},
        **{f"{name}_instrument": [t / items[name] for t in advances[name][-REPEATS:]] for name in advances},
    }
    instrument_note = "physical time: the emulated station's virtual clock over the same call"
    return [
        ratio_row("trials_fast_path", per_item, "fast", "naive", "trials/s", per_time=True,
                  note=f"{FAST_CALLS} calls of {FAST_TRIALS} trials per repetition; reference: naive path "
                       f"({NAIVE_TRIALS} trials per repetition, commands per pulse and per read)"),
        ratio_row("trial_time_fast_vs_instrument", per_item, "fast", "fast_instrument", "us/trial", scale=1e6,
                  note=f"fast path, software time per trial; reference: {instrument_note} (100 us reset, "
                       "10 us bias, gaps, two read windows, waveform uploads)"),
        ratio_row("trial_time_naive_vs_instrument", per_item, "naive", "naive_instrument", "us/trial", scale=1e6,
                  note=f"naive path, software time per trial; reference: {instrument_note}"),
        ratio_row("hardware_backend_samples", per_item, "hardware", "sim", "samples/s", per_time=True,
                  note=f"hardware backend, pulse mode, emulated station: {HARDWARE_CALLS} calls of {BATCH}x{NEURONS} "
                       f"currents per repetition, every sample a trial; reference: the sim backend on the same shape "
                       f"({SIM_CALLS} calls per repetition)"),
        ratio_row("hardware_backend_vs_instrument", per_item, "hardware", "hardware_instrument", "us/sample",
                  scale=1e6, note=f"hardware backend, software time per sample; reference: {instrument_note}"),
    ]
