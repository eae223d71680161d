"""How the free layer and the channel follow their temperature (physics.md §5, Joule heating).

The chip file's material values hold at the ambient temperature ``T0``. With the magnetization following
``M_s(T) ∝ 1 − (T/T_c)^(3/2)`` (Bloch's law, a fair description of thin CoFeB up to a good fraction of ``T_c``),
``m(T) = M_s(T)/M_s(T0)`` and, as physics.md gives them:

- ``Δ(T) = Δ0 · (T0/T) · m(T)²`` (the anisotropy energy ∝ M_s², over k_B T);
- ``Ic0(T) = Ic0 · m(T)²`` (∝ M_s·H_k with H_k ∝ M_s);
- ``ΔR_AHE(T) = ΔR_AHE · m(T)`` (the anomalous Hall step follows the magnetization);
- ``R_ch(T) = R_ch · (1 + α (T − T0))`` (the heavy metal's temperature coefficient ``α``).

Above ``T_c`` the magnet has no order (``m = 0``): no barrier, no Hall step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

BLOCH_EXPONENT = 1.5


@dataclass(frozen=True)
class MagnetTemperature:
    """Temperature laws of the magnet and the channel; temperatures in K, ``tcr`` in 1/K."""

    ambient_k: float = 300.0
    curie_k: float = 600.0
    tcr_per_k: float = 1.0e-3

    def magnetization(self, temperature_k: torch.Tensor) -> torch.Tensor:
        """``m(T) = M_s(T)/M_s(T0)`` (0 above the Curie temperature)."""
        at = (1.0 - (temperature_k / self.curie_k).clamp(min=0.0) ** BLOCH_EXPONENT).clamp(min=0.0)
        return at / (1.0 - (self.ambient_k / self.curie_k) ** BLOCH_EXPONENT)

    def delta_factor(self, temperature_k: torch.Tensor) -> torch.Tensor:
        """``Δ(T)/Δ0``."""
        return self.ambient_k / temperature_k * self.magnetization(temperature_k) ** 2

    def ic0_factor(self, temperature_k: torch.Tensor) -> torch.Tensor:
        """``Ic0(T)/Ic0``."""
        return self.magnetization(temperature_k) ** 2

    def hall_factor(self, temperature_k: torch.Tensor) -> torch.Tensor:
        """``ΔR_AHE(T)/ΔR_AHE``."""
        return self.magnetization(temperature_k)

    def resistance_factor(self, temperature_k: torch.Tensor) -> torch.Tensor:
        """``R_ch(T)/R_ch``."""
        return 1.0 + self.tcr_per_k * (temperature_k - self.ambient_k)
