"""The emulated Keithley 2450 against its reference manual (2450-901-01, section 6), over TCP with raw pyvisa.

``*RST`` defaults, ``MIN``/``MAX``/``DEF`` as values and as query arguments, the error codes, read-backs of
coupled settings (ranges and levels, delays and auto delay), the reading buffers, the trigger-model templates,
and status polling during a triggered buffer acquisition: ``*OPC`` + ``*ESR?``, ``*STB?`` with the operation
register mapped to the trigger model's events, and ``*OPC?`` answering only once the model has finished.
"""

from __future__ import annotations

import numpy as np
import pytest
import pyvisa

from sim_backend.emulated.keithley2450_emulator import EmulatedKeithley2450
from sim_backend.emulated.server import InstrumentServer
from tests.emulation import open_raw, scpi_error_codes, station_bench

DEVICE = "w3-1"


@pytest.fixture(scope="module")
def served():
    bench = station_bench(routed=DEVICE)
    with InstrumentServer(EmulatedKeithley2450(bench)) as server:
        yield bench, server



@pytest.fixture(scope="module")
def session(served):
    resource = open_raw(served[1], timeout_ms=1000)
    yield resource
    resource.close()


@pytest.fixture()
def smu(session):
    session.write("*RST;*CLS")
    yield session
    assert scpi_error_codes(session) == []



RESET_STATE = {
    ":SOUR:FUNC?": "VOLT", ":SOUR:VOLT?": 0.0, ":SOUR:VOLT:ILIM?": 1.05e-4, ":SOUR:CURR:VLIM?": 21.0,
    ":SOUR:VOLT:RANG:AUTO?": "1", ":SOUR:VOLT:RANG?": 0.02, ":SOUR:VOLT:DEL:AUTO?": "1",
    ":SOUR:VOLT:READ:BACK?": "1", ":OUTP?": "0", ":OUTP:VOLT:SMOD?": "NORM",
    ":SENS:FUNC?": '"CURR:DC"', ":SENS:CURR:NPLC?": 1.0, ":SENS:CURR:RANG?": 1e-4, ":SENS:VOLT:RANG?": 20.0,
    ":SENS:RES:RANG?": 2e5, ":SENS:CURR:RANG:AUTO?": "1", ":SENS:CURR:RSEN?": "0", ":SENS:CURR:AZER?": "1",
    ":SENS:CURR:AVER?": "0", ":SENS:CURR:AVER:COUN?": 10.0, ":SENS:CURR:AVER:TCON?": "REP", ":SENS:COUN?": 1.0,
    ":SENS:CURR:UNIT?": "AMP", ":SENS:RES:OCOM?": "0", ":ROUT:TERM?": "FRON", ":FORM:DATA?": "ASC",
    ":TRAC:ACT?": 0.0, ":TRAC:POIN?": 100_000.0, ":TRIG:STAT?": "IDLE;IDLE;0", ":SYST:LFR?": 50.0, "*LANG?": "SCPI",
}


def test_reset_state_is_the_manuals(smu):
    for query, expected in RESET_STATE.items():
        reply = smu.query(query)
        assert (float(reply) == pytest.approx(expected)) if isinstance(expected, float) else reply == expected, query


@pytest.mark.parametrize(("header", "low", "high", "default"), [
    (":SENS:CURR:NPLC", 0.01, 10, 1), (":SOUR:CURR:VLIM", 0.02, 210, 21), (":SOUR:VOLT:ILIM", 1e-8, 1.05, 1.05e-4),
    (":SENS:VOLT:AVER:COUN", 1, 100, 10), (":SOUR:CURR:DEL", 0, 10_000, 0), (":SENS:COUN", 1, 300_000, 1),
    (":SENS:RES:RANG", 20, 2e8, 2e5), (":SOUR:VOLT:RANG", 0.02, 200, 0.02), (":SOUR:CURR", -1.05, 1.05, 0),
])
def test_min_max_def_as_query_arguments_and_as_values(smu, header, low, high, default):
    present = float(smu.query(f"{header}?"))
    for word, value in (("MIN", low), ("MAXIMUM", high), ("DEF", default)):
        assert float(smu.query(f"{header}? {word}")) == pytest.approx(value)
    assert float(smu.query(f"{header}?")) == pytest.approx(present)  # asking for a limit changes nothing
    for word, value in (("MAX", high), ("minimum", low), ("DEFault", default)):
        smu.write(f"{header} {word}")
        assert float(smu.query(f"{header}?")) == pytest.approx(value)


def test_errors_are_the_instruments_codes_and_leave_the_setting(smu):
    smu.write(":SOUR:CURR:VLIM 500")  # beyond 210 V
    smu.write(":SENS:CURR:NPLC fast")
    smu.write(":SOUR:CURR:FOO 1")
    assert smu.query(":SYST:ERR?").startswith('-222,"Parameter data out of range; voltage limit 500')
    assert smu.query(":SYST:ERR?").startswith('-224,"Illegal parameter value')
    assert smu.query(":SYST:ERR?") == '-113,"Undefined header; :SOUR:CURR:FOO"'
    assert float(smu.query(":SOUR:CURR:VLIM?")) == 21 and float(smu.query(":SENS:CURR:NPLC?")) == 1
    smu.write("*ESE 60")
    smu.write(":FOO")
    assert int(smu.query("*ESR?")) & 32 and int(smu.query("*STB?")) == 4  # CME read and cleared; EAV: queued
    assert scpi_error_codes(smu) == [-113]


def test_source_range_follows_the_level_or_refuses_a_level_beyond_it(smu):
    smu.write(":SOUR:FUNC CURR;:SOUR:CURR 5e-5")
    assert float(smu.query(":SOUR:CURR:RANG?")) == 1e-4  # autorange: the lowest range that holds 50 µA
    smu.write(":SOUR:CURR:RANG 1e-6")
    assert smu.query(":SOUR:CURR:RANG:AUTO?") == "1" and scpi_error_codes(smu) == [-222]  # 50 µA needs more; ignored
    smu.write(":SOUR:CURR 1e-6;:SOUR:CURR:RANG 1e-6;:SOUR:CURR 2e-5")
    assert float(smu.query(":SOUR:CURR?")) == 1e-6 and scpi_error_codes(smu) == [-222]  # the level is kept
    smu.write(":SENS:VOLT:RANG 0.05")
    assert float(smu.query(":SENS:VOLT:RANG?")) == 0.2 and smu.query(":SENS:VOLT:RANG:AUTO?") == "0"
    smu.write(":SOUR:VOLT:DEL 0.1")
    assert smu.query(":SOUR:VOLT:DEL:AUTO?") == "0"  # a delay turns the auto delay off


def test_limit_trip_and_readings_in_other_units(smu, served):
    r_ch = served[0].channel_resistance()
    smu.write(":SOUR:FUNC CURR;:SOUR:CURR 1e-3;:SOUR:CURR:VLIM 0.05;:SENS:FUNC 'VOLT';:SENS:VOLT:NPLC 0.01;:OUTP ON")
    assert smu.query(":SOUR:CURR:VLIM:TRIP?") == "1"  # 1 mA through R_ch needs more than 50 mV
    assert float(smu.query(":READ?")) == pytest.approx(0.05)
    smu.write(":SOUR:CURR 1e-5;:SENS:VOLT:UNIT OHM")
    assert smu.query(":SOUR:CURR:VLIM:TRIP?") == "0"
    assert float(smu.query(':READ? "defbuffer1", READ, UNIT, SOUR').split(",")[0]) == pytest.approx(r_ch)
    assert smu.query(':FETC? "defbuffer1", UNIT, SOURUNIT') == "Ohm,Amp DC"
    smu.write(":OUTP OFF")


def test_continuous_buffer_keeps_the_newest_readings_and_reports_statistics(smu):
    smu.write(":TRAC:POIN 10;:SENS:CURR:NPLC 0.01;:SENS:COUN 15;:SOUR:VOLT 0.01;:OUTP ON")
    smu.query(":READ?")
    assert smu.query(":TRAC:ACT?") == "10"
    times = np.array(smu.query(':TRAC:DATA? 1, 10, "defbuffer1", REL').split(","), dtype=float)
    assert times[0] == 0 and np.allclose(np.diff(times), 0.2e-3)  # one aperture apart
    readings = np.array(smu.query(":TRAC:DATA? 1, 10").split(","), dtype=float)
    assert float(smu.query(":TRAC:STAT:AVER?")) == pytest.approx(readings.mean())
    assert float(smu.query(":TRAC:STAT:PK2P?")) == pytest.approx(np.ptp(readings), abs=1e-15)
    smu.write(":TRAC:STAT:CLE")
    assert float(smu.query(":TRAC:STAT:AVER?")) == 9.91e37 and smu.query(":TRAC:ACT?") == "10"
    smu.write(":OUTP OFF")


def test_averaging_filter_takes_its_conversions_and_averages_the_noise(smu):
    smu.write(":SENS:FUNC 'RES';:SENS:RES:RSEN ON;:SENS:RES:NPLC 0.01;:SOUR:FUNC CURR;:SOUR:CURR 1e-4;:OUTP ON")
    smu.write(":SENS:COUN 20;:TRAC:CLE")
    smu.query(":READ?")
    plain = np.array(smu.query(":TRAC:DATA? 1, 20").split(","), dtype=float)
    smu.write(":SENS:RES:AVER:COUN 100;:SENS:RES:AVER ON;:TRAC:CLE")
    smu.query(":READ?")
    averaged = np.array(smu.query(":TRAC:DATA? 1, 20").split(","), dtype=float)
    assert averaged.std() < plain.std() / 3  # 100 conversions a reading: a tenth of the read noise
    times = np.array(smu.query(':TRAC:DATA? 1, 20, "defbuffer1", REL').split(","), dtype=float)
    assert np.allclose(np.diff(times), 100 * 0.2e-3)  # a repeating filter: 100 apertures a reading
    smu.write(":SENS:RES:AVER:COUN 5;:SENS:RES:AVER:TCON MOV;:TRAC:CLE")
    smu.write(':TRIG:LOAD "SimpleLoop", 3;:INIT')  # the trigger model's readings go through the filter too
    times = np.array(smu.query(':TRAC:DATA? 1, 3, "defbuffer1", REL').split(","), dtype=float)
    assert np.allclose(times, [0, 5 * 0.2e-3, 6 * 0.2e-3])  # a moving filter fills its window once
    smu.write(":SENS:RES:AVER:TCON REP;:SOUR:SWE:CURR:LIN 1e-4, 2e-4, 3, 0.001;:INIT")  # and sweeps' readings
    times = np.array(smu.query(':TRAC:DATA? 1, 3, "defbuffer1", REL').split(","), dtype=float)
    assert np.allclose(np.diff(times), 1e-3 + 5 * 0.2e-3)  # the delay, then 5 conversions a point


def test_templates_and_sweeps_fill_the_buffer(smu, served):
    smu.write(":SENS:CURR:NPLC 0.1;:OUTP ON")  # 2 ms a reading
    smu.write(':TRIG:LOAD "DurationLoop", 0.1, 0.008;:INIT')  # a reading every 10 ms for 100 ms
    assert smu.query("*OPC?") == "1" and smu.query(":TRAC:ACT?") == "10"
    smu.write(':TRIG:LOAD "SimpleLoop", 7, 0;:INIT')
    assert smu.query("*OPC?") == "1" and smu.query(":TRAC:ACT?") == "17"
    smu.write(":SOUR:FUNC CURR;:SOUR:CURR:VLIM 10;:SENS:FUNC 'VOLT'")
    smu.write(":SOUR:SWE:CURR:LOG 1e-6, 1e-4, 3, 0, 1, BEST, OFF, ON;:INIT")
    sources = np.array(smu.query(':TRAC:DATA? 1, 6, "defbuffer1", SOUR').split(","), dtype=float)
    np.testing.assert_allclose(sources, [1e-6, 1e-5, 1e-4, 1e-4, 1e-5, 1e-6])  # dual: there and back
    assert float(smu.query(":SOUR:CURR:RANG?")) == 1e-4 and smu.query(":OUTP?") == "0"
    smu.write(":SOUR:SWE:CURR:LIN:STEP 0, 1e-4, 2.5e-5, 0.001;:INIT")
    assert smu.query(":TRAC:ACT?") == "5"


def test_loop_until_event_keeps_the_readings_around_the_event(smu, served):
    bench = served[0]
    smu.write(":TRAC:POIN 100;:SENS:CURR:NPLC 0.01;:SOUR:VOLT 0.01;:OUTP ON")  # a reading every 0.2 ms
    smu.write(':TRIG:LOAD "LoopUntilEvent", COMMand, 40;:INIT')
    assert smu.query(":TRIG:STAT?") == "RUNNING;RUNNING;2"
    with bench.lock:
        bench.drive_voltage(np.array([0.0]), np.array([5e-3]))  # 5 ms pass: 25 readings so far
    assert smu.query(":TRAC:ACT?") == "25"
    with bench.lock:
        bench.drive_voltage(np.array([0.0]), np.array([50e-3]))
    assert smu.query(":TRAC:ACT?") == "100"  # the buffer keeps the newest
    smu.write("*TRG")
    assert smu.query("*OPC?") == "1" and smu.query(":TRIG:STAT?") == "IDLE;IDLE;3"
    times = np.array(smu.query(':TRAC:DATA? 1, 100, "defbuffer1", REL').split(","), dtype=float)
    assert np.allclose(np.diff(times), 0.2e-3)  # 40 before the event, then 60 after it fill the buffer
    smu.write(":OUTP OFF")


def arm_for_five_readings(smu, event):
    smu.write(":STAT:OPER:MAP 0, 2732, 2731;:STAT:OPER:ENAB 1;*SRE 128;*ESE 1")
    smu.write(":STAT:QUES:MAP 0, 2732, 2731;:STAT:QUES:ENAB 1")  # a polling script's other choice: QSB
    smu.write(":DIG:LINE1:MODE TRIG, IN;:SENS:CURR:NPLC 0.01;:OUTP ON")
    smu.write(f':TRIG:LOAD "Empty";:TRIG:BLOC:BUFF:CLE 1;:TRIG:BLOC:WAIT 2, {event};'
              ':TRIG:BLOC:MEAS 3, "defbuffer1", 5;:INIT')
    smu.write("*OPC")
    # a query on this session returns only after the server has parsed :INIT, so another session's
    # *OPC? cannot overtake the model's start
    assert smu.query(":TRIG:STAT?") == "WAITING;WAITING;2"


def test_opc_and_status_byte_during_an_acquisition_waiting_on_trg(smu):
    arm_for_five_readings(smu, "COMMand")
    assert smu.query("*ESR?") == "0"  # OPC waits for the model
    assert int(smu.query("*STB?")) == 0 and smu.query(":STAT:OPER:COND?") == "0"
    smu.write("*TRG")
    # OSB (model idled), MSS (OSB enabled), ESB (OPC, enabled), QSB (model idled)
    assert int(smu.query("*STB?")) == 128 + 64 + 32 + 8
    assert smu.query("*ESR?") == "1" and smu.query(":STAT:OPER?") == "1" and smu.query(":STAT:OPER?") == "0"
    assert int(smu.query("*STB?")) == 8 and smu.query(":STAT:OPER:COND?") == "1"
    smu.write(":STAT:CLE")
    assert int(smu.query("*STB?")) == 0 and smu.query(":STAT:QUES:COND?") == "1"
    assert smu.query(":TRAC:ACT?") == "5"
    smu.write(":STAT:PRES")
    assert smu.query(":STAT:OPER:ENAB?") == "0" and smu.query(":STAT:OPER:MAP? 0") == "2732,2731"


def test_opc_query_answers_once_the_bench_trigger_line_ends_the_acquisition(smu, served):
    bench, server = served
    arm_for_five_readings(smu, "DIGio1")
    waiting = open_raw(server, timeout_ms=100)
    try:
        waiting.write("*OPC?")
        with pytest.raises(pyvisa.VisaIOError):
            waiting.read()  # no answer while the model waits for its trigger
        with bench.lock:
            bench.drive_voltage(np.array([0.0]), np.array([1e-3]))  # the pulse generator's waveform: its trigger
        waiting.timeout = 1000
        assert waiting.read() == "1"
    finally:
        waiting.close()
    assert smu.query(":TRAC:ACT?") == "5" and int(smu.query("*ESR?")) & 1


def test_opc_query_from_one_session_waits_for_trg_from_another(smu, served):
    arm_for_five_readings(smu, "COMMand")
    waiting = open_raw(served[1], timeout_ms=1000)
    try:
        waiting.write("*OPC?")
        smu.write("*TRG")
        assert waiting.read() == "1"
    finally:
        waiting.close()


def test_setups_language_and_system_commands(smu):
    smu.write(":SENS:CURR:NPLC 2;*SAV 3;*RST")
    assert float(smu.query(":SENS:CURR:NPLC?")) == 1
    smu.write("*RCL 3")
    assert float(smu.query(":SENS:CURR:NPLC?")) == 2
    smu.write("*RCL 4;*SAV 5;*LANG TSP")
    assert scpi_error_codes(smu) == [-224, -222]  # nothing saved at 4; only 0 to 4
    assert smu.query("*LANG?") == "SCPI"  # a new command set takes effect at the next power-on
    smu.write('*LANG SCPI;:SYST:BEEP 1000, 0.01;:DISP:USER1:TEXT "Hall bar w3-1";:DISP:CLE')
    smu.write(":SYST:BEEP 9000, 1;:FOO")
    smu.write(":SYST:CLE")  # clears the event log and with it the error queue
