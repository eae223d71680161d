"""A simulated chip of SOT stochastic neurons with persistent state (physics.md §1).

A :class:`Chip` holds many Hall-bar devices. Each has its own parameters (drawn once from a seed,
or given explicitly by a calibrated chip file), a magnetization ``m_z = ±1``, a cycle count and a
breakdown flag. Pulses, waveforms and reads apply to one device or to a batch of devices at once;
every operation is vectorized over devices with torch.

Sign convention: a positive current switches down→up (``m_z: −1 → +1``), a negative one up→down.
``R_xy = R0 + ΔR_AHE/2 · m_z + noise``; a destroyed device reads open (``inf``).

A chip may also hold DW synapse tracks (``dw_tracks:``, :mod:`sim_backend.dw_track`): :attr:`Chip.tracks`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from instruments.config_files import DEFAULT_CHIP_FILE, check_keys, read_yaml
from instruments.failures import UserFacingError
from instruments.units import QuantityError, parse_quantity
from sim_backend.dw_synapse import DWSynapseConfig, SynapseConfigError
from sim_backend.dw_track import DWTracks, DWTrackSpec, track_spec
from sim_backend.sot import (
    SAMPLING_BLOCK,
    clamps_that_matter,
    draw_switched,
    draw_switched_line,
    log_count_line,
    log_switching_count,
    switching_probability,
)

CHIP_FORMAT = "hil-chip/1"
OPEN_CIRCUIT_OHM = math.inf

DeviceIndex = int | Sequence[int] | torch.Tensor


class ChipConfigError(UserFacingError, ValueError):
    """A chip file or mapping that cannot describe a chip; the message names the key and value."""


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------

# key: (SI unit, must be positive)
_MATERIAL_KEYS: dict[str, tuple[str, bool]] = {
    "resistivity": ("ohm*m", True),
    "thickness": ("m", True),
    "channel_length": ("m", True),
    "jc0": ("A/m^2", True),
    "j_max": ("A/m^2", True),
    "delta": ("", True),
    "tau0": ("s", True),
    "exponent_n": ("", True),
    "r0": ("ohm", False),
    "delta_r_ahe": ("ohm", True),
    "read_noise": ("ohm", False),
}
_VARIATION_KEYS: dict[str, str] = {"ic0": "", "delta": "", "delta_r_ahe": "", "r_ch": "", "r0": "ohm"}
_RESET_KEYS: dict[str, tuple[str, bool]] = {"width": ("s", True), "factor": ("", True)}
# per-device overrides (a calibrated chip gives these explicitly instead of drawing them)
_DEVICE_KEYS: dict[str, tuple[str, bool]] = {
    "width": ("m", True),
    "ic0": ("A", True),
    "delta": ("", True),
    "r0": ("ohm", False),
    "delta_r_ahe": ("ohm", True),
    "r_ch": ("ohm", True),
}
_TOP_KEYS = {"format", "name", "seed", "material", "variation", "reset", "devices", "notes", "calibration",
             "synapses",  # synapses: the DW synapse model (sim_backend.dw_synapse), validated here too
             "dw_tracks"}  # dw_tracks: DW synapse tracks of that model beside the Hall bars (sim_backend.dw_track)


def _section(mapping: Mapping[str, Any], key: str, where: str, required: bool = True) -> Mapping[str, Any]:
    value = mapping.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, Mapping):
        raise ChipConfigError(f"{where}{key}: expected a mapping, got {value!r}")
    return value


def _quantities(mapping: Mapping[str, Any], keys: Mapping[str, tuple[str, bool]], where: str,
                required: bool) -> dict[str, float]:
    check_keys(mapping, set(keys), where, ChipConfigError)
    out: dict[str, float] = {}
    for key, (unit, positive) in keys.items():
        if key not in mapping:
            if required:
                raise ChipConfigError(f"{where}{key}: missing")
            continue
        try:
            value = parse_quantity(mapping[key], unit, f"{where}{key}")
        except QuantityError as exc:
            raise ChipConfigError(str(exc)) from None
        if not math.isfinite(value) or (positive and value <= 0):
            need = "a positive" if positive else "a finite"
            raise ChipConfigError(f"{where}{key}: must be {need} quantity, got {mapping[key]!r}")
        out[key] = value
    return out


@dataclass(frozen=True)
class ChipSpec:
    """A validated chip description, in SI units."""

    name: str
    seed: int
    material: dict[str, float]
    variation: dict[str, float]
    reset: dict[str, float]
    devices: list[dict[str, Any]] = field(default_factory=list)
    tracks: DWTrackSpec | None = None  # the DW synapse tracks (``dw_tracks:``), if the chip has any

    @classmethod
    def from_mapping(cls, raw: Any) -> ChipSpec:
        if not isinstance(raw, Mapping):
            raise ChipConfigError(f"chip file: expected a mapping at the top level, got {type(raw).__name__}")
        check_keys(raw, _TOP_KEYS, "", ChipConfigError)
        fmt = raw.get("format", CHIP_FORMAT)
        if fmt != CHIP_FORMAT:
            raise ChipConfigError(f"format: this version reads {CHIP_FORMAT!r}, got {fmt!r}")
        seed = raw.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ChipConfigError(f"seed: expected a non-negative integer, got {seed!r}")
        material = _quantities(_section(raw, "material", ""), _MATERIAL_KEYS, "material.", True)
        variation_raw = _section(raw, "variation", "", required=False)
        variation = _quantities(variation_raw, {k: (u, False) for k, u in _VARIATION_KEYS.items()},
                                "variation.", False)
        for key, value in variation.items():
            if value < 0:
                raise ChipConfigError(f"variation.{key}: must be ≥ 0, got {variation_raw[key]!r}")
        try:
            DWSynapseConfig.from_mapping(raw.get("synapses"))
            tracks = track_spec(raw)
        except SynapseConfigError as exc:
            raise ChipConfigError(str(exc)) from None
        reset = {"width": 100e-6, "factor": 1.3}
        reset.update(_quantities(_section(raw, "reset", "", required=False), _RESET_KEYS, "reset.", False))

        devices_raw = raw.get("devices")
        if not isinstance(devices_raw, list) or not devices_raw:
            raise ChipConfigError(f"devices: expected a non-empty list of devices, got {devices_raw!r}")
        devices: list[dict[str, Any]] = []
        seen: set[str] = set()
        for i, entry in enumerate(devices_raw):
            where = f"devices[{i}]."
            if not isinstance(entry, Mapping):
                raise ChipConfigError(f"devices[{i}]: expected a mapping with id and width, got {entry!r}")
            device_id = entry.get("id")
            if not isinstance(device_id, str) or not device_id:
                raise ChipConfigError(f"{where}id: expected a non-empty string, got {device_id!r}")
            if device_id in seen:
                raise ChipConfigError(f"{where}id: duplicate device id {device_id!r}")
            seen.add(device_id)
            values = _quantities({k: v for k, v in entry.items() if k != "id"}, _DEVICE_KEYS, where, False)
            if "width" not in values:
                raise ChipConfigError(f"{where}width: missing")
            devices.append({"id": device_id, **values})
        for track_id in tracks.ids if tracks is not None else ():
            if track_id in seen:
                raise ChipConfigError(f"dw_tracks.tracks: {track_id!r} is also the id of a Hall bar")
        return cls(name=str(raw.get("name", "chip")), seed=seed, material=material, variation=variation,
                   reset=reset, devices=devices, tracks=tracks)


def load_chip(source: str | Path | Mapping[str, Any] | None = None, seed: int | None = None,
              device: str | torch.device = "cpu") -> Chip:
    """Load and validate a chip file (default: ``configs/chip.default.yaml``) into a :class:`Chip`.

    ``seed`` overrides the file's seed. Raises :class:`ChipConfigError` naming the bad key and value;
    no chip is built from an invalid file.
    """
    if source is None:
        source = DEFAULT_CHIP_FILE
    if isinstance(source, Mapping):
        raw = source
    else:
        raw = read_yaml(source, "chip", ChipConfigError)
    spec = ChipSpec.from_mapping(raw)
    if seed is not None:
        spec = dataclasses.replace(spec, seed=int(seed))
    return Chip(spec, device=device)


# ---------------------------------------------------------------------------------------------
# The chip
# ---------------------------------------------------------------------------------------------


class Chip:
    """Many SOT devices with persistent magnetization, cycle counts and breakdown.

    Per-device parameters (tensors of shape ``(n_devices,)``, SI units): ``width_m``, ``ic0_a``,
    ``delta``, ``r0_ohm``, ``delta_r_ahe_ohm``, ``r_ch_ohm``, ``i_breakdown_a``, ``reset_current_a``
    (negative). Shared: ``tau0_s``, ``exponent_n``, ``read_noise_ohm``, ``reset_width_s``.
    """

    def __init__(self, spec: ChipSpec, device: str | torch.device = "cpu") -> None:
        self.spec = spec
        self.device = torch.device(device)
        mat, var = spec.material, spec.variation
        draw = np.random.default_rng(spec.seed)
        n = len(spec.devices)
        # Draw every parameter for every device in a fixed order, so a device's values depend only on
        # the seed and its position, then let explicit (calibrated) values replace the draws.
        z = draw.standard_normal((5, n))
        width = np.array([d["width"] for d in spec.devices])
        area = width * mat["thickness"]
        drawn = {
            "ic0": mat["jc0"] * area * np.exp(var.get("ic0", 0.0) * z[0]),
            "delta": mat["delta"] * np.exp(var.get("delta", 0.0) * z[1]),
            "r0": mat["r0"] + var.get("r0", 0.0) * z[2],
            "delta_r_ahe": mat["delta_r_ahe"] * np.exp(var.get("delta_r_ahe", 0.0) * z[3]),
            "r_ch": mat["resistivity"] * mat["channel_length"] / area * np.exp(var.get("r_ch", 0.0) * z[4]),
        }
        for key, values in drawn.items():
            for i, dev in enumerate(spec.devices):
                if key in dev:
                    values[i] = dev[key]

        def t(values: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(values, dtype=torch.float64, device=self.device)

        self.ids: list[str] = [d["id"] for d in spec.devices]
        self._index = {device_id: i for i, device_id in enumerate(self.ids)}
        self.width_m = t(width)
        self.ic0_a = t(drawn["ic0"])
        self.delta = t(drawn["delta"])
        self.r0_ohm = t(drawn["r0"])
        self.delta_r_ahe_ohm = t(drawn["delta_r_ahe"])
        self.r_ch_ohm = t(drawn["r_ch"])
        self.i_breakdown_a = t(mat["j_max"] * area)
        # nominal (per-width, variation-free) critical current sets the reset amplitude
        self.nominal_ic0_a = t(mat["jc0"] * area)
        self.reset_current_a = -spec.reset["factor"] * self.nominal_ic0_a
        self.reset_width_s = spec.reset["width"]
        self.tau0_s = mat["tau0"]
        self.exponent_n = mat["exponent_n"]
        self.read_noise_ohm = mat["read_noise"]

        self.generator = torch.Generator(device=self.device).manual_seed(spec.seed)
        # every device starts magnetized down (as after a reset), undamaged, never pulsed
        self.m_z = torch.full((n,), -1, dtype=torch.int8, device=self.device)
        self.cycles = torch.zeros(n, dtype=torch.int64, device=self.device)
        self.destroyed = torch.zeros(n, dtype=torch.bool, device=self.device)
        self._cast_cache: dict[torch.dtype, tuple[torch.Tensor, torch.Tensor]] = {}
        self._sampling_cache: dict[tuple[torch.dtype, float], tuple[Any, int, tuple[Any, ...]]] = {}
        # the DW synapse tracks, on random streams of their own (the Hall bars' draws do not change)
        self.tracks = DWTracks(spec.tracks, spec.seed) if spec.tracks is not None else None

    # -- bookkeeping -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"Chip({self.spec.name!r}, {len(self)} devices, seed={self.spec.seed})"

    def index(self, device: str | int) -> int:
        """Position of a device given by id or position; a clear error for an unknown one."""
        if isinstance(device, str):
            if device not in self._index:
                raise KeyError(f"no device {device!r} on chip {self.spec.name!r} (devices: {', '.join(self.ids)})")
            return self._index[device]
        if not 0 <= int(device) < len(self):
            raise IndexError(f"device index {device} out of range for {len(self)} devices")
        return int(device)

    def _indices(self, devices: DeviceIndex | str | Sequence[str]) -> torch.Tensor:
        if isinstance(devices, torch.Tensor):
            return devices.to(device=self.device, dtype=torch.long).reshape(-1)
        if isinstance(devices, str | int):
            devices = [devices]
        return torch.tensor([self.index(d) for d in devices], dtype=torch.long, device=self.device)

    def state(self, devices: DeviceIndex | str | Sequence[str]) -> torch.Tensor:
        """Magnetization ``m_z`` (±1, int8) of the given devices."""
        return self.m_z[self._indices(devices)].clone()

    def set_state(self, devices: DeviceIndex | str | Sequence[str], m_z: int | torch.Tensor) -> None:
        """Force ``m_z`` of the given devices (for tests and for starting a simulation from a known state)."""
        idx = self._indices(devices)
        self.m_z[idx] = torch.as_tensor(m_z, dtype=torch.int8, device=self.device).expand(idx.shape)

    def reseed(self, seed: int) -> None:
        """Restart the switching/read-noise random stream from ``seed`` (the device parameters stay), and the
        DW tracks' landing and read-noise streams."""
        self.generator.manual_seed(int(seed))
        if self.tracks is not None:
            self.tracks.reseed(seed)

    def to(self, device: str | torch.device) -> Chip:
        """A copy of this chip (parameters and state) on another torch device."""
        other = Chip(self.spec, device=device)
        for name in ("m_z", "cycles", "destroyed"):
            setattr(other, name, getattr(self, name).to(device))
        other.tracks = self.tracks  # the DW tracks live on the CPU (the emulated station's): shared, not copied
        return other

    # -- stateless sampling (for training backends and benchmarks) ---------------------------

    def switching_probability(self, devices: DeviceIndex, current_a: torch.Tensor,
                              width_s: float | torch.Tensor) -> torch.Tensor:
        """Probability that one pulse switches each device out of the opposite state.

        ``devices`` (a long tensor broadcastable with ``current_a``) picks the device of each
        element; ``current_a`` is the pulse magnitude in the switching direction. Computed in the
        dtype of ``current_a``.
        """
        ic0, delta = self._cast(current_a.dtype)
        idx = self._indices(devices) if not isinstance(devices, torch.Tensor) else devices
        return switching_probability(current_a, width_s, ic0[idx], delta[idx], self.tau0_s, self.exponent_n)

    def sample_switching(self, devices: DeviceIndex, current_a: torch.Tensor, width_s: float | torch.Tensor,
                         generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw switched (1) / not (0) for each (device, current) pair, each from the reset state.

        Follows :meth:`switching_probability` (the same arguments); outcomes have the dtype of
        ``current_a``. Does not change the chip's state or cycle counts (a model of many independent
        trials). The per-element constants of the last ``devices`` tensor are kept, so repeated calls with
        the same tensor only multiply-add, draw and compare (:func:`~sim_backend.sot.draw_switched`).
        """
        generator = generator or self.generator
        if self.exponent_n != 1 or isinstance(width_s, torch.Tensor):
            ic0, delta = self._cast(current_a.dtype)
            idx = self._indices(devices) if not isinstance(devices, torch.Tensor) else devices
            log_count = log_switching_count(current_a, width_s, ic0[idx], delta[idx], self.tau0_s, self.exponent_n)
            return draw_switched(log_count, generator)
        line = self._sampling_params(devices, current_a.dtype, float(width_s))
        if not (current_a.is_cpu and current_a.numel() > SAMPLING_BLOCK
                and all(t is None or t.shape == current_a.shape for t in line[:3])):
            return draw_switched_line(current_a, line, generator)
        # a large batch of per-element devices, in blocks that stay in cache (the same uniforms in the same order)
        flat, flat_line = current_a.reshape(-1), [t if t is None else t.reshape(-1) for t in line[:3]]
        outcomes, scratch = torch.empty_like(flat), flat.new_empty(SAMPLING_BLOCK)
        for start in range(0, flat.numel(), SAMPLING_BLOCK):
            end = min(start + SAMPLING_BLOCK, flat.numel())
            block_line = (*(t if t is None else t[start:end] for t in flat_line), line[3])
            draw_switched_line(flat[start:end], block_line, generator, out=outcomes[start:end],
                               scratch=scratch[:end - start])
        return outcomes.reshape(current_a.shape)

    def _sampling_params(self, devices: DeviceIndex, dtype: torch.dtype,
                         width_s: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, float | None]:
        """η's line (:func:`~sim_backend.sot.log_count_line`) gathered for ``devices``, with only the clamps
        that can change an outcome; remembered for the last ``devices`` tensor of each dtype and width (a
        tensor changed in place is noticed through its version counter)."""
        key = (dtype, width_s)
        hit = self._sampling_cache.get(key)
        if hit is not None and hit[0] is devices and hit[1] == devices._version:
            return hit[2]
        idx = self._indices(devices) if not isinstance(devices, torch.Tensor) else devices
        intercept, slope, floor, ceiling = log_count_line(self.ic0_a, self.delta, width_s, self.tau0_s)
        floor, ceiling = clamps_that_matter(floor, ceiling, dtype)
        values = (intercept.to(dtype)[idx], slope.to(dtype)[idx], None if floor is None else floor[idx], ceiling)
        if isinstance(devices, torch.Tensor):
            self._sampling_cache[key] = (devices, devices._version, values)
        return values

    def _cast(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ic0_a, delta)`` in ``dtype``."""
        if dtype not in self._cast_cache:
            self._cast_cache[dtype] = (self.ic0_a.to(dtype), self.delta.to(dtype))
        return self._cast_cache[dtype]

    # -- stateful operations ------------------------------------------------------------------

    def apply_waveform(self, devices: DeviceIndex | str | Sequence[str], levels_a: torch.Tensor | Sequence,
                       durations_s: torch.Tensor | Sequence) -> torch.Tensor:
        """Drive a piecewise-constant current waveform through each listed device.

        ``levels_a`` has shape ``(segments,)`` (the same waveform for every device) or
        ``(devices, segments)``; ``durations_s`` broadcasts to the same shape. Devices must be
        distinct. Each nonzero segment counts one cycle. A segment whose magnitude exceeds the
        device's breakdown current destroys it from then on.

        Returns ``m_z`` after every segment, shape ``(devices, segments)``, int8 (0 once destroyed).

        Within a segment the rate is constant, so the chance of switching towards the segment's sign
        is ``1 − exp(−dt/τ(|I|))``. Because the process is memoryless, the state after segment ``k``
        is the sign of the last segment ``j ≤ k`` whose draw fired (or the state before the waveform if
        none did), which lets the whole waveform be drawn at once without a loop over segments.
        """
        idx = self._indices(devices)
        if torch.unique(idx).numel() != idx.numel():
            raise ValueError("apply_waveform: each device may appear once per call")
        levels = torch.as_tensor(levels_a, dtype=torch.float64, device=self.device)
        if levels.dim() == 1:
            levels = levels.expand(idx.numel(), -1)
        durations = torch.as_tensor(durations_s, dtype=torch.float64, device=self.device).expand_as(levels)
        if levels.dim() != 2 or levels.shape[0] != idx.numel():
            raise ValueError(f"apply_waveform: levels of shape {tuple(levels.shape)} for {idx.numel()} devices")
        if bool((durations < 0).any()):
            raise ValueError("apply_waveform: negative segment duration")
        n_dev, n_seg = levels.shape

        # breakdown: the first segment above the limit destroys the device; later segments do nothing
        over = levels.abs() > self.i_breakdown_a[idx, None]
        broken_before = self.destroyed[idx]
        seg = torch.arange(n_seg, device=self.device).expand(n_dev, -1)
        first_over = torch.where(over, seg, n_seg).min(dim=1).values
        alive = (seg < first_over[:, None]) & ~broken_before[:, None]

        direction = torch.sign(levels)
        p = switching_probability(levels.abs(), durations, self.ic0_a[idx, None], self.delta[idx, None],
                                  self.tau0_s, self.exponent_n)
        p = torch.where((direction != 0) & alive, p, torch.zeros_like(p))
        fired = torch.rand(p.shape, generator=self.generator, dtype=p.dtype, device=self.device) < p
        last_fired = torch.where(fired, seg, -1).cummax(dim=1).values
        start = self.m_z[idx].to(torch.int8)
        fired_sign = direction.to(torch.int8).gather(1, last_fired.clamp(min=0))
        m_after = torch.where(last_fired >= 0, fired_sign, start[:, None])
        destroyed_after = ~alive
        m_after = torch.where(destroyed_after, torch.zeros_like(m_after), m_after)

        self.cycles[idx] += ((levels != 0) & (durations > 0)).sum(dim=1)
        self.destroyed[idx] = broken_before | (first_over < n_seg)
        self.m_z[idx] = torch.where(self.destroyed[idx], start, m_after[:, -1])
        return m_after

    def pulse(self, devices: DeviceIndex | str | Sequence[str], current_a: float | torch.Tensor,
              width_s: float) -> torch.Tensor:
        """One rectangular pulse per device (signed current, A). Returns True where ``m_z`` changed."""
        idx = self._indices(devices)
        before = self.m_z[idx].clone()
        current = torch.as_tensor(current_a, dtype=torch.float64, device=self.device).expand(idx.shape)
        after = self.apply_waveform(idx, current[:, None], torch.tensor([width_s], dtype=torch.float64))[:, -1]
        return (after != before) & ~self.destroyed[idx]

    def reset(self, devices: DeviceIndex | str | Sequence[str]) -> torch.Tensor:
        """The reset pulse (``reset_width_s``, ``reset_current_a``). Returns True where ``m_z`` is now −1."""
        idx = self._indices(devices)
        self.apply_waveform(idx, self.reset_current_a[idx, None],
                            torch.tensor([self.reset_width_s], dtype=torch.float64))
        return (self.m_z[idx] == -1) & ~self.destroyed[idx]

    def read(self, devices: DeviceIndex | str | Sequence[str], n_readings: int = 1) -> torch.Tensor:
        """AHE readings ``R_xy`` in Ω, shape ``(devices, n_readings)``; ``inf`` for a destroyed device.

        The read current is far below ``Ic0`` and does not disturb the state.
        """
        idx = self._indices(devices)
        clean = self.r0_ohm[idx] + 0.5 * self.delta_r_ahe_ohm[idx] * self.m_z[idx].to(torch.float64)
        noise = torch.randn((idx.numel(), n_readings), generator=self.generator, dtype=torch.float64,
                            device=self.device)
        readings = clean[:, None] + self.read_noise_ohm * noise
        return torch.where(self.destroyed[idx, None], torch.full_like(readings, OPEN_CIRCUIT_OHM), readings)

    def channel_resistance(self, devices: DeviceIndex | str | Sequence[str]) -> torch.Tensor:
        """Two-terminal channel resistance in Ω; ``inf`` for a destroyed device."""
        idx = self._indices(devices)
        return torch.where(self.destroyed[idx], torch.full_like(self.r_ch_ohm[idx], OPEN_CIRCUIT_OHM),
                           self.r_ch_ohm[idx])

    def dc_sweep(self, devices: DeviceIndex | str | Sequence[str], currents_a: Sequence[float] | torch.Tensor,
                 dwell_s: float) -> torch.Tensor:
        """Step a DC current through ``currents_a`` with ``dwell_s`` per step, reading ``R_xy`` at each step.

        Returns readings of shape ``(devices, steps)`` in Ω. This is the current hysteresis loop.
        """
        idx = self._indices(devices)
        currents = torch.as_tensor(currents_a, dtype=torch.float64, device=self.device)
        m = self.apply_waveform(idx, currents, torch.full_like(currents, dwell_s)).to(torch.float64)
        noise = torch.randn(m.shape, generator=self.generator, dtype=torch.float64, device=self.device)
        readings = self.r0_ohm[idx, None] + 0.5 * self.delta_r_ahe_ohm[idx, None] * m + self.read_noise_ohm * noise
        return torch.where(m == 0, torch.full_like(readings, OPEN_CIRCUIT_OHM), readings)
