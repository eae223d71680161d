"""Macrospin stochastic LLG with spin-orbit torque: switching by ns pulses (physics.md §4, §5 "Short pulses").

One free layer is one unit vector ``m``; many independent macrospins (devices × repetitions × currents,
flattened) are integrated at once, as a ``(3, N)`` float64 tensor on the device of the inputs (CPU or CUDA).

**Model.** The Gilbert equation ``dm/dt = −γ m × B + α m × dm/dt`` with the effective field (in T)

``B = B_k m_z ẑ + B_x x̂ + B_DL (m × σ) + B_FL σ + B_th``,  ``σ = ŷ``,

integrated in its explicit Landau–Lifshitz form ``dm/dt = −γ/(1+α²) [m × B + α m × (m × B)]``:

- ``B_k = μ0 H_k(eff)``: uniaxial perpendicular anisotropy, demagnetization included;
- ``B_x``: the station's in-plane bias field, along the current (x), positive;
- ``B_DL (m × σ)``: the damping-like SOT as a field, so its torque ``−γ m × B_DL (m × σ)`` pulls ``m`` toward
  ``σ``. ``B_DL = β·I`` follows the *signed* current: a negative current is the polarization ``σ = −ŷ`` with
  ``|I|``. With ``B_x > 0`` a positive current switches down→up (``m_z: −1 → +1``), a negative one up→down: the
  chip's convention (:mod:`sim_backend.chip`);
- ``B_FL σ = r·B_DL ŷ``: the field-like SOT, ``r`` = :attr:`MacrospinParameters.field_like_ratio`, default 0:
  its size and sign in W/CoFeB depend on the CoFeB thickness and are not known for these bars; the threshold
  mapping below takes a non-zero ``r`` into account;
- ``B_th``: Brown's thermal field, each component Gaussian with variance ``2αk_BT/(γ M_s V Δt)`` (T²), constant
  over a step, from a ``torch.Generator``.

Heun steps (predictor and corrector with the same thermal field: the Stratonovich solution) of ``step_s`` ≈ 1 ps,
then ``|m|`` is renormalized to 1. A current waveform is piecewise constant (optionally with linear edges,
``edge_s``); after it the magnet relaxes with no current for ``settle_s`` and its state is read as ``sign(m_z)``.

**Twin of a chip device** (:func:`macrospin_twin`), from a device's ``Ic0`` (A, the zero-temperature critical
current of the Néel–Brown model at the station's bias field) and ``Δ`` (at that temperature and bias field):

- the switching volume ``V`` reproduces ``Δ`` as the macrospin's zero-current barrier *at the bias field*,
  ``Δ k_B T = (M_s B_k V / 2)(1 − h)²``, ``h = B_x/B_k`` (the zero-field ``V = Δ k_B T/(M_s B_k/2)`` would give
  the twin a barrier 7 % below the device's at the default bias);
- ``β = B_DL,c / Ic0`` with ``B_DL,c`` the macrospin's own zero-temperature threshold
  (:func:`critical_damping_like_field`), where the stable state near −z ceases to exist:
  ``B_k · max_φ [sin(2φ)/2 − h cos φ]`` without field-like torque, ≈ ``B_k/2 − B_x/√2`` (Liu et al., PRL 109,
  096602 (2012); Lee et al., APL 102, 112410 (2013)); 0.14297 T against the approximation's 0.14293 T. The
  deterministic integration agrees: with 1 ns edges a 5 ns pulse switches from 0.99 Ic0 up, not below.

**What the macrospin does that the closed form does not** (measured with this module; tests/test_macrospin.py):

- *Precessional switching by abrupt pulses.* A current step tilts the equilibrium by tens of degrees faster than
  the damping can follow; the precession around the new equilibrium crosses the barrier. At T = 0 a rectangular
  pulse switches from 0.82 Ic0 (0.80 Ic0 at μ0H_x = 60 mT); 0.2 ns edges move this to 0.95 Ic0, 1 ns edges to
  0.99 Ic0.
- *The in-plane state.* Above ``B_DL ≈ √(B_x B_k)`` the total field vanishes at a third stable point near ``σ``
  (``m_z = B_x/B_DL``). At the default bias (h = 0.033) that is from 0.39 Ic0 up, and thermally activated escape
  from the down state ends there, not in the up state; when the pulse ends the magnet falls into either well.
  Switching probabilities therefore level off near **1/2**, above Ic0 at ns pulses and at long pulses alike: the
  twin at μ0H_x = 10 mT does not reproduce a device whose P(I) rises to 1 (µm Hall bars reverse by domain
  nucleation and chiral wall motion, which a macrospin lacks). From ``h ≳ 0.15`` (μ0H_x ≳ 45 mT at
  μ0H_k = 0.3 T) that point only exists above Ic0 (from 1.29 Ic0 at 60 mT): escape lands in the up state and P
  rises to 1 below Ic0; well above Ic0 (2.4 Ic0 at 2 ns) it falls back toward 1/2.

**Néel–Brown form of the macrospin** (:func:`neel_brown_attempt_time_s`, :data:`NEEL_BROWN_EXPONENT`):
``P = 1 − exp(−t/τ)``, ``τ = τ0 exp(Δ (1 − I/Ic0)^n)`` with the twin's own Δ and Ic0, Brown's high-barrier
attempt time of the uniaxial macrospin and ``n = 1.25`` (one fit, see :data:`NEEL_BROWN_EXPONENT`): n = 1 does
not describe the macrospin (at n = 1 the predicted τ are a factor of about 3 too long in the fitted range).
Checked where: Δ = 15 (a small volume, so thermally activated switching happens within a simulable pulse),
μ0H_x = 60 mT (see above: at 10 mT the read-back is not the escape), rectangular pulses of 20 ns (default suite)
and 100 ns (slow), currents 0.5–0.7 Ic0, |z| < 3 per point against the binomial error. µs pulses are out of
reach of a test (10⁶ steps per macrospin, minutes). At Δ = 40 the same n and τ0 give |z| < 1.7 at 20 ns with
1 ns edges (1000 trials per point) but 6–7σ (ΔP ≈ 0.1, about 0.3 k_BT of barrier) at 100 ns: the power law is an
approximation of the macrospin's barrier, good to a fraction of k_BT.

**Validity of the closed form**: :data:`CLOSED_FORM_MIN_PULSE_S`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from instruments.failures import UserFacingError

GYROMAGNETIC_RATIO = 1.76085963e11  # γ of the free electron, rad/(s·T)
BOLTZMANN = 1.380649e-23  # J/K

# The Néel–Brown exponent of the macrospin: binomial maximum likelihood of P = 1 − exp(−t/τ(I)) (τ0 Brown's,
# Δ and Ic0 the twin's own) over 10 points, rectangular pulses of 20 ns (I/Ic0 = 0.55 … 0.75) and 100 ns
# (0.45 … 0.65), 1000 macrospins each, Δ = 15, μ0H_x = 60 mT, other parameters default, generator seed 11.
# Freeing τ0 as well gives n = 1.237 and τ0 = 0.95 × Brown's: Brown's prefactor holds. Lee et al. (APL 104,
# 072413 (2014)) find a "quasi-linear" barrier for SOT switching of a perpendicular magnet; here it is convex.
NEEL_BROWN_EXPONENT = 1.25
# Shortest pulse for which the Néel–Brown closed form stands in for the macrospin. In the cross-check (Δ = 15,
# 1000 trials per point) it agrees within |z| ≤ 2.1 at 20 ns and 100 ns but departs by up to 5.8σ at 10 ns and
# 8.5σ at 5 ns (ΔP up to +0.13: precessional switching at the pulse's onset, and the first relaxation time,
# 0.95 ns, in which the magnet adjusts to the tilted well). 20 ns is about 20 relaxation times, and 1 − e^(−20)
# of the closed form's plateau at τ0 = 1 ns. Caveat: with Δ ≈ 40 the currents that switch 20–100 ns pulses lie
# at 0.73–0.84 Ic0, where an *ideally* rectangular pulse switches precessionally (P several times the closed
# form's); with 1 ns edges (a real generator) the closed form holds there at 20 ns.
CLOSED_FORM_MIN_PULSE_S = 20e-9


class ShortPulseError(UserFacingError, ValueError):
    """A pulse too short for the Néel–Brown closed form (:data:`CLOSED_FORM_MIN_PULSE_S`)."""


def require_closed_form_pulse(width_s: float) -> None:
    """Raise :class:`ShortPulseError` for a pulse shorter than :data:`CLOSED_FORM_MIN_PULSE_S` (s)."""
    if width_s < CLOSED_FORM_MIN_PULSE_S:
        raise ShortPulseError(
            f"a {width_s * 1e9:.3g} ns pulse is shorter than {CLOSED_FORM_MIN_PULSE_S * 1e9:.0f} ns, below which the "
            "Néel–Brown closed form does not describe switching (precession and relaxation take part); "
            "use the macrospin model (sim_backend.macrospin.sllg_probability) for it")


@dataclass(frozen=True)
class MacrospinParameters:
    """Material and integration parameters shared by all macrospins of a call (SI units, fields in T).

    Defaults: ``ms_a_per_m`` 1.1e6 A/m, thin annealed CoFeB (μ0M_s ≈ 1.4 T; the range reported for
    Ta/W/CoFeB/MgO, e.g. Ikeda et al., Nat. Mater. 9, 721 (2010)); ``anisotropy_t`` μ0H_k(eff) = 0.3 T, the order
    measured on ~1 nm CoFeB/MgO with perpendicular anisotropy (a few 100 mT); ``damping`` α = 0.02 (thin CoFeB,
    FMR values 0.01–0.03); ``temperature_k`` 300 K; ``bias_field_t`` μ0H_x = 10 mT (physics.md §5: 5–20 mT);
    ``field_like_ratio`` 0 (module docstring). These are orders of magnitude from the literature, not values
    fitted to the chip's bars. Integration: ``step_s`` 1 ps (γB_k·Δt ≈ 0.05 rad per step); ``settle_s`` 3 ns,
    three relaxation times (:attr:`relaxation_time_s`, 0.95 ns), in which a magnet a pulse left near the equator
    falls into a well; ``edge_s`` 0: ideally rectangular levels (as the closed form assumes); a positive value
    ramps every change of level linearly over ``edge_s``, centred on the nominal boundary so that widths stay
    the 50 % widths a pulse generator sets.
    """

    ms_a_per_m: float = 1.1e6
    anisotropy_t: float = 0.3
    bias_field_t: float = 0.010
    damping: float = 0.02
    temperature_k: float = 300.0
    field_like_ratio: float = 0.0
    step_s: float = 1e-12
    settle_s: float = 3e-9
    edge_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("ms_a_per_m", "anisotropy_t", "bias_field_t", "damping", "step_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"MacrospinParameters.{name} must be positive, got {getattr(self, name)!r}")
        if self.bias_field_t >= self.anisotropy_t:
            raise ValueError("MacrospinParameters: the bias field must be below the anisotropy field "
                             f"({self.bias_field_t} T ≥ {self.anisotropy_t} T leaves no bistable state)")
        if self.temperature_k < 0 or self.settle_s < 0 or self.edge_s < 0:
            raise ValueError("MacrospinParameters: temperature_k, settle_s and edge_s must not be negative")

    @property
    def relaxation_time_s(self) -> float:
        """``(1+α²)/(α γ B_k)`` in s: the time the damping takes to pull ``m`` back to the easy axis."""
        return (1 + self.damping ** 2) / (self.damping * GYROMAGNETIC_RATIO * self.anisotropy_t)


DEFAULT_PARAMETERS = MacrospinParameters()


# ---------------------------------------------------------------------------------------------
# The zero-temperature threshold and the twin of a chip device
# ---------------------------------------------------------------------------------------------

@lru_cache(maxsize=64)
def _critical_reduced_field(h: float, r: float) -> float:
    """``B_DL,c / B_k`` for ``h = B_x/B_k > 0`` and field-like ratio ``r``: the largest damping-like field at
    which a fixed point with ``m_z < 0`` exists.

    A fixed point has ``m ∥ B(m)``; ``B = A m + c`` is linear in ``m`` (``A`` holds ``B_k`` and ``B_DL``,
    ``c = (h, r b, 0)``), so ``A m + c = λ m`` and ``m = (λ − A)⁻¹ c`` with ``|m| = 1``: a polynomial in λ of
    degree 6 (the Stoner–Wohlfarth construction). ``m_z = b h / D(λ)``, ``D = λ(λ − 1) + b²``, so the fixed
    points near −z are its real roots with ``D < 0``. Bisection on ``b`` to 1e-12.
    """
    poly = np.polynomial.Polynomial

    def has_down_state(b: float) -> bool:
        lam = poly([0.0, 1.0])
        d = lam * (lam - 1.0) + b * b
        # |m|² λ² D² = h² ((λ − 1)² + b²) λ² + r² b² D²  (m_x = h (λ − 1)/D, m_z = h b/D, m_y = r b/λ)
        equation = h * h * ((lam - 1.0) ** 2 + b * b) * lam ** 2 + (r * b) ** 2 * d ** 2 - lam ** 2 * d ** 2
        for root in equation.roots():
            if abs(root.imag) < 1e-9 * max(1.0, abs(root.real)) and d(root.real) < 0 and abs(root.real) > 1e-12:
                return True
        return False

    lo, hi = 0.0, 2.0
    if has_down_state(hi):
        raise ValueError(f"no switching threshold below 2 B_k for h = {h}, field-like ratio {r}")
    while hi - lo > 1e-12:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if has_down_state(mid) else (lo, mid)
    return lo


def critical_damping_like_field(params: MacrospinParameters = DEFAULT_PARAMETERS) -> float:
    """The macrospin's zero-temperature switching threshold ``B_DL,c`` in T (damping-like field, module docstring).

    Without field-like torque ``B_DL,c = B_k max_φ [sin(2φ)/2 − h cos φ]`` ≈ ``B_k/2 − B_x/√2``; 0.1430 T with the
    defaults. It does not depend on α: it is where the stable state vanishes (a saddle-node), not a dynamic
    instability.
    """
    return params.anisotropy_t * _critical_reduced_field(params.bias_field_t / params.anisotropy_t,
                                                         params.field_like_ratio)


def switching_volume(delta: torch.Tensor | float,
                     params: MacrospinParameters = DEFAULT_PARAMETERS) -> torch.Tensor | float:
    """Volume in m³ whose zero-current barrier at the bias field is ``Δ k_B T``: ``2Δk_BT / (M_s B_k (1 − h)²)``."""
    if params.temperature_k <= 0:
        raise ValueError("switching_volume: Δ is defined at a positive temperature")
    h = params.bias_field_t / params.anisotropy_t
    return 2.0 * delta * BOLTZMANN * params.temperature_k / (params.ms_a_per_m * params.anisotropy_t * (1 - h) ** 2)


@dataclass
class MacrospinTwin:
    """Per-element macrospin parameters of chip devices (tensors broadcast against the currents).

    ``dl_field_per_a``: ``β`` in T/A, ``B_DL = β·I``; ``thermal_variance_t2_s``: ``2αk_BT/(γ M_s V)`` in T²·s, the
    variance of one thermal field component is this over the step ``Δt`` (zero at T = 0).
    """

    dl_field_per_a: torch.Tensor
    thermal_variance_t2_s: torch.Tensor


def macrospin_twin(ic0_a: torch.Tensor, delta: torch.Tensor,
                   params: MacrospinParameters = DEFAULT_PARAMETERS) -> MacrospinTwin:
    """The macrospin of a device with zero-temperature critical current ``ic0_a`` (A) and stability ``delta``.

    Its own threshold :func:`critical_damping_like_field` is reached at ``I = Ic0``; its volume
    :func:`switching_volume` gives it the barrier ``Δ`` at zero current. At ``temperature_k = 0`` (deterministic
    runs) there is no thermal field and ``delta`` is not used.
    """
    ic0_a = torch.as_tensor(ic0_a, dtype=torch.float64)
    delta = torch.as_tensor(delta, dtype=torch.float64, device=ic0_a.device)
    beta = critical_damping_like_field(params) / ic0_a
    if params.temperature_k > 0:
        volume = switching_volume(delta, params)
        variance = 2 * params.damping * BOLTZMANN * params.temperature_k / (
            GYROMAGNETIC_RATIO * params.ms_a_per_m * volume)
    else:
        variance = torch.zeros_like(delta)
    return MacrospinTwin(beta, variance)


def neel_brown_attempt_time_s(delta: torch.Tensor | float,
                              params: MacrospinParameters = DEFAULT_PARAMETERS) -> torch.Tensor | float:
    """τ0 in s of the twin's Néel–Brown form: Brown's high-barrier escape time of the uniaxial macrospin,
    ``(1+α²)/(α γ B_k) · √(π/Δ0)``, ``Δ0 = Δ/(1 − h)²`` its zero-field barrier (Brown, Phys. Rev. 130, 1677 (1963),
    escape out of one well = twice the relaxation time of the axially symmetric case). 0.42 ns at Δ = 15 and
    0.26 ns at Δ = 40 with the defaults; 0.35 ns at Δ = 15 with μ0H_x = 60 mT."""
    h = params.bias_field_t / params.anisotropy_t
    delta0 = delta / (1 - h) ** 2
    root = delta0.rsqrt() if isinstance(delta0, torch.Tensor) else 1 / math.sqrt(delta0)
    return params.relaxation_time_s * math.sqrt(math.pi) * root


# ---------------------------------------------------------------------------------------------
# The integrator
# ---------------------------------------------------------------------------------------------

class HeunIntegrator:
    """Stochastic Heun steps of ``N`` macrospins ``m`` (a ``(3, N)`` float tensor, updated in place).

    Every buffer is allocated once and a step is about forty elementwise operations on rows of ``N`` whatever
    ``N``, so on a CPU a step of a few thousand macrospins costs little more than a step of one (per-operation
    overhead). Cross products go row by row (``torch.linalg.cross`` and ``vector_norm`` over the leading
    dimension of 3 are several times slower on CPU); the thermal field is drawn as float32 normals (a fifth of
    the cost of float64 ones, and a Gaussian variate needs no more than float32's 24 bits) and used in float64.
    ``thermal_variance_t2_s``: per element (``N``), :attr:`MacrospinTwin.thermal_variance_t2_s`.
    """

    def __init__(self, m: torch.Tensor, params: MacrospinParameters, thermal_variance_t2_s: torch.Tensor,
                 generator: torch.Generator | None = None) -> None:
        self.m, self.params, self.generator = m, params, generator
        self.variance = thermal_variance_t2_s if bool((thermal_variance_t2_s > 0).any()) else None
        self._static, self._base, self._field, self._torque, self._f1, self._f2, self._predicted = (
            torch.empty_like(m) for _ in range(7))
        self._noise = torch.empty(m.shape, dtype=torch.float32, device=m.device)
        self._norm = torch.empty_like(m[0])

    def run(self, dl_field_t: torch.Tensor | None, duration_s: float,
            dl_end_t: torch.Tensor | None = None) -> None:
        """Integrate for ``duration_s`` (rounded to whole steps of about ``step_s``, the step adjusted so the
        duration is exact) under the damping-like field ``dl_field_t`` (T, per element; ``None``: no current),
        or, with ``dl_end_t``, a field that ramps linearly from ``dl_field_t`` to ``dl_end_t`` (each step at its
        midpoint value)."""
        if duration_s <= 0:
            return
        p = self.params
        steps = max(1, round(duration_s / p.step_s))
        dt = duration_s / steps
        gain = -GYROMAGNETIC_RATIO / (1 + p.damping ** 2) * dt
        static = self._static
        static[0].fill_(p.bias_field_t)
        static[1].zero_()
        static[2].zero_()
        ramp = None
        if dl_end_t is not None:
            start = torch.zeros_like(self._norm) if dl_field_t is None else dl_field_t
            ramp, slope, dl_field_t = start, (dl_end_t - start) / steps, torch.empty_like(self._norm)
        elif dl_field_t is not None and p.field_like_ratio != 0:
            torch.mul(dl_field_t, p.field_like_ratio, out=static[1])
        std = None if self.variance is None else (self.variance / dt).sqrt_()
        m, f1, f2, predicted, norm = self.m, self._f1, self._f2, self._predicted, self._norm
        for k in range(steps):
            if ramp is not None:
                torch.add(ramp, slope, alpha=k + 0.5, out=dl_field_t)
                if p.field_like_ratio != 0:
                    torch.mul(dl_field_t, p.field_like_ratio, out=static[1])
            if std is None:
                base = static
            else:
                noise = torch.randn(m.shape, generator=self.generator, dtype=torch.float32, device=m.device,
                                    out=self._noise)
                base = torch.addcmul(static, std, noise, out=self._base)
            self._drift(m, base, dl_field_t, f1)
            torch.add(m, f1, alpha=gain, out=predicted)
            self._drift(predicted, base, dl_field_t, f2)
            f1.add_(f2)
            m.add_(f1, alpha=0.5 * gain)
            torch.mul(m[0], m[0], out=norm).addcmul_(m[1], m[1]).addcmul_(m[2], m[2]).rsqrt_()
            m.mul_(norm)

    def _drift(self, m: torch.Tensor, base: torch.Tensor, dl_field_t: torch.Tensor | None,
               out: torch.Tensor) -> None:
        """``m × B + α m × (m × B)`` into ``out`` (times ``−γ/(1+α²)`` it is ``dm/dt``)."""
        m0, m1, m2 = m
        field, t = self._field, self._torque
        # B_DL (m × ŷ) = B_DL (−m_z, 0, m_x)
        b0 = base[0] if dl_field_t is None else torch.addcmul(base[0], dl_field_t, m2, value=-1.0, out=field[0])
        b1 = base[1]
        b2 = torch.add(base[2], m2, alpha=self.params.anisotropy_t, out=field[2])
        if dl_field_t is not None:
            b2.addcmul_(dl_field_t, m0)
        torch.mul(m1, b2, out=t[0]).addcmul_(m2, b1, value=-1.0)
        torch.mul(m2, b0, out=t[1]).addcmul_(m0, b2, value=-1.0)
        torch.mul(m0, b1, out=t[2]).addcmul_(m1, b0, value=-1.0)
        alpha = self.params.damping
        torch.addcmul(t[0], m1, t[2], value=alpha, out=out[0]).addcmul_(m2, t[1], value=-alpha)
        torch.addcmul(t[1], m2, t[0], value=alpha, out=out[1]).addcmul_(m0, t[2], value=-alpha)
        torch.addcmul(t[2], m0, t[1], value=alpha, out=out[2]).addcmul_(m1, t[0], value=-alpha)


# ---------------------------------------------------------------------------------------------
# Pulses on chip devices
# ---------------------------------------------------------------------------------------------

def thermal_start(up: torch.Tensor, delta: torch.Tensor, params: MacrospinParameters,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """``(3, N)`` initial magnetizations in the well of ``up`` (bool, ``N``): the zero-current equilibrium
    ``(h, 0, ±√(1 − h²))`` (tilted toward the bias field) with Boltzmann fluctuations of the harmonic well,
    variance ``1/(2Δ0(1 − h²))`` in the x–z plane and ``1/(2Δ0)`` along y, ``Δ0 = Δ/(1 − h)²`` the zero-field
    barrier (none at T = 0). A pulse after a rest starts from a thermalized magnet, not from the axis."""
    h = params.bias_field_t / params.anisotropy_t
    sign = up.to(torch.float64) * 2 - 1
    cos0 = math.sqrt(1 - h * h)
    m = torch.stack([torch.full_like(sign, h), torch.zeros_like(sign), sign * cos0])
    if params.temperature_k > 0:
        delta0 = delta.to(sign).expand_as(sign) / (1 - h) ** 2
        tilt, side = torch.randn((2, *sign.shape), generator=generator, dtype=torch.float64, device=sign.device)
        tilt.mul_((2 * delta0 * (1 - h * h)).rsqrt())
        side.mul_((2 * delta0).rsqrt())
        # tilt along the unit tangent (m_z, 0, −m_x) of the x–z plane, side along y
        m[0].addcmul_(tilt, m[2])
        m[2].add_(tilt, alpha=-h)
        m[1].add_(side)
        m.div_(torch.sqrt(m[0] ** 2 + m[1] ** 2 + m[2] ** 2))
    return m


def sllg_states(ic0_a: torch.Tensor, delta: torch.Tensor, levels_a: torch.Tensor, durations_s, initial_up,
                *, params: MacrospinParameters = DEFAULT_PARAMETERS,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Final states (``m_z`` sign, ±1.0) after a piecewise-constant current waveform (with linear edges where
    ``params.edge_s`` > 0, every segment at least that long) and ``settle_s`` at zero current.

    ``levels_a``: ``(..., K)`` currents in A (signed: positive pushes down→up) of ``K`` segments of
    ``durations_s`` (``K`` floats, s, shared by all elements). ``ic0_a``, ``delta`` and ``initial_up`` (bool: the
    device starts up) broadcast against ``levels_a[..., 0]``. Every element is an independent macrospin (a
    device, a repetition) started thermalized in its well (:func:`thermal_start`). float64, on the device of
    ``levels_a``; ``generator`` (on that device) makes the run reproducible.
    """
    levels_a = torch.as_tensor(levels_a, dtype=torch.float64)
    durations = [float(d) for d in durations_s]
    if levels_a.shape[-1:] != (len(durations),):
        raise ValueError(f"sllg_states: levels_a's last dimension {tuple(levels_a.shape)} does not match "
                         f"{len(durations)} durations")
    if any(d < 0 for d in durations):
        raise ValueError(f"sllg_states: negative duration in {durations}")
    device = levels_a.device
    ic0_a = torch.as_tensor(ic0_a, dtype=torch.float64, device=device)
    delta = torch.as_tensor(delta, dtype=torch.float64, device=device)
    initial_up = torch.as_tensor(initial_up, device=device)
    shape = torch.broadcast_shapes(levels_a.shape[:-1], ic0_a.shape, delta.shape, initial_up.shape)
    twin = macrospin_twin(ic0_a.expand(shape).reshape(-1), delta.expand(shape).reshape(-1), params)
    m = thermal_start(initial_up.expand(shape).reshape(-1), delta.expand(shape).reshape(-1), params, generator)
    levels = levels_a.expand(*shape, len(durations)).reshape(-1, len(durations))
    integrator = HeunIntegrator(m, params, twin.thermal_variance_t2_s, generator)
    edge = params.edge_s
    if edge > 0 and min(durations) < edge:
        raise ValueError(f"sllg_states: a segment of {min(durations)} s is shorter than the edge time {edge} s")
    before = None  # the field of the level before the segment (None: no current)
    for k, duration in enumerate(durations):
        field = twin.dl_field_per_a * levels[:, k]
        if edge > 0:  # each level change ramps over edge_s, centred on the nominal boundary
            integrator.run(before, edge, field)
        integrator.run(field, duration - edge)
        before = field
    if edge > 0 and before is not None:
        integrator.run(before, edge, torch.zeros_like(before))
    integrator.run(None, params.settle_s)
    return torch.where(m[2] >= 0, 1.0, -1.0).reshape(shape)


def sllg_switched(ic0_a: torch.Tensor, delta: torch.Tensor, currents_a: torch.Tensor, width_s: float, *,
                  params: MacrospinParameters = DEFAULT_PARAMETERS,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Outcomes of one rectangular pulse (edges: ``params.edge_s``) per element: 1.0 where it switched the
    device, else 0.0.

    Each element starts in the state its current can switch: down (``m_z < 0``) for ``I ≥ 0``, up for
    ``I < 0`` (the chip's convention: positive switches down→up), so the outcome is the chip's "switched".
    ``ic0_a`` (A), ``delta`` and ``currents_a`` (A) broadcast; ``width_s`` in s; then ``settle_s`` at zero
    current before the read. See :func:`sllg_states`.
    """
    currents_a = torch.as_tensor(currents_a, dtype=torch.float64)
    initial_up = currents_a < 0
    final = sllg_states(ic0_a, delta, currents_a[..., None], [width_s], initial_up, params=params,
                        generator=generator)
    return (final > 0).ne(initial_up).to(torch.float64)


def sllg_probability(ic0_a: torch.Tensor, delta: torch.Tensor, currents_a: torch.Tensor, width_s: float,
                     repetitions: int, *, params: MacrospinParameters = DEFAULT_PARAMETERS,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Switching probability of one pulse, estimated from ``repetitions`` independent macrospins per element
    (the fraction switched; binomial standard error ``√(P(1−P)/repetitions)``). Broadcasts like
    :func:`sllg_switched` and returns that shape."""
    currents_a = torch.as_tensor(currents_a, dtype=torch.float64)
    ic0_a = torch.as_tensor(ic0_a, dtype=torch.float64, device=currents_a.device)
    delta = torch.as_tensor(delta, dtype=torch.float64, device=currents_a.device)
    shape = torch.broadcast_shapes(ic0_a.shape, delta.shape, currents_a.shape)
    outcomes = sllg_switched(ic0_a.expand(shape)[..., None], delta.expand(shape)[..., None],
                             currents_a.expand(shape)[..., None].expand(*shape, repetitions), width_s,
                             params=params, generator=generator)
    return outcomes.mean(dim=-1)
