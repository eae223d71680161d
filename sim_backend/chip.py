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
from collections.abc import Callable, Mapping, Sequence
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
from sim_backend.effective_switching import BarParameters, LogCountTable, pinned_log_count, pulse_log_count
from sim_backend.effects.device_effects import DeviceEffects
from sim_backend.effects.effect_settings import EffectConfigError
from sim_backend.effects.parameter_drift import DriftState
from sim_backend.effects.telegraph_noise import TelegraphState
from sim_backend.first_order_lag import settle
from sim_backend.macrospin import MacrospinParameters, ShortPulseError, sllg_probability, sllg_switched
from sim_backend.sot import (
    LOGISTIC_WIDTH_FACTOR,
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
EFFECT_STREAMS = 0x5EFF  # mixed into the seed for the effects' own random streams
# the time one stateless trial keeps the shipped station busy, by which the simulator's trials age drifting devices:
# the 100 µs reset and the 10 µs bias pulse each between their balancing lobes (4 widths on either side, through the
# station's DC block), two gaps and two read windows at NPLC 0.01 (instruments.trials.TrialTiming:
# 9 × 100 + 9 × 10 + 2 × (5 + 200) µs)
MODELED_TRIAL_S = 1.4e-3
MACROSPIN_REPETITIONS = 2000  # macrospins per (device, current) behind a short pulse's switching probability
PULSE_FRACTION = 0.1  # a segment counts as a pulse (a cycle) from a tenth of the nominal Ic0 up
TABLE_POINTS = 256  # per device: a grid step of 3 Ic0/255, half a logistic width of a 10 µs curve
TABLE_TOP_FACTOR = 3.0  # a device's sampling table spans 0 … 3 Ic0 (beyond, every pulse switches as at the top)

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
    "pinning": ("", False),  # the device's own p of effects.reversal_pinning (a cross with a known pinning site)
    "wear": ("", False),     # the device's own wear rate of effects.drift (ln Ic0 per 10^6 pulses)
}
_TOP_KEYS = {"format", "name", "seed", "material", "variation", "reset", "devices", "notes", "calibration",
             "synapses",  # synapses: the DW synapse model (sim_backend.dw_synapse), validated here too
             "dw_tracks",  # dw_tracks: DW synapse tracks of that model beside the Hall bars (sim_backend.dw_track)
             "effects"}  # effects: the Hall bars' non-idealities (sim_backend.effects.device_effects)


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
    effects: DeviceEffects = field(default_factory=DeviceEffects)  # the Hall bars' non-idealities (``effects:``)

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
            effects = DeviceEffects.from_mapping(raw.get("effects"))
        except (SynapseConfigError, EffectConfigError) as exc:
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
            _check_device_effects(values, effects, where, entry)
            devices.append({"id": device_id, **values})
        for track_id in tracks.ids if tracks is not None else ():
            if track_id in seen:
                raise ChipConfigError(f"dw_tracks.tracks: {track_id!r} is also the id of a Hall bar")
        return cls(name=str(raw.get("name", "chip")), seed=seed, material=material, variation=variation,
                   reset=reset, devices=devices, tracks=tracks, effects=effects)


def _check_device_effects(values: Mapping[str, float], effects: DeviceEffects, where: str,
                          entry: Mapping[str, Any]) -> None:
    """A device's own ``pinning`` (a probability) and ``wear`` (≥ 0) need their effect switched on."""
    for key, effect, name in (("pinning", effects.reversal_pinning, "reversal_pinning"),
                              ("wear", effects.drift, "drift")):
        if key not in values:
            continue
        if effect is None:
            raise ChipConfigError(f"{where}{key}: the chip's effects.{name} is off; switch it on to give a device "
                                  f"its own {key}")
        low, high = 0.0, 1.0 if key == "pinning" else math.inf
        if not low <= values[key] <= high:
            need = "a probability in [0, 1]" if key == "pinning" else "≥ 0"
            raise ChipConfigError(f"{where}{key}: must be {need}, got {entry[key]!r}")


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
        # what the last ``devices`` tensor of the sampler implies and the drift does not change (the trials per
        # device, the positions on the tables' grid): kept across the drift's steps
        self._layout_cache: dict[tuple[Any, ...], tuple[Any, int, Any]] = {}
        # the DW synapse tracks, on random streams of their own (the Hall bars' draws do not change)
        self.tracks = DWTracks(spec.tracks, spec.seed) if spec.tracks is not None else None
        self._init_effects(spec, n, width, mat["channel_length"])

    def _init_effects(self, spec: ChipSpec, n: int, width: np.ndarray, length_m: float) -> None:
        """The Hall bars' non-idealities (``effects:``), each on a random stream of its own, so that switching
        outcomes and device parameters of a chip do not change when an effect is switched on or off."""
        effects = self.effects = spec.effects
        streams = [int(s) for s in np.random.SeedSequence([spec.seed, EFFECT_STREAMS]).generate_state(3)]
        heating, field_, pinning = effects.joule_heating, effects.bias_field, effects.reversal_pinning
        self.r_th = heating.thermal_resistance(self.width_m, length_m) if heating is not None else None
        self.pin_probability = (pinning.device_probabilities(n, torch.Generator().manual_seed(streams[0]))
                                .to(self.device) if pinning is not None else None)
        self.drift = DriftState(effects.drift, n, streams[1], self.device) if effects.drift is not None else None
        # a device's own pinning or wear (devices[].pinning, .wear) replaces its draw; the others keep theirs
        for i, dev in enumerate(spec.devices):
            if "pinning" in dev and self.pin_probability is not None:
                self.pin_probability[i] = dev["pinning"]
            if "wear" in dev and self.drift is not None:
                self.drift.wear_rate[i] = dev["wear"]
        self.telegraph = (TelegraphState(effects.telegraph_noise, self.width_m, streams[2])
                          if effects.telegraph_noise is not None else None)
        self.chirality = field_.chirality if field_ is not None else 1
        self.field_factor = field_.ic0_factor if field_ is not None else 1.0
        self.time_s = 0.0  # the chip's own clock: what its operations and idle times have taken
        self.temperature_k = torch.full((n,), effects.temperature.ambient_k, dtype=torch.float64, device=self.device)
        self.parameters_version = 0  # bumped when drift has moved the parameters (sampling tables are rebuilt)
        self.trial_time_s = MODELED_TRIAL_S

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
        """Restart the switching/read-noise random stream from ``seed`` (the device parameters stay), the DW tracks'
        landing and read-noise streams, and the effects' own streams (drift, telegraph noise)."""
        self.generator.manual_seed(int(seed))
        if self.tracks is not None:
            self.tracks.reseed(seed)
        streams = [int(s) for s in np.random.SeedSequence([int(seed), EFFECT_STREAMS]).generate_state(3)]
        if self.drift is not None:
            self.drift.generator.manual_seed(streams[1])
        if self.telegraph is not None:
            self.telegraph.generator.manual_seed(streams[2])

    def to(self, device: str | torch.device) -> Chip:
        """A copy of this chip (parameters and state) on another torch device."""
        other = Chip(self.spec, device=device)
        for name in ("m_z", "cycles", "destroyed", "temperature_k"):
            setattr(other, name, getattr(self, name).to(device))
        other.tracks = self.tracks  # the DW tracks live on the CPU (the emulated station's): shared, not copied
        other.time_s, other.drift, other.telegraph = self.time_s, self.drift, self.telegraph
        if other.drift is not None:
            other.drift.device = other.device
        other.parameters_version = self.parameters_version
        return other

    def state_dict(self) -> dict[str, Any]:
        """What the chip has become since it was built (its parameters come from its file): magnetization,
        cycles, breakdowns, the clock, the bars' temperatures, the drift, the telegraph levels and the random
        stream, so that a checkpointed simulation continues exactly."""
        return {"m_z": self.m_z.clone(), "cycles": self.cycles.clone(), "destroyed": self.destroyed.clone(),
                "time_s": self.time_s, "temperature_k": self.temperature_k.clone(),
                "generator": self.generator.get_state(),
                "drift": None if self.drift is None else self.drift.state_dict(),
                "telegraph": None if self.telegraph is None else self.telegraph.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (of a chip built from the same file)."""
        for name in ("m_z", "cycles", "destroyed", "temperature_k"):
            setattr(self, name, state[name].to(self.device))
        self.time_s = float(state["time_s"])
        self.generator.set_state(state["generator"])
        if self.drift is not None and state.get("drift") is not None:
            self.drift.load_state_dict(state["drift"])
        if self.telegraph is not None and state.get("telegraph") is not None:
            self.telegraph.load_state_dict(state["telegraph"])
        self.parameters_version += 1
        self._sampling_cache.clear()
        self._layout_cache.clear()

    # -- the effects: parameters at temperature, time, drift ---------------------------------

    @property
    def ambient_k(self) -> float:
        """The room's temperature now (K): the material's reference, moved by the ambient drift."""
        offset = self.drift.ambient_offset_k if self.drift is not None else 0.0
        return self.effects.temperature.ambient_k + offset

    def bars(self, idx: torch.Tensor | None = None) -> BarParameters:
        """The parameters of devices ``idx`` (all: ``None``) as they are now: Ic0 with the bias field and the drift,
        Δ with the drift (both at the reference temperature), the cold channel, heating and pinning."""
        ic0, delta = self.ic0_a * self.field_factor, self.delta
        if self.drift is not None:
            ic0_drift, delta_drift = self.drift.factors()
            ic0, delta = ic0 * ic0_drift, delta * delta_drift
        pick = (lambda t: t) if idx is None else (lambda t: t[idx])
        return BarParameters(pick(ic0), pick(delta), pick(self.r_ch_ohm), self.ambient_k,
                             None if self.r_th is None else pick(self.r_th),
                             None if self.pin_probability is None else pick(self.pin_probability))

    def sync(self, time_s: float) -> None:
        """Let the chip catch up with a clock (the emulated bench's): it idles from its own time to ``time_s``."""
        if time_s > self.time_s:
            self.idle(time_s - self.time_s)

    def idle(self, seconds: float) -> None:
        """``seconds`` pass with no current: the bars cool towards the room, the parameters drift."""
        if seconds <= 0:
            return
        self._pass_time(seconds, None)
        if self.r_th is not None and self.effects.joule_heating is not None:
            keep = math.exp(-seconds / self.effects.joule_heating.time_s)
            self.temperature_k = self.ambient_k + (self.temperature_k - self.ambient_k) * keep
        else:
            self.temperature_k.fill_(self.ambient_k)

    def _pass_time(self, seconds: float, pulses: torch.Tensor | None) -> None:
        self.time_s += seconds
        if self.drift is not None and self.drift.advance(seconds, pulses):
            self.parameters_version += 1  # the sampling tables and curves follow the drift's step
            self._sampling_cache.clear()

    def age(self, trials: torch.Tensor) -> None:
        """Stateless trials (``trials`` per device) kept the station busy and pulsed the devices: with drift, the
        devices age by the time (:attr:`trial_time_s` a trial, one device at a time) and two pulses per trial."""
        if self.drift is None:
            return
        trials = trials.detach().to("cpu", torch.float64)
        self._pass_time(float(trials.sum()) * self.trial_time_s, 2.0 * trials)

    # -- stateless sampling (for training backends and benchmarks) ---------------------------

    def short_pulse_check(self, width_s: float | torch.Tensor, what: str = "pulse") -> None:
        """Refuse a pulse too short for the Néel–Brown closed form on a chip whose ``short_pulses`` say so."""
        effects = self.effects
        if effects.short_pulse_model == "closed_form":
            return
        shortest = float(torch.as_tensor(width_s).min()) if torch.as_tensor(width_s).numel() else math.inf
        if shortest < effects.short_pulse_min_s and effects.short_pulse_model == "refuse":
            raise ShortPulseError(f"a {what} of {shortest * 1e9:.3g} ns is below "
                                  f"{effects.short_pulse_min_s * 1e9:g} ns, where the thermally activated "
                                  "(Néel–Brown) closed form does not hold; the chip's "
                                  "effects.short_pulses.model: macrospin simulates it")

    def log_count(self, devices: DeviceIndex, current_a: torch.Tensor, width_s: float | torch.Tensor) -> torch.Tensor:
        """``η`` with ``P_sw = 1 − exp(−e^η)`` of one pulse from the reset state at the room's temperature, with
        every effect of the chip (heating along the pulse, pinning, field, drift). In float64."""
        idx = self._indices(devices) if not isinstance(devices, torch.Tensor) else devices
        self.short_pulse_check(width_s)
        current = current_a.to(torch.float64)
        bars = self.bars(idx)
        laws = self.effects.temperature
        steady = start = None
        heating = self.effects.joule_heating
        if heating is not None and bars.r_th is not None:
            steady = bars.ambient_k + heating.steady_rise(current, bars.r_ch_ohm, bars.r_th, laws)
            start = torch.full_like(steady, bars.ambient_k)
        eta = pulse_log_count(current, width_s, bars, laws, self.tau0_s, self.exponent_n, start, steady,
                              heating.time_s if heating is not None else None)
        if bars.pin is not None and self.effects.reversal_pinning is not None:
            temperature = steady if steady is not None else torch.full_like(current, bars.ambient_k)
            overdrive = current / (bars.ic0_a * laws.ic0_factor(temperature))
            eta = pinned_log_count(eta, overdrive, bars.pin, self.effects.reversal_pinning)
        return eta

    @property
    def curve_shaped(self) -> bool:
        """Whether an effect bends ``η(I)`` away from a line (heating, pinning, ``n ≠ 1``)."""
        return self.r_th is not None or self.pin_probability is not None or self.exponent_n != 1

    def switching_probability(self, devices: DeviceIndex, current_a: torch.Tensor,
                              width_s: float | torch.Tensor) -> torch.Tensor:
        """Probability that one pulse switches each device out of the opposite state.

        ``devices`` (a long tensor broadcastable with ``current_a``) picks the device of each
        element; ``current_a`` is the pulse magnitude in the switching direction. Computed in the
        dtype of ``current_a``, with every effect of the chip (:meth:`log_count`).
        """
        if self.effects.ideal:
            self.short_pulse_check(width_s)
            ic0, delta = self._cast(current_a.dtype)
            idx = self._indices(devices) if not isinstance(devices, torch.Tensor) else devices
            return switching_probability(current_a, width_s, ic0[idx], delta[idx], self.tau0_s, self.exponent_n)
        if self._macrospin_width(width_s):
            idx = self._indices(devices) if not isinstance(devices, torch.Tensor) else devices
            bars = self.bars(idx)
            return sllg_probability(bars.ic0_a, bars.delta, current_a.to(torch.float64), float(width_s),
                                    MACROSPIN_REPETITIONS, params=self.macrospin_parameters(),
                                    generator=self.generator).to(current_a.dtype)
        eta = self.log_count(devices, current_a, width_s)
        return (-torch.expm1(-torch.exp(eta))).to(current_a.dtype)

    def _macrospin_width(self, width_s: float | torch.Tensor) -> bool:
        """Whether pulses of ``width_s`` are the macrospin's (a chip with ``short_pulses.model: macrospin``)."""
        return (self.effects.short_pulse_model == "macrospin" and not isinstance(width_s, torch.Tensor)
                and width_s < self.effects.short_pulse_min_s)

    def logistic_view(self, width_s: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Each device's logistic ``(I50, w_I)`` in A now: the current where its curve crosses 1/2 (bisection on
        :meth:`log_count`) and ``w_I = 0.69/(dη/dI)`` there (physics.md's ``0.69·Ic0/Δ`` for the ideal bar)."""
        idx = torch.arange(len(self), device=self.device)
        bars = self.bars(idx)
        low, high = torch.zeros_like(bars.ic0_a), 3.0 * bars.ic0_a
        target = math.log(math.log(2.0))
        for _ in range(60):
            middle = 0.5 * (low + high)
            above = self.log_count(idx, middle, width_s) > target
            high, low = torch.where(above, middle, high), torch.where(above, low, middle)
        i50 = 0.5 * (low + high)
        step = 1e-4 * bars.ic0_a
        slope = (self.log_count(idx, i50 + step, width_s) - self.log_count(idx, i50 - step, width_s)) / (2 * step)
        return i50, LOGISTIC_WIDTH_FACTOR / slope

    def sampling_model(self, width_s: float) -> tuple[str, Any]:
        """How :meth:`sample_switching` draws for pulses of ``width_s`` now: ``("line", (intercept, slope, floor,
        ceiling))`` per device (float64) where ``η`` is a line in ``I``, else ``("table", LogCountTable)``.
        Remembered until the drift moves the parameters (:attr:`parameters_version`)."""
        key = ("model", width_s)
        hit = self._sampling_cache.get(key)
        if hit is not None:
            return hit
        self.short_pulse_check(width_s)
        if self.curve_shaped:
            # the grid spans the devices as built (the drift moves the curves on it, not the grid), so the
            # per-element positions on it outlive the drift's steps
            top = TABLE_TOP_FACTOR * self.ic0_a * self.field_factor
            idx = torch.arange(len(self), device=self.device)
            model: tuple[str, Any] = ("table", LogCountTable(
                lambda currents: self.log_count(idx[:, None], currents, width_s), top, TABLE_POINTS))
        else:
            bars = self.bars()
            model = ("line", log_count_line(bars.ic0_a, bars.delta, width_s, self.tau0_s))
        self._sampling_cache[key] = model
        return model

    def sample_switching(self, devices: DeviceIndex, current_a: torch.Tensor, width_s: float | torch.Tensor,
                         generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw switched (1) / not (0) for each (device, current) pair, each from the reset state.

        Follows :meth:`switching_probability` (the same arguments); outcomes have the dtype of
        ``current_a``. Does not change the chip's magnetization or cycle counts (a model of many independent
        trials); with drift on, the trials age the devices (:meth:`age`). The per-element constants of the last
        ``devices`` tensor are kept, so repeated calls with the same tensor only multiply-add, draw and compare
        (:func:`~sim_backend.sot.draw_switched`).
        """
        generator = generator or self.generator
        if self._macrospin_width(width_s):
            idx = self._indices(devices) if not isinstance(devices, torch.Tensor) else devices
            bars = self.bars(idx)
            outcomes = sllg_switched(bars.ic0_a, bars.delta, current_a.to(torch.float64), float(width_s),
                                     params=self.macrospin_parameters(), generator=generator).to(current_a.dtype)
        elif isinstance(width_s, torch.Tensor) or (self.exponent_n != 1 and not self.curve_shaped):
            outcomes = draw_switched(self.log_count(devices, current_a, width_s).to(current_a.dtype), generator) \
                if not self.effects.ideal else draw_switched(self._ideal_log_count(devices, current_a, width_s),
                                                             generator)
        elif self.curve_shaped:
            outcomes = self._draw_from_table(devices, current_a, float(width_s), generator)
        else:
            outcomes = self._draw_from_line(devices, current_a, float(width_s), generator)
        if self.drift is not None:
            self.age(self._trials_per_device(devices, current_a))
        return outcomes

    def _trials_per_device(self, devices: DeviceIndex, current_a: torch.Tensor) -> torch.Tensor:
        """How many of the pairs of (``devices``, ``current_a``) fall on each device (remembered for the last
        ``devices`` tensor): broadcasting repeats every element of ``devices`` alike."""
        counts, elements = self._for_devices(self._layout_cache, ("counts",), devices, lambda idx: (
            torch.bincount(idx.reshape(-1).to("cpu"), minlength=len(self)).to(torch.float64), idx.numel()))
        return counts * (current_a.numel() // max(elements, 1))

    def _ideal_log_count(self, devices: DeviceIndex, current_a: torch.Tensor, width_s: float | torch.Tensor):
        self.short_pulse_check(width_s)
        ic0, delta = self._cast(current_a.dtype)
        idx = self._indices(devices) if not isinstance(devices, torch.Tensor) else devices
        return log_switching_count(current_a, width_s, ic0[idx], delta[idx], self.tau0_s, self.exponent_n)

    def _draw_from_line(self, devices: DeviceIndex, current_a: torch.Tensor, width_s: float,
                        generator: torch.Generator) -> torch.Tensor:
        line = self._sampling_params(devices, current_a.dtype, width_s)
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

    def _draw_from_table(self, devices: DeviceIndex, current_a: torch.Tensor, width_s: float,
                         generator: torch.Generator) -> torch.Tensor:
        _, table = self.sampling_model(width_s)
        dtype = current_a.dtype
        # per device of ``devices``, broadcast against the currents; every table of the chip has the same grid (the
        # devices as built, :meth:`sampling_model`), so the positions on it hold across the drift's rebuilds
        gathered = self._for_devices(self._layout_cache, ("grid", dtype), devices,
                                     lambda idx: table.gathered(idx, dtype))
        values_key = ("table", dtype, width_s)  # the table's values in the currents' dtype, until the next rebuild
        if values_key not in self._sampling_cache:
            self._sampling_cache[values_key] = (table.values64.to(dtype), table.slopes64.to(dtype))
        values, slopes = self._sampling_cache[values_key]
        per_element = all(t.shape == current_a.shape for t in gathered)
        if not (current_a.is_cpu and current_a.numel() > SAMPLING_BLOCK and per_element):
            return draw_switched(table.log_count(current_a, gathered, values, slopes), generator)
        # a large batch of per-element devices, in blocks that stay in cache (the same uniforms in the same order)
        flat, flat_gathered = current_a.reshape(-1), [t.reshape(-1) for t in gathered]
        outcomes = torch.empty_like(flat)
        for start in range(0, flat.numel(), SAMPLING_BLOCK):
            end = min(start + SAMPLING_BLOCK, flat.numel())
            block = tuple(t[start:end] for t in flat_gathered)
            draw_switched(table.log_count(flat[start:end], block, values, slopes), generator, out=outcomes[start:end])
        return outcomes.reshape(current_a.shape)

    def _sampling_params(self, devices: DeviceIndex, dtype: torch.dtype,
                         width_s: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, float | None]:
        """η's line (:func:`~sim_backend.sot.log_count_line`) gathered for ``devices``, with only the clamps
        that can change an outcome; remembered for the last ``devices`` tensor of each dtype and width (a
        tensor changed in place is noticed through its version counter)."""
        def gather(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, float | None]:
            intercept, slope, floor, ceiling = self.sampling_model(width_s)[1]
            floor, ceiling = clamps_that_matter(floor, ceiling, dtype)
            return intercept.to(dtype)[idx], slope.to(dtype)[idx], None if floor is None else floor[idx], ceiling

        return self._for_devices(self._sampling_cache, (dtype, width_s), devices, gather)

    def _for_devices(self, cache: dict, key: tuple[Any, ...], devices: DeviceIndex,
                     compute: Callable[[torch.Tensor], Any]) -> Any:
        """``compute(indices of devices)``, remembered in ``cache`` under ``key`` for the last ``devices`` tensor
        (a tensor changed in place is noticed through its version counter; other indices are not remembered)."""
        hit = cache.get(key)
        version = getattr(devices, "_version", None)
        if hit is not None and hit[0] is devices and hit[1] == version:
            return hit[2]
        value = compute(self._indices(devices) if not isinstance(devices, torch.Tensor) else devices)
        if isinstance(devices, torch.Tensor):
            cache[key] = (devices, version, value)
        return value

    def _cast(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ic0_a, delta)`` in ``dtype``."""
        if dtype not in self._cast_cache:
            self._cast_cache[dtype] = (self.ic0_a.to(dtype), self.delta.to(dtype))
        return self._cast_cache[dtype]

    # -- stateful operations ------------------------------------------------------------------

    def currents_for_voltage(self, device: DeviceIndex | str, levels_v: torch.Tensor,
                             source_impedance_ohm: float) -> torch.Tensor:
        """The currents (A) a voltage source behind ``source_impedance_ohm`` drives through a device's channel for
        ``levels_v``: ``V/(R_ch + R_out)``, with the channel warmed by its own current where heating is on."""
        index = int(self._indices(device)[0])
        levels = torch.as_tensor(levels_v, dtype=torch.float64, device=self.device)
        heating = self.effects.joule_heating
        r_ch = self.r_ch_ohm[index] * self.effects.temperature.resistance_factor(
            torch.as_tensor(self.ambient_k, dtype=torch.float64))
        if heating is None or self.r_th is None:
            return levels / (r_ch + source_impedance_ohm)
        return heating.current_for_voltage(levels, r_ch, source_impedance_ohm, self.r_th[index],
                                           self.effects.temperature)

    def drive(self, devices: DeviceIndex | str | Sequence[str], levels_a: torch.Tensor | Sequence,
              durations_s: torch.Tensor | Sequence) -> WaveformResponse:
        """Drive a piecewise-constant current waveform through each listed device (see :meth:`apply_waveform`);
        returns the magnetization and the bar's temperature after every segment."""
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
        # a pulse: a segment whose current could switch or wear the bar (not the read current, nor the small
        # currents a DC block lets through between pulses)
        carrying = (levels.abs() >= PULSE_FRACTION * self.nominal_ic0_a[idx, None]) & (durations > 0)
        if self.effects.short_pulse_model != "closed_form" and bool(carrying.any()):
            self.short_pulse_check(durations[carrying], "segment carrying current")

        # breakdown: the first segment above the limit destroys the device; later segments do nothing
        over = levels.abs() > self.i_breakdown_a[idx, None]
        broken_before = self.destroyed[idx]
        seg = torch.arange(n_seg, device=self.device).expand(n_dev, -1)
        first_over = torch.where(over, seg, n_seg).min(dim=1).values
        alive = (seg < first_over[:, None]) & ~broken_before[:, None]

        direction = torch.sign(levels) * self.chirality
        magnitude = levels.abs()
        temperatures = self._temperatures(idx, magnitude, durations)
        if self.effects.ideal:
            p = switching_probability(magnitude, durations, self.ic0_a[idx, None], self.delta[idx, None],
                                      self.tau0_s, self.exponent_n)
        else:
            p = -torch.expm1(-torch.exp(self._segment_log_count(idx, magnitude, durations, temperatures)))
        p = torch.where((levels != 0) & alive, p, torch.zeros_like(p))
        fired = torch.rand(p.shape, generator=self.generator, dtype=p.dtype, device=self.device) < p
        short = carrying & alive & (durations < self.effects.short_pulse_min_s)
        if self.effects.short_pulse_model == "macrospin" and bool(short.any()):
            fired = torch.where(short, self._macrospin_fired(idx, magnitude, durations, short), fired)
        if self.chirality == 0:  # no bias field: a reversal ends up or down at random
            direction = torch.where(torch.rand(p.shape, generator=self.generator, dtype=p.dtype,
                                               device=self.device) < 0.5, 1.0, -1.0)
        last_fired = torch.where(fired, seg, -1).cummax(dim=1).values
        start = self.m_z[idx].to(torch.int8)
        fired_sign = direction.to(torch.int8).gather(1, last_fired.clamp(min=0))
        m_after = torch.where(last_fired >= 0, fired_sign, start[:, None])
        destroyed_after = ~alive
        m_after = torch.where(destroyed_after, torch.zeros_like(m_after), m_after)

        pulses = carrying.sum(dim=1)
        self.cycles[idx] += pulses
        self.destroyed[idx] = broken_before | (first_over < n_seg)
        self.m_z[idx] = torch.where(self.destroyed[idx], start, m_after[:, -1])
        self._after_waveform(idx, durations, pulses, temperatures)
        return WaveformResponse(m_after, temperatures[1])

    def macrospin_parameters(self) -> MacrospinParameters:
        """The macrospin twin's shared parameters: the bias field's magnitude and anisotropy (the chirality stays
        the chip's), the room's temperature."""
        field_ = self.effects.bias_field
        base = MacrospinParameters()
        return MacrospinParameters(anisotropy_t=field_.anisotropy_t if field_ is not None else base.anisotropy_t,
                                   bias_field_t=abs(field_.field_t) if field_ is not None else base.bias_field_t,
                                   temperature_k=self.ambient_k)

    def _macrospin_fired(self, idx: torch.Tensor, magnitude: torch.Tensor, durations: torch.Tensor,
                         short: torch.Tensor) -> torch.Tensor:
        """Whether each short segment switched its device, from one stochastic-LLG run of the device's twin per
        segment (from the state the segment's current switches out of)."""
        bars = self.bars(idx[:, None])
        fired = torch.zeros_like(short)
        params = self.macrospin_parameters()
        for width in torch.unique(durations[short]).tolist():
            at = short & (durations == width)
            outcome = sllg_switched(bars.ic0_a.expand_as(at)[at], bars.delta.expand_as(at)[at], magnitude[at],
                                    float(width), params=params, generator=self.generator)
            fired[at] = outcome.to(torch.bool)
        return fired

    def _temperatures(self, idx: torch.Tensor, magnitude: torch.Tensor,
                      durations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(start, end, steady)`` temperature (K) of every segment (``steady`` ``None`` without heating)."""
        heating = self.effects.joule_heating
        if heating is None or self.r_th is None:
            room = torch.full_like(magnitude, self.ambient_k)
            return room, room, None
        laws = self.effects.temperature
        steady = self.ambient_k + heating.steady_rise(magnitude, self.r_ch_ohm[idx, None], self.r_th[idx, None], laws)
        starts, ends = settle(self.temperature_k[idx], steady, durations, heating.time_s)
        return starts, ends, steady

    def _segment_log_count(self, idx: torch.Tensor, magnitude: torch.Tensor, durations: torch.Tensor,
                           temperatures: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]) -> torch.Tensor:
        """``η`` of every segment with the chip's effects, from where the last segment left the temperature."""
        bars = self.bars(idx[:, None])
        laws = self.effects.temperature
        start, _, steady = temperatures
        heating = self.effects.joule_heating
        width = durations.clamp(min=1e-300)  # a zero-length segment: η = −inf below (P = 0)
        eta = pulse_log_count(magnitude, width, bars, laws, self.tau0_s, self.exponent_n, start, steady,
                              heating.time_s if heating is not None else None)
        eta = torch.where(durations > 0, eta, torch.full_like(eta, -math.inf))
        if bars.pin is not None and self.effects.reversal_pinning is not None:
            at = steady if steady is not None else start
            overdrive = magnitude / (bars.ic0_a * laws.ic0_factor(at))
            eta = pinned_log_count(eta, overdrive, bars.pin, self.effects.reversal_pinning)
        return eta

    def _after_waveform(self, idx: torch.Tensor, durations: torch.Tensor, pulses: torch.Tensor,
                        temperatures: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]) -> None:
        """The chip's clock, the other bars' cooling, the driven bars' temperature and the drift after a waveform."""
        elapsed = float(durations.sum(dim=1).max()) if durations.numel() else 0.0
        ends = temperatures[1]
        if self.r_th is not None and self.effects.joule_heating is not None and elapsed > 0:
            keep = math.exp(-elapsed / self.effects.joule_heating.time_s)
            self.temperature_k = self.ambient_k + (self.temperature_k - self.ambient_k) * keep
            self.temperature_k[idx] = ends[:, -1] if ends.shape[1] else self.temperature_k[idx]
        per_device = torch.zeros(len(self), dtype=torch.float64)
        per_device[idx.to("cpu")] = pulses.to("cpu", torch.float64)
        self._pass_time(elapsed, per_device)
        if self.r_th is None or self.effects.joule_heating is None:
            self.temperature_k.fill_(self.ambient_k)

    def apply_waveform(self, devices: DeviceIndex | str | Sequence[str], levels_a: torch.Tensor | Sequence,
                       durations_s: torch.Tensor | Sequence) -> torch.Tensor:
        """Drive a piecewise-constant current waveform through each listed device.

        ``levels_a`` has shape ``(segments,)`` (the same waveform for every device) or
        ``(devices, segments)``; ``durations_s`` broadcasts to the same shape. Devices must be
        distinct. Each segment of at least a tenth of the nominal Ic0 counts one cycle. A segment whose magnitude
        exceeds the device's breakdown current destroys it from then on.

        Returns ``m_z`` after every segment, shape ``(devices, segments)``, int8 (0 once destroyed).

        Within a segment the rate is that of the segment's current at the bar's temperature along it (constant
        without heating), so the chance of switching towards the segment's sign (times the bias field's
        chirality) is ``1 − exp(−∫dt/τ)``. Because the process is memoryless, the state after segment ``k`` is the
        sign of the last segment ``j ≤ k`` whose draw fired (or the state before the waveform if none did), which
        lets the whole waveform be drawn at once without a loop over segments. The waveform takes its duration
        on the chip's clock (:attr:`time_s`).
        """
        return self.drive(devices, levels_a, durations_s).m_z

    def pulse(self, devices: DeviceIndex | str | Sequence[str], current_a: float | torch.Tensor,
              width_s: float) -> torch.Tensor:
        """One rectangular pulse per device (signed current, A). Returns True where ``m_z`` changed."""
        idx = self._indices(devices)
        before = self.m_z[idx].clone()
        current = torch.as_tensor(current_a, dtype=torch.float64, device=self.device).expand(idx.shape)
        after = self.apply_waveform(idx, current[:, None], torch.tensor([width_s], dtype=torch.float64))[:, -1]
        return (after != before) & ~self.destroyed[idx]

    def reset(self, devices: DeviceIndex | str | Sequence[str]) -> torch.Tensor:
        """The reset pulse (``reset_width_s``, ``reset_current_a``, its sign turned by the bias field's chirality so
        that it switches up→down). Returns True where ``m_z`` is now −1."""
        idx = self._indices(devices)
        sign = -1.0 if self.chirality < 0 else 1.0
        self.apply_waveform(idx, sign * self.reset_current_a[idx, None],
                            torch.tensor([self.reset_width_s], dtype=torch.float64))
        return (self.m_z[idx] == -1) & ~self.destroyed[idx]

    def hall_readings(self, index: int, states: torch.Tensor, times_s: torch.Tensor | None = None,
                      temperature_k: torch.Tensor | None = None) -> torch.Tensor:
        """Noisy ``R_xy`` readings (Ω) of device ``index`` in the magnetization ``states`` (0: destroyed → ``inf``):
        ``R0 + ΔR_AHE(T)/2 · m_z`` plus Gaussian read noise and, with telegraph noise on, the fluctuator's level at
        ``times_s`` (in time order; default the chip's clock). ``temperature_k``: the bar's temperature at each
        reading (default the room's)."""
        states = states.to(self.device)
        noise = torch.randn(states.shape, generator=self.generator, dtype=torch.float64, device=self.device)
        amplitude = 0.5 * self.delta_r_ahe_ohm[index]
        if temperature_k is not None and not self.effects.ideal:
            amplitude = amplitude * self.effects.temperature.hall_factor(temperature_k.to(self.device))
        readings = self.r0_ohm[index] + amplitude * states.to(torch.float64) + self.read_noise_ohm * noise
        if self.telegraph is not None:
            times = torch.full(states.shape, self.time_s, dtype=torch.float64) if times_s is None \
                else torch.as_tensor(times_s, dtype=torch.float64).expand(states.shape)
            readings = readings + self.telegraph.offsets(torch.tensor([index]), times.reshape(1, -1)).reshape(
                states.shape).to(self.device)
        return torch.where(states == 0, torch.full_like(readings, OPEN_CIRCUIT_OHM), readings)

    def read(self, devices: DeviceIndex | str | Sequence[str], n_readings: int = 1,
             spacing_s: float = 0.0) -> torch.Tensor:
        """AHE readings ``R_xy`` in Ω, shape ``(devices, n_readings)``; ``inf`` for a destroyed device.

        The read current is far below ``Ic0`` and does not disturb the state; the readings are ``spacing_s``
        apart from the chip's clock on (what telegraph noise sees), at each bar's present temperature, and take
        that time on the chip's clock.
        """
        idx = self._indices(devices)
        clean_amplitude = 0.5 * self.delta_r_ahe_ohm[idx]
        if not self.effects.ideal:
            clean_amplitude = clean_amplitude * self.effects.temperature.hall_factor(self.temperature_k[idx])
        clean = self.r0_ohm[idx] + clean_amplitude * self.m_z[idx].to(torch.float64)
        noise = torch.randn((idx.numel(), n_readings), generator=self.generator, dtype=torch.float64,
                            device=self.device)
        readings = clean[:, None] + self.read_noise_ohm * noise
        if self.telegraph is not None:
            times = self.time_s + spacing_s * torch.arange(n_readings, dtype=torch.float64)
            readings = readings + self.telegraph.offsets(idx, times.expand(idx.numel(), -1)).to(self.device)
        self.idle(spacing_s * n_readings)
        return torch.where(self.destroyed[idx, None], torch.full_like(readings, OPEN_CIRCUIT_OHM), readings)

    def channel_resistance(self, devices: DeviceIndex | str | Sequence[str]) -> torch.Tensor:
        """Two-terminal channel resistance in Ω at the bar's present temperature; ``inf`` for a destroyed device."""
        idx = self._indices(devices)
        r_ch = self.r_ch_ohm[idx]
        if not self.effects.ideal:
            r_ch = r_ch * self.effects.temperature.resistance_factor(self.temperature_k[idx])
        return torch.where(self.destroyed[idx], torch.full_like(r_ch, OPEN_CIRCUIT_OHM), r_ch)

    def dc_sweep(self, devices: DeviceIndex | str | Sequence[str], currents_a: Sequence[float] | torch.Tensor,
                 dwell_s: float) -> torch.Tensor:
        """Step a DC current through ``currents_a`` with ``dwell_s`` per step, reading ``R_xy`` at each step.

        Returns readings of shape ``(devices, steps)`` in Ω. This is the current hysteresis loop; with heating,
        each step's reading sees the Hall step of the bar's temperature at that current.
        """
        idx = self._indices(devices)
        currents = torch.as_tensor(currents_a, dtype=torch.float64, device=self.device)
        response = self.drive(idx, currents, torch.full_like(currents, dwell_s))
        m = response.m_z.to(torch.float64)
        noise = torch.randn(m.shape, generator=self.generator, dtype=torch.float64, device=self.device)
        amplitude = 0.5 * self.delta_r_ahe_ohm[idx, None]
        if not self.effects.ideal:
            amplitude = amplitude * self.effects.temperature.hall_factor(response.temperature_k)
        readings = self.r0_ohm[idx, None] + amplitude * m + self.read_noise_ohm * noise
        return torch.where(m == 0, torch.full_like(readings, OPEN_CIRCUIT_OHM), readings)


@dataclass
class WaveformResponse:
    """What a waveform did to each driven device: ``m_z`` (devices, segments, int8; 0 once destroyed) and the
    bar's temperature in K at the end of every segment."""

    m_z: torch.Tensor
    temperature_k: torch.Tensor

