"""Chip files are validated on load: a bad key or value is named, and no chip is built."""

import json
import subprocess
import sys

import pytest
import yaml

from sim_backend import ChipConfigError, load_chip
from sim_backend.chip import DEFAULT_CHIP_FILE
from tests.config_edits import edited


@pytest.fixture()
def raw():
    return yaml.safe_load(DEFAULT_CHIP_FILE.read_text())




@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("material", "delta"), -40, "material.delta: must be a positive quantity, got -40"),
        (("material", "thickness"), "5 mA", "material.thickness: cannot read '5 mA' as a quantity in m"),
        (("material", "jc0"), KeyError, "material.jc0: missing"),
        (("material", "jcO"), 1e11, "material.jcO: unknown key"),
        (("variation", "ic0"), -0.1, "variation.ic0: must be ≥ 0, got -0.1"),
        (("devices", 2, "width"), "3 kg", "devices[2].width: cannot read '3 kg'"),
        (("devices", 2, "width"), "0um", "devices[2].width: must be a positive quantity, got '0um'"),
        (("devices", 5, "id"), "w3-1", "devices[5].id: duplicate device id 'w3-1'"),
        (("devices",), [], "devices: expected a non-empty list"),
        (("seed",), "abc", "seed: expected a non-negative integer, got 'abc'"),
        (("format",), "hil-chip/9", "format: this version reads 'hil-chip/1', got 'hil-chip/9'"),
        (("reset", "width"), "100 V", "reset.width: cannot read '100 V'"),
        (("colour",), "blue", "colour: unknown key"),
    ],
)
def test_bad_chip_config_names_the_key_and_value(raw, path, value, message):
    with pytest.raises(ChipConfigError) as err:
        load_chip(edited(raw, path, value))
    assert message in str(err.value)


def test_bad_chip_file_on_disk(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ChipConfigError, match="does not exist"):
        load_chip(missing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("material: [1, 2\n")
    with pytest.raises(ChipConfigError, match="not valid YAML"):
        load_chip(broken)


def test_explicit_device_parameters_replace_the_draws(raw):
    raw["devices"][0].update({"ic0": "2mA", "delta": 55, "r_ch": "1.2 kohm"})
    chip = load_chip(raw)
    assert float(chip.ic0_a[0]) == pytest.approx(2e-3)
    assert float(chip.delta[0]) == pytest.approx(55)
    assert float(chip.r_ch_ohm[0]) == pytest.approx(1200)
    # the other devices keep the values drawn from the seed
    assert float(chip.ic0_a[1]) == pytest.approx(float(load_chip().ic0_a[1]))


def test_units_in_config_are_parsed_to_si(raw):
    raw["reset"]["width"] = "0.2 ms"
    raw["devices"][0]["width"] = "3000 nm"
    chip = load_chip(raw)
    assert chip.reset_width_s == pytest.approx(2e-4)
    assert float(chip.width_m[0]) == pytest.approx(3e-6)


def test_benchmarks_print_json_rows():
    out = subprocess.run([sys.executable, "-m", "benchmarks", "--json", "--only", "sampling"],
                         capture_output=True, text=True, check=True)
    rows = {row["name"]: row for row in json.loads(out.stdout)}
    for size in ("1e+02", "1e+04", "1e+06"):
        for name in (f"sampling_sim_backend_{size}", f"sampling_chip_{size}", f"sampling_bernoulli_sigmoid_{size}",
                     f"sampling_sim_backend_{size}_bandwidth"):
            row = rows[name]
            assert row["unit"] == "s" and row["value"] > 0 and row["reference"] > 0
            # the ratio is the median of the repetitions' own ratios, within their spread
            assert row["spread"]["min"] <= row["ratio"] <= row["spread"]["max"]


@pytest.mark.slow  # about 30 s; CI also runs the installed wheel's demo
def test_demo_runs_end_to_end_on_the_emulated_station(tmp_path):
    """hil demo: characterize → fit → report → train with the emulated devices in the loop."""
    out = subprocess.run([sys.executable, "-m", "hil.cli", "demo", "--out", str(tmp_path), "--epochs", "2",
                          "--hidden", "24"], capture_output=True, text=True, check=True).stdout
    for width in (3, 5, 10):
        for k in range(1, 5):
            assert f"w{width}-{k}" in out
    assert "bias_sweep: completed" in out and "hysteresis_loop: completed" in out
    for name in ("characterization.h5", "training.h5", "report/switching_curves.png", "report/size_trends.png"):
        assert (tmp_path / name).is_file(), name
    info = json.loads(subprocess.run([sys.executable, "-m", "hil.cli", "info", str(tmp_path / "training.h5"),
                                      "--json"], capture_output=True, text=True, check=True).stdout)
    training = info["training"]
    assert training["backend"] == "hardware" and training["dataset"] == "digits"
    # two epochs are enough to learn well above chance (10 %) with the devices in the loop
    assert training["test_accuracy"] > 0.5 and training["stochastic_accuracy"] > 0.5
    # every device trial is in the session: the curves the backend measured first (12 devices x 16 points x 50)
    # and every sample of the training; each sample's reset and (non-zero) bias pulse reached the emulated devices,
    # each between its two balancing lobes (the default station's DC block)
    pulses, cycles = training["pulses"], training["emulator_cycles"]
    # (and the replays of trials whose reset failed or read as failed: a few in a thousand on these devices)
    assert 12 * 16 * 50 + pulses <= training["trials_recorded"] < 1.02 * (12 * 16 * 50 + pulses) and pulses > 10_000
    assert pulses < cycles <= 6 * pulses
