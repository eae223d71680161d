"""Byte-exact protocol tests of the three station drivers (Keithley 2450, Keysight 81160A, Keithley 707B).

Every public method and property added by ``instruments.drivers`` is checked against the exact messages
it sends (terminators excluded, as in :func:`pymeasure.test.expected_protocol`) and the way it parses the
replies. Refusals are checked with an empty protocol: the call must raise before anything is written.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from pymeasure.test import expected_protocol

from instruments.drivers import keithley2450 as k2450_module
from instruments.drivers.errors import InstrumentError
from instruments.drivers.keithley707b import Keithley707B, crosspoint_list
from instruments.drivers.keithley2450 import Keithley2450
from instruments.drivers.keysight81160a import Keysight81160A, Keysight81160AChannel

BUFFER = '"defbuffer1"'
DAC_FULL_SCALE = 8191  # largest DAC code of the 81160A (14-bit signed)
ARB_MEMORY_POINTS = 524_288


def ieee_block(payload: bytes) -> bytes:
    """Definite-length IEEE 488.2 block: ``#`` + number of length digits + length + payload."""
    length = str(len(payload)).encode()
    return b"#" + str(len(length)).encode() + length + payload


def expected_dac_codes(levels: list[float], durations: list[float]) -> list[int]:
    """DAC codes of a piecewise-constant waveform, from the documented scaling.

    Each level is repeated ``duration / gcd(durations)`` times and scaled as
    ``rint(level / max|level| * 8191)``.
    """
    ticks = [round(d * 1e9) for d in durations]
    step = int(np.gcd.reduce(ticks))
    peak = max(abs(v) for v in levels)
    codes: list[int] = []
    for level, tick in zip(levels, ticks, strict=True):
        codes += [int(np.rint(level / peak * DAC_FULL_SCALE))] * (tick // step)
    return codes


# --------------------------------------------------------------------------------------------------
# Keithley 2450
# --------------------------------------------------------------------------------------------------


class TestKeithley2450:
    def test_current_list_is_sent_as_one_comma_list(self):
        with expected_protocol(Keithley2450, [(":SOUR:LIST:CURR 1e-05, -1e-05, 0.0002, 0, 0.00123457", None)]) as smu:
            smu.current_list = [1e-5, -1e-5, 2e-4, 0.0, 0.001234567]

    @pytest.mark.parametrize("values", [[1e-6] * 2501, [], [0.0, 1.1], [-1.06]])
    def test_current_list_refusals_send_nothing(self, values):
        with expected_protocol(Keithley2450, []) as smu:
            with pytest.raises(ValueError):
                smu.current_list = values

    @pytest.mark.parametrize(("mode", "code"), [("high_impedance", "HIMP"), ("normal", "NORM"), ("zero", "ZERO"),
                                                ("guard", "GUAR")])
    def test_output_off_mode_set(self, mode, code):
        with expected_protocol(Keithley2450, [(f":OUTP:CURR:SMOD {code}", None)]) as smu:
            smu.output_off_mode = mode

    @pytest.mark.parametrize(("code", "mode"), [("HIMP", "high_impedance"), ("NORM", "normal"), ("ZERO", "zero"),
                                                ("GUAR", "guard")])
    def test_output_off_mode_get(self, code, mode):
        with expected_protocol(Keithley2450, [(":OUTP:CURR:SMOD?", code)]) as smu:
            assert smu.output_off_mode == mode

    def test_output_off_mode_refuses_an_unknown_mode(self):
        with expected_protocol(Keithley2450, []) as smu:
            with pytest.raises(ValueError):
                smu.output_off_mode = "HIMP"

    @pytest.mark.parametrize("mode", ["TRIG, IN", "DIG, IN"])
    def test_trigger_line_mode(self, mode):
        with expected_protocol(Keithley2450, [(f":DIG:LINE1:MODE {mode}", None)]) as smu:
            smu.trigger_line_mode = mode

    def test_trigger_line_mode_refuses_an_output_mode(self):
        with expected_protocol(Keithley2450, []) as smu:
            with pytest.raises(ValueError):
                smu.trigger_line_mode = "TRIG, OUT"

    @pytest.mark.parametrize("edge", ["RIS", "FALL", "EITH"])
    def test_trigger_edge(self, edge):
        with expected_protocol(Keithley2450, [(f":TRIG:DIG1:IN:EDGE {edge}", None)]) as smu:
            smu.trigger_edge = edge

    def test_trigger_edge_refuses_an_unknown_edge(self):
        with expected_protocol(Keithley2450, []) as smu:
            with pytest.raises(ValueError):
                smu.trigger_edge = "RISING"

    @pytest.mark.parametrize(("reply", "state"), [("WAITING;WAITING;2", "WAITING"), ("IDLE;IDLE;9", "IDLE"),
                                                  ("RUNNING;RUNNING;5", "RUNNING"), ("ABORTED", "ABORTED")])
    def test_trigger_state_keeps_the_overall_state(self, reply, state):
        with expected_protocol(Keithley2450, [(":TRIG:STAT?", reply)]) as smu:
            assert smu.trigger_state == state

    def test_check_errors_with_an_empty_queue_returns_nothing(self):
        with expected_protocol(Keithley2450, [("SYST:ERR?", '0,"No error"')]) as smu:
            assert smu.check_errors() == []

    def test_check_errors_raises_naming_every_code_and_message(self):
        with expected_protocol(Keithley2450, [
            ("SYST:ERR?", '-222,"Parameter data out of range"'),
            ("SYST:ERR?", '-113,"Undefined header"'),
            ("SYST:ERR?", '0,"No error"'),
        ]) as smu:
            with pytest.raises(InstrumentError) as caught:
                smu.check_errors()
        text = str(caught.value)
        assert text.startswith("Keithley 2450 SourceMeter reports: ")
        assert "-222" in text and "Parameter data out of range" in text
        assert "-113" in text and "Undefined header" in text
        assert '"' not in text  # the quotes of the SCPI string are stripped
        assert "-222: Parameter data out of range" in text  # integer codes

    def test_check_errors_keeps_a_message_with_commas_whole(self):
        with expected_protocol(Keithley2450, [("SYST:ERR?", '-222,"Data out of range, value clipped"'),
                                              ("SYST:ERR?", '0,"No error"')]) as smu:
            with pytest.raises(InstrumentError, match="-222: Data out of range, value clipped"):
                smu.check_errors()

    def test_clear_buffer(self):
        with expected_protocol(Keithley2450, [(f":TRAC:CLE {BUFFER}", None)]) as smu:
            smu.clear_buffer()

    def test_buffer_count(self):
        with expected_protocol(Keithley2450, [(f":TRAC:ACT? {BUFFER}", "42")]) as smu:
            count = smu.buffer_count()
        assert count == 42 and isinstance(count, int)

    def test_fetch_buffer_parses_the_readings_into_an_array(self):
        reply = "1.000000E+03,1.250000E+03,-2.500000E+01,9.9E+37"
        with expected_protocol(Keithley2450, [(f":TRAC:DATA? 1, 4, {BUFFER}, READ", reply)]) as smu:
            readings = smu.fetch_buffer(4)
        assert isinstance(readings, np.ndarray) and readings.dtype == np.float64
        np.testing.assert_array_equal(readings, [1000.0, 1250.0, -25.0, 9.9e37])

    def test_fetch_buffer_of_one_reading(self):
        with expected_protocol(Keithley2450, [(f":TRAC:DATA? 1, 1, {BUFFER}, READ", "4.2E+02")]) as smu:
            np.testing.assert_array_equal(smu.fetch_buffer(1), [420.0])

    @pytest.mark.parametrize("count", [0, -1, 100_001])
    def test_fetch_buffer_refuses_a_count_outside_the_buffer(self, count):
        with expected_protocol(Keithley2450, []) as smu:
            with pytest.raises(ValueError):
                smu.fetch_buffer(count)

    def test_start_current_list_sweep(self):
        with expected_protocol(Keithley2450, [
            (":SOUR:LIST:CURR 0.0001, -0.0001, 5e-05", None),
            (f":SOUR:SWE:CURR:LIST 1, 0.001, 1, OFF, {BUFFER}", None),
            (":INIT", None),
        ]) as smu:
            smu.start_current_list_sweep([1e-4, -1e-4, 5e-5], 1e-3)

    @pytest.mark.parametrize(("currents", "dwell"), [([1e-6] * 2501, 1e-3), ([], 1e-3), ([2.0], 1e-3),
                                                     ([1e-6], -1e-3), ([1e-6], 10_001.0)])
    def test_start_current_list_sweep_refusals_send_nothing(self, currents, dwell):
        with expected_protocol(Keithley2450, []) as smu:
            with pytest.raises(ValueError):
                smu.start_current_list_sweep(currents, dwell)

    def test_configure_timed_readings_builds_the_trigger_model(self):
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

    def test_configure_timed_readings_with_one_reading_per_trial(self):
        with expected_protocol(Keithley2450, [
            (':TRIG:LOAD "Empty"', None),
            (f":TRIG:BLOC:BUFF:CLE 1, {BUFFER}", None),
            (":TRIG:BLOC:WAIT 2, DIG1", None),
            (":TRIG:BLOC:DEL:CONS 3, 0", None),
            (f":TRIG:BLOC:MEAS 4, {BUFFER}", None),
            (":TRIG:BLOC:DEL:CONS 5, 0.0005", None),
            (":TRIG:BLOC:BRAN:COUN 6, 100, 4", None),
        ]) as smu:
            smu.configure_timed_readings(n_trials=100, first_delay_s=0.0, delays_s=[], period_s=1e-3,
                                         aperture_s=5e-4)

    def test_configure_timed_readings_with_three_readings_per_trial(self):
        with expected_protocol(Keithley2450, [
            (':TRIG:LOAD "Empty"', None),
            (f":TRIG:BLOC:BUFF:CLE 1, {BUFFER}", None),
            (":TRIG:BLOC:WAIT 2, DIG1", None),
            (":TRIG:BLOC:DEL:CONS 3, 2e-05", None),
            (f":TRIG:BLOC:MEAS 4, {BUFFER}", None),
            (":TRIG:BLOC:DEL:CONS 5, 0.0015", None),
            (f":TRIG:BLOC:MEAS 6, {BUFFER}", None),
            (":TRIG:BLOC:DEL:CONS 7, 0.0035", None),
            (f":TRIG:BLOC:MEAS 8, {BUFFER}", None),
            (":TRIG:BLOC:DEL:CONS 9, 0.0045", None),
            (":TRIG:BLOC:BRAN:COUN 10, 1, 4", None),
        ]) as smu:
            smu.configure_timed_readings(n_trials=1, first_delay_s=2e-5, delays_s=[2e-3, 4e-3], period_s=11e-3,
                                         aperture_s=5e-4)

    @pytest.mark.parametrize(("kwargs", "match"), [
        (dict(delays_s=[0.5e-3]), "closer together than the aperture"),  # reading gap shorter than the aperture
        (dict(period_s=2.5e-3), "closer together than the aperture"),  # trial shorter than its readings
        (dict(first_delay_s=-1e-6), "out of range"),
        (dict(n_trials=0), None),
        (dict(n_trials=50_001), None),  # 2 readings per trial: at most 50 000 trials fit the buffer
    ])
    def test_configure_timed_readings_refusals_send_nothing(self, kwargs, match):
        arguments = dict(n_trials=3, first_delay_s=1e-6, delays_s=[2e-3], period_s=10e-3, aperture_s=1e-3)
        arguments.update(kwargs)
        with expected_protocol(Keithley2450, []) as smu:
            with pytest.raises(ValueError, match=match):
                smu.configure_timed_readings(**arguments)

    def test_start_returns_once_the_model_waits_for_its_trigger(self):
        with expected_protocol(Keithley2450, [
            (":INIT", None),
            (":TRIG:STAT?", "RUNNING;RUNNING;1"),
            (":TRIG:STAT?", "RUNNING;RUNNING;2"),
            (":TRIG:STAT?", "WAITING;WAITING;2"),
        ]) as smu:
            smu.start()

    def test_start_aborts_and_raises_when_the_model_never_waits(self, monkeypatch):
        clock = iter([0.0, 10.0])
        monkeypatch.setattr(k2450_module.time, "monotonic", lambda: next(clock))
        with expected_protocol(Keithley2450, [
            (":INIT", None),
            (":TRIG:STAT?", "IDLE;IDLE;9"),
            (":ABOR", None),
        ]) as smu:
            with pytest.raises(InstrumentError, match="did not reach its wait block"):
                smu.start(timeout_s=5.0)

    def test_abort(self):
        with expected_protocol(Keithley2450, [(":ABOR", None)]) as smu:
            smu.abort()

    def test_wait_for_completion_queries_opc(self):
        with expected_protocol(Keithley2450, [("*OPC?", "1")]) as smu:
            smu.wait_for_completion()


# --------------------------------------------------------------------------------------------------
# Keysight 81160A
# --------------------------------------------------------------------------------------------------


class TestKeysight81160A:
    def test_channels_are_the_extended_channel_class(self):
        with expected_protocol(Keysight81160A, []) as generator:
            assert isinstance(generator.ch_1, Keysight81160AChannel)
            assert isinstance(generator.channels[2], Keysight81160AChannel)

    @pytest.mark.parametrize("channel", [1, 2])
    @pytest.mark.parametrize("polarity", ["NORM", "INV"])
    def test_polarity_set(self, channel, polarity):
        with expected_protocol(Keysight81160A, [(f":OUTP{channel}:POL {polarity}", None)]) as generator:
            generator.channels[channel].polarity = polarity

    def test_polarity_get(self):
        with expected_protocol(Keysight81160A, [(":OUTP2:POL?", "INV")]) as generator:
            assert generator.ch_2.polarity == "INV"

    def test_polarity_refuses_an_unknown_value(self):
        with expected_protocol(Keysight81160A, []) as generator:
            with pytest.raises(ValueError):
                generator.ch_1.polarity = "NEG"

    @pytest.mark.parametrize("level", [0.0, 2.6, -2.51])
    def test_single_pulse_refuses_a_level_out_of_range_before_sending(self, level):
        with expected_protocol(Keysight81160A, []) as generator:
            with pytest.raises(ValueError):
                generator.ch_1.single_pulse(level, 10e-9)

    @pytest.mark.parametrize("width", [0.0, 1e-10, 3e5])
    def test_single_pulse_refuses_a_width_out_of_range_before_sending(self, width):
        with expected_protocol(Keysight81160A, []) as generator:
            with pytest.raises(ValueError):
                generator.ch_1.single_pulse(1.0, width)

    def test_sample_waveform(self):
        levels, counts, sample_s = Keysight81160AChannel.sample_waveform([0.4, -1.0, 0.25], [20e-9, 10e-9, 30e-9])
        np.testing.assert_array_equal(levels, [0.4, -1.0, 0.25])
        np.testing.assert_array_equal(counts, [2, 1, 3])
        assert sample_s == pytest.approx(10e-9, rel=1e-12)

    def test_sample_waveform_doubles_a_single_point(self):
        _, counts, sample_s = Keysight81160AChannel.sample_waveform([1.0], [10e-9])
        np.testing.assert_array_equal(counts, [2])
        assert sample_s == pytest.approx(5e-9, rel=1e-12)

    def test_play_segments_uploads_exact_dac_codes(self):
        levels, durations = [0.4, -1.0, 0.25], [20e-9, 10e-9, 30e-9]
        codes = [3276, 3276, -8191, 2048, 2048, 2048]  # rint(0.4·8191), -8191, rint(0.25·8191)
        assert expected_dac_codes(levels, durations) == codes
        payload = struct.pack(">6h", *codes)
        assert len(payload) == 12
        upload = b":DATA1:DAC VOLATILE," + b"#212" + payload + b"\n"
        assert upload == b":DATA1:DAC VOLATILE," + ieee_block(payload) + b"\n"
        with expected_protocol(Keysight81160A, [
            (upload, None),
            (":FUNC1:USER VOLATILE", None),
            (":FUNC1 USER", None),
            (":OUTP1:POL NORM", None),
            (":FREQ1 16666666.666667", None),  # 1 / (10 ns · 6 points)
            (":VOLT1 2.000000", None),  # 2 · max|level|
            (":VOLT1:OFFS 0.000000", None),
        ]) as generator:
            assert generator.ch_1.play_segments(levels, durations) == 6

    def test_play_segments_bipolar_full_scale_on_channel_2(self):
        levels, durations = [-2.5, 1.0, 0.0], [1e-6, 3e-6, 2e-6]
        codes = expected_dac_codes(levels, durations)
        assert codes == [-8191] + [3276] * 3 + [0] * 2
        payload = np.asarray(codes, dtype=">i2").tobytes()
        with expected_protocol(Keysight81160A, [
            (b":DATA2:DAC VOLATILE," + ieee_block(payload) + b"\n", None),
            (":FUNC2:USER VOLATILE", None),
            (":FUNC2 USER", None),
            (":OUTP2:POL NORM", None),
            (":FREQ2 166666.666667", None),  # 1 / (1 µs · 6 points)
            (":VOLT2 5.000000", None),
            (":VOLT2:OFFS 0.000000", None),
        ]) as generator:
            assert generator.ch_2.play_segments(levels, durations) == 6

    def test_play_segments_of_one_point_is_played_as_two(self):
        payload = struct.pack(">2h", DAC_FULL_SCALE, DAC_FULL_SCALE)
        with expected_protocol(Keysight81160A, [
            (b":DATA1:DAC VOLATILE,#14" + payload + b"\n", None),
            (":FUNC1:USER VOLATILE", None),
            (":FUNC1 USER", None),
            (":OUTP1:POL NORM", None),
            (":FREQ1 100000000.000000", None),  # 1 / (5 ns · 2 points)
            (":VOLT1 2.400000", None),
            (":VOLT1:OFFS 0.000000", None),
        ]) as generator:
            assert generator.ch_1.play_segments([1.2], [10e-9]) == 2

    def test_play_segments_long_waveform_has_a_longer_block_header(self):
        levels, durations = [0.5, -0.5], [101e-9, 499e-9]  # gcd 1 ns: 600 points, 1200 bytes, 4 length digits
        codes = expected_dac_codes(levels, durations)
        assert codes == [DAC_FULL_SCALE] * 101 + [-DAC_FULL_SCALE] * 499
        payload = np.asarray(codes, dtype=">i2").tobytes()
        assert ieee_block(payload).startswith(b"#41200")
        with expected_protocol(Keysight81160A, [
            (b":DATA1:DAC VOLATILE," + ieee_block(payload) + b"\n", None),
            (":FUNC1:USER VOLATILE", None),
            (":FUNC1 USER", None),
            (":OUTP1:POL NORM", None),
            (":FREQ1 1666666.666667", None),  # 1 / (1 ns · 600 points)
            (":VOLT1 1.000000", None),
            (":VOLT1:OFFS 0.000000", None),
        ]) as generator:
            assert generator.ch_1.play_segments(levels, durations) == 600

    @pytest.mark.parametrize(("levels", "durations"), [
        ([0.1, 0.2], [1e-9, ARB_MEMORY_POINTS * 1e-9]),  # 524 289 points: longer than the memory
        ([2.6], [10e-9]),  # level beyond +2.5 V
        ([0.5, -2.51], [10e-9, 10e-9]),  # level beyond -2.5 V
        ([0.5, 0.3], [10e-9, 0.0]),  # zero duration
        ([0.5], [0.4e-9]),  # rounds to 0 ns
        ([0.5, 0.3], [10e-9, -10e-9]),  # negative duration
        ([0.5, 0.3], [10e-9]),  # unequal lengths
        ([], []),  # empty waveform
    ])
    def test_play_segments_refusals_send_nothing(self, levels, durations):
        with expected_protocol(Keysight81160A, []) as generator:
            with pytest.raises(ValueError):
                generator.ch_1.play_segments(levels, durations)

    def test_a_waveform_filling_the_memory_exactly_is_accepted(self):
        _, counts, _ = Keysight81160AChannel.sample_waveform([0.1, 0.2], [1e-9, (ARB_MEMORY_POINTS - 1) * 1e-9])
        assert int(counts.sum()) == ARB_MEMORY_POINTS

    @pytest.mark.parametrize("channel", [1, 2])
    def test_arm(self, channel):
        with expected_protocol(Keysight81160A, [
            (f":OUTP{channel}:LOAD 1.000000e+06", None),
            (f":ARM:SOUR{channel} MAN", None),
            (f":TRIG{channel}:COUN 1", None),
            (f"OUTP{channel} 1", None),
        ]) as generator:
            generator.arm(channel)

    def test_arm_defaults_to_channel_1(self):
        with expected_protocol(Keysight81160A, [
            (":OUTP1:LOAD 1.000000e+06", None),
            (":ARM:SOUR1 MAN", None),
            (":TRIG1:COUN 1", None),
            ("OUTP1 1", None),
        ]) as generator:
            generator.arm()

    def test_fire_triggers_and_waits(self):
        with expected_protocol(Keysight81160A, [("*TRG", None), ("*OPC?", "1")]) as generator:
            generator.fire()

    def test_check_errors_with_an_empty_queue_returns_nothing(self):
        with expected_protocol(Keysight81160A, [("SYST:ERR?", '+0,"No error"')]) as generator:
            assert generator.check_errors() == []

    def test_check_errors_raises_naming_every_code_and_message(self):
        with expected_protocol(Keysight81160A, [
            ("SYST:ERR?", '-222,"Data out of range"'),
            ("SYST:ERR?", '-410,"Query INTERRUPTED"'),
            ("SYST:ERR?", '+0,"No error"'),
        ]) as generator:
            with pytest.raises(InstrumentError) as caught:
                generator.check_errors()
        text = str(caught.value)
        assert "-222" in text and "Data out of range" in text
        assert "-410" in text and "Query INTERRUPTED" in text
        assert '"' not in text


# --------------------------------------------------------------------------------------------------
# Keithley 707B
# --------------------------------------------------------------------------------------------------

GETCLOSE = 'print(channel.getclose("allslots"))'


class TestKeithley707B:
    def test_id_is_read_whole(self):
        idn = "Keithley Instruments Inc., Model 707B, 04110429, 1.0.2"
        with expected_protocol(Keithley707B, [("*IDN?", idn)]) as matrix:
            assert matrix.id == idn

    @pytest.mark.parametrize(("reply", "closed"), [
        ("1A01;1B02", {"1A01", "1B02"}),
        ("2E11", {"2E11"}),
        ("1A01;1B02;6H12", {"1A01", "1B02", "6H12"}),
        ("nil", set()),
        ("", set()),
    ])
    def test_closed_crosspoints(self, reply, closed):
        with expected_protocol(Keithley707B, [(GETCLOSE, reply)]) as matrix:
            assert matrix.closed_crosspoints == closed

    def test_error_count(self):
        with expected_protocol(Keithley707B, [("print(errorqueue.count)", "3.000000000e+00")]) as matrix:
            count = matrix.error_count
        assert count == 3 and isinstance(count, int)

    def test_next_error_parses_the_tab_separated_entry(self):
        reply = ("-2.850000000e+02\tTSP Syntax error at line 1: unexpected symbol near 'x'"
                 "\t2.000000000e+01\t1.000000000e+00")
        with expected_protocol(Keithley707B, [("print(errorqueue.next())", reply)]) as matrix:
            assert matrix.next_error == (-285, "TSP Syntax error at line 1: unexpected symbol near 'x'")

    def test_next_error_keeps_commas_in_the_message(self):
        reply = "-2.860000000e+02\tTSP Runtime error: invalid channel list, 1A13\t2.000000000e+01\t1.000000000e+00"
        with expected_protocol(Keithley707B, [("print(errorqueue.next())", reply)]) as matrix:
            assert matrix.next_error == (-286, "TSP Runtime error: invalid channel list, 1A13")

    def test_next_error_of_an_empty_queue(self):
        reply = "0.000000000e+00\tQueue Is Empty\t0.000000000e+00\t1.000000000e+00"
        with expected_protocol(Keithley707B, [("print(errorqueue.next())", reply)]) as matrix:
            assert matrix.next_error == (0, "Queue Is Empty")

    def test_close_crosspoints(self):
        with expected_protocol(Keithley707B, [('channel.close("1A01,1B02,6H12")', None)]) as matrix:
            matrix.close_crosspoints(["1A01", "1b02", "6H12"])

    def test_close_crosspoints_from_a_comma_string(self):
        with expected_protocol(Keithley707B, [('channel.close("1A01,1C03")', None)]) as matrix:
            matrix.close_crosspoints("1A01, 1c03")

    def test_open_crosspoints_sends_each_name_once(self):
        with expected_protocol(Keithley707B, [('channel.open("2C05,2D06")', None)]) as matrix:
            matrix.open_crosspoints(["2C05", "2D06", "2c05"])

    def test_open_all(self):
        with expected_protocol(Keithley707B, [('channel.open("allslots")', None)]) as matrix:
            matrix.open_all()

    def test_exclusive_close(self):
        with expected_protocol(Keithley707B, [('channel.exclusiveclose("1A01,1B02")', None)]) as matrix:
            matrix.exclusive_close(["1A01", "1B02"])

    def test_reset(self):
        with expected_protocol(Keithley707B, [("reset()", None)]) as matrix:
            matrix.reset()

    def test_clear_errors(self):
        with expected_protocol(Keithley707B, [("errorqueue.clear()", None)]) as matrix:
            matrix.clear_errors()

    def test_check_errors_with_an_empty_queue_returns_nothing(self):
        with expected_protocol(Keithley707B, [("print(errorqueue.count)", "0.000000000e+00")]) as matrix:
            assert matrix.check_errors() == []

    def test_check_errors_raises_naming_every_code_and_message(self):
        with expected_protocol(Keithley707B, [
            ("print(errorqueue.count)", "2.000000000e+00"),
            ("print(errorqueue.next())", "-2.850000000e+02\tTSP Syntax error at line 1: unexpected symbol near 'foo'"
                                         "\t2.000000000e+01\t1.000000000e+00"),
            ("print(errorqueue.next())", "1.115000000e+03\tParameter error: invalid channel"
                                         "\t2.000000000e+01\t1.000000000e+00"),
        ]) as matrix:
            with pytest.raises(InstrumentError) as caught:
                matrix.check_errors()
        text = str(caught.value)
        assert text.startswith("Keithley 707B switching matrix reports: ")
        assert "-285: TSP Syntax error at line 1: unexpected symbol near 'foo'" in text
        assert "1115: Parameter error: invalid channel" in text

    @pytest.mark.parametrize("bad", ["1I01", "1A13", "7A01", "0A01", "1A00", "1A1", "A01", "allslots", ""])
    @pytest.mark.parametrize("method", ["close_crosspoints", "open_crosspoints", "exclusive_close"])
    def test_invalid_crosspoints_are_refused_before_anything_is_sent(self, method, bad):
        with expected_protocol(Keithley707B, []) as matrix:
            with pytest.raises(ValueError, match="707B crosspoint"):
                getattr(matrix, method)(["1A01", bad])

    @pytest.mark.parametrize("method", ["close_crosspoints", "open_crosspoints", "exclusive_close"])
    def test_an_empty_list_is_refused_before_anything_is_sent(self, method):
        with expected_protocol(Keithley707B, []) as matrix:
            with pytest.raises(ValueError, match="no crosspoints"):
                getattr(matrix, method)([])

    def test_crosspoint_list(self):
        assert crosspoint_list(["1a01", "1B02"]) == "1A01,1B02"
        assert crosspoint_list("1A01,1B02") == "1A01,1B02"
        assert crosspoint_list(" 3c07 ") == "3C07"
        assert crosspoint_list(["1A01", "1H12", "6A01", "6H12"]) == "1A01,1H12,6A01,6H12"
        assert crosspoint_list(["2B03", "1A01", "2b03"]) == "2B03,1A01"

    @pytest.mark.parametrize("bad", [["1I01"], ["1A13"], ["7A01"], [], "", "1A01,"])
    def test_crosspoint_list_refusals(self, bad):
        with pytest.raises(ValueError):
            crosspoint_list(bad)
