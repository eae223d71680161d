"""Wiring a real bench would accept: how the pulse generator shares the pads with the source meter.

A station whose wiring would shunt the reads is refused at load with the reason; a DC block that droops, or a
compliance a pulse could exceed, is warned about with its numbers; the emulated bench does to reads and pulses what
the declared wiring does (a direct coupling's shunt, a DC block's high-pass and baseline, the source meter's
clamp); and on the default station (a DC block) the fast path still measures the chip's own switching probability.
The chip behind the benches is the ideal one: the electrical models are what is judged, exactly, not the devices' own
non-idealities."""

import dataclasses
import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
import yaml
from pymeasure.instruments.keithley import Keithley2450 as StockKeithley2450
from pymeasure.instruments.keysight import Keysight81160A as StockKeysight81160A
from scipy import stats

from instruments.adapters import open_connection
from instruments.config_files import EMULATED_STATION_FILE, IDEAL_CHIP_FILE, PROTOCOL_FILES
from instruments.station import BALANCE_LEVEL, Station, balanced_span
from instruments.station_config import (
    SafetyError,
    StationWarning,
    Wiring,
    load_station_spec,
    parse_station,
)
from instruments.trials import run_trials_fast
from sim_backend.chip import load_chip
from sim_backend.emulated.bench import Bench
from sim_backend.emulated.probe_station import EmulatedStation
from sim_backend.sot import exact_i50

LAB_STATION_FILE = EMULATED_STATION_FILE.parent / "station.example-lab.yaml"
PULSE_S = 10e-6
READ_A = 100e-6


def station_raw(edit=None):
    raw = yaml.safe_load(EMULATED_STATION_FILE.read_text())
    if edit is not None:
        edit(raw)
    return raw


def spec_with(edit=None):
    return parse_station(station_raw(edit), EMULATED_STATION_FILE.resolve())


def direct(raw):
    raw["wiring"] = {"coupling": "direct", "channel_resistance": {"min": "250 ohm", "max": "1.2 kohm"}}


def logs(emulated):
    return {role: list(inst.log) for role, inst in emulated.instruments.items()}


def dc_bench(capacitance_f, device="w3-1", off_impedance_ohm=math.inf):
    """A bench of the embedded chip behind a DC block of ``capacitance_f``, ``device`` routed, the source meter
    sourcing the read current (10 V limit) and the generator's output on."""
    spec = load_station_spec(EMULATED_STATION_FILE)
    wiring = Wiring("dc_block", capacitance_f, off_impedance_ohm=off_impedance_ohm)
    bench = Bench(load_chip(IDEAL_CHIP_FILE), {d: spec.route(d) for d in spec.devices}, wiring=wiring)
    bench.set_closed(spec.route(device))
    bench.set_source_meter(True, "CURR", READ_A, 10.0)
    bench.set_generator_output(1, True)
    return bench


# ---- refused or warned at load -------------------------------------------------------------------------------------


def test_the_shipped_stations_load_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for path in (EMULATED_STATION_FILE, LAB_STATION_FILE):
            wiring = load_station_spec(path).wiring
            assert wiring.blocks_dc and wiring.capacitance_f == pytest.approx(100e-6)
            # the default station's block droops little over the reset through the lowest channel declared
            assert wiring.droop(100e-6, wiring.min_channel_ohm) < 0.005


def test_a_station_whose_generator_would_shunt_the_fast_paths_reads_is_refused_with_the_reason(tmp_path):
    with pytest.raises(SafetyError) as refused:
        spec_with(direct)
    message = str(refused.value)
    assert message.startswith("wiring.coupling: direct, with the fast path wired (triggers)")
    assert "the pulse generator's 50 Ω output is across the channel during the fast path's reads" in message
    assert "takes 83 %–96 % of the 100 µA read current of its 250 Ω–1.2 kΩ channels" in message
    assert "declare a DC block" in message and "\n" not in message
    # without the trigger line (the naive path only, which switches the generator's output off to read) it loads
    assert spec_with(lambda raw: (direct(raw), raw.update(triggers=[]))).wiring.coupling == "direct"
    # ... unless the generator's output stays terminated when off: then every read is shunted

    def terminated(raw):
        direct(raw)
        raw.update(triggers=[])
        raw["wiring"]["output_off"] = "50 ohm"

    with pytest.raises(SafetyError, match=r"wiring.output_off: 50 Ω: coupled directly, .* even when off, and takes "
                                          r"83 %–96 % of the 100 µA read current"):
        spec_with(terminated)
    # the command line refuses the file in one line, exit 2, before anything is started
    station = tmp_path / "direct.yaml"
    raw = station_raw(direct)
    raw["chip"] = str(EMULATED_STATION_FILE.parent / raw["chip"])
    station.write_text(yaml.safe_dump(raw))
    result = subprocess.run([sys.executable, "-m", "hil.cli", "characterize", "--station", station, "--protocol",
                             PROTOCOL_FILES / "channel-resistance.yaml", "--out", tmp_path / "run.h5"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "wiring.coupling: direct, with the fast path wired" in result.stderr
    assert not (tmp_path / "run.h5").exists()


def test_a_dc_block_that_droops_is_warned_about_with_its_numbers():
    def small(raw):
        raw["wiring"]["capacitance"] = "10uF"

    with pytest.warns(StationWarning) as caught:
        spec = spec_with(small)
    assert spec.wiring.capacitance_f == pytest.approx(10e-6)  # loaded: a warning, not a refusal
    message = str(caught[0].message)
    # through the lowest channel, 250 Ω: τ = 300 Ω × 10 µF = 3 ms
    assert message.startswith("wiring.capacitance: the 10 µF DC block droops 3.3 % over the 100 µs reset and 28 % "
                              "over a 1 ms pulse (safety.max_pulse_width) through a 250 Ω channel")
    assert "τ = (250 Ω + 50 Ω) × 10 µF = 3 ms" in message and "65 µF or more keeps it within 5 %" in message


@pytest.mark.parametrize(("key", "value", "message"), [
    ("coupling", "bias_tee", "wiring.coupling: expected one of direct, dc_block, got 'bias_tee'"),
    ("capacitance", KeyError, "wiring.capacitance: expected a quantity in F, got None (a DC block needs its series "
                              "capacitance)"),
    ("capacitance", "10 uH", "wiring.capacitance: cannot read '10 uH' as a quantity in F"),
    ("output_off", "closed", "wiring.output_off: cannot read 'closed' as a quantity in ohm"),
    ("channel_resistance", {"min": "2 kohm", "max": "1 kohm"}, "wiring.channel_resistance.min: min 2000 ohm is "
                                                               "above max 1000 ohm"),
    ("relays", "A", "wiring.relays: unknown key (known: capacitance, channel_resistance, coupling, output_impedance, "
                    "output_off)"),
])
def test_a_bad_wiring_key_is_named(key, value, message):
    def edit(raw):
        if value is KeyError:
            del raw["wiring"][key]
        else:
            raw["wiring"][key] = value

    with pytest.raises(ValueError) as refused:
        spec_with(edit)
    assert str(refused.value).startswith(message)


def test_a_compliance_that_a_pulse_could_exceed_is_warned_at_load():
    def low(raw):
        raw["readout"]["compliance"] = "2 V"

    with pytest.warns(StationWarning, match=r"readout.compliance: 2 V is below the 2.52 V that the largest pulse the "
                                            r"station allows \(Keysight81160A: up to ±2.5 V\) puts across a 1.2 kΩ "
                                            r"channel .* would clamp such a pulse at 2 V"):
        spec_with(low)


def test_a_station_file_that_declares_no_wiring_loads_with_a_warning(tmp_path):
    raw = station_raw(lambda raw: raw.pop("wiring"))
    raw["chip"] = str(EMULATED_STATION_FILE.parent / raw["chip"])
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.warns(StationWarning, match=r"old.yaml: no wiring: section.*take 95 % of the read current of a "
                                            r"1 kΩ channel during the fast path's reads: declare wiring:"):
        spec = load_station_spec(path)
    assert spec.wiring is None


# ---- what the emulated bench makes of the wiring --------------------------------------------------------------------


def test_a_generator_coupled_directly_shunts_the_read_current_while_its_output_is_on():
    """Stock drivers over TCP: the Hall step reads scaled by R_out / (R_out + R_ch), the channel as R_ch ∥ 50 Ω."""
    spec = spec_with(lambda raw: (direct(raw), raw.update(triggers=[])))
    with EmulatedStation(spec, chip=IDEAL_CHIP_FILE) as emulated:
        chip, device = emulated.chip, "w3-1"
        i = chip.index(device)
        r_ch, step = float(chip.r_ch_ohm[i]), float(chip.delta_r_ahe_ohm[i])
        emulated.bench.set_closed(spec.route(device))
        smu = StockKeithley2450(open_connection(emulated.addresses["source_meter"]))
        smu.apply_current(compliance_voltage=3)
        smu.source_current = READ_A
        smu.measure_resistance(nplc=0.01)
        generator = StockKeysight81160A(open_connection(emulated.addresses["pulse_generator"]))

        def hall_step():
            levels = []
            for m_z in (-1, 1):
                chip.set_state(device, m_z)
                smu.wires = 4
                smu.enable_source()
                levels.append(np.mean([smu.resistance for _ in range(20)]))
            return levels[1] - levels[0]

        def two_wire():
            smu.wires = 2
            return smu.resistance

        assert hall_step() == pytest.approx(step, rel=0.05)  # generator off: its output is open
        assert two_wire() == pytest.approx(r_ch, rel=1e-6)
        generator.channels[1].output = True
        assert generator.channels[1].output  # a query: the generator has acted on it before the source meter reads
        fraction = 50.0 / (50.0 + r_ch)  # ~5 % of the read current is left in a 1 kΩ channel
        assert hall_step() == pytest.approx(step * fraction, rel=0.05)
        assert two_wire() == pytest.approx(r_ch * 50.0 / (r_ch + 50.0), rel=1e-6)
        smu.disable_source()


def test_the_naive_path_switches_a_directly_coupled_generator_off_before_it_reads():
    spec = spec_with(lambda raw: (direct(raw), raw.update(triggers=[])))
    with EmulatedStation(spec, chip=IDEAL_CHIP_FILE) as emulated, Station.open(emulated.spec) as station:
        device = "w5-1"
        chip = emulated.chip
        i = chip.index(device)
        r_ch = station.measure_channel_resistance(device)
        assert r_ch == pytest.approx(float(chip.r_ch_ohm[i]), rel=1e-6)  # not R_ch ∥ 50 Ω
        station.pulse(device, 3.5e-3, PULSE_S)  # well above Ic0 (~2.5 mA): up
        assert emulated.instruments["pulse_generator"].channels[1].output  # the generator's output stays on ...
        up = float(np.mean(station.read_hall(device, 10)))
        assert not emulated.instruments["pulse_generator"].channels[1].output  # ... until a read
        assert up == pytest.approx(float(chip.r0_ohm[i] + chip.delta_r_ahe_ohm[i] / 2), abs=0.05)


def test_a_pulse_beyond_the_source_meters_compliance_is_clamped():
    """The source meter sourcing the read current holds the pads at its voltage limit: the channel current is capped
    at limit / R_ch, so a pulse that would switch the device does not."""
    bench = dc_bench(100e-6)
    chip, device = bench.chip, "w3-1"
    i = chip.index(device)
    r_ch = float(chip.r_ch_ohm[i])
    level = (2.5e-3 - READ_A) * (r_ch + 50.0)  # 2.5 mA in the channel, well above Ic0 (~1.5 mA)
    for limit, switched in ((10.0, True), (0.5, False)):  # 0.5 V: at most 0.5 mA in a 1 kΩ channel
        chip.set_state(device, -1)
        bench.set_source_meter(True, "CURR", READ_A, limit)
        record = bench.drive_voltage(np.array([level, 0.0]), np.array([PULSE_S, PULSE_S]))
        assert (int(record.states[1]) == 1) is switched, limit


def test_a_pulse_the_compliance_would_clamp_is_refused_at_run_time_before_anything_is_sent():
    def low(raw):
        raw["readout"]["compliance"] = "1.5 V"

    with pytest.warns(StationWarning, match="readout.compliance: 1.5 V"):
        spec = spec_with(low)
    with EmulatedStation(spec, chip=IDEAL_CHIP_FILE) as emulated, Station.open(emulated.spec) as station:
        r_ch = station.measure_channel_resistance("w3-1")
        volts = 1.95e-3 * r_ch
        assert volts > 1.5
        before = logs(emulated)
        with pytest.raises(SafetyError, match=rf"device w3-1: a reset pulse of -1.95 mA puts {volts:.3g} V across its "
                                              rf"{r_ch:.4g} Ω channel, beyond the source meter's compliance of 1.5 V "
                                              r"\(readout.compliance\).*nothing was sent"):
            run_trials_fast(station, "w3-1", [1.2e-3], PULSE_S, -1.95e-3)
        assert logs(emulated) == before


def test_a_dc_block_droops_and_shifts_the_baseline_as_the_rc_response_says():
    """Through 1 µF (τ = (R_ch + 50 Ω)·1 µF ≈ 1 ms): the charge after a pulse, the droop within it and the baseline
    after it, seen in the readings' scale (the channel's current over the read current), against the closed form."""
    bench = dc_bench(1e-6)
    i = bench.chip.index("w3-1")
    r = float(bench.chip.r_ch_ohm[i]) + 50.0
    tau = r * 1e-6
    volts, width, rest = 0.8, 400e-6, 2e-3  # 0.76 mA: far below this device's Ic0
    record = bench.drive_voltage(np.array([volts, 0.0]), np.array([width, rest]))
    charge = volts * -math.expm1(-width / tau)  # the capacitor's voltage as the pulse ends
    assert bench.dc_block_v == pytest.approx(charge * math.exp(-rest / tau), rel=1e-9)
    within = np.linspace(0.0, width, 9)[:-1]  # the pulse's current decays from V / R with τ
    scale = record.wired(within, np.ones(within.size))
    assert scale == pytest.approx(1.0 + volts * np.exp(-within / tau) / r / READ_A, rel=1e-9)
    after = width + np.linspace(0.0, rest, 9)[:-1]  # then the capacitor drives the other way: a baseline shift
    scale = record.wired(after, np.ones(after.size))
    assert scale == pytest.approx(1.0 - charge * np.exp(-(after - width) / tau) / r / READ_A, rel=1e-9)
    assert scale[0] < 0.5  # a 0.3 V charge takes more than the 100 µA read current back


def test_the_dc_block_is_exact_over_many_segments_at_once():
    """10⁵ random segments in one waveform: the capacitor's voltage as the segment-by-segment recurrence gives it."""
    bench = dc_bench(2e-6)
    rng = np.random.default_rng(3)
    levels = rng.uniform(-0.3, 0.3, 100_000)
    durations = rng.uniform(1e-6, 50e-6, 100_000)
    tau = (float(bench.chip.r_ch_ohm[0]) + 50.0) * 2e-6
    bench.drive_voltage(levels, durations)
    expected = 0.0
    for level, decay in zip(levels, np.exp(-durations / tau), strict=True):
        expected = level + (expected - level) * decay
    assert bench.dc_block_v == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_an_unbalanced_waveform_shifts_the_baseline_by_its_running_mean_and_a_balanced_one_does_not():
    """Trials of a −2 V, 100 µs reset and a +1 V, 10 µs bias for 1 s through 100 µF (τ ≈ 0.1 s): the capacitor
    charges to the waveform's mean, whose current then adds to the read current in every read window; with each
    pulse between its balancing lobes it does not."""
    read_window, gap = 200e-6, 5e-6

    def baseline_scale(balanced):
        bench = dc_bench(100e-6)
        lobes = balanced_span(1.0) - 1.0

        def pulse(level, width):
            if not balanced:
                return [(level, width)]
            lobe = (-BALANCE_LEVEL * level, lobes * width / 2)
            return [lobe, (level, width), lobe]

        trial = [*pulse(-2.0, 100e-6), (0.0, gap), (0.0, read_window), *pulse(1.0, 10e-6), (0.0, gap),
                 (0.0, read_window)]
        period = sum(d for _, d in trial)
        n = round(1.0 / period)
        levels = np.tile([v for v, _ in trial], n)
        durations = np.tile([d for _, d in trial], n)
        record = bench.drive_voltage(levels, durations)
        mean = float(np.sum(levels * durations) / np.sum(durations))
        last_read = record.start_s + n * period - read_window
        return float(record.wired(np.array([last_read]), np.ones(1))[0]), mean, bench

    scale, mean, bench = baseline_scale(False)
    r = float(bench.chip.r_ch_ohm[0]) + 50.0
    assert mean == pytest.approx((-2.0 * 100e-6 + 10e-6) / 520e-6)
    assert scale == pytest.approx(1.0 - mean / r / READ_A, rel=0.02)  # ~4.5 × the Hall level: unreadable
    scale, mean, _ = baseline_scale(True)
    assert mean == pytest.approx(0.0, abs=1e-12)
    assert scale == pytest.approx(1.0, abs=0.005)


def test_a_segments_mean_current_is_what_the_device_sees_for_the_pulses_in_use():
    """The chip gets each segment's mean current. Within the 10 µs bias pulse through the default station's block
    (τ ≥ 30 ms) the current decays by 0.03 %: switching with the decaying current, integrated in 1000 steps,
    differs from switching at its mean by less than 1e-5 in probability, for the widest device at its I50."""
    chip = load_chip(IDEAL_CHIP_FILE)
    i = chip.index("w10-1")
    tau = (250.0 + 50.0) * 100e-6
    current = float(exact_i50(chip.ic0_a[i], chip.delta[i], PULSE_S))
    steps = (np.arange(1000) + 0.5) / 1000 * PULSE_S
    decaying = torch.from_numpy(current * np.exp(-steps / tau))
    mean = current * tau / PULSE_S * -math.expm1(-PULSE_S / tau)
    step_p = chip.switching_probability(torch.full((1000,), i), decaying, PULSE_S / 1000)
    exact = -math.expm1(float(torch.log1p(-step_p).sum()))
    at_mean = float(chip.switching_probability(torch.tensor([i]), torch.tensor([mean], dtype=torch.float64),
                                               PULSE_S)[0])
    assert 0.3 < exact < 0.7
    assert abs(exact - at_mean) < 1e-5


# ---- the default station, end to end -------------------------------------------------------------------------------


def test_on_the_default_station_a_bias_sweep_over_tcp_recovers_the_chips_switching_probability():
    """The fast path through the DC block (balanced pulses, the read current allowed for): every point's switched
    fraction agrees with the device's own probability, a narrow and a wide device, and every reset worked."""
    with EmulatedStation(EMULATED_STATION_FILE, chip=IDEAL_CHIP_FILE) as emulated, \
            Station.open(emulated.spec) as station:
        chip = emulated.chip
        pvalues = []
        for device, reset in (("w3-4", -1.95e-3), ("w10-2", -6.5e-3)):
            i = chip.index(device)
            i50 = float(exact_i50(chip.ic0_a[i], chip.delta[i], PULSE_S))
            currents = i50 * np.linspace(0.94, 1.06, 7)
            bias = np.random.default_rng(1).permutation(np.repeat(currents, 150))
            batch = run_trials_fast(station, device, bias, PULSE_S, reset)
            assert batch.reset_ok.all()
            p = chip.switching_probability(torch.full((currents.size,), i), torch.from_numpy(currents),
                                           PULSE_S).numpy()
            assert p[0] < 0.3 and p[-1] > 0.7  # the points span the curve
            for current, expected in zip(currents, p, strict=True):
                at = batch.bias_a == current
                pvalues.append(stats.binomtest(int(batch.switched[at].sum()), int(at.sum()), expected).pvalue)
        assert min(pvalues) > 1e-3 / len(pvalues), pvalues
        assert emulated.bench.dc_block_v == pytest.approx(0.0, abs=1e-3)  # balanced: the block holds no charge


def test_the_emulated_bench_of_a_station_that_declares_no_wiring_models_none():
    spec = dataclasses.replace(load_station_spec(EMULATED_STATION_FILE), wiring=None)
    with EmulatedStation(spec, chip=IDEAL_CHIP_FILE) as emulated:
        assert emulated.bench.wiring is None
        emulated.bench.set_closed(spec.route("w3-1"))
        emulated.bench.set_source_meter(True, "CURR", READ_A, 0.1)  # a limit the pulse exceeds: not modeled
        emulated.bench.set_generator_output(1, True)
        chip = emulated.chip
        chip.set_state("w3-1", -1)
        record = emulated.bench.drive_voltage(np.array([2.4]), np.array([PULSE_S]))
        assert int(record.states[-1]) == 1 and record.wired is None
