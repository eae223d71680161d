"""Byte-exact protocol tests of the Keithley 2450 driver (``instruments.drivers.keithley2450``).

Every command the driver sends is checked against the exact message (terminators excluded, as in
:func:`pymeasure.test.expected_protocol`) together with the way the replies are parsed. A refusal is
checked with an empty protocol: the call must raise before anything is written.
"""

from __future__ import annotations

import numpy as np
import pytest
from pymeasure.test import expected_protocol

from instruments.drivers import keithley2450 as k2450_module
from instruments.drivers.errors import InstrumentError
from instruments.drivers.keithley2450 import Keithley2450

BUFFER = '"defbuffer1"'
NO_ERROR = ("SYST:ERR?", '0,"No error"')


def refused(call):
    """``call(driver)`` raises ValueError and writes nothing."""
    with expected_protocol(Keithley2450, []) as smu:
        with pytest.raises(ValueError):
            call(smu)


# -- source and limits ------------------------------------------------------------------------------


def test_source_current_set_and_get():
    with expected_protocol(Keithley2450, [(":SOUR:CURR:LEV 0.0001", None), NO_ERROR,
                                          (":SOUR:CURR?", "1.000000E-04")]) as smu:
        smu.source_current = 1e-4
        assert smu.source_current == pytest.approx(1e-4)


@pytest.mark.parametrize("current", [1.06, -1.1, 2.0])
def test_source_current_out_of_range_is_refused(current):
    refused(lambda smu: setattr(smu, "source_current", current))


def test_compliance_voltage_set_and_get():
    with expected_protocol(Keithley2450, [(":SOUR:CURR:VLIM 2", None), NO_ERROR,
                                          (":SOUR:CURR:VLIM?", "2.000000E+00")]) as smu:
        smu.compliance_voltage = 2
        assert smu.compliance_voltage == pytest.approx(2.0)


@pytest.mark.parametrize("limit", [0.01, -2.0, 211.0])
def test_compliance_voltage_out_of_range_is_refused(limit):
    refused(lambda smu: setattr(smu, "compliance_voltage", limit))


def test_resistance_nplc_set_and_refusals():
    with expected_protocol(Keithley2450, [(":SENS:RES:NPLC 0.01", None), NO_ERROR]) as smu:
        smu.resistance_nplc = 0.01
    refused(lambda smu: setattr(smu, "resistance_nplc", 0.001))
    refused(lambda smu: setattr(smu, "resistance_nplc", 11))


def test_output_on_off_and_state():
    with expected_protocol(Keithley2450, [("OUTPUT ON", None), ("OUTPUT?", "1"), ("OUTPUT OFF", None),
                                          ("OUTPUT?", "0")]) as smu:
        smu.enable_source()
        assert smu.source_enabled is True
        smu.disable_source()
        assert smu.source_enabled is False


@pytest.mark.parametrize(("mode", "code"), [("high_impedance", "HIMP"), ("normal", "NORM"), ("zero", "ZERO"),
                                            ("guard", "GUAR")])
def test_output_off_mode_set_and_get(mode, code):
    with expected_protocol(Keithley2450, [(f":OUTP:CURR:SMOD {code}", None), NO_ERROR,
                                          (":OUTP:CURR:SMOD?", code)]) as smu:
        smu.output_off_mode = mode
        assert smu.output_off_mode == mode


def test_output_off_mode_refuses_an_unknown_mode():
    refused(lambda smu: setattr(smu, "output_off_mode", "HIMP"))


# -- 4-wire resistance ------------------------------------------------------------------------------

FOUR_WIRE_SETUP = [
    (":SOUR:FUNC CURR", None), (":SOUR:FUNC?", "CURR"), (":SOUR:CURR:RANG:AUTO 1", None),
    (":SOUR:CURR:VLIM 2", None), NO_ERROR, NO_ERROR,  # the limit's own check, then the stock set-up's
    (":SENS:FUNC 'RES';:SENS:RES:NPLC 0.010000;", None), (":SENS:RES:RANG:AUTO 1;", None), NO_ERROR,
    (":SENS:RES:RSENSE 1", None), (":SOUR:CURR:LEV 0.0001", None), NO_ERROR,
]


def test_configure_four_wire_resistance():
    with expected_protocol(Keithley2450, FOUR_WIRE_SETUP) as smu:
        smu.configure_four_wire_resistance(100e-6, 2.0, nplc=0.01)


def test_read_four_wire_resistance_turns_the_output_on_for_one_reading():
    with expected_protocol(Keithley2450, FOUR_WIRE_SETUP + [("OUTPUT ON", None), (":READ?", "1.234567E+03"),
                                                             ("OUTPUT OFF", None)]) as smu:
        assert smu.read_four_wire_resistance(100e-6, 2.0, nplc=0.01) == pytest.approx(1234.567)


def test_read_four_wire_resistance_turns_the_output_off_after_a_bad_reply():
    with expected_protocol(Keithley2450, FOUR_WIRE_SETUP + [("OUTPUT ON", None), (":READ?", "garbled"),
                                                             ("OUTPUT OFF", None)]) as smu:
        with pytest.raises(ValueError):
            smu.read_four_wire_resistance(100e-6, 2.0, nplc=0.01)


def test_configure_four_wire_resistance_surfaces_an_instrument_error():
    with expected_protocol(Keithley2450, FOUR_WIRE_SETUP[:4] + [("SYST:ERR?", '-222,"Parameter data out of range"'),
                                                                NO_ERROR]) as smu:
        with pytest.raises(InstrumentError, match="-222: Parameter data out of range"):
            smu.configure_four_wire_resistance(100e-6, 2.0, nplc=0.01)


@pytest.mark.parametrize(("current", "limit", "nplc"), [(1.1, 2.0, 1.0), (1e-4, 0.0, 1.0), (1e-4, 300.0, 1.0),
                                                        (1e-4, 2.0, 0.001), (1e-4, 2.0, 20.0)])
def test_four_wire_refusals_send_nothing(current, limit, nplc):
    refused(lambda smu: smu.configure_four_wire_resistance(current, limit, nplc))
    refused(lambda smu: smu.read_four_wire_resistance(current, limit, nplc))


# -- source lists and list sweeps -----------------------------------------------------------------


def test_current_list_is_sent_as_one_comma_list():
    with expected_protocol(Keithley2450, [(":SOUR:LIST:CURR 1e-05, -1e-05, 0.0002, 0, 0.00123457", None)]) as smu:
        smu.current_list = [1e-5, -1e-5, 2e-4, 0.0, 0.001234567]


def test_current_list_and_append_take_100_values_per_command():
    values = ", ".join(["1e-06"] * 100)
    with expected_protocol(Keithley2450, [(f":SOUR:LIST:CURR {values}", None),
                                          (f":SOUR:LIST:CURR:APP {values}", None)]) as smu:
        smu.current_list = [1e-6] * 100
        smu.current_list_append = [1e-6] * 100


@pytest.mark.parametrize("values", [[1e-6] * 101, [], [0.0, 1.1], [-1.06]])
def test_current_list_and_append_refusals_send_nothing(values):
    refused(lambda smu: setattr(smu, "current_list", values))
    refused(lambda smu: setattr(smu, "current_list_append", values))


def test_load_current_list_sends_groups_of_100():
    currents = [i * 1e-6 for i in range(250)]
    first, second, third = currents[:100], currents[100:200], currents[200:]

    def text(values):
        return ", ".join(f"{v:.6g}" for v in values)

    with expected_protocol(Keithley2450, [(f":SOUR:LIST:CURR {text(first)}", None),
                                          (f":SOUR:LIST:CURR:APP {text(second)}", None),
                                          (f":SOUR:LIST:CURR:APP {text(third)}", None)]) as smu:
        smu.load_current_list(currents)


def test_load_current_list_takes_2500_values_and_no_more():
    with expected_protocol(Keithley2450, [(":SOUR:LIST:CURR " + ", ".join(["1e-06"] * 100), None)]
                           + [(":SOUR:LIST:CURR:APP " + ", ".join(["1e-06"] * 100), None)] * 24) as smu:
        smu.load_current_list([1e-6] * 2500)
    refused(lambda smu: smu.load_current_list([1e-6] * 2501))
    refused(lambda smu: smu.load_current_list([1e-6] * 200 + [1.2]))  # a bad value late in the list


def test_start_current_list_sweep():
    with expected_protocol(Keithley2450, [
        (":SOUR:LIST:CURR 0.0001, -0.0001, 5e-05", None),
        (f":SOUR:SWE:CURR:LIST 1, 0.001, 1, OFF, {BUFFER}", None),
        (":INIT", None),
    ]) as smu:
        smu.start_current_list_sweep([1e-4, -1e-4, 5e-5], 1e-3)


def test_start_current_list_sweep_without_dwell_and_with_an_appended_list():
    currents = [1e-6] * 150
    with expected_protocol(Keithley2450, [
        (":SOUR:LIST:CURR " + ", ".join(["1e-06"] * 100), None),
        (":SOUR:LIST:CURR:APP " + ", ".join(["1e-06"] * 50), None),
        (f":SOUR:SWE:CURR:LIST 1, 0, 1, OFF, {BUFFER}", None),
        (":INIT", None),
    ]) as smu:
        smu.start_current_list_sweep(currents, 0.0)


@pytest.mark.parametrize(("currents", "dwell"), [([1e-6] * 2501, 1e-3), ([], 1e-3), ([2.0], 1e-3),
                                                 ([1e-6], -1e-3), ([1e-6], 10_001.0), ([1e-6], 10e-6)])
def test_start_current_list_sweep_refusals_send_nothing(currents, dwell):
    refused(lambda smu: smu.start_current_list_sweep(currents, dwell))


# -- trigger input, trigger models ------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["TRIG, IN", "DIG, IN"])
def test_trigger_line_mode(mode):
    with expected_protocol(Keithley2450, [(f":DIG:LINE1:MODE {mode}", None), NO_ERROR]) as smu:
        smu.trigger_line_mode = mode


def test_trigger_line_mode_refuses_an_output_mode():
    refused(lambda smu: setattr(smu, "trigger_line_mode", "TRIG, OUT"))


@pytest.mark.parametrize("edge", ["RIS", "FALL", "EITH"])
def test_trigger_edge(edge):
    with expected_protocol(Keithley2450, [(f":TRIG:DIG1:IN:EDGE {edge}", None), NO_ERROR]) as smu:
        smu.trigger_edge = edge


def test_trigger_edge_refuses_an_unknown_edge():
    refused(lambda smu: setattr(smu, "trigger_edge", "RISING"))


def test_clear_trigger_input():
    with expected_protocol(Keithley2450, [(":TRIG:DIG1:IN:CLE", None)]) as smu:
        smu.clear_trigger_input()


def test_configure_triggered_readings_takes_one_reading_per_trigger():
    with expected_protocol(Keithley2450, [
        (':TRIG:LOAD "Empty"', None),
        (f":TRIG:BLOC:BUFF:CLE 1, {BUFFER}", None),
        (":TRIG:BLOC:WAIT 2, DIG1", None),
        (":TRIG:BLOC:DEL:CONS 3, 2e-05", None),
        (f":TRIG:BLOC:MEAS 4, {BUFFER}", None),
        (":TRIG:BLOC:BRAN:COUN 5, 250, 2", None),
    ]) as smu:
        smu.configure_triggered_readings(250, delay_s=20e-6)


def test_configure_triggered_readings_without_delay():
    with expected_protocol(Keithley2450, [
        (':TRIG:LOAD "Empty"', None),
        (f":TRIG:BLOC:BUFF:CLE 1, {BUFFER}", None),
        (":TRIG:BLOC:WAIT 2, DIG1", None),
        (":TRIG:BLOC:DEL:CONS 3, 0", None),
        (f":TRIG:BLOC:MEAS 4, {BUFFER}", None),
        (":TRIG:BLOC:BRAN:COUN 5, 1, 2", None),
    ]) as smu:
        smu.configure_triggered_readings(1)


@pytest.mark.parametrize(("count", "delay"), [(0, 0.0), (100_001, 0.0), (10, -1e-6), (10, 10_001.0)])
def test_configure_triggered_readings_refusals_send_nothing(count, delay):
    refused(lambda smu: smu.configure_triggered_readings(count, delay))


def test_configure_timed_readings_builds_the_trigger_model():
    # First reading 1 µs after the trigger, a second one 2 ms later, trials every 10 ms, 1 ms aperture:
    # gap = 2 ms - 1 ms, tail = 10 ms - 2 ms - 1 ms.
    with expected_protocol(Keithley2450, [
        (':TRIG:LOAD "Empty"', None),
        (f":TRIG:BLOC:BUFF:CLE 1, {BUFFER}", None),
        (":TRIG:BLOC:WAIT 2, DIG1", None),
        (":TRIG:BLOC:DEL:CONS 3, 1e-06", None),
        (f":TRIG:BLOC:MEAS 4, {BUFFER}", None),
        (":TRIG:BLOC:DEL:CONS 5, 0.001", None),
        (f":TRIG:BLOC:MEAS 6, {BUFFER}", None),
        (":TRIG:BLOC:DEL:CONS 7, 0.007", None),
        (":TRIG:BLOC:BRAN:COUN 8, 3, 4", None),
    ]) as smu:
        smu.configure_timed_readings(n_trials=3, first_delay_s=1e-6, delays_s=[2e-3], period_s=10e-3,
                                     aperture_s=1e-3)


def test_configure_timed_readings_with_one_reading_per_trial():
    with expected_protocol(Keithley2450, [
        (':TRIG:LOAD "Empty"', None),
        (f":TRIG:BLOC:BUFF:CLE 1, {BUFFER}", None),
        (":TRIG:BLOC:WAIT 2, DIG1", None),
        (":TRIG:BLOC:DEL:CONS 3, 0", None),
        (f":TRIG:BLOC:MEAS 4, {BUFFER}", None),
        (":TRIG:BLOC:DEL:CONS 5, 0.0005", None),
        (":TRIG:BLOC:BRAN:COUN 6, 100, 4", None),
    ]) as smu:
        smu.configure_timed_readings(n_trials=100, first_delay_s=0.0, delays_s=[], period_s=1e-3, aperture_s=5e-4)


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(delays_s=[0.5e-3]), "closer together than the aperture"),  # reading gap shorter than the aperture
    (dict(period_s=2.5e-3), "closer together than the aperture"),  # trial shorter than its readings
    (dict(first_delay_s=-1e-6), "out of range"),
    (dict(n_trials=0), None),
    (dict(n_trials=50_001), None),  # 2 readings per trial: at most 50 000 trials fit the buffer
])
def test_configure_timed_readings_refusals_send_nothing(kwargs, match):
    arguments = dict(n_trials=3, first_delay_s=1e-6, delays_s=[2e-3], period_s=10e-3, aperture_s=1e-3)
    arguments.update(kwargs)
    with expected_protocol(Keithley2450, []) as smu:
        with pytest.raises(ValueError, match=match):
            smu.configure_timed_readings(**arguments)


@pytest.mark.parametrize(("reply", "state"), [("WAITING;WAITING;2", "WAITING"), ("IDLE;IDLE;9", "IDLE"),
                                              ("RUNNING;RUNNING;5", "RUNNING"), ("ABORTED", "ABORTED")])
def test_trigger_state_keeps_the_overall_state(reply, state):
    with expected_protocol(Keithley2450, [(":TRIG:STAT?", reply)]) as smu:
        assert smu.trigger_state == state


def test_start_returns_once_the_model_waits_for_its_trigger():
    with expected_protocol(Keithley2450, [
        (":INIT", None),
        (":TRIG:STAT?", "RUNNING;RUNNING;1"),
        (":TRIG:STAT?", "WAITING;WAITING;2"),
    ]) as smu:
        smu.start()


def test_start_aborts_and_raises_when_the_model_never_waits(monkeypatch):
    clock = iter([0.0, 10.0])
    monkeypatch.setattr(k2450_module.time, "monotonic", lambda: next(clock))
    with expected_protocol(Keithley2450, [(":INIT", None), (":TRIG:STAT?", "IDLE;IDLE;9"), (":ABOR", None)]) as smu:
        with pytest.raises(InstrumentError, match="did not reach its wait block"):
            smu.start(timeout_s=5.0)


def test_wait_while_busy_polls_until_the_model_has_finished():
    with expected_protocol(Keithley2450, [(":TRIG:STAT?", "RUNNING;RUNNING;3"), (":TRIG:STAT?", "WAITING;WAITING;2"),
                                          (":TRIG:STAT?", "IDLE;IDLE;9")]) as smu:
        assert smu.wait_while_busy(5.0) == "IDLE"


def test_wait_while_busy_gives_up_on_a_model_still_waiting(monkeypatch):
    clock = iter([0.0, 0.5, 10.0])
    monkeypatch.setattr(k2450_module.time, "monotonic", lambda: next(clock))
    with expected_protocol(Keithley2450, [(":TRIG:STAT?", "WAITING;WAITING;2"),
                                          (":TRIG:STAT?", "WAITING;WAITING;2")]) as smu:
        assert smu.wait_while_busy(5.0) == "WAITING"


def test_abort_and_wait_for_completion():
    with expected_protocol(Keithley2450, [(":ABOR", None), ("*OPC?", "1")]) as smu:
        smu.abort()
        smu.wait_for_completion()


# -- reading buffer ---------------------------------------------------------------------------------


def test_clear_buffer_and_buffer_count():
    with expected_protocol(Keithley2450, [(f":TRAC:CLE {BUFFER}", None), (f":TRAC:ACT? {BUFFER}", "42")]) as smu:
        smu.clear_buffer()
        count = smu.buffer_count()
    assert count == 42 and isinstance(count, int)


def test_fetch_buffer_parses_all_readings_of_one_query():
    reply = "1.000000E+03,1.250000E+03,-2.500000E+01,9.9E+37"
    with expected_protocol(Keithley2450, [(f":TRAC:DATA? 1, 4, {BUFFER}, READ", reply)]) as smu:
        readings = smu.fetch_buffer(4)
    assert isinstance(readings, np.ndarray) and readings.dtype == np.float64
    np.testing.assert_array_equal(readings, [1000.0, 1250.0, -25.0, 9.9e37])


@pytest.mark.parametrize("count", [0, -1, 100_001])
def test_fetch_buffer_refuses_a_count_outside_the_buffer(count):
    refused(lambda smu: smu.fetch_buffer(count))


# -- error queue ------------------------------------------------------------------------------------


def test_check_errors_with_an_empty_queue_returns_nothing():
    with expected_protocol(Keithley2450, [NO_ERROR]) as smu:
        assert smu.check_errors() == []


def test_check_errors_raises_naming_every_code_and_message():
    with expected_protocol(Keithley2450, [
        ("SYST:ERR?", '-222,"Parameter data out of range"'),
        ("SYST:ERR?", '-113,"Undefined header"'),
        NO_ERROR,
    ]) as smu:
        with pytest.raises(InstrumentError) as caught:
            smu.check_errors()
    text = str(caught.value)
    assert text.startswith("Keithley 2450 SourceMeter reports: ")
    assert "-222: Parameter data out of range" in text and "-113: Undefined header" in text
    assert '"' not in text


def test_read_error_keeps_a_message_with_commas_whole():
    with expected_protocol(Keithley2450, [("SYST:ERR?", '-222,"Data out of range, value clipped"')]) as smu:
        assert smu.read_error() == (-222, "Data out of range, value clipped")


def test_a_refused_setting_raises_right_after_its_command():
    """The set-up settings are declared with PyMeasure's check_set_errors: the queue is read at once."""
    with expected_protocol(Keithley2450, [(":TRIG:DIG1:IN:EDGE RIS", None),
                                          ("SYST:ERR?", '-221,"Settings conflict; line not in trigger mode"'),
                                          NO_ERROR]) as smu:
        with pytest.raises(InstrumentError, match="-221: Settings conflict; line not in trigger mode"):
            smu.trigger_edge = "RIS"
