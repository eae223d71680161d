"""The neuron backend interface: where a network's stochastic neurons get their switching outcomes.

A backend owns a set of physical (or simulated, or recorded) SOT devices. The network assigns each
hidden neuron to a device (a long tensor ``neuron_devices``, neuron → device index; many neurons may
share one device, time-multiplexed) and asks for outcomes::

    outcomes = backend.sample(neuron_devices, currents_a)     # (batch, neurons) A → 0/1 float
    i50_a, w_a = backend.curve(neuron_devices)                # logistic view of each neuron's device
    p = backend.probability(neuron_devices, currents_a)       # the curve the samples follow

Every :meth:`NeuronBackend.sample` call is a batch of device trials (reset pulse → bias pulse →
read), so a backend counts them: ``pulses`` (bias pulses) and ``energy_j`` (Σ I²·R_ch·t_p over the
bias pulses plus the reset pulses, physics.md §3.4). A backend may be slow and stateful (the hardware
backend drives a probe station); the trainer only ever goes through this interface. Implementations:
:mod:`hil.neurons.simulated`, :mod:`hil.neurons.measured`, :mod:`hil.neurons.hardware`.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from typing import Any

import torch

from instruments.failures import UserFacingError

DEFAULT_PULSE_S = 10e-6  # bias-pulse width of the neuron trials
_PENDING_SUMS = 256  # bias-energy partial sums kept before they are added up

def torch_device(device: str | torch.device) -> torch.device:
    """``device`` with its index filled in (``"cuda"`` → ``cuda:0``), so it compares equal to tensors' devices."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


class BackendError(UserFacingError, ValueError):
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
        self._pending_bias_j: list[torch.Tensor] = []
        self._reset_j = 0.0
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
        if not torch.is_grad_enabled():  # inside a layer's forward
            return self._sample(neuron_devices, currents_a)
        with torch.no_grad():
            return self._sample(neuron_devices, currents_a)

    def _sample(self, neuron_devices: torch.Tensor, currents_a: torch.Tensor) -> torch.Tensor:
        """:meth:`sample` after the checks, without autograd: draw, then count."""
        outcomes = self._draw(neuron_devices, currents_a)
        self._account(neuron_devices, currents_a)
        return outcomes

    def _draw(self, neuron_devices: torch.Tensor, currents_a: torch.Tensor) -> torch.Tensor:
        p = self.probability(neuron_devices, currents_a)
        u = torch.rand(p.shape, generator=self.generator, dtype=p.dtype, device=p.device)
        return torch.lt(u, p, out=u)  # bernoulli(p), from one uniform per element

    def _account(self, neuron_devices: torch.Tensor, currents_a: torch.Tensor) -> None:
        energy = self._energy_constants(neuron_devices, currents_a.dtype)
        rows = currents_a.reshape(-1, currents_a.shape[-1])
        self._count(rows.shape[0], rows.numel(), energy, torch.mv(rows.square(), energy[0]))

    def _energy_constants(self, neuron_devices: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, float]:
        """``(R_ch·t_p per neuron in dtype, the reset energy in J of one trial of every neuron)``."""
        return self._gathered(neuron_devices, dtype, "energy", self._energy_per_neuron)

    def _energy_per_neuron(self, neuron_devices: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, float]:
        return self._joule_per_a2[neuron_devices].to(dtype), float(self._joule_per_reset[neuron_devices].sum())

    def _count(self, trials_per_neuron: int, pulses: int, energy: tuple[torch.Tensor, float],
               bias_j: torch.Tensor) -> None:
        """Count ``pulses`` trials: the elements of ``bias_j`` (1-D) sum to their bias-pulse energy
        (Σ I²·R_ch·t_p); one reset pulse (``energy[1]`` for all neurons) precedes every trial.

        The bias energies are added up (float64, in call order) when the counters are read or many are
        waiting, not on every call.
        """
        self.pulses += pulses
        self._reset_j += energy[1] * trials_per_neuron
        self._pending_bias_j.append(bias_j)
        if len(self._pending_bias_j) >= _PENDING_SUMS:
            self._sum_pending()

    def _sum_pending(self) -> None:
        if self._pending_bias_j:
            # one running sum in the order of the calls: the total does not depend on when it is taken, so a
            # checkpointed and resumed run counts exactly what an uninterrupted one does
            terms = torch.cat(self._pending_bias_j).to(torch.float64)
            self._bias_j = torch.cat([self._bias_j.reshape(1), terms]).cumsum(0)[-1]
            self._pending_bias_j = []

    def _gathered(self, neuron_devices: torch.Tensor, dtype: torch.dtype, what: str, make: Any) -> Any:
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
        self._neuron_cache: dict[tuple[str, torch.dtype], tuple[torch.Tensor, int, Any]] = {}

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
        self._sum_pending()
        return float(self._bias_j) + self._reset_j

    @property
    def reset_energy_j(self) -> float:
        """The part of :attr:`energy_j` spent in reset pulses."""
        return self._reset_j

    def reset_counters(self) -> None:
        """Zero ``pulses`` and the energy counters."""
        self.pulses = 0
        self._bias_j.zero_()
        self._pending_bias_j = []
        self._reset_j = 0.0

    def state_dict(self) -> dict[str, Any]:
        """What a training checkpoint keeps of the backend: its random stream and its counters."""
        self._sum_pending()
        return {"seed": self.seed, "generator": self.generator.get_state(), "pulses": self.pulses,
                "bias_j": float(self._bias_j), "reset_j": self._reset_j}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`: the same random stream and counters."""
        self.seed = int(state["seed"])
        self.generator.set_state(state["generator"].cpu())
        self.pulses = int(state["pulses"])
        self._bias_j.fill_(float(state["bias_j"]))
        self._pending_bias_j = []
        self._reset_j = float(state["reset_j"])

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
        self._sum_pending()
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
