"""A network's DW layers reprogrammed together after each step, and the layer's one autograd node."""

from __future__ import annotations

import pytest
import torch

from hil.synapses.dw_linear import DWLinear, SynapseConfig
from hil.synapses.reprogramming import Reprogramming, reprogramming_groups
from hil.synapses.sim_synapses import SimSynapseBackend
from sim_backend.dw_synapse import DWSynapseConfig


def _network(mode: str, margin: float = 0.25) -> tuple[list[DWLinear], SimSynapseBackend]:
    backend = SimSynapseBackend(DWSynapseConfig().with_states(5), seed=4)
    shapes = [(12, 9), (9, 7), (7, 3)]
    return [DWLinear(n_in, n_out, backend, SynapseConfig(mode, margin), seed=10 + i)
            for i, (n_in, n_out) in enumerate(shapes)], backend


def _steps(layers: list[DWLinear], after, steps: int = 40) -> list[int]:
    """``steps`` random optimizer-like moves of every shadow weight, each followed by ``after()``."""
    moves = torch.Generator().manual_seed(99)
    changed = []
    for _ in range(steps):
        with torch.no_grad():
            for layer in layers:
                layer.shadow.add_(0.08 * torch.randn(layer.shadow.shape, generator=moves))
        changed.append(after())
    return changed


@pytest.mark.parametrize("mode", ["in-situ", "ex-situ"])
def test_a_group_reprograms_exactly_as_its_layers_would_one_by_one(mode):
    one_by_one, backend_a = _network(mode)
    grouped, backend_b = _network(mode)
    group = Reprogramming(grouped)
    changed_a = _steps(one_by_one, lambda: sum(layer.after_step() for layer in one_by_one))
    changed_b = _steps(grouped, group.step)
    assert changed_a == changed_b and sum(changed_a) > 50  # the moves did reprogram devices, step after step
    assert backend_a.program_events == backend_b.program_events
    for a, b in zip(one_by_one, grouped, strict=True):
        assert torch.equal(a.shadow, b.shadow) and torch.equal(a.software_state, b.software_state)
        assert torch.equal(a.block.state, b.block.state) and torch.equal(a.block.weight, b.block.weight)
        # every device whose shadow weight is outside its band ± margin was reprogrammed
        low, high = b._bounds_of_state[:, b.software_state]
        assert bool(((b.shadow.reshape(-1) >= low) & (b.shadow.reshape(-1) <= high)).all())


def test_a_group_follows_its_layers_when_their_tensors_are_replaced():
    layers, backend = _network("in-situ")
    group = Reprogramming(layers)
    group.step()
    with torch.no_grad():  # as model.to(device) or a parameter assignment would: new storage for one layer
        layers[1].shadow.data = layers[1].shadow.data.clone().fill_(-1.0)
    events = backend.program_events
    assert group.step() > 0 and backend.program_events > events
    assert bool((layers[1].block.state == 0).all())  # every device of that layer now in the lowest state
    with torch.no_grad():
        layers[1].shadow.fill_(1.0)  # the layer's parameter is a view of the group's storage again
    group.step()
    assert bool((layers[1].block.state == 4).all())
    layers[2].shadow = torch.nn.Parameter(torch.full_like(layers[2].shadow, -1.0))  # another parameter object
    group.step()
    assert bool((layers[2].block.state == 0).all()) and bool((layers[1].block.state == 4).all())


def test_layers_that_differ_are_reprogrammed_in_separate_groups():
    backend = SimSynapseBackend(DWSynapseConfig().with_states(3), seed=0)
    layers = [DWLinear(4, 4, backend, SynapseConfig("in-situ", margin), seed=i)
              for i, margin in enumerate([0.25, 0.5, 0.25])]
    groups = reprogramming_groups(layers)
    assert [[layers.index(m) for m in g.layers] for g in groups] == [[0, 2], [1]]
    with pytest.raises(ValueError, match="differ"):
        Reprogramming(layers)


def test_the_layer_node_gives_the_gradients_of_gain_times_x_w_plus_b_with_w_straight_through():
    layer = _network("in-situ")[0][0]
    x = torch.randn(5, 12, dtype=torch.float32, requires_grad=True)
    y = layer(x)
    upstream = torch.randn(y.shape)
    (y * upstream).sum().backward()
    w = layer.block.weight.reshape(9, 12).clone().requires_grad_(True)
    gain, bias = layer.gain.detach().clone().requires_grad_(True), layer.bias.detach().clone().requires_grad_(True)
    x_ref = x.detach().clone().requires_grad_(True)
    reference = torch.nn.functional.linear(x_ref, w) * gain + bias
    (reference * upstream).sum().backward()
    assert torch.allclose(y, reference, atol=1e-6)
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-6)
    assert torch.allclose(layer.shadow.grad, w.grad, atol=1e-6)  # the devices' gradient, straight through
    assert torch.allclose(layer.periphery.grad[0], gain.grad, atol=1e-5)  # periphery = [gain, bias…]
    assert torch.allclose(layer.periphery.grad[1:], bias.grad, atol=1e-6)


def test_a_double_precision_layer_reprograms_and_trains():
    layer = _network("in-situ")[0][0].double()
    with torch.no_grad():
        layer.shadow.fill_(0.9)
    assert layer.after_step() > 0 and bool((layer.block.state == 4).all())  # 5 states: 0.9 is nearest level 1.0
    y = layer(torch.randn(4, 12, dtype=torch.float64))
    y.sum().backward()
    assert y.dtype == layer.shadow.grad.dtype == layer.periphery.grad.dtype == torch.float64
