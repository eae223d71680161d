"""The distribution of a DW synapse's realized weight per programmed state: Gaussian fits with intervals.

Programming state ``k`` lands the wall at ``w_k + ε``, ``ε ~ N(0, σ_k²)`` (physics.md §2). From ``n``
realized weights of one state:

- the **level** ``w_k`` is their mean, with the Student-t interval (``n − 1`` degrees of freedom);
- the **noise** ``σ_k`` is their sample standard deviation, with the χ² interval
  ``[s·√((n−1)/χ²_{1−α/2}), s·√((n−1)/χ²_{α/2})]``;
- in units of the **spacing** ``s = (w_{K−1} − w_0)/(K − 1)`` of the fitted levels (the unit of the DW
  synapse model's σ), the interval of ``σ_k/s`` is the χ² interval divided by ``s``, whose own uncertainty
  (``σ/√n`` over ``K − 1`` spacings) is neglected.

Several tracks together (the model of the chip's synapses): each level is the mean over all their
programmings of that state (t interval over them all: right when the tracks share their levels); σ is the
pooled within-track standard deviation (χ² with ``Σ(n_t − 1)`` degrees of freedom), so a device-to-device
spread of the levels does not inflate it; that spread, beyond what the noise explains, is
``level_variation = √max(var_t(mean_t) − σ²/n̄, 0)`` in units of the spacing, averaged over the states.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from protocols.fits import FitError


@dataclass(frozen=True)
class NormalFit:
    """Mean and standard deviation of ``n`` values, with their intervals at ``confidence``."""

    n: int
    mean: float
    mean_low: float
    mean_high: float
    sigma: float
    sigma_low: float
    sigma_high: float
    confidence: float

    def density(self, x: np.ndarray | float) -> np.ndarray:
        """The fitted Gaussian's probability density at ``x``."""
        return stats.norm.pdf(np.asarray(x, dtype=np.float64), self.mean, self.sigma)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _intervals(n: int, mean: float, sd: float, df: int, confidence: float) -> NormalFit:
    alpha = 1.0 - confidence
    t = stats.t.ppf(1.0 - alpha / 2.0, max(n - 1, 1))
    half = t * sd / math.sqrt(n)
    low = sd * math.sqrt(df / stats.chi2.ppf(1.0 - alpha / 2.0, df))
    high = sd * math.sqrt(df / stats.chi2.ppf(alpha / 2.0, df))
    return NormalFit(n, mean, mean - half, mean + half, sd, low, high, confidence)


def fit_normal(values: np.ndarray, confidence: float = 0.95) -> NormalFit:
    """Mean (t interval) and standard deviation (χ² interval) of ``values`` (non-finite ones left out)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size < 2:
        raise FitError(f"a mean and a spread need two or more values, got {x.size}")
    return _intervals(int(x.size), float(x.mean()), float(x.std(ddof=1)), int(x.size - 1), confidence)


def fit_pooled(groups: Sequence[np.ndarray], confidence: float = 0.95) -> NormalFit:
    """The mean of every value of ``groups`` (t interval over them all) and the pooled within-group
    standard deviation (χ² with ``Σ(n_g − 1)`` degrees of freedom)."""
    finite = [g[np.isfinite(g)] for g in (np.asarray(g, dtype=np.float64) for g in groups)]
    finite = [g for g in finite if g.size >= 2]
    if not finite:
        raise FitError("a pooled spread needs a group of two or more values")
    every = np.concatenate(finite)
    df = int(sum(g.size - 1 for g in finite))
    pooled = math.sqrt(sum(float(((g - g.mean()) ** 2).sum()) for g in finite) / df)
    fit = _intervals(int(every.size), float(every.mean()), pooled, df, confidence)
    t = stats.t.ppf(0.5 + confidence / 2.0, every.size - 1)
    half = t * float(every.std(ddof=1)) / math.sqrt(every.size)  # the mean's interval from all the values
    return NormalFit(fit.n, fit.mean, fit.mean - half, fit.mean + half, fit.sigma, fit.sigma_low, fit.sigma_high,
                     confidence)


def spacing(levels: Sequence[float]) -> float:
    """The mean gap between neighbouring levels: ``(w_{K−1} − w_0)/(K − 1)``."""
    if len(levels) < 2:
        raise FitError("a spacing needs two or more levels")
    return (float(levels[-1]) - float(levels[0])) / (len(levels) - 1)


def level_variation(by_state: Sequence[Mapping[str, np.ndarray]], sigmas: Sequence[float], step: float) -> float:
    """Device-to-device spread of the levels beyond the noise, in units of the spacing ``step``, averaged
    over the states; ``by_state[k]`` maps each track to its weights of state ``k``."""
    spreads = []
    for tracks, sigma in zip(by_state, sigmas, strict=True):
        means = [float(np.mean(w)) for w in tracks.values() if len(w)]
        if len(means) < 2:
            continue
        n_mean = float(np.mean([len(w) for w in tracks.values() if len(w)]))
        spreads.append(math.sqrt(max(float(np.var(means, ddof=1)) - sigma**2 / n_mean, 0.0)))
    return float(np.mean(spreads)) / step if spreads else 0.0
