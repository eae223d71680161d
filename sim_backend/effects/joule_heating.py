"""Joule heating of a Hall bar's channel: the temperature a current drives it to, and how fast it gets there.

A current ``I`` through the channel dissipates ``P = I² R_ch(T)``; the bar warms by ``ΔT = P · R_th`` above the
ambient temperature with the thermal time constant ``τ_th`` (a first-order lag, :mod:`sim_backend.first_order_lag`).
``R_th`` comes from the heat's path into the substrate: per unit area it is ``d_ox/k_ox`` for an oxide of thickness
``d_ox`` (300 nm of thermal SiO2, ``k ≈ 1.4 W/(m K)``: 2.1e-7 K m²/W), so ``R_th = r_th / (w L)`` — about 7e3 K/W
for a 3 µm × 10 µm bar, the 1e4 K/W order physics.md gives — and every width reaches the same temperature at the
same current density. The heat crosses the oxide in ``d_ox²/D_ox`` ≈ 100 ns (``D ≈ 8e-7 m²/s`` for SiO2) but then
spreads into the silicon under a bar some 10 µm across, which takes ``L²/D_Si`` ≈ 1 µs (``D ≈ 9e-5 m²/s``): one lag of
``τ_th`` = 1 µs stands for both, so that a bar keeps warming through the first microseconds of a pulse and switching
against pulse width bends there, as measured bars do.

With ``R_ch(T) = R_ch (1 + α ΔT)``, a current source's steady rise solves ``ΔT = I² R_ch (1 + α ΔT) R_th`` in
closed form; a voltage source behind ``R_out`` drives less current as the channel warms (solved by a few
fixed-point steps: ``α ΔT`` is small).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sim_backend.effects.magnet_temperature import MagnetTemperature

RUNAWAY_MARGIN = 0.05  # 1 − α I² R R_th is kept above this: a bar near thermal runaway is capped, not infinite
VOLTAGE_DRIVE_ITERATIONS = 4


@dataclass(frozen=True)
class JouleHeating:
    """``specific_resistance`` in K m²/W (``R_th · area``), ``time_s`` the thermal time constant."""

    specific_resistance: float = 2.1e-7
    time_s: float = 1e-6

    def thermal_resistance(self, width_m: torch.Tensor, length_m: float) -> torch.Tensor:
        """``R_th`` in K/W of bars of ``width_m`` and ``length_m``."""
        return self.specific_resistance / (width_m * length_m)

    def steady_rise(self, current_a: torch.Tensor, r_ch_ohm: torch.Tensor, r_th: torch.Tensor,
                    laws: MagnetTemperature) -> torch.Tensor:
        """Steady temperature rise (K) under a DC ``current_a`` (a current source) through the channel."""
        load = current_a.square() * r_ch_ohm * r_th  # K at the ambient resistance
        return load / (1.0 - laws.tcr_per_k * load).clamp(min=RUNAWAY_MARGIN)

    def current_for_voltage(self, voltage_v: torch.Tensor, r_ch_ohm: torch.Tensor, r_out_ohm: float,
                            r_th: torch.Tensor, laws: MagnetTemperature) -> torch.Tensor:
        """The steady current (A) a voltage source behind ``r_out_ohm`` drives through a warming channel."""
        rise = torch.zeros_like(voltage_v)
        for _ in range(VOLTAGE_DRIVE_ITERATIONS):
            resistance = r_ch_ohm * (1.0 + laws.tcr_per_k * rise)
            current = voltage_v / (resistance + r_out_ohm)
            rise = current.square() * resistance * r_th
        return voltage_v / (r_ch_ohm * (1.0 + laws.tcr_per_k * rise) + r_out_ohm)
