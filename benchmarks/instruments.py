"""Trials per second through the whole stack: driver → pyvisa-py → TCP → emulator → chip.

Fast path (one waveform, buffered triggered readings) against the naive path (commands per pulse and
per read), in one run; and the modeled instrument time per trial beside the software time per trial.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.harness import Row
from instruments.config_files import EMULATED_STATION_FILE as STATION
from instruments.station import Station
from instruments.trials import run_trials_fast, run_trials_naive
from sim_backend.emulated.probe_station import EmulatedStation

DEVICE, CURRENT_A, RESET_A, PULSE_S = "w5-1", 1.8e-3, -3.25e-3, 10e-6
FAST_TRIALS, NAIVE_TRIALS, REPEATS = 4000, 300, 3


BATCH, NEURONS = 64, 48


def _backend_rates() -> tuple[float, float]:
    import torch

    from hil.neurons import SimBackend
    from hil.neurons.sources import open_backend

    with open_backend("hardware", station=STATION, trials_per_point=20) as (backend, _):
        neurons = backend.assign(NEURONS)
        i50, w = backend.curve(neurons)
        currents = (i50 + w * torch.randn(BATCH, NEURONS, dtype=torch.float64)).to(torch.float32)
        backend.sample(neurons, currents)
        start = time.perf_counter()
        for _ in range(REPEATS):
            backend.sample(neurons, currents)
        hardware = BATCH * NEURONS * REPEATS / (time.perf_counter() - start)
    sim = SimBackend.from_chip_file()
    start = time.perf_counter()
    for _ in range(100):
        sim.sample(neurons, currents)
    return hardware, BATCH * NEURONS * 100 / (time.perf_counter() - start)


def run() -> list[Row]:
    with EmulatedStation(STATION) as emulated, Station.open(emulated.spec) as station:
        station.measure_channel_resistance(DEVICE)
        best = {"fast": (np.inf, 0.0), "naive": (np.inf, 0.0)}
        for _ in range(REPEATS):  # alternate the paths so machine load hits both alike
            for path, runner, n in (("fast", run_trials_fast, FAST_TRIALS), ("naive", run_trials_naive, NAIVE_TRIALS)):
                start = time.perf_counter()
                batch = runner(station, DEVICE, np.full(n, CURRENT_A), PULSE_S, RESET_A)
                per_trial = (time.perf_counter() - start) / n
                if per_trial < best[path][0]:
                    best[path] = (per_trial, batch.instrument_time_s / n)
    (fast_s, fast_model_s), (naive_s, naive_model_s) = best["fast"], best["naive"]
    hardware_rate, sim_rate = _backend_rates()
    return [
        Row("trials_fast_path", 1 / fast_s, "trials/s", 1 / naive_s, naive_s / fast_s,
            f"{FAST_TRIALS} trials per batch; reference: naive path ({NAIVE_TRIALS} trials, commands per pulse/read)"),
        Row("trial_software_time_fast", fast_s * 1e6, "us/trial", fast_model_s * 1e6, fast_s / fast_model_s,
            "software time per trial vs the modeled physical trial (100 us reset, 10 us bias, gaps, two reads)"),
        Row("hardware_backend_samples", hardware_rate, "samples/s", sim_rate, hardware_rate / sim_rate,
            f"hardware backend, pulse mode, on the emulated station: {BATCH}x{NEURONS} currents per call, every "
            "sample a trial; reference: the sim backend on the same shape"),
        Row("trial_software_time_naive", naive_s * 1e6, "us/trial", naive_model_s * 1e6, naive_s / naive_model_s,
            "naive path: software time per trial vs its modeled instrument time"),
    ]
