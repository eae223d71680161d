"""Networks with DW synapses and deep stochastic-neuron networks on the digits: the claims, the commands."""

from __future__ import annotations

import json
import math
import statistics

import pytest
import torch
import yaml
from scipy import stats

from hil.cli import main
from hil.neurons.simulated import SimBackend
from hil.session import Session
from hil.synapses.dw_linear import DWLinear, SynapseConfig
from hil.synapses.sim_synapses import SimSynapseBackend
from hil.synapses.synapse_model_file import load_synapse_model
from hil.training.config import TrainConfig
from hil.training.datasets import load_digits
from hil.training.network import synapse_counters
from hil.training.synapse_experiment import DEFAULT_HIDDEN, synapse_experiment
from hil.training.trainer import prepare, train
from instruments.config_files import EMULATED_STATION_FILE, PROTOCOL_FILES
from sim_backend.dw_synapse import DWSynapseConfig

SEEDS = (0, 1, 2)


def exit_code(argv: list[str]) -> int:
    """``hil``'s exit status for ``argv``, whether it returns it or argparse exits."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.fixture(scope="module")
def digits():
    return load_digits(seed=0)


@pytest.fixture(scope="module")
def table(digits):
    """The synapse experiment on the digits: 5-layer networks, 3 seeds, 30 epochs (about 40 s)."""
    torch.set_num_threads(1)
    result = synapse_experiment(digits, TrainConfig(hidden=DEFAULT_HIDDEN, epochs=30), seeds=SEEDS, draws=3)
    return {row["network"]: row for row in result.table()}


@pytest.mark.slow  # the synapse table over seeds on digits: about a minute (CI runs pytest -m slow)
def test_five_state_in_situ_and_ex_situ_are_within_one_and_a_half_points_of_floating_point(table):
    float_accuracy = table["floating point"]["accuracy"]
    assert float_accuracy > 0.96
    assert table["5-state in-situ"]["accuracy"] >= float_accuracy - 0.015
    assert table["5-state ex-situ"]["accuracy"] >= float_accuracy - 0.015
    # ex situ is evaluated over several programming-noise draws per seed
    assert table["5-state ex-situ"]["draw_min"] <= table["5-state ex-situ"]["accuracy"] <= \
        table["5-state ex-situ"]["draw_max"]


def _better(a: dict, b: dict, n_test: int = 450) -> float:
    """One-sided p-value that network ``b`` is more accurate than ``a``: a two-proportion z-test on the test
    images pooled over the seeds."""
    n = n_test * a["seeds"]
    p_a, p_b = a["accuracy"], b["accuracy"]
    pooled = (p_a + p_b) / 2
    se = math.sqrt(max(pooled * (1 - pooled), 1e-12) * 2 / n)
    return float(stats.norm.sf((p_b - p_a) / se))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["in-situ", "ex-situ"])
def test_more_states_are_better_two_below_three_at_most_five(table, mode):
    two, three, five = (table[f"{k}-state {mode}"] for k in (2, 3, 5))
    assert _better(two, three) < 0.01  # 2 < 3, significantly
    assert _better(five, three) > 0.05  # 3 is not significantly better than 5


@pytest.mark.slow  # the synapse table over seeds on digits: about a minute (CI runs pytest -m slow)
def test_the_margin_cuts_programming_during_training_at_a_small_accuracy_cost(table):
    with_margin, without = table["5-state in-situ"], table["5-state in-situ (no margin)"]
    # measured on this network: 2.6x fewer reprogrammings (11,560 vs 29,755 over 30 epochs, 3 seeds)
    assert without["training_events"] >= 2.0 * with_margin["training_events"]
    assert with_margin["accuracy"] >= without["accuracy"] - 0.015
    # every count includes the initial programming of each weight once
    assert with_margin["program_events"] == with_margin["training_events"] + with_margin["weights"]
    assert with_margin["program_energy_per_inference_j"] == pytest.approx(
        with_margin["program_events"] * 5e-15 / (30 * 1347))


@pytest.mark.slow  # six 5-layer networks of 30 epochs in batches of 8: about a minute (CI runs pytest -m slow)
def test_with_small_batches_the_margin_cuts_programming_about_tenfold_while_the_networks_still_learn(digits):
    """The margin saves the reprogrammings of shadow weights dithering at a band's edge. In batches of 8 the
    steps are noisy and those dominate: half a spacing of margin cuts them about tenfold (measured: 63,077 →
    6,111, 10.3×) while the networks still learn the digits, at a cost of 1.9 pp here (0.982 → 0.963), above
    the 0.5 pp hoped for (README: the regimes measured)."""
    torch.set_num_threads(1)
    runs: dict[float, list] = {0.0: [], 0.5: []}
    for seed in SEEDS:
        config = TrainConfig(hidden=DEFAULT_HIDDEN, epochs=30, batch_size=8, learning_rate=3e-3, seed=seed)
        for margin, results in runs.items():
            synapses = SimSynapseBackend(DWSynapseConfig().with_states(5), seed=seed + 17)
            result = train(digits, "deterministic", config, synapses=synapses,
                           synapse_config=SynapseConfig("in-situ", margin))
            results.append((result.test_accuracy, synapses.program_events - synapses.n_devices))
    accuracy = {m: statistics.fmean(a for a, _ in r) for m, r in runs.items()}
    events = {m: statistics.fmean(e for _, e in r) for m, r in runs.items()}
    assert events[0.0] >= 8 * events[0.5]
    assert accuracy[0.5] > 0.95 and accuracy[0.0] > 0.97


@pytest.mark.slow  # the synapse table over seeds on digits: about a minute (CI runs pytest -m slow)
def test_three_stochastic_hidden_layers_of_devices_match_the_software_network(digits):
    """Deep networks of SOT neurons (simulated, calibrated mapping): within 0.5 pp of the same software
    network of ideal stochastic neurons, averaged over two seeds."""
    torch.set_num_threads(1)
    hil, software = [], []
    for seed in (0, 1):
        config = TrainConfig(hidden=(100, 100, 100), epochs=20, seed=seed)
        software.append(train(digits, "stochastic", config).test_accuracy)
        hil.append(train(digits, SimBackend.virtual(300, seed=seed + 30), config).test_accuracy)
    assert statistics.fmean(software) > 0.92
    assert statistics.fmean(hil) >= statistics.fmean(software) - 0.005


def test_an_all_spintronic_network_learns_and_counts_both_kinds_of_events(digits):
    torch.set_num_threads(1)
    config = TrainConfig(hidden=(64, 64, 64), epochs=15, seed=0)
    neurons = SimBackend.virtual(192, seed=30)
    synapses = SimSynapseBackend(DWSynapseConfig().with_states(5), seed=0)
    result = train(digits, neurons, config, synapses=synapses, synapse_config=SynapseConfig("in-situ", 0.25))
    assert result.test_accuracy > 0.9
    assert result.pulses > 0 and neurons.pulses == result.pulses
    assert sum(e.program_events for e in result.epochs) + synapses.n_devices == synapses.program_events
    assert synapses.n_devices == 64 * 64 + 2 * 64 * 64 + 64 * 10


@pytest.mark.parametrize("mode", ["in-situ", "ex-situ"])
def test_training_with_synapses_resumes_exactly_from_a_checkpoint(digits, mode):
    config = TrainConfig(hidden=(32, 32), epochs=2, seed=3)

    def trainer():
        return prepare(digits, "deterministic", config, synapses=SimSynapseBackend(DWSynapseConfig(), seed=1),
                       synapse_config=SynapseConfig(mode, 0.1))

    straight = trainer()
    straight.fit()
    first = trainer()
    first.train_steps(7)
    checkpoint = first.checkpoint()
    resumed = trainer()
    resumed.restore(checkpoint)
    resumed.fit()
    assert [m.test_accuracy for m in resumed.history] == [m.test_accuracy for m in straight.history]
    assert synapse_counters(resumed.model) == synapse_counters(straight.model)
    for a, b in zip(straight.model.modules(), resumed.model.modules(), strict=True):
        if isinstance(a, DWLinear):  # ex situ, the training noise continued its stream: the same shadow weights
            assert torch.equal(a.block.weight, b.block.weight) and torch.equal(a.shadow, b.shadow)


def test_hil_experiment_synapses_writes_its_table_and_figure(tmp_path, capsys):
    out = tmp_path / "exp"
    assert main(["experiment", "synapses", "--epochs", "2", "--hidden", "16", "16", "--states", "2", "3",
                 "--draws", "2", "--out", str(out), "--json", "--progress-every", "0"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["network"] for r in rows] == ["floating point", "2-state in-situ", "2-state in-situ (no margin)",
                                            "2-state ex-situ", "3-state in-situ", "3-state in-situ (no margin)",
                                            "3-state ex-situ"]
    saved = json.loads((out / "synapses.json").read_text())
    assert saved["reference"]["5-state in-situ"] == 0.9667 and saved["table"] == rows
    assert (out / "synapses.png").stat().st_size > 10_000
    assert exit_code(["experiment", "synapses", "--epochs", "1", "--out", str(out)]) != 0  # nothing replaced
    assert "--force" in capsys.readouterr().err


def test_hil_train_with_synapses_records_programming_events(tmp_path, capsys):
    out = tmp_path / "run.h5"
    assert main(["train", "--backend", "sim", "--synapses", "3", "--synapse-mode", "ex-situ", "--hidden", "16",
                 "--epochs", "2", "--out", str(out), "--progress-every", "0"]) == 0
    printed = capsys.readouterr().out
    assert "DW synapses: 1184 devices of 3 states (ex-situ, margin 0.25), 1184 programming events" in printed
    with Session(out) as session:
        epochs = session.runs[0].table("epochs")
    assert list(epochs["program_events"]) == [0, 1184]  # ex situ: programmed once, at the end
    assert list(epochs["program_energy_j"]) == [0.0, 1184 * 5e-15]
    # resuming with other synapses is refused: one file never mixes two setups
    assert exit_code(["train", "--backend", "sim", "--synapses", "5", "--synapse-mode", "ex-situ", "--hidden", "16",
                      "--epochs", "2", "--out", str(out), "--resume"]) != 0
    assert "synapses" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--margin", "0.5"], "--margin needs DW synapses"),
    (["--synapses", "1"], "at least 2 states"),
    (["--synapses", "3", "--synapse-model", "x.yaml"], "--synapses and --synapse-model both give"),
    (["--synapse-session", "x.h5", "--synapse-sigma", "0.1"], "--synapse-sigma does not apply"),
])
def test_hil_train_refuses_synapse_options_that_cannot_apply(tmp_path, capsys, argv, message):
    assert exit_code(["train", "--backend", "sim", "--epochs", "1", "--out", str(tmp_path / "x.h5"), *argv]) != 0
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists()


def test_measured_synapses_feed_training_from_the_model_file_or_the_recorded_outcomes(tmp_path, capsys):
    """The lab's path: characterize the DW tracks on the (emulated) station, write the synapse model file,
    train ex situ against it, and train on the recorded outcomes themselves."""
    protocol = tmp_path / "dw.yaml"
    raw = yaml.safe_load((PROTOCOL_FILES / "dw-programming.yaml").read_text())
    protocol.write_text(yaml.safe_dump({**raw, "repeats": 20, "readings": 2, "batch": 50}))
    session, model = tmp_path / "dw.h5", tmp_path / "dw-model.yaml"
    assert main(["characterize", "--station", str(EMULATED_STATION_FILE), "--protocol", str(protocol),
                 "--out", str(session), "--progress-every", "0"]) == 0
    assert main(["calibrate", str(session), "--synapse-model", str(model)]) == 0
    capsys.readouterr()
    measured = load_synapse_model(model)
    assert measured.states == 5 and measured.levels[0] < -0.9 and measured.levels[-1] > 0.9
    out = tmp_path / "exp"
    assert main(["experiment", "synapses", "--synapse-model", str(model), "--epochs", "2", "--hidden", "16",
                 "--draws", "2", "--out", str(out), "--json", "--progress-every", "0"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["network"] for r in rows][1:] == ["5-state in-situ", "5-state in-situ (no margin)", "5-state ex-situ"]
    assert json.loads((out / "synapses.json").read_text())["synapse"]["levels"] == list(measured.levels)
    run = tmp_path / "run.h5"
    assert main(["train", "--backend", "sim", "--synapse-session", str(session), "--hidden", "16", "--epochs", "1",
                 "--out", str(run), "--progress-every", "0"]) == 0
    assert "DW synapses: 1184 devices of 5 states (in-situ, margin 0.25)" in capsys.readouterr().out
    assert exit_code(["experiment", "synapses", "--synapse-model", str(model), "--states", "3",
                      "--out", str(tmp_path / "x")]) != 0
    assert "--states does not apply with --synapse-model" in capsys.readouterr().err
