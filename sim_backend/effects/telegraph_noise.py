"""Random telegraph noise on the Hall readings (physics.md §5).

A two-level fluctuator near the Hall cross (a charge trap, a pinned grain flipping) shifts ``R_xy`` by ``±A/2``,
switching between its levels at random with mean dwell time ``τ``. Unlike the Gaussian read noise, it is
correlated in time: readings closer than ``τ`` see the same level, so averaging back-to-back readings does not
remove it — repeated reads help only once they are spread over several ``τ``. The amplitude is larger on smaller
Hall crosses (one fluctuator is a larger share of a smaller cross): ``A = amplitude · reference_width / width``.

Between two readings ``Δt`` apart the level has flipped an odd number of times with probability
``(1 − e^(−2Δt/τ))/2`` (symmetric two-state Markov process), which lets any number of readings be drawn at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TelegraphNoise:
    """``amplitude_ohm``: peak-to-peak step on a ``reference_width_m`` cross; ``dwell_s``: mean time per level."""

    amplitude_ohm: float = 0.5
    dwell_s: float = 1e-3
    reference_width_m: float = 3e-6


class TelegraphState:
    """The fluctuators of ``n`` devices: amplitudes (Ω), levels (±1) and when each was last looked at (s)."""

    def __init__(self, noise: TelegraphNoise, width_m: torch.Tensor, seed: int) -> None:
        self.noise = noise
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.amplitude_ohm = (noise.amplitude_ohm * noise.reference_width_m / width_m.detach().cpu()).to(torch.float64)
        n = width_m.numel()
        self.level = torch.where(torch.rand(n, generator=self.generator, dtype=torch.float64) < 0.5, -1.0, 1.0)
        self.seen_s = torch.zeros(n, dtype=torch.float64)

    def offsets(self, index: torch.Tensor, times_s: torch.Tensor) -> torch.Tensor:
        """``R_xy`` offsets (Ω) of devices ``index`` (k,) at ``times_s`` (k, n), each row in time order."""
        index = index.to("cpu")
        times = times_s.to("cpu", torch.float64)
        gaps = torch.diff(times, dim=1, prepend=self.seen_s[index, None]).clamp(min=0.0)
        odd = 0.5 * (1.0 - torch.exp(-2.0 * gaps / self.noise.dwell_s))
        flips = (torch.rand(gaps.shape, generator=self.generator, dtype=torch.float64) < odd).to(torch.int64)
        parity = flips.cumsum(dim=1) % 2
        levels = self.level[index, None] * (1.0 - 2.0 * parity)
        if times.shape[1]:
            self.level[index] = levels[:, -1]
            self.seen_s[index] = torch.maximum(self.seen_s[index], times[:, -1])
        return 0.5 * self.amplitude_ohm[index, None] * levels

    def state_dict(self) -> dict[str, object]:
        return {"level": self.level.clone(), "seen_s": self.seen_s.clone(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.level = state["level"].clone()  # type: ignore[union-attr]
        self.seen_s = state["seen_s"].clone()  # type: ignore[union-attr]
        self.generator.set_state(state["generator"].cpu())  # type: ignore[union-attr]
