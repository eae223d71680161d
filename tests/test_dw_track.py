"""The emulated chip's DW tracks: the pulse amplitude selects the state, the read is linear in the wall position."""

import numpy as np
import pytest
import yaml

from sim_backend import ChipConfigError, load_chip
from sim_backend.chip import DEFAULT_CHIP_FILE
from sim_backend.emulated.bench import SOURCE_IMPEDANCE_OHM

PROGRAM = {0: 0.0, 1: 0.47, 2: 0.60, 3: 0.725, 4: 0.85}  # the chip file's amplitudes (after a reset)


def program(tracks, index, voltage):
    """Reset (-1 V, 1 us), then one pulse of ``voltage`` (1 us): the wall position after it."""
    return tracks.drive(index, np.array([-1.0, 0.0, voltage]), np.array([1e-6, 5e-6, 1e-6]), SOURCE_IMPEDANCE_OHM)[-1]


def test_after_a_reset_the_amplitude_selects_the_state_and_the_wall_lands_with_the_model_noise():
    tracks = load_chip().tracks
    spec = tracks.spec.synapse
    for state, voltage in PROGRAM.items():
        landed = np.array([program(tracks, 0, voltage) for _ in range(300)])
        assert tracks.state(0) == state
        assert abs(landed.mean() - spec.levels[state]) < 4 * 0.1 / np.sqrt(300)
        assert landed.std(ddof=1) == pytest.approx(spec.sigma[state] * spec.spacing, rel=0.2)
    assert tracks.walls.program_events == 5 * 300 * 2 - 300  # every reset and every move; state 0 needs no move


def test_small_short_and_unidirectional_pulses_leave_the_wall_where_it_is():
    tracks = load_chip().tracks
    w = program(tracks, 1, PROGRAM[2])
    for level, width in ((0.3, 1e-6), (0.85, 50e-9), (-0.5, 1e-6), (0.55, 1e-6)):  # below threshold, too short, ...
        assert tracks.drive(1, np.array([level]), np.array([width]), SOURCE_IMPEDANCE_OHM)[-1] == w
    assert tracks.state(1) == 2


def test_the_read_is_linear_in_the_wall_position_between_the_end_conductances():
    tracks = load_chip().tracks
    spec = tracks.spec
    weights = np.linspace(-1, 1, 5)
    assert spec.conductance(weights) == pytest.approx([20e-3, 25e-3, 30e-3, 35e-3, 40e-3])
    assert spec.weight(spec.conductance(weights)) == pytest.approx(weights)
    readings = tracks.readings_ohm(np.full(20000, 0.5))
    assert readings.mean() == pytest.approx(1 / 35e-3, rel=1e-4) and readings.std() / readings.mean() == pytest.approx(
        1e-3, rel=0.05)


def test_a_junction_voltage_above_breakdown_opens_the_track_for_good():
    tracks = load_chip().tracks
    after = tracks.drive(2, np.array([0.47, 2.5, 0.0]), np.array([1e-6, 1e-6, 1e-6]), SOURCE_IMPEDANCE_OHM)
    assert np.isfinite(after[0]) and np.isnan(after[1:]).all() and tracks.destroyed[2]
    assert np.isinf(tracks.read(2, 3)).all() and tracks.resistance_ohm(2) == np.inf


def test_tracks_draw_their_own_streams_and_a_bad_track_section_is_named():
    with_tracks = load_chip()
    raw = yaml.safe_load(DEFAULT_CHIP_FILE.read_text())
    without = load_chip({k: v for k, v in raw.items() if k != "dw_tracks"})
    assert without.tracks is None
    # the Hall bars switch exactly as on a chip without tracks
    a = with_tracks.apply_waveform([0, 5], [1.4e-3, -3e-3, 2.3e-3], [1e-5, 1e-4, 1e-5])
    b = without.apply_waveform([0, 5], [1.4e-3, -3e-3, 2.3e-3], [1e-5, 1e-4, 1e-5])
    assert a.tolist() == b.tolist()
    bad = {**raw, "dw_tracks": {**raw["dw_tracks"], "conductance": {"low": "40mS", "high": "20mS"}}}
    with pytest.raises(ChipConfigError, match=r"dw_tracks\.conductance\.high: must be above conductance\.low"):
        load_chip(bad)
    clash = {**raw, "dw_tracks": {**raw["dw_tracks"], "tracks": [{"id": "w3-1"}]}}
    with pytest.raises(ChipConfigError, match="'w3-1' is also the id of a Hall bar"):
        load_chip(clash)
