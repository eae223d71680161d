"""Device-steps per second of the vectorized macrospin sLLG against a single-device loop, in one run.

Rows, each from interleaved repetitions (ratio = value / reference, spread min/median/max of the repetitions'
own ratios), float64 on one torch thread, 300 K, Δ = 40, a current of 0.7 Ic0 (thermal field drawn every step):

- ``macrospin_sllg_<n>``: ``HeunIntegrator.run`` on ``n`` macrospins at once (4096 and 65536) against the
  **single-device reference**, the same integrator on one macrospin stepping in Python. The reference's time
  per repetition is scaled by ``n`` (what a loop over the ``n`` devices would take) so that value and reference
  are both device-steps per second; the ratio is the speed-up of vectorizing.
"""

from __future__ import annotations

import torch

from benchmarks.harness import Row, interleaved_times, ratio_row
from sim_backend.macrospin import DEFAULT_PARAMETERS, HeunIntegrator, macrospin_twin, thermal_start

SIZES = (4096, 65536)
STEPS = {4096: 200, 65536: 40}  # steps per timed call (a call of the large size lasts about as long)
REPEATS = 9
DELTA = 40.0
IC0_A = 2.5e-3


def _integrator(n: int, seed: int) -> tuple[HeunIntegrator, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ic0 = torch.full((n,), IC0_A, dtype=torch.float64)
    delta = torch.full((n,), DELTA, dtype=torch.float64)
    twin = macrospin_twin(ic0, delta)
    m = thermal_start(torch.zeros(n, dtype=torch.bool), delta, DEFAULT_PARAMETERS, generator)
    field = twin.dl_field_per_a * 0.7 * IC0_A
    return HeunIntegrator(m, DEFAULT_PARAMETERS, twin.thermal_variance_t2_s, generator), field


def _row(n: int) -> Row:
    steps = STEPS[n]
    duration = steps * DEFAULT_PARAMETERS.step_s
    vectorized, field = _integrator(n, seed=1)
    single, single_field = _integrator(1, seed=2)
    times = interleaved_times({"vectorized": lambda: vectorized.run(field, duration),
                               "loop": lambda: single.run(single_field, duration)}, repeats=REPEATS)
    times["loop"] = [t * n for t in times["loop"]]  # one device → n devices stepped one after the other
    return ratio_row(f"macrospin_sllg_{n}", times, "vectorized", "loop", unit="device-steps/s",
                     scale=n * steps, per_time=True,
                     note=f"{n} macrospins × {steps} Heun steps of 1 ps (float64, 300 K, 0.7 Ic0, 1 thread); "
                          "reference: the same integrator on 1 macrospin, its time × n")


def run() -> list[Row]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return [_row(n) for n in SIZES]
    finally:
        torch.set_num_threads(threads)
