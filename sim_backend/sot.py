"""Néel–Brown switching of a spin-orbit-torque stochastic neuron (physics.md §1).

All functions are elementwise and broadcast over torch tensors, so one call covers any number of
(device, current) pairs. Currents are magnitudes in A in the switching direction; durations in s.

Sampling works on the log of the expected number of switching events of a pulse,
``η = ln(t_p/τ(I))``, with ``P_sw = 1 − exp(−e^η)``: :func:`draw_switched` turns one uniform per pulse
into a Gumbel threshold in place and compares η with it, so a draw costs the uniform and a few
vectorized passes (no exponential of η, no ``P_sw`` tensor, no ``bernoulli``). For ``n = 1``, η is a
line in ``I`` (:func:`log_count_line`), one fused multiply-add per element.
"""

from __future__ import annotations

import math
from typing import Any

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


def log_switching_count(current_a: torch.Tensor, width_s: float | torch.Tensor, ic0_a: torch.Tensor,
                        delta: torch.Tensor, tau0_s: float | torch.Tensor = 1e-9,
                        n: float | torch.Tensor = 1.0) -> torch.Tensor:
    """``η = ln(t_p/τ(I))``, the log of the expected number of switching events of one pulse (any ``n``).

    ``P_sw = 1 − exp(−e^η)``; the clamps of :func:`switching_rate` apply (``I ≤ 0``: τ(0); ``I ≥ Ic0``: τ0).
    Broadcasts over all arguments.
    """
    reduced = (1.0 - current_a.clamp(min=0.0) / ic0_a).clamp(min=0.0)
    if not (isinstance(n, float | int) and n == 1):
        reduced = reduced.pow(n)
    barrier = reduced * delta  # Δ(1 − I/Ic0)^n, broadcast to the full shape
    log_ratio = _log(width_s) - _log(tau0_s)
    return torch.sub(log_ratio, barrier) if isinstance(log_ratio, torch.Tensor) else barrier.neg_().add_(log_ratio)


def _log(value: float | torch.Tensor) -> float | torch.Tensor:
    return torch.log(value) if isinstance(value, torch.Tensor) else math.log(value)


def log_count_line(ic0_a: torch.Tensor, delta: torch.Tensor, width_s: float,
                   tau0_s: float = 1e-9) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """For ``n = 1``, η as a line in ``I``: ``(intercept, slope, floor, ceiling)``.

    ``η = intercept + slope·I = ln(t_p/τ0) − Δ + (Δ/Ic0)·I`` for ``0 ≤ I ≤ Ic0``, clamped to
    ``[floor, ceiling] = [ln(t_p/τ0) − Δ, ln(t_p/τ0)]`` outside (no current below zero, τ = τ0 above Ic0).
    Per-device tensors in the dtype of ``ic0_a``; the ceiling is one number for all devices.
    """
    log_ratio = math.log(width_s / tau0_s)
    floor = log_ratio - delta
    return floor, delta / ic0_a, floor, log_ratio


# Every positive uniform of torch's generators is at least 2^-64 (they use at most 64 random bits), so the
# threshold ln(−ln u) of a draw is at most ln(64·ln 2) ≈ 3.8: a log count above ln 64 switches as surely as
# one at ln 64.
_ABOVE_EVERY_THRESHOLD = math.log(64.0)
# elements per block when a large CPU batch is drawn in pieces: a block's operands stay in the L2 cache
SAMPLING_BLOCK = 1 << 16


def clamps_that_matter(floor: torch.Tensor, ceiling: float,
                       dtype: torch.dtype) -> tuple[torch.Tensor | None, float | None]:
    """The bounds of η (:func:`log_count_line`) that can change an outcome of :func:`draw_switched` in ``dtype``;
    ``None`` for the others.

    Below ``floor`` fewer draws switch: when ``P_sw(floor)`` is under an eighth of the dtype's epsilon, η
    there lies below the threshold of every uniform below 1, and nothing switches, clamped or not. Above a
    ``ceiling`` of at least ln 64, η lies above the threshold of every positive uniform either way.
    Skipping a bound that cannot matter saves a pass over the data and leaves every outcome as it was (for
    10 µs pulses and τ0 = 1 ns neither matters in float32; in float64 the floor does).
    """
    p_floor = -torch.expm1(-torch.exp(floor.detach().to(torch.float64)))
    keep_floor = bool((p_floor >= torch.finfo(dtype).eps / 8).any())
    return (floor.to(dtype) if keep_floor else None), (ceiling if ceiling < _ABOVE_EVERY_THRESHOLD else None)


def draw_switched(log_count: torch.Tensor, generator: torch.Generator | None = None,
                  out: torch.Tensor | None = None) -> torch.Tensor:
    """One outcome per element, switched (1.0) with probability ``P_sw = 1 − exp(−e^η)``, η = ``log_count``.

    A uniform ``u`` becomes the threshold ``ln(−ln u)`` in place (minus a standard Gumbel variable), and the
    pulse switches where η exceeds it: ``P(η > ln(−ln u)) = P(u > exp(−e^η)) = P_sw``, the law of
    ``bernoulli(P_sw)`` from one uniform per element, with no exponential of η and no ``P_sw`` tensor.
    Outcomes have the dtype and device of ``log_count``; ``out`` (its shape and dtype) receives them.
    """
    if out is None:
        u = torch.rand(log_count.shape, generator=generator, dtype=log_count.dtype, device=log_count.device)
    else:
        u = out.uniform_(generator=generator)
    threshold = u.log_().neg_().log_()  # u = 0 gives +inf: never switched
    return torch.lt(threshold, log_count.detach() if log_count.requires_grad else log_count, out=u)


def draw_switched_line(current_a: torch.Tensor, line: tuple[torch.Tensor, torch.Tensor, Any, Any],
                       generator: torch.Generator | None = None, out: torch.Tensor | None = None,
                       scratch: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`draw_switched` for ``n = 1``: ``line = (intercept, slope, floor, ceiling)`` as
    :func:`log_count_line` (broadcast against ``current_a``) with the bounds of :func:`clamps_that_matter`
    (``None``: not applied). ``scratch`` (the full shape) receives η."""
    log_count = torch.addcmul(line[0], line[1], current_a, out=scratch)
    if line[2] is not None:
        log_count.clamp_(min=line[2])
    if line[3] is not None:
        log_count.clamp_(max=line[3])
    return draw_switched(log_count, generator, out)


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
