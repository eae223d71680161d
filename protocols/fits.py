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
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import special, stats

# a 95 % profile-likelihood interval of one parameter: where twice the log-likelihood's fall stays below this
PROFILE_CHI2_95 = float(stats.chi2.ppf(0.95, 1))


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


def _glm_binomial(columns: list[np.ndarray], k: np.ndarray, n: np.ndarray, link: str,
                  offset: np.ndarray | None = None, rising: bool = True) -> tuple[np.ndarray, np.ndarray, float]:
    """Fit ``η = offset + β0 + Σ βj·xj`` by Fisher scoring; return ``β``, its covariance and the log-likelihood.
    ``rising``: a switching curve, whose probability must rise with the first column."""
    k, n = np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64)
    cols = [np.asarray(c, dtype=np.float64) for c in columns]
    off = np.zeros_like(k) if offset is None else np.broadcast_to(np.asarray(offset, dtype=np.float64), k.shape)
    keep = n > 0
    k, n, off, cols = k[keep], n[keep], off[keep], [c[keep] for c in cols]
    if np.unique(cols[0]).size < 2:
        raise FitError("need trials at two or more currents")
    if k.sum() == 0 or k.sum() == n.sum():
        raise FitError("every trial had the same outcome: the curve is not in the measured range")
    centre = np.array([c.mean() for c in cols])
    scale = np.array([c.std() or 1.0 for c in cols])
    design = np.column_stack([np.ones_like(k)] + [(c - m) / s for c, m, s in zip(cols, centre, scale, strict=True)])

    def parts(beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        eta = np.clip(off + design @ beta, -40.0, 40.0)
        if link == "logit":
            p = special.expit(eta)
            dp = p * (1.0 - p)
        else:  # cloglog
            e = np.exp(eta)
            p = -np.expm1(-e)
            dp = e * np.exp(-e)
        return np.clip(p, 1e-300, 1 - 1e-16), dp

    def loglik(beta: np.ndarray) -> float:
        p, _ = parts(beta)
        return float(np.sum(k * np.log(p) + (n - k) * np.log1p(-p)))

    def information(beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p, dp = parts(beta)
        weight = n * dp**2 / (p * (1.0 - p))
        score = design.T @ (n * dp * (k / n - p) / (p * (1.0 - p)))
        return design.T @ (weight[:, None] * design), score

    # start from a least-squares fit through the link of smoothed proportions
    p0 = (k + 0.5) / (n + 1.0)
    y0 = (special.logit(p0) if link == "logit" else np.log(-np.log1p(-p0))) - off
    beta = np.linalg.lstsq(design, y0, rcond=None)[0]
    ll = loglik(beta)
    for _ in range(200):
        info, score = information(beta)
        step = np.linalg.solve(info + 1e-12 * np.eye(len(beta)), score)
        for _ in range(40):  # step halving keeps every iteration an ascent
            ll_new = loglik(beta + step)
            if ll_new >= ll - 1e-12:
                break
            step /= 2.0
        beta, converged = beta + step, abs(ll_new - ll) < 1e-10 and np.max(np.abs(step)) < 1e-9
        ll = ll_new
        if converged:
            break
    cov_std = np.linalg.inv(information(beta)[0])
    # back to the original columns: βj = γj/sj, β0 = γ0 − Σ γj·mj/sj
    transform = np.eye(len(beta))
    transform[0, 1:] = -centre / scale
    transform[1:, 1:] = np.diag(1.0 / scale)
    coef = transform @ beta
    cov = transform @ cov_std @ transform.T
    if rising and coef[1] <= 0:
        raise FitError("switching probability does not rise with current in these data")
    return coef, cov, ll


@dataclass(frozen=True)
class TrendFit:
    """``logit P = intercept + slope·x``: how a switching fraction moves along ``x`` (e.g. time), binomial ML."""

    intercept: float
    slope: float
    slope_err: float
    n_points: int


def fit_logit_trend(x: np.ndarray, n_switched: np.ndarray, n_trials: np.ndarray) -> TrendFit:
    """The logit of a switching fraction as a line in ``x`` (rising or falling), from counts at each ``x``."""
    (a, b), cov, _ = _glm_binomial([x], n_switched, n_trials, "logit", rising=False)
    return TrendFit(float(a), float(b), float(np.sqrt(cov[1, 1])), int(np.count_nonzero(np.asarray(n_trials) > 0)))


def fit_logistic(current_a: np.ndarray, n_switched: np.ndarray, n_trials: np.ndarray) -> LogisticFit:
    """Binomial ML fit of the logistic curve to counts at each current."""
    (a, b), cov, ll = _glm_binomial([current_a], n_switched, n_trials, "logit")
    i50, w = -a / b, 1.0 / b
    # gradients of I50 = −a/b and w = 1/b with respect to (a, b)
    g_i50 = np.array([-1.0 / b, a / b**2])
    g_w = np.array([0.0, -1.0 / b**2])
    return LogisticFit(i50, float(np.sqrt(g_i50 @ cov @ g_i50)), w, float(np.sqrt(g_w @ cov @ g_w)), ll,
                       int(np.count_nonzero(np.asarray(n_trials) > 0)))


def fit_neel_brown(current_a: np.ndarray, n_switched: np.ndarray, n_trials: np.ndarray,
                   width_s: float | np.ndarray, tau0_s: float = 1e-9) -> NeelBrownFit:
    """Binomial ML fit of the Néel–Brown curve (n = 1); ``width_s`` per point or one for all.

    With several pulse widths the fit is joint: ``η = ln(t_p/τ0) − Δ + (Δ/Ic0)·I``.
    """
    widths = np.broadcast_to(np.asarray(width_s, dtype=np.float64), np.shape(current_a))
    (a, b), cov, ll = _glm_binomial([current_a], n_switched, n_trials, "cloglog", offset=np.log(widths / tau0_s))
    delta = -a
    ic0 = delta / b
    g_delta = np.array([-1.0, 0.0])
    g_ic0 = np.array([-1.0 / b, -delta / b**2])
    return NeelBrownFit(ic0, float(np.sqrt(g_ic0 @ cov @ g_ic0)), delta, float(np.sqrt(g_delta @ cov @ g_delta)),
                        float(np.exp(np.mean(np.log(widths)))), tau0_s, ll,
                        int(np.count_nonzero(np.asarray(n_trials) > 0)))


def fit_width_exponent(current_a: np.ndarray, n_switched: np.ndarray, n_trials: np.ndarray,
                       width_s: np.ndarray) -> tuple[float, float]:
    """The coefficient of ``ln t_p`` in the complementary log-log predictor, with its standard error.

    Néel–Brown predicts exactly 1 (the switching chance grows with the pulse width as ``t_p/τ``);
    data from several pulse widths test that.
    """
    widths = np.asarray(width_s, dtype=np.float64)
    if np.unique(widths).size < 2:
        raise FitError("need two or more pulse widths")
    coef, cov, _ = _glm_binomial([current_a, np.log(widths)], n_switched, n_trials, "cloglog")
    return float(coef[2]), float(np.sqrt(cov[2, 2]))


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


@dataclass(frozen=True)
class PowerLawFit:
    """``y = prefactor·(x/x_ref)^exponent``, a straight line fitted by least squares in log-log.

    ``exponent_low``/``exponent_high`` bound the exponent at ``confidence`` (Student t with n − 2 degrees of
    freedom on the slope's standard error from the fit's covariance, i.e. from the scatter about the line);
    ``prefactor`` is in the unit of ``y``.
    """

    exponent: float
    exponent_err: float
    exponent_low: float
    exponent_high: float
    prefactor: float
    x_ref: float
    confidence: float
    n_points: int
    mean_log_x: float
    sxx: float
    residual_sd: float

    def value(self, x: np.ndarray | float) -> np.ndarray:
        return self.prefactor * (np.asarray(x, dtype=np.float64) / self.x_ref) ** self.exponent

    def band(self, x: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """The ``confidence`` band of the fitted line (not of single devices) at ``x``."""
        u = np.log(np.asarray(x, dtype=np.float64))
        se = self.residual_sd * np.sqrt(1.0 / self.n_points + (u - self.mean_log_x) ** 2 / self.sxx)
        t = stats.t.ppf(0.5 + self.confidence / 2.0, self.n_points - 2)
        return self.value(x) * np.exp(-t * se), self.value(x) * np.exp(t * se)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def fit_power_law(x: np.ndarray, y: np.ndarray, x_ref: float = 1.0, confidence: float = 0.95) -> PowerLawFit:
    """Least-squares fit of ``ln y = ln A + α·ln(x/x_ref)`` (every point weighted alike: with devices the
    scatter between devices, not each one's fit error, sets how well ``α`` is known)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    x, y = x[keep], y[keep]
    if x.size < 3 or np.unique(x).size < 2:
        raise FitError("a power law needs three or more positive points at two or more x values")
    u, v = np.log(x), np.log(y)
    line = stats.linregress(u - math.log(x_ref), v)
    t = stats.t.ppf(0.5 + confidence / 2.0, x.size - 2)
    sxx = float(np.sum((u - u.mean()) ** 2))
    return PowerLawFit(float(line.slope), float(line.stderr), float(line.slope - t * line.stderr),
                       float(line.slope + t * line.stderr), float(np.exp(line.intercept)), x_ref, confidence,
                       int(x.size), float(u.mean()), sxx, float(line.stderr * math.sqrt(sxx)))


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``values`` and its two-sided Student-t interval (the mean twice when there is one value)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, mean, mean
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, float(mean - half), float(mean + half)
