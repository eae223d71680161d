"""The DW synapse device model as a synapse backend (``sim_backend.dw_synapse``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from hil.synapses.synapse_backend import SynapseBackend
from instruments.config_files import DEFAULT_CHIP_FILE, read_yaml
from sim_backend.chip import ChipConfigError
from sim_backend.dw_synapse import DWSynapseArray, DWSynapseConfig


class SimSynapseBackend(SynapseBackend):
    """Simulated DW synapses: every block a :class:`~sim_backend.dw_synapse.DWSynapseArray`."""

    name = "sim-synapses"

    def _make_block(self, n: int, seed: int) -> DWSynapseArray:
        return DWSynapseArray(self.config, n, seed=seed, device=self.device)

    @classmethod
    def from_chip_file(cls, source: str | Path | Mapping[str, Any] | None = None, seed: int | None = None,
                       device: str | torch.device = "cpu") -> SimSynapseBackend:
        """The synapses of a chip file's ``synapses:`` section (the defaults where it has none)."""
        raw = _chip_mapping(source)
        return cls(chip_synapses(raw), seed=int(raw.get("seed", 0)) if seed is None else seed, device=device)


def _chip_mapping(source: str | Path | Mapping[str, Any] | None) -> Mapping[str, Any]:
    raw = source if isinstance(source, Mapping) else read_yaml(source or DEFAULT_CHIP_FILE, "chip", ChipConfigError)
    if not isinstance(raw, Mapping):
        raise ChipConfigError("chip file: expected a mapping at the top level")
    return raw


def chip_synapses(source: str | Path | Mapping[str, Any] | None = None) -> DWSynapseConfig:
    """The DW synapse model of a chip file's ``synapses:`` section (default: the embedded chip's; the model's
    defaults where the file has no such section)."""
    return DWSynapseConfig.from_mapping(_chip_mapping(source).get("synapses"))
