"""A linear layer whose weights are few-state stochastic domain-wall synapses (physics.md §2).

The pieces follow the config → backend → autograd Function → ``nn.Module`` pattern of the neurons:

- :class:`SynapseConfig` says how the layer trains its devices: ``mode`` and the noise tolerance
  ``margin``;
- a :class:`~hil.synapses.synapse_backend.SynapseBackend` gives the layer a block of devices, one per
  weight, and counts their programming events and reads;
- :class:`DWLinearFunction` computes the layer from the devices' (or the device model's) weights and passes
  their gradient straight through to the full-precision shadow weights (Hubara et al.);
- :class:`DWLinear` is the ``nn.Module``: ``y = gain · x Wᵀ + b``.

Training after Hubara et al. and Misba et al.: full-precision *shadow* weights (clipped to the devices'
level range) take the optimizer's steps; after each step, :meth:`DWLinear.after_step` (a whole network's
layers at once: :mod:`hil.synapses.reprogramming`) reprograms a device only when its shadow weight has left
its present state's band (the half-way points to the neighbouring levels) by more than ``margin`` (in units
of the level spacing), to the state nearest the shadow weight.
The margin is a hysteresis around the band edges: it keeps a weight that hovers at an edge from being
reprogrammed at every step.

- ``mode="in-situ"``: the devices are programmed during training (every event counted) and the forward
  pass reads their realized, noisy weights.
- ``mode="ex-situ"``: training runs in software against the device *model*: the states are tracked in
  ordinary memory (with the same margin) and every forward pass draws fresh programming noise around the
  states' levels. :meth:`DWLinear.deploy` then programs the devices once; from then on the forward pass
  reads the devices, and :meth:`DWLinear.deploy` again gives another noise draw (to evaluate the spread).

The per-layer ``gain`` and the bias ``b`` are ordinary full-precision parameters (the periphery: the
read amplifier's gain and an added current), as in the quantized networks these layers follow. They are
one parameter tensor, ``periphery = [gain, b…]`` (``gain`` and ``bias`` are views of it): the optimizer's
work per tensor, not per element, is what a training step of these small layers costs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from hil.synapses.reprogramming import Reprogramming
from hil.synapses.synapse_backend import SynapseBackend

MODES = ("in-situ", "ex-situ")


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


class DWLinearFunction(torch.autograd.Function):
    """``y = gain · x wᵀ + b`` with ``w`` the device weights and ``periphery = [gain, b…]``; the gradient of
    ``w`` goes straight through to the shadow weights (Hubara et al.). One autograd node for the layer: its
    matrix products, the gain and the bias, and the straight-through step, each of which would otherwise be
    a node of its own."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, shadow: torch.Tensor, periphery: torch.Tensor,
                device_weights: torch.Tensor) -> torch.Tensor:
        w = device_weights.to(shadow.dtype)
        product = torch.nn.functional.linear(x, w)
        gain = periphery[0]
        ctx.save_for_backward(x, w, product, gain)
        return torch.mul(product, gain).add_(periphery[1:])  # not addcmul: its fused rounding changes trained networks

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, w, product, gain = ctx.saved_tensors
        needs_x, needs_shadow, needs_periphery, _ = ctx.needs_input_grad
        scaled = grad * gain
        grad_x = scaled.matmul(w) if needs_x else None
        grad_periphery = None
        if needs_periphery:
            rows = grad if grad.dim() == 2 else grad.reshape(-1, w.shape[0])
            grad_periphery = torch.cat([(grad * product).sum().reshape(1), rows.sum(0)])
        grad_shadow = None
        if needs_shadow:
            if grad.dim() != 2:  # a batch of several leading dimensions: their rows, one matrix
                scaled, x = scaled.reshape(-1, w.shape[0]), x.reshape(-1, w.shape[1])
            grad_shadow = scaled.t().mm(x)
        return grad_x, grad_shadow, grad_periphery, None


class DWLinear(nn.Module):
    """``y = gain · x Wᵀ + b`` with ``W`` on ``out_features × in_features`` DW synapses of ``backend``.

    ``shadow`` (the full-precision weights, initialized uniformly over the level range) and ``periphery``
    (``gain``, then the ``bias``, zero) are the trainable parameters. ``gain`` starts so that the effective weights
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
        periphery = torch.zeros(1 + self.out_features, device=device)
        periphery[0] = init_std / level_rms
        self.periphery = nn.Parameter(periphery)
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
        self._reprogramming: Reprogramming | None = None
        # the flag tensor, its version and its value; the block's weights and their 2-D view (see weights())
        self._deployed_seen: tuple[torch.Tensor | None, int, bool] = (None, -1, False)
        self._weights_seen: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None)
        if self.config.mode == "in-situ":
            self.block.program(self.software_state)

    # -- the forward pass -------------------------------------------------------------------------------

    def weights(self, inferences: int = 1) -> torch.Tensor:
        """The weights the forward pass uses now (``out × in``); reading devices counts ``inferences`` reads."""
        if self._is_deployed():
            flat = self.block.read(inferences)
            seen, view = self._weights_seen
            if flat is not seen:  # the block's weights were replaced (programmed whole, restored, moved)
                view = flat.view(self.out_features, self.in_features)
                self._weights_seen = (flat, view)
            return view
        # ex situ, before deployment: the device model around the tracked states, a fresh draw each pass
        if self._noise is None or self._noise.device != self.shadow.device:
            self._noise = torch.Generator(device=self.shadow.device).manual_seed(self.seed + 1)
        drawn = self.block.realize(None, self.software_state, generator=self._noise)
        return drawn.reshape(self.out_features, self.in_features)

    def noise_state(self) -> torch.Tensor | None:
        """Where the ex-situ training noise stream stands (``None`` before its first draw), for a checkpoint."""
        return None if self._noise is None else self._noise.get_state()

    def load_noise_state(self, state: torch.Tensor | None) -> None:
        """Continue the ex-situ training noise stream from :meth:`noise_state`."""
        self._noise = None
        if state is not None:
            self._noise = torch.Generator(device=self.shadow.device)
            self._noise.set_state(state.cpu())

    def _is_deployed(self) -> bool:
        """``bool(self.deployed)``, read again only when the flag was replaced or written (a Python bool per
        forward pass instead of a tensor read)."""
        flag = self._buffers["deployed"]
        if torch.is_inference(flag):  # made under torch.inference_mode(): no version to follow
            return bool(flag)
        seen, version, value = self._deployed_seen
        if flag is not seen or flag._version != version:
            value = bool(flag)
            self._deployed_seen = (flag, flag._version, value)
        return value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inferences = x.numel() // max(1, x.shape[-1])
        return DWLinearFunction.apply(x, self.shadow, self.periphery, self.weights(inferences))

    @property
    def gain(self) -> torch.Tensor:
        """The read amplifier's gain (a view of ``periphery``)."""
        return self.periphery[0]

    @property
    def bias(self) -> torch.Tensor:
        """The added current per output, ``b`` (a view of ``periphery``)."""
        return self.periphery[1:]

    # -- training -----------------------------------------------------------------------------------------

    def after_step(self) -> int:
        """Clip the shadow weights to the level range and reprogram the devices whose shadow weight left
        its state's band by more than the margin. Returns how many states changed.

        A trainer does this for all the layers of a network at once
        (:func:`~hil.synapses.reprogramming.reprogramming_groups`); this is the same for this layer alone.
        """
        if self._reprogramming is None:
            self._reprogramming = Reprogramming([self])
        return self._reprogramming.step()

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


__all__ = ["MODES", "DWLinear", "DWLinearFunction", "SynapseConfig"]
