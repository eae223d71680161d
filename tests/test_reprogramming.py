"""A network's DW layers reprogrammed together after each step, and the layer's one autograd node."""

from __future__ import annotations

import pytest
import torch

from hil.synapses.dw_linear import DWLinear, SynapseConfig
from hil.synapses.reprogramming import Reprogramming, reprogramming_groups
from hil.synapses.sim_synapses import SimSynapseBackend
from sim_backend.dw_synapse import DWSynapseArray, DWSynapseConfig, JointProgramming


def _network(mode: str, margin: float = 0.25,
             config: DWSynapseConfig | None = None) -> tuple[list[DWLinear], SimSynapseBackend]:
    backend = SimSynapseBackend(config or DWSynapseConfig().with_states(5), seed=4)
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


@pytest.mark.parametrize(("mode", "variation"), [("in-situ", 0.0), ("ex-situ", 0.0), ("in-situ", 0.3)])
def test_a_group_reprograms_exactly_as_its_layers_would_one_by_one(mode, variation):
    config = DWSynapseConfig(level_variation=variation).with_states(5)
    one_by_one, backend_a = _network(mode, config=config)
    grouped, backend_b = _network(mode, config=config)
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


def test_arrays_programmed_jointly_end_as_if_programmed_in_turn():
    """Same states, realized weights, counters and random streams as each array's own program()."""
    config = DWSynapseConfig(levels=(-1.0, 0.0, 1.0), sigma=(0.1, 0.2, 0.3))
    sizes = [50, 7, 300]
    in_turn = [DWSynapseArray(config, n, seed=5 + i) for i, n in enumerate(sizes)]
    jointly = [DWSynapseArray(config, n, seed=5 + i) for i, n in enumerate(sizes)]
    joint = JointProgramming(jointly)
    picks = torch.Generator().manual_seed(3)
    starts = [0, 50, 57]
    for round_ in range(6):
        locals_ = [torch.randperm(n, generator=picks)[:n // (2 + round_)].sort().values for n in sizes]
        if round_ == 2:
            locals_[1] = locals_[1][:0]  # an array with nothing to program this time
        states = [torch.randint(0, 3, (len(i),), generator=picks) for i in locals_]
        for array, index, state in zip(in_turn, locals_, states, strict=True):
            array.program(state, index)
        cuts = [0, *torch.tensor([len(i) for i in locals_]).cumsum(0).tolist()]
        joint.program(torch.cat(states), torch.cat([i + s for i, s in zip(locals_, starts, strict=True)]), cuts)
    assert joint.bound()
    for a, b in zip(in_turn, jointly, strict=True):
        assert torch.equal(a.state, b.state) and torch.equal(a.weight, b.weight)
        assert a.program_events == b.program_events > 0
        assert torch.equal(a.generator.get_state(), b.generator.get_state())
    jointly[2].program(torch.zeros(300, dtype=torch.long))  # a whole-array programming: new tensors
    assert not joint.bound()


def test_only_plain_arrays_of_one_model_are_programmed_jointly():
    config = DWSynapseConfig().with_states(3)
    assert JointProgramming.supports([DWSynapseArray(config, 4), DWSynapseArray(config, 9, seed=1)])
    assert not JointProgramming.supports([DWSynapseArray(config, 4), DWSynapseArray(config.with_states(5), 4)])
    assert not JointProgramming.supports([DWSynapseArray(DWSynapseConfig(level_variation=0.2), 4)])
    assert not JointProgramming.supports([])
    with pytest.raises(ValueError, match="plain DWSynapseArrays"):
        JointProgramming([DWSynapseArray(config, 4), DWSynapseArray(config.with_states(5), 4)])


def test_a_group_follows_its_devices_through_a_restored_checkpoint():
    layers, backend = _network("in-situ")
    group = Reprogramming(layers)
    _steps(layers, group.step, steps=5)
    saved = {"backend": backend.state_dict(), "layers": [layer.state_dict() for layer in layers]}
    twin_layers, twin_backend = _network("in-situ")
    twin = Reprogramming(twin_layers)
    _steps(twin_layers, twin.step, steps=2)
    twin_backend.load_state_dict(saved["backend"])  # new state and weight tensors: the group binds them again
    for layer, state in zip(twin_layers, saved["layers"], strict=True):
        layer.load_state_dict(state)
    assert _steps(layers, group.step, steps=10) == _steps(twin_layers, twin.step, steps=10)
    for a, b in zip(layers, twin_layers, strict=True):
        assert torch.equal(a.block.state, b.block.state) and torch.equal(a.block.weight, b.block.weight)
    first = twin_layers[0].block
    assert bool((first.state != 0).any())  # devices that the stale bounds of their old states would move
    with torch.no_grad():  # states written in place, not through the group: the bounds follow them
        first.state.fill_(0)
        twin_layers[0].shadow.fill_(-0.9)  # inside state 0's band (below −0.75), but below state 1's −0.875
    events = first.program_events
    twin.step()
    assert first.program_events == events and bool((first.state == 0).all())


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


@pytest.mark.parametrize("batch", [(5,), (2, 3)])
def test_the_layer_node_gives_the_gradients_of_gain_times_x_w_plus_b_with_w_straight_through(batch):
    layer = _network("in-situ")[0][0]
    x = torch.randn(*batch, 12, dtype=torch.float32, requires_grad=True)
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


def test_a_group_follows_a_layer_given_another_block():
    layers, backend = _network("in-situ")
    group = Reprogramming(layers)
    group.step()
    replaced = layers[1].block
    before, events = replaced.state.clone(), replaced.program_events
    layers[1].block = backend.allocate(replaced.n)  # a fresh block, every device in state 0
    with torch.no_grad():
        layers[1].shadow.fill_(1.0)
    group.step()
    assert bool((layers[1].block.state == 4).all()) and layers[1].block.program_events == replaced.n
    assert torch.equal(replaced.state, before) and replaced.program_events == events  # left as it was


def test_a_layer_made_under_inference_mode_runs_forward():
    x = torch.randn(2, 12)
    with torch.inference_mode():
        layer = _network("in-situ")[0][0]
        y = layer(x)
        expected = torch.nn.functional.linear(x, layer.block.weight.view(9, 12)) * layer.gain + layer.bias
    assert torch.allclose(y, expected, atol=1e-6)
