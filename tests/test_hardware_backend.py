"""The hardware backend on the emulated station: real trials through the instruments, in both modes."""

import numpy as np
import pytest
import torch

from hil.neurons.sources import open_backend
from hil.training import TrainConfig, train
from hil.training.datasets import load_digits
from sim_backend.chip import DEFAULT_CHIP_FILE

STATION = DEFAULT_CHIP_FILE.parent / "station.emulated.yaml"


@pytest.fixture()
def hardware():
    with open_backend("hardware", station=STATION, trials_per_point=40) as (backend, source):
        yield backend, source["emulated_chip"]


def test_pulse_mode_samples_are_trials_on_the_emulated_devices(hardware):
    backend, chip = hardware
    assert backend.mode == "pulse" and backend.n_devices == 12
    neurons = backend.assign(36)  # three neurons per device, time-multiplexed
    i50, w = backend.curve(neurons)
    currents = i50.expand(200, -1).to(torch.float32)
    cycles, trials = int(chip.cycles.sum()), backend.physical_trials
    outcomes = backend.sample(neurons, currents)
    assert outcomes.shape == (200, 36) and outcomes.dtype == torch.float32
    assert set(outcomes.unique().tolist()) == {0.0, 1.0}
    # every sample was one trial on the station: a reset and a bias pulse reached the emulated chip, each between
    # its two balancing lobes (the default station's DC block; the chip counts a lobe as a cycle when it carries a
    # tenth of Ic0 or more: the reset's do, a bias pulse's may not)
    # (and a replay for each of the few trials whose reset failed or read as failed on these realistic devices)
    played = backend.physical_trials - trials
    assert 200 * 36 <= played < 1.02 * 200 * 36
    assert 2 * played < int(chip.cycles.sum()) - cycles <= 6 * played
    assert backend.pulses == 200 * 36 and backend.energy_j > 0
    # the trials follow the devices' measured curves (40 trials per point: a few percent of noise in them)
    expected = float(backend.probability(neurons, currents).mean())
    assert 0.3 < expected < 0.7
    assert abs(float(outcomes.mean()) - expected) < 0.06


def test_curve_mode_samples_measured_curves_and_remeasures_every_k_calls():
    with open_backend("hardware", station=STATION, mode="curve", trials_per_point=20,
                      remeasure_every=3) as (backend, _):
        neurons = backend.assign(24)
        i50, w = backend.curve(neurons)
        currents = (i50 + w).expand(50, -1).to(torch.float32)
        measured = backend.physical_trials
        backend.reseed(5)
        first = backend.sample(neurons, currents)
        assert backend.physical_trials == measured  # sampled from the curves: no pulses
        backend.reseed(5)
        assert torch.equal(backend.sample(neurons, currents), first)
        backend.sample(neurons, currents)  # third call: the devices are measured again (replays aside, as long)
        assert abs(backend.physical_trials - 2 * measured) < 0.02 * measured


def test_a_small_network_trains_with_the_emulated_devices_in_the_loop(hardware):
    backend, chip = hardware
    cycles = int(chip.cycles.sum())
    result = train(load_digits(seed=0), backend, TrainConfig(hidden=(24,), epochs=2, eval_samples=2))
    assert result.test_accuracy > 0.4  # well above chance (0.1) after two epochs
    assert int(chip.cycles.sum()) - cycles > result.pulses  # resets and bias pulses of every sample
    assert result.backend["backend"] == "hardware" and result.backend["physical_trials"] > result.pulses


def test_the_measured_curves_go_with_the_backend_state(hardware):
    """A training checkpoint restores the curves the backend followed, not ones measured again later."""
    backend, _ = hardware
    saved = backend.state_dict()
    before = {d: c.copy() for d, c in backend.counts.items()}
    backend.measure_curves()
    assert any(not np.array_equal(before[d], backend.counts[d]) for d in before)
    backend.load_state_dict(saved)
    assert all(np.array_equal(before[d], backend.counts[d]) for d in before)
    neurons = backend.assign(12)
    assert torch.equal(backend.curve(neurons)[0], backend.curves.curve(neurons)[0])
