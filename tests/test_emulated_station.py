"""The drivers end to end over pyvisa-py TCP against the emulated station: trials, refusals, safe state."""

import dataclasses
import math

import numpy as np
import pytest
import torch
import yaml
from pymeasure.instruments.keithley import Keithley2450 as StockKeithley2450
from pymeasure.instruments.keysight import Keysight81160A as StockKeysight81160A
from scipy import stats

from instruments import adapters as adapters_module
from instruments.adapters import InstrumentMismatchError, open_connection
from instruments.config_files import IDEAL_CHIP_FILE
from instruments.drivers.errors import InstrumentError
from instruments.drivers.keithley707b import Keithley707B
from instruments.drivers.keithley2450 import Keithley2450
from instruments.drivers.keysight81160a import Keysight81160A
from instruments.station import Station
from instruments.station_config import SafetyError, parse_station
from instruments.trials import run_trials_fast, run_trials_naive
from sim_backend.chip import DEFAULT_CHIP_FILE
from sim_backend.emulated.keysight81160a_emulator import upload_time_s
from sim_backend.emulated.probe_station import EmulatedStation
from sim_backend.sot import exact_i50

STATION_FILE = DEFAULT_CHIP_FILE.parent / "station.emulated.yaml"
PULSE_S = 10e-6
RESET_A = {3e-6: -1.95e-3, 5e-6: -3.25e-3, 10e-6: -6.5e-3}


def spec_with(edit=None):
    raw = yaml.safe_load(STATION_FILE.read_text())
    if edit is not None:
        edit(raw)
    return parse_station(raw, STATION_FILE.resolve())


@pytest.fixture()
def emulated():
    # the ideal devices: what is checked here is that the station plays and reads exactly what the chip does
    # (the default chip's own effects on the same trials: tests/test_protocols_cope.py, tests/test_bench_wiring.py)
    with EmulatedStation(STATION_FILE, chip=IDEAL_CHIP_FILE) as emu:
        yield emu


@pytest.fixture()
def station(emulated):
    with Station.open(emulated.spec) as st:
        yield st


def logs(emulated):
    return {role: list(inst.log) for role, inst in emulated.instruments.items()}


def i50_of(emulated, device):
    chip = emulated.chip
    i = chip.index(device)
    return float(exact_i50(chip.ic0_a[i], chip.delta[i], PULSE_S))


def test_stock_pymeasure_2450_sources_and_reads_through_the_emulator(emulated):
    matrix = Keithley707B(open_connection(emulated.addresses["switch_matrix"]))
    matrix.exclusive_close(sorted(emulated.spec.route("w5-2")))
    assert matrix.closed_crosspoints == emulated.spec.route("w5-2")  # the relays have switched
    smu = StockKeithley2450(open_connection(emulated.addresses["source_meter"]))
    assert "MODEL 2450" in smu.id
    smu.apply_current(compliance_voltage=2)
    smu.source_current = 1e-4
    assert smu.source_current == pytest.approx(1e-4)
    smu.measure_resistance(nplc=0.01)
    smu.wires = 4
    assert smu.wires == 4
    smu.enable_source()
    r_xy = smu.resistance
    chip = emulated.chip
    i = chip.index("w5-2")
    down = float(chip.r0_ohm[i] - chip.delta_r_ahe_ohm[i] / 2)
    assert r_xy == pytest.approx(down, abs=0.1)  # every device starts magnetized down
    smu.wires = 2
    assert smu.resistance == pytest.approx(float(chip.r_ch_ohm[i]))
    smu.disable_source()
    assert smu.resistance == pytest.approx(9.9e37)  # output off: overflow


def test_stock_pymeasure_81160a_sets_pulses_that_reach_the_routed_device(emulated):
    matrix = Keithley707B(open_connection(emulated.addresses["switch_matrix"]))
    matrix.exclusive_close(sorted(emulated.spec.route("w3-1")))
    assert matrix.closed_crosspoints == emulated.spec.route("w3-1")
    generator = StockKeysight81160A(open_connection(emulated.addresses["pulse_generator"]))
    assert "81160A" in generator.id
    ch = generator.channels[1]
    ch.shape = "PULS"
    ch.pulse_period = 40e-6
    ch.pulse_width = 10e-6
    ch.amplitude = 3.0
    ch.offset = 1.5
    assert ch.shape == "PULS"
    assert ch.pulse_width == pytest.approx(10e-6) and ch.pulse_period == pytest.approx(40e-6)
    assert ch.amplitude == pytest.approx(3.0) and ch.voltage_high == pytest.approx(3.0)
    ch.trigger_mode = "MAN"
    ch.output = True
    before = int(emulated.chip.cycles[0])
    generator.trigger()
    generator.ask("*OPC?")
    # a 3 V pulse through ~1 kΩ + 50 Ω is ~2.9 mA, far above this 3 µm device's Ic0: it switched up
    assert int(emulated.chip.cycles[0]) > before
    assert int(emulated.chip.m_z[0]) == 1


@pytest.mark.parametrize("role", ["source_meter", "pulse_generator", "switch_matrix"])
def test_unknown_command_is_queued_and_raised_by_the_driver(emulated, role):
    driver = {"source_meter": Keithley2450, "pulse_generator": Keysight81160A,
              "switch_matrix": Keithley707B}[role](open_connection(emulated.addresses[role]))
    driver.write("this is not a command" if role == "switch_matrix" else ":FOO:BAR 1")
    code = "-285" if role == "switch_matrix" else "-113"
    with pytest.raises(InstrumentError, match=code):
        driver.check_errors()
    assert driver.check_errors() == []  # the queue is empty again


def test_fast_path_switching_agrees_with_the_simulator(emulated, station):
    """Binomial test of the measured fraction against the device's own probability, three widths."""
    chip = emulated.chip
    for device in ("w3-2", "w5-3", "w10-1"):
        width = station.spec.device(device).width_m
        current = i50_of(emulated, device) * 1.01
        batch = run_trials_fast(station, device, np.full(1500, current), PULSE_S, RESET_A[round(width, 12)])
        assert batch.reset_ok.all()
        i = chip.index(device)
        p = float(chip.switching_probability(torch.tensor([i]), torch.tensor([current], dtype=torch.float64),
                                             PULSE_S)[0])
        k = int(batch.switched.sum())
        assert 0.2 < p < 0.8
        assert stats.binomtest(k, batch.switched.size, p).pvalue > 1e-3, (device, k, p)


def test_fast_and_naive_paths_agree_and_report_instrument_time(emulated, station):
    current = i50_of(emulated, "w5-1")
    station.measure_channel_resistance("w5-1")  # routing and R_ch are once per device, not per batch
    start = emulated.clock_s
    generator = emulated.instruments["pulse_generator"]
    generator.log.clear()
    fast = run_trials_fast(station, "w5-1", np.full(1500, current), PULSE_S, RESET_A[5e-6])
    # the trials' time model counts pulses, gaps and reads; the bench clock also counts the waveform uploads
    blocks = [m.partition(",#")[2] for m in generator.log if m.upper().startswith(":DATA1:DAC VOLATILE,#")]
    uploads = [upload_time_s(int(b[1:1 + int(b[0])]) // 2, generator.command_time_s) for b in blocks]  # 2 B/point
    assert len(uploads) == 1
    assert fast.instrument_time_s + sum(uploads) == pytest.approx(emulated.clock_s - start, rel=1e-6)
    start = emulated.clock_s
    naive = run_trials_naive(station, "w5-1", np.full(300, current), PULSE_S, RESET_A[5e-6])
    assert naive.instrument_time_s == pytest.approx(emulated.clock_s - start, rel=1e-6)
    table = [[fast.switched.sum(), (~fast.switched).sum()], [naive.switched.sum(), (~naive.switched).sum()]]
    assert stats.chi2_contingency(table).pvalue > 1e-3
    assert type(fast) is type(naive) and fast.path == "fast" and naive.path == "naive"
    # the fast path's modeled trial: 100 us reset + 10 us bias, each between its balancing lobes (4 widths on either
    # side: the default station's DC block), + gaps + two read apertures
    assert fast.instrument_time_s / 1500 == pytest.approx(9 * 100e-6 + 9 * 10e-6 + 2 * (5e-6 + 200e-6))


def test_over_limit_pulse_is_refused_before_any_command(emulated, station):
    station.measure_channel_resistance("w3-1")
    before = logs(emulated)
    with pytest.raises(SafetyError, match=r"4 mA on device w3-1 exceeds its limit of 3 mA; nothing was sent"):
        station.pulse("w3-1", 4e-3, PULSE_S)
    with pytest.raises(SafetyError, match="w3-1"):
        run_trials_fast(station, "w3-1", [1e-3, 3.5e-3], PULSE_S, -1.95e-3)
    with pytest.raises(SafetyError, match="DC current"):
        station.dc_sweep("w3-1", [0.0, 5e-3], 1e-3)
    with pytest.raises(SafetyError, match="pulse width"):
        station.pulse("w3-1", 1e-3, 5e-3)
    assert logs(emulated) == before


def test_forbidden_crosspoint_is_refused_before_any_command(emulated):
    spec = dataclasses.replace(emulated.spec, forbidden=[*emulated.spec.forbidden, "2E07"])
    with Station.open(spec) as st:
        before = logs(emulated)
        with pytest.raises(SafetyError, match=r"w5-1.*2E07.*forbidden"):
            st.route("w5-1")  # w5-1's V+ pad is slot 2 column 7
        assert logs(emulated) == before
        st.route("w5-2")  # other devices still route


def test_wrong_instrument_at_an_address_is_refused(emulated):
    addresses = dict(emulated.addresses)
    instruments = {role: dataclasses.replace(inst, address=addresses["switch_matrix"] if role == "source_meter"
                                             else inst.address)
                   for role, inst in emulated.spec.instruments.items()}
    spec = dataclasses.replace(emulated.spec, instruments=instruments)
    with pytest.raises(InstrumentMismatchError, match=r"source_meter at .*Keithley2450.*707B"):
        Station.open(spec)
    for inst in emulated.instruments.values():
        assert set(inst.log) <= {"*IDN?"}, inst.log  # nothing but the identification query was sent


def test_compliance_above_the_station_maximum_is_refused():
    def edit(raw):
        raw["readout"]["compliance"] = "20 V"

    with pytest.raises(SafetyError, match="compliance"):
        spec_with(edit)
    with pytest.raises(SafetyError, match="12 V exceeds the station maximum of 10 V"):
        spec_with().check_compliance(12.0)


def test_outputs_off_and_matrix_open_after_an_error(emulated):
    with pytest.raises(RuntimeError, match="boom"), Station.open(emulated.spec) as st:
        st.route("w10-2")
        st.pulse("w10-2", 5e-3, PULSE_S)
        assert emulated.instruments["switch_matrix"].closed
        raise RuntimeError("boom")
    assert emulated.instruments["switch_matrix"].closed == set()
    assert emulated.bench.routed_device is None
    assert not emulated.instruments["pulse_generator"].channels[1].output
    assert not emulated.instruments["source_meter"].output_on


def test_a_device_driven_past_breakdown_reads_open(emulated):
    def edit(raw):
        raw["devices"][0]["max_current"] = "9mA"  # a deliberately unsafe limit for w3-1 (breakdown 6 mA)
        raw["readout"]["compliance"] = "10 V"  # enough voltage to push 7 mA through its ~1 kΩ channel

    spec = dataclasses.replace(spec_with(edit), instruments=emulated.spec.instruments)
    with Station.open(spec) as st:
        st.dc_sweep("w3-1", [1e-3, 7e-3], 1e-3)
        assert bool(emulated.chip.destroyed[0])
        assert st.read_hall("w3-1")[0] == pytest.approx(9.9e37)
        with pytest.raises(SafetyError, match="reads open"):
            st.measure_channel_resistance("w3-1")
    assert math.isfinite(float(emulated.chip.read("w3-2")[0, 0]))


def test_triggered_readings_that_never_came_name_the_trigger_wiring(emulated, station, monkeypatch):
    monkeypatch.setattr(adapters_module, "TRIGGER_GRACE_S", 0.1)
    station.measure_channel_resistance("w5-1")
    source_meter = station.source_meter
    source_meter.arm_timed_readings(3, [1e-4], 1e-3)  # armed, but no waveform is played: no trigger comes
    with pytest.raises(InstrumentError, match="wired to digital line 1"):
        source_meter.fetch_readings(6, 3e-3)
    assert source_meter.is_safe()  # the output is off (a query: the instrument has acted on the writes before it)
    emulated_meter = emulated.instruments["source_meter"]
    assert not emulated_meter.output_on
    assert emulated_meter.trigger_model.state == "ABORTED"
