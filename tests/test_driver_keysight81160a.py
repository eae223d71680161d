"""Byte-exact protocol tests of the Keysight 81160A driver (``instruments.drivers.keysight81160a``).

Every property and method the project adds is checked against the exact messages it sends (terminators
excluded, as in :func:`pymeasure.test.expected_protocol`, binary blocks included) and the way it parses
the replies. Refusals are checked with an empty protocol: the call must raise before anything is written.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from pymeasure.test import expected_protocol

from instruments.drivers.errors import InstrumentError
from instruments.drivers.keysight81160a import (
    ARB_MEMORY_POINTS,
    Keysight81160A,
    Keysight81160AChannel,
    SampledWaveform,
)

DAC_FULL_SCALE = 8191  # largest DAC code of the 81160A (14-bit signed)


def ieee_block(payload: bytes) -> bytes:
    """Definite-length IEEE 488.2 block: ``#`` + number of length digits + length + payload."""
    length = str(len(payload)).encode()
    return b"#" + str(len(length)).encode() + length + payload


def upload(channel: int, codes: list[int]) -> bytes:
    """The upload message of ``codes``, written out independently of the driver."""
    payload = struct.pack(f">{len(codes)}h", *codes)
    return f":DATA{channel}:DAC VOLATILE,".encode() + ieee_block(payload) + b"\n"


def select_user(channel: int, frequency: str, amplitude: str) -> list[tuple[str, None]]:
    return [(f":FUNC{channel}:USER VOLATILE", None), (f":FUNC{channel} USER", None),
            (f":OUTP{channel}:POL NORM", None), (f":FREQ{channel} {frequency}", None),
            (f":VOLT{channel} {amplitude}", None), (f":VOLT{channel}:OFFS 0.000000", None)]


NO_ERROR = ("SYST:ERR?", '0,"No error"')


def arm_and_fire(channel: int) -> list[tuple[str, str | None]]:
    return [(f":OUTP{channel}:LOAD 1.000000e+06", None), NO_ERROR, (f":ARM:SOUR{channel} MAN", None),
            (f":TRIG{channel}:COUN 1", None), (f"OUTP{channel} 1", None), ("*TRG", None), ("*OPC?", "1")]


def test_channels_are_the_extended_channel_class():
    with expected_protocol(Keysight81160A, []) as generator:
        assert isinstance(generator.ch_1, Keysight81160AChannel)
        assert isinstance(generator.channels[2], Keysight81160AChannel)


def test_identity_is_read_with_idn():
    with expected_protocol(Keysight81160A, [("*IDN?", "Agilent Technologies,81160A,MY52500180,2.0.0.0-2.6")]) as g:
        assert "81160A" in g.id


# -- properties ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", [1, 2])
@pytest.mark.parametrize("polarity", ["NORM", "INV"])
def test_polarity_set(channel, polarity):
    with expected_protocol(Keysight81160A, [(f":OUTP{channel}:POL {polarity}", None)]) as generator:
        generator.channels[channel].polarity = polarity


def test_polarity_get():
    with expected_protocol(Keysight81160A, [(":OUTP2:POL?", "INV")]) as generator:
        assert generator.ch_2.polarity == "INV"


def test_polarity_refuses_an_unknown_value():
    with expected_protocol(Keysight81160A, []) as generator:
        with pytest.raises(ValueError):
            generator.ch_1.polarity = "NEG"


@pytest.mark.parametrize(("load", "sent"), [(50, "5.000000e+01"), (1e6, "1.000000e+06"), (0.3, "3.000000e-01")])
def test_output_load_set(load, sent):
    with expected_protocol(Keysight81160A, [(f":OUTP1:LOAD {sent}", None), NO_ERROR]) as generator:
        generator.ch_1.output_load = load


def test_output_load_get():
    with expected_protocol(Keysight81160A, [(":OUTP2:LOAD?", "5.000000E+01")]) as generator:
        assert generator.ch_2.output_load == 50.0


@pytest.mark.parametrize("load", [0.1, 2e6, -50])
def test_output_load_refuses_values_out_of_range(load):
    with expected_protocol(Keysight81160A, []) as generator:
        with pytest.raises(ValueError):
            generator.ch_1.output_load = load


def test_user_waveform_set_and_get():
    with expected_protocol(Keysight81160A, [(":FUNC2:USER VOLATILE", None), (":FUNC2:USER?", "VOLATILE")]) as g:
        g.ch_2.user_waveform = "VOLATILE"
        assert g.ch_2.user_waveform == "VOLATILE"


def test_user_waveform_refuses_a_stored_name():
    with expected_protocol(Keysight81160A, []) as generator:
        with pytest.raises(ValueError):
            generator.ch_1.user_waveform = "MYWAVE"


def test_output_on_and_off_and_get():
    with expected_protocol(Keysight81160A, [("OUTP1 1", None), ("OUTP1 0", None), ("OUTP1?", "0")]) as generator:
        generator.ch_1.output = True
        generator.ch_1.output = False
        assert generator.ch_1.output is False


# -- single pulses --------------------------------------------------------------------------------------


def test_single_pulse_positive_sets_high_before_low():
    with expected_protocol(Keysight81160A, [
        (":FUNC1 PULS", None),
        (":OUTP1:POL NORM", None),
        (":VOLT1:HIGH 1.500000", None),
        (":VOLT1:LOW 0.000000", None),
        (":PULS:PER1 4.000000e-08", None),
        (":PULS:WIDT1 1.000000e-08", None),
    ]) as generator:
        generator.ch_1.single_pulse(1.5, 10e-9)


def test_single_pulse_negative_is_inverted_with_the_high_level_at_zero():
    with expected_protocol(Keysight81160A, [
        (":FUNC2 PULS", None),
        (":OUTP2:POL INV", None),
        (":VOLT2:LOW -2.000000", None),
        (":VOLT2:HIGH 0.000000", None),
        (":PULS:PER2 2.000000e-06", None),
        (":PULS:WIDT2 5.000000e-07", None),
    ]) as generator:
        generator.ch_2.single_pulse(-2.0, 500e-9)


@pytest.mark.parametrize("level", [0.0, 0.04, -0.049, 2.6, -2.51, float("nan")])
def test_single_pulse_refuses_a_level_out_of_range_before_sending(level):
    with expected_protocol(Keysight81160A, []) as generator:
        with pytest.raises(ValueError):
            generator.ch_1.single_pulse(level, 10e-9)


@pytest.mark.parametrize("width", [0.0, 1e-10, 3e5])
def test_single_pulse_refuses_a_width_out_of_range_before_sending(width):
    with expected_protocol(Keysight81160A, []) as generator:
        with pytest.raises(ValueError):
            generator.ch_1.single_pulse(1.0, width)


def test_play_pulse_sets_arms_and_fires():
    with expected_protocol(Keysight81160A, [
        (":FUNC1 PULS", None),
        (":OUTP1:POL INV", None),
        (":VOLT1:LOW -1.200000", None),
        (":VOLT1:HIGH 0.000000", None),
        (":PULS:PER1 4.000000e-04", None),
        (":PULS:WIDT1 1.000000e-04", None),
        *arm_and_fire(1),
    ]) as generator:
        generator.play_pulse(-1.2, 100e-6)


def test_play_pulse_refusal_sends_nothing():
    with expected_protocol(Keysight81160A, []) as generator:
        with pytest.raises(ValueError):
            generator.play_pulse(3.0, 10e-6, channel=2)


# -- arbitrary waveforms: sampling ---------------------------------------------------------------------


def test_sample_waveform():
    levels, counts, sample_s = Keysight81160AChannel.sample_waveform([0.4, -1.0, 0.25], [20e-9, 10e-9, 30e-9])
    np.testing.assert_array_equal(levels, [0.4, -1.0, 0.25])
    np.testing.assert_array_equal(counts, [2, 1, 3])
    assert sample_s == pytest.approx(10e-9, rel=1e-12)


def test_sample_waveform_doubles_a_single_point():
    _, counts, sample_s = Keysight81160AChannel.sample_waveform([1.0], [10e-9])
    np.testing.assert_array_equal(counts, [2])
    assert sample_s == pytest.approx(5e-9, rel=1e-12)


def test_sample_gives_codes_amplitude_frequency_and_marker_times():
    wave = Keysight81160AChannel.sample([-1.0, 0.0, 0.5, 0.0], [100e-6, 5e-6, 10e-6, 15e-6],
                                        [False, False, True, True])
    assert isinstance(wave, SampledWaveform)
    assert wave.amplitude_v == 2.0
    assert wave.points == 26  # 5 µs points: 20 + 1 + 2 + 3
    assert wave.frequency_hz == pytest.approx(1 / 130e-6)
    assert wave.duration_s == pytest.approx(130e-6)
    assert wave.point_s == pytest.approx(5e-6)
    np.testing.assert_array_equal(wave.codes, [-8191] * 20 + [0] + [4096] * 2 + [0] * 3)
    np.testing.assert_allclose(wave.marker_times_s, [105e-6, 115e-6], rtol=1e-9)


def test_marker_times_follow_the_frequency_the_instrument_plays():
    # 0.3 s pass: 1/0.3 Hz is sent as 3.333333 Hz, so the points are a little longer than 1 µs
    wave = Keysight81160AChannel.sample([0.1, 0.2], [0.1, 0.2], [False, True])
    assert wave.frequency_hz == 3.333333
    assert wave.marker_times_s[0] == pytest.approx(0.1 * (1 / 3.333333) / 0.3, rel=1e-12)


def test_the_peak_level_is_full_scale_at_twice_its_amplitude():
    wave = Keysight81160AChannel.sample([1.2345674, -0.3], [1e-6, 1e-6])
    assert wave.amplitude_v == pytest.approx(2.4691348)
    np.testing.assert_array_equal(wave.codes, [DAC_FULL_SCALE, -1990])  # rint(-0.3 / 1.2345674 · 8191)


def test_a_small_waveform_uses_at_least_a_tenth_of_a_volt_of_amplitude():
    wave = Keysight81160AChannel.sample([0.0, 0.025], [1e-6, 1e-6])
    assert wave.amplitude_v == 0.1
    np.testing.assert_array_equal(wave.codes, [0, 4096])


def test_a_waveform_filling_the_memory_exactly_is_accepted():
    _, counts, _ = Keysight81160AChannel.sample_waveform([0.1, 0.2], [1e-9, (ARB_MEMORY_POINTS - 1) * 1e-9])
    assert int(counts.sum()) == ARB_MEMORY_POINTS


# -- arbitrary waveforms: upload ------------------------------------------------------------------------


def test_play_segments_uploads_exact_dac_codes():
    codes = [3276, 3276, -8191, 2048, 2048, 2048]  # rint(0.4·8191), -8191, rint(0.25·8191)
    assert upload(1, codes) == b":DATA1:DAC VOLATILE,#212" + struct.pack(">6h", *codes) + b"\n"
    with expected_protocol(Keysight81160A, [
        (upload(1, codes), None),
        *select_user(1, "16666666.666667", "2.000000"),  # 1 / (10 ns · 6 points); 2 · max|level|
    ]) as generator:
        assert generator.ch_1.play_segments([0.4, -1.0, 0.25], [20e-9, 10e-9, 30e-9]) == 6


def test_play_segments_bipolar_full_scale_on_channel_2():
    with expected_protocol(Keysight81160A, [
        (upload(2, [-8191] + [3276] * 3 + [0] * 2), None),
        *select_user(2, "166666.666667", "5.000000"),  # 1 / (1 µs · 6 points)
    ]) as generator:
        assert generator.ch_2.play_segments([-2.5, 1.0, 0.0], [1e-6, 3e-6, 2e-6]) == 6


def test_play_segments_block_may_hold_newline_and_carriage_return_bytes():
    # 10·(2/8191) V is code 10 = 0x000A (a newline byte); the last code 13 = 0x000D ends on a carriage return
    levels = [1.0, 10 / 8191, 13 / 8191]
    codes = [8191, 10, 13]
    block = upload(1, codes)
    assert b"\n" in block[:-1] and block.endswith(b"\r\n")
    with expected_protocol(Keysight81160A, [(block, None), *select_user(1, "333333.333333", "2.000000")]) as g:
        assert g.ch_1.play_segments(levels, [1e-6, 1e-6, 1e-6]) == 3


def test_play_segments_of_one_point_is_played_as_two():
    with expected_protocol(Keysight81160A, [
        (upload(1, [DAC_FULL_SCALE, DAC_FULL_SCALE]), None),
        *select_user(1, "100000000.000000", "2.400000"),  # 1 / (5 ns · 2 points)
    ]) as generator:
        assert generator.ch_1.play_segments([1.2], [10e-9]) == 2


def test_play_segments_long_waveform_has_a_longer_block_header():
    codes = [DAC_FULL_SCALE] * 101 + [-DAC_FULL_SCALE] * 499  # gcd 1 ns: 600 points, 1200 bytes
    assert upload(1, codes).startswith(b":DATA1:DAC VOLATILE,#41200")
    with expected_protocol(Keysight81160A, [(upload(1, codes), None),
                                            *select_user(1, "1666666.666667", "1.000000")]) as generator:
        assert generator.ch_1.play_segments([0.5, -0.5], [101e-9, 499e-9]) == 600


def test_upload_segments_returns_the_sampled_waveform():
    with expected_protocol(Keysight81160A, [(upload(1, [-8191, 0, 8191, 0]), None),
                                            *select_user(1, "250000.000000", "2.000000")]) as generator:
        wave = generator.ch_1.upload_segments([-1.0, 0.0, 1.0, 0.0], [1e-6] * 4, [False, True, False, True])
    np.testing.assert_allclose(wave.marker_times_s, [1e-6, 3e-6], rtol=1e-12)


def test_play_waveform_uploads_arms_fires_and_returns_the_marker_times():
    # one trial: reset −1 V 100 µs, gap 5 µs, read window 10 µs, bias 0.8 V 10 µs, gap 5 µs, read window 10 µs
    levels = [-1.0, 0.0, 0.0, 0.8, 0.0, 0.0]
    durations = [100e-6, 5e-6, 10e-6, 10e-6, 5e-6, 10e-6]
    markers = [False, False, True, False, False, True]
    codes = [-8191] * 20 + [0] * 3 + [6553] * 2 + [0] * 3  # 5 µs points
    with expected_protocol(Keysight81160A, [
        (upload(1, codes), None),
        *select_user(1, "7142.857143", "2.000000"),  # one pass of 140 µs
        *arm_and_fire(1),
    ]) as generator:
        times = generator.play_waveform(levels, durations, markers)
    np.testing.assert_allclose(times, [105e-6, 130e-6], rtol=1e-6)


@pytest.mark.parametrize(("levels", "durations", "markers"), [
    ([0.1, 0.2], [1e-9, ARB_MEMORY_POINTS * 1e-9], None),  # 524 289 points: longer than the memory
    ([2.6], [10e-9], None),  # level beyond +2.5 V
    ([0.5, -2.51], [10e-9, 10e-9], None),  # level beyond -2.5 V
    ([0.5, float("nan")], [10e-9, 10e-9], None),  # not a level
    ([0.5, 0.3], [10e-9, 0.0], None),  # zero duration
    ([0.5], [0.4e-9], None),  # rounds to 0 ns
    ([0.5, 0.3], [10e-9, -10e-9], None),  # negative duration
    ([0.5, 0.3], [10e-9], None),  # unequal lengths
    ([], [], None),  # empty waveform
    ([1.0], [1e-9], None),  # two 0.5 ns points: 1 GHz, beyond the 330 MHz the stock driver allows
    ([0.1, 0.2], [2e6, 2e6], None),  # a 4 Ms pass: below 1 µHz
    ([0.5, 0.3], [10e-9, 10e-9], [True]),  # one marker for two segments
    ([0.5, 0.3], [10e-9, 10e-9], [True, 2]),  # not a flag
])
def test_waveform_refusals_send_nothing(levels, durations, markers):
    with expected_protocol(Keysight81160A, []) as generator:
        with pytest.raises(ValueError):
            generator.ch_1.play_segments(levels, durations, markers)
        with pytest.raises(ValueError):
            generator.play_waveform(levels, durations, markers, channel=2)


def test_the_memory_overflow_message_asks_for_a_split():
    with pytest.raises(ValueError, match="524289 points.*split"):
        Keysight81160AChannel.sample([0.1, 0.2], [1e-9, ARB_MEMORY_POINTS * 1e-9])


# -- arming, triggering, errors -------------------------------------------------------------------------


@pytest.mark.parametrize("channel", [1, 2])
def test_arm(channel):
    with expected_protocol(Keysight81160A, arm_and_fire(channel)[:5]) as generator:
        generator.arm(channel)


def test_arm_defaults_to_channel_1():
    with expected_protocol(Keysight81160A, arm_and_fire(1)[:5]) as generator:
        generator.arm()


def test_fire_triggers_and_waits():
    with expected_protocol(Keysight81160A, [("*TRG", None), ("*OPC?", "1")]) as generator:
        generator.fire()


def test_read_error_parses_code_and_whole_message():
    with expected_protocol(Keysight81160A, [("SYST:ERR?", '-224,"Illegal parameter value; level 9, too high"')]) as g:
        assert g.read_error() == (-224, "Illegal parameter value; level 9, too high")


def test_check_errors_with_an_empty_queue_returns_nothing():
    with expected_protocol(Keysight81160A, [("SYST:ERR?", '+0,"No error"')]) as generator:
        assert generator.check_errors() == []


def test_check_errors_raises_naming_every_code_and_message():
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
