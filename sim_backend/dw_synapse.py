"""Few-state stochastic domain-wall (DW) synapses (physics.md §2), vectorized over millions of devices.

A DW synapse has ``K`` stable wall positions (states ``k = 0 … K−1``) whose weights ``w_k`` lie evenly
spaced in [−1, 1] by default. Programming state ``k`` lands the wall near, not at, its position: the
realized weight is ``w_k + o_dk + ε`` with ``ε ~ N(0, (σ_k·s)²)``, ``s`` the spacing between states and
``o_dk`` the device's own (fixed, drawn once) offset of that level (device-to-device variation, off by
default). The realized weight persists until the next programming; with retention drift it wanders as a
Wiener process of ``drift·s`` per √second while time passes (:meth:`DWSynapseArray.elapse`).

Energy: every programming event costs ``write_energy_j``, every read of one synapse ``read_energy_j``.
Defaults:

- ``write_energy_j = 5 fJ``: physics.md §2, the order of the voltage-controlled DW devices of Misba et al.
  (IEEE Access 10, 84946, 2022), whose 13 pJ per inference is built on a few-fJ programming event;
- ``read_energy_j = 1 fJ``: a 0.1 V read across a ~10 kΩ magnetic tunnel junction for 1 ns
  (``V²/R·t``), the read scheme DW–MTJ synapses use.

A chip file may hold DW synapses beside its Hall bars, in a ``synapses:`` section read by
:meth:`DWSynapseConfig.from_mapping`::

    synapses:
      states: 5            # or levels: [-1, -0.5, 0, 0.5, 1]
      sigma: 0.2           # programming noise in units of the spacing (one number, or one per state)
      level_variation: 0   # device-to-device spread of each level, in units of the spacing
      retention_drift: 0   # per sqrt(second), in units of the spacing
      write_energy: 5fJ
      read_energy: 1fJ
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from instruments.config_files import check_keys
from instruments.failures import UserFacingError
from instruments.units import QuantityError, parse_quantity

DEFAULT_SIGMA = 0.2
DEFAULT_WRITE_ENERGY_J = 5e-15
DEFAULT_READ_ENERGY_J = 1e-15
SYNAPSE_KEYS = {"states", "levels", "sigma", "level_variation", "retention_drift", "write_energy", "read_energy"}


class SynapseConfigError(UserFacingError, ValueError):
    """A synapse description that cannot describe a device; the message names the key and value."""


def even_levels(states: int) -> tuple[float, ...]:
    """``states`` weights evenly spaced in [−1, 1]."""
    if states < 2:
        raise SynapseConfigError(f"states: a synapse needs at least 2 states, got {states!r}")
    return tuple(-1.0 + 2.0 * k / (states - 1) for k in range(states))


@dataclass(frozen=True)
class DWSynapseConfig:
    """One kind of DW synapse. ``levels``: the nominal weight of each state (ascending);
    ``sigma``: programming noise per state in units of ``spacing`` (the mean gap between levels)."""

    levels: tuple[float, ...] = field(default_factory=lambda: even_levels(5))
    sigma: tuple[float, ...] | float = DEFAULT_SIGMA
    level_variation: float = 0.0
    retention_drift: float = 0.0
    write_energy_j: float = DEFAULT_WRITE_ENERGY_J
    read_energy_j: float = DEFAULT_READ_ENERGY_J

    def __post_init__(self) -> None:
        levels = tuple(float(v) for v in self.levels)
        if len(levels) < 2:
            raise SynapseConfigError(f"levels: a synapse needs at least 2 states, got {list(levels)}")
        if not all(math.isfinite(v) for v in levels) or any(b <= a for a, b in zip(levels, levels[1:], strict=False)):
            raise SynapseConfigError(f"levels: expected finite, strictly ascending weights, got {list(levels)}")
        sigma = self.sigma
        sigma = (float(sigma),) * len(levels) if isinstance(sigma, int | float) else tuple(float(s) for s in sigma)
        if len(sigma) != len(levels):
            raise SynapseConfigError(f"sigma: one value, or one per state ({len(levels)}), got {len(sigma)}")
        if not all(math.isfinite(s) and s >= 0 for s in sigma):
            raise SynapseConfigError(f"sigma: must be ≥ 0, got {list(sigma)}")
        for key in ("level_variation", "retention_drift", "write_energy_j", "read_energy_j"):
            value = float(getattr(self, key))
            if not (math.isfinite(value) and value >= 0):
                raise SynapseConfigError(f"{key}: must be a finite value ≥ 0, got {getattr(self, key)!r}")
            object.__setattr__(self, key, value)
        object.__setattr__(self, "levels", levels)
        object.__setattr__(self, "sigma", sigma)

    @property
    def states(self) -> int:
        return len(self.levels)

    @property
    def spacing(self) -> float:
        """The mean gap between neighbouring levels (``2/(K−1)`` for even levels in [−1, 1])."""
        return (self.levels[-1] - self.levels[0]) / (self.states - 1)

    def with_states(self, states: int) -> DWSynapseConfig:
        """The same device with ``states`` even levels in [−1, 1] (one σ for all, the mean of this one's)."""
        return replace(self, levels=even_levels(states), sigma=sum(self.sigma) / len(self.sigma))

    @classmethod
    def from_mapping(cls, raw: Any, where: str = "synapses.") -> DWSynapseConfig:
        """The ``synapses:`` section of a chip file (see the module docstring); errors name the key."""
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise SynapseConfigError(f"{where.rstrip('.')}: expected a mapping, got {raw!r}")
        check_keys(raw, SYNAPSE_KEYS, where, SynapseConfigError)
        if "states" in raw and "levels" in raw:
            raise SynapseConfigError(f"{where}levels: give states or levels, not both")
        kwargs: dict[str, Any] = {}
        if "states" in raw:
            states = raw["states"]
            if isinstance(states, bool) or not isinstance(states, int):
                raise SynapseConfigError(f"{where}states: expected an integer ≥ 2, got {states!r}")
            if states < 2:
                raise SynapseConfigError(f"{where}states: a synapse needs at least 2 states, got {states!r}")
            kwargs["levels"] = even_levels(states)
        if "levels" in raw:
            if not isinstance(raw["levels"], Sequence) or isinstance(raw["levels"], str):
                raise SynapseConfigError(f"{where}levels: expected a list of weights, got {raw['levels']!r}")
            kwargs["levels"] = tuple(_number(v, f"{where}levels") for v in raw["levels"])
        if "sigma" in raw:
            sigma = raw["sigma"]
            kwargs["sigma"] = (tuple(_number(v, f"{where}sigma") for v in sigma)
                               if isinstance(sigma, Sequence) and not isinstance(sigma, str)
                               else _number(sigma, f"{where}sigma"))
        for key in ("level_variation", "retention_drift"):
            if key in raw:
                kwargs[key] = _number(raw[key], f"{where}{key}")
        for key in ("write_energy", "read_energy"):
            if key in raw:
                try:
                    kwargs[f"{key}_j"] = parse_quantity(raw[key], "J", f"{where}{key}")
                except QuantityError as exc:
                    raise SynapseConfigError(str(exc)) from None
        try:
            return cls(**kwargs)
        except SynapseConfigError as exc:
            raise SynapseConfigError(f"{where}{exc}") from None

    def as_dict(self) -> dict[str, Any]:
        return {"levels": list(self.levels), "sigma": list(self.sigma), "level_variation": self.level_variation,
                "retention_drift": self.retention_drift, "write_energy_j": self.write_energy_j,
                "read_energy_j": self.read_energy_j}


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SynapseConfigError(f"{key}: expected a number, got {value!r}")
    return float(value)


class DWSynapseArray:
    """``n`` DW synapses of one :class:`DWSynapseConfig`, with their realized weights and counters.

    Tensors (on ``device``): ``state`` (long, the last programmed state), ``weight`` (float32, the
    realized weight), ``level_offset`` (float32 ``(n, K)``, the devices' own level offsets). Every device
    starts in state 0 at its level (the wall at the track's end, as after a reset) without an event.
    ``program_events`` and ``read_events`` count every event; :attr:`energy_j` is their energy.
    """

    def __init__(self, config: DWSynapseConfig, n: int, seed: int = 0, device: str | torch.device = "cpu") -> None:
        if n < 1:
            raise SynapseConfigError(f"a synapse array needs at least one device, got {n}")
        self.config = config
        self.n = int(n)
        self.device = torch.device(device)
        self.seed = int(seed)
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)
        self.levels = torch.tensor(config.levels, dtype=torch.float32, device=self.device)
        self.noise_std = torch.tensor(config.sigma, dtype=torch.float32, device=self.device) * config.spacing
        self.boundaries = (self.levels[1:] + self.levels[:-1]) / 2  # between neighbouring levels: the bands' edges
        if config.level_variation > 0:
            # drawn from a stream of its own, so the device-to-device spread depends only on the seed
            variation = torch.Generator(device=self.device).manual_seed(self.seed + 7919)
            self.level_offset = config.level_variation * config.spacing * torch.randn(
                (self.n, config.states), generator=variation, device=self.device)
        else:
            self.level_offset = None
        self.state = torch.zeros(self.n, dtype=torch.long, device=self.device)
        self.weight = self._nominal(None, self.state)
        self.program_events = 0
        self.read_events = 0

    def _nominal(self, index: torch.Tensor | None, states: torch.Tensor) -> torch.Tensor:
        """Each device's own level of ``states`` (no programming noise)."""
        level = self.levels[states]
        if self.level_offset is not None:
            rows = torch.arange(self.n, device=self.device) if index is None else index
            level = level + self.level_offset[rows, states]
        return level

    def realize(self, index: torch.Tensor | None, states: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Where programming ``states`` would put the devices ``index`` (all when ``None``): a draw, no event."""
        noise = torch.randn(states.shape, generator=generator or self.generator, device=self.device)
        return self._nominal(index, states) + noise * self.noise_std[states]

    def program(self, states: torch.Tensor, index: torch.Tensor | None = None, checked: bool = False) -> torch.Tensor:
        """Program the devices ``index`` (all when ``None``) to ``states``; returns their realized weights.

        One event per device programmed, even to the state it already holds (the wall is moved again).
        ``checked``: the caller vouches that ``states`` is a 1-D long tensor on this block's device, one valid
        state per device of ``index`` (a layer's reprogramming after each training step; the checks would cost
        more than the programming).
        """
        if not checked:
            states = states.to(device=self.device, dtype=torch.long).reshape(-1)
            if states.numel():
                lowest, highest = (int(v) for v in torch.aminmax(states))
                if lowest < 0 or highest >= self.config.states:
                    raise ValueError(f"program: states must lie in 0…{self.config.states - 1}")
            expected = self.n if index is None else index.numel()
            if states.numel() != expected:
                raise ValueError(f"program: {states.numel()} states for {expected} devices")
        realized = self.realize(index, states)
        if index is None:
            self.state, self.weight = states.clone(), realized
        else:
            self.state[index], self.weight[index] = states, realized
        self.program_events += int(states.numel())
        return realized

    def read(self, count: int = 1) -> torch.Tensor:
        """The realized weights (a view: do not modify), counting ``count`` reads of every device."""
        self.read_events += int(count) * self.n
        return self.weight

    def elapse(self, seconds: float) -> None:
        """Let ``seconds`` pass: with retention drift, every realized weight wanders (Wiener process)."""
        if seconds < 0:
            raise ValueError(f"elapse: negative time {seconds!r}")
        if self.config.retention_drift > 0 and seconds > 0:
            step = self.config.retention_drift * self.config.spacing * math.sqrt(seconds)
            self.weight = self.weight + step * torch.randn(self.n, generator=self.generator, device=self.device)

    @property
    def energy_j(self) -> float:
        return self.program_events * self.config.write_energy_j + self.read_events * self.config.read_energy_j

    @property
    def program_energy_j(self) -> float:
        return self.program_events * self.config.write_energy_j

    def nearest_state(self, weights: torch.Tensor) -> torch.Tensor:
        """The state whose nominal level is closest to each of ``weights``."""
        return torch.bucketize(weights.to(self.levels.dtype), self.boundaries)

    def to(self, device: str | torch.device) -> DWSynapseArray:
        """This array on another torch device (states, weights, offsets and counters kept; the random
        stream restarts from the seed there)."""
        other = DWSynapseArray.__new__(DWSynapseArray)
        other.__dict__.update(self.__dict__)
        other.device = torch.device(device)
        for name in ("levels", "boundaries", "noise_std", "level_offset", "state", "weight"):
            value = getattr(self, name)
            setattr(other, name, None if value is None else value.to(other.device))
        other.generator = torch.Generator(device=other.device).manual_seed(self.seed)
        return other

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return (f"DWSynapseArray({self.n} devices, {self.config.states} states, "
                f"sigma={list(self.config.sigma)}, events={self.program_events})")




class JointProgramming:
    """Several arrays of one device model programmed as one: their states and realized weights are made views
    of one flat tensor each, so a programming of devices spread over all of them is a handful of tensor
    operations instead of a handful per array. Each array's noise still comes from its own stream, in the same
    order, so the outcome is bit for bit that of programming the arrays in turn.

    Only plain :class:`DWSynapseArray` s qualify (:meth:`supports`: same configuration and device, no
    device-to-device offsets). An array whose ``state`` or ``weight`` was replaced since (a whole-array
    programming, a restored checkpoint, :meth:`DWSynapseArray.elapse`) is no longer a view: :meth:`bound`
    says so, and the caller binds again.
    """

    def __init__(self, arrays: Sequence[DWSynapseArray]) -> None:
        if not self.supports(arrays):
            raise SynapseConfigError("joint programming: the arrays must be plain DWSynapseArrays of one "
                                     "configuration and device, without level offsets")
        self.arrays = list(arrays)
        first = self.arrays[0]
        self.levels, self.noise_std = first.levels, first.noise_std
        self.state = torch.cat([a.state.reshape(-1) for a in self.arrays])
        self.weight = torch.cat([a.weight.reshape(-1) for a in self.arrays])
        start = 0
        for array in self.arrays:
            array.state, array.weight = self.state[start:start + array.n], self.weight[start:start + array.n]
            start += array.n
        self._views = [(array.state, array.weight) for array in self.arrays]
        self._noise = torch.empty(0, device=first.device)

    @staticmethod
    def supports(arrays: Sequence[DWSynapseArray]) -> bool:
        if not arrays:
            return False
        first = arrays[0]
        return all(type(a) is DWSynapseArray and a.level_offset is None and a.config == first.config
                   and a.device == first.device for a in arrays)

    def bound(self) -> bool:
        """Whether every array's ``state`` and ``weight`` are still the views this binding made."""
        return all(a.state is state and a.weight is weight
                   for a, (state, weight) in zip(self.arrays, self._views, strict=True))

    def program(self, states: torch.Tensor, index: torch.Tensor, cuts: Sequence[int]) -> None:
        """Program the devices ``index`` (flat, over the arrays in order, ascending) to ``states`` (a long
        tensor on the arrays' device, valid states); ``index[cuts[i]:cuts[i + 1]]`` lie in array ``i``."""
        if self._noise.numel() < states.numel():
            self._noise = torch.empty(max(states.numel(), 2 * self._noise.numel()), device=self.levels.device)
        noise = self._noise[:states.numel()]
        for array, low, high in zip(self.arrays, cuts[:-1], cuts[1:], strict=True):
            if high > low:
                torch.randn((high - low,), generator=array.generator, out=noise[low:high])
                array.program_events += high - low
        self.weight[index] = self.levels[states] + noise * self.noise_std[states]  # as realize, array by array
        self.state[index] = states


__all__ = ["DEFAULT_READ_ENERGY_J", "DEFAULT_SIGMA", "DEFAULT_WRITE_ENERGY_J", "DWSynapseArray", "DWSynapseConfig",
           "JointProgramming", "SynapseConfigError", "even_levels"]
