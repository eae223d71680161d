"""Switching-probability curve fits: binomial maximum likelihood with parameter uncertainties.

Both forms of physics.md are generalized linear models in the current ``I`` with a linear predictor
``η = a + b·I``, so they are fitted the same way (Newton iterations on the binomial log-likelihood,
covariance from the Fisher information, uncertainties of derived parameters by the delta method):

- **logistic**: ``P = 1/(1 + exp(−(I − I50)/w_I))`` — logit link, ``b = 1/w_I``, ``a = −I50/w_I``;
- **Néel–Brown** (n = 1): ``P = 1 − exp(−t_p/τ0 · exp(−Δ(1 − I/Ic0)))`` — complementary log-log link,
  ``b = Δ/Ic0``, ``a = ln(t_p/τ0) − Δ``.

Fitting on counts (not on noisy proportions) weights each point by its information and copes with
points at P = 0 or 1.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import special, stats


class FitError(ValueError):
    """The data cannot determine the curve (e.g. every trial switched, or a single current)."""


@dataclass(frozen=True)
class LogisticFit:
    """``P = 1/(1 + exp(−(I − I50)/w))``; values in A, ``*_err`` one standard error."""

    i50_a: float
    i50_err_a: float
    w_a: float
    w_err_a: float
    log_likelihood: float
    n_points: int

    def probability(self, current_a: np.ndarray | float) -> np.ndarray:
        return special.expit((np.asarray(current_a, float) - self.i50_a) / self.w_a)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class NeelBrownFit:
    """``P = 1 − exp(−t_p/τ0 · exp(−Δ(1 − I/Ic0)))``; ``Ic0`` in A, ``Δ`` dimensionless."""

    ic0_a: float
    ic0_err_a: float
    delta: float
    delta_err: float
    width_s: float
    tau0_s: float
    log_likelihood: float
    n_points: int

    def probability(self, current_a: np.ndarray | float) -> np.ndarray:
        eta = math.log(self.width_s / self.tau0_s) - self.delta * (1.0 - np.asarray(current_a, float) / self.ic0_a)
        return -np.expm1(-np.exp(eta))

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _glm_binomial(x: np.ndarray, k: np.ndarray, n: np.ndarray, link: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Fit ``η = a + b·x`` by Newton–Raphson; return ``(a, b)``, their covariance and the log-likelihood."""
    x, k, n = (np.asarray(v, dtype=np.float64) for v in (x, k, n))
    keep = n > 0
    x, k, n = x[keep], k[keep], n[keep]
    if np.unique(x).size < 2:
        raise FitError("need trials at two or more currents")
    if k.sum() == 0 or k.sum() == n.sum():
        raise FitError("every trial had the same outcome: the curve is not in the measured range")
    scale = float(np.std(x)) or 1.0
    centre = float(np.mean(x))
    z = (x - centre) / scale  # well-conditioned predictor

    def parts(beta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        eta = np.clip(beta[0] + beta[1] * z, -40.0, 40.0)
        if link == "logit":
            p = special.expit(eta)
            dp = p * (1.0 - p)
        else:  # cloglog
            e = np.exp(eta)
            p = -np.expm1(-e)
            dp = e * np.exp(-e)
        return eta, np.clip(p, 1e-300, 1 - 1e-16), dp

    def loglik(beta: np.ndarray) -> float:
        _, p, _ = parts(beta)
        return float(np.sum(k * np.log(p) + (n - k) * np.log1p(-p)))

    # start from a least-squares line through the link of smoothed proportions
    p0 = (k + 0.5) / (n + 1.0)
    y0 = special.logit(p0) if link == "logit" else np.log(-np.log1p(-p0))
    beta = np.polyfit(z, y0, 1)[::-1].copy()
    ll = loglik(beta)
    for _ in range(100):
        _, p, dp = parts(beta)
        weight = n * dp**2 / (p * (1.0 - p))
        score_w = n * dp * (k / n - p) / (p * (1.0 - p))
        design = np.stack([np.ones_like(z), z], axis=1)
        info = design.T @ (weight[:, None] * design)
        grad = design.T @ score_w
        step = np.linalg.solve(info + 1e-12 * np.eye(2), grad)
        # step halving keeps every iteration an ascent
        for _ in range(30):
            candidate = beta + step
            ll_new = loglik(candidate)
            if ll_new >= ll - 1e-12:
                break
            step /= 2.0
        converged = abs(ll_new - ll) < 1e-10 and np.max(np.abs(step)) < 1e-9
        beta, ll = candidate, ll_new
        if converged:
            break
    _, p, dp = parts(beta)
    weight = n * dp**2 / (p * (1.0 - p))
    design = np.stack([np.ones_like(z), z], axis=1)
    cov_z = np.linalg.inv(design.T @ (weight[:, None] * design))
    # back to the original predictor: η = a + b·x with b = β1/scale, a = β0 − β1·centre/scale
    transform = np.array([[1.0, -centre / scale], [0.0, 1.0 / scale]])
    coef = transform @ beta
    cov = transform @ cov_z @ transform.T
    if coef[1] <= 0:
        raise FitError("switching probability does not rise with current in these data")
    return coef, cov, ll


def fit_logistic(current_a: np.ndarray, n_switched: np.ndarray, n_trials: np.ndarray) -> LogisticFit:
    """Binomial ML fit of the logistic curve to counts at each current."""
    (a, b), cov, ll = _glm_binomial(current_a, n_switched, n_trials, "logit")
    i50, w = -a / b, 1.0 / b
    # gradients of I50 = −a/b and w = 1/b with respect to (a, b)
    g_i50 = np.array([-1.0 / b, a / b**2])
    g_w = np.array([0.0, -1.0 / b**2])
    return LogisticFit(i50, float(np.sqrt(g_i50 @ cov @ g_i50)), w, float(np.sqrt(g_w @ cov @ g_w)), ll,
                       int(np.count_nonzero(np.asarray(n_trials) > 0)))


def fit_neel_brown(current_a: np.ndarray, n_switched: np.ndarray, n_trials: np.ndarray, width_s: float,
                   tau0_s: float = 1e-9) -> NeelBrownFit:
    """Binomial ML fit of the Néel–Brown curve (n = 1) for pulses of ``width_s``."""
    (a, b), cov, ll = _glm_binomial(current_a, n_switched, n_trials, "cloglog")
    log_ratio = math.log(width_s / tau0_s)
    delta = log_ratio - a
    ic0 = delta / b
    g_delta = np.array([-1.0, 0.0])
    g_ic0 = np.array([-1.0 / b, -delta / b**2])
    return NeelBrownFit(ic0, float(np.sqrt(g_ic0 @ cov @ g_ic0)), delta, float(np.sqrt(g_delta @ cov @ g_delta)),
                        width_s, tau0_s, ll, int(np.count_nonzero(np.asarray(n_trials) > 0)))


def wilson_interval(n_switched: np.ndarray | int, n_trials: np.ndarray | int,
                    confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval ``(low, high)`` for a binomial proportion, per point."""
    k = np.asarray(n_switched, dtype=np.float64)
    n = np.asarray(n_trials, dtype=np.float64)
    zq = stats.norm.ppf(0.5 + confidence / 2.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1.0 + zq**2 / n
        centre = (p + zq**2 / (2 * n)) / denom
        half = zq * np.sqrt(p * (1 - p) / n + zq**2 / (4 * n**2)) / denom
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)
