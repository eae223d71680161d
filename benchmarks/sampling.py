"""Simulated switching draws against the floors they cannot beat, at 10², 10⁴ and 10⁶ (device, current) pairs.

Rows, each from interleaved repetitions in one run (ratio = time / reference time, spread min/median/max over
the repetitions), on one torch thread:

The samplers' own rows run on the ideal chip (``configs/chip.ideal.yaml``: the closed form's fused line), the
effects' row on the default chip against it.

- ``sampling_sim_backend_<n>``: ``SimBackend.sample`` (the draw and the pulse and energy counting) against the
  **RNG floor** ``torch.rand`` of the same shape (aim: ratio ≤ 1.5);
- ``sampling_chip_<n>``: ``Chip.sample_switching`` on per-pair devices against the RNG floor;
- ``sampling_bernoulli_sigmoid_<n>``: the old reference ``bernoulli(sigmoid(x))`` against the RNG floor;
- ``sampling_sim_backend_<n>_bandwidth``: ``SimBackend.sample`` against the **memory-bandwidth floor**, one
  elementwise pass over the bytes a sampler must read and write (the currents copied into a buffer
  allocated once);
- ``sampling_chip_effects_<n>``: ``Chip.sample_switching`` on ``configs/chip.default.yaml`` (heating, bias field,
  drift, telegraph noise and pinning on: tabulated η(I), the drift aging the devices by every call's trials) against
  the same call on the ideal chip (aim: ratio ≤ 1.5).
"""

from __future__ import annotations

import torch

from benchmarks.harness import Row, interleaved_times, ratio_row
from hil.neurons import SimBackend
from instruments.config_files import DEFAULT_CHIP_FILE, IDEAL_CHIP_FILE
from sim_backend import load_chip

SIZES = (100, 10_000, 1_000_000)
NEURONS = 100
PULSE_S = 10e-6
# calls per timed repetition (a single call of 10² pairs lasts microseconds) and repetitions per size
CALLS = {100: 200, 10_000: 10, 1_000_000: 1}
REPEATS = {100: 30, 10_000: 30, 1_000_000: 15}


def _rows(n_pairs: int) -> list[Row]:
    generator = torch.Generator().manual_seed(n_pairs)
    # the backend: one virtual device per neuron, currents within ±3 w_I of each device's I50 (where draws matter)
    backend = SimBackend.virtual(NEURONS, chip=IDEAL_CHIP_FILE, seed=1)
    neurons = backend.assign(NEURONS)
    i50, w = backend.curve(neurons)
    k = torch.rand(n_pairs // NEURONS, NEURONS, generator=generator, dtype=torch.float64) * 6 - 3
    currents = (i50 + w * k).float()
    # the chip: every pair on one of the 12 devices (3 widths), currents from 0.6 to 0.9 Ic0
    chip = load_chip(IDEAL_CHIP_FILE)
    realistic = load_chip(DEFAULT_CHIP_FILE)
    devices = torch.randint(0, len(chip), (n_pairs,), generator=generator)
    chip_currents = (chip.ic0_a[devices] * (0.6 + 0.3 * torch.rand(n_pairs, generator=generator,
                                                                     dtype=torch.float64))).float()
    logits = torch.randn(currents.shape, generator=generator)
    draws = torch.Generator().manual_seed(2)
    copied = torch.empty_like(currents)  # allocated once: a fresh buffer per call would time its page faults

    def repeated(fn):
        calls = CALLS[n_pairs]
        return lambda: [fn() for _ in range(calls)]

    fns = {
        "rand": lambda: torch.rand(currents.shape, generator=draws),
        "copy": lambda: copied.copy_(currents),
        "sim": lambda: backend.sample(neurons, currents),
        "chip": lambda: chip.sample_switching(devices, chip_currents, PULSE_S),
        "effects": lambda: realistic.sample_switching(devices, chip_currents, PULSE_S),
        "bernoulli": lambda: torch.bernoulli(torch.sigmoid(logits), generator=draws),
    }
    times = interleaved_times({name: repeated(fn) for name, fn in fns.items()}, repeats=REPEATS[n_pairs])
    scale = 1.0 / CALLS[n_pairs]
    size = f"{n_pairs:.0e} pairs"
    where = f"{size}, float32, 1 thread; s per call"
    return [
        ratio_row(f"sampling_sim_backend_{n_pairs:.0e}", times, "sim", "rand", scale=scale,
                  note=f"SimBackend.sample ({NEURONS} devices, draw + pulse/energy counting), {where}; "
                       "reference: torch.rand of the same shape (RNG floor)"),
        ratio_row(f"sampling_chip_{n_pairs:.0e}", times, "chip", "rand", scale=scale,
                  note=f"Chip.sample_switching, a device per pair (12 devices, 3 widths), {where}; "
                       "reference: torch.rand (RNG floor)"),
        ratio_row(f"sampling_bernoulli_sigmoid_{n_pairs:.0e}", times, "bernoulli", "rand", scale=scale,
                  note=f"torch.bernoulli(torch.sigmoid(x)) (the old floor), {where}; reference: torch.rand"),
        ratio_row(f"sampling_chip_effects_{n_pairs:.0e}", times, "effects", "chip", scale=scale,
                  note=f"Chip.sample_switching with every effect of chip.default.yaml on, {where}; reference: the "
                       "same on the ideal chip (the effects' cost)"),
        ratio_row(f"sampling_sim_backend_{n_pairs:.0e}_bandwidth", times, "sim", "copy", scale=scale,
                  note=f"SimBackend.sample, {where}; reference: a copy of I into a buffer allocated once, one pass "
                       "over the bytes read and written (memory-bandwidth floor)"),
    ]


def run() -> list[Row]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        return [row for n_pairs in SIZES for row in _rows(n_pairs)]
    finally:
        torch.set_num_threads(threads)
