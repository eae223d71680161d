"""Slow drift of each device's critical current and thermal stability (physics.md §5, drift).

Three causes, each a small multiplicative change:

- **time**: a random walk of ``ln Ic0`` and ``ln Δ`` per device (charge trapping, slow relaxation of the stack),
  ``ic0_walk``/``delta_walk`` relative rms per √hour;
- **wear**: ``ln Ic0`` falls by ``wear`` per 10⁶ pulses through the device (electromigration and interface
  intermixing under repeated current), each device at its own rate (lognormal spread ``wear_spread``);
- **ambient temperature**: the room and the chuck wander by ``ambient_sigma`` (rms, an Ornstein–Uhlenbeck process
  with correlation time ``ambient_time``), common to all devices; it reaches Ic0 and Δ through the temperature
  laws (:mod:`sim_backend.effects.magnet_temperature`).

The defaults move a device's I50 by about 1 % over 10⁶ trials (two pulses each) at the fast path's 0.5 ms per
trial, the order physics.md asks for. The drift draws on its own random stream, so switching outcomes keep theirs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SECONDS_PER_HOUR = 3600.0
PULSES_PER_WEAR_UNIT = 1e6


@dataclass(frozen=True)
class ParameterDrift:
    """Drift settings; ``ambient_sigma_k`` in K, ``ambient_time_s`` in s."""

    ic0_walk: float = 0.005
    delta_walk: float = 0.01
    wear: float = 0.005
    wear_spread: float = 0.5
    ambient_sigma_k: float = 0.2
    ambient_time_s: float = 1800.0


class DriftState:
    """The drift of ``n`` devices so far: ``log_ic0``, ``log_delta`` (per device) and the ambient offset (K)."""

    def __init__(self, drift: ParameterDrift, n: int, seed: int, device: torch.device) -> None:
        self.drift = drift
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.wear_rate = drift.wear * torch.exp(drift.wear_spread * torch.randn(n, generator=self.generator,
                                                                                 dtype=torch.float64))
        self.log_ic0 = torch.zeros(n, dtype=torch.float64)
        self.log_delta = torch.zeros(n, dtype=torch.float64)
        self.ambient_offset_k = 0.0
        self.device = device

    def advance(self, seconds: float, pulses: torch.Tensor | None = None) -> None:
        """``seconds`` pass; ``pulses`` (per device) went through the devices meanwhile."""
        d = self.drift
        if seconds > 0:
            scale = math.sqrt(seconds / SECONDS_PER_HOUR)
            z = torch.randn((2, self.log_ic0.numel()), generator=self.generator, dtype=torch.float64)
            self.log_ic0 += d.ic0_walk * scale * z[0]
            self.log_delta += d.delta_walk * scale * z[1]
            keep = math.exp(-seconds / d.ambient_time_s)
            kick = float(torch.randn((), generator=self.generator, dtype=torch.float64))
            self.ambient_offset_k = self.ambient_offset_k * keep + d.ambient_sigma_k * math.sqrt(1 - keep**2) * kick
        if pulses is not None:
            self.log_ic0 -= self.wear_rate * pulses.detach().to("cpu", torch.float64) / PULSES_PER_WEAR_UNIT

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Ic0, Δ)`` multipliers per device, on the chip's torch device."""
        return torch.exp(self.log_ic0).to(self.device), torch.exp(self.log_delta).to(self.device)

    def state_dict(self) -> dict[str, object]:
        return {"log_ic0": self.log_ic0.clone(), "log_delta": self.log_delta.clone(),
                "ambient_offset_k": self.ambient_offset_k, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.log_ic0 = state["log_ic0"].clone()  # type: ignore[union-attr]
        self.log_delta = state["log_delta"].clone()  # type: ignore[union-attr]
        self.ambient_offset_k = float(state["ambient_offset_k"])  # type: ignore[arg-type]
        self.generator.set_state(state["generator"])  # type: ignore[arg-type]
