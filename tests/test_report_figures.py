"""``hil report`` and ``hil info`` on the shipped session: every figure, vector formats, the scaling fits with
their intervals, channel resistances; the power-law fit itself on data of a known exponent."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hil.offline.figures import write_report
from hil.session.format import OutputExistsError
from protocols.fits import fit_power_law

DATA_SESSION = Path(__file__).resolve().parents[1] / "data" / "emulated-session.h5"
CHARACTERIZATION_FIGURES = ("switching_curves", "hysteresis_loops", "size_trends", "channel_resistance")
MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF", "svg": b"<?xml"}


def hil(*args):
    return subprocess.run([sys.executable, "-m", "hil.cli", *map(str, args)], capture_output=True, text=True)


def exponents(summary: str) -> dict[str, tuple[float, float, float]]:
    """Symbol → (α, low, high) from the summary's scaling section."""
    found = re.findall(r"^\s+(\S+)\s+\(.*\): α = (-?[\d.]+) \[(-?[\d.]+), (-?[\d.]+)\]", summary, re.MULTILINE)
    return {symbol: (float(a), float(lo), float(hi)) for symbol, a, lo, hi in found}


def test_report_of_the_shipped_session_writes_every_figure_and_the_scaling_fits(tmp_path):
    files = write_report(DATA_SESSION, tmp_path)
    assert [f.name for f in files] == [f"{name}.png" for name in CHARACTERIZATION_FIGURES] + ["summary.txt"]
    for f in files[:-1]:
        assert f.read_bytes()[:8] == MAGIC["png"] and f.stat().st_size > 20_000
    summary = (tmp_path / "summary.txt").read_text()
    fits = exponents(summary)
    assert set(fits) == {"I50", "w_I", "I_loop", "R_ch"}
    for alpha, low, high in fits.values():
        assert low < alpha < high
    # the physics of the emulated devices: currents scale with the width, the channel resistance inversely
    for symbol in ("I50", "w_I", "I_loop"):
        assert fits[symbol][1] < 1.0 < fits[symbol][2], symbol
    assert fits["R_ch"][1] < -1.0 < fits["R_ch"][2] or abs(fits["R_ch"][0] + 1) < 0.05
    assert "95 % interval" in summary
    for unit in ("µm", "µA", "mA", "Ω"):
        assert unit in summary
    assert not re.search(r"\d ?(um|uA|uJ|ohm)\b", summary)
    # loop half-widths with their intervals, per device
    assert re.search(r"^w3-1 .* 0\.9000 \[0\.8550, 0\.9000\]$", summary, re.MULTILINE)


def test_report_writes_vector_figures_on_request(tmp_path):
    result = hil("report", DATA_SESSION, "--out", tmp_path / "svg", "--format", "svg")
    assert result.returncode == 0, result.stderr
    write_report(DATA_SESSION, tmp_path / "pdf", fmt="pdf")
    for fmt in ("svg", "pdf"):
        for name in CHARACTERIZATION_FIGURES:
            assert (tmp_path / fmt / f"{name}.{fmt}").read_bytes()[:len(MAGIC[fmt])] == MAGIC[fmt]
        assert not list((tmp_path / fmt).glob("*.png"))
    with pytest.raises(OutputExistsError, match="--force"):
        write_report(DATA_SESSION, tmp_path / "pdf", fmt="pdf")


def test_report_of_a_training_session_draws_its_training_curves(tmp_path):
    session = tmp_path / "training.h5"
    trained = hil("train", "--backend", "sim", "--epochs", "2", "--hidden", "8", "--eval-samples", "1",
                  "--out", session)
    assert trained.returncode == 0, trained.stderr
    files = write_report(session, tmp_path / "report")
    assert [f.name for f in files] == ["training_curves.png", "summary.txt"]
    assert files[0].read_bytes()[:8] == MAGIC["png"]
    assert "training: sim backend" in files[1].read_text()


def test_info_lists_channel_resistances_per_device_and_per_width():
    result = hil("info", DATA_SESSION)
    assert result.returncode == 0, result.stderr
    by_width = re.findall(r"width\s+([\d.]+) µm: R_ch ([\d.]+) ± ([\d.]+) Ω \((\d+) devices\)", result.stdout)
    assert [(float(w), int(n)) for w, _, _, n in by_width] == [(3.0, 4), (5.0, 4), (10.0, 4)]
    means = [float(m) for _, m, _, _ in by_width]
    assert means[0] > means[1] > means[2]  # narrower channels resist more
    per_device = dict(re.findall(r"^(w\d+-\d)\s+[\d.]+µm\s+([\d.]+) ", result.stdout, re.MULTILINE))
    assert len(per_device) == 12
    w3 = [float(per_device[f"w3-{i}"]) for i in range(1, 5)]
    assert np.mean(w3) == pytest.approx(means[0], abs=0.06)


def test_power_law_fit_recovers_a_known_exponent_within_its_interval():
    rng = np.random.default_rng(7)
    width = np.repeat([3e-6, 5e-6, 10e-6], 4)

    def fit(seed_rng):
        value = 0.37e-3 * (width / 1e-6) ** 1.1 * np.exp(seed_rng.normal(0.0, 0.05, width.size))
        return fit_power_law(width, value, x_ref=1e-6)

    one = fit(rng)
    assert one.exponent_low < 1.1 < one.exponent_high
    assert one.prefactor == pytest.approx(0.37e-3, rel=0.15)
    low, high = one.band(5e-6)
    assert low < one.value(5e-6) < high
    # the 95 % interval covers the true exponent about 95 % of the time
    covered = [f.exponent_low < 1.1 < f.exponent_high for f in (fit(rng) for _ in range(400))]
    assert 0.91 < np.mean(covered) < 0.99
