"""The Keysight 81160A driver end to end over pyvisa-py TCP against the emulated pulse generator."""

import numpy as np
import pytest
import pyvisa
from pymeasure.instruments.keysight import Keysight81160A as StockKeysight81160A

from instruments.drivers.errors import InstrumentError
from instruments.drivers.keysight81160a import Keysight81160A
from sim_backend.chip import DEFAULT_CHIP_FILE
from sim_backend.emulated import keysight81160a_emulator as keysight_module
from sim_backend.emulated.bench import SOURCE_IMPEDANCE_OHM
from sim_backend.emulated.keysight81160a_emulator import PLAYED_KEPT, EmulatedKeysight81160A, upload_time_s
from sim_backend.emulated.server import LOG_KEPT, Faults, InstrumentServer, garble
from tests.emulation import connect as connect_driver
from tests.emulation import open_raw, station_bench

STATION_FILE = DEFAULT_CHIP_FILE.parent / "station.emulated.yaml"
IDN = "Agilent Technologies,81160A,MY52500180,2.0.0.0-2.6"
DEVICE = "w5-2"


@pytest.fixture()
def bench():
    return station_bench(routed=DEVICE)


@pytest.fixture()
def emulated(bench):
    instrument = EmulatedKeysight81160A(bench)
    with InstrumentServer(instrument) as server:
        yield instrument, server


def connect(server, cls=Keysight81160A):
    return connect_driver(server, cls)


def test_raw_pyvisa_session_identifies_the_81160a(emulated):
    _, server = emulated
    resource = open_raw(server, timeout_ms=2000)
    try:
        assert resource.query("*IDN?") == IDN
        assert resource.query(":SYST:ERR?") == '0,"No error"'
    finally:
        resource.close()


def test_short_and_long_forms_in_any_case(emulated):
    instrument, server = emulated
    generator = connect(server)
    generator.write("func2:shape pulse")
    generator.write(":VOLTage2:LEVel:IMMediate:AMPLitude 1.25")
    generator.write(":voltage2:offset -0.5")
    generator.write(":OUTPut2:POLarity INVerted")
    generator.write("outp2:stat on")
    assert generator.ask(":FUNC2?").strip() == "PULS"
    assert float(generator.ask("volt2?")) == pytest.approx(1.25)
    assert float(generator.ask(":VOLT2:LOW?")) == pytest.approx(-1.125)
    assert generator.ask(":OUTP2:POL?").strip() == "INV"
    assert generator.ask("OUTP2?").strip() == "1"
    generator.write("*RST")
    assert generator.ask(":FUNC2?").strip() == "SIN" and generator.ask("OUTP2?").strip() == "0"
    assert generator.check_errors() == []


def test_single_pulses_reach_the_routed_device_through_the_bench(emulated, bench):
    instrument, server = emulated
    generator = connect(server)
    start = bench.clock_s
    generator.play_pulse(1.5, 10e-6)
    channel, levels, durations = instrument.played[-1]
    assert channel == 1
    np.testing.assert_allclose(levels, [1.5, 0.0])  # high impedance: the programmed level is the open circuit
    np.testing.assert_allclose(durations, [10e-6, 30e-6])
    assert bench.clock_s == pytest.approx(start + 40e-6)
    generator.play_pulse(-2.0, 100e-6)  # inverted: idles at 0 V, pulses down
    _, levels, durations = instrument.played[-1]
    np.testing.assert_allclose(levels, [-2.0, 0.0])
    np.testing.assert_allclose(durations, [100e-6, 300e-6])
    generator.play_pulse(0.8, 1e-6)  # back to a positive pulse: no settings conflict on the way
    np.testing.assert_allclose(instrument.played[-1][1], [0.8, 0.0])
    assert generator.check_errors() == []


def test_a_strong_pulse_switches_the_device_and_a_reset_switches_it_back(emulated, bench):
    _, server = emulated
    generator = connect(server)
    chip = bench.chip
    i = chip.index(DEVICE)
    r_total = float(chip.r_ch_ohm[i]) + SOURCE_IMPEDANCE_OHM
    assert int(chip.m_z[i]) == -1
    generator.play_pulse(min(2.5, 3 * float(chip.ic0_a[i]) * r_total), 10e-6)
    assert int(chip.m_z[i]) == 1
    generator.play_pulse(max(-2.5, -3 * float(chip.ic0_a[i]) * r_total), 100e-6)
    assert int(chip.m_z[i]) == -1


def test_waveform_upload_with_binary_bytes_plays_exact_levels_and_fires_the_trigger_line_once(emulated, bench):
    instrument, server = emulated
    generator = connect(server)
    # codes 10 (\n), 13 (\r), 32 (space), 35 (#) and 59 (;) inside the block, 13 last of all
    special = [10, 13, 32, 35, 59, 13]
    levels = [1.0, *(c / 8191 for c in special)]
    durations = [1e-6, 2e-6, 1e-6, 1e-6, 3e-6, 1e-6, 1e-6]
    markers = [False, True, False, False, True, False, False]
    records = []
    bench.add_trigger_listener(records.append)
    start = bench.clock_s
    times = generator.play_waveform(levels, durations, markers)
    np.testing.assert_array_equal(instrument.catalogues[1].volatile,
                                  [8191, 10, 10, 13, 32, 35, 35, 35, 59, 13])
    np.testing.assert_allclose(times, [1e-6, 5e-6], rtol=1e-9)
    _, played_levels, played_durations = instrument.played[-1]
    np.testing.assert_allclose(played_levels, levels, atol=1e-12)
    np.testing.assert_allclose(played_durations, durations, rtol=1e-9)
    assert len(records) == 1  # the trigger output marks the start of the pass, after the upload's time
    start += upload_time_s(10, EmulatedKeysight81160A.command_time_s)
    assert records[0].start_s == pytest.approx(start)
    np.testing.assert_allclose(records[0].ends_s, start + np.cumsum(durations), rtol=1e-9)
    assert bench.clock_s == pytest.approx(start + sum(durations))
    assert generator.check_errors() == []


def test_a_batch_of_trials_in_one_waveform(emulated, bench):
    instrument, server = emulated
    generator = connect(server)
    trial = ([-1.0, 0.0, 0.0, 0.6, 0.0, 0.0], [100e-6, 5e-6, 10e-6, 10e-6, 5e-6, 10e-6])
    markers = [False, False, True, False, False, True] * 50
    times = generator.play_waveform(trial[0] * 50, trial[1] * 50, markers)
    assert times.size == 100
    np.testing.assert_allclose(np.diff(times[::2]), 140e-6, rtol=1e-6)  # one trial apart
    _, levels, durations = instrument.played[-1]
    assert durations.sum() == pytest.approx(50 * 140e-6)
    step = 2.0 / (2 * 8191)  # one DAC code at 2 Vpp
    assert all(np.min(np.abs(levels[:, None] - [-1.0, 0.0, 0.6]), axis=1) <= step / 2)


def test_the_load_setting_scales_the_voltage_the_device_sees(emulated):
    instrument, server = emulated
    generator = connect(server)
    ch = generator.ch_1
    ch.single_pulse(1.0, 1e-6)
    generator.arm(1)
    ch.output_load = 50  # levels programmed for 50 Ω: the open circuit is twice the level
    assert ch.output_load == 50
    generator.fire()
    np.testing.assert_allclose(instrument.played[-1][1], [2.0, 0.0])
    ch.output_load = 1e6
    generator.fire()
    np.testing.assert_allclose(instrument.played[-1][1], [1.0, 0.0])


def test_ascii_dac_values_and_a_compound_message(emulated):
    instrument, server = emulated
    generator = connect(server)
    generator.write(":DATA2:DAC VOLATILE, 0, 8191, -8191, 0;:FUNC2:USER VOLATILE")
    assert generator.ch_2.user_waveform == "VOLATILE"  # answered after the upload was handled
    np.testing.assert_array_equal(instrument.catalogues[2].volatile, [0, 8191, -8191, 0])
    assert generator.check_errors() == []


@pytest.mark.parametrize(("command", "code"), [
    (":FOO:BAR 1", "-113"),  # unknown header
    (":VOLT1:HIGH 7", "-222"),  # beyond the ±5 V window into 50 Ω: out of range
    (":VOLT1:LOW 0.3", "-221"),  # above the high level (0.25 V after *RST): taken, the high level moved
    (":PULS:WIDT1 2e-6", "-221"),  # does not fit the 1 µs period: a settings conflict
    (":ARM:SOUR1 SOMETIMES", "-224"),
    (":FUNC1:USER VOLATILE", "-224"),  # nothing uploaded yet
    (b":DATA1:DAC VOLATILE,#12\x00\x01", "-224"),  # one point: too short
    (b":DATA1:DAC VOLATILE,#14\x7f\xff\x00\x00", "-224"),  # code 32767 beyond +-8191
    (b":DATA1:DAC VOLATILE,#13\x00\x01\x00", "-224"),  # half a point
    (b":DATA1:DAC NONVOL,#14\x00\x01\x00\x02", "-224"),
    (":DATA3:DAC VOLATILE,1,2", "-224"),  # no channel 3
])
def test_bad_commands_are_queued_not_answered_and_raised_by_the_driver(emulated, command, code):
    instrument, server = emulated
    generator = connect(server)
    if isinstance(command, bytes):
        generator.adapter.connection.write_raw(command + b"\n")
    else:
        generator.write(command)
    assert generator.ask("*OPC?").strip() == "1"  # nothing was replied to the bad command
    with pytest.raises(InstrumentError, match=code):
        generator.check_errors()
    assert generator.check_errors() == []
    assert instrument.catalogues[1].volatile is None


def test_cls_clears_the_error_queue(emulated):
    _, server = emulated
    generator = connect(server)
    generator.write(":FOO")
    generator.write("*CLS")
    assert generator.check_errors() == []


def test_a_trigger_plays_nothing_unless_armed_manually_with_the_output_on(emulated, bench):
    instrument, server = emulated
    generator = connect(server)
    generator.ch_1.single_pulse(1.0, 1e-6)
    generator.fire()
    assert not instrument.played
    generator.ch_1.trigger_mode = "MAN"
    generator.fire()
    assert not instrument.played  # output still off
    generator.ch_1.output = True
    generator.write(":TRIG")  # the immediate trigger command works as *TRG
    generator.ask("*OPC?")
    assert len(instrument.played) == 1


def test_stock_pymeasure_driver_works_unmodified(emulated, bench):
    instrument, server = emulated
    generator = connect(server, StockKeysight81160A)
    assert generator.id == IDN
    ch = generator.channels[1]
    ch.shape = "PULS"
    ch.pulse_period = 40e-6
    ch.pulse_width = 10e-6
    ch.voltage_high = 1.0
    ch.voltage_low = 0.0
    assert ch.shape == "PULS"
    assert ch.pulse_period == pytest.approx(40e-6) and ch.pulse_width == pytest.approx(10e-6)
    assert ch.voltage_high == pytest.approx(1.0) and ch.voltage_low == pytest.approx(0.0)
    assert ch.amplitude == pytest.approx(1.0) and ch.offset == pytest.approx(0.5)
    ch.output_load = 1e6
    assert ch.output_load == pytest.approx(1e6)
    ch.trigger_mode = "MAN"
    assert ch.trigger_mode == "MAN"
    ch.trigger_count = 3  # a burst of three cycles per trigger
    assert ch.trigger_count == 3
    ch.output = True
    assert ch.output is True
    generator.trigger()  # *TRG;*WAI
    generator.ask("*OPC?")
    _, levels, durations = instrument.played[-1]
    np.testing.assert_allclose(levels, [1.0, 0.0] * 3)
    np.testing.assert_allclose(durations, [10e-6, 30e-6] * 3)
    ch.trigger_count = 1
    ch.apply_pulse(1e5, 2.0, 0.0)
    assert ch.frequency == pytest.approx(1e5) and ch.voltage_low == pytest.approx(-1.0)
    # the stock upload normalizes by the maximum; the waveform plays at the amplitude set afterwards
    ch.waveform_volatile = [0.0, 1.0, -1.0, 1.0]
    ch.write(":FUNC1:USER VOLATILE")
    ch.shape = "USER"
    generator.trigger()
    generator.ask("*OPC?")
    _, levels, _ = instrument.played[-1]
    np.testing.assert_allclose(levels, [0.0, 1.0, -1.0, 1.0])
    ch.output = False
    generator.reset()
    assert generator.check_errors() == []


# -- bounded state over a long run -------------------------------------------------------------------


def test_the_log_keeps_the_latest_messages_only(emulated):
    instrument, server = emulated
    generator = connect(server)
    sent = [f":FREQ1 {1000 + i}" for i in range(LOG_KEPT + 300)]
    for command in sent:
        generator.write(command)
    assert generator.ask("*OPC?").strip() == "1"  # every write before it has been handled
    assert len(instrument.log) == LOG_KEPT
    assert list(instrument.log) == [*sent, "*OPC?"][-LOG_KEPT:]
    assert generator.check_errors() == []


def test_played_is_bounded_in_triggers_and_in_segments(emulated, monkeypatch):
    instrument, server = emulated
    generator = connect(server)
    generator.ch_1.single_pulse(0.1, 1e-6)
    generator.arm(1)
    for _ in range(PLAYED_KEPT + 4):
        generator.fire()
    generator.ask("*OPC?")
    assert len(instrument.played) == PLAYED_KEPT
    monkeypatch.setattr(keysight_module, "PLAYED_SEGMENTS_KEPT", 10)
    generator.ch_1.trigger_count = 3  # a burst of three cycles: 6 segments per trigger
    for _ in range(3):
        generator.fire()
    generator.ask("*OPC?")
    assert len(instrument.played) == 1  # two bursts would hold 12 segments: only the latest is kept
    np.testing.assert_allclose(instrument.played[-1][1], [0.1, 0.0] * 3)


def test_a_burst_beyond_the_emulation_limit_is_refused_with_an_execution_error(emulated, bench, monkeypatch):
    instrument, server = emulated
    generator = connect(server)
    monkeypatch.setattr(keysight_module, "MAX_SEGMENTS_PER_TRIGGER", 100)
    generator.ch_1.single_pulse(0.1, 1e-6)
    generator.arm(1)
    generator.ch_1.trigger_count = 51  # 102 segments
    start = bench.clock_s
    generator.fire()
    with pytest.raises(InstrumentError, match="-200: Execution error; a burst of 51 cycles"):
        generator.check_errors()
    assert not instrument.played and bench.clock_s == start  # nothing was played


# -- injected faults ---------------------------------------------------------------------------------



def test_a_reply_delay_armed_after_n_messages_delays_that_reply_once(emulated):
    instrument, server = emulated
    resource = open_raw(server, timeout_ms=1000)
    try:
        instrument.faults = Faults(delay_after_messages=2, reply_delay_s=2.5)
        assert resource.query("*IDN?") == IDN  # message 1: not delayed
        resource.write(":FREQ1 2e6")  # message 2: the delay strikes here, but a write has no reply...
        with pytest.raises(pyvisa.VisaIOError):
            resource.query(":FREQ1?")  # ...so the next reply waits past the client's timeout
        resource.timeout = 20_000
        assert float(resource.read()) == pytest.approx(2e6)  # the late reply arrives afterwards
        resource.timeout = 1000
        assert resource.query("*IDN?") == IDN  # and later replies are prompt again
        assert instrument.faults == Faults()  # the fault is used up
    finally:
        resource.close()


def test_a_garbled_reply_armed_after_n_messages_garbles_exactly_that_reply(emulated):
    instrument, server = emulated
    resource = open_raw(server)
    try:
        instrument.faults.garble_after_messages = 3
        assert resource.query("*IDN?") == IDN
        assert resource.query("*IDN?") == IDN
        garbled = resource.query("*IDN?")  # message 3
        assert garbled != IDN and len(garbled) == len(IDN)  # still one line
        assert garble(garbled.encode("latin-1")) == IDN.encode("latin-1")
        assert resource.query("*IDN?") == IDN
        instrument.faults.garble_after_messages = 1
        resource.write(":FREQ1 2e6")  # a write has no reply: the next reply is the garbled one
        assert resource.query(":FREQ1?") != "2.000000000e+06"
        assert float(resource.query(":FREQ1?")) == pytest.approx(2e6)
    finally:
        resource.close()


def test_an_instrument_error_armed_after_n_messages_rejects_exactly_that_command(emulated):
    instrument, server = emulated
    generator = connect(server)
    instrument.faults.error_after_messages = 3
    generator.write(":VOLT1:OFFS 0.1")  # message 1
    assert generator.read_error() == (0, "No error")  # message 2: nothing before
    generator.write(":VOLT1:OFFS 0.2")  # message 3: rejected, as if the instrument refused it
    with pytest.raises(InstrumentError, match=r"reports: -200: Execution error\b(?!;)"):
        generator.check_errors()
    assert float(generator.ask(":VOLT1:OFFS?")) == pytest.approx(0.1)  # the rejected command did nothing
    assert generator.check_errors() == []
    instrument.faults.error = (-241, "Hardware missing")
    instrument.faults.error_after_messages = 1
    generator.write(":VOLT1:OFFS 0.3")
    with pytest.raises(InstrumentError, match="-241: Hardware missing"):
        generator.check_errors()


def test_a_rejected_query_is_not_answered(emulated):
    instrument, server = emulated
    resource = open_raw(server, timeout_ms=1000)
    try:
        instrument.faults.error_next_message = True
        with pytest.raises(pyvisa.VisaIOError):
            resource.query("*IDN?")
        resource.timeout = 5000
        assert resource.query(":SYST:ERR?") == '-200,"Execution error"'
        assert list(instrument.log)[-2:] == ["*IDN?", ":SYST:ERR?"]
    finally:
        resource.close()


def test_a_device_breakdown_armed_after_n_waveforms_strikes_at_that_waveform(emulated, bench):
    instrument, server = emulated
    generator = connect(server)
    chip = bench.chip
    i = chip.index(DEVICE)
    bench.faults.break_after_waveforms = 3
    for _ in range(2):
        generator.play_pulse(0.1, 1e-6)  # far below breakdown
    assert not bool(chip.destroyed[i]) and np.isfinite(bench.read_rxy(1)).all()
    cycles = int(chip.cycles[i])
    generator.play_pulse(0.1, 1e-6)  # the third waveform breaks the device down
    assert bool(chip.destroyed[i])
    assert int(chip.cycles[i]) == cycles + 1  # one pulse, as played
    assert np.isinf(bench.read_rxy(3)).all()  # it reads open from now on
    assert bench.faults.break_after_waveforms is None
    np.testing.assert_allclose(instrument.played[-1][1], [0.1, 0.0])  # the generator played what it was told


def test_an_armed_breakdown_with_nothing_routed_breaks_nothing(emulated, bench):
    _, server = emulated
    generator = connect(server)
    i = bench.chip.index(DEVICE)
    bench.faults.break_after_waveforms = 1
    with bench.lock:
        bench.set_closed([])
    generator.play_pulse(0.1, 1e-6)
    with bench.lock:
        bench.set_closed(bench.routes[DEVICE])
    generator.play_pulse(0.1, 1e-6)
    assert not bool(bench.chip.destroyed[i]) and bench.faults.break_after_waveforms is None
