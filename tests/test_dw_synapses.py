"""The DW synapse device model, its backend and the DW linear layer (physics.md §2)."""

from __future__ import annotations

import math

import pytest
import torch
import yaml
from scipy import stats

from hil.synapses.dw_linear import DWLinear, SynapseConfig
from hil.synapses.sim_synapses import SimSynapseBackend
from instruments.config_files import DEFAULT_CHIP_FILE
from sim_backend.chip import ChipConfigError, load_chip
from sim_backend.dw_synapse import DWSynapseArray, DWSynapseConfig, SynapseConfigError, even_levels


@pytest.mark.parametrize("states", [2, 3, 5])
def test_programming_noise_matches_the_configured_sigma_for_every_state(states):
    config = DWSynapseConfig(levels=even_levels(states), sigma=0.2)
    n_per_state = 20_000
    array = DWSynapseArray(config, states * n_per_state, seed=3)
    targets = torch.arange(states).repeat_interleave(n_per_state)
    realized = array.program(targets).double()
    spacing = 2.0 / (states - 1)
    for k in range(states):
        w = realized[targets == k]
        n = w.numel()
        # the mean: within its 99.9 % t interval of the nominal level
        half = stats.t.ppf(0.9995, n - 1) * float(w.std()) / math.sqrt(n)
        assert abs(float(w.mean()) - even_levels(states)[k]) < half
        # the variance: (n-1) s²/σ² is χ²(n-1); the configured σ lies inside the 99.9 % interval
        ratio = (n - 1) * float(w.var()) / (0.2 * spacing) ** 2
        assert stats.chi2.ppf(0.0005, n - 1) < ratio < stats.chi2.ppf(0.9995, n - 1)
        # and the landing is Gaussian: the fraction beyond 2σ is binomial around 4.55 %
        beyond = int(((w - even_levels(states)[k]).abs() > 2 * 0.2 * spacing).sum())
        assert stats.binomtest(beyond, n, 2 * stats.norm.sf(2)).pvalue > 1e-3


def test_per_state_sigma_and_zero_noise():
    config = DWSynapseConfig(levels=(-1.0, 0.0, 1.0), sigma=(0.0, 0.3, 0.0))
    array = DWSynapseArray(config, 3000, seed=1)
    realized = array.program(torch.tensor([0, 1, 2]).repeat(1000))
    assert torch.equal(realized[0::3], torch.full((1000,), -1.0))
    assert torch.equal(realized[2::3], torch.full((1000,), 1.0))
    assert 0.27 < float(realized[1::3].std()) < 0.33


def test_energy_is_events_times_write_energy_exactly_and_reads_are_counted():
    backend = SimSynapseBackend(DWSynapseConfig(write_energy_j=5e-15, read_energy_j=1e-15), seed=0)
    block = backend.allocate(1000)
    block.program(torch.randint(0, 5, (1000,)))
    block.program(torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6]))
    block.program(torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6]))  # the same states again: events all the same
    assert backend.program_events == 1006
    assert backend.program_energy_j == 1006 * 5e-15
    block.read(7)
    assert backend.read_events == 7000
    assert backend.energy_j == pytest.approx(1006 * 5e-15 + 7000 * 1e-15, rel=1e-12)
    backend.reset_counters()
    assert backend.program_events == backend.read_events == 0 and backend.energy_j == 0


def test_realized_weights_persist_until_the_next_programming():
    array = DWSynapseArray(DWSynapseConfig(), 500, seed=2)
    first = array.program(torch.randint(0, 5, (500,))).clone()
    assert torch.equal(array.read(), first) and torch.equal(array.read(), first)
    array.program(torch.tensor([4, 4]), torch.tensor([10, 20]))
    after = array.read()
    unchanged = torch.ones(500, dtype=torch.bool)
    unchanged[[10, 20]] = False
    assert torch.equal(after[unchanged], first[unchanged])
    assert not torch.equal(after[[10, 20]], first[[10, 20]])
    assert array.state[10] == 4 and array.state[20] == 4


def test_device_to_device_level_variation_is_fixed_per_device_and_retention_drift_wanders():
    config = DWSynapseConfig(sigma=0.0, level_variation=0.1, retention_drift=0.05)
    array = DWSynapseArray(config, 20_000, seed=4)
    states = torch.full((20_000,), 3)
    once = array.program(states).clone()
    twice = array.program(states).clone()
    assert torch.equal(once, twice)  # no programming noise: each device lands on its own level every time
    assert 0.045 < float(once.std()) < 0.055  # 0.1 spacing (0.5) of spread across devices
    array.elapse(4.0)  # 0.05 spacing per sqrt(s): 0.05 after 4 s
    assert 0.045 < float((array.read() - once).std()) < 0.055
    with pytest.raises(ValueError):
        array.elapse(-1.0)


def test_vectorized_over_a_million_synapses():
    array = DWSynapseArray(DWSynapseConfig(), 2_000_000, seed=0)
    realized = array.program(torch.randint(0, 5, (2_000_000,)))
    assert realized.shape == (2_000_000,) and array.program_events == 2_000_000


def test_the_chip_file_holds_synapses_beside_the_hall_bars(tmp_path):
    path = edited_chip(tmp_path, lambda chip: chip.update(synapses={"states": 3, "sigma": 0.1,
                                                                    "write_energy": "7fJ"}))
    assert len(load_chip(path)) == 12
    backend = SimSynapseBackend.from_chip_file(path)
    assert backend.config.levels == (-1.0, 0.0, 1.0) and backend.config.sigma == (0.1, 0.1, 0.1)
    assert backend.config.write_energy_j == pytest.approx(7e-15)


@pytest.mark.parametrize("synapses, message", [
    ({"states": 1}, "synapses.states"),
    ({"states": 3, "levels": [-1, 0, 1]}, "synapses.levels"),
    ({"levels": [1, 0, -1]}, "ascending"),
    ({"sigma": [0.1, 0.2]}, "synapses.sigma"),
    ({"sigma": -0.1}, "synapses.sigma"),
    ({"write_energy": "5 m"}, "synapses.write_energy"),
    ({"colour": "blue"}, "synapses.colour"),
])
def test_a_bad_synapse_section_is_refused_naming_the_key(tmp_path, synapses, message):
    path = edited_chip(tmp_path, lambda chip: chip.update(synapses=synapses))
    with pytest.raises(ChipConfigError, match=message.replace(".", r"\.")):
        load_chip(path)
    with pytest.raises(SynapseConfigError):
        DWSynapseConfig.from_mapping(synapses)


def edited_chip(tmp_path, edit) -> str:
    """The embedded chip file with ``edit`` applied to its mapping, written to ``tmp_path``."""
    raw = yaml.safe_load(DEFAULT_CHIP_FILE.read_text())
    edit(raw)
    path = tmp_path / "chip.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def _layer(mode: str, margin: float, states: int = 5, sigma: float = 0.0) -> tuple[DWLinear, SimSynapseBackend]:
    backend = SimSynapseBackend(DWSynapseConfig(levels=even_levels(states), sigma=sigma), seed=0)
    return DWLinear(4, 3, backend, SynapseConfig(mode, margin), seed=1), backend


def test_in_situ_layer_programs_its_devices_and_the_gradient_reaches_the_shadow_weights():
    layer, backend = _layer("in-situ", 0.0, sigma=0.2)
    assert backend.program_events == 12  # the initial programming of every weight
    x = torch.randn(8, 4)
    y = layer(x)
    realized = backend.blocks[0].weight.reshape(3, 4)
    assert torch.allclose(y, layer.gain * x @ realized.T + layer.bias, atol=1e-6)
    y.sum().backward()
    assert torch.allclose(layer.shadow.grad, (layer.gain * x).sum(0).expand(3, 4).detach(), atol=1e-5)
    assert backend.read_events == 8 * 12  # every inference read every synapse


def test_margin_reprograms_only_beyond_the_band_plus_margin():
    layer, backend = _layer("in-situ", 0.2)  # 5 states: spacing 0.5, band of state 2 is [-0.25, 0.25]
    with torch.no_grad():
        layer.shadow.fill_(0.0)
    layer.after_step()
    block = backend.blocks[0]
    with torch.no_grad():
        block.program(torch.full((12,), 2))
    events = backend.program_events
    with torch.no_grad():
        layer.shadow.fill_(0.3)  # out of the band by 0.05, inside the margin of 0.1
    assert layer.after_step() == 0 and backend.program_events == events
    with torch.no_grad():
        layer.shadow[0, 0] = 0.36  # beyond band + margin: to the nearest state, 3
        layer.shadow[1, 1] = -0.9  # far beyond: straight to state 0
    assert layer.after_step() == 2 and backend.program_events == events + 2
    assert int(block.state[0]) == 3 and int(block.state[5]) == 0
    with torch.no_grad():
        layer.shadow.fill_(5.0)
    layer.after_step()
    assert float(layer.shadow.detach().max()) == 1.0  # the shadow weights stay in the level range


def test_ex_situ_layer_programs_once_at_deployment_and_each_deployment_is_a_new_draw():
    layer, backend = _layer("ex-situ", 0.0, sigma=0.3)
    assert backend.program_events == 0
    x = torch.randn(16, 4)
    assert not torch.equal(layer(x), layer(x))  # training: fresh model noise every pass, no device touched
    with torch.no_grad():
        layer.shadow.fill_(0.9)
    assert layer.after_step() == 12 and backend.program_events == 0
    first = layer.deploy().clone()
    assert backend.program_events == 12 and torch.equal(layer(x), layer(x))
    second = layer.deploy()
    assert backend.program_events == 24 and not torch.equal(first, second)
    assert torch.equal(layer.quantized(), torch.ones(3, 4))


def test_unknown_mode_and_negative_margin_are_refused():
    with pytest.raises(ValueError, match="synapse mode"):
        SynapseConfig("halfway", 0.1)
    with pytest.raises(ValueError, match="margin"):
        SynapseConfig("in-situ", -0.1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_layer_runs_on_cuda():
    backend = SimSynapseBackend(DWSynapseConfig(), seed=0, device="cuda")
    layer = DWLinear(8, 4, backend, SynapseConfig("in-situ", 0.1))
    y = layer(torch.randn(2, 8, device="cuda"))
    assert y.device.type == "cuda"
