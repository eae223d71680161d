"""Reversals that stop at a pinning site: incomplete switching, and the failed resets it causes (physics.md §5).

In a micrometre Hall bar a reversal nucleates a domain that must sweep the whole cross; a defect can pin its wall
part-way, and the bar relaxes back (or stays multi-domain and reads as not switched). The chance of that falls as
the current overdrives the bar past its critical current, which depins the wall:
``p_pin(x) = p / (1 + e^((x − 1)/s))`` with ``x = |I| / Ic0(T)`` — about ``p`` below ``Ic0``, ``p/2`` at ``Ic0``,
falling as ``e^(−(x − 1)/s)`` above it. Each device has its own ``p`` (a lognormal spread: some crosses hold a
strong pinning site). A switching event completes with probability ``1 − p_pin``: switching curves saturate just
below 1, and a reset pulse at a fixed nominal amplitude fails at a small rate that differs from device to device
(the defaults give about 1e-3 on average at the 1.3 × Ic0 reset, 1e-4 to 1e-2 across devices, physics.md's range).
This is a phenomenological model: its three numbers are what a reset check measures.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ReversalPinning:
    """``probability``: ``p`` of the median device; ``overdrive_scale``: ``s``; ``spread``: lognormal sigma of ``p``."""

    probability: float = 5e-3
    overdrive_scale: float = 0.3
    spread: float = 1.0

    def device_probabilities(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Each device's ``p`` (drawn once), clipped to 1."""
        z = torch.randn(n, generator=generator, dtype=torch.float64)
        return (self.probability * torch.exp(self.spread * z)).clamp(max=1.0)

    def failure(self, overdrive: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """``p_pin`` at ``overdrive = |I|/Ic0(T)`` for devices of ``p`` (broadcast)."""
        return p * torch.sigmoid(-(overdrive - 1.0) / self.overdrive_scale)
