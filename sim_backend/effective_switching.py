"""Néel–Brown switching of a real Hall bar: the closed form at the bar's own temperature, through a pulse.

:mod:`sim_backend.sot` is the textbook rate at fixed parameters. A fabricated bar warms while the pulse flows
(:mod:`sim_backend.effects.joule_heating`), so Δ and Ic0 change along the pulse; its reversal can stop at a
pinning site (:mod:`sim_backend.effects.reversal_pinning`). This module turns both into the one number the draws
need, the log of the expected number of switching events ``η`` with ``P = 1 − exp(−e^η)``:

- the rate is integrated over the pulse exactly where the temperature is steady and by Gauss–Legendre
  quadrature over the thermal transient (the first ``TRANSIENT_SPANS`` thermal time constants), where the
  temperature relaxes exponentially from where the last segment left it to the pulse's steady temperature;
- pinning folds in as ``P' = P (1 − p_pin)``, i.e. ``η' = ln(−ln(1 − P'))``, computed in the log domain.

:class:`LogCountTable` tabulates ``η'`` per device over a grid of currents for the fused sampler: one gather
and one multiply-add per draw instead of the quadrature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from sim_backend.effects.magnet_temperature import MagnetTemperature
from sim_backend.effects.reversal_pinning import ReversalPinning

TRANSIENT_SPANS = 8.0  # after 8 thermal time constants the temperature is within e^-8 (0.03 %) of its steady value
_GAUSS_NODES, _GAUSS_WEIGHTS = np.polynomial.legendre.leggauss(6)


@dataclass
class BarParameters:
    """Per-element parameters of the bars a computation concerns (broadcast against the currents).

    ``ic0_a`` and ``delta`` at the ambient temperature with the bias field and the drift applied; ``r_ch_ohm``
    cold; ``r_th`` in K/W (``None``: no heating); ``pin`` each device's pinning probability (``None``: none).
    """

    ic0_a: torch.Tensor
    delta: torch.Tensor
    r_ch_ohm: torch.Tensor
    ambient_k: float
    r_th: torch.Tensor | None = None
    pin: torch.Tensor | None = None


def barrier_log_count(current_a: torch.Tensor, width_s: torch.Tensor | float, ic0_a: torch.Tensor,
                      delta: torch.Tensor, tau0_s: float, n: float) -> torch.Tensor:
    """``η = ln(t/τ0) − Δ (1 − I/Ic0)^n`` (the clamps of :func:`sim_backend.sot.switching_rate`)."""
    reduced = (1.0 - current_a.clamp(min=0.0) / ic0_a).clamp(min=0.0)
    if n != 1:
        reduced = reduced.pow(n)
    log_width = torch.log(width_s) if isinstance(width_s, torch.Tensor) else math.log(width_s)
    return log_width - math.log(tau0_s) - delta * reduced


def pulse_log_count(current_a: torch.Tensor, width_s: torch.Tensor | float, bars: BarParameters,
                    laws: MagnetTemperature, tau0_s: float, n: float,
                    start_k: torch.Tensor | None = None, steady_k: torch.Tensor | None = None,
                    thermal_time_s: float | None = None) -> torch.Tensor:
    """``η`` of a rectangular pulse of ``current_a`` (magnitude in the switching direction) and ``width_s``.

    Without heating (``steady_k`` is ``None``) the bar stays at the ambient temperature. With it, the temperature
    goes from ``start_k`` to ``steady_k`` with ``thermal_time_s`` and the rate is integrated along the way.
    """
    ambient = torch.as_tensor(bars.ambient_k, dtype=torch.float64, device=current_a.device)
    if steady_k is None or thermal_time_s is None:
        return barrier_log_count(current_a, width_s, bars.ic0_a * laws.ic0_factor(ambient),
                                 bars.delta * laws.delta_factor(ambient), tau0_s, n)
    width = torch.as_tensor(width_s, dtype=torch.float64, device=current_a.device)
    start = steady_k if start_k is None else start_k
    shape = torch.broadcast_shapes(current_a.shape, width.shape, steady_k.shape, start.shape)
    transient = torch.minimum(width, torch.as_tensor(TRANSIENT_SPANS * thermal_time_s, dtype=torch.float64))
    # the quadrature's nodes along a leading dimension: one evaluation of the rate for all of them
    along = (-1,) + (1,) * len(shape)
    nodes = torch.as_tensor(_GAUSS_NODES, dtype=torch.float64, device=current_a.device).reshape(along)
    weights = torch.as_tensor(_GAUSS_WEIGHTS, dtype=torch.float64, device=current_a.device).reshape(along)
    t = 0.5 * transient * (nodes + 1.0)
    temperature = steady_k + (start - steady_k) * torch.exp(-t / thermal_time_s)
    during = _log_rate(current_a, bars, laws, temperature, tau0_s, n) + torch.log(0.5 * weights * transient)
    rest = (width - transient).clamp(min=0.0)
    after = _log_rate(current_a, bars, laws, steady_k, tau0_s, n) + torch.log(rest)
    return torch.logsumexp(torch.cat([during.expand(len(_GAUSS_NODES), *shape), after.expand(shape)[None]]), dim=0)


def _log_rate(current_a: torch.Tensor, bars: BarParameters, laws: MagnetTemperature, temperature_k: torch.Tensor,
              tau0_s: float, n: float) -> torch.Tensor:
    """``ln(1/τ(I, T))`` in 1/s."""
    return barrier_log_count(current_a, 1.0, bars.ic0_a * laws.ic0_factor(temperature_k),
                             bars.delta * laws.delta_factor(temperature_k), tau0_s, n)


def pinned_log_count(log_count: torch.Tensor, overdrive: torch.Tensor, pin: torch.Tensor,
                     pinning: ReversalPinning) -> torch.Tensor:
    """``η'`` of ``P' = P (1 − p_pin)`` for ``η`` = ``log_count`` (P = 1 − exp(−e^η)), in the log domain."""
    p_pin = pinning.failure(overdrive, pin)
    p_switch = -torch.expm1(-torch.exp(log_count))
    # ln(1 − P') = ln(exp(−e^η) + P·p_pin): exact where P is near 1 and p_pin near 0
    log_stay = torch.logaddexp(-torch.exp(log_count), torch.log(p_switch) + torch.log(p_pin))
    return torch.log(-log_stay)


class LogCountTable:
    """``η'(I)`` of each device tabulated on ``points`` currents from 0 to ``top_a`` (per device), for the fused
    sampler: a current's ``η'`` is the linear interpolation between its two grid points (currents above the top
    take the top's value). ``values``/``slopes``: (devices × points,) in the sampler's dtype."""

    def __init__(self, log_count_of: callable, top_a: torch.Tensor, points: int = 512) -> None:
        grid = torch.linspace(0.0, 1.0, points, dtype=torch.float64, device=top_a.device)
        currents = top_a[:, None] * grid[None, :]
        eta = log_count_of(currents)  # (devices, points)
        self.points = points
        self.step_a = top_a / (points - 1)
        slopes = torch.diff(eta, dim=1, append=eta[:, -1:])
        self.values64, self.slopes64 = eta.reshape(-1), slopes.reshape(-1)

    def gathered(self, idx: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per element of ``idx``: ``(1/step, first grid index, last grid index)`` for :meth:`log_count` (int32
        indices: half the memory traffic of int64, and ``index_select`` takes them)."""
        inverse = (1.0 / self.step_a).to(dtype)[idx]
        base = (idx.to(torch.int32) * self.points)
        return inverse, base, base + (self.points - 1)

    def log_count(self, current_a: torch.Tensor, gathered: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                  values: torch.Tensor, slopes: torch.Tensor) -> torch.Tensor:
        """``η'`` at ``current_a`` (``values``/``slopes``: the tables in the currents' dtype)."""
        inverse, base, last = gathered
        position = (current_a * inverse).clamp_(min=0.0)
        step = position.to(torch.int32)
        fraction = position.sub_(step)
        at = torch.minimum(step.add_(base), last).reshape(-1)
        shape = fraction.shape
        return torch.addcmul(values.index_select(0, at).reshape(shape), slopes.index_select(0, at).reshape(shape),
                             fraction)
