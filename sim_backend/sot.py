"""Néel–Brown switching of a spin-orbit-torque stochastic neuron (physics.md §1).

All functions are elementwise and broadcast over torch tensors, so one call covers any number of
(device, current) pairs. Currents are magnitudes in A in the switching direction; durations in s.
"""

from __future__ import annotations

import math

import torch

MEDIAN_SHIFT = 0.37  # −ln(ln 2): where the Gumbel-shaped curve crosses P = 1/2 (physics.md)
LOGISTIC_WIDTH_FACTOR = 0.69  # w_I ≈ 0.69 · Ic0/Δ for n = 1


def switching_rate(current_a: torch.Tensor, ic0_a: torch.Tensor, delta: torch.Tensor,
                   tau0_s: float | torch.Tensor = 1e-9, n: float | torch.Tensor = 1.0) -> torch.Tensor:
    """Thermally activated switching rate 1/τ(I) in 1/s.

    ``τ(I) = τ0 · exp(Δ · (1 − I/Ic0)^n)`` for ``0 ≤ I < Ic0`` and ``τ0`` above ``Ic0``.
    A current of zero or opposite sign (I ≤ 0) gives the zero-current rate ``exp(−Δ)/τ0``,
    which is negligible for any stable magnet (Δ ≳ 30).
    """
    reduced = (1.0 - current_a.clamp(min=0.0) / ic0_a).clamp(min=0.0)
    if not (isinstance(n, float | int) and n == 1):
        reduced = reduced.pow(n)
    return torch.exp(-delta * reduced) / tau0_s


def switching_probability(current_a: torch.Tensor, width_s: float | torch.Tensor, ic0_a: torch.Tensor,
                          delta: torch.Tensor, tau0_s: float | torch.Tensor = 1e-9,
                          n: float | torch.Tensor = 1.0) -> torch.Tensor:
    """Probability that one rectangular pulse of ``current_a`` and ``width_s`` switches the device.

    ``P_sw = 1 − exp(−t_p/τ(I))``. Broadcasts over all arguments.
    """
    rate = switching_rate(current_a, ic0_a, delta, tau0_s, n)
    return -torch.expm1(-rate * width_s)


def logistic_from_neel_brown(ic0_a: float, delta: float, width_s: float,
                             tau0_s: float = 1e-9) -> tuple[float, float]:
    """Logistic ``(I50, w_I)`` in A equivalent to the Néel–Brown curve, n = 1 (physics.md).

    ``I50 ≈ Ic0 · (1 − (ln(t_p/τ0) + 0.37)/Δ)`` and ``w_I ≈ 0.69 · Ic0/Δ``.
    """
    log_ratio = math.log(width_s / tau0_s)
    return ic0_a * (1.0 - (log_ratio + MEDIAN_SHIFT) / delta), LOGISTIC_WIDTH_FACTOR * ic0_a / delta


def exact_i50(ic0_a: torch.Tensor, delta: torch.Tensor, width_s: float, tau0_s: float = 1e-9,
              n: float = 1.0) -> torch.Tensor:
    """Current in A at which the Néel–Brown curve crosses P = 0.5 (exact, any n)."""
    # 1 − exp(−t/τ) = 1/2  ⇔  τ = t/ln 2  ⇔  Δ(1 − I/Ic0)^n = ln(t/(τ0 ln 2))
    barrier = math.log(width_s / (tau0_s * math.log(2.0)))
    return ic0_a * (1.0 - (barrier / delta).clamp(min=0.0).pow(1.0 / n))
