"""Keithley 707B driver: the exact TSP statements it sends and how it reads the replies."""

import pytest
from pymeasure.test import expected_protocol

from instruments.drivers.errors import InstrumentError
from instruments.drivers.keithley707b import Keithley707B, crosspoint_list

IDN = "Keithley Instruments Inc., Model 707B, 04110429, 1.0.2"


def test_identification_is_read_whole():
    with expected_protocol(Keithley707B, [("*IDN?", IDN)]) as matrix:
        assert matrix.id == IDN


def test_close_crosspoints_sends_one_channel_list():
    with expected_protocol(Keithley707B, [('channel.close("1A01,1B02,6H12")', None)]) as matrix:
        matrix.close_crosspoints(["1A01", "1b02", "6H12"])


def test_a_comma_separated_string_is_a_channel_list_too():
    with expected_protocol(Keithley707B, [('channel.close("1A01,1C03")', None)]) as matrix:
        matrix.close_crosspoints("1A01, 1c03")


def test_repeated_crosspoints_are_sent_once():
    with expected_protocol(Keithley707B, [('channel.open("2C05,2D06")', None)]) as matrix:
        matrix.open_crosspoints(["2C05", "2D06", "2c05"])


def test_open_all_opens_every_slot():
    with expected_protocol(Keithley707B, [('channel.open("allslots")', None)]) as matrix:
        matrix.open_all()


def test_exclusive_close():
    with expected_protocol(Keithley707B, [('channel.exclusiveclose("1A01,1B02,1C01,1D02")', None)]) as matrix:
        matrix.exclusive_close(["1A01", "1B02", "1C01", "1D02"])


def test_reset_and_clear_errors():
    with expected_protocol(Keithley707B, [("reset()", None), ("errorqueue.clear()", None)]) as matrix:
        matrix.reset()
        matrix.clear_errors()


def test_closed_crosspoints_are_parsed_to_a_set():
    with expected_protocol(Keithley707B, [('print(channel.getclose("allslots"))', "1A01;1B02;3F08")]) as matrix:
        assert matrix.closed_crosspoints == {"1A01", "1B02", "3F08"}


def test_nil_means_nothing_closed():
    with expected_protocol(Keithley707B, [('print(channel.getclose("allslots"))', "nil")]) as matrix:
        assert matrix.closed_crosspoints == set()


def test_a_single_closed_crosspoint():
    with expected_protocol(Keithley707B, [('print(channel.getclose("allslots"))', "2E11")]) as matrix:
        assert matrix.closed_crosspoints == {"2E11"}


def test_error_count_and_next_error():
    with expected_protocol(Keithley707B, [
        ("print(errorqueue.count)", "1.000000000e+00"),
        ("print(errorqueue.next())", "-2.850000000e+02\tTSP Syntax error at line 1: unexpected symbol near 'x'"
                                     "\t2.000000000e+01\t1.000000000e+00"),
        ("print(errorqueue.next())", "0.000000000e+00\tQueue Is Empty\t0.000000000e+00\t1.000000000e+00"),
    ]) as matrix:
        assert matrix.error_count == 1
        assert matrix.next_error == (-285, "TSP Syntax error at line 1: unexpected symbol near 'x'")
        assert matrix.next_error == (0, "Queue Is Empty")


def test_check_errors_with_an_empty_queue_returns_nothing():
    with expected_protocol(Keithley707B, [("print(errorqueue.count)", "0.000000000e+00")]) as matrix:
        assert matrix.check_errors() == []


def test_check_errors_raises_naming_every_code_and_message():
    with expected_protocol(Keithley707B, [
        ("print(errorqueue.count)", "2.000000000e+00"),
        ("print(errorqueue.next())", "-2.850000000e+02\tTSP Syntax error at line 1: unexpected symbol near 'foo'"
                                     "\t2.000000000e+01\t1.000000000e+00"),
        ("print(errorqueue.next())", "-2.860000000e+02\tTSP Runtime error at line 1: invalid channel list, 1A13"
                                     "\t2.000000000e+01\t1.000000000e+00"),
    ]) as matrix:
        with pytest.raises(InstrumentError) as caught:
            matrix.check_errors()
    text = str(caught.value)
    assert "-285: TSP Syntax error at line 1: unexpected symbol near 'foo'" in text
    assert "-286: TSP Runtime error at line 1: invalid channel list, 1A13" in text


@pytest.mark.parametrize("bad", ["0A01", "7A01", "1I01", "1A00", "1A13", "1A1", "1A001", "A01", "allslots",
                                 "slot1", "1A01:1A05", ""])
@pytest.mark.parametrize("method", ["close_crosspoints", "open_crosspoints", "exclusive_close"])
def test_invalid_crosspoints_are_refused_before_anything_is_sent(method, bad):
    with expected_protocol(Keithley707B, []) as matrix:
        with pytest.raises(ValueError, match="707B crosspoint"):
            getattr(matrix, method)(["1A01", bad])


@pytest.mark.parametrize("method", ["close_crosspoints", "open_crosspoints", "exclusive_close"])
def test_an_empty_list_is_refused(method):
    with expected_protocol(Keithley707B, []) as matrix:
        with pytest.raises(ValueError, match="no crosspoints"):
            getattr(matrix, method)([])


def test_every_corner_of_the_matrix_is_a_valid_name():
    corners = ["1A01", "1A12", "1H01", "1H12", "6A01", "6H12"]
    assert crosspoint_list(corners) == ",".join(corners)
