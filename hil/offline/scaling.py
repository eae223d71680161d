"""How a session's device quantities scale with the device width: one power-law fit per quantity.

Each device gives one point (its fitted I50 or w_I, its loop half-width, its channel resistance); the
exponent of ``y ∝ W^α`` comes from a least-squares line in log-log over the devices
(:func:`protocols.fits.fit_power_law`), with its 95 % interval from the fit's covariance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from protocols.fits import FitError, PowerLawFit, fit_power_law

CONFIDENCE = 0.95
REFERENCE_WIDTH_M = 1e-6  # prefactors are quoted at W = 1 µm


@dataclass(frozen=True)
class Quantity:
    """A per-device quantity: its symbol, the unit it is shown in and that unit's size in SI."""

    key: str
    symbol: str
    unit: str
    scale: float
    title: str
    tex: str  # the symbol in matplotlib's mathtext


QUANTITIES = (
    Quantity("i50", "I50", "mA", 1e-3, "50 % switching current", r"$I_{50}$"),
    Quantity("w_i", "w_I", "µA", 1e-6, "logistic width of P(I)", r"$w_I$"),
    Quantity("loop", "I_loop", "mA", 1e-3, "loop half-width", r"$I_\mathrm{loop}$"),
    Quantity("r_ch", "R_ch", "Ω", 1.0, "channel resistance", r"$R_\mathrm{ch}$"),
)


@dataclass(frozen=True)
class Series:
    """One quantity over the devices (SI units): value and interval per device, and the power-law fit."""

    quantity: Quantity
    devices: list[str]
    width_m: np.ndarray
    value: np.ndarray
    low: np.ndarray
    high: np.ndarray
    fit: PowerLawFit | None
    fit_error: str = ""


def _points(device: dict[str, Any], key: str) -> tuple[float, float, float] | None:
    logistic = device.get("fits", {}).get("logistic")
    if key == "i50" and logistic:
        return logistic["i50_a"], logistic["i50_a"] - logistic["i50_err_a"], logistic["i50_a"] + logistic["i50_err_a"]
    if key == "w_i" and logistic:
        return logistic["w_a"], logistic["w_a"] - logistic["w_err_a"], logistic["w_a"] + logistic["w_err_a"]
    if key == "loop" and "loop_width_a" in device:
        low, high = device.get("loop_width_interval_a", [device["loop_width_a"]] * 2)
        return device["loop_width_a"], low, high
    if key == "r_ch" and "r_ch_ohm" in device:
        return device["r_ch_ohm"], device["r_ch_ohm"], device["r_ch_ohm"]
    return None


def scaling(info: dict[str, Any]) -> dict[str, Series]:
    """Every quantity the session has for devices of known width, with its fit (``hil info``'s devices)."""
    out = {}
    for quantity in QUANTITIES:
        rows = [(d["id"], d["width_m"], *p) for d in info["devices"]
                if d.get("width_m") and (p := _points(d, quantity.key)) is not None]
        if not rows:
            continue
        devices = [r[0] for r in rows]
        width, value, low, high = (np.array([r[i] for r in rows], dtype=float) for i in range(1, 5))
        try:
            fit, error = fit_power_law(width, value, REFERENCE_WIDTH_M, CONFIDENCE), ""
        except FitError as exc:
            fit, error = None, str(exc)
        out[quantity.key] = Series(quantity, devices, width, value, low, high, fit, error)
    return out


def exponent_text(series: Series) -> str:
    """``α = 1.02 [0.97, 1.07]`` (the interval at :data:`CONFIDENCE`), or why there is no fit."""
    fit = series.fit
    if fit is None:
        return f"no fit: {series.fit_error}"
    return f"α = {fit.exponent:.2f} [{fit.exponent_low:.2f}, {fit.exponent_high:.2f}]"


def format_scaling(series: dict[str, Series]) -> str:
    """The text summary's scaling section."""
    if not series:
        return ""
    lines = [f"scaling with device width W: y = A·(W/1 µm)^α, least squares in log-log over the devices; "
             f"α with its {CONFIDENCE * 100:g} % interval (Student t on the fit's covariance)"]
    for s in series.values():
        q = s.quantity
        line = f"  {q.symbol:7} ({q.title}): {exponent_text(s)}"
        if s.fit is not None:
            line += f", A = {s.fit.prefactor / q.scale:.4g} {q.unit}, {s.fit.n_points} devices"
        lines.append(line)
    return "\n".join(lines)
