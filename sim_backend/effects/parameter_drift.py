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

The state moves in steps of ``interval`` (60 s by default): time and pulses accumulate, and the walk, the wear and
the room's temperature advance by all of it at once when an interval is full — the processes sampled every
``interval`` (exactly, for the walk and the Ornstein–Uhlenbeck process), constant in between. Over 60 s the walk moves
Ic0 by 0.07 %, a few % of a 3 µm bar's logistic width; the samplers' tables are rebuilt once per step, not per call.
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
    interval_s: float = 60.0


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
        self.pending_s = 0.0  # time and pulses since the drift last moved
        self.pending_pulses = torch.zeros(n, dtype=torch.float64)
        self.device = device

    def advance(self, seconds: float, pulses: torch.Tensor | None = None) -> bool:
        """``seconds`` pass; ``pulses`` (per device) went through the devices meanwhile. Returns whether the drift
        moved (a full interval has passed since it last did)."""
        self.pending_s += seconds
        if pulses is not None:
            self.pending_pulses += pulses.detach().to("cpu", torch.float64)
        if self.pending_s < self.drift.interval_s:
            return False
        d, elapsed = self.drift, self.pending_s
        scale = math.sqrt(elapsed / SECONDS_PER_HOUR)
        z = torch.randn((2, self.log_ic0.numel()), generator=self.generator, dtype=torch.float64)
        self.log_ic0 += d.ic0_walk * scale * z[0] - self.wear_rate * self.pending_pulses / PULSES_PER_WEAR_UNIT
        self.log_delta += d.delta_walk * scale * z[1]
        keep = math.exp(-elapsed / d.ambient_time_s)
        kick = float(torch.randn((), generator=self.generator, dtype=torch.float64))
        self.ambient_offset_k = self.ambient_offset_k * keep + d.ambient_sigma_k * math.sqrt(1 - keep**2) * kick
        self.pending_s = 0.0
        self.pending_pulses.zero_()
        return True

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Ic0, Δ)`` multipliers per device, on the chip's torch device."""
        return torch.exp(self.log_ic0).to(self.device), torch.exp(self.log_delta).to(self.device)

    def state_dict(self) -> dict[str, object]:
        return {"log_ic0": self.log_ic0.clone(), "log_delta": self.log_delta.clone(),
                "ambient_offset_k": self.ambient_offset_k, "pending_s": self.pending_s,
                "pending_pulses": self.pending_pulses.clone(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.log_ic0 = state["log_ic0"].clone()  # type: ignore[union-attr]
        self.log_delta = state["log_delta"].clone()  # type: ignore[union-attr]
        self.ambient_offset_k = float(state["ambient_offset_k"])  # type: ignore[arg-type]
        self.pending_s = float(state["pending_s"])  # type: ignore[arg-type]
        self.pending_pulses = state["pending_pulses"].clone()  # type: ignore[union-attr]
        self.generator.set_state(state["generator"].cpu())  # type: ignore[union-attr]
