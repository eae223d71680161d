"""The device physics simulator as a neuron backend: Néel–Brown switching of each device, vectorized.

The devices of a chip file, or a *virtual chip* (one generated device per neuron, drawn from a chip
file's distributions).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from hil.neurons.backend import DEFAULT_PULSE_S, BackendError, NeuronBackend, torch_device
from sim_backend.chip import DEFAULT_CHIP_FILE, Chip, ChipSpec, load_chip
from sim_backend.sot import (
    LOGISTIC_WIDTH_FACTOR,
    SAMPLING_BLOCK,
    clamps_that_matter,
    draw_switched,
    draw_switched_line,
    exact_i50,
    log_count_line,
    log_switching_count,
)

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
        self._exact = chip.effects.ideal  # ideal bars: the closed form's own fused paths; else the chip's effects
        if self._exact:
            args = (self.pulse_width_s, chip.tau0_s, chip.exponent_n)
            self._i50_a, self._w_a = _logistic_view(self.chip.ic0_a, self.chip.delta, *args)
            nominal_delta = torch.full_like(self.chip.ic0_a, chip.spec.material["delta"])
            self._nominal_i50_a, self._nominal_w_a = _logistic_view(self.chip.nominal_ic0_a, nominal_delta, *args)
        else:
            self._curve_version = -1
            self._nominal_i50_a, self._nominal_w_a = nominal_chip(chip.spec, self._device).logistic_view(
                self.pulse_width_s)
            self._follow_chip()

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

    @property
    def trial_time_s(self) -> float:
        """The modeled time (s) one trial keeps a station busy: the chip's, by which its drifting devices age."""
        return self.chip.trial_time_s

    def _follow_chip(self) -> None:
        """The devices' logistic view as the chip's effects have them now (rebuilt when the drift moved them)."""
        if self._curve_version != self.chip.parameters_version:
            self._i50_a, self._w_a = self.chip.logistic_view(self.pulse_width_s)
            self._curve_version = self.chip.parameters_version

    def probability(self, neuron_devices: torch.Tensor, currents_a: torch.Tensor) -> torch.Tensor:
        if not self._exact or self.chip.exponent_n != 1:
            return self.chip.switching_probability(neuron_devices, currents_a, self.pulse_width_s)
        # n = 1: P = 1 − exp(−e^η), η a line in I clamped to [η(0), η(Ic0)]: the chip's closed form in a few
        # fused steps per element
        line = self._gathered(neuron_devices, currents_a.dtype, "line", self._line_per_neuron)
        log_count = torch.addcmul(line[0], line[1], currents_a).clamp_(min=line[4], max=line[5])
        return torch.expm1(log_count.exp_().neg_()).neg_()

    def _sample(self, neuron_devices: torch.Tensor, currents_a: torch.Tensor) -> torch.Tensor:
        # The physics fused with the draw (sim_backend.sot.draw_switched): η = intercept + slope·I per
        # element, one uniform per trial against the survival exp(−e^η) computed in place, only the clamps of η
        # that can change an outcome. On the CPU, large batches go in blocks of rows that stay in cache, each
        # block drawn and counted while it is there (the outcomes are the same as in one piece: the uniforms
        # come from the generator in the same order).
        if not self._exact or self.chip.exponent_n != 1:
            return super()._sample(neuron_devices, currents_a)
        dtype = currents_a.dtype
        line = self._gathered(neuron_devices, dtype, "line", self._line_per_neuron)
        energy = self._energy_constants(neuron_devices, dtype)
        rows = currents_a if currents_a.dim() == 2 else currents_a.reshape(-1, currents_a.shape[-1])
        outcomes = torch.empty_like(rows)
        step = max(1, SAMPLING_BLOCK // rows.shape[1]) if rows.is_cpu else rows.shape[0]
        if rows.shape[0] <= step:
            self._sample_block(line, energy, rows, outcomes, torch.empty_like(rows))
        else:
            scratch = rows.new_empty((step, rows.shape[1]))
            for start in range(0, rows.shape[0], step):
                block = rows[start:start + step]
                self._sample_block(line, energy, block, outcomes[start:start + step], scratch[:block.shape[0]])
        return outcomes if outcomes.shape == currents_a.shape else outcomes.reshape(currents_a.shape)

    def _sample_block(self, line: tuple[Any, ...], energy: tuple[torch.Tensor, float], currents_a: torch.Tensor,
                      outcomes: torch.Tensor, scratch: torch.Tensor) -> None:
        draw_switched_line(currents_a, line, self.generator, out=outcomes, scratch=scratch)
        bias_j = torch.mv(torch.mul(currents_a, currents_a, out=scratch), energy[0])
        self._count(currents_a.shape[0], currents_a.numel(), energy, bias_j)

    def _draw(self, neuron_devices: torch.Tensor, currents_a: torch.Tensor) -> torch.Tensor:
        if not self._exact:  # the chip's effects (tabulated where they bend η), aging drifting devices
            return self.chip.sample_switching(neuron_devices, currents_a, self.pulse_width_s, self.generator)
        if self.chip.exponent_n == 1:
            line = self._gathered(neuron_devices, currents_a.dtype, "line", self._line_per_neuron)
            return draw_switched_line(currents_a, line, self.generator)
        ic0, delta = self._gathered(neuron_devices, currents_a.dtype, "device", self._device_per_neuron)
        log_count = log_switching_count(currents_a, self.pulse_width_s, ic0, delta, self.chip.tau0_s,
                                        self.chip.exponent_n)
        return draw_switched(log_count, self.generator)

    def _line_per_neuron(self, neuron_devices: torch.Tensor, dtype: torch.dtype) -> tuple[Any, ...]:
        """η's line per neuron for a draw (intercept, slope, the floor and ceiling that matter), then its exact
        floor and ceiling (for the probability)."""
        ic0, delta = self.chip.ic0_a[neuron_devices], self.chip.delta[neuron_devices]
        intercept, slope, floor, ceiling = log_count_line(ic0, delta, self.pulse_width_s, self.chip.tau0_s)
        return (intercept.to(dtype), slope.to(dtype), *clamps_that_matter(floor, ceiling, dtype), floor.to(dtype),
                torch.full_like(floor, ceiling, dtype=dtype))

    def _device_per_neuron(self, neuron_devices: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        return self.chip.ic0_a[neuron_devices].to(dtype), self.chip.delta[neuron_devices].to(dtype)

    def curve(self, neuron_devices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self._exact:
            self._follow_chip()
        return self._i50_a[neuron_devices], self._w_a[neuron_devices]

    def nominal_curve(self, neuron_devices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._nominal_i50_a[neuron_devices], self._nominal_w_a[neuron_devices]

    def to(self, device: str | torch.device) -> SimBackend:
        device = torch_device(device)
        if device != self._device:
            self.chip = self.chip.to(device)
        super().to(device)
        return self

    def state_dict(self) -> dict[str, Any]:
        """Besides the random stream and counters: a non-ideal chip's own state (its drift, clock, temperatures),
        which the trials change."""
        state = super().state_dict()
        if not self._exact:
            state["chip"] = self.chip.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if state.get("chip") is not None:
            self.chip.load_state_dict(state["chip"])
            self._curve_version = -1

    def describe(self) -> dict[str, Any]:
        spec = self.chip.spec
        return {**super().describe(), "chip": spec.name, "chip_seed": spec.seed,
                "variation": dict(spec.variation), "material": dict(spec.material),
                "effects": self.chip.effects.enabled}


def nominal_chip(spec: ChipSpec, device: torch.device) -> Chip:
    """The design's devices of ``spec``: no device-to-device variation, no drift or pinning spread; the bias field
    and heating, which every device of a design shares, stay."""
    effects = dataclasses.replace(spec.effects, drift=None, reversal_pinning=None, telegraph_noise=None)
    return Chip(dataclasses.replace(spec, variation={}, effects=effects,
                                    devices=[{"id": d["id"], "width": d["width"]} for d in spec.devices]),
                device=device)


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
        **({"effects": effects} if (effects := spec.effects.as_mapping()) is not None else {}),
    }
