"""The Keithley 707B driver end to end over pyvisa-py TCP against the emulated switch matrix."""

import pytest
import pyvisa
from pymeasure.instruments.keithley import Keithley2600 as StockTspInstrument

from instruments.drivers.errors import InstrumentError
from instruments.drivers.keithley707b import Keithley707B
from instruments.station_config import load_station_spec
from sim_backend.chip import DEFAULT_CHIP_FILE
from sim_backend.emulated.keithley707b_emulator import RELAY_SETTLE_S, EmulatedKeithley707B
from sim_backend.emulated.server import InstrumentServer
from tests.emulation import connect as connect_driver
from tests.emulation import open_raw, station_bench

STATION_FILE = DEFAULT_CHIP_FILE.parent / "station.emulated.yaml"


@pytest.fixture()
def bench():
    return station_bench()


@pytest.fixture()
def emulated(bench):
    instrument = EmulatedKeithley707B(bench)
    with InstrumentServer(instrument) as server:
        yield instrument, server


def connect(server, cls=Keithley707B):
    return connect_driver(server, cls)


def round_trip(matrix):
    """Wait until the emulator has handled every statement written so far (one connection, in order)."""
    return matrix.closed_crosspoints


def test_raw_pyvisa_session_identifies_the_707b(emulated):
    _, server = emulated
    resource = open_raw(server, timeout_ms=2000)
    try:
        assert resource.query("*IDN?") == "Keithley Instruments Inc., Model 707B, 04110429, 1.0.2"
        assert resource.query('print(channel.getclose("allslots"))') == "nil"
    finally:
        resource.close()


def test_close_open_and_report_crosspoints(emulated):
    _, server = emulated
    matrix = connect(server)
    assert "Model 707B" in matrix.id
    assert matrix.closed_crosspoints == set()
    matrix.close_crosspoints(["1A01", "1B02"])
    matrix.close_crosspoints(["2c05"])
    assert matrix.closed_crosspoints == {"1A01", "1B02", "2C05"}
    matrix.open_crosspoints(["1B02"])
    assert matrix.closed_crosspoints == {"1A01", "2C05"}
    matrix.exclusive_close(["3E07", "3F08"])
    assert matrix.closed_crosspoints == {"3E07", "3F08"}
    matrix.open_all()
    assert matrix.closed_crosspoints == set()
    matrix.close_crosspoints(["6H12"])
    matrix.reset()
    assert matrix.closed_crosspoints == set()
    assert matrix.check_errors() == []


def test_routing_a_device_reaches_the_bench(emulated, bench):
    _, server = emulated
    matrix = connect(server)
    spec = load_station_spec(STATION_FILE)
    matrix.exclusive_close(sorted(spec.route("w3-2")))
    round_trip(matrix)
    assert bench.routed_device == "w3-2"
    assert bench.closed == spec.route("w3-2")
    matrix.exclusive_close(sorted(spec.route("w5-1")))  # another card: w3-2 is disconnected first
    round_trip(matrix)
    assert bench.routed_device == "w5-1"
    matrix.close_crosspoints(sorted(spec.route("w3-1")))  # two devices at once: neither is routed
    round_trip(matrix)
    assert bench.routed_device is None
    matrix.open_all()
    round_trip(matrix)
    assert bench.routed_device is None and bench.closed == frozenset()


def test_switching_takes_the_relay_settle_time(emulated, bench):
    _, server = emulated
    matrix = connect(server)
    start = bench.clock_s
    matrix.close_crosspoints(["1A01"])
    round_trip(matrix)
    assert bench.clock_s - start == pytest.approx(RELAY_SETTLE_S)
    start = bench.clock_s
    matrix.exclusive_close(["1A05"])  # break before make: open 1A01, then close 1A05
    assert round_trip(matrix) == {"1A05"}  # a query does not switch: it takes no settle time
    assert bench.clock_s - start == pytest.approx(2 * RELAY_SETTLE_S)


def test_unknown_statement_is_queued_and_raised_by_the_driver(emulated):
    _, server = emulated
    matrix = connect(server)
    matrix.write("channel.connect(1A01)")  # Lua reads 1A01 as a malformed number
    assert matrix.error_count == 1
    with pytest.raises(InstrumentError, match=r"-285: TSP Syntax error at line 1: malformed number near `1A01'"):
        matrix.check_errors()
    assert matrix.check_errors() == []  # read once, the queue is empty
    assert matrix.next_error == (0, "Queue Is Empty")


def test_a_bad_channel_list_changes_nothing_and_is_reported(emulated):
    _, server = emulated
    matrix = connect(server)
    matrix.close_crosspoints(["1A01"])
    matrix.write('channel.close("1A01,1A13")')  # column 13 does not exist; the driver would refuse it
    matrix.write('channel.close("allslots")')  # the manual: close does not take allslots
    assert matrix.closed_crosspoints == {"1A01"}
    with pytest.raises(InstrumentError) as caught:
        matrix.check_errors()
    assert str(caught.value).count("-286: TSP Runtime error") == 2
    assert "1A13" in str(caught.value)


def test_an_unknown_query_answers_nil_instead_of_leaving_the_client_waiting(emulated):
    _, server = emulated
    matrix = connect(server)
    assert matrix.ask("print(smu.source.level)") == "nil"  # a 2450's attribute: indexing nil
    with pytest.raises(InstrumentError, match="-286: TSP Runtime error at line 1: attempt to index global `smu'"):
        matrix.check_errors()


def test_exclusiveclose_of_an_empty_list_opens_everything(emulated):
    _, server = emulated
    matrix = connect(server)
    matrix.close_crosspoints(["1A01", "4D09"])
    matrix.write('channel.exclusiveclose("")')
    assert matrix.closed_crosspoints == set()
    assert matrix.check_errors() == []


def test_common_commands_reset_and_clear(emulated):
    _, server = emulated
    matrix = connect(server)
    matrix.close_crosspoints(["2B03"])
    matrix.write("*RST")
    assert matrix.closed_crosspoints == set()
    matrix.write("nonsense")
    matrix.write("*CLS")
    assert matrix.error_count == 0


@pytest.mark.filterwarnings("ignore:It is not known whether this device support SCPI")
def test_pymeasure_stock_tsp_error_reading_works_unmodified(emulated):
    """PyMeasure has no 707B driver; its TSP driver (Keithley 2600) reads the same ``errorqueue``."""
    _, server = emulated
    stock = connect(server, StockTspInstrument)
    assert "Model 707B" in stock.id
    stock.write("not lua at all")
    stock.write('channel.open("9Z99")')
    errors = stock.check_errors()  # logs and returns them, until code 0 "Queue Is Empty"
    assert [code for code, _ in errors] == [-285, -286]
    assert stock.next_error == (0, "Queue Is Empty")


def test_connection_survives_many_statements(emulated):
    instrument, server = emulated
    matrix = connect(server)
    for column in range(1, 13):
        matrix.close_crosspoints([f"1C{column:02d}"])
    assert len(matrix.closed_crosspoints) == 12
    assert matrix.check_errors() == []
    assert len(instrument.log) > 12


# -- injected faults ---------------------------------------------------------------------------------


def test_a_dropped_connection_armed_after_n_messages_loses_exactly_that_message(emulated, bench):
    instrument, server = emulated
    matrix = connect(server)
    instrument.faults.drop_after_messages = 3
    matrix.write('channel.close("1A01")')  # message 1
    assert matrix.ask('print(channel.getclose("allslots"))') == "1A01"  # message 2
    with pytest.raises((pyvisa.VisaIOError, ConnectionError, OSError, InstrumentError)):  # a timeout, or a reset
        matrix.write('channel.close("1A02")')  # message 3: lost, and the connection closes
        matrix.read()  # (the write itself may go out before the close is seen)
    assert instrument.closed == {"1A01"} and list(instrument.log)[-1] == 'print(channel.getclose("allslots"))'
    assert instrument.faults.drop_after_messages is None and not instrument.faults.drop_connection
    assert connect(server).closed_crosspoints == {"1A01"}  # a new connection is served as usual


def test_an_instrument_error_armed_after_n_messages_is_a_tsp_error_in_the_queue(emulated, bench):
    instrument, server = emulated
    matrix = connect(server)
    instrument.faults.error_after_messages = 3
    matrix.write('channel.close("1A01")')  # message 1
    assert matrix.ask("print(errorqueue.count)") == "0.00000e+00"  # message 2: nothing before
    matrix.write('channel.close("1A02")')  # message 3: rejected, as if the instrument refused it
    assert matrix.closed_crosspoints == {"1A01"}  # it did nothing
    assert matrix.next_error == (-286, "TSP Runtime error at line 1: execution error")
    assert matrix.next_error == (0, "Queue Is Empty")
    instrument.faults.error_after_messages = 1
    assert matrix.ask('print(channel.getclose("allslots"))') == "nil"  # a rejected query answers nil
    with pytest.raises(InstrumentError, match="-286: TSP Runtime error"):
        matrix.check_errors()
    assert bench.closed == {"1A01"}
