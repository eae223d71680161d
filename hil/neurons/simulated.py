"""The device physics simulator as a neuron backend: Néel–Brown switching of each device, vectorized.

The devices of a chip file, or a *virtual chip* (one generated device per neuron, drawn from a chip
file's distributions).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from hil.neurons.backend import DEFAULT_PULSE_S, BackendError, NeuronBackend, torch_device
from sim_backend.chip import DEFAULT_CHIP_FILE, Chip, ChipSpec, load_chip
from sim_backend.sot import LOGISTIC_WIDTH_FACTOR, exact_i50

# the emulated station's safety limit: half the breakdown current of each width
SAFE_FRACTION_OF_BREAKDOWN = 0.5


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
