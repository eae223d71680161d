"""DW synapses replayed from a recorded programming characterization: a network on the measured outcomes.

A ``dw_programming`` run (:mod:`protocols.dw_programming`) records the realized weight of every programming
of every state. :class:`RecordedSynapseBackend` programs state ``k`` by drawing one of the recorded
outcomes of state ``k`` (uniformly, with replacement): the realized weights follow the measured
distribution, whatever its shape, with no device model in between. The backend's
:class:`~sim_backend.dw_synapse.DWSynapseConfig` (levels = the measured means, σ = the measured spread in
units of their spacing) says what the synapses are for the layers' quantizer; counters and energies are
those of every synapse backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hil.session import COMPLETED, Session, SessionError
from hil.synapses.synapse_backend import SynapseBackend
from protocols.dw_programming import DWProgramming, programmings, weights_by_track
from sim_backend.dw_synapse import DWSynapseArray, DWSynapseConfig


class RecordedSynapseArray(DWSynapseArray):
    """A block of synapses whose programming draws from recorded outcomes (``outcomes[k]``: state ``k``'s)."""

    def __init__(self, config: DWSynapseConfig, outcomes: Sequence[torch.Tensor], n: int, seed: int = 0,
                 device: str | torch.device = "cpu") -> None:
        self.counts = torch.tensor([len(o) for o in outcomes], dtype=torch.long)
        table = torch.full((len(outcomes), int(self.counts.max())), float("nan"), dtype=torch.float32)
        for k, values in enumerate(outcomes):
            table[k, :len(values)] = values
        self.outcomes = table
        super().__init__(config, n, seed=seed, device=device)
        self.outcomes, self.counts = self.outcomes.to(self.device), self.counts.to(self.device)

    def realize(self, index: torch.Tensor | None, states: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """For each device, one recorded outcome of its state, drawn uniformly (no event)."""
        states = states.to(device=self.device, dtype=torch.long)
        u = torch.rand(states.shape, generator=generator or self.generator, device=self.device)
        pick = (u * self.counts[states]).long().clamp(max=self.outcomes.shape[1] - 1)
        return self.outcomes[states, pick]

    def to(self, device: str | torch.device) -> RecordedSynapseArray:
        moved = super().to(device)
        other = RecordedSynapseArray.__new__(RecordedSynapseArray)
        other.__dict__.update(moved.__dict__)
        other.outcomes, other.counts = self.outcomes.to(other.device), self.counts.to(other.device)
        return other


class RecordedSynapseBackend(SynapseBackend):
    """Synapses whose programming outcomes are resampled from a recorded ``dw_programming`` run."""

    name = "recorded-synapses"

    def __init__(self, outcomes: Mapping[int, np.ndarray], seed: int = 0, device: str | torch.device = "cpu",
                 source: str = "", config: DWSynapseConfig | None = None) -> None:
        states = sorted(outcomes)
        if states != list(range(len(states))) or len(states) < 2:
            raise SessionError(f"{source or 'recorded outcomes'}: need outcomes of every state 0…K−1 (K ≥ 2), "
                               f"got states {states}")
        values = [np.asarray(outcomes[k], dtype=np.float64) for k in states]
        values = [v[np.isfinite(v)] for v in values]
        if any(v.size < 2 for v in values):
            raise SessionError(f"{source or 'recorded outcomes'}: every state needs two or more recorded outcomes")
        means = [float(v.mean()) for v in values]
        measured = DWSynapseConfig(levels=tuple(means), sigma=tuple(float(v.std(ddof=1)) for v in values))
        step = measured.spacing
        measured = replace(measured, sigma=tuple(s / step for s in measured.sigma))
        if config is not None:  # energies (and the like) from elsewhere, levels and noise as measured
            measured = replace(config, levels=measured.levels, sigma=measured.sigma, level_variation=0.0)
        self.outcomes = [torch.tensor(v, dtype=torch.float32) for v in values]
        self.source = source
        super().__init__(measured, seed=seed, device=device)

    def _make_block(self, n: int, seed: int) -> DWSynapseArray:
        return RecordedSynapseArray(self.config, self.outcomes, n, seed=seed, device=self.device)

    @classmethod
    def from_session(cls, path: str | Path, tracks: Sequence[str] | None = None, seed: int = 0,
                     device: str | torch.device = "cpu", config: DWSynapseConfig | None = None
                     ) -> RecordedSynapseBackend:
        """The outcomes of the session's last completed ``dw_programming`` run (of ``tracks``, default all)."""
        with Session(path) as session:
            runs = [run for run in session.runs_of(DWProgramming.name) if run.status == COMPLETED]
            if not runs:
                raise SessionError(f"{path}: no completed dw_programming run to replay synapses from")
            by_track = weights_by_track(programmings(runs[-1].tables()))
        chosen = list(by_track) if tracks is None else list(tracks)
        unknown = [t for t in chosen if t not in by_track]
        if unknown:
            raise SessionError(f"{path}: no programmings of {', '.join(unknown)} (tracks: {', '.join(by_track)})")
        outcomes: dict[int, list[np.ndarray]] = {}
        for track in chosen:
            for state, weights in by_track[track].items():
                outcomes.setdefault(state, []).append(weights)
        return cls({k: np.concatenate(v) for k, v in outcomes.items()}, seed=seed, device=device,
                   source=f"{path} ({', '.join(chosen)})", config=config)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "source": self.source, "outcomes": [len(o) for o in self.outcomes]}
