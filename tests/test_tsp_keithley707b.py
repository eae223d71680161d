"""The emulated 707B's TSP over TCP (raw pyvisa, and QCoDeS's stock Keithley 3706A driver), from the reference
manual's statement forms: quotes, separators, channel lists and ranges, exclusive closes, connect rules,
forbidden channels, print, the error queue, and refusals that never leave a client waiting."""


import pytest

from sim_backend.emulated.bench import Bench
from sim_backend.emulated.keithley707b_emulator import FORBIDDEN_ERROR, RELAY_SETTLE_S, EmulatedKeithley707B
from sim_backend.emulated.server import InstrumentServer
from sim_backend.emulated.tsp_interpreter import MAX_MESSAGE_CHARS
from tests.emulation import open_raw

IDN = "Keithley Instruments Inc., Model 707B, 04110429, 1.0.2"


class RecordingBench(Bench):
    """A bench with no chip devices that remembers every closed set the matrix reports."""

    def __init__(self) -> None:
        super().__init__(chip=None)
        self.history: list[frozenset[str]] = []

    def set_closed(self, crosspoints) -> None:
        super().set_closed(crosspoints)
        self.history.append(self.closed)


@pytest.fixture(scope="module")
def served():
    bench = RecordingBench()
    instrument = EmulatedKeithley707B(bench)
    with InstrumentServer(instrument) as server:
        resource = open_raw(server, timeout_ms=2000)
        try:
            yield instrument, server, resource, bench
        finally:
            resource.close()


@pytest.fixture()
def tsp(served):
    """A raw pyvisa session to a freshly reset 707B with an empty error queue."""
    instrument, _, resource, bench = served
    resource.write("*RST")
    resource.write("*CLS")
    assert resource.query("print(errorqueue.count)") == "0.00000e+00"
    bench.history.clear()
    return resource


def closed(tsp, scope="allslots"):
    reply = tsp.query(f'print(channel.getclose("{scope}"))')
    return set() if reply == "nil" else set(reply.split(";"))


def errors(tsp):
    """Every queued error as ``(code, message)``, read with ``errorqueue.next()``; the queue ends empty."""
    found = []
    for _ in range(int(float(tsp.query("print(errorqueue.count)")))):
        code, message, _, _ = tsp.query("print(errorqueue.next())").split("\t")
        found.append((int(float(code)), message))
    return found


def test_both_quote_styles_and_the_separators_between_statements(tsp):
    tsp.write("channel.close('1A01')")
    tsp.write('channel.close("1B02"); channel.close(\'1C03\') channel.close "1D04"')  # ; space and f"s"
    assert closed(tsp) == {"1A01", "1B02", "1C03", "1D04"}
    tsp.write('channel.open("1A01")\nprint(channel.getclose("slot1"))')  # a newline ends a message
    assert tsp.read() == "1B02;1C03;1D04"
    tsp.write("print('it''s') print(2)")  # 'it''s' is two strings in Lua: a syntax error, nothing of it runs
    assert [tsp.read(), tsp.read()] == ["nil", "nil"]  # but each print answers, so that no client waits
    assert errors(tsp)[0][0] == -285
    tsp.write('print("a\\tb", \'x\') print(2)')  # two prints in one message: two lines
    assert (tsp.read(), tsp.read()) == ("a\tb\tx", "2.00000e+00")
    assert errors(tsp) == []


def test_channel_ranges_lists_slots_and_the_numeric_row_form(tsp):
    tsp.write('channel.close("1A01:1A03")')  # row A, columns 1 to 3
    assert closed(tsp) == {"1A01", "1A02", "1A03"}
    tsp.write('channel.exclusiveclose("2B05:2C06")')  # the rows-by-columns block
    assert closed(tsp) == {"2B05", "2B06", "2C05", "2C06"}
    tsp.write("channel.close('3a01, 3B02;3C03')")
    assert closed(tsp, "slot3") == {"3A01", "3B02", "3C03"}  # commas or semicolons, any case
    assert tsp.query("print(channel.createspecifier(1, 1, 5))") == "1A05"  # row 1 is A on these cards
    tsp.write("channel.close(channel.createspecifier(1, 1, 5))")
    assert closed(tsp, "1A05,1A06") == {"1A05"}
    tsp.write("channel.open('slot2')")
    assert closed(tsp) == {"3A01", "3B02", "3C03", "1A05"}
    for bad in ("1A05:1A01", "1A01:2A01", "1A13", "1I01", "7A01", "allslots", "1A01,,1A02", "", "1105"):
        tsp.write(f"channel.close('{bad}')")
    found = errors(tsp)
    assert [code for code, _ in found] == [-286] * 9
    assert "1A05:1A01" in found[0][1] and "allslots is not allowed" in found[5][1]
    tsp.write("channel.open('allslots')")
    assert closed(tsp) == set()


def test_exclusive_close_and_exclusive_slot_close(tsp):
    tsp.write("channel.close('1A01,2A01')")
    tsp.write("channel.exclusiveslotclose('1B02')")  # slot 1 becomes exactly 1B02; slot 2 is left alone
    assert closed(tsp) == {"1B02", "2A01"}
    tsp.write("channel.exclusiveclose('3C03')")  # every slot: only 3C03
    assert closed(tsp) == {"3C03"}
    tsp.write("channel.exclusiveclose('')")  # the manual: an empty list opens everything
    assert closed(tsp) == set()
    tsp.write("channel.exclusiveslotclose('slot1')")
    assert errors(tsp)[0][0] == -286


def test_channel_reset_opens_and_restores_the_listed_channels_only(tsp):
    tsp.write("channel.close('1A01,2A01'); channel.setforbidden('1A02,2A02'); channel.setdelay('slot1', 0.5)")
    tsp.write("channel.reset('slot1')")
    assert closed(tsp) == {"2A01"}
    assert tsp.query("print(channel.getforbidden('allslots'))") == "2A02"
    assert tsp.query("print(channel.getdelay('1A01'))") == "0.00000e+00"


@pytest.mark.parametrize("rule, phases", [
    ("channel.BREAK_BEFORE_MAKE", [{"1B01"}, {"1B01", "1A02"}]),
    ("channel.MAKE_BEFORE_BREAK", [{"1A01", "1B01", "1A02"}, {"1B01", "1A02"}]),
    ("channel.OFF", [{"1B01", "1A02"}]),
])
def test_connect_rules_order_the_switching_phases_on_the_bench_and_its_clock(served, tsp, rule, phases):
    _, _, _, bench = served
    tsp.write(f"channel.close('1A01,1B01'); channel.connectrule = {rule}")
    assert tsp.query("print(channel.connectrule)") == {"channel.BREAK_BEFORE_MAKE": "1.00000e+00",
                                                       "channel.MAKE_BEFORE_BREAK": "2.00000e+00",
                                                       "channel.OFF": "0.00000e+00"}[rule]
    bench.history.clear()
    start = bench.clock_s
    tsp.write("channel.exclusiveclose('1B01,1A02')")
    assert closed(tsp) == {"1B01", "1A02"}
    assert bench.history == [frozenset(p) for p in phases]  # the bench sees every intermediate state
    assert bench.clock_s - start == pytest.approx(len(phases) * RELAY_SETTLE_S)
    tsp.write("reset()")
    assert tsp.query("print(channel.connectrule)") == "1.00000e+00"  # reset restores break before make


def test_sequential_closing_and_user_delays_take_their_time(served, tsp):
    _, _, _, bench = served
    tsp.write("channel.connectsequential = channel.ON; channel.setdelay('1A01', 0.25)")
    assert tsp.query("print(channel.connectsequential, channel.getdelay('1A01,1A02'))") \
        == "1.00000e+00\t2.50000e-01,0.00000e+00"
    counts = [int(n) for n in tsp.query("print(channel.getcount('1A01,1A04'))").split(",")]
    start = bench.clock_s
    tsp.write("channel.close('1A01:1A03')")  # one relay at a time: three settles, plus 1A01's delay
    assert closed(tsp) == {"1A01", "1A02", "1A03"}
    assert len(bench.history) == 3
    assert bench.clock_s - start == pytest.approx(3 * RELAY_SETTLE_S + 0.25)
    tsp.write("channel.setdelay('1A01', -1)")
    assert errors(tsp)[0][0] == -286
    assert tsp.query("print(channel.getdelay('1A01'))") == "2.50000e-01"  # unchanged
    assert tsp.query("print(channel.getcount('1A01,1A04'))") == f"{counts[0] + 1},{counts[1]}"  # closures


def test_forbidden_channels_are_refused_with_the_instruments_error_and_nothing_changes(served, tsp):
    _, _, _, bench = served
    tsp.write("channel.close('2A01'); channel.setforbidden('1A01:1A03')")
    assert tsp.query("print(channel.getforbidden('slot1'))") == "1A01,1A02,1A03"
    assert tsp.query("print(channel.getforbidden('2A01'))") == "nil"
    bench.history.clear()
    for statement in ("channel.close('1B01,1A02')", "channel.exclusiveclose('1A03')",
                      "channel.exclusiveslotclose('1A01')"):
        tsp.write(statement)
    assert closed(tsp) == {"2A01"} and bench.history == []  # nothing switched, not even 1B01
    found = errors(tsp)
    assert [code for code, _ in found] == [FORBIDDEN_ERROR] * 3
    assert "1A02 forbidden to close" in found[0][1]
    tsp.write("channel.clearforbidden('1A02'); channel.close('1A02')")
    assert closed(tsp) == {"2A01", "1A02"}
    assert tsp.query("print(channel.getforbidden('allslots'))") == "1A01,1A03"
    tsp.write("reset()")
    assert tsp.query("print(channel.getforbidden('allslots'))") == "nil"


def test_print_numbers_strings_and_unknown_names(tsp):
    assert tsp.query("print(1, -2.5e-3, 'text', nil, true, undefined_name)") \
        == "1.00000e+00\t-2.50000e-03\ttext\tnil\ttrue\tnil"
    assert tsp.query("print(format.asciiprecision)") == "6.00000e+00"  # the manual's default: 6 digits
    tsp.write("format.asciiprecision = 10")
    assert tsp.query("print(format.asciiprecision, 0x10)") == "1.000000000e+01\t1.600000000e+01"
    tsp.write("format.asciiprecision = 17")
    assert errors(tsp)[0][0] == -286
    assert tsp.query("print(format.asciiprecision)") == "1.000000000e+01"  # unchanged
    tsp.write("reset()")
    assert tsp.query("print(format.asciiprecision)") == "6.00000e+00"
    tsp.write("x = channel.getclose('allslots'); code, message = errorqueue.next()")
    assert tsp.query("print(x, code, message)") == "nil\t0.00000e+00\tQueue Is Empty"
    assert tsp.query("print(localnode.model, localnode.serialno, localnode.revision, localnode.description)") \
        == "707B\t04110429\t1.0.2\tKeithley 707B #04110429"
    assert tsp.query("print(slot[1].idn, slot[6].idn == nil)") == "nil"  # == is an operator: not served
    assert errors(tsp)[0][0] == -285
    assert tsp.query("print(slot[6].idn)") == "7174A,8x12 Low Current Matrix,01.00a,04110430"
    assert tsp.query("waitcomplete() print(waitcomplete())") == ""


def test_error_queue_reads_counts_and_clears(tsp):
    tsp.write("no_such_function()")
    tsp.write("channel.open('9Z99')")
    assert tsp.query("print(errorqueue.count)") == "2.00000e+00"
    code, message, severity, node = tsp.query("print(errorqueue.next())").split("\t")
    assert (code, message) == ("-2.86000e+02", "TSP Runtime error at line 1: attempt to call global "
                                                   "`no_such_function' (a nil value)")
    assert (severity, node) == ("2.00000e+01", "1.00000e+00")
    tsp.write("errorqueue.clear()")
    assert tsp.query("print(errorqueue.next())") == "0.00000e+00\tQueue Is Empty\t0.00000e+00\t1.00000e+00"


@pytest.mark.parametrize("statement, code, text", [
    ("for i = 1, 3 do channel.close('1A01') end", -285, "near `for' (not served by the emulation)"),
    ("channel.close('1A01') x = = 1", -285, "unexpected symbol near `='"),  # nothing of it runs
    ("channel.close('1A01", -285, "unfinished string"),
    ("channel.close('1A01') nosuch.f() channel.close('1B01')", -286, "attempt to index global `nosuch'"),
    ("channel.close(1A01)", -285, "malformed number near `1A01'"),
    ("channel.close('1A01');; reset()", -285, "unexpected symbol near `;'"),  # no empty statement in Lua 5.0
    ("channel = nil", -286, "cannot be assigned"),
    ("localnode.model = '2450'", -286, "cannot set read-only attribute `model'"),
    ("x" * (MAX_MESSAGE_CHARS + 1), -285, "longer than"),
    ("format.asciiprecision = 0x" + "F" * 300, -285, "malformed number"),  # beyond a double
    ("channel.close('\\\u00b2')", -285, "invalid escape sequence"),  # "²" is a digit to str.isdigit, not to Lua
])
def test_outside_the_subset_is_the_instruments_error_and_the_next_query_answers(tsp, statement, code, text):
    tsp.encoding = "latin-1"  # a message may carry a non-ASCII byte, and the error message quotes it
    tsp.write(statement)
    assert tsp.query("*IDN?") == IDN  # no hang
    found = errors(tsp)
    assert len(found) == 1 and found[0][0] == code and text in found[0][1]
    # a syntax error runs nothing; a runtime error stops there, with the statements before it done
    assert closed(tsp) == ({"1A01"} if "nosuch" in statement else set())


@pytest.mark.parametrize("query", ["print(1 + 2)", "print(slot[1].interlock.state)", "print(x.y)",
                                   "print(channel.getclose('1Z01'))", "print(" + "a." * 40 + "b)"])
def test_a_failing_print_answers_nil(tsp, query):
    assert tsp.query(query) == "nil"
    assert len(errors(tsp)) == 1


def test_prints_a_failing_message_did_not_run_answer_nil_each(tsp):
    tsp.write("print('first') nosuch() print('second') print('third')")  # a runtime error at statement 2
    assert [tsp.read() for _ in range(3)] == ["first", "nil", "nil"]
    tsp.write("print('first') print('second' +)")  # a syntax error: nothing runs
    assert [tsp.read() for _ in range(2)] == ["nil", "nil"]
    assert [code for code, _ in errors(tsp)] == [-286, -285]


def test_common_commands_and_the_status_model(tsp):
    assert tsp.query("*IDN?") == IDN
    assert tsp.query("*OPC?") == "1"
    tsp.write("*ESE 255")
    tsp.write("nonsense")  # a syntax error: an execution error in the event register
    assert int(tsp.query("*STB?")) & 0b100100 == 0b100100  # EAV and ESB
    assert int(tsp.query("*ESR?")) & 16
    tsp.write("*ESE 256")
    assert (-222, "Data out of range; *ESE register value 256 outside 0 to 255") in errors(tsp)
    assert tsp.query("print(errorqueue.count)") == "0.00000e+00"


def test_labels_states_types_and_the_instrument_settings(served, tsp):
    _, _, _, bench = served
    tsp.write("channel.setlabel('1A01', 'start'); channel.close('start, 1B02')")  # a label names its channel
    assert closed(tsp) == {"1A01", "1B02"}
    assert tsp.query("print(channel.getlabel('1A01,1A02'))") == "start,1A02"  # unlabelled: the channel's name
    assert tsp.query("print(channel.getstate('1A01,1A02'), channel.gettype('1A01'))") == "1,0\t1"
    assert tsp.query("print(channel.getstate('1A01', channel.IND_CLOSED), channel.TYPE_SWITCH)") == "1\t1.00000e+00"
    tsp.write("channel.setlabel('1A02', 'start')")  # labels are unique
    tsp.write("channel.setlabel('1A03', '1B01')")  # and never a channel's name
    assert [code for code, _ in errors(tsp)] == [-286, -286]
    tsp.write("channel.setlabel('1A01', '')")  # an empty label clears it
    assert tsp.query("print(channel.getlabel('1A01'))") == "1A01"
    start = bench.clock_s
    tsp.write("delay(0.5)")
    assert tsp.query("print(gpib.address)") == "1.60000e+01" and bench.clock_s - start == pytest.approx(0.5)
    tsp.write("gpib.address = 26; delay(0); gpib.address = 31")
    assert tsp.query("print(gpib.address)") == "2.60000e+01"  # the statement before the error was done
    tsp.write("reset()")
    assert tsp.query("print(gpib.address)") == "2.60000e+01"  # nonvolatile: reset keeps it
    tsp.write("gpib.address = 16")
    assert [code for code, _ in errors(tsp)] == [-286]


def test_qcodes_3706a_statement_forms_and_what_its_driver_can_do_with_a_707b(served, tsp):
    """QCoDeS has no 707B driver. Its TSP switch driver (Keithley 3706A) connects, reads the cards and sets the
    connect rule; every method that validates channel names first asks for ``slot[X].rows.matrix``, a 3700A
    attribute the 707B lacks (its validator also builds numeric-row names), so those fail here as on the
    instrument. The statement forms it sends are served, in its single quotes, through its own ``ask``."""
    Keithley3706A = pytest.importorskip("qcodes.instrument_drivers.Keithley").Keithley3706A
    instrument, server, _, _ = served
    switch = Keithley3706A("switch707b", server.address, visalib="@py", timeout=2)
    try:
        assert switch.get_idn()["model"] == "707B"
        assert switch.get_switch_cards()[0]["model"] == "7174A"
        switch.channel_connect_rule("MAKE_BEFORE_BREAK")
        assert switch.channel_connect_rule() == "MAKE_BEFORE_BREAK"
        assert switch.gpib_address() == 16
        instrument.clear_errors()  # connecting read slot[X].interlock.state: nil, with a -286 each
        with pytest.raises(ValueError):
            switch.close_channel("1A01")  # slot[1].rows.matrix is nil: nothing was closed
        assert [code for code, _ in instrument.errors] == [-286] and not instrument.closed
        instrument.clear_errors()
        switch.write("channel.close('1A01:1A03')")
        switch.write("channel.exclusiveslotclose('1B02')")
        switch.write("channel.setforbidden('1C01')")
        switch.write("channel.setdelay('1A01', 0.001)")
        assert switch.ask("channel.getclose('allslots')") == "1B02"
        assert switch.ask("channel.getforbidden('allslots')") == "1C01"
        assert [float(x) for x in switch.ask("channel.getdelay('1A01,1A02')").split(",")] == [0.001, 0.0]
        switch.write("channel.reset('allslots')")
        assert switch.ask("channel.getclose('allslots')") == "nil"
        assert switch.ask("channel.getforbidden('allslots')") == "nil"
        assert not instrument.errors
    finally:
        switch.close()
