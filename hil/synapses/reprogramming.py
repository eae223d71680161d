"""The reprogramming after an optimizer step, for all the DW layers of a network at once.

After each step, every :class:`~hil.synapses.dw_linear.DWLinear` clips its shadow weights to the level range
and reprograms the devices whose shadow weight left its state's band by more than the margin, to the state
nearest the shadow weight (the rule is the layer's; see its module). Checked layer by layer, that costs a
dozen small tensor operations per layer and step, more than the layer's matrix products on the CPU.

:class:`Reprogramming` checks a group of layers that share levels, margin and mode in one pass: the layers'
shadow weights and tracked states are made views of one flat tensor each (the parameters stay the same
objects, so the optimizer and checkpoints see nothing different), their reprogramming bounds kept flat beside
them; one clip, one search for the devices out of bounds, one nearest-state lookup, then the in-situ
layers' devices are programmed: all at once where their blocks are plain simulated arrays of one model
(:class:`~sim_backend.dw_synapse.JointProgramming`), else block by block; either way each block draws from its
own random stream, in the same order, so the outcome is bit for bit that of layer by layer.
:func:`reprogramming_groups` splits a network's layers into such groups. A group whose layers' tensors were
moved elsewhere (``model.to(device)``, a parameter replaced, a restored checkpoint) binds them again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import torch

from sim_backend.dw_synapse import JointProgramming

if TYPE_CHECKING:
    from hil.synapses.dw_linear import DWLinear


def _group_key(layer: DWLinear) -> tuple:
    return (tuple(layer.block.config.levels), layer.config.margin, layer.config.mode, layer.shadow.device,
            layer.shadow.dtype)


class Reprogramming:
    """The after-step reprogramming of ``layers`` (all with the same levels, margin, mode, device and dtype)."""

    def __init__(self, layers: Sequence[DWLinear]) -> None:
        self.layers = list(layers)
        if not self.layers:
            raise ValueError("reprogramming: no layers")
        keys = {_group_key(layer) for layer in self.layers}
        if len(keys) > 1:
            raise ValueError("reprogramming: the layers differ in levels, margin, mode, device or dtype "
                             "(reprogramming_groups splits them)")
        self.in_situ = self.layers[0].config.mode == "in-situ"
        sizes = [layer.shadow.numel() for layer in self.layers]
        self._starts = [sum(sizes[:i]) for i in range(len(sizes))]
        self._sizes = sizes
        self._shadow: torch.Tensor | None = None
        self._state: torch.Tensor | None = None
        self._joint: JointProgramming | None = None

    # -- the flat tensors ---------------------------------------------------------------------------------

    def _bound(self) -> bool:
        """Whether every layer still holds the parameter and buffer the binding gave it, the parameter still
        points into the flat tensor (``model.to(device)`` gives it other storage; an assignment another object),
        and the layers' blocks are still the jointly programmed arrays, their tensors still the joint views."""
        return self._shadow is not None and all(
            layer._parameters["shadow"] is shadow and layer._buffers["software_state"] is state
            and shadow.data_ptr() == pointer for layer, shadow, state, pointer in self._bindings) and (
            self._joint is None or (self._joint.bound() and all(
                layer.block is array for layer, array in zip(self.layers, self._joint.arrays, strict=True))))

    def _bind(self) -> None:
        """Make every layer's shadow weights and tracked states views of one flat tensor each."""
        with torch.no_grad():
            self._shadow = torch.cat([layer.shadow.detach().reshape(-1) for layer in self.layers])
            self._state = torch.cat([layer.software_state.reshape(-1) for layer in self.layers])
        for layer, start, size in zip(self.layers, self._starts, self._sizes, strict=True):
            layer.shadow.data = self._shadow[start:start + size].view(layer.shadow.shape)
            layer.software_state = self._state[start:start + size]
        self._bindings = [(layer, layer.shadow, layer.software_state, layer.shadow.data_ptr())
                          for layer in self.layers]
        first = self.layers[0]
        self._bounds_of_state = first._bounds_of_state.to(self._shadow.device, self._shadow.dtype)
        self._boundaries = first.block.boundaries.to(self._shadow.device)
        self._bounds = self._shadow.new_empty((2, self._shadow.numel()))
        self._moved = torch.empty_like(self._shadow)
        self._ends = torch.tensor([start + size for start, size in zip(self._starts, self._sizes, strict=True)],
                                  device=self._shadow.device)
        # in situ, devices of one plain model on the shadow weights' device are programmed all at once
        blocks = [layer.block for layer in self.layers]
        self._joint = JointProgramming(blocks) if (
            self.in_situ and JointProgramming.supports(blocks) and blocks[0].device == self._shadow.device) else None
        self._keys: list = [None] * len(self.layers)  # nothing remembered: every bound computed afresh

    def _tracked_state(self, layer: DWLinear) -> torch.Tensor:
        """The states a layer's reprogramming follows: its devices' own (in situ) or its software copy's."""
        return layer.block.state if self.in_situ else layer.software_state

    def _key(self, state: torch.Tensor) -> tuple[int, int]:
        return (id(state), state._version)

    def _flat_tracked(self) -> torch.Tensor | None:
        """The one tensor all the tracked states are views of, when there is one: the software copies (ex situ),
        the devices' states when they are programmed jointly (in situ). A write through any view moves its
        version (views share it), and a replaced view unbinds the group."""
        if not self.in_situ:
            return self._state
        return None if self._joint is None else self._joint.state

    def _refresh_bounds(self) -> None:
        """Recompute the bounds of the layers whose states changed elsewhere (a restored checkpoint, a test)."""
        flat = self._flat_tracked()
        if flat is not None:
            if self._keys != [flat._version]:
                self._bounds.copy_(self._bounds_of_state[:, flat])
            return
        for i, (layer, start, size) in enumerate(zip(self.layers, self._starts, self._sizes, strict=True)):
            state = self._tracked_state(layer)
            if self._keys[i] != self._key(state):
                self._bounds[:, start:start + size] = self._bounds_of_state[:, state.reshape(-1)]

    def _remember_states(self) -> None:
        flat = self._flat_tracked()
        self._keys = ([flat._version] if flat is not None
                      else [self._key(self._tracked_state(layer)) for layer in self.layers])

    # -- the step -----------------------------------------------------------------------------------------

    @torch.no_grad()
    def step(self) -> int:
        """Clip and reprogram every layer of the group (see the module docstring); returns the states changed."""
        if not self._bound():
            self._bind()
        shadow = self._shadow
        assert shadow is not None and self._state is not None
        shadow.clamp_(*self.layers[0]._level_range)
        self._refresh_bounds()
        # outside its bounds ⇔ clamping to them moves the weight: clamp − weight is +0.0 exactly where nothing
        # moved (x − x = +0.0), so its nonzero bits, read as integers, are the devices to reprogram (comparisons
        # into a bool mask and a float nonzero each cost several times this on the CPU)
        moved = torch.clamp(shadow, self._bounds[0], self._bounds[1], out=self._moved).sub_(shadow)
        index = torch.nonzero(moved.view(_SAME_SIZE_INT[moved.dtype])).reshape(-1)
        if index.numel() == 0:
            self._remember_states()
            return 0
        states = torch.bucketize(shadow[index].to(self._boundaries.dtype), self._boundaries)  # as nearest_state
        self._state[index] = states
        self._bounds.index_copy_(1, index, self._bounds_of_state.index_select(1, states))
        if self.in_situ:
            cuts = [0, *torch.searchsorted(index, self._ends).tolist()]  # where each layer's devices begin
            if self._joint is not None:
                self._joint.program(states, index, cuts)
            else:
                on_blocks = states.device == self.layers[0].block.device  # the states need no checks or moves
                for layer, start, low, high in zip(self.layers, self._starts, cuts[:-1], cuts[1:], strict=True):
                    if high > low:
                        layer.block.program(states[low:high], index[low:high] - start, checked=on_blocks)
        self._remember_states()
        return int(index.numel())


# the integer dtype of each float dtype's size: its bits, nonzero exactly where the float is not +0.0
_SAME_SIZE_INT = {torch.float64: torch.int64, torch.float32: torch.int32, torch.float16: torch.int16,
                  torch.bfloat16: torch.int16}


def reprogramming_groups(layers: Iterable[DWLinear]) -> list[Reprogramming]:
    """The layers in groups of equal levels, margin, mode, device and dtype, in order of first appearance."""
    groups: dict[tuple, list[DWLinear]] = {}
    for layer in layers:
        groups.setdefault(_group_key(layer), []).append(layer)
    return [Reprogramming(members) for members in groups.values()]


__all__ = ["Reprogramming", "reprogramming_groups"]
