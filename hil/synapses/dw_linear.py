"""A linear layer whose weights are few-state stochastic domain-wall synapses (physics.md §2).

The pieces follow the config → backend → autograd Function → ``nn.Module`` pattern of the neurons:

- :class:`SynapseConfig` says how the layer trains its devices: ``mode`` and the noise tolerance
  ``margin``;
- a :class:`~hil.synapses.synapse_backend.SynapseBackend` gives the layer a block of devices, one per
  weight, and counts their programming events and reads;
- :class:`StraightThroughWeights` puts the devices' (or the device model's) weights in the forward pass
  and passes the gradient straight through to the full-precision shadow weights (Hubara et al.);
- :class:`DWLinear` is the ``nn.Module``: ``y = gain · x Wᵀ + b``.

Training after Hubara et al. and Misba et al.: full-precision *shadow* weights (clipped to the devices'
level range) take the optimizer's steps; after each step, :meth:`DWLinear.after_step` reprograms a device
only when its shadow weight has left its present state's band (the half-way points to the neighbouring
levels) by more than ``margin`` (in units of the level spacing), to the state nearest the shadow weight.
The margin is a hysteresis around the band edges: it keeps a weight that hovers at an edge from being
reprogrammed at every step.

- ``mode="in-situ"``: the devices are programmed during training (every event counted) and the forward
  pass reads their realized, noisy weights.
- ``mode="ex-situ"``: training runs in software against the device *model*: the states are tracked in
  ordinary memory (with the same margin) and every forward pass draws fresh programming noise around the
  states' levels. :meth:`DWLinear.deploy` then programs the devices once; from then on the forward pass
  reads the devices, and :meth:`DWLinear.deploy` again gives another noise draw (to evaluate the spread).

The per-layer ``gain`` and the bias ``b`` are ordinary full-precision parameters (the periphery: the
read amplifier's gain and an added current), as in the quantized networks these layers follow.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from hil.synapses.synapse_backend import SynapseBackend

MODES = ("in-situ", "ex-situ")
# the integer dtype of each float dtype's size: its bits, nonzero exactly where the float is not +0.0
_SAME_SIZE_INT = {torch.float64: torch.int64, torch.float32: torch.int32, torch.float16: torch.int16,
                  torch.bfloat16: torch.int16}


@dataclass(frozen=True)
class SynapseConfig:
    """How a layer trains its DW synapses: ``mode`` (``"in-situ"`` or ``"ex-situ"``) and ``margin``,
    the noise tolerance margin in units of the level spacing (0: reprogram whenever the nearest state
    changes)."""

    mode: str = "in-situ"
    margin: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"synapse mode: expected one of {', '.join(MODES)}, got {self.mode!r}")
        if not (math.isfinite(self.margin) and self.margin >= 0):
            raise ValueError(f"margin: expected a number ≥ 0 (in units of the level spacing), got {self.margin!r}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class StraightThroughWeights(torch.autograd.Function):
    """Forward: the given device weights; backward: the gradient unchanged to the shadow weights."""

    @staticmethod
    def forward(ctx: Any, shadow: torch.Tensor, device_weights: torch.Tensor) -> torch.Tensor:
        return device_weights.to(shadow.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


class DWLinear(nn.Module):
    """``y = gain · x Wᵀ + b`` with ``W`` on ``out_features × in_features`` DW synapses of ``backend``.

    ``shadow`` (the full-precision weights, initialized uniformly over the level range), ``gain`` and
    ``bias`` (zero) are the trainable parameters. ``gain`` starts so that the effective weights
    ``gain·w`` have the standard deviation ``init_std`` (default ``1/√(3·in_features)``, that of
    ``nn.Linear``'s initialization) with the states equally occupied. ``seed`` draws the initial shadow
    weights and the ex-situ training noise.
    """

    def __init__(self, in_features: int, out_features: int, backend: SynapseBackend,
                 config: SynapseConfig | None = None, seed: int = 0, init_std: float | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.backend = backend
        self.config = config or SynapseConfig()
        self.seed = int(seed)
        device = backend.device
        self.block = backend.allocate(self.out_features * self.in_features)
        levels = self.block.levels
        init = torch.Generator().manual_seed(self.seed)
        low, high = float(levels[0]), float(levels[-1])
        shadow = low + (high - low) * torch.rand((self.out_features, self.in_features), generator=init)
        self.shadow = nn.Parameter(shadow.to(device))
        init_std = 1.0 / math.sqrt(3.0 * self.in_features) if init_std is None else float(init_std)
        level_rms = float(levels.square().mean().sqrt())
        self.gain = nn.Parameter(torch.tensor(init_std / level_rms, device=device))
        self.bias = nn.Parameter(torch.zeros(self.out_features, device=device))
        # the states the training tracks: the devices' own (in situ) or the software copy's (ex situ)
        self.register_buffer("software_state", self.block.nearest_state(self.shadow.detach().reshape(-1)))
        self.register_buffer("deployed", torch.tensor(self.config.mode == "in-situ", device=device))
        self._noise: torch.Generator | None = None
        self._level_range = (low, high)
        # per state, the shadow weights below/above which a device in it is reprogrammed: its band ± the margin
        band = self.block.boundaries
        inf = torch.tensor([math.inf], device=device)
        margin = self.config.margin * self.block.config.spacing
        self._bounds_of_state = torch.stack([torch.cat([-inf, band]) - margin, torch.cat([band, inf]) + margin])
        self._threshold_key: tuple[int, int] | None = None
        self._excess: torch.Tensor | None = None
        if self.config.mode == "in-situ":
            self.block.program(self.software_state)

    # -- the forward pass -------------------------------------------------------------------------------

    def weights(self, inferences: int = 1) -> torch.Tensor:
        """The weights the forward pass uses now (``out × in``); reading devices counts ``inferences`` reads."""
        if bool(self.deployed):
            return self.block.read(inferences).reshape(self.out_features, self.in_features)
        # ex situ, before deployment: the device model around the tracked states, a fresh draw each pass
        if self._noise is None or self._noise.device != self.shadow.device:
            self._noise = torch.Generator(device=self.shadow.device).manual_seed(self.seed + 1)
        drawn = self.block.realize(None, self.software_state, generator=self._noise)
        return drawn.reshape(self.out_features, self.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inferences = x.numel() // max(1, x.shape[-1])
        w = StraightThroughWeights.apply(self.shadow, self.weights(inferences))
        return torch.nn.functional.linear(x, w) * self.gain + self.bias

    # -- training -----------------------------------------------------------------------------------------

    @torch.no_grad()
    def after_step(self) -> int:
        """Clip the shadow weights to the level range and reprogram the devices whose shadow weight left
        its state's band by more than the margin. Returns how many states changed."""
        self.shadow.clamp_(*self._level_range)
        shadow = self.shadow.reshape(-1)
        state = self.block.state if self.config.mode == "in-situ" else self.software_state
        low, high = self._thresholds(state)
        # outside its band ± margin ⇔ clamping to it moves the weight. Computed as clamp − weight (zero bits
        # exactly where nothing moved: x − x = +0.0), whose nonzero bits are found as integers: comparisons into
        # a bool mask and a float nonzero each cost several times this on the CPU, at every step of training
        if self._excess is None or self._excess.shape != shadow.shape or self._excess.device != shadow.device:
            self._excess = torch.empty_like(shadow)
        excess = torch.clamp(shadow, low, high, out=self._excess).sub_(shadow)
        index = torch.nonzero(excess.view(_SAME_SIZE_INT[excess.dtype])).reshape(-1)
        if index.numel() == 0:
            return 0
        states = self.block.nearest_state(shadow[index])
        self.software_state[index] = states
        if self.config.mode == "in-situ":
            self.block.program(states, index)
        self._bounds[:, index] = self._bounds_of_state[:, states]
        self._threshold_key = (id(state), state._version)
        return int(index.numel())

    def _thresholds(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per device, the shadow weights below/above which it is reprogrammed (its band ± the margin),
        kept between steps and recomputed only when the states changed elsewhere (a restored checkpoint)."""
        if self._threshold_key != (id(state), state._version):
            self._bounds = self._bounds_of_state[:, state]  # row 0 the lower, row 1 the upper bound
            self._threshold_key = (id(state), state._version)
        return self._bounds[0], self._bounds[1]

    @torch.no_grad()
    def deploy(self) -> torch.Tensor:
        """Program every device to its tracked state (ex situ: the one programming; called again: another
        noise draw). Returns the realized weights (``out × in``)."""
        realized = self.block.program(self.software_state)
        self.deployed.fill_(True)
        return realized.reshape(self.out_features, self.in_features)

    def quantized(self) -> torch.Tensor:
        """The nominal levels of the tracked states (``out × in``): the weights without programming noise."""
        return self.block.levels[self.software_state].reshape(self.out_features, self.in_features)

    def extra_repr(self) -> str:
        return (f"{self.in_features}, {self.out_features}, states={self.backend.states}, mode={self.config.mode}, "
                f"margin={self.config.margin:g}")


__all__ = ["MODES", "DWLinear", "StraightThroughWeights", "SynapseConfig"]
