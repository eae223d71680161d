"""Measured switching curves as a neuron backend (no physics), and bias sweeps through any backend.

:class:`ReplayBackend` takes per-device counts (switched of trials, per bias current) — from a recorded
characterization session, or from the station itself (the hardware backend's curves) — made monotone and
interpolated; :func:`measure_curves` runs a bias sweep through a backend.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from scipy.interpolate import PchipInterpolator
from sklearn.isotonic import IsotonicRegression

from hil.neurons.backend import DEFAULT_PULSE_S, BackendError, NeuronBackend
from protocols.fits import FitError, fit_logistic

REPLAY_GRID_POINTS = 256  # resolution of the tabulated monotone interpolant, per device


class ReplayBackend(NeuronBackend):
    """Measured switching curves as a backend: no physics, only the recorded counts.

    Built from a table of points: for each point the device (index into ``device_ids``), the bias
    current in A, the number of trials that switched and the number of trials. Per device, the
    proportions are made monotone in current (weighted isotonic regression, the pool-adjacent-violators
    algorithm) and joined by a monotone cubic (PCHIP), tabulated on a fine grid for vectorized lookup;
    outside the measured range the curve stays at its end values. ``curve`` is each device's binomial
    maximum-likelihood logistic fit, ``nominal_curve`` a pooled fit of all devices of the same width.
    """

    name = "replay"

    def __init__(self, device_ids: Sequence[str], width_m: Any, point_device: Any, current_a: Any,
                 n_switched: Any, n_trials: Any, pulse_width_s: float = DEFAULT_PULSE_S,
                 r_ch_ohm: Any = None, reset_current_a: Any = 0.0, reset_width_s: Any = 0.0,
                 max_current_a: Any = math.inf, seed: int = 0, source: str = "",
                 device: str | torch.device = "cpu") -> None:
        super().__init__(device_ids, width_m, r_ch_ohm, pulse_width_s, reset_current_a=reset_current_a,
                         reset_width_s=reset_width_s, max_current_a=max_current_a, seed=seed, device=device)
        point_device = np.asarray(point_device, dtype=np.int64).reshape(-1)
        columns = [np.asarray(v, dtype=np.float64).reshape(-1) for v in (current_a, n_switched, n_trials)]
        if any(c.size != point_device.size for c in columns):
            raise BackendError("point_device, current_a, n_switched and n_trials need one entry per point, got "
                               f"{[point_device.size] + [c.size for c in columns]}")
        current, switched, trials = columns
        if point_device.size and (point_device.min() < 0 or point_device.max() >= self.n_devices):
            raise BackendError(f"point_device: indices must lie in 0..{self.n_devices - 1}")
        if np.any(trials < 0) or np.any(switched < 0) or np.any(switched > trials):
            raise BackendError("n_switched/n_trials: need 0 ≤ n_switched ≤ n_trials at every point")
        if not np.all(np.isfinite(current)):
            raise BackendError("current_a: every current must be finite")
        self.source = source
        self.points = {"point_device": point_device, "current_a": current, "n_switched": switched,
                       "n_trials": trials}

        lo, step, table, i50, w = [], [], [], [], []
        for d, device_id in enumerate(self.device_ids):
            keep = (point_device == d) & (trials > 0)
            x, k, n = _pool_duplicates(current[keep], switched[keep], trials[keep])
            if x.size < 2:
                raise BackendError(f"device {device_id!r}: need measured points at two or more currents, "
                                   f"got {x.size}")
            p = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True).fit_transform(x, k / n, sample_weight=n)
            grid = np.linspace(x[0], x[-1], REPLAY_GRID_POINTS)
            lo.append(x[0])
            step.append(grid[1] - grid[0])
            table.append(np.clip(PchipInterpolator(x, p)(grid), 0.0, 1.0))
            try:
                fit = fit_logistic(x, k, n)
            except FitError as exc:
                raise BackendError(f"device {device_id!r}: no logistic fit to its curve ({exc})") from None
            i50.append(fit.i50_a)
            w.append(fit.w_a)
        self._lo_a = torch.tensor(lo, dtype=torch.float64, device=self._device)
        self._step_a = torch.tensor(step, dtype=torch.float64, device=self._device)
        self._table = torch.tensor(np.stack(table), dtype=torch.float64, device=self._device)
        self._i50_a = torch.tensor(i50, dtype=torch.float64, device=self._device)
        self._w_a = torch.tensor(w, dtype=torch.float64, device=self._device)
        self._nominal_i50_a, self._nominal_w_a = self._pooled_fits()
        self._cast: dict[torch.dtype, tuple[torch.Tensor, ...]] = {}

    @classmethod
    def from_curves(cls, curves: Mapping[str, Mapping[str, Any]], pulse_width_s: float = DEFAULT_PULSE_S,
                    **kwargs: Any) -> ReplayBackend:
        """Build from per-device curves: ``{device_id: {"width_m", "current_a", "n_switched", "n_trials",
        optional "r_ch_ohm", "reset_current_a", "reset_width_s", "max_current_a"}}``.

        The hook a session loader fills from a recorded characterization (one entry per device).
        Other keyword arguments go to the constructor (``seed``, ``source``, ``device``).
        """
        if not curves:
            raise BackendError("from_curves: no device curves given")
        ids = list(curves)
        point_device, current, switched, trials = [], [], [], []
        per_device: dict[str, list[float]] = {k: [] for k in
                                              ("width_m", "r_ch_ohm", "reset_current_a", "reset_width_s",
                                               "max_current_a")}
        defaults = {"r_ch_ohm": float("nan"), "reset_current_a": 0.0, "reset_width_s": 0.0,
                    "max_current_a": math.inf}
        for d, device_id in enumerate(ids):
            entry = curves[device_id]
            for key in ("width_m", "current_a", "n_switched", "n_trials"):
                if key not in entry:
                    raise BackendError(f"device {device_id!r}: missing {key!r}")
            x = np.asarray(entry["current_a"], dtype=np.float64).reshape(-1)
            point_device.append(np.full(x.size, d))
            current.append(x)
            switched.append(np.asarray(entry["n_switched"], dtype=np.float64).reshape(-1))
            trials.append(np.broadcast_to(np.asarray(entry["n_trials"], dtype=np.float64), x.shape))
            per_device["width_m"].append(float(entry["width_m"]))
            for key, default in defaults.items():
                value = entry.get(key)
                per_device[key].append(default if value is None else float(value))
        return cls(ids, per_device["width_m"], np.concatenate(point_device), np.concatenate(current),
                   np.concatenate(switched), np.concatenate(trials), pulse_width_s=pulse_width_s,
                   r_ch_ohm=per_device["r_ch_ohm"], reset_current_a=per_device["reset_current_a"],
                   reset_width_s=per_device["reset_width_s"], max_current_a=per_device["max_current_a"],
                   **kwargs)

    def probability(self, neuron_devices: torch.Tensor, currents_a: torch.Tensor) -> torch.Tensor:
        lo, step, table = self._params(currents_a.dtype)
        last = table.shape[1] - 1
        position = ((currents_a - lo[neuron_devices]) / step[neuron_devices]).clamp(0.0, float(last))
        left = position.floor().clamp(max=last - 1)
        frac = position - left
        flat = left.long() + (neuron_devices * (last + 1))
        values = table.reshape(-1)
        return torch.lerp(values[flat], values[flat + 1], frac)

    def curve(self, neuron_devices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._i50_a[neuron_devices], self._w_a[neuron_devices]

    def nominal_curve(self, neuron_devices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._nominal_i50_a[neuron_devices], self._nominal_w_a[neuron_devices]

    def to(self, device: str | torch.device) -> ReplayBackend:
        self._cast = {}
        super().to(device)
        return self

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "source": self.source, "n_points": int(self.points["current_a"].size)}

    def _params(self, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        if dtype not in self._cast:
            self._cast[dtype] = tuple(t.to(dtype) for t in (self._lo_a, self._step_a, self._table))
        return self._cast[dtype]

    def _pooled_fits(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A logistic fit of all points of each width (the per-size curve of a characterization)."""
        widths = self.width_m.cpu().numpy()
        pts = self.points
        i50 = np.empty(self.n_devices)
        w = np.empty(self.n_devices)
        for width in np.unique(widths):
            members = np.flatnonzero(widths == width)
            keep = np.isin(pts["point_device"], members) & (pts["n_trials"] > 0)
            try:
                fit = fit_logistic(pts["current_a"][keep], pts["n_switched"][keep], pts["n_trials"][keep])
            except FitError as exc:
                raise BackendError(f"width {width * 1e6:g} um: no pooled logistic fit ({exc})") from None
            i50[members], w[members] = fit.i50_a, fit.w_a
        return (torch.tensor(i50, dtype=torch.float64, device=self._device),
                torch.tensor(w, dtype=torch.float64, device=self._device))


def _pool_duplicates(x: np.ndarray, k: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort by current and merge repeated currents (their counts add)."""
    unique, inverse = np.unique(x, return_inverse=True)
    return unique, np.bincount(inverse, weights=k, minlength=unique.size), np.bincount(inverse, weights=n,
                                                                                        minlength=unique.size)


def measure_curves(backend: NeuronBackend, currents_a: np.ndarray | torch.Tensor, n_trials: int,
                   devices: Sequence[int] | None = None) -> dict[str, dict[str, Any]]:
    """Run a bias sweep through ``backend``: ``n_trials`` trials at each current of each device.

    ``currents_a`` has shape ``(points,)`` (the same sweep for every device) or ``(devices, points)``.
    Returns per-device curves in the form :meth:`ReplayBackend.from_curves` reads (the pulses count
    on ``backend``).
    """
    idx = list(range(backend.n_devices)) if devices is None else [int(d) for d in devices]
    sweep = torch.as_tensor(currents_a, dtype=torch.float64, device=backend.device)
    if sweep.dim() == 1:
        sweep = sweep.expand(len(idx), -1)
    neuron_devices = torch.tensor(idx, dtype=torch.long, device=backend.device)
    # trials × (devices · points): every column one (device, current) pair
    columns = neuron_devices.repeat_interleave(sweep.shape[1])
    switched = backend.sample(columns, sweep.reshape(1, -1).expand(n_trials, -1)).sum(0).reshape(sweep.shape)
    curves = {}
    for row, d in enumerate(idx):
        curves[backend.device_ids[d]] = {
            "width_m": float(backend.width_m[d]),
            "current_a": sweep[row].cpu().numpy(),
            "n_switched": switched[row].cpu().numpy(),
            "n_trials": n_trials,
            "r_ch_ohm": float(backend.r_ch_ohm[d]),
            "reset_current_a": float(backend.reset_current_a[d]),
            "reset_width_s": float(backend.reset_width_s[d]),
            "max_current_a": float(backend.max_current_a[d]),
        }
    return curves


def sweep_currents(backend: NeuronBackend, n_points: int = 31, span: tuple[float, float] = (-10.0, 5.0)) -> np.ndarray:
    """Bias currents ``I50 + k·w_I`` for ``k`` evenly spaced in ``span``, per device: shape ``(devices, n_points)``.

    The default span reaches further below ``I50`` than above it: the Néel–Brown curve has a slow tail
    at low probability and saturates sharply (physics.md), so this covers P ≈ 0 → 1.
    """
    i50, w = backend.curve(torch.arange(backend.n_devices, device=backend.device))
    k = np.linspace(span[0], span[1], n_points)
    return i50.cpu().numpy()[:, None] + w.cpu().numpy()[:, None] * k[None, :]
