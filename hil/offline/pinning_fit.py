"""Reversal pinning from a session's reset checks: each device's failed-reset rate, and the chip's median and spread.

A reset check (:mod:`protocols.reset_check`) follows every reset with a strong pulse the other way, so every reset
after the first has to reverse the device; a failed one reads back switched. In the simulator
(:mod:`sim_backend.effects.reversal_pinning`) a reset fails where the reversal does not happen at all (``q``, tiny
well above Ic0) or stops at a pinning site, ``p · g`` with ``g = 1/(1 + e^((x − 1)/s))`` at the reset's overdrive
``x = |I|/Ic0(T)`` (the bar heated by the reset itself); a reading can also be misread as failed (``m``, from the
read noise). So device ``d`` fails ``k_d`` of ``n_d`` resets with probability ``q + (1 − q) p_d g_d + m``.

The devices' ``p_d`` are lognormal (median ``p``, sigma ``spread``): both are fitted by maximum likelihood over
every device's counts (the lognormal integrated by Gauss–Hermite quadrature), with 95 % profile-likelihood
intervals. A device with no failed reset still counts (it bounds its ``p_d`` from above). The overdrive scale ``s``
is not fitted: one reset amplitude cannot show how the pinning falls with the overdrive (the base chip's is used).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from protocols.fits import PROFILE_CHI2_95

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(40)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


@dataclass(frozen=True)
class ResetCounts:
    """One device's resets: tried (each after the device was switched), failed, the overdrive factor ``g``, the
    chance ``q`` that the reset pulse does not reverse it at all, and the misread probability ``m``."""

    device: str
    n_tried: int
    n_failed: int
    overdrive_factor: float
    no_switch: float = 0.0
    misread: float = 0.0

    def rate(self, p: np.ndarray | float) -> np.ndarray:
        """Failure probability for pinning probabilities ``p``."""
        p = np.minimum(np.asarray(p, dtype=np.float64), 1.0)
        return np.clip(self.no_switch + (1.0 - self.no_switch) * p * self.overdrive_factor + self.misread,
                       1e-300, 1.0)

    def probability_interval(self, confidence: float = 0.95) -> tuple[float, float, float]:
        """``(estimate, low, high)`` of this device's own ``p`` from its exact (Clopper–Pearson) interval of the
        failure rate (0 failures: ``low`` 0, ``high`` the upper bound)."""
        ci = stats.binomtest(self.n_failed, self.n_tried).proportion_ci(confidence, method="exact")
        scale = (1.0 - self.no_switch) * self.overdrive_factor

        def p_of(rate: float) -> float:
            return float(min(max((rate - self.no_switch - self.misread) / scale, 0.0), 1.0))
        return p_of(self.n_failed / self.n_tried), p_of(ci.low), p_of(ci.high)


@dataclass
class PinningFit:
    """``probability`` (median ``p``) and ``spread`` (lognormal sigma) with 95 % profile-likelihood intervals;
    whether the spread was fitted (three or more devices) or held."""

    probability: float
    probability_interval: tuple[float, float]
    spread: float
    spread_interval: tuple[float, float] | None
    log_likelihood: float
    counts: list[ResetCounts]


def _log_likelihood(counts: Sequence[ResetCounts], log_median: float, spread: float) -> float:
    p = math.exp(log_median) * np.exp(abs(spread) * _NODES)
    total = 0.0
    for c in counts:
        total += math.log(max(float(np.sum(_WEIGHTS * stats.binom.pmf(c.n_failed, c.n_tried, c.rate(p)))), 1e-300))
    return total


def fit_pinning(counts: Sequence[ResetCounts], spread: float, fit_spread: bool) -> PinningFit:
    """Fit the median pinning probability (and, with ``fit_spread`` and three or more devices, the spread; else the
    spread is held at ``spread``). Raises ``ValueError`` without a device with resets."""
    counts = [c for c in counts if c.n_tried > 0]
    if not counts:
        raise ValueError("no device has a reset that followed a switch")
    free = fit_spread and len(counts) >= 3
    rates = [(c.n_failed + 0.5) / (c.n_tried + 1.0) / c.overdrive_factor for c in counts]
    start = (math.log(float(np.median(rates))), spread if free else 0.0)

    def nll(v: np.ndarray) -> float:
        return -_log_likelihood(counts, float(v[0]), float(v[1]) if free else spread)

    if free:
        found = min((optimize.minimize(nll, np.array([start[0], s]), method="Nelder-Mead",
                                       options={"xatol": 1e-5, "fatol": 1e-7}) for s in (0.2, 1.0)),
                    key=lambda r: r.fun)
        log_median, fitted_spread, best = float(found.x[0]), abs(float(found.x[1])), float(found.fun)
    else:
        found = optimize.minimize_scalar(lambda u: nll(np.array([u, spread])), bracket=(start[0] - 1, start[0] + 1))
        log_median, fitted_spread, best = float(found.x), spread, float(found.fun)

    def rise_median(u: float) -> float:
        if not free:
            return nll(np.array([u, spread])) - best
        inner = optimize.minimize_scalar(lambda s: nll(np.array([u, s])), bracket=(0.0, fitted_spread + 0.3))
        return float(inner.fun) - best

    def rise_spread(s: float) -> float:
        inner = optimize.minimize_scalar(lambda u: nll(np.array([u, s])), bracket=(log_median - 1, log_median + 1))
        return float(inner.fun) - best

    low_u = _bound(rise_median, log_median, -1.0)
    high_u = _bound(rise_median, log_median, +1.0)
    spread_interval = None
    if free:
        low_s = 0.0 if 2 * rise_spread(0.0) <= PROFILE_CHI2_95 else _bound(rise_spread, fitted_spread, -1.0, floor=0.0)
        spread_interval = (low_s, _bound(rise_spread, fitted_spread, +1.0))
    return PinningFit(math.exp(log_median), (math.exp(low_u), math.exp(high_u)), fitted_spread, spread_interval,
                      -best, counts)


def _bound(rise: object, estimate: float, direction: float, floor: float | None = None) -> float:
    """Where ``2 × rise`` reaches χ²₁(95 %) going from ``estimate`` in ``direction`` (``±inf`` if it never does
    within 20 units; ``floor`` stops the search there)."""
    def excess(v: float) -> float:
        return 2.0 * rise(v) - PROFILE_CHI2_95  # type: ignore[operator]

    step = 0.25
    inner, outer = estimate, estimate + direction * step
    for _ in range(80):
        if floor is not None and (outer - floor) * direction < 0:
            outer = floor
            if excess(outer) <= 0:
                return floor
        if excess(outer) > 0:
            return float(optimize.brentq(excess, min(inner, outer), max(inner, outer)))
        inner, outer = outer, outer + direction * step
        step *= 1.5
        if abs(outer - estimate) > 20:
            break
    return direction * math.inf
