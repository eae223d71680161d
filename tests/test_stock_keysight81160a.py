"""PyMeasure's stock ``Keysight81160A`` and its channels, every property and method, against the emulated 81160A.

The features are enumerated from the classes (:func:`stock_features`); :data:`FEATURES` marks each one
served (an exercise that sets it and asserts what is read back) or not served with the reason. A test
asserts the table covers exactly the classes' features, so the count below cannot go stale:

- 87 stock features (43 of the instrument, 44 of a channel); 71 work.
- 15 are Agilent 33500 commands the stock class inherits and the 81160A does not have (``FUNC:ARB…``,
  ``DATA:ARB``, ``DATA:VOL:CLE``, ``OUTP:TRIG``, ``PHAS:SYNC``, ``SOURce<n>:`` roots): the emulator answers
  them as the real instrument does, with ``-113 Undefined header`` (asserted below).
- 1 is inverted by the stock channel itself: ``burst_state`` maps ``[True, False]`` by index, so ``True``
  sends ``0`` and a reply of ``1`` reads ``False`` (asserted below); the emulator answers what it is sent.

Of the 72 features that are the 81160A's own commands, 71 work (98.6 %).
"""

import math
from collections.abc import Callable

import numpy as np
import pytest
from pymeasure.instruments import Channel, Instrument
from pymeasure.instruments.keysight import Keysight81160A
from pymeasure.instruments.keysight.keysight81160A import Keysight81160AChannel

from sim_backend.emulated.keysight81160a_emulator import EmulatedKeysight81160A
from sim_backend.emulated.server import InstrumentServer
from tests.emulation import connect

NOT_THE_81160A = "an Agilent 33500 command the 81160A does not have: -113 Undefined header, as on the instrument"
CONFIG_SUFFIXES = ("_values", "_get_command", "_set_command")


def stock_features(cls, base) -> list[str]:
    """The public properties and methods of a stock class, below ``base`` (config attributes left out)."""
    names = set()
    for klass in cls.__mro__:
        if klass is base:
            break
        names |= {name for name, value in vars(klass).items() if not name.startswith("_")
                  and not name.endswith(CONFIG_SUFFIXES) and not isinstance(value, Instrument.ChannelCreator)}
    return sorted(names)


def check(condition: bool) -> None:
    assert condition


def no_errors(gen):
    assert gen.check_errors() == []


# -- exercises of the instrument's features (``gen`` talks to channel 1 without a suffix) --------------------

def _gen_unit(gen, ch):
    gen.shape = "SIN"
    gen.amplitude = 2.0
    gen.amplitude_unit = "VRMS"
    assert gen.amplitude_unit == "VRMS" and gen.amplitude == pytest.approx(2.0 / (2 * math.sqrt(2)), rel=1e-6)


def _gen_errors(gen, ch):
    gen.write(":FOO:BAR")
    assert [int(code) for code, _ in gen.check_errors()] == [-113]


def _gen_clear(gen, ch):
    gen.write(":FOO:BAR")
    gen.clear()
    assert int(gen.next_error[0]) == 0


def _gen_display(gen, ch):
    gen.display = "HELLO"
    assert gen.ask(":DISP:TEXT?").strip() == '"HELLO"'
    gen.clear_display()
    assert gen.ask(":DISP:TEXT?").strip() == '""'


def _gen_pulse(gen, ch):
    gen.shape = "PULS"
    gen.pulse_period = 2e-6
    gen.pulse_width = 200e-9
    gen.pulse_transition = 5e-9
    assert (gen.pulse_period, gen.pulse_width, gen.pulse_transition) == pytest.approx((2e-6, 200e-9, 5e-9))
    gen.pulse_dutycycle = 25
    assert gen.pulse_dutycycle == pytest.approx(25) and gen.pulse_width == pytest.approx(500e-9)


def _gen_hold(gen, ch):
    gen.shape = "PULS"
    gen.pulse_hold = "DCYC"
    assert gen.pulse_hold == "DCYC"
    gen.pulse_dutycycle = 20
    gen.pulse_period = 4e-6  # the duty cycle is held: the width follows the period
    assert gen.pulse_width == pytest.approx(800e-9)


def _gen_reset(gen, ch):
    gen.frequency = 2e6
    gen.reset()
    assert gen.frequency == pytest.approx(1e6)


def _gen_trigger(gen, ch):
    gen.shape = "PULS"
    gen.write(":ARM:SOUR MAN;:OUTP ON")
    gen.trigger()
    gen.wait_for_trigger(timeout=2)
    assert gen.complete == "1"


def round_trip(attribute: str, value, on: str = "gen") -> Callable:
    """Set ``attribute`` of the instrument (``on="gen"``) or of channel 2 (``on="ch"``) and read it back."""
    def exercise(gen, ch):
        target = gen if on == "gen" else ch
        setattr(target, attribute, value)
        assert getattr(target, attribute) == (value if isinstance(value, str | bool) else pytest.approx(value))
    return exercise


INSTRUMENT: dict[str, Callable | str] = {
    "amplitude": round_trip("amplitude", 1.25), "amplitude_unit": _gen_unit,
    "arb_advance": NOT_THE_81160A, "arb_file": NOT_THE_81160A + " (its query, :FUNC:USER?, works)",
    "arb_filter": NOT_THE_81160A, "arb_srate": NOT_THE_81160A,
    "beep": lambda gen, ch: gen.beep(),
    "burst_mode": round_trip("burst_mode", "GAT"),
    "burst_ncycles": round_trip("burst_ncycles", 5), "burst_period": round_trip("burst_period", 1e-3),
    "burst_state": round_trip("burst_state", True),
    "check_errors": _gen_errors, "clear": _gen_clear, "clear_display": _gen_display,
    "complete": lambda gen, ch: check(gen.complete == "1"),
    "data_arb": NOT_THE_81160A, "data_volatile_clear": NOT_THE_81160A, "display": _gen_display,
    "ext_trig_out": NOT_THE_81160A,
    "frequency": round_trip("frequency", 2.5e6),
    "id": lambda gen, ch: check(gen.id.startswith("Agilent Technologies,81160A,")),
    "next_error": lambda gen, ch: check(gen.next_error == [0, '"No error"']),
    "offset": round_trip("offset", -0.5),
    "options": lambda gen, ch: check(gen.options == "002"),
    "output": round_trip("output", True), "output_load": round_trip("output_load", 75.0),
    "phase": round_trip("phase", 90.0), "phase_sync": NOT_THE_81160A,
    "pulse_dutycycle": _gen_pulse, "pulse_hold": _gen_hold, "pulse_period": _gen_pulse,
    "pulse_transition": _gen_pulse, "pulse_width": _gen_pulse,
    "ramp_symmetry": round_trip("ramp_symmetry", 30.0),
    "reset": _gen_reset,
    "shape": round_trip("shape", "RAMP"),
    "square_dutycycle": round_trip("square_dutycycle", 30.0),
    "status": lambda gen, ch: check(gen.status == "0"),
    "trigger": _gen_trigger, "wait_for_trigger": _gen_trigger,
    "trigger_source": round_trip("trigger_source", "EXT"),
    "voltage_high": round_trip("voltage_high", 1.5), "voltage_low": round_trip("voltage_low", -0.25),
}


# -- exercises of a channel's features (channel 2, so the suffix is exercised) ---------------------------------

def _ch_unit(gen, ch):
    ch.shape = "SQU"
    ch.amplitude = 2.0
    ch.amplitude_unit = "DBM"  # a square's rms is half its Vpp: 1 V rms into 50 Ω is 13.01 dBm
    assert ch.amplitude_unit == "DBM" and ch.amplitude == pytest.approx(10 * math.log10(1 / 50 / 1e-3), rel=1e-6)


def _ch_apply(method: str, shape: str, frequency: float, amplitude: float, offset: float) -> Callable:
    def exercise(gen, ch):
        getattr(ch, method)(*([offset] if method == "apply_dc" else [amplitude, offset] if method == "apply_noise"
                              else [frequency, amplitude, offset]))
        reply = ch.ask(":APPL2?").strip().strip('"')
        kind, _, numbers = reply.partition(" ")
        values = [float(v) for v in numbers.split(",")]
        assert kind == shape
        assert values[2] == pytest.approx(offset)
        if method != "apply_dc":
            assert values[1] == pytest.approx(amplitude)
        if method not in ("apply_dc", "apply_noise"):
            assert values[0] == pytest.approx(frequency)
    return exercise


def _ch_waveforms(gen, ch):
    assert ch.free_memory_slots == 4
    ch.waveform_volatile = [0.0, 0.5, 1.0, 0.5]
    assert list(ch.waveform_volatile) == [0.0, 0.5, 1.0, 0.5]
    ch.save_waveform([-1.0, 1.0, 2.0], "test")
    assert ch.waveforms == "TEST" and ch.free_memory_slots == 3
    assert ch.ask(":DATA2:ATTR:POIN? TEST").strip() == "3"
    ch.delete_waveform("test")
    assert ch.waveforms == "" and ch.free_memory_slots == 4


def _ch_limits(gen, ch):
    ch.limit_high = 1.0
    ch.limit_low = -0.5
    ch.limit_state_enabled = True
    assert (ch.limit_high, ch.limit_low, ch.limit_state_enabled) == (pytest.approx(1.0), pytest.approx(-0.5), True)
    ch.voltage_high = 2.0  # beyond the limit: refused
    assert [int(code) for code, _ in gen.check_errors()] == [-221]
    assert ch.voltage_high == pytest.approx(0.25)


def _ch_coupling(gen, ch):
    ch.coupling_enabled = True
    assert ch.coupling_enabled is True
    ch.frequency = 3.3e6
    assert gen.ch_1.frequency == pytest.approx(3.3e6)  # channel 1 copies channel 2
    ch.coupling_enabled = False


def _ch_pulse(gen, ch):
    ch.shape = "PULS"
    ch.pulse_period = 1e-6
    ch.pulse_width = 100e-9
    ch.pulse_transition = 2e-9
    ch.pulse_hold = "WIDT"
    assert (ch.pulse_period, ch.pulse_width, ch.pulse_transition) == pytest.approx((1e-6, 100e-9, 2e-9))
    assert ch.pulse_hold == "WIDT"
    ch.pulse_dutycycle = 40
    assert ch.pulse_dutycycle == pytest.approx(40) and ch.pulse_width == pytest.approx(400e-9)


def _ch_trigger(gen, ch):
    ch.trigger_mode = "MAN"
    ch.trigger_count = 3
    assert ch.trigger_mode == "MAN" and ch.trigger_count == 3
    assert ch.ask(":BURS2:STAT?").strip() == "1"  # more than one cycle switches the burst on


def _ch_burst(gen, ch):
    ch.burst_mode = "TRIG"
    ch.burst_ncycles = 7
    ch.burst_period = 2e-3
    assert (ch.burst_mode, ch.burst_ncycles, ch.burst_period) == ("TRIG", 7, pytest.approx(2e-3))


CHANNEL: dict[str, Callable | str] = {
    "amplitude": round_trip("amplitude", 0.8, on="ch"), "amplitude_unit": _ch_unit,
    "apply_dc": _ch_apply("apply_dc", "DC", 0, 0, -1.5), "apply_noise": _ch_apply("apply_noise", "NOIS", 0, 1.5, 0.2),
    "apply_pulse": _ch_apply("apply_pulse", "PULS", 2e5, 2.0, 0.5),
    "apply_sin": _ch_apply("apply_sin", "SIN", 4e8, 2.5, 0.0),
    "apply_square": _ch_apply("apply_square", "SQU", 1e7, 1.0, -0.5),
    "apply_user_waveform": _ch_apply("apply_user_waveform", "USER", 5e4, 3.0, 0.25),
    "arb_advance": NOT_THE_81160A, "arb_file": NOT_THE_81160A, "arb_filter": NOT_THE_81160A,
    "arb_srate": NOT_THE_81160A,
    "burst_mode": _ch_burst, "burst_ncycles": _ch_burst, "burst_period": _ch_burst,
    "burst_state": "the stock channel inverts it (its values [True, False] are mapped by index: True sends 0 and "
                   "a reply of 1 reads False); the emulator answers the command it gets (trigger_count switches "
                   "the burst as documented)",
    "coupling_enabled": _ch_coupling,
    "data_arb": NOT_THE_81160A, "data_volatile_clear": NOT_THE_81160A,
    "delete_waveform": _ch_waveforms, "free_memory_slots": _ch_waveforms, "save_waveform": _ch_waveforms,
    "waveform_volatile": _ch_waveforms, "waveforms": _ch_waveforms,
    "frequency": round_trip("frequency", 123456.0, on="ch"),
    "limit_high": _ch_limits, "limit_low": _ch_limits, "limit_state_enabled": _ch_limits,
    "offset": round_trip("offset", 0.125, on="ch"), "output": round_trip("output", True, on="ch"),
    "output_load": round_trip("output_load", 1e6, on="ch"),
    "phase": NOT_THE_81160A + " (the channel's form is SOURce2:PHAS; the instrument's PHAS2 works)",
    "pulse_dutycycle": _ch_pulse, "pulse_hold": _ch_pulse, "pulse_period": _ch_pulse,
    "pulse_transition": _ch_pulse, "pulse_width": _ch_pulse,
    "ramp_symmetry": round_trip("ramp_symmetry", 75.0, on="ch"), "shape": round_trip("shape", "USER", on="ch"),
    "square_dutycycle": round_trip("square_dutycycle", 12.5, on="ch"),
    "trigger_count": _ch_trigger, "trigger_mode": _ch_trigger,
    "voltage_high": round_trip("voltage_high", 1.0, on="ch"), "voltage_low": round_trip("voltage_low", -1.0, on="ch"),
}
FEATURES = {("instrument", name): value for name, value in INSTRUMENT.items()} | {
    ("channel", name): value for name, value in CHANNEL.items()}
SERVED = sorted(key for key, value in FEATURES.items() if callable(value))
NOT_SERVED = sorted(key for key, value in FEATURES.items() if not callable(value))


@pytest.fixture(scope="module")
def server():
    with InstrumentServer(EmulatedKeysight81160A()) as served:
        yield served


@pytest.fixture(scope="module")
def driver(server):
    gen = connect(server, Keysight81160A)
    yield gen
    gen.adapter.close()


@pytest.fixture()
def gen(driver):
    driver.write("*RST;*CLS")
    return driver


def test_the_table_lists_every_stock_feature_and_the_count_is_explicit():
    assert sorted(INSTRUMENT) == stock_features(Keysight81160A, Instrument)
    assert sorted(CHANNEL) == stock_features(Keysight81160AChannel, Channel)
    assert (len(FEATURES), len(SERVED), len(NOT_SERVED)) == (87, 71, 16)
    own = [key for key in FEATURES if FEATURES[key] is not NOT_THE_81160A and not (
        isinstance(FEATURES[key], str) and FEATURES[key].startswith(NOT_THE_81160A))]
    assert len(own) == 72
    assert len(SERVED) / len(own) >= 0.90  # of the features that are the 81160A's own commands


@pytest.mark.parametrize("feature", SERVED, ids=[f"{owner}.{name}" for owner, name in SERVED])
def test_served_stock_feature_reads_back_what_was_set(gen, feature):
    FEATURES[feature](gen, gen.ch_2)
    no_errors(gen)


NOT_SERVED_CALLS = {
    ("instrument", "arb_advance"): lambda gen: setattr(gen, "arb_advance", "TRIG"),
    ("instrument", "arb_file"): lambda gen: setattr(gen, "arb_file", "EXP_RISE"),
    ("instrument", "arb_filter"): lambda gen: setattr(gen, "arb_filter", "STEP"),
    ("instrument", "arb_srate"): lambda gen: setattr(gen, "arb_srate", 1e6),
    ("instrument", "data_arb"): lambda gen: gen.data_arb("TEST", [0, 1, 2]),
    ("instrument", "data_volatile_clear"): lambda gen: gen.data_volatile_clear(),
    ("instrument", "ext_trig_out"): lambda gen: setattr(gen, "ext_trig_out", True),
    ("instrument", "phase_sync"): lambda gen: gen.phase_sync(),
    ("channel", "arb_advance"): lambda gen: setattr(gen.ch_2, "arb_advance", "TRIG"),
    ("channel", "arb_file"): lambda gen: setattr(gen.ch_2, "arb_file", "EXP_RISE"),
    ("channel", "arb_filter"): lambda gen: setattr(gen.ch_2, "arb_filter", "STEP"),
    ("channel", "arb_srate"): lambda gen: setattr(gen.ch_2, "arb_srate", 1e6),
    ("channel", "data_arb"): lambda gen: gen.ch_2.data_arb("TEST", [0, 1, 2]),
    ("channel", "data_volatile_clear"): lambda gen: gen.ch_2.data_volatile_clear(),
    ("channel", "phase"): lambda gen: setattr(gen.ch_2, "phase", 45.0),
    ("channel", "burst_state"): lambda gen: setattr(gen.ch_2, "burst_state", True),
}


@pytest.mark.parametrize("feature", NOT_SERVED, ids=[f"{owner}.{name}" for owner, name in NOT_SERVED])
def test_a_feature_not_served_is_refused_as_the_instrument_refuses_it(gen, feature):
    NOT_SERVED_CALLS[feature](gen)
    if feature == ("channel", "burst_state"):
        assert gen.ask(":BURS2:STAT?").strip() == "0" and gen.ch_2.burst_state is True  # inverted both ways
        return
    assert [int(code) for code, _ in gen.check_errors()] == [-113]


def test_a_burst_set_up_with_the_stock_driver_plays_its_cycles(server, gen):
    ch = gen.ch_1
    ch.apply_pulse(1e5, 1.0, 0.5)
    ch.pulse_width = 2e-6
    ch.trigger_mode = "MAN"
    ch.trigger_count = 2
    ch.output = True
    gen.trigger()
    assert gen.complete == "1"
    _, levels, durations = server.instrument.played[-1]
    np.testing.assert_allclose(levels, [2.0, 0.0] * 2)  # programmed for 50 Ω: twice the level at the open circuit
    np.testing.assert_allclose(durations, [2e-6, 8e-6] * 2)
    no_errors(gen)
