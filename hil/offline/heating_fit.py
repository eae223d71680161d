"""Every device's Ic0, Δ and wear jointly with the chip's Joule heating, by binomial maximum likelihood over the counts.

A bar warms while a bias pulse flows (:mod:`sim_backend.effects.joule_heating`): its Δ and Ic0 fall along the pulse,
so I50 falls with the pulse width faster than ``ln t_p`` alone gives, most where the bar is still warming. The
isothermal Néel–Brown fit absorbs that into biased Ic0 and Δ (and fails the width-exponent check); here every count
is fitted with the heated rate the simulator uses (:func:`sim_backend.effective_switching.pulse_log_count`):

- the station drives a voltage ``V = I (R_ch + R_out)`` for a requested current ``I`` (``R_ch`` as measured cold), so
  the warm channel carries a little less (:meth:`~sim_backend.effects.joule_heating.JouleHeating.current_for_voltage`);
- the bar's temperature goes from the room's to the steady ``T0 + I² R_ch(T) R_th`` with the thermal time constant
  ``τ_th``, ``R_th = r_th / (w L)`` with ``r_th`` the chip-wide specific thermal resistance (K m²/W);
- a device whose reversal can stop at a pinning site switches with ``P (1 − p_pin)``
  (:func:`~sim_backend.effective_switching.pinned_log_count`), ``p_pin`` falling with the overdrive ``I/Ic0(T)``
  from each device's pinning probability; the resets of a reset check are points of the same kind (a reset that
  did not reverse the device is a trial that did not switch);
- a device wears: at a point whose trials came after ``x`` 10⁶ pulses through it, its Ic0 is ``Ic0 e^(−r x)``
  (:mod:`sim_backend.effects.parameter_drift`), ``r`` the device's wear rate, so the fitted Ic0 holds at the start
  of the session;
- an outcome is misread with probability ``m`` (from the read noise and the reads per window):
  ``P_read = m + (1 − 2m) P``.

Free parameters: ``ln Ic0``, ``ln Δ``, and where the session has the data the wear rate (reference points) and
``ln p_pin`` (reset checks) of every device, and ``r_th`` (≥ 0) where it has two or more pulse widths; ``τ_th`` by
its profile likelihood (a full refit per value) where the widths constrain it. The temperature laws (ambient, Curie
temperature, TCR), ``τ0`` and ``n`` are the base chip's. Fisher scoring; standard errors from the Fisher
information (as :mod:`protocols.fits`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from protocols.fits import PROFILE_CHI2_95
from sim_backend.effective_switching import BarParameters, pinned_log_count, pulse_log_count
from sim_backend.effects.joule_heating import JouleHeating
from sim_backend.effects.magnet_temperature import MagnetTemperature
from sim_backend.effects.reversal_pinning import ReversalPinning

R_TH_SCALE = 1e-7  # K m²/W: the fit's unit of r_th (a µm bar on a few hundred nm of oxide is of this order)
TIME_STEP = 0.35  # ln τ_th step of its profile's grid
TIME_GRID = 6  # grid points either side of the base chip's τ_th: a factor of 8
CONSTRAINED_SPAN = 3.0  # τ_th counts as fitted where its 95 % profile interval spans less than this factor
MAX_SCORING_STEPS = 200
BLOCKS = 4  # per-device parameter blocks of θ: ln Ic0, ln Δ, wear, ln p_pin (then r_th)
PIN_FLOOR = 1e-7  # p_pin is fitted down to this (a device that never failed a reset sits there)


@dataclass
class SwitchingData:
    """Switching counts: per point its device (index), requested current (A), pulse width (s), switches, trials,
    the pulses its device had received by then (10⁶, the mean over the point's trials) and the chance that an
    outcome is misread (0: none)."""

    device: np.ndarray
    current_a: np.ndarray
    width_s: np.ndarray
    n_switched: np.ndarray
    n_trials: np.ndarray
    pulses: np.ndarray
    misread: np.ndarray | None = None

    @property
    def widths(self) -> np.ndarray:
        return np.unique(self.width_s)


@dataclass
class ChipLaws:
    """What the fit takes as known: per device its width (m) and cold channel resistance (Ω), the channel length,
    the generator's output impedance, the temperature laws, τ0 and n, and the pinning model (its overdrive scale;
    ``None``: no pinning)."""

    width_m: np.ndarray
    r_ch_ohm: np.ndarray
    length_m: float
    r_out_ohm: float
    laws: MagnetTemperature
    tau0_s: float = 1e-9
    exponent_n: float = 1.0
    pinning: ReversalPinning | None = None


@dataclass
class HeatedFit:
    """The fit: per device ``ic0_a``, ``delta``, ``wear`` (per 10⁶ pulses), ``pin`` (its pinning probability; 0
    without pinning) with standard errors; ``r_th`` (K m²/W,
    ``None``: no heating) with its standard error (``None`` where it was held) and, where τ_th was profiled, its 95 %
    interval over τ_th's; ``time_s`` with its profile interval (``None`` where held) and ``time_note`` saying which;
    the log-likelihood and the points fitted."""

    ic0_a: np.ndarray
    ic0_err_a: np.ndarray
    delta: np.ndarray
    delta_err: np.ndarray
    wear: np.ndarray
    wear_err: np.ndarray
    pin: np.ndarray
    pin_err: np.ndarray
    r_th: float | None
    r_th_err: float | None
    time_s: float
    time_interval_s: tuple[float, float] | None = None
    time_note: str = ""
    log_likelihood: float = 0.0
    n_points: int = 0
    r_th_interval: tuple[float, float] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def theta(self) -> np.ndarray:
        return np.r_[np.log(self.ic0_a), np.log(self.delta), self.wear, np.log(np.maximum(self.pin, PIN_FLOOR)),
                     (self.r_th or 0.0) / R_TH_SCALE]


class HeatingModel:
    """The counts' likelihood as a function of ``θ = (ln Ic0 …, ln Δ …, wear …, ln p_pin …, r_th / R_TH_SCALE)``."""

    def __init__(self, data: SwitchingData, chip: ChipLaws) -> None:
        self.chip = chip
        self.n_devices = int(chip.width_m.size)
        t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64))  # noqa: E731
        self.device = torch.as_tensor(data.device, dtype=torch.long)
        self.current, self.width = t(data.current_a), t(data.width_s)
        self.k, self.n, self.pulses = t(data.n_switched), t(data.n_trials), t(data.pulses)
        self.bar_width, self.r_ch = t(chip.width_m)[self.device], t(chip.r_ch_ohm)[self.device]
        self.misread = np.zeros(self.device.numel()) if data.misread is None \
            else np.asarray(data.misread, dtype=np.float64)

    def per_point(self, theta: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``θ`` spread over the points: each point's ``ln Ic0``, ``ln Δ``, wear and ``ln p_pin`` (its device's) and
        ``r_th``."""
        nd = self.n_devices
        return (*(theta[b * nd:(b + 1) * nd][self.device] for b in range(BLOCKS)),
                theta[BLOCKS * nd].expand(self.device.shape))

    def driven(self, r_th_scaled: torch.Tensor, time_s: float, heated: bool
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(current, steady temperature)`` of every point: the current the station's voltage drives through the
        warm channel and the temperature it holds the bar at (without heating: the requested current, ``None``)."""
        if not heated:
            return self.current, None
        c = self.chip
        heating = JouleHeating(1.0, time_s)
        r_th = r_th_scaled * R_TH_SCALE / (self.bar_width * c.length_m)
        current = heating.current_for_voltage(self.current * (self.r_ch + c.r_out_ohm), self.r_ch, c.r_out_ohm,
                                              r_th, c.laws)
        return current, c.laws.ambient_k + heating.steady_rise(current, self.r_ch, r_th, c.laws)

    def point_log_count(self, log_ic0: torch.Tensor, log_delta: torch.Tensor, wear: torch.Tensor,
                        log_pin: torch.Tensor, r_th_scaled: torch.Tensor, time_s: float, heated: bool) -> torch.Tensor:
        """``η`` of every point (P = 1 − exp(−e^η)) from its own parameters (:meth:`per_point`)."""
        c = self.chip
        ic0 = torch.exp(log_ic0 - wear * self.pulses)
        laws, ambient = c.laws, c.laws.ambient_k
        bars = BarParameters(ic0, torch.exp(log_delta), self.r_ch, ambient)
        current, steady = self.driven(r_th_scaled, time_s, heated)
        start = None if steady is None else torch.full_like(steady, ambient)
        eta = pulse_log_count(current, self.width, bars, laws, c.tau0_s, c.exponent_n, start, steady,
                              time_s if heated else None)
        if c.pinning is not None:
            at = steady if steady is not None else torch.full_like(current, ambient)
            # beyond η = 6 a reversal is certain to 1e-175: held there, the pinned form keeps finite derivatives
            # (autograd's through e^(−e^η) are 0 × ∞ further up)
            eta = pinned_log_count(eta.clamp(max=6.0), current / (ic0 * laws.ic0_factor(at)), torch.exp(log_pin),
                                   c.pinning)
        return eta

    def log_count(self, theta: torch.Tensor, time_s: float, heated: bool) -> torch.Tensor:
        """``η`` of every point for parameters ``θ``."""
        return self.point_log_count(*self.per_point(theta), time_s, heated)

    def read_probabilities(self, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ln P_read, ln(1 − P_read), ln dP_read/dη)`` of every point at ``η`` (log domain: exact where P is near
        0 or 1)."""
        m = self.misread
        e = np.exp(np.clip(eta, -700.0, 30.0))
        log_keep = np.log1p(-2 * m)
        log_p = np.logaddexp(np.log(np.maximum(m, 1e-300)), log_keep + np.log(np.maximum(-np.expm1(-e), 1e-300)))
        log_q = np.logaddexp(np.log(np.maximum(m, 1e-300)), log_keep - e)
        return log_p, log_q, log_keep + np.clip(eta, -700.0, 30.0) - e

    def negative_log_likelihood(self, theta: np.ndarray, time_s: float, heated: bool) -> float:
        with torch.no_grad():
            eta = self.log_count(torch.as_tensor(theta), time_s, heated).numpy()
        log_p, log_q, _ = self.read_probabilities(eta)
        k, n = self.k.numpy(), self.n.numpy()
        return float(-np.sum(k * log_p + (n - k) * log_q))

    def jacobian(self, theta: torch.Tensor, time_s: float, heated: bool) -> tuple[np.ndarray, np.ndarray]:
        """``(η, ∂η/∂θ)``: a point's ``η`` depends only on its device's parameters and ``r_th``, so one backward pass
        through the points' own copies of them gives every nonzero entry."""
        leaves = [t.detach().clone().requires_grad_(True) for t in self.per_point(theta)]
        eta = self.point_log_count(*leaves, time_s, heated)
        grads = torch.autograd.grad(eta.sum(), leaves, allow_unused=True)
        rows, nd = np.arange(eta.numel()), self.n_devices
        device = self.device.numpy()
        jacobian = np.zeros((eta.numel(), theta.numel()))
        for block, grad in enumerate(grads[:BLOCKS]):
            if grad is not None:
                jacobian[rows, block * nd + device] = grad.numpy()
        if grads[BLOCKS] is not None:
            jacobian[:, BLOCKS * nd] = grads[BLOCKS].numpy()
        return eta.detach().numpy(), jacobian

    def scoring(self, theta: np.ndarray, time_s: float, heated: bool) -> tuple[np.ndarray, np.ndarray]:
        """``(gradient of the NLL, Fisher information)`` at ``θ``: for counts ``k`` of ``n`` read with probability
        ``P`` the score ``Σ (k − nP)/(P(1 − P)) ∂P/∂η ∂η/∂θ`` and the information
        ``Σ n (∂P/∂η)²/(P(1 − P)) ∂η/∂θ ∂η/∂θᵀ`` (as :mod:`protocols.fits` fits its curves)."""
        eta, jacobian = self.jacobian(torch.as_tensor(theta), time_s, heated)
        log_p, log_q, log_slope = self.read_probabilities(eta)
        k, n = self.k.numpy(), self.n.numpy()
        score = (k * np.exp(log_slope - log_p) - (n - k) * np.exp(log_slope - log_q))
        weight = n * np.exp(2 * log_slope - log_p - log_q)
        return -(jacobian.T @ score), jacobian.T @ (weight[:, None] * jacobian)


def _bounds(nd: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds of ``θ``: ``ln p_pin`` within ``[ln PIN_FLOOR, 0]``, ``r_th ≥ 0``."""
    low, high = np.full(BLOCKS * nd + 1, -np.inf), np.full(BLOCKS * nd + 1, np.inf)
    low[3 * nd:4 * nd], high[3 * nd:4 * nd] = math.log(PIN_FLOOR), 0.0
    low[-1] = 0.0
    return low, high


def _minimize(model: HeatingModel, start: np.ndarray, time_s: float, heated: bool,
              free: np.ndarray) -> tuple[np.ndarray, float]:
    """The ML ``θ`` from ``start`` over the ``free`` parameters (the others held), within :func:`_bounds`, and the
    minimal NLL: Fisher scoring (a parameter at a bound that the likelihood pushes against is held there; a step that
    would cross one is shortened to it), each step halved until the likelihood rises."""
    low, high = _bounds(model.n_devices)
    x = np.clip(np.array(start, dtype=np.float64), low, high)
    f = model.negative_log_likelihood(x, time_s, heated)
    for _ in range(MAX_SCORING_STEPS):
        g, info = model.scoring(x, time_s, heated)
        moving = free & ~((x <= low) & (g > 0)) & ~((x >= high) & (g < 0))
        while True:  # a parameter at a bound whose step points out of it is held there this step
            step = np.zeros_like(x)
            step[moving] = -np.linalg.lstsq(info[np.ix_(moving, moving)], g[moving], rcond=None)[0]
            out = moving & (((x <= low) & (step < 0)) | ((x >= high) & (step > 0)))
            if not out.any():
                break
            moving &= ~out
        with np.errstate(divide="ignore", invalid="ignore"):
            room = np.where(step < 0, (low - x) / step, np.where(step > 0, (high - x) / step, np.inf))
        step *= min(1.0, float(np.min(room)))
        for _ in range(50):
            f_trial = model.negative_log_likelihood(x + step, time_s, heated)
            if f_trial <= f + 1e-10:
                break
            step /= 2.0
        else:
            break
        x, f, done = np.clip(x + step, low, high), f_trial, f - f_trial < 1e-8 and np.max(np.abs(step)) < 1e-6
        if done:
            break
    return x, f


def _standard_errors(model: HeatingModel, theta: np.ndarray, time_s: float, heated: bool,
                     free: np.ndarray) -> np.ndarray:
    """One standard error per free parameter from the Fisher information (NaN for a held one)."""
    _, info = model.scoring(theta, time_s, heated)
    errors = np.full(theta.size, np.nan)
    errors[free] = np.sqrt(np.clip(np.diag(np.linalg.pinv(info[np.ix_(free, free)])), 0.0, None))
    return errors


def fit_heated(data: SwitchingData, chip: ChipLaws, start: HeatedFit, fit_r_th: bool, fit_wear: bool,
               fit_pin: bool, fit_time: bool) -> HeatedFit:
    """Fit the counts from ``start`` (see the module docstring).

    ``start.r_th`` (K m²/W): the start value (``fit_r_th``) or the value held; ``None``: no heating (isothermal).
    ``start.time_s``: τ_th's start value, profiled where ``fit_time`` and ``r_th`` is free, else held. The wear rates
    are free with ``fit_wear``, the pinning probabilities with ``fit_pin`` (and a pinning model), else held at
    ``start``'s.
    """
    heated = start.r_th is not None
    model = HeatingModel(data, chip)
    nd = model.n_devices
    free = np.ones(BLOCKS * nd + 1, dtype=bool)
    free[2 * nd:3 * nd] = fit_wear
    free[3 * nd:4 * nd] = fit_pin and chip.pinning is not None
    free[-1] = heated and fit_r_th
    theta, nll = _minimize(model, start.theta, start.time_s, heated, free)
    time_s, interval, r_range = start.time_s, None, None
    time_note = "held: no heating" if not heated else "held at the base chip's value"
    if free[-1] and fit_time:
        theta, nll, time_s, interval, time_note, r_range = _profile_time(model, theta, nll, time_s, data, free)
    errors = _standard_errors(model, theta, time_s, heated, free)
    ic0, delta, pin = np.exp(theta[:nd]), np.exp(theta[nd:2 * nd]), np.exp(theta[3 * nd:4 * nd])
    r_th = float(theta[-1] * R_TH_SCALE) if heated else None
    r_th_err = float(errors[-1] * R_TH_SCALE) if free[-1] else None
    if r_range is not None and r_th_err is not None:  # r_th's 95 % interval over τ_th's
        r_range = (max(r_range[0] - 1.96 * r_th_err, 0.0), r_range[1] + 1.96 * r_th_err)
    notes = ["r_th at its bound 0: these widths show no heating"] if free[-1] and theta[-1] == 0.0 else []
    return HeatedFit(ic0, ic0 * errors[:nd], delta, delta * errors[nd:2 * nd], theta[2 * nd:3 * nd],
                     errors[2 * nd:3 * nd], pin if chip.pinning is not None else np.zeros(nd),
                     pin * errors[3 * nd:4 * nd], r_th, r_th_err, time_s, interval, time_note, -nll,
                     int(np.count_nonzero(data.n_trials > 0)), r_range, notes)


def _profile_time(model: HeatingModel, theta: np.ndarray, nll: float, time_s: float, data: SwitchingData,
                  free: np.ndarray
                  ) -> tuple[np.ndarray, float, float, tuple[float, float] | None, str, tuple[float, float]]:
    """τ_th by its profile likelihood on a grid of ``ln τ_th`` (:data:`TIME_GRID` steps of :data:`TIME_STEP` either
    side of ``time_s``, each a full refit started from its neighbour's): its 95 % interval where the profile
    rises by χ²₁/2 (linear interpolation), and the best τ_th from a parabola through the grid's lowest three points.
    The widths constrain τ_th where that interval lies inside the grid and spans less than :data:`CONSTRAINED_SPAN`;
    elsewhere τ_th stays ``time_s`` and the note says why. Also the range of ``r_th`` over τ_th's interval (K m²/W)."""
    base = math.log(time_s)
    steps = np.arange(-TIME_GRID, TIME_GRID + 1)
    fits: dict[int, tuple[np.ndarray, float]] = {0: (theta, nll)}
    for direction in (1, -1):
        previous = theta
        for k in range(direction, direction * (TIME_GRID + 1), direction):
            fits[k] = _minimize(model, previous, math.exp(base + k * TIME_STEP), True, free)
            previous = fits[k][0]
    profile = np.array([fits[int(k)][1] for k in steps])
    rise = 2.0 * (profile - profile.min())
    inside = rise <= PROFILE_CHI2_95
    u = base + steps * TIME_STEP
    r_th = np.array([fits[int(k)][0][-1] for k in steps]) * R_TH_SCALE
    r_range = (float(r_th[inside].min()), float(r_th[inside].max()))
    widths = data.widths
    span = f"pulse widths {widths.min() * 1e6:.3g}–{widths.max() * 1e6:.3g} µs"
    if inside[0] or inside[-1]:
        edges = f"{math.exp(u[0]) * 1e6:.3g} to {math.exp(u[-1]) * 1e6:.3g} µs"
        return theta, nll, time_s, None, (f"not constrained by the {span}: its profile likelihood stays within the "
                                          f"95 % band from {edges}; held at the base chip's value"), r_range
    first, last = int(np.argmax(inside)), int(len(u) - 1 - np.argmax(inside[::-1]))
    low, high = _crossing(u, rise, first, -1), _crossing(u, rise, last, +1)
    if high - low > math.log(CONSTRAINED_SPAN):
        return theta, nll, time_s, (math.exp(low), math.exp(high)), (
            f"not constrained by the {span}: its 95 % profile interval {math.exp(low) * 1e6:.3g}–"
            f"{math.exp(high) * 1e6:.3g} µs spans a factor of {math.exp(high - low):.2g} (more than "
            f"{CONSTRAINED_SPAN:g}); held at the base chip's value"), r_range
    i = int(np.clip(np.argmin(profile), 1, len(u) - 2))
    a, b, _ = np.polyfit(u[i - 1:i + 2], profile[i - 1:i + 2], 2)
    best = float(np.clip(-b / (2 * a), u[i - 1], u[i + 1])) if a > 0 else float(u[i])
    fitted, fitted_nll = _minimize(model, fits[int(steps[i])][0], math.exp(best), True, free)
    return fitted, fitted_nll, math.exp(best), (math.exp(low), math.exp(high)), \
        f"fitted by its profile likelihood ({span})", r_range


def _crossing(u: np.ndarray, rise: np.ndarray, edge: int, direction: int) -> float:
    """Where ``rise`` crosses χ²₁(95 %) between grid point ``edge`` (inside) and its neighbour in ``direction``."""
    j = edge + direction
    fraction = (PROFILE_CHI2_95 - rise[edge]) / (rise[j] - rise[edge])
    return float(u[edge] + fraction * (u[j] - u[edge]))


def pulse_state(chip: ChipLaws, fit: HeatedFit, device: np.ndarray, current_a: np.ndarray,
                width_s: np.ndarray, pulses: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(η, overdrive)`` of pulses of ``current_a`` and ``width_s`` through the fitted devices ``device``
    (indices, after ``pulses`` 10⁶ pulses; default none) as the station drives them (voltage mode, heated), without
    pinning: ``η`` of the reversal (``P = 1 − exp(−e^η)``) and ``|I|/Ic0(T)`` at the pulse's steady temperature."""
    size = np.size(device)
    data = SwitchingData(np.asarray(device), np.asarray(current_a, float), np.asarray(width_s, float),
                         np.zeros(size), np.zeros(size), np.zeros(size) if pulses is None else np.asarray(pulses))
    model = HeatingModel(data, ChipLaws(chip.width_m, chip.r_ch_ohm, chip.length_m, chip.r_out_ohm, chip.laws,
                                        chip.tau0_s, chip.exponent_n))
    heated = fit.r_th is not None
    theta = torch.as_tensor(fit.theta)
    with torch.no_grad():
        log_ic0, _, wear, _, r_th = model.per_point(theta)
        eta = model.log_count(theta, fit.time_s, heated)
        current, steady = model.driven(r_th, fit.time_s, heated)
        temperature = torch.full_like(current, chip.laws.ambient_k) if steady is None else steady
        ic0 = torch.exp(log_ic0 - wear * model.pulses) * chip.laws.ic0_factor(temperature)
    return eta.numpy(), (current / ic0).numpy()


def point_log_ic0(data: SwitchingData, chip: ChipLaws, fit: HeatedFit) -> tuple[np.ndarray, np.ndarray]:
    """Per point, the ``ln Ic0`` its counts alone give (the fitted line ``ln Ic0 − r x`` moved by one scoring step on
    the point's own count) and its variance: how each point sees its device's Ic0 at its time."""
    model = HeatingModel(data, chip)
    theta = fit.theta
    eta, jacobian = model.jacobian(torch.as_tensor(theta), fit.time_s, fit.r_th is not None)
    log_p, log_q, log_slope = model.read_probabilities(eta)
    nd = model.n_devices
    slope = np.exp(log_slope) * jacobian[np.arange(eta.size), model.device.numpy()]  # ∂P/∂ln Ic0
    p, k, n = np.exp(log_p), data.n_switched, data.n_trials
    line = theta[:nd][data.device] - theta[2 * nd:3 * nd][data.device] * data.pulses
    return line + (k / n - p) / slope, np.exp(log_p + log_q) / (n * slope**2)
