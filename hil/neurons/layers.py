"""Torch layers for stochastic-neuron networks (physics.md §3, design.md).

The pieces follow the config → backend → autograd Function → ``nn.Module`` pattern:

- :class:`NeuronConfig` says how pre-activations become currents (``mapping``), how gradients flow
  (``gradient``) and whether a bias-current error is added;
- a :class:`~hil.backends.NeuronBackend` turns currents into switching outcomes;
- :class:`StochasticNeuronFunction` joins the two: forward ``I = I_bias + g·x (+ error)`` → backend →
  0/1; backward the derivative of the device's fitted logistic curve with respect to ``x``
  (sigmoid-adjusted straight-through) or plain straight-through;
- :class:`StochasticNeurons` is the activation module a network uses, like ``nn.Sigmoid``.

The software baselines with the same shape: :class:`SigmoidNeurons` (deterministic) and
:class:`IdealStochasticNeurons` (``bernoulli(sigmoid(x))`` with the same surrogate gradient).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from hil.neurons.backend import NeuronBackend

MAPPINGS = ("calibrated", "nominal")
GRADIENTS = ("curve", "straight_through")


@dataclass(frozen=True)
class NeuronConfig:
    """How a layer of hidden neurons uses its devices.

    ``mapping``: ``"calibrated"`` — each device's own fitted curve sets its bias and gain
    (``I_bias = I50_d``, ``g = w_I,d``: every device behaves as ``sigmoid(x)``); ``"nominal"`` — one bias
    and gain per device width (the backend's nominal curve), so each device adds its own offset and gain
    error. ``gradient``: ``"curve"`` — ``dP/dx`` of the device's fitted logistic; ``"straight_through"`` —
    the incoming gradient passes unchanged. ``bias_error_a``: an absolute current error in A added to
    every neuron's current (a mis-set bias source).
    """

    mapping: str = "calibrated"
    gradient: str = "curve"
    bias_error_a: float = 0.0

    def __post_init__(self) -> None:
        if self.mapping not in MAPPINGS:
            raise ValueError(f"mapping: expected one of {', '.join(MAPPINGS)}, got {self.mapping!r}")
        if self.gradient not in GRADIENTS:
            raise ValueError(f"gradient: expected one of {', '.join(GRADIENTS)}, got {self.gradient!r}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class StochasticNeuronFunction(torch.autograd.Function):
    """Pre-activation → current → device outcome (0/1); backward through the device's logistic curve.

    ``mapping`` (per-neuron tensors, shape ``(neurons,)``, the dtype of ``x``):
    ``(bias_a, gain_a, min_current_a, max_current_a, offset, slope)``. ``bias_a``/``gain_a`` map ``x`` to
    ``I = bias_a + gain_a·x``, clipped to ``[min_current_a, max_current_a]`` (zero and the backend's limit);
    ``offset``/``slope`` give the device curve's argument ``z = offset + slope·x = (I − I50_d)/w_d`` (the
    bias error already included), so ``dP/dx = slope·σ(z)(1 − σ(z))``; ``None`` for an offset of 0 and a
    slope of 1 (a calibrated layer without bias error: ``z = x``). ``straight_through`` replaces ``dP/dx``
    by 1.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, backend: NeuronBackend, neuron_devices: torch.Tensor,
                mapping: tuple[torch.Tensor | None, ...], straight_through: bool) -> torch.Tensor:
        bias_a, gain_a, min_current_a, max_current_a, offset, slope = mapping
        current = torch.addcmul(bias_a, gain_a, x).clamp_(min=min_current_a, max=max_current_a)
        outcomes = backend.sample(neuron_devices, current)
        ctx.straight_through = straight_through
        if not straight_through:
            ctx.save_for_backward(x)
            ctx.curve = (offset, slope)
        return outcomes

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        if ctx.straight_through:
            return grad_out, None, None, None, None
        (x,) = ctx.saved_tensors
        offset, slope = ctx.curve
        z = x if offset is None else torch.addcmul(offset, slope, x)
        # grad·σ(z)(1 − σ(z)) in one pass
        grad = torch.ops.aten.sigmoid_backward(grad_out, torch.sigmoid(z))
        return (grad if slope is None else grad.mul_(slope)), None, None, None, None


class StochasticNeurons(nn.Module):
    """A layer of binary stochastic neurons on a backend's devices; use it like ``nn.Sigmoid()``.

    ``neuron_devices`` (default: ``backend.assign(n_neurons, start=first_device)``) maps each of the
    ``n_neurons`` neurons to a device. The bias and gain of each neuron come from the backend's curves
    when the layer is built (a calibration); :meth:`recalibrate` reads them again (e.g. after the
    devices' curves were re-measured). The backend follows the input's torch device.
    """

    def __init__(self, backend: NeuronBackend, n_neurons: int, config: NeuronConfig | None = None,
                 neuron_devices: torch.Tensor | None = None, first_device: int = 0) -> None:
        super().__init__()
        self.backend = backend
        self.config = config or NeuronConfig()
        self.n_neurons = int(n_neurons)
        if neuron_devices is None:
            neuron_devices = backend.assign(self.n_neurons, start=first_device)
        neuron_devices = torch.as_tensor(neuron_devices, dtype=torch.long, device=backend.device).reshape(-1)
        if neuron_devices.numel() != self.n_neurons:
            raise ValueError(f"neuron_devices: {neuron_devices.numel()} entries for {self.n_neurons} neurons")
        if int(neuron_devices.min()) < 0 or int(neuron_devices.max()) >= backend.n_devices:
            raise ValueError(f"neuron_devices: indices must lie in 0..{backend.n_devices - 1}")
        self.register_buffer("neuron_devices", neuron_devices)
        for name in ("bias_a", "gain_a", "max_current_a", "i50_a", "w_a"):
            self.register_buffer(name, torch.zeros(self.n_neurons, dtype=torch.float64, device=backend.device))
        self.recalibrate()

    @property
    def bias_error_a(self) -> float:
        return self.config.bias_error_a

    @bias_error_a.setter
    def bias_error_a(self, value: float) -> None:
        self.config = NeuronConfig(self.config.mapping, self.config.gradient, float(value))

    def recalibrate(self) -> None:
        """Read the devices' curves from the backend: the current mapping and the surrogate curve."""
        devices = self.neuron_devices.to(self.backend.device)
        i50, w = self.backend.curve(devices)
        if self.config.mapping == "calibrated":
            bias, gain = i50, w
        else:
            bias, gain = self.backend.nominal_curve(devices)
        for name, value in (("bias_a", bias), ("gain_a", gain), ("i50_a", i50), ("w_a", w),
                            ("max_current_a", self.backend.max_current_a[devices])):
            getattr(self, name).copy_(value.to(self.neuron_devices.device, torch.float64))
        self._cast: dict[tuple[Any, ...], tuple[torch.Tensor | None, ...]] = {}

    def _params(self, x: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        """The mapping of :class:`StochasticNeuronFunction` in the dtype and on the device of ``x`` (kept)."""
        # the buffers' versions: a state dict loaded into the layer is noticed
        key = (x.dtype, x.device, self.config.bias_error_a, self.bias_a._version, self.gain_a._version,
               self.i50_a._version, self.w_a._version, self.max_current_a._version)
        hit = self._cast.get(key)
        if hit is None:
            bias = self.bias_a + self.config.bias_error_a
            # z = (I − I50_d)/w_d = offset + slope·x
            offset, slope = (bias - self.i50_a) / self.w_a, self.gain_a / self.w_a
            params = (bias, self.gain_a, torch.zeros_like(bias), self.max_current_a, offset, slope)
            hit = tuple(t.to(device=x.device, dtype=x.dtype) for t in params)
            if bool((hit[4] == 0).all()) and bool((hit[5] == 1).all()):
                hit = (*hit[:4], None, None)  # z = x: the backward skips a multiply-add and a multiply
            self._cast = {key: hit}
        return hit

    def _apply(self, fn: Any, recurse: bool = True) -> StochasticNeurons:
        self._cast = {}
        return super()._apply(fn, recurse)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.n_neurons:
            raise ValueError(f"StochasticNeurons: input of shape {tuple(x.shape)} for {self.n_neurons} neurons")
        if self.backend.device != x.device:
            self.backend.to(x.device)
        devices = self.neuron_devices if self.neuron_devices.device == x.device else self.neuron_devices.to(x.device)
        return StochasticNeuronFunction.apply(x, self.backend, devices, self._params(x),
                                              self.config.gradient == "straight_through")

    def probability(self, x: torch.Tensor) -> torch.Tensor:
        """Firing probability of each neuron for pre-activations ``x`` (no pulses are sent)."""
        bias, gain, min_current, max_current, _, _ = self._params(x)
        current = torch.addcmul(bias, gain, x).clamp_(min=min_current, max=max_current)
        return self.backend.probability(self.neuron_devices.to(x.device), current)

    def extra_repr(self) -> str:
        return (f"{self.n_neurons}, backend={self.backend.name}, mapping={self.config.mapping}, "
                f"gradient={self.config.gradient}, bias_error_a={self.config.bias_error_a:g}")


class _BernoulliSigmoid(torch.autograd.Function):
    """``bernoulli(sigmoid(x))`` forward; ``σ'(x)`` (or 1, straight through) backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, generator: torch.Generator | None, straight_through: bool) -> torch.Tensor:
        p = torch.sigmoid(x)
        ctx.straight_through = straight_through
        if not straight_through:
            ctx.save_for_backward(p)
        return torch.bernoulli(p, generator=generator)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        if ctx.straight_through:
            return grad_out, None, None
        (p,) = ctx.saved_tensors
        return grad_out * p * (1.0 - p), None, None


class IdealStochasticNeurons(nn.Module):
    """Software binary stochastic neurons: fire with probability ``sigmoid(x)``; the baseline of the devices.

    ``gradient`` as in :class:`NeuronConfig`. ``seed`` starts the layer's own random stream
    (:meth:`reseed` restarts it).
    """

    def __init__(self, n_neurons: int, gradient: str = "curve", seed: int = 0) -> None:
        super().__init__()
        if gradient not in GRADIENTS:
            raise ValueError(f"gradient: expected one of {', '.join(GRADIENTS)}, got {gradient!r}")
        self.n_neurons = int(n_neurons)
        self.gradient = gradient
        self.seed = int(seed)
        self._generator: torch.Generator | None = None

    def reseed(self, seed: int) -> None:
        self.seed = int(seed)
        self._generator = None

    def sampling_state(self) -> dict[str, Any]:
        """The layer's random stream (for a training checkpoint)."""
        generator = self._generator
        return {"seed": self.seed, "state": None if generator is None else generator.get_state(),
                "device": None if generator is None else str(generator.device)}

    def load_sampling_state(self, state: dict[str, Any]) -> None:
        self.seed = int(state["seed"])
        self._generator = None
        if state["state"] is not None:
            self._generator = torch.Generator(device=state["device"])
            self._generator.set_state(state["state"].cpu())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._generator is None or self._generator.device != x.device:
            self._generator = torch.Generator(device=x.device).manual_seed(self.seed)
        return _BernoulliSigmoid.apply(x, self._generator, self.gradient == "straight_through")

    def probability(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x)

    def extra_repr(self) -> str:
        return f"{self.n_neurons}, gradient={self.gradient}"


class SigmoidNeurons(nn.Sigmoid):
    """Deterministic sigmoid neurons (the software baseline without sampling)."""

    def __init__(self, n_neurons: int) -> None:
        super().__init__()
        self.n_neurons = int(n_neurons)

    def probability(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x)


__all__ = ["GRADIENTS", "MAPPINGS", "IdealStochasticNeurons", "NeuronConfig", "SigmoidNeurons",
           "StochasticNeuronFunction", "StochasticNeurons"]
