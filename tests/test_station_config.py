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
    assert len(emulated.devices) == 12 and emulated.fast_path_wired
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
