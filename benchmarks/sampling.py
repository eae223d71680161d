"""Simulated switching samples per second against the floor ``bernoulli(sigmoid(x))``."""

from __future__ import annotations

import torch

from benchmarks.harness import Row, interleaved_best_times
from sim_backend import load_chip

N_PAIRS = 1_000_000
PULSE_S = 10e-6


def run() -> list[Row]:
    torch.manual_seed(0)
    chip = load_chip()
    generator = torch.Generator().manual_seed(1)
    # a heterogeneous batch: every pair picks one of the 12 devices (3 widths) and a current near its I50
    devices = torch.randint(0, len(chip), (N_PAIRS,), generator=generator)
    currents = (chip.ic0_a[devices] * (0.6 + 0.3 * torch.rand(N_PAIRS, generator=generator, dtype=torch.float64)))
    currents = currents.to(torch.float32)
    logits = torch.randn(N_PAIRS, generator=generator)

    def simulator() -> torch.Tensor:
        return chip.sample_switching(devices, currents, PULSE_S)

    def floor() -> torch.Tensor:
        return torch.bernoulli(torch.sigmoid(logits), generator=generator)

    times = interleaved_best_times({"sim": simulator, "floor": floor}, repeats=15)
    sim_rate, floor_rate = N_PAIRS / times["sim"], N_PAIRS / times["floor"]
    return [Row("sim_switching_samples", sim_rate, "samples/s", floor_rate, sim_rate / floor_rate,
                f"{N_PAIRS:.0e} (device, current) pairs, 12 devices of 3 widths, float32; "
                "reference: torch.bernoulli(torch.sigmoid(x)) on the same shape")]
