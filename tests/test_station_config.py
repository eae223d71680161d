"""Station files are validated on load: a bad key or value is named, and nothing is connected."""


import pytest
import yaml

from instruments.station_config import SafetyError, StationConfigError, load_station_spec, parse_station
from sim_backend.chip import DEFAULT_CHIP_FILE
from tests.config_edits import edited

CONFIGS = DEFAULT_CHIP_FILE.parent


@pytest.fixture()
def raw():
    return yaml.safe_load((CONFIGS / "station.emulated.yaml").read_text())




def test_shipped_station_files_load():
    emulated = load_station_spec(CONFIGS / "station.emulated.yaml")
    assert len(emulated.devices_of("hall_bar")) == 12 and emulated.fast_path_wired
    assert emulated.devices_of("dw_track") == ["dw-1", "dw-2", "dw-3", "dw-4"]
    assert emulated.route("w5-1") == {"2A05", "2B06", "2C05", "2D06", "2E07", "2F08"}
    assert emulated.device("w10-4").max_current_a == pytest.approx(10e-3)
    lab = load_station_spec(CONFIGS / "station.example-lab.yaml")
    assert lab.instruments["source_meter"].address == "GPIB0::18::INSTR"
    assert lab.device("w10-1").max_current_a == pytest.approx(8e-3)  # the device's own limit wins


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("instruments", "source_meter", "model"), "Keithley2400",
         "instruments.source_meter.model: 'Keithley2400' has no source_meter adapter"),
        (("instruments", "pulse_generator"), KeyError, "instruments.pulse_generator: missing"),
        (("instruments", "switch_matrix", "address"), "", "instruments.switch_matrix.address: expected a VISA"),
        (("matrix", "rows", "I"), "pulse_generator.out", "matrix.rows.I: not a matrix row"),
        (("matrix", "rows", "A"), "pulse_generator.output", "matrix.rows.A: unknown terminal 'pulse_generator.output'"),
        (("matrix", "connect", "E"), "V3", "matrix.connect.E: unknown pad 'V3'"),
        (("safety", "max_current"), {"3um": "3mA"}, "devices[4].width: no safety.max_current for width '5um'"),
        (("safety", "max_current", "3um"), "3 V", "safety.max_current['3um']: cannot read '3 V'"),
        (("devices", 1, "pads", "I+"), 13, "devices[1].pads.I+: column must be 1–12, got 13"),
        (("devices", 1, "pads", "I+"), 1, "devices[1].pads.I+: slot 1 column 1 is already the pad of w3-1"),
        (("devices", 2, "id"), "w3-1", "devices[2].id: duplicate device id 'w3-1'"),
        (("devices", 2, "slot"), 9, "devices[2].slot: expected 1–6, got 9"),
        (("readout", "nplc"), "fast", "readout.nplc: cannot read 'fast'"),
        (("format",), "hil-station/2", "format: this version reads 'hil-station/1'"),
        (("magnet",), {"field": "10 mT"}, "magnet: unknown key"),
        (("instruments", "pulse_generator", "options", "channel"), 3,
         "instruments.pulse_generator.options.channel: expected one of [1, 2], got 3"),
        (("instruments", "source_meter", "options"), {"nplc": 1},
         "instruments.source_meter.options.nplc: unknown option for a Keithley2450 (known: none)"),
        # wrong types and values at nested keys: the message names the key path and the value
        (("instruments", "source_meter", "options"), 5, "instruments.source_meter.options: expected a mapping, got 5"),
        (("instruments", "source_meter", "model"), ["x"], "instruments.source_meter.model: ['x'] has no source_meter"),
        (("matrix", "rows"), ["A"], "matrix.rows: expected a mapping, got ['A']"),
        (("matrix", "rows", 1), "pulse_generator.out", "matrix.rows.1: not a matrix row"),
        (("matrix", "connect", "G"), "V+", "matrix.connect.G: row G carries no terminal in matrix.rows"),
        (("matrix", "forbidden"), ["1A01", "X1"], "matrix.forbidden: 'X1' is not a crosspoint pattern"),
        (("triggers", 0), {"from": "x"}, "triggers[0]: expected {from: ..., to: ...}, got {'from': 'x'}"),
        (("safety", "max_current", "3 V"), "3mA", "safety.max_current['3 V']: cannot read '3 V' as a quantity in m"),
        (("safety", "max_compliance"), "-1 V", "safety.max_compliance: must be a positive quantity in V, got '-1 V'"),
        (("safety",), KeyError, "safety: expected a mapping, got None"),
        (("devices",), [], "devices: expected a non-empty list, got []"),
        (("devices", 3), "w3-4", "devices[3]: expected a mapping, got 'w3-4'"),
        (("devices", 3, "colour"), "red",
         "devices[3].colour: unknown key (known: id, kind, max_current, pads, slot, width)"),
        (("devices", 3, "kind"), "memristor", "devices[3].kind: expected one of hall_bar, dw_track, got 'memristor'"),
        (("devices", 12, "width"), "1um", "devices[12].width: a DW track has no width"),
        (("safety", "dw_track"), KeyError, "devices[12].kind: a DW track needs the safety.dw_track limits"),
        (("safety", "dw_track", "max_voltage"), "1.2 A", "safety.dw_track.max_voltage: cannot read '1.2 A'"),
        (("devices", 3, "width"), "-3um", "devices[3].width: must be a positive quantity in m, got '-3um'"),
        (("devices", 3, "width"), KeyError, "devices[3].width: expected a quantity in m, got None"),
        (("devices", 3, "id"), "", "devices[3].id: expected a non-empty string, got ''"),
        (("devices", 3, "slot"), 1.0, "devices[3].slot: expected 1–6, got 1.0"),
        (("devices", 3, "pads"), {"I+": 1}, "devices[3].pads: expected columns for I+, I-, V+, V-, got {'I+': 1}"),
        (("devices", 3, "pads", "V-"), "4", "devices[3].pads.V-: column must be 1–12, got '4'"),
        (("devices", 3, "max_current"), "2 V", "devices[3].max_current: cannot read '2 V' as a quantity in A"),
        (("readout", "hall_step"), 0, "readout.hall_step: must be a positive quantity in ohm, got 0"),
        (("readout",), 5, "readout: expected a mapping, got 5"),
    ],
)
def test_bad_station_file_names_the_key_and_value(raw, path, value, message):
    with pytest.raises(StationConfigError) as err:
        parse_station(edited(raw, path, value))
    assert message in str(err.value)


def test_wiring_that_would_short_an_instrument_is_refused(raw):
    raw["matrix"]["connect"]["B"] = "I+"  # pulse output and its ground on the same pad
    with pytest.raises(SafetyError, match="rows A .* and B .* both go to pad I\\+"):
        parse_station(raw)


def test_read_current_above_a_device_limit_is_refused(raw):
    raw["readout"]["read_current"] = "5mA"
    with pytest.raises(SafetyError, match="read_current exceeds the limit of device w3-1"):
        parse_station(raw)


def test_compliance_above_the_station_maximum_is_refused(raw):
    raw["readout"]["compliance"] = "12 V"
    with pytest.raises(SafetyError, match="readout.compliance: 12.0 V exceeds safety.max_compliance 10.0 V"):
        parse_station(raw)


def test_a_device_limit_overrides_the_width_table(raw):
    raw["devices"][0]["max_current"] = "1.5mA"
    spec = parse_station(raw)
    assert spec.device("w3-1").max_current_a == pytest.approx(1.5e-3)
    assert spec.device("w3-2").max_current_a == pytest.approx(3e-3)
    assert spec.readout.read_current_a == pytest.approx(100e-6) and spec.max_pulse_width_s == pytest.approx(1e-3)


def test_a_station_file_that_is_not_a_mapping_is_refused():
    with pytest.raises(StationConfigError, match="station file: expected a mapping at the top level"):
        parse_station(["format", "hil-station/1"])
