"""The Keithley 2450 drivers end to end over pyvisa-py TCP against the emulated source meter.

The bench is set up as the station file wires it; a test routes a device by closing its crosspoints on
the bench (what the emulated switch matrix does) and plays waveforms into it with
``Bench.drive_voltage`` (what the emulated pulse generator does, firing the trigger line).
"""

import numpy as np
import pytest
import torch
from pymeasure.instruments.keithley import Keithley2450 as StockKeithley2450

from instruments.drivers.errors import InstrumentError
from instruments.drivers.keithley2450 import Keithley2450
from instruments.station_config import load_station_spec
from sim_backend.chip import DEFAULT_CHIP_FILE
from sim_backend.emulated import trigger_model
from sim_backend.emulated.keithley2450_emulator import BUFFER_MEMORY, OVERFLOW, EmulatedKeithley2450
from sim_backend.emulated.server import InstrumentServer
from tests.emulation import connect as connect_driver
from tests.emulation import open_raw, station_bench

STATION_FILE = DEFAULT_CHIP_FILE.parent / "station.emulated.yaml"
IDN = "KEITHLEY INSTRUMENTS,MODEL 2450,04096331,1.7.12b"
DEVICE = "w3-1"
READ_A, COMPLIANCE_V = 100e-6, 5.0


@pytest.fixture()
def spec():
    return load_station_spec(STATION_FILE)


@pytest.fixture()
def bench(spec):
    return station_bench(routed=DEVICE)


@pytest.fixture()
def emulated(bench):
    instrument = EmulatedKeithley2450(bench)
    with InstrumentServer(instrument) as server:
        yield instrument, server


def connect(server, cls=Keithley2450):
    return connect_driver(server, cls)


def levels(bench, device=DEVICE):
    """``(R_xy down, R_xy up, R_ch)`` of a device, from the chip."""
    chip = bench.chip
    i = chip.index(device)
    r0, dr = float(chip.r0_ohm[i]), float(chip.delta_r_ahe_ohm[i])
    return r0 - dr / 2, r0 + dr / 2, float(chip.r_ch_ohm[i])


def play(bench, levels_v, durations_s):
    """Play a waveform into the routed device as the pulse generator does (firing the trigger line)."""
    with bench.lock:
        bench.drive_voltage(np.asarray(levels_v, dtype=float), np.asarray(durations_s, dtype=float))


def pulse_v(bench, current_a, device=DEVICE):
    """The pulse generator level that drives ``current_a`` through the device (50 Ω source)."""
    i = bench.chip.index(device)
    return current_a * (float(bench.chip.r_ch_ohm[i]) + bench.source_impedance_ohm)


# -- identity, forms, errors ------------------------------------------------------------------------


def test_raw_pyvisa_session_identifies_the_2450_and_accepts_short_and_long_forms(emulated):
    _, server = emulated
    resource = open_raw(server, timeout_ms=2000)
    try:
        assert resource.query("*IDN?") == IDN
        resource.write(":source:function current")
        resource.write("SOURCE1:CURRENT:LEVEL:IMMEDIATE:AMPLITUDE 2.5e-4")
        assert float(resource.query(":SOUR:CURR?")) == pytest.approx(2.5e-4)
        resource.write(":sens:res:nplcycles 0.1")
        assert float(resource.query(":SENSe1:RESistance:NPLC?")) == pytest.approx(0.1)
        resource.write(":SENSE:RESISTANCE:RSENSE ON")
        assert resource.query(":sens:res:rsen?") == "1"
        resource.write(':TRIGGER:LOAD "Empty"')
        assert resource.query(":SYSTEM:ERROR:NEXT?") == '0,"No error"'
    finally:
        resource.close()


def test_unknown_command_is_queued_and_raised_by_the_driver(emulated):
    _, server = emulated
    smu = connect(server)
    smu.write(":SOUR:CURR:FOO 1")
    smu.write(":SOUR:CURR:VLIM 500")  # beyond 210 V
    smu.write(":SENS:FUNC 'TEMP'")  # not a 2450 measure function
    assert smu.id == IDN  # nothing was replied to the bad commands: the next reply is the identity
    with pytest.raises(InstrumentError) as caught:
        smu.check_errors()
    text = str(caught.value)
    assert "-113: Undefined header; :SOUR:CURR:FOO" in text
    assert "-222: Parameter data out of range" in text and "voltage limit 500" in text
    assert "-224: Illegal parameter value" in text
    assert smu.check_errors() == []  # read once, the queue is empty


def test_an_unknown_query_is_not_answered(emulated):
    instrument, server = emulated
    smu = connect(server)
    smu.write(":SOUR:CURR:FOO?")
    assert smu.id == IDN
    assert instrument.next_error()[0] == -113


def test_rst_and_cls_restore_the_power_on_state(emulated):
    _, server = emulated
    smu = connect(server)
    smu.apply_current(compliance_voltage=COMPLIANCE_V)
    smu.source_current = 1e-3
    smu.write(":FOO")
    smu.write("*RST")
    smu.write("*CLS")
    assert smu.source_mode == "voltage"
    assert smu.source_current == 0.0
    assert smu.check_errors() == []


# -- PyMeasure's stock driver -----------------------------------------------------------------------


def test_stock_pymeasure_2450_sources_measures_and_reports(emulated, bench):
    _, server = emulated
    smu = connect(server, StockKeithley2450)
    down, _, r_ch = levels(bench)
    assert smu.id == IDN
    smu.reset()  # "*RST;:stat:pres;:*CLS;"
    smu.apply_current(compliance_voltage=COMPLIANCE_V)
    assert smu.source_mode == "current"
    assert smu.compliance_voltage == pytest.approx(COMPLIANCE_V)
    smu.source_current = 1e-3
    assert smu.source_current == pytest.approx(1e-3)
    smu.current_output_off_state = "HIMP"
    assert smu.current_output_off_state == "HIMP"
    smu.enable_source()
    assert smu.source_enabled
    smu.measure_resistance(nplc=0.1)
    assert smu.resistance == pytest.approx(r_ch)  # 2-wire: the channel
    smu.wires = 4
    assert smu.wires == 4
    assert smu.resistance == pytest.approx(down, abs=0.1)  # 4-wire on the Hall arms: R_xy, magnetized down
    smu.measure_voltage(nplc=0.1)
    assert smu.voltage == pytest.approx(1e-3 * r_ch)
    smu.measure_current(nplc=0.1)
    assert smu.current == pytest.approx(1e-3)
    smu.disable_source()
    assert not smu.source_enabled
    smu.measure_resistance()
    assert smu.resistance == pytest.approx(OVERFLOW)  # output off: no current, overflow
    code, message = smu.next_error
    assert code == 0 and "No error" in message
    assert smu.check_errors() == []


# -- 4-wire reads, compliance, open devices, time --------------------------------------------------


def test_four_wire_read_is_the_routed_device_and_takes_its_aperture(emulated, bench):
    _, server = emulated
    smu = connect(server)
    down, _, _ = levels(bench)
    start = bench.clock_s
    assert smu.read_four_wire_resistance(READ_A, COMPLIANCE_V, nplc=1.0) == pytest.approx(down, abs=0.1)
    assert bench.clock_s - start == pytest.approx(20e-3)  # 1 PLC at 50 Hz
    assert not smu.source_enabled
    start = bench.clock_s
    smu.read_four_wire_resistance(READ_A, COMPLIANCE_V, nplc=0.01)
    assert bench.clock_s - start == pytest.approx(0.2e-3)


def test_another_routed_device_reads_its_own_r_xy(emulated, bench, spec):
    _, server = emulated
    smu = connect(server)
    with bench.lock:
        bench.chip.set_state("w5-2", 1)
        bench.set_closed(spec.route("w5-2"))
    _, up, _ = levels(bench, "w5-2")
    assert smu.read_four_wire_resistance(READ_A, COMPLIANCE_V, nplc=0.01) == pytest.approx(up, abs=0.1)


def test_open_or_destroyed_device_reads_overflow(emulated, bench):
    _, server = emulated
    smu = connect(server)
    with bench.lock:
        bench.set_closed([])  # nothing routed
    assert smu.read_four_wire_resistance(READ_A, COMPLIANCE_V, nplc=0.01) == OVERFLOW
    i = bench.chip.index(DEVICE)
    with bench.lock:
        bench.set_closed(bench.routes[DEVICE])
        bench.source_current(2 * float(bench.chip.i_breakdown_a[i]), 1e-6)  # breaks the device down
    assert bool(bench.chip.destroyed[i])
    assert smu.read_four_wire_resistance(READ_A, COMPLIANCE_V, nplc=0.01) == OVERFLOW


def test_a_current_source_in_compliance_delivers_what_the_limit_allows(emulated, bench):
    _, server = emulated
    smu = connect(server)
    _, _, r_ch = levels(bench)
    smu.apply_current(compliance_voltage=0.5)
    smu.source_current = 1e-3  # 1 mA through ~1 kΩ needs ~1 V
    smu.measure_voltage(nplc=0.01)
    smu.enable_source()
    assert smu.voltage == pytest.approx(0.5)
    smu.measure_current(nplc=0.01)
    assert smu.current == pytest.approx(0.5 / r_ch)
    smu.disable_source()


# -- list sweeps: the DC hysteresis loop -------------------------------------------------------------


def test_list_sweep_steps_the_current_through_the_device_and_reads_each_step(emulated, bench):
    instrument, server = emulated
    smu = connect(server)
    down, up, _ = levels(bench)
    ic0 = float(bench.chip.ic0_a[bench.chip.index(DEVICE)])
    top = 2.5 * ic0  # switches within the dwell, below breakdown
    loop = np.concatenate([np.linspace(0.2 * ic0, top, 40), np.linspace(top, -top, 80),
                           np.linspace(-top, -0.2 * ic0, 40)])
    smu.configure_four_wire_resistance(READ_A, COMPLIANCE_V, nplc=0.01)
    smu.clear_buffer()
    start = bench.clock_s
    smu.start_current_list_sweep(loop, dwell_s=1e-3)  # 160 points: one list command and one append
    smu.wait_for_completion()
    assert bench.clock_s - start == pytest.approx(loop.size * (1e-3 + 0.2e-3))
    assert smu.buffer_count() == loop.size
    readings = smu.fetch_buffer(loop.size)
    assert readings[0] == pytest.approx(down, abs=0.1)  # starts magnetized down
    assert readings[39] == pytest.approx(up, abs=0.1)  # switched up at +2.5 Ic0
    assert readings[119] == pytest.approx(down, abs=0.1)  # and down again at -2.5 Ic0
    assert np.all(np.minimum(abs(readings - down), abs(readings - up)) < 0.1)  # every step reads a state
    assert not smu.source_enabled  # the sweep ends with the output off
    assert instrument.source_list == pytest.approx(list(loop), rel=1e-5)
    assert smu.check_errors() == []


def first_switch(currents, readings, r0, direction):
    """``|current|`` of the first step (with the current in ``direction``) whose reading shows it switched."""
    steps = np.flatnonzero(np.sign(currents) == direction)
    switched = (readings[steps] > r0) if direction > 0 else (readings[steps] < r0)
    return abs(currents[steps[np.argmax(switched)]]) if switched.any() else np.nan


def expected_switch(bench, currents, direction, delay_s, aperture_s, device=DEVICE):
    """Mean and standard deviation of :func:`first_switch`, exactly from the chip's switching probabilities.

    Each step carries its current for the delay, is read, and carries it on through the aperture.
    """
    chip = bench.chip
    magnitudes = np.abs(currents[np.sign(currents) == direction])
    index, amps = torch.tensor([chip.index(device)]), torch.tensor(magnitudes, dtype=torch.float64)
    p_delay = chip.switching_probability(index, amps, delay_s).numpy()
    p_aperture = chip.switching_probability(index, amps, aperture_s).numpy()
    unswitched_before = np.concatenate([[1.0], np.cumprod((1 - p_delay) * (1 - p_aperture))[:-1]])
    unswitched_at_reading = unswitched_before * (1 - p_delay)
    first = -np.diff(np.concatenate([[1.0], unswitched_at_reading]))
    assert first.sum() == pytest.approx(1.0)  # the branch goes far enough to switch surely
    mean = float(np.sum(first * magnitudes))
    return mean, float(np.sqrt(np.sum(first * (magnitudes - mean) ** 2)))


def test_hysteresis_loops_switch_where_the_devices_switching_probability_says(emulated, bench):
    """Many list sweeps (one vectorized pass each): the switching currents have the exact expected mean."""
    _, server = emulated
    smu = connect(server)
    chip = bench.chip
    i = chip.index(DEVICE)
    ic0, r0 = float(chip.ic0_a[i]), float(chip.r0_ohm[i])
    low, high, _ = levels(bench)
    loop = ic0 * np.concatenate([np.linspace(0.3, 1.2, 46), np.linspace(1.2, -1.2, 80), np.linspace(-1.2, -0.3, 46)])
    dwell, aperture = 1e-3, 0.2e-3
    smu.configure_four_wire_resistance(READ_A, COMPLIANCE_V, nplc=0.01)
    up, down = [], []
    for _ in range(40):
        smu.clear_buffer()
        smu.start_current_list_sweep(loop, dwell_s=dwell)
        smu.wait_for_completion()
        readings = smu.fetch_buffer(loop.size)
        assert np.all(np.minimum(abs(readings - low), abs(readings - high)) < 0.1)  # every step reads a state
        up.append(first_switch(loop[:46], readings[:46], r0, +1))
        down.append(first_switch(loop[46:], readings[46:], r0, -1))
    for measured, direction, branch in ((up, +1, loop[:46]), (down, -1, loop[46:])):
        mean, sd = expected_switch(bench, branch, direction, dwell, aperture)
        assert 0.4 * ic0 < mean < ic0  # thermally activated: below Ic0 at a 1 ms dwell
        assert np.mean(measured) == pytest.approx(mean, abs=5 * sd / np.sqrt(len(measured)))
    assert not bool(chip.destroyed[i]) and smu.check_errors() == []


def test_list_sweep_of_an_open_device_reads_overflow(emulated, bench):
    _, server = emulated
    smu = connect(server)
    i = bench.chip.index(DEVICE)
    smu.configure_four_wire_resistance(READ_A, COMPLIANCE_V, nplc=0.01)
    with bench.lock:
        bench.set_closed([])  # nothing routed
    smu.clear_buffer()
    smu.start_current_list_sweep([1e-4, -1e-4, 2e-4], dwell_s=1e-3)
    np.testing.assert_array_equal(smu.fetch_buffer(3), [OVERFLOW] * 3)
    cycles = int(bench.chip.cycles[i])
    with bench.lock:
        bench.set_closed(bench.routes[DEVICE])
        bench.source_current(2 * float(bench.chip.i_breakdown_a[i]), 1e-6)  # destroyed before the sweep
    smu.clear_buffer()
    smu.start_current_list_sweep([1e-4, -1e-4, 2e-4], dwell_s=1e-3)
    np.testing.assert_array_equal(smu.fetch_buffer(3), [OVERFLOW] * 3)
    assert int(bench.chip.cycles[i]) == cycles + 1  # no current flows through an open device
    assert smu.check_errors() == []


def test_list_sweep_that_breaks_the_device_down_reads_overflow_from_that_step_on(emulated, bench):
    _, server = emulated
    smu = connect(server)
    down, _, r_ch = levels(bench)
    i = bench.chip.index(DEVICE)
    breakdown = float(bench.chip.i_breakdown_a[i])
    currents = np.array([-0.1, -0.5, -0.9, -1.2, -0.5]) * breakdown  # negative: the device stays down
    smu.configure_four_wire_resistance(READ_A, compliance_v=2 * breakdown * r_ch, nplc=0.01)
    smu.clear_buffer()
    smu.start_current_list_sweep(currents, dwell_s=1e-3)
    readings = smu.fetch_buffer(currents.size)
    np.testing.assert_allclose(readings[:3], down, atol=0.1)
    np.testing.assert_array_equal(readings[3:], [OVERFLOW] * 2)  # destroyed within the delay of step 4
    assert bool(bench.chip.destroyed[i])
    assert smu.read_four_wire_resistance(READ_A, COMPLIANCE_V, nplc=0.01) == OVERFLOW


def test_list_sweep_in_compliance_delivers_what_the_limit_allows(emulated, bench):
    _, server = emulated
    smu = connect(server)
    _, _, r_ch = levels(bench)
    i = bench.chip.index(DEVICE)
    breakdown = float(bench.chip.i_breakdown_a[i])
    limit_v = 0.5 * breakdown * r_ch  # the voltage limit holds the current at half the breakdown current
    currents = np.array([0.1, 0.3, 2.0, -2.0, -0.2]) * breakdown  # 2x the breakdown current, programmed
    expected = np.clip(currents, -limit_v / r_ch, limit_v / r_ch)
    for function, wanted in (("VOLT", expected * r_ch), ("CURR", expected), ("RES", np.full(5, r_ch))):
        smu.write(":SOUR:FUNC CURR")
        smu.write(f":SOUR:CURR:VLIM {limit_v:.9g}")
        smu.write(f':SENS:FUNC "{function}"')
        smu.write(f":SENS:{function}:NPLC 0.01")
        smu.write(f":SENS:{function}:RSEN OFF")  # 2-wire: the force terminals
        smu.clear_buffer()
        smu.start_current_list_sweep(currents, dwell_s=1e-3)
        np.testing.assert_allclose(smu.fetch_buffer(currents.size), wanted, rtol=1e-6)
    assert not bool(bench.chip.destroyed[i])  # the limit kept the current below breakdown
    assert smu.check_errors() == []


def test_list_sweep_refused_by_the_instrument_is_reported(emulated):
    _, server = emulated
    smu = connect(server)
    smu.write(":SOUR:LIST:CURR " + ", ".join(["1e-6"] * 101))  # more than one command may carry
    smu.write(":SOUR:SWE:CURR:LIST 1, 1e-5")  # dwell below 50 µs
    with pytest.raises(InstrumentError, match=r"-224: .*1 to 100.*; -224: .*load :SOUR:LIST:CURR first"):
        smu.check_errors()


# -- triggered readings -----------------------------------------------------------------------------


def arm(smu, count, delay_s):
    smu.configure_four_wire_resistance(READ_A, COMPLIANCE_V, nplc=0.01)
    smu.trigger_line_mode = "TRIG, IN"
    smu.trigger_edge = "RIS"
    smu.configure_triggered_readings(count, delay_s)
    smu.enable_source()
    smu.start()


def test_one_reading_per_trigger_into_the_buffer(emulated, bench):
    _, server = emulated
    smu = connect(server)
    down, up, _ = levels(bench)
    arm(smu, count=4, delay_s=100e-6)
    assert smu.trigger_state == "WAITING"
    v = pulse_v(bench, 4e-3)
    for level in (v, -v, 0.0, v):  # each waveform: a 10 µs pulse, then 1 ms of 0 V with the reading in it
        start = bench.clock_s
        play(bench, [level, 0.0], [10e-6, 1e-3])
        assert bench.clock_s - start == pytest.approx(1.01e-3)  # the reading lies within the waveform
    assert smu.trigger_state == "IDLE"  # the count is reached
    play(bench, [-v, 0.0], [10e-6, 1e-3])  # a trigger after the model ended
    assert smu.buffer_count() == 4
    np.testing.assert_allclose(smu.fetch_buffer(4), [up, down, down, up], atol=0.1)
    smu.disable_source()


def test_a_reading_after_the_waveform_advances_the_clock(emulated, bench):
    _, server = emulated
    smu = connect(server)
    arm(smu, count=1, delay_s=5e-3)
    start = bench.clock_s
    play(bench, [0.0], [1e-3])
    assert bench.clock_s - start == pytest.approx(5e-3 + 0.2e-3)  # the delay, then the aperture


def test_readings_wait_for_the_trigger_input_line(emulated, bench):
    _, server = emulated
    smu = connect(server)
    arm(smu, count=2, delay_s=0.0)
    smu.trigger_line_mode = "DIG, IN"  # line 1 no longer a trigger input: the edges are not seen
    assert smu.trigger_state == "WAITING"  # (a query: the emulator has handled the writes before it)
    play(bench, [0.0], [1e-3])
    assert smu.buffer_count() == 0 and smu.trigger_state == "WAITING"
    smu.trigger_line_mode = "TRIG, IN"
    assert smu.trigger_state == "WAITING"
    play(bench, [0.0], [1e-3])
    assert smu.buffer_count() == 1
    smu.abort()
    assert smu.trigger_state == "ABORTED"  # (and the abort was handled)
    play(bench, [0.0], [1e-3])
    assert smu.buffer_count() == 1


def test_timed_readings_read_each_trial_of_one_waveform(emulated, bench):
    _, server = emulated
    smu = connect(server)
    down, up, _ = levels(bench)
    v = pulse_v(bench, 4e-3)
    period, aperture = 1e-3, 0.2e-3
    # per trial: 10 µs pulse, 490 µs at 0 V (first read at 100 µs), 500 µs at 0 V (second read at 700 µs)
    trial_levels = {+1: [v, 0.0, 0.0], -1: [-v, 0.0, 0.0]}
    signs = [+1, -1, -1, +1]
    waveform = np.concatenate([trial_levels[s] for s in signs])
    durations = np.tile([10e-6, 490e-6, 500e-6], len(signs))
    smu.configure_four_wire_resistance(READ_A, COMPLIANCE_V, nplc=0.01)
    smu.trigger_line_mode = "TRIG, IN"
    smu.configure_timed_readings(len(signs), first_delay_s=100e-6, delays_s=[600e-6], period_s=period,
                                 aperture_s=aperture)
    smu.enable_source()
    smu.start()
    play(bench, waveform, durations)
    assert smu.buffer_count() == 2 * len(signs)
    expected = [up if s > 0 else down for s in signs for _ in range(2)]
    np.testing.assert_allclose(smu.fetch_buffer(2 * len(signs)), expected, atol=0.1)
    assert smu.check_errors() == []


def test_a_wait_on_the_command_trigger_continues_on_trg(emulated, bench):
    _, server = emulated
    smu = connect(server)
    down, _, _ = levels(bench)
    smu.configure_four_wire_resistance(READ_A, COMPLIANCE_V, nplc=0.01)
    smu.write(':TRIG:LOAD "Empty"')
    smu.write(':TRIG:BLOC:BUFF:CLE 1, "defbuffer1"')
    smu.write(":TRIG:BLOC:WAIT 2, COMM")
    smu.write(':TRIG:BLOC:MEAS 3, "defbuffer1", 2')
    smu.write(":TRIG:BLOC:BRAN:COUN 4, 3, 2")
    smu.enable_source()
    smu.start()
    for _ in range(3):
        smu.trigger()  # *TRG
    assert smu.trigger_state == "IDLE"
    assert smu.buffer_count() == 6
    np.testing.assert_allclose(smu.fetch_buffer(6), [down] * 6, atol=0.1)


def test_nested_counters_count_again_on_every_pass(emulated):
    """The manual's example: 5 readings, a delay, three times over: 15 readings."""
    _, server = emulated
    smu = connect(server)
    smu.configure_four_wire_resistance(READ_A, COMPLIANCE_V, nplc=0.01)
    smu.enable_source()
    for command in ('TRIG:LOAD "EMPTY"', "TRIG:BLOC:BUFF:CLEAR 1", "TRIG:BLOC:MEAS 2", "TRIG:BLOC:BRAN:COUN 3, 5, 2",
                    "TRIG:BLOC:DEL:CONS 4, 1", "TRIG:BLOC:BRAN:COUN 5, 3, 2", "INIT"):
        smu.write(command)
    assert smu.buffer_count() == 15


# -- buffers -----------------------------------------------------------------------------------------


def test_named_buffer_with_source_values_and_relative_times(emulated, bench):
    _, server = emulated
    smu = connect(server)
    down, _, _ = levels(bench)
    smu.configure_four_wire_resistance(READ_A, COMPLIANCE_V, nplc=1.0)
    smu.enable_source()
    smu.write(':TRAC:MAKE "hall", 100')
    for _ in range(3):
        assert float(smu.ask(':READ? "hall"')) == pytest.approx(down, abs=0.1)
    assert smu.ask(':TRAC:ACT? "hall"') == "3"
    assert smu.buffer_count() == 0  # defbuffer1 took none of them
    values = smu.values(':TRAC:DATA? 1, 3, "hall", READ, SOUR, REL')
    readings, sources, times = values[0::3], values[1::3], values[2::3]
    np.testing.assert_allclose(readings, [down] * 3, atol=0.1)
    np.testing.assert_allclose(sources, [READ_A] * 3)
    np.testing.assert_allclose(times, [0.0, 20e-3, 40e-3])  # 1 PLC apart
    smu.write(':TRAC:DATA? 1, 4, "hall"')  # beyond the readings held: an error, no reply
    assert smu.id == IDN
    with pytest.raises(InstrumentError, match="-222: Parameter data out of range; buffer index 1 to 4"):
        smu.check_errors()
    smu.disable_source()


def test_reading_buffers_share_one_bounded_memory(emulated):
    instrument, server = emulated
    smu = connect(server)
    smu.write(f':TRAC:MAKE "big", {BUFFER_MEMORY - 2 * 100_000}')  # what the two default buffers leave
    smu.write(':TRAC:MAKE "more", 10')
    smu.write(f':TRAC:POIN {100_000 + 10}, "defbuffer1"')
    assert smu.id == IDN
    with pytest.raises(InstrumentError) as caught:
        smu.check_errors()
    assert str(caught.value).count("-222: Parameter data out of range; buffer size") == 2
    assert set(instrument.buffers) == {"defbuffer1", "defbuffer2", "big"}
    smu.write(':TRAC:DEL "big"')
    smu.write(':TRAC:MAKE "more", 10')
    assert smu.ask(':TRAC:POIN? "more"') == "10"
    assert smu.check_errors() == []


def test_a_buffer_the_trigger_model_uses_cannot_be_deleted(emulated):
    instrument, server = emulated
    smu = connect(server)
    smu.configure_four_wire_resistance(READ_A, COMPLIANCE_V, nplc=0.01)
    smu.enable_source()
    for command in (':TRAC:MAKE "hall", 100', 'TRIG:LOAD "EMPTY"', 'TRIG:BLOC:MEAS 1, "hall", 3', ':TRAC:DEL "hall"'):
        smu.write(command)
    with pytest.raises(InstrumentError, match="-224: .*hall is used by the trigger model"):
        smu.check_errors()
    smu.write(":INIT")
    assert smu.ask(':TRAC:ACT? "hall"') == "3"
    smu.write('TRIG:LOAD "EMPTY"')
    smu.write(':TRAC:DEL "hall"')  # no longer used
    assert smu.check_errors() == [] and "hall" not in instrument.buffers


@pytest.mark.parametrize(("blocks", "limit", "message"), [
    # clear, then loop back to it 1000 times: buffer clears with no readings
    (["TRIG:BLOC:BUFF:CLE 1", "TRIG:BLOC:BRAN:COUN 2, 1000, 1"], "MAX_READINGS_PER_RUN",
     "more than 50 readings and buffer clears in one run"),
    # a loop of delays takes no readings, but it must end
    (["TRIG:BLOC:DEL:CONS 1, 0", "TRIG:BLOC:BRAN:COUN 2, 1000, 1"], "MAX_STEPS_PER_RUN",
     "more than 50 blocks in one run"),
    (["TRIG:BLOC:MEAS 1", "TRIG:BLOC:BRAN:COUN 2, 1000, 1"], "MAX_READINGS_PER_RUN",
     "more than 50 readings in one run"),
])
def test_a_run_beyond_the_emulation_limits_stops_with_an_execution_error(emulated, monkeypatch, blocks, limit,
                                                                         message):
    _, server = emulated
    smu = connect(server)
    monkeypatch.setattr(trigger_model, limit, 50)
    smu.configure_four_wire_resistance(READ_A, COMPLIANCE_V, nplc=0.01)
    smu.enable_source()
    for command in ['TRIG:LOAD "EMPTY"', *blocks, "INIT"]:
        smu.write(command)
    assert smu.trigger_state == "IDLE"
    with pytest.raises(InstrumentError, match=f"-200: Execution error; {message}"):
        smu.check_errors()
    assert smu.buffer_count() <= 50


# -- injected faults ---------------------------------------------------------------------------------


def test_an_instrument_error_armed_after_n_messages_lands_in_the_queue_as_a_rejection(emulated):
    instrument, server = emulated
    smu = connect(server)
    instrument.faults.error_after_messages = 3
    smu.write(":SOUR:CURR 1e-4")  # message 1
    assert smu.read_error() == (0, "No error")  # message 2: nothing before
    smu.write(":SOUR:CURR 2e-4")  # message 3: rejected
    assert smu.read_error() == (-200, "Execution error")
    assert smu.read_error() == (0, "No error")
    assert float(smu.ask(":SOUR:CURR?")) == pytest.approx(1e-4)  # the rejected command did nothing
    assert instrument.faults.error_after_messages is None and not instrument.faults.error_next_message


def test_an_instrument_error_in_the_middle_of_a_list_sweep_is_reported_after_it(emulated, bench):
    """The sweep's second list command (the append) is rejected: the sweep runs short, and says so."""
    instrument, server = emulated
    smu = connect(server)
    smu.configure_four_wire_resistance(READ_A, COMPLIANCE_V, nplc=0.01)
    smu.clear_buffer()
    assert smu.buffer_count() == 0  # a query: the emulator has taken every message before the arming
    instrument.faults.error_after_messages = 2
    smu.write(":SOUR:LIST:CURR " + ", ".join(["1e-4"] * 100))
    smu.write(":SOUR:LIST:CURR:APP " + ", ".join(["1e-4"] * 50))  # message 2: rejected
    smu.write(':SOUR:SWE:CURR:LIST 1, 0.001, 1, OFF, "defbuffer1"')
    smu.write(":INIT")
    smu.wait_for_completion()
    with pytest.raises(InstrumentError, match="-200: Execution error"):
        smu.check_errors()
    assert smu.buffer_count() == 100


def test_an_armed_breakdown_reads_open_from_the_breaking_waveform_on(emulated, bench):
    _, server = emulated
    smu = connect(server)
    down, _, _ = levels(bench)
    arm(smu, count=3, delay_s=100e-6)
    bench.faults.break_after_waveforms = 2
    v = pulse_v(bench, -1e-4)  # a small pulse that switches nothing
    for _ in range(3):
        play(bench, [v, 0.0], [10e-6, 1e-3])
    np.testing.assert_allclose(smu.fetch_buffer(3), [down, OVERFLOW, OVERFLOW], rtol=1e-6, atol=0.1)
    assert bool(bench.chip.destroyed[bench.chip.index(DEVICE)])
    smu.disable_source()
    assert smu.read_four_wire_resistance(READ_A, COMPLIANCE_V, nplc=0.01) == OVERFLOW
