"""The drift of the devices' Ic0 from a session's reference points: wear per pulse, its spread, and the walk.

A bias sweep with ``reference:`` measures one fixed current of every device again every few units
(:mod:`protocols.bias_sweep`). Through the device's fitted curve (:func:`hil.offline.heating_fit.point_log_ic0`)
each reference point's switching fraction says what the device's ``ln Ic0`` was then. The chip's drift
(:mod:`sim_backend.effects.parameter_drift`) lowers ``ln Ic0`` by ``wear`` per 10⁶ pulses (each device its own
rate) and lets it walk in time. So, per device and run, ``y = ln Ic0`` at the reference points is modelled as

``y_i = α_run − r_d x_i + W_d(t_i) + ε_i``

with ``x`` the pulses the device has received (10⁶, counted across the whole session as the chip counts them:
:func:`session_pulses`), ``r_d`` the device's wear rate (normal across devices: mean ``μ``, sd ``τ``), ``W_d`` a
random walk of ``σ²`` per hour of station time (within a run), ``ε`` the binomial error of the point. ``μ``, ``τ``
and ``σ`` are fitted by restricted maximum likelihood (the per-run intercepts profiled out), ``μ`` with its
standard error, ``τ`` and ``σ`` with profile-likelihood intervals.

What a session can and cannot separate: while a device is measured its pulses grow in step with the time, so a
trend shared by the devices is attributed to wear (pulses), not to a steady drift in time; the walk shows only in
the points' scatter about each device's line beyond their binomial error, and the wear's spread in the devices'
different slopes. Ic0's and Δ's walks both move I50 and cannot be told apart (the fitted walk is written as Ic0's);
the room's temperature (common to all devices, measured one after another) is not separated from the walk either.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize

from instruments.station import BALANCE_LEVEL
from protocols.fits import PROFILE_CHI2_95
from sim_backend.chip import PULSE_FRACTION

PULSES_UNIT = 1e6  # wear is given per 10⁶ pulses
SECONDS_PER_HOUR = 3600.0


def segment_pulses(current_a: np.ndarray, nominal_ic0_a: np.ndarray | float, blocks_dc: bool,
                   read_current_a: float = 0.0) -> np.ndarray:
    """How many pulses the chip counts for one pulse of ``current_a`` (A, signed) as the station plays it: the chip
    counts every segment that carries at least :data:`~sim_backend.chip.PULSE_FRACTION` of the nominal Ic0. Through a
    DC block the station plays each pulse between two balancing lobes at :data:`~instruments.station.BALANCE_LEVEL`
    of its generator level, ``(I − I_read)`` (the read current flows through the channel beside it), so a lobe's
    channel carries ``−BALANCE_LEVEL (I − I_read) + I_read``: the lobes count where that reaches the fraction."""
    current = np.asarray(current_a, dtype=np.float64)
    floor = PULSE_FRACTION * np.asarray(nominal_ic0_a, dtype=np.float64)
    lobes = 0.0
    if blocks_dc:
        lobe = -BALANCE_LEVEL * (current - read_current_a) + read_current_a
        lobes = 2.0 * (np.abs(lobe) >= floor)
    return np.where(np.abs(current) >= floor, 1.0 + lobes, 0.0)


def session_pulses(runs: Sequence[Mapping[str, Any]], nominal_ic0_a: Mapping[str, float], blocks_dc: bool,
                   read_current_a: float = 0.0) -> list[np.ndarray | None]:
    """Per run, the pulses each ``trials`` row's device had received before the row (session order: runs, then
    rows), counting resets, bias pulses, the level measurements before a device's trials and the loops' DC steps;
    ``None`` for a run without trials."""
    received: dict[str, float] = {}
    out: list[np.ndarray | None] = []
    for run in runs:
        tables = run["tables"]
        levels = tables.get("read_levels")
        pending = {} if levels is None else {
            row["device"].decode(): float(row["n_trials"]) for row in levels}
        trials = tables.get("trials")
        before = None
        if trials is not None and trials.size:
            before = np.zeros(trials.size)
            nominal = np.array([nominal_ic0_a.get(d.decode(), np.inf) for d in trials["device"]])
            per_row = (segment_pulses(trials["reset_a"], nominal, blocks_dc, read_current_a)
                       + segment_pulses(trials["amplitude_a"], nominal, blocks_dc, read_current_a))
            for i, device in enumerate(trials["device"]):
                name = device.decode()
                if name in pending:  # the level measurement: reset and a strong pulse the other way, n times
                    pairs = pending.pop(name)
                    level_pair = segment_pulses(np.array([trials["reset_a"][i], -trials["reset_a"][i]]), nominal[i],
                                                blocks_dc, read_current_a).sum()
                    received[name] = received.get(name, 0.0) + pairs * float(level_pair)
                before[i] = received.get(name, 0.0)
                received[name] = before[i] + per_row[i]
        steps = tables.get("steps")
        if steps is not None and steps.size:
            for device in np.unique(steps["device"]):
                rows = steps[steps["device"] == device]
                name = device.decode()
                received[name] = received.get(name, 0.0) + float(
                    segment_pulses(rows["current_a"], nominal_ic0_a.get(name, np.inf), False).sum())
        out.append(before)
    return out


@dataclass
class ReferenceSeries:
    """One device's reference points in one run: pulses received (10⁶), station time (h), ``ln Ic0`` and its
    variance."""

    device: str
    pulses: np.ndarray
    hours: np.ndarray
    log_ic0: np.ndarray
    variance: np.ndarray


@dataclass
class DriftFit:
    """``wear_mean`` (per 10⁶ pulses, mean over devices) with its standard error; ``wear_sd`` (sd across devices)
    and ``walk`` (ln Ic0 per √hour) with 95 % profile-likelihood intervals; how many devices and points."""

    wear_mean: float
    wear_mean_err: float
    wear_sd: float
    wear_sd_interval: tuple[float, float]
    walk: float
    walk_interval: tuple[float, float]
    n_devices: int
    n_points: int

    def lognormal_wear(self) -> tuple[float, float]:
        """``(median, lognormal sigma)`` of the devices' wear rates with this mean and sd (the chip file's ``wear``
        and ``wear_spread``); ``(0, 0)`` without a positive mean."""
        if self.wear_mean <= 0:
            return 0.0, 0.0
        ratio = 1.0 + (self.wear_sd / self.wear_mean) ** 2
        return self.wear_mean / math.sqrt(ratio), math.sqrt(math.log(ratio))


class DriftModel:
    """The restricted log-likelihood of the reference points for given ``τ`` and ``σ``."""

    def __init__(self, series: Sequence[ReferenceSeries]) -> None:
        self.series = list(series)
        self.devices = sorted({s.device for s in series})
        self.y = np.concatenate([s.log_ic0 for s in series])
        self.x = np.concatenate([s.pulses for s in series])
        self.noise = np.concatenate([s.variance for s in series])
        n, groups = self.y.size, len(series)
        self.design = np.zeros((n, groups + 1))  # per-run intercepts, then −x (the mean wear)
        self.walk = np.zeros((n, n))  # covariance of the walk per unit σ²: within a run, min(t_i, t_j) − t_0
        self.same_device = np.zeros((n, n))
        start = 0
        owner = np.empty(n, dtype=object)
        for g, s in enumerate(series):
            stop = start + s.log_ic0.size
            self.design[start:stop, g] = 1.0
            t = s.hours - s.hours.min()
            self.walk[start:stop, start:stop] = np.minimum.outer(t, t)
            owner[start:stop] = s.device
            start = stop
        self.design[:, -1] = -self.x
        self.same_device = (owner[:, None] == owner[None, :]).astype(float)
        self.owner = owner

    def covariance(self, tau: float, sigma: float) -> np.ndarray:
        return np.diag(self.noise) + sigma**2 * self.walk + tau**2 * self.same_device * np.outer(self.x, self.x)

    def solve(self, tau: float, sigma: float) -> tuple[float, np.ndarray, np.ndarray]:
        """``(−restricted log-likelihood, fixed effects, their covariance)``."""
        cov = self.covariance(tau, sigma)
        chol = np.linalg.cholesky(cov)
        white_x = np.linalg.solve(chol, self.design)
        white_y = np.linalg.solve(chol, self.y)
        info = white_x.T @ white_x
        beta = np.linalg.solve(info, white_x.T @ white_y)
        resid = white_y - white_x @ beta
        nll = 0.5 * (2 * np.log(np.diag(chol)).sum() + np.linalg.slogdet(info)[1] + resid @ resid)
        return float(nll), beta, np.linalg.inv(info)


def fit_drift(series: Sequence[ReferenceSeries]) -> DriftFit:
    """Fit the mean wear, its spread across devices and the walk to every device's reference points (see the
    module docstring). Raises ``ValueError`` without at least one device with three points."""
    if not series:
        raise ValueError("no device has three or more reference points with a logistic fit")
    model = DriftModel(series)
    # scales for the search: a typical slope error, and the walk that would double the points' noise over a run
    spans = np.array([max(s.hours.max() - s.hours.min(), 1e-9) for s in series])
    xs = np.array([max(np.ptp(s.pulses), 1e-12) for s in series])
    tau_scale = float(np.sqrt(np.median(model.noise)) / np.median(xs))
    sigma_scale = float(np.sqrt(np.median(model.noise) / np.median(spans)))

    def nll(v: np.ndarray) -> float:
        return model.solve(abs(v[0]) * tau_scale, abs(v[1]) * sigma_scale)[0]

    best = min((optimize.minimize(nll, np.array(start), method="Nelder-Mead",
                                  options={"xatol": 1e-4, "fatol": 1e-6}) for start in ((0.3, 0.3), (2.0, 2.0))),
               key=lambda r: r.fun)
    tau, sigma = abs(best.x[0]) * tau_scale, abs(best.x[1]) * sigma_scale
    floor, beta, cov = model.solve(tau, sigma)
    mean, mean_err = float(beta[-1]), float(math.sqrt(cov[-1, -1]))

    def profile(which: int, value: float) -> float:
        other = (lambda u: model.solve(value, abs(u) * sigma_scale)[0]) if which == 0 else \
            (lambda u: model.solve(abs(u) * tau_scale, value)[0])
        start = best.x[1] if which == 0 else best.x[0]
        return float(optimize.minimize_scalar(lambda u: other(u), bracket=(0.0, abs(start) + 0.5)).fun) - floor

    tau_interval = _interval(lambda v: profile(0, v), tau, tau_scale)
    sigma_interval = _interval(lambda v: profile(1, v), sigma, sigma_scale)
    return DriftFit(mean, mean_err, tau, tau_interval, sigma, sigma_interval, len(model.devices), int(model.y.size))


def _interval(rise: Any, estimate: float, scale: float) -> tuple[float, float]:
    """The 95 % profile-likelihood interval of a non-negative parameter: where ``2 × rise`` stays below χ²₁(95 %)."""
    def excess(v: float) -> float:
        return 2.0 * rise(v) - PROFILE_CHI2_95

    low = 0.0 if excess(0.0) <= 0 else float(optimize.brentq(excess, 0.0, estimate))
    high = max(estimate, scale)
    for _ in range(60):
        if excess(high) > 0:
            break
        high *= 2.0
    else:
        return low, math.inf
    return low, float(optimize.brentq(excess, estimate, high))

