"""DW synapse tracks on the emulated station: programming characterization over TCP, fits, refusals, resume."""

import json
import re

import numpy as np
import pytest
import yaml

import protocols.dw_programming
from hil.cli import main
from hil.lab.characterization import characterize
from hil.session import Session
from instruments.config_files import EMULATED_STATION_FILE, PROTOCOL_FILES
from instruments.station import Station
from instruments.station_config import SafetyError, load_station_spec
from instruments.track_programming import program_track
from instruments.transport import TransportLog
from protocols.base import ProtocolConfigError
from protocols.registry import load_protocol
from sim_backend.chip import load_chip
from sim_backend.emulated.probe_station import EmulatedStation

PROTOCOL = PROTOCOL_FILES / "dw-programming.yaml"
TRACKS = ["dw-1", "dw-2", "dw-3", "dw-4"]


def hil(*args):
    """The command line, in this process: its exit status."""
    return main([str(a) for a in args])


def protocol(**changes):
    raw = yaml.safe_load(PROTOCOL.read_text())
    raw.update(changes)
    return raw


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """Every track programmed 60 times to each state, 3 readings each, 99 % intervals."""
    out = tmp_path_factory.mktemp("dw") / "dw.h5"
    result = characterize(EMULATED_STATION_FILE, [protocol(repeats=60, readings=3, confidence=0.99)], out,
                          progress=False)
    assert result.statuses == {"dw_programming": "completed"}
    return out


@pytest.fixture(scope="module")
def truth():
    """The emulated chip's synapse model: levels and the programming noise in weight units."""
    synapse = load_chip().tracks.spec.synapse
    return np.array(synapse.levels), np.array(synapse.sigma) * synapse.spacing


def analysis(path, name):
    with Session(path) as s:
        return s.runs[0].analysis(name)


def test_every_programming_is_recorded_with_its_readings(session):
    with Session(session) as s:
        rows = s.runs[0].table("dw_programmings")
        assert s.attrs["dw_tracks"] == TRACKS and all(d["id"][0] == "w" for d in s.attrs["devices"])
    assert rows.size == 4 * 5 * 60
    for track in TRACKS:
        mine = rows[rows["device"] == track.encode()]
        assert np.bincount(mine["state"]).tolist() == [60] * 5
    # the reset leaves every wall near state 0 (weight -1: the antiparallel end, 50 ohm), within its landing noise
    reset_weight = (1 / rows["reset_reading_ohm"] - 0.03) / 0.01
    assert np.all(np.abs(reset_weight + 1) < 0.5) and abs(np.median(rows["reset_reading_ohm"]) - 50) < 1
    assert set(rows["program_v"]) == {0.0, 0.47, 0.60, 0.725, 0.85} and set(rows["n_readings"]) == {3}
    # the weight rule: w = (2G - G_low - G_high) / (G_high - G_low), here 20 and 40 mS
    assert np.allclose(rows["weight"], (rows["conductance_s"] - 0.03) / 0.01)


def test_recovers_the_emulated_chips_levels_and_sigma_within_their_intervals(session, truth):
    levels, sigma = truth
    model = analysis(session, "dw_model")
    for k in range(5):  # pooled over the four tracks: 240 programmings per state
        low, high = model["level_intervals"][k]
        assert low < levels[k] < high, (k, model["levels"][k])
        s_low, s_high = np.array(model["sigma_intervals"][k]) * model["spacing"]  # back to weight units
        assert s_low < sigma[k] < s_high, (k, model["sigma"][k])
        # decisive: the interval tells sigma = 0.2 spacings from 0.15 and 0.25
        assert 0.15 < model["sigma_intervals"][k][0] and model["sigma_intervals"][k][1] < 0.25
    assert model["level_variation"] < 0.05  # the chip's tracks share their levels
    fits = analysis(session, "dw_states")
    assert fits.size == 20
    inside_level = (fits["level_low"] < levels[fits["state"]]) & (levels[fits["state"]] < fits["level_high"])
    inside_sigma = (fits["sigma_low"] < sigma[fits["state"]]) & (sigma[fits["state"]] < fits["sigma_high"])
    assert inside_level.sum() >= 19 and inside_sigma.sum() >= 19  # 99 % intervals: one miss in 20 is chance
    # the read noise of one reading (0.1 % of R) is far below the programming noise
    assert np.all(fits["read_noise"] < 0.05 * fits["sigma"])


def test_synapse_model_file_round_trip_and_no_overwrite(session, tmp_path, capsys):
    from hil.synapses.synapse_model_file import load_synapse_model

    out = tmp_path / "model.yaml"
    calibrate = ["calibrate", str(session), "--synapse-model", str(out)]
    assert hil(*calibrate) == 0
    printed = capsys.readouterr().out
    assert "state 4: level" in printed and "synapse model file" in printed
    written = out.read_text()
    assert yaml.safe_load(written)["format"] == "hil-synapse-model/1"
    config = load_synapse_model(out)
    model = analysis(session, "dw_model")
    assert config.levels == pytest.approx(model["levels"]) and config.sigma == pytest.approx(model["sigma"])
    # the loaded model's noise, in weight units, is the fitted one
    assert np.array(config.sigma) * config.spacing == pytest.approx(model["sigma_weight"])
    assert hil(*calibrate) == 2 and "already exists" in capsys.readouterr().err
    assert out.read_text() == written
    assert hil(*calibrate, "--force") == 0


def test_replay_backend_draws_every_weight_from_the_recorded_outcomes(session):
    import torch

    from hil.synapses.recorded_synapses import RecordedSynapseBackend

    with Session(session) as s:
        rows = s.runs[0].table("dw_programmings")
    backend = RecordedSynapseBackend.from_session(session, tracks=["dw-2"], seed=3)
    block = backend.allocate(5000)
    for k in range(5):
        recorded = rows["weight"][(rows["device"] == b"dw-2") & (rows["state"] == k)].astype(np.float32)
        realized = block.program(torch.full((5000,), k)).numpy()
        assert np.isin(realized, recorded).all()  # every realized weight is one that was measured
        assert len(np.unique(realized)) == len(np.unique(recorded))  # and every outcome is drawn
        assert abs(realized.mean() - recorded.mean()) < 4 * recorded.std() / np.sqrt(60)
    assert torch.equal(block.read(), block.weight)  # persists until the next programming
    assert backend.program_events == 5 * 5000
    config = backend.config
    assert backend.energy_j == pytest.approx(25000 * config.write_energy_j + 5000 * config.read_energy_j)
    assert backend.config.levels == pytest.approx(
        [rows["weight"][(rows["device"] == b"dw-2") & (rows["state"] == k)].mean() for k in range(5)])


def test_programming_pulses_beyond_the_limits_are_refused_before_anything_is_sent(tmp_path):
    spec = load_station_spec(EMULATED_STATION_FILE)
    # from the files: refused before any instrument is connected, and no session file is made
    too_high = protocol(program_voltages=["0 V", "0.47 V", "0.60 V", "0.725 V", "1.5 V"])
    with pytest.raises(SafetyError, match=r"1\.5 V on DW track dw-1 exceeds safety\.dw_track\.max_voltage"):
        load_protocol(too_high, spec)
    with pytest.raises(SafetyError, match=r"reset pulse width 2e-05 s on DW track dw-1 is outside \(0, 1e-05 s\]"):
        load_protocol(protocol(reset={"voltage": "-1.0 V", "width": "20us"}), spec)
    with pytest.raises(SafetyError):
        characterize(EMULATED_STATION_FILE, [too_high], tmp_path / "never.h5", progress=False)
    assert not (tmp_path / "never.h5").exists()
    # at run time, on a connected station: not one command goes out, and the track is untouched
    log = TransportLog()
    with EmulatedStation(spec) as emulated, Station.open(emulated.spec, record=log) as station:
        tracks = emulated.chip.tracks
        before, events = len(log.entries), tracks.walls.program_events
        for voltages, reset in (([0.47, 1.3], -1.0), ([0.47], -1.5), ([0.47], 0.5)):
            with pytest.raises(SafetyError, match="nothing was sent"):
                program_track(station, "dw-3", voltages, reset, readings=2)
        assert len(log.entries) == before and tracks.walls.program_events == events
        assert not tracks.destroyed.any()


def test_a_protocol_of_the_other_device_kind_is_refused(tmp_path):
    spec = load_station_spec(EMULATED_STATION_FILE)
    with pytest.raises(ProtocolConfigError, match=r"devices: 'w3-1' is a hall_bar; dw_programming measures dw_track"):
        load_protocol(protocol(devices=["w3-1"]), spec)
    sweep = yaml.safe_load((PROTOCOL_FILES / "bias-sweep.yaml").read_text())
    with pytest.raises(ProtocolConfigError, match=r"devices: 'dw-2' is a dw_track; bias_sweep measures hall_bar"):
        load_protocol({**sweep, "devices": ["w3-1", "dw-2"]}, spec)
    assert load_protocol(sweep, spec).devices == spec.devices_of("hall_bar")  # all: the Hall bars only
    assert load_protocol(protocol(), spec).devices == TRACKS
    log = TransportLog()
    with EmulatedStation(spec) as emulated, Station.open(emulated.spec, record=log) as station:
        before = len(log.entries)
        with pytest.raises(SafetyError, match="device w5-1: it is a hall bar, not a dw track; nothing was sent"):
            program_track(station, "w5-1", [0.47], -1.0, readings=1)
        with pytest.raises(SafetyError, match="device dw-1: it is a dw track, not a hall bar; nothing was sent"):
            station.pulse("dw-1", 1e-3, 1e-6)
        with pytest.raises(SafetyError, match="device dw-1: it is a dw track"):
            station.dc_sweep("dw-1", [1e-4, 2e-4], 1e-3)
        assert len(log.entries) == before


def test_an_interrupted_run_resumes_with_every_programming_exactly_once(tmp_path, monkeypatch):
    raw = protocol(devices=["dw-1", "dw-4"], repeats=8, batch=10, readings=2)
    out = tmp_path / "interrupted.h5"
    calls = {"n": 0}
    real = protocols.dw_programming.program_track

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(protocols.dw_programming, "program_track", interrupted)
    with pytest.raises(KeyboardInterrupt):
        characterize(EMULATED_STATION_FILE, [raw], out, progress=False)
    with Session(out) as s:
        assert s.runs[0].status == "interrupted"
        before = s.runs[0].table("dw_programmings")
    assert np.unique(before["unit"]).tolist() == [0, 1, 2]
    monkeypatch.setattr(protocols.dw_programming, "program_track", real)
    assert characterize(EMULATED_STATION_FILE, [raw], out, resume=True, progress=False).statuses == {
        "dw_programming": "completed"}
    with Session(out) as s:
        rows = s.runs[0].table("dw_programmings")
        assert s.attrs["attempts"] == 2 and s.runs[0].analysis("dw_model")["tracks"] == ["dw-1", "dw-4"]
    units, counts = np.unique(rows["unit"], return_counts=True)
    assert units.tolist() == list(range(8)) and counts.tolist() == [10, 10, 10, 10] * 2  # 2 tracks × 40 in tens
    assert np.array_equal(rows[np.isin(rows["unit"], [0, 1, 2])], before)


def test_report_draws_the_state_histograms_and_info_lists_the_fits(session, tmp_path, capsys):
    assert hil("report", session, "--out", tmp_path) == 0
    figure = tmp_path / "dw_states.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 20_000
    capsys.readouterr()
    assert hil("info", session) == 0
    info = capsys.readouterr().out
    assert "synapse model (4 tracks, 99 % intervals" in info
    assert all(re.search(rf"^{track} +4 +60 +\+", info, re.MULTILINE) for track in TRACKS)  # state 4: 60, level
    assert hil("info", session, "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert [t["id"] for t in data["dw_tracks"]] == TRACKS
    assert data["dw_tracks"][0]["states"]["2"]["n"] == 60
