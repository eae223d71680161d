"""The emulated instruments' shared server and IEEE 488.2 status model, over pyvisa-py TCP.

A minimal SCPI instrument (an operation that runs until ``:FIN`` ends it, from any connection) stands in
for the models, so that what every SCPI emulator inherits is checked on its own: the status registers,
``*OPC``/``*OPC?``/``*WAI`` around an overlapped operation, ``MIN``/``MAX``/``DEF`` parameters, the
input-buffer bound and the real-time option.
"""

import threading
import time

import pytest
import pyvisa

from sim_backend.emulated import server as server_module
from sim_backend.emulated.bench import Bench
from sim_backend.emulated.scpi_values import numeric, queried
from sim_backend.emulated.server import InstrumentServer, ScpiInstrument
from sim_backend.emulated.status_model import EAV, ESB, MSS, OPC, PON
from tests.emulation import open_raw, scpi_error_codes, station_bench


class OverlappedInstrument(ScpiInstrument):
    """``:RUN`` starts an operation that ``:FIN`` ends; ``:LEV`` is a level in 0…10 (default 1)."""

    idn = "TEST,OVERLAPPED,0,1"
    COMMANDS = [(":RUN", "_run"), (":FIN", "_fin"), (":LEVel?", "_level_q"), (":LEVel", "_level"),
                (":BROKen", "_broken")]

    def reset_state(self) -> None:
        self.running = False
        self.level = 1.0

    def operations_pending(self) -> bool:
        return self.running

    def _run(self, args: str) -> None:
        self.running = True

    def _fin(self, args: str) -> None:
        self.running = False

    def _level_q(self, args: str) -> str:
        return f"{queried(args, self.level, 0.0, 10.0, 1.0):g}"

    def _level(self, args: str) -> None:
        self.level = numeric(args, 0.0, 10.0, 1.0, "level")

    def _broken(self, args: str) -> None:
        raise RuntimeError("a defect of the emulation")


@pytest.fixture(scope="module")
def server():
    with InstrumentServer(OverlappedInstrument(station_bench())) as served:
        yield served


@pytest.fixture()
def inst(server):
    resource = open_raw(server)
    resource.write("*RST;*CLS;*ESE 0;*SRE 0")
    server.instrument.running = False
    yield resource
    resource.close()


def test_power_on_is_reported_once_and_rst_keeps_the_status_registers():
    with InstrumentServer(OverlappedInstrument()) as fresh:
        resource = open_raw(fresh)
        try:
            resource.write("*ESE 36")
            resource.write("*RST")
            assert int(resource.query("*ESR?")) == PON
            assert int(resource.query("*ESR?")) == 0  # read and cleared
            assert int(resource.query("*ESE?")) == 36
        finally:
            resource.close()


def test_errors_set_their_event_bits_and_the_status_byte_summarises_them(inst):
    inst.write(":NOPE")  # -113: command error (bit 5)
    inst.write(":LEV 11")  # -222: execution error (bit 4)
    assert int(inst.query("*STB?")) & EAV  # the error queue holds entries
    assert not int(inst.query("*STB?")) & ESB  # nothing enabled in *ESE
    inst.write("*ESE 48;*SRE 32")
    stb = int(inst.query("*STB?"))
    assert stb & ESB and stb & MSS  # enabled events summarised, and that summary requests service
    assert int(inst.query("*ESR?")) == 48
    assert not int(inst.query("*STB?")) & ESB  # reading the ESR cleared it
    assert inst.query("SYST:ERR?").startswith("-113,")
    assert inst.query("SYST:ERR?").startswith("-222,")
    assert int(inst.query("*STB?")) & EAV == 0


def test_register_values_outside_0_to_255_are_refused(inst):
    inst.write("*ESE 256")
    assert inst.query("SYST:ERR?").startswith("-222,")
    inst.write("*SRE 255")
    assert int(inst.query("*SRE?")) == 255 & ~MSS  # bit 6 cannot be enabled
    assert inst.query("*TST?") == "0"


def test_cls_clears_events_and_errors_but_keeps_the_enable_masks(inst):
    inst.write("*ESE 32;*SRE 32;:NOPE")
    inst.write("*CLS")
    assert int(inst.query("*STB?")) == 0
    assert inst.query("SYST:ERR?") == '0,"No error"'
    assert inst.query("*ESE?;*SRE?") == "32;32"


def test_opc_completes_when_the_overlapped_operation_ends(inst, server):
    inst.write(":RUN;*OPC")
    assert not int(inst.query("*ESR?")) & OPC  # still running
    inst.write(":FIN")
    assert int(inst.query("*ESR?")) & OPC
    assert not int(inst.query("*ESR?")) & OPC  # reported once
    inst.write(":RUN;*OPC;*CLS;:FIN")  # *CLS cancels the armed *OPC
    assert not int(inst.query("*ESR?")) & OPC


def test_opc_query_waits_for_an_operation_another_connection_ends(inst, server):
    inst.write(":RUN")
    other = open_raw(server)
    ender = threading.Timer(0.2, lambda: other.write(":FIN"))
    try:
        ender.start()
        assert inst.query("*OPC?") == "1"  # answered only once :FIN came in on the other connection
        assert not server.instrument.running
    finally:
        ender.join()
        other.close()


def test_opc_query_during_a_pending_operation_times_out_and_the_late_reply_follows(inst, server):
    inst.write(":RUN")
    inst.timeout = 200
    with pytest.raises(pyvisa.errors.VisaIOError):
        inst.query("*OPC?")  # the parser waits: a later command on this connection would wait behind it
    other = open_raw(server)
    try:
        other.write(":FIN")
        other.query("*IDN?")
    finally:
        other.close()
    inst.timeout = 2000
    assert inst.read() == "1"  # the reply the instrument owed


def test_min_max_def_are_values_and_query_arguments(inst):
    inst.write(":LEV MAX")
    assert float(inst.query(":LEV?")) == 10
    inst.write(":LEVEL 2.5")
    assert [float(inst.query(f":LEV? {k}")) for k in ("MIN", "MAXIMUM", "DEF")] == [0, 10, 1]
    assert float(inst.query(":LEV?")) == 2.5  # the queries did not change it
    inst.write(":LEV DEF")
    assert float(inst.query(":LEV?")) == 1
    inst.write(":LEV 500m")  # engineering suffix: milli
    assert float(inst.query(":LEV?")) == 0.5
    inst.write(":LEV lots")
    assert inst.query("SYST:ERR?").startswith("-224,")


def test_an_over_long_message_is_dropped_as_too_much_data_and_the_link_still_serves(inst, server, monkeypatch):
    monkeypatch.setattr(server_module, "MAX_MESSAGE_BYTES", 1 << 20)  # the bound, made small to keep this quick
    inst.write_raw(b":LEV " + b"1" * ((1 << 20) + 1024) + b"\n")
    assert inst.query("*IDN?") == OverlappedInstrument.idn
    assert inst.query("SYST:ERR?").startswith("-223,")
    assert float(inst.query(":LEV?")) == 1  # the dropped message changed nothing


def test_realtime_makes_every_message_take_the_instruments_command_time():
    instrument = OverlappedInstrument(Bench(station_bench().chip, realtime=True))
    instrument.command_time_s = 0.02
    with InstrumentServer(instrument) as served:
        resource = open_raw(served)
        try:
            start = time.perf_counter()
            for _ in range(10):
                resource.query("*STB?")
            assert time.perf_counter() - start >= 10 * 0.02
        finally:
            resource.close()


def test_numbers_beyond_a_doubles_range_are_out_of_range_not_a_failure(inst):
    inst.write(":LEV 1e999")
    inst.write("*ESE 1e999")
    assert scpi_error_codes(inst) == [-222, -222]
    assert float(inst.query(":LEV?")) == 1 and inst.query("*ESE?") == "0"


def test_an_emulation_defect_is_queued_as_an_execution_error_and_the_connection_stays(inst):
    inst.write(":BROK")
    assert inst.query("*IDN?") == OverlappedInstrument.idn
    code, _, message = inst.query("SYST:ERR?").partition(",")
    assert code == "-200" and "emulation fault: RuntimeError: a defect of the emulation" in message
