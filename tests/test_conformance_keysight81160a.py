"""The emulated 81160A against its manual, over TCP with raw pyvisa: ranges, couplings, errors, status.

Written from the *Keysight 81150A/81160A User's Guide* (Remote Programming Reference; the Appendix's
parameter characteristics) and, where the guide leaves it open, the 33250A-family behaviour its SCPI
inherits (see ``docs/commands/keysight81160a.md``, which lists the sources of each rule).
"""

import math

import numpy as np
import pytest

from sim_backend.emulated.keysight81160a_emulator import EmulatedKeysight81160A, upload_time_s
from sim_backend.emulated.server import InstrumentServer
from tests.emulation import open_raw, scpi_error_codes, station_bench


@pytest.fixture(scope="module")
def bench():
    return station_bench(routed="w5-2")


@pytest.fixture(scope="module")
def server(bench):
    with InstrumentServer(EmulatedKeysight81160A(bench)) as served:
        yield served


@pytest.fixture(scope="module")
def link(server):
    resource = open_raw(server)
    yield resource
    resource.close()


@pytest.fixture()
def inst(link):
    link.write("*RST;*CLS;*ESE 0;*SRE 0;:STAT:PRES")
    return link


def number(inst, query: str) -> float:
    return float(inst.query(query))



def test_rst_defaults(inst):
    assert inst.query(":FUNC1?") == "SIN" and inst.query(":FUNC2?") == "SIN"
    assert number(inst, ":FREQ?") == 1e6 and number(inst, ":PULS:PER?") == pytest.approx(1e-6)
    assert number(inst, ":VOLT?") == 0.5 and number(inst, ":VOLT:OFFS?") == 0.0
    assert (number(inst, ":VOLT:HIGH?"), number(inst, ":VOLT:LOW?")) == (0.25, -0.25)
    assert inst.query(":VOLT:UNIT?") == "VPP" and inst.query(":OUTP?") == "0" and inst.query(":OUTP:POL?") == "NORM"
    assert number(inst, ":OUTP:LOAD?") == 50.0 and inst.query(":ARM:SOUR?") == "IMM"
    assert number(inst, ":TRIG:COUN?") == 1 and inst.query(":BURS:STAT?") == "0"
    assert inst.query(":PULS:HOLD?") == "WIDT" and number(inst, ":PULS:WIDT?") == pytest.approx(100e-9)
    assert inst.query(":VOLT:LIM:STAT?") == "0" and inst.query(":TRAC:CHAN1?") == "0"
    assert inst.query(":FUNC:USER?") == "EXP_RISE"
    assert scpi_error_codes(inst) == []


@pytest.mark.parametrize(("shape", "maximum"), [("SIN", 500e6), ("SQU", 330e6), ("PULS", 330e6), ("RAMP", 5e6),
                                                ("USER", 330e6)])
def test_frequency_limits_depend_on_the_function(inst, shape, maximum):
    inst.write(f":FUNC {shape}")
    assert number(inst, ":FREQ? MAX") == maximum and number(inst, ":FREQ? MIN") == 1e-6
    inst.write(":FREQ MAX")
    assert number(inst, ":FREQ?") == maximum
    inst.write(f":FREQ {maximum * 1.01}")
    assert scpi_error_codes(inst) == [-222] and number(inst, ":FREQ?") == maximum  # refused, the frequency kept


def test_a_function_whose_range_the_frequency_exceeds_moves_it_and_says_so(inst):
    inst.write(":FREQ 400e6;:FUNC SQU")
    assert number(inst, ":FREQ?") == 330e6 and scpi_error_codes(inst) == [-221]


def test_min_max_def_as_values_and_as_query_arguments(inst):
    assert number(inst, ":VOLT? MAX") == 5.0 and number(inst, ":VOLT? MIN") == 0.05
    assert number(inst, ":VOLT? DEF") == 0.5 and number(inst, ":VOLT?") == 0.5  # the query leaves it
    inst.write(":VOLT MIN")
    assert number(inst, ":VOLT?") == 0.05
    inst.write(":VOLT 2;:VOLT:OFFS MAX")  # coupled: the offset's limit follows the amplitude
    assert number(inst, ":VOLT:OFFS?") == 4.0 and number(inst, ":VOLT:HIGH?") == 5.0
    inst.write(":VOLT DEF;:VOLT:OFFS DEF")
    assert (number(inst, ":VOLT?"), number(inst, ":VOLT:OFFS?")) == (0.5, 0.0)
    inst.write(":FUNC PULS;:PULS:WIDT MAX")
    assert number(inst, ":PULS:WIDT?") == pytest.approx(1e-6 - 1.5e-9)
    assert number(inst, ":TRIG:COUN? MAX") == 2147483647 and number(inst, ":OUTP:LOAD? MAX") == 1e6
    assert scpi_error_codes(inst) == []


def test_frequency_and_period_are_one_setting(inst):
    inst.write(":FUNC PULS;:PULS:PER 40us")
    assert number(inst, ":FREQ?") == pytest.approx(25e3)
    inst.write(":FREQ 2MHZ")
    assert number(inst, ":PULS:PER?") == pytest.approx(500e-9)


def test_amplitude_offset_and_high_low_are_one_pair_and_an_inverted_pair_is_taken(inst):
    inst.write(":VOLT:HIGH 1.5;:VOLT:LOW -0.5")
    assert (number(inst, ":VOLT?"), number(inst, ":VOLT:OFFS?")) == (2.0, 0.5)
    inst.write(":VOLT:HIGH -1")  # below the low level: taken, the low level moved, a settings conflict reported
    assert number(inst, ":VOLT:HIGH?") == -1.0 and number(inst, ":VOLT:LOW?") == pytest.approx(-1.05)
    assert scpi_error_codes(inst) == [-221]
    inst.write(":VOLT:LOW 3")  # above the high level: taken, the high level moved
    assert number(inst, ":VOLT:LOW?") == 3.0 and number(inst, ":VOLT:HIGH?") == pytest.approx(3.05)
    assert scpi_error_codes(inst) == [-221]
    inst.write(":VOLT 5")  # 5 Vpp around 3.025 V leaves the ±5 V window into 50 Ω: refused
    assert scpi_error_codes(inst) == [-221] and number(inst, ":VOLT?") == pytest.approx(0.05)


def test_the_load_scales_the_level_window(inst):
    inst.write(":VOLT:HIGH 7")
    assert scpi_error_codes(inst) == [-222]  # beyond +5 V into 50 Ω
    inst.write(":OUTP:LOAD INF;:VOLT:HIGH 7")  # into high impedance the window is ±10 V
    assert number(inst, ":VOLT:HIGH?") == 7.0 and number(inst, ":VOLT:HIGH? MAX") == pytest.approx(10.0, rel=1e-3)
    inst.write(":OUTP:LOAD 50")  # the levels no longer fit: refused, the load kept
    assert scpi_error_codes(inst) == [-221] and number(inst, ":OUTP:LOAD?") == 1e6


def test_voltage_limits_refuse_levels_beyond_them(inst):
    inst.write(":VOLT:LIM:HIGH 1;:VOLT:LIM:LOW -1;:VOLT:LIM:STAT ON")
    assert inst.query(":VOLT:LIM:STAT?") == "1"
    assert (number(inst, ":VOLT:LIM?"), number(inst, ":VOLT:LIM:LOW?")) == (1.0, -1.0)
    for command in (":VOLT:HIGH 1.5", ":VOLT 3", ":VOLT:OFFS 0.9", ":APPL:SIN 1e3, 2.5, 0"):
        inst.write(command)
        assert scpi_error_codes(inst) == [-221], command
    assert (number(inst, ":VOLT:HIGH?"), number(inst, ":VOLT:LOW?")) == (0.25, -0.25)  # nothing changed
    assert (number(inst, ":VOLT:HIGH? MAX"), number(inst, ":VOLT? MAX")) == (1.0, 2.0)  # MAX within the limits
    inst.write(":VOLT:HIGH MAX;:VOLT:LOW MIN")  # up to the limits
    assert scpi_error_codes(inst) == [] and number(inst, ":VOLT?") == 2.0
    inst.write(":VOLT:LIM:HIGH 0.5")  # the present levels would violate it
    assert scpi_error_codes(inst) == [-221] and number(inst, ":VOLT:LIM?") == 1.0
    inst.write(":VOLT:LIM:STAT OFF;:VOLT:LIM:HIGH 0.5;:VOLT:LIM:STAT ON")  # cannot be switched on over the levels
    assert scpi_error_codes(inst) == [-221] and inst.query(":VOLT:LIM:STAT?") == "0"
    inst.write(":VOLT:LIM:LOW 2")  # not below the high limit
    assert scpi_error_codes(inst) == [-221]


def test_width_duty_cycle_and_hold(inst):
    inst.write(":FUNC PULS;:PULS:PER 1us;:PULS:WIDT 250ns")
    assert number(inst, ":PULS:DCYC?") == pytest.approx(25) and number(inst, ":FUNC:PULS:DCYC?") == pytest.approx(25)
    inst.write(":PULS:PER 2us")  # the width is held
    assert number(inst, ":PULS:WIDT?") == pytest.approx(250e-9) and number(inst, ":PULS:DCYC?") == pytest.approx(12.5)
    inst.write(":PULS:HOLD DCYC;:PULS:PER 4us")  # the duty cycle is held
    assert number(inst, ":PULS:DCYC?") == pytest.approx(12.5) and number(inst, ":PULS:WIDT?") == pytest.approx(500e-9)
    inst.write(":PULS:HOLD TDEL;:PULS:PER 5us")  # the trailing delay (period − width) is held
    assert number(inst, ":PULS:WIDT?") == pytest.approx(1.5e-6)
    inst.write(":PULS:WIDT 6us")
    inst.write(":PULS:DCYC 100")
    assert scpi_error_codes(inst) == [-221, -221]
    assert number(inst, ":PULS:DCYC? MAX") == pytest.approx(100 * (1 - 1.5e-9 / 5e-6))


def test_edges_are_coupled_unless_uncoupled(inst):
    inst.write(":FUNC:PULS:TRAN 5ns")
    assert number(inst, ":FUNC:PULS:TRAN?") == pytest.approx(5e-9)
    assert number(inst, ":FUNC:PULS:TRAN:TRA?") == pytest.approx(5e-9)  # the trailing edge follows
    inst.write(":FUNC:PULS:TRAN:UNC ON;:FUNC:PULS:TRAN:TRA 20ns")
    assert number(inst, ":PULS:TRAN:TRA?") == pytest.approx(20e-9)
    assert number(inst, ":PULS:TRAN?") == pytest.approx(5e-9)
    assert number(inst, ":FUNC:PULS:TRAN? MIN") == 1e-9
    assert scpi_error_codes(inst) == []


def test_amplitude_units(inst):
    inst.write(":VOLT 2;:VOLT:UNIT VRMS")
    assert number(inst, ":VOLT?") == pytest.approx(2 / (2 * math.sqrt(2)))
    inst.write(":VOLT 1")  # sent in Vrms
    inst.write(":VOLT:UNIT VPP")
    assert number(inst, ":VOLT?") == pytest.approx(2 * math.sqrt(2))
    inst.write(":VOLT:UNIT DBM;:VOLT 10")  # 10 dBm into 50 Ω
    inst.write(":VOLT:UNIT VPP")
    assert number(inst, ":VOLT?") == pytest.approx(2 * math.sqrt(2) * math.sqrt(0.01 * 50))
    inst.write(":FUNC PULS;:VOLT:UNIT VRMS")  # a pulse has no rms value here
    assert scpi_error_codes(inst) == [-221] and inst.query(":VOLT:UNIT?") == "VPP"


def test_apply_forms_and_their_query(inst):
    inst.write(":APPL2:SIN 5 KHZ, 3.0 V, -1.5 V")
    assert inst.query(":APPL2?") == '"SIN +5.000000000000000E+03,+3.000000000000000E+00,-1.500000000000000E+00"'
    inst.write(":APPL2:PULS")  # the same as DEF, DEF, DEF: 1 kHz, 1 Vpp, 0 V
    assert inst.query(":APPL2?") == '"PULS +1.000000000000000E+03,+1.000000000000000E+00,+0.000000000000000E+00"'
    inst.write(":APPL2:SQU MAX, MIN, DEF")
    assert number(inst, ":FREQ2?") == 330e6 and number(inst, ":VOLT2?") == 0.05
    inst.write(":APPL2:DC DEF, DEF, -2.5")
    assert inst.query(":FUNC2?") == "DC" and number(inst, ":VOLT2:OFFS?") == -2.5
    inst.write(":APPL2:RAMP 10MHZ, 1, 0")  # beyond the ramp's 5 MHz: nothing applied
    assert scpi_error_codes(inst) == [-222] and inst.query(":FUNC2?") == "DC"
    assert inst.query(":FUNC1?") == "SIN"  # the other channel is untouched


def test_waveform_catalogue(inst):
    assert inst.query(":DATA:CAT?") == '"EXP_RISE","EXP_FALL","NEG_RAMP","SINC"'
    assert inst.query(":DATA:NVOL:CAT?") == '""' and inst.query(":DATA:NVOL:FREE?") == "4"
    inst.write(":DATA:DAC VOLATILE, 0, 4000, 8191, -8191")
    for name in ("ONE", "TWO", "THREE", "FOUR"):
        inst.write(f":DATA:COPY {name}, VOLATILE")
    assert inst.query(":DATA:NVOL:CAT?") == '"ONE","TWO","THREE","FOUR"' and inst.query(":DATA:NVOL:FREE?") == "0"
    inst.write(":DATA:COPY FIVE")
    inst.write(":DATA:COPY 5TH")
    assert scpi_error_codes(inst) == [-225, -224]
    inst.write(":FUNC:USER TWO;:FUNC USER")
    assert inst.query(":FUNC:USER?") == "TWO" and inst.query(":DATA:ATTR:POIN?") == "4"
    assert inst.query(":DATA:ATTR:POIN? SINC") == "16384"
    inst.write(":DATA:DEL TWO;:DATA:DEL SINC;:DATA:DEL:ALL")  # playing, built-in, one of them playing
    assert scpi_error_codes(inst) == [-221, -221, -221]
    inst.write(":FUNC SIN;:DATA:DEL:ALL")
    assert inst.query(":DATA:CAT?") == '"EXP_RISE","EXP_FALL","NEG_RAMP","SINC"'
    assert inst.query(":FUNC:USER?") == "EXP_RISE"
    inst.write(":FUNC:USER TWO")
    assert scpi_error_codes(inst) == [-224]


def test_an_upload_takes_its_time_on_the_virtual_clock(inst, bench):
    codes = np.zeros(100_000, dtype=">i2")
    start = bench.clock_s
    inst.write_binary_values(":DATA2:DAC VOLATILE,", codes, datatype="h", is_big_endian=True)
    assert inst.query(":DATA2:ATTR:POIN? VOLATILE") == "100000"
    elapsed = bench.clock_s - start
    assert elapsed == pytest.approx(upload_time_s(100_000, EmulatedKeysight81160A.command_time_s))
    assert 0.015 < elapsed < 0.02  # 2 ms, then 16 ms at 100 Mbit/s


def test_byte_order_of_uploaded_blocks(inst, server):
    inst.write(":FORM:BORD SWAP")
    assert inst.query(":FORM:BORD?") == "SWAP"
    inst.write_binary_values(":DATA1:DAC VOLATILE,", [1, -2, 8191], datatype="h", is_big_endian=False)
    assert inst.query("*OPC?") == "1"
    np.testing.assert_array_equal(server.instrument.catalogues[1].volatile, [1, -2, 8191])
    inst.write(":FORM:BORD NORM")
    inst.write_binary_values(":DATA1:DAC VOLATILE,", [3, -4], datatype="h", is_big_endian=True)
    assert inst.query("*OPC?") == "1"
    np.testing.assert_array_equal(server.instrument.catalogues[1].volatile, [3, -4])


def test_a_delayed_pulse_and_the_load_as_external_impedance(inst, server):
    inst.write(":FUNC PULS;:PULS:PER 10us;:PULS:WIDT 2us;:PULS:DEL 3us;:OUTP:IMP:EXT 1e6")
    assert number(inst, ":OUTP:LOAD?") == 1e6 and number(inst, ":OUTP:IMP?") == 50.0
    assert number(inst, ":PULS:DEL? MAX") == pytest.approx(8e-6)
    assert number(inst, ":PULS:WIDT? MAX") == pytest.approx(7e-6)
    inst.write(":VOLT:HIGH 1;:VOLT:LOW 0;:ARM:SOUR MAN;:OUTP ON;*TRG")
    assert inst.query("*OPC?") == "1"
    _, levels, durations = server.instrument.played[-1]
    np.testing.assert_allclose(levels, [0.0, 1.0, 0.0])
    np.testing.assert_allclose(durations, [3e-6, 2e-6, 5e-6])
    inst.write(":PULS:WIDT 8us;:OUTP:IMP 5")  # beyond the delayed period; a 5 ohm source is not emulated
    assert scpi_error_codes(inst) == [-221, -221]


def test_channel_coupling_copies_the_signal_both_ways(inst):
    inst.write(":TRAC:CHAN1 ON;:FUNC1 PULS;:PULS:PER1 2us;:VOLT1 1.2")
    assert inst.query(":FUNC2?") == "PULS" and number(inst, ":PULS:PER2?") == pytest.approx(2e-6)
    inst.write(":VOLT2:OFFS 0.3")  # coupled: a change to either channel applies to both
    assert number(inst, ":VOLT1:OFFS?") == pytest.approx(0.3)
    inst.write(":TRAC:CHAN2 ON")  # only one channel leads
    assert scpi_error_codes(inst) == [-221]
    inst.write(":OUTP1 ON")  # the output state is not copied
    assert inst.query(":OUTP2?") == "0"
    inst.write(":VOLT2:LIM:HIGH 1;:VOLT2:LIM:LOW -1;:VOLT2:LIM:STAT ON;:VOLT1 2.5")  # channel 2's limits apply
    assert scpi_error_codes(inst) == [-221] and number(inst, ":VOLT1?") == pytest.approx(1.2)  # undone on channel 1 too
    inst.write(":TRAC:CHAN1 OFF;:VOLT1 2.5")
    assert number(inst, ":VOLT2?") == pytest.approx(1.2)
    inst.write(":TRAC:CHAN1 ON")  # channel 1's levels do not fit channel 2's limits: not coupled
    assert scpi_error_codes(inst) == [-221] and inst.query(":TRAC:CHAN1?") == "0"


def test_error_codes_and_the_event_status_register(inst):
    inst.write(":FOO:BAR")  # command error
    assert int(inst.query("*ESR?")) == 32
    inst.write(":FREQ 1e12")  # execution error
    assert int(inst.query("*ESR?")) == 16 and int(inst.query("*STB?")) & 4  # the queue holds errors
    assert scpi_error_codes(inst) == [-113, -222] and int(inst.query("*STB?")) == 0
    inst.write(":ARM:SOUR SOMETIMES;:FUNC:USER NOSUCH")
    assert scpi_error_codes(inst) == [-224, -224]
    inst.write("*ESE 16;*SRE 32;:VOLT 20")
    assert int(inst.query("*STB?")) == 4 | 32 | 64  # EAV, ESB, MSS
    inst.write("*CLS")
    assert int(inst.query("*STB?")) == 0 and inst.query(":SYST:ERR?") == '0,"No error"'


def test_opc_and_wai(inst):
    inst.write("*OPC")
    assert int(inst.query("*ESR?")) & 1
    assert inst.query("*OPC?") == "1"
    inst.write(":FREQ 2e6;*WAI")
    assert number(inst, ":FREQ?") == 2e6


def test_operation_and_questionable_status(inst):
    inst.write(":STAT:OPER:ENAB 32;:STAT:QUES:ENAB 32")
    assert inst.query(":STAT:OPER:ENAB?") == "32" and inst.query(":STAT:OPER:COND?") == "0"
    inst.write(":ARM:SOUR MAN;:OUTP ON")  # waiting for a trigger
    assert inst.query(":STAT:OPER:COND?") == "32" and int(inst.query("*STB?")) & 128
    assert inst.query(":STAT:OPER?") == "32" and inst.query(":STAT:OPER?") == "0"  # read and cleared
    inst.write(":FUNC PULS;:PULS:PER 1us;:PULS:WIDT 800ns;:PULS:PER 500ns")  # a held width beyond the period
    assert inst.query(":STAT:QUES:COND?") == "32" and int(inst.query("*STB?")) & 8
    inst.write(":PULS:WIDT 100ns")
    assert inst.query(":STAT:QUES:COND?") == "0" and inst.query(":STAT:QUES?") == "32"
    inst.write(":STAT:PRES")
    assert inst.query(":STAT:OPER:ENAB?") == "0" and inst.query(":STAT:OPER:PTR?") == "32767"
    assert scpi_error_codes(inst) == []


def test_display_system_and_options(inst):
    inst.write(":DISP OFF;:DISP:TEXT 'RUNNING'")
    assert inst.query(":DISP?") == "0" and inst.query(":DISP:TEXT?") == '"RUNNING"'
    inst.write(":DISP:TEXT:CLE;:SYST:BEEP")
    assert inst.query(":DISP:TEXT?") == '""' and inst.query(":SYST:VERS?") == "1999.0"
    assert inst.query("*OPT?") == "002" and inst.query("*TST?") == "0"
    assert scpi_error_codes(inst) == []


def test_long_forms_and_the_source_root(inst):
    inst.write(":SOURce:FUNCtion1:SHAPe PULSe;:SOURce:PULSe:PERiod1 2E-6;:SOURCE:VOLTAGE1:LEVEL:IMMEDIATE:HIGH 1")
    assert inst.query("SOUR:FUNC1?") == "PULS" and number(inst, ":PULS:FREQ1?") == pytest.approx(5e5)
    assert number(inst, ":SOUR:VOLT1:HIGH?") == 1.0
    inst.write("SOUR1:FUNC SIN")  # the 33500's numbered root is no 81160A header
    assert scpi_error_codes(inst) == [-113]


@pytest.mark.parametrize(("shape", "segments"), [("SQU", 2), ("SIN", 64), ("RAMP", 64), ("DC", 1)])
def test_the_standard_functions_reach_the_bench_on_a_trigger(inst, server, shape, segments):
    inst.write(f":FUNC {shape};:FREQ 100KHZ;:VOLT 1;:OUTP:LOAD INF;:ARM:SOUR MAN;:OUTP ON;*TRG")
    assert inst.query("*OPC?") == "1"
    _, levels, durations = server.instrument.played[-1]
    assert levels.size == segments and durations.sum() == pytest.approx(1e-5)
    assert levels.max() <= 0.5 + 1e-12 and levels.min() >= -0.5 - 1e-12
    inst.write(":FUNC NOIS;*TRG")  # noise is not played (an emulation limit)
    assert scpi_error_codes(inst) == [-200]
