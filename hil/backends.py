"""Neuron backends: where a network's stochastic neurons get their switching outcomes (design.md).

A backend owns a set of physical (or simulated, or recorded) SOT devices. The network assigns each
hidden neuron to a device (a long tensor ``neuron_devices``, neuron → device index; many neurons may
share one device, time-multiplexed) and asks for outcomes::

    outcomes = backend.sample(neuron_devices, currents_a)     # (batch, neurons) A → 0/1 float
    i50_a, w_a = backend.curve(neuron_devices)                # logistic view of each neuron's device
    p = backend.probability(neuron_devices, currents_a)       # the curve the samples follow

Every :meth:`NeuronBackend.sample` call is a batch of device trials (reset pulse → bias pulse →
read), so a backend counts them: ``pulses`` (bias pulses) and ``energy_j`` (Σ I²·R_ch·t_p over the
bias pulses plus the reset pulses, physics.md §3.4). A backend may be slow and stateful (the hardware
backend drives a probe station); the trainer only ever goes through this interface.

Implementations here:

- :class:`SimBackend` — the Néel–Brown simulator of :mod:`sim_backend.chip`, vectorized; the devices
  of a chip file or a *virtual chip* (one generated device per neuron, drawn from the chip file's
  distributions).
- :class:`ReplayBackend` — measured switching curves (counts per current per device), interpolated
  monotonically between the measured points; no physics.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.interpolate import PchipInterpolator
from sklearn.isotonic import IsotonicRegression

from protocols.fits import FitError, fit_logistic
from sim_backend.chip import DEFAULT_CHIP_FILE, Chip, ChipSpec, load_chip
from sim_backend.sot import LOGISTIC_WIDTH_FACTOR, exact_i50

DEFAULT_PULSE_S = 10e-6  # bias-pulse width of the neuron trials
# the emulated station's safety limit: half the breakdown current of each width
SAFE_FRACTION_OF_BREAKDOWN = 0.5
REPLAY_GRID_POINTS = 256  # resolution of the tabulated monotone interpolant, per device


def torch_device(device: str | torch.device) -> torch.device:
    """``device`` with its index filled in (``"cuda"`` → ``cuda:0``), so it compares equal to tensors' devices."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


class BackendError(ValueError):
    """A backend built from data that cannot describe its devices; the message names the device or key."""


class NeuronBackend(abc.ABC):
    """Switching outcomes for neurons mapped onto devices; pulses and energy are counted.

    Per-device tensors (shape ``(n_devices,)``, float64, SI units, on :attr:`device`):
    ``width_m``, ``r_ch_ohm`` (channel resistance, NaN where unknown), ``max_current_a`` (the
    largest bias current a neuron may request; the layers clamp to it), ``reset_current_a`` and
    ``reset_width_s`` (the reset pulse before every trial; zero where unknown). Shared:
    ``pulse_width_s`` (the bias pulse) and ``device_ids``.

    Subclasses implement :meth:`probability` and :meth:`curve`; a backend whose outcomes do not come
    from drawing against :meth:`probability` (hardware) overrides :meth:`_draw`.
    """

    name = "backend"

    def __init__(self, device_ids: Sequence[str], width_m: Any, r_ch_ohm: Any, pulse_width_s: float,
                 reset_current_a: Any = 0.0, reset_width_s: Any = 0.0, max_current_a: Any = math.inf,
                 seed: int = 0, device: str | torch.device = "cpu") -> None:
        self.device_ids = list(device_ids)
        if not self.device_ids:
            raise BackendError("a backend needs at least one device")
        if len(set(self.device_ids)) != len(self.device_ids):
            raise BackendError(f"duplicate device ids in {self.device_ids}")
        if not pulse_width_s > 0:
            raise BackendError(f"pulse_width_s: must be positive, got {pulse_width_s!r}")
        self.pulse_width_s = float(pulse_width_s)
        self._device = torch_device(device)
        n = len(self.device_ids)

        def per_device(value: Any, key: str) -> torch.Tensor:
            t = torch.as_tensor(value, dtype=torch.float64).reshape(-1).to(self._device)
            if t.numel() == 1:
                t = t.expand(n).clone()
            if t.numel() != n:
                raise BackendError(f"{key}: expected one value per device ({n}), got {t.numel()}")
            return t

        self.width_m = per_device(width_m, "width_m")
        self.r_ch_ohm = per_device(float("nan") if r_ch_ohm is None else r_ch_ohm, "r_ch_ohm")
        self.reset_current_a = per_device(reset_current_a, "reset_current_a")
        self.reset_width_s = per_device(reset_width_s, "reset_width_s")
        self.max_current_a = per_device(max_current_a, "max_current_a")
        self.seed = int(seed)
        self.generator = torch.Generator(device=self._device).manual_seed(self.seed)
        self.pulses = 0
        self._bias_j = torch.zeros((), dtype=torch.float64, device=self._device)
        self._reset_j = torch.zeros((), dtype=torch.float64, device=self._device)
        self.refresh_energy_model()

    # -- the interface --------------------------------------------------------------------------

    @abc.abstractmethod
    def probability(self, neuron_devices: torch.Tensor, currents_a: torch.Tensor) -> torch.Tensor:
        """Switching probability of one bias pulse of ``currents_a`` (…, neurons) for each neuron's device.

        Computed in the dtype of ``currents_a``; sends no pulse.
        """

    @abc.abstractmethod
    def curve(self, neuron_devices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The logistic ``(I50, w_I)`` in A (float64, one per neuron) of each neuron's device.

        ``P ≈ 1/(1 + exp(−(I − I50)/w_I))``: used to map pre-activations to currents and for the
        surrogate gradient.
        """

    def nominal_curve(self, neuron_devices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One logistic ``(I50, w_I)`` per device width, for every neuron on a device of that width.

        The default averages the device curves of each width; backends that know their devices'
        nominal (design) values override this.
        """
        i50, w = self.curve(torch.arange(self.n_devices, device=self._device))
        return _per_width_mean(self.width_m, neuron_devices, i50, w)

    def sample(self, neuron_devices: torch.Tensor, currents_a: torch.Tensor) -> torch.Tensor:
        """One device trial per element: ``currents_a`` (batch, neurons) in A → switched (1.0) or not (0.0).

        ``neuron_devices`` (long, shape ``(neurons,)``) names each neuron's device. Outcomes have the
        dtype and device of ``currents_a``. Counts ``pulses`` and ``energy_j``.
        """
        if currents_a.dim() < 1 or currents_a.shape[-1] != neuron_devices.shape[-1]:
            raise ValueError(f"{self.name} backend: currents of shape {tuple(currents_a.shape)} for "
                             f"{neuron_devices.shape[-1]} neurons (expected (..., neurons))")
        with torch.no_grad():
            outcomes = self._draw(neuron_devices, currents_a)
            self._account(neuron_devices, currents_a)
        return outcomes

    def _draw(self, neuron_devices: torch.Tensor, currents_a: torch.Tensor) -> torch.Tensor:
        return torch.bernoulli(self.probability(neuron_devices, currents_a), generator=self.generator)

    def _account(self, neuron_devices: torch.Tensor, currents_a: torch.Tensor) -> None:
        n_neurons = currents_a.shape[-1]
        trials_per_neuron = currents_a.numel() // max(1, n_neurons)
        self.pulses += currents_a.numel()
        joule_per_a2, reset_j = self._gathered(neuron_devices, currents_a.dtype, "energy", self._energy_per_neuron)
        # Σ I²·R_ch·t_p over the bias pulses; one reset pulse before every trial
        self._bias_j += torch.dot(currents_a.reshape(-1, n_neurons).square().sum(0), joule_per_a2)
        self._reset_j += reset_j * trials_per_neuron

    def _energy_per_neuron(self, neuron_devices: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        return (self._joule_per_a2[neuron_devices].to(dtype), self._joule_per_reset[neuron_devices].sum())

    def _gathered(self, neuron_devices: torch.Tensor, dtype: torch.dtype, what: str,
                  make: Any) -> tuple[torch.Tensor, ...]:
        """Per-neuron constants ``make(neuron_devices, dtype)``, remembered for the last device map.

        A layer passes the same map on every call, so the gathers run once (a map changed in place is
        noticed through its version counter).
        """
        key = (what, dtype)
        hit = self._neuron_cache.get(key)
        if hit is not None and hit[0] is neuron_devices and hit[1] == neuron_devices._version:
            return hit[2]
        values = make(neuron_devices, dtype)
        self._neuron_cache[key] = (neuron_devices, neuron_devices._version, values)
        return values

    def refresh_energy_model(self) -> None:
        """Recompute the per-device energy constants after ``r_ch_ohm`` or the reset pulse changed."""
        self._joule_per_a2 = self.r_ch_ohm * self.pulse_width_s
        self._joule_per_reset = self.reset_current_a.square() * self.r_ch_ohm * self.reset_width_s
        self._neuron_cache: dict[tuple[str, torch.dtype], tuple[torch.Tensor, int, tuple[torch.Tensor, ...]]] = {}

    # -- bookkeeping ----------------------------------------------------------------------------

    @property
    def n_devices(self) -> int:
        return len(self.device_ids)

    @property
    def device(self) -> torch.device:
        """The torch device the backend's tensors (and its outcomes) live on."""
        return self._device

    @property
    def energy_j(self) -> float:
        """Energy in J of every trial so far (bias pulses and resets); NaN where R_ch is unknown."""
        return float(self._bias_j + self._reset_j)

    @property
    def reset_energy_j(self) -> float:
        """The part of :attr:`energy_j` spent in reset pulses."""
        return float(self._reset_j)

    def reset_counters(self) -> None:
        """Zero ``pulses`` and the energy counters."""
        self.pulses = 0
        self._bias_j.zero_()
        self._reset_j.zero_()

    def reseed(self, seed: int) -> None:
        """Restart the backend's random stream from ``seed``: the same calls then give the same outcomes."""
        self.seed = int(seed)
        self.generator.manual_seed(self.seed)

    def assign(self, n_neurons: int, start: int = 0) -> torch.Tensor:
        """Neuron → device map for ``n_neurons`` neurons: devices ``start, start+1, …`` in turn, wrapping.

        With fewer devices than neurons, neurons share devices (time-multiplexed trials).
        """
        return (torch.arange(n_neurons, device=self._device) + int(start)) % self.n_devices

    def to(self, device: str | torch.device) -> NeuronBackend:
        """Move the backend's tensors to ``device`` (in place; returns ``self``).

        The random stream restarts from the backend's seed on the new device.
        """
        device = torch_device(device)
        if device == self._device:
            return self
        for name, value in list(vars(self).items()):
            if isinstance(value, torch.Tensor):
                setattr(self, name, value.to(device))
        self._device = device
        self.generator = torch.Generator(device=device).manual_seed(self.seed)
        self.refresh_energy_model()
        return self

    def describe(self) -> dict[str, Any]:
        """What a session file stores about this backend (plain values)."""
        return {
            "backend": self.name,
            "devices": list(self.device_ids),
            "width_m": self.width_m.tolist(),
            "pulse_width_s": self.pulse_width_s,
            "seed": self.seed,
        }

    def __repr__(self) -> str:
        widths = ", ".join(f"{w * 1e6:g}um" for w in sorted(set(self.width_m.tolist())))
        return f"{type(self).__name__}({self.n_devices} devices of {widths}, t_p={self.pulse_width_s:g}s)"


def _per_width_mean(width_m: torch.Tensor, neuron_devices: torch.Tensor, i50: torch.Tensor,
                    w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    widths, group = torch.unique(width_m, return_inverse=True)
    count = torch.zeros(len(widths), dtype=i50.dtype, device=i50.device).index_add_(0, group, torch.ones_like(i50))
    mean_i50 = torch.zeros_like(count).index_add_(0, group, i50) / count
    mean_w = torch.zeros_like(count).index_add_(0, group, w) / count
    g = group[neuron_devices]
    return mean_i50[g], mean_w[g]


# ---------------------------------------------------------------------------------------------
# Simulator
# ---------------------------------------------------------------------------------------------


def _logistic_view(ic0_a: torch.Tensor, delta: torch.Tensor, width_s: float, tau0_s: float,
                   n: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Logistic ``(I50, w_I)`` of Néel–Brown curves: the exact median, and ``w_I = 0.69/(dη/dI)`` there.

    ``η = ln(t_p/τ0) − Δ(1 − I/Ic0)^n`` is the curve's complementary-log-log predictor; for n = 1 this
    is physics.md's ``w_I ≈ 0.69·Ic0/Δ``.
    """
    i50 = exact_i50(ic0_a, delta, width_s, tau0_s, n)
    reduced = (1.0 - i50 / ic0_a).clamp(min=1e-12)
    slope = delta * n * reduced.pow(n - 1.0) / ic0_a
    return i50, LOGISTIC_WIDTH_FACTOR / slope


class SimBackend(NeuronBackend):
    """The device physics simulator as a backend: Néel–Brown switching of each device, vectorized.

    Each trial is an independent draw from the reset state (the chip's stateless sampling), so the
    chip's magnetization and cycle counts are not touched. ``curve`` is the logistic view of each
    device's exact curve (median and slope of physics.md), ``nominal_curve`` the same for the
    variation-free device of each width (``Jc0·w·t`` and the material's ``Δ``).
    """

    name = "sim"

    def __init__(self, chip: Chip, pulse_width_s: float = DEFAULT_PULSE_S, seed: int | None = None,
                 device: str | torch.device | None = None) -> None:
        device = torch_device(device if device is not None else chip.device)
        self.chip = chip if chip.device == device else chip.to(device)
        super().__init__(chip.ids, chip.width_m, chip.r_ch_ohm, pulse_width_s,
                         reset_current_a=chip.reset_current_a, reset_width_s=chip.reset_width_s,
                         max_current_a=SAFE_FRACTION_OF_BREAKDOWN * chip.i_breakdown_a,
                         seed=chip.spec.seed if seed is None else seed, device=device)
        args = (self.pulse_width_s, chip.tau0_s, chip.exponent_n)
        self._i50_a, self._w_a = _logistic_view(self.chip.ic0_a, self.chip.delta, *args)
        nominal_delta = torch.full_like(self.chip.ic0_a, chip.spec.material["delta"])
        self._nominal_i50_a, self._nominal_w_a = _logistic_view(self.chip.nominal_ic0_a, nominal_delta, *args)

    @classmethod
    def from_chip_file(cls, source: str | Path | Mapping[str, Any] | None = None, seed: int | None = None,
                       pulse_width_s: float = DEFAULT_PULSE_S, device: str | torch.device = "cpu") -> SimBackend:
        """The devices of a chip file (default: the embedded chip) or chip mapping."""
        return cls(load_chip(source, seed=seed, device=torch_device(device)), pulse_width_s=pulse_width_s)

    @classmethod
    def virtual(cls, n_devices: int, width_m: float | None = None,
                chip: str | Path | Mapping[str, Any] | ChipSpec | None = None, seed: int | None = None,
                pulse_width_s: float = DEFAULT_PULSE_S, device: str | torch.device = "cpu") -> SimBackend:
        """A virtual chip of ``n_devices`` generated devices drawn from a chip file's distributions.

        Material, variation and reset come from ``chip`` (a path, a mapping or a spec; default the
        embedded chip); explicit per-device values of the file are not used. Every device has width
        ``width_m``, or (``None``) the widths of the file's devices in turn. ``seed`` (default the
        file's) draws the devices and the switching outcomes.
        """
        if n_devices < 1:
            raise BackendError(f"n_devices: need at least one device, got {n_devices}")
        return cls(load_chip(virtual_chip_mapping(n_devices, width_m, chip, seed), device=torch_device(device)),
                   pulse_width_s=pulse_width_s)

    def probability(self, neuron_devices: torch.Tensor, currents_a: torch.Tensor) -> torch.Tensor:
        if self.chip.exponent_n != 1:
            return self.chip.switching_probability(neuron_devices, currents_a, self.pulse_width_s)
        # n = 1: the Néel–Brown curve is P = 1 − exp(−exp(η)) with η = ln(t_p/τ0) − Δ(1 − I/Ic0), a line in
        # I clamped to [η(0), η(Ic0)] (no current below zero, τ = τ0 above Ic0): the chip's closed form in
        # a few fused steps per element
        intercept, slope, ceiling = self._gathered(neuron_devices, currents_a.dtype, "neel-brown",
                                                   self._predictor_per_neuron)
        eta = torch.addcmul(intercept, slope, currents_a).clamp_(min=intercept, max=ceiling)
        return torch.expm1(eta.exp_().neg_()).neg_()

    def _predictor_per_neuron(self, neuron_devices: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        ic0, delta = self.chip.ic0_a[neuron_devices], self.chip.delta[neuron_devices]
        log_ratio = math.log(self.pulse_width_s / self.chip.tau0_s)
        return ((log_ratio - delta).to(dtype), (delta / ic0).to(dtype), torch.full_like(delta, log_ratio, dtype=dtype))

    def curve(self, neuron_devices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._i50_a[neuron_devices], self._w_a[neuron_devices]

    def nominal_curve(self, neuron_devices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._nominal_i50_a[neuron_devices], self._nominal_w_a[neuron_devices]

    def to(self, device: str | torch.device) -> SimBackend:
        device = torch_device(device)
        if device != self._device:
            self.chip = self.chip.to(device)
        super().to(device)
        return self

    def describe(self) -> dict[str, Any]:
        spec = self.chip.spec
        return {**super().describe(), "chip": spec.name, "chip_seed": spec.seed,
                "variation": dict(spec.variation), "material": dict(spec.material)}


def virtual_chip_mapping(n_devices: int, width_m: float | None = None,
                         chip: str | Path | Mapping[str, Any] | ChipSpec | None = None,
                         seed: int | None = None) -> dict[str, Any]:
    """A chip mapping (for :func:`sim_backend.chip.load_chip`) with ``n_devices`` generated devices.

    See :meth:`SimBackend.virtual`. Values are SI numbers.
    """
    spec = chip if isinstance(chip, ChipSpec) else load_chip(chip if chip is not None else DEFAULT_CHIP_FILE).spec
    if width_m is None:
        widths = [spec.devices[i % len(spec.devices)]["width"] for i in range(n_devices)]
    else:
        if not width_m > 0:
            raise BackendError(f"width_m: must be positive, got {width_m!r}")
        widths = [float(width_m)] * n_devices
    return {
        "format": "hil-chip/1",
        "name": f"{spec.name}-virtual",
        "seed": spec.seed if seed is None else int(seed),
        "material": dict(spec.material),
        "variation": dict(spec.variation),
        "reset": dict(spec.reset),
        "devices": [{"id": f"v{i}-{w * 1e6:g}um", "width": w} for i, w in enumerate(widths)],
    }


# ---------------------------------------------------------------------------------------------
# Replay of measured curves
# ---------------------------------------------------------------------------------------------


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


__all__ = ["BackendError", "NeuronBackend", "ReplayBackend", "SimBackend", "measure_curves", "sweep_currents",
           "torch_device", "virtual_chip_mapping", "DEFAULT_PULSE_S"]
