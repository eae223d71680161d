"""The synapse backend interface: where a network's domain-wall synapses get their realized weights.

A backend owns a pool of few-state DW synapses (simulated, or replayed from a recorded programming
characterization). A layer asks it for a block of devices, one per weight, and then programs and reads
them::

    block = backend.allocate(n_weights)               # a DWSynapseArray-like block of n devices
    realized = block.program(states, index)           # program some devices → their realized weights
    weights = block.read()                            # every device's realized weight, one read each

Every programming event and every read is counted; :attr:`SynapseBackend.program_events`,
:attr:`~SynapseBackend.read_events` and :attr:`~SynapseBackend.energy_j` add up the blocks.
Implementations: :mod:`hil.synapses.sim_synapses` (the device model of ``sim_backend.dw_synapse``).
"""

from __future__ import annotations

import abc
from typing import Any

import torch

from hil.neurons.backend import torch_device
from sim_backend.dw_synapse import DWSynapseArray, DWSynapseConfig


class SynapseBackend(abc.ABC):
    """A pool of DW synapses of one kind (``config``: levels, programming noise, energies).

    ``seed`` draws every block's device-to-device variation and programming noise: block ``b`` uses
    ``seed + 1000·b``, so a network's blocks are independent and reproducible.
    """

    name = "synapses"

    def __init__(self, config: DWSynapseConfig, seed: int = 0, device: str | torch.device = "cpu") -> None:
        self.config = config
        self.seed = int(seed)
        self._device = torch_device(device)
        self.blocks: list[DWSynapseArray] = []

    @abc.abstractmethod
    def _make_block(self, n: int, seed: int) -> DWSynapseArray:
        """A new block of ``n`` devices whose random streams start from ``seed``."""

    def allocate(self, n: int) -> DWSynapseArray:
        """A new block of ``n`` devices (one per weight of a layer), each in state 0."""
        block = self._make_block(int(n), self.seed + 1000 * len(self.blocks))
        self.blocks.append(block)
        return block

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def states(self) -> int:
        return self.config.states

    @property
    def n_devices(self) -> int:
        return sum(b.n for b in self.blocks)

    @property
    def program_events(self) -> int:
        return sum(b.program_events for b in self.blocks)

    @property
    def read_events(self) -> int:
        return sum(b.read_events for b in self.blocks)

    @property
    def program_energy_j(self) -> float:
        return self.program_events * self.config.write_energy_j

    @property
    def energy_j(self) -> float:
        """Programming and read energy of every event so far, in J."""
        return self.program_energy_j + self.read_events * self.config.read_energy_j

    def reset_counters(self) -> None:
        for block in self.blocks:
            block.program_events = block.read_events = 0

    def reseed(self, seed: int) -> None:
        """Restart every block's programming-noise stream (block ``b`` from ``seed + 1000·b``)."""
        self.seed = int(seed)
        for b, block in enumerate(self.blocks):
            block.generator.manual_seed(self.seed + 1000 * b)

    def state_dict(self) -> dict[str, Any]:
        """What a training checkpoint keeps: each block's states, realized weights, stream and counters."""
        return {"seed": self.seed, "blocks": [
            {"state": b.state.cpu(), "weight": b.weight.cpu(), "generator": b.generator.get_state(),
             "program_events": b.program_events, "read_events": b.read_events} for b in self.blocks]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["blocks"]) != len(self.blocks):
            raise ValueError(f"synapse checkpoint of {len(state['blocks'])} blocks for {len(self.blocks)}")
        self.seed = int(state["seed"])
        for block, saved in zip(self.blocks, state["blocks"], strict=True):
            block.state = saved["state"].to(block.device, copy=True)  # never sharing memory with the source
            block.weight = saved["weight"].to(block.device, copy=True)
            block.generator.set_state(saved["generator"].cpu())
            block.program_events, block.read_events = int(saved["program_events"]), int(saved["read_events"])

    def describe(self) -> dict[str, Any]:
        """What a session file stores about this backend (plain values)."""
        return {"backend": self.name, "seed": self.seed, "devices": self.n_devices, **self.config.as_dict()}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.states} states, sigma={list(self.config.sigma)}, "
                f"{self.n_devices} devices, {self.program_events} programming events)")
