"""Synapse model files load into the DW synapse model, or are refused naming the file and the key."""

import pytest
import yaml

from hil.session.format import OutputExistsError
from hil.synapses.sim_synapses import SimSynapseBackend
from hil.synapses.synapse_model_file import SynapseModelError, load_synapse_model, write_synapse_model

MODEL = {"format": "hil-synapse-model/1", "source": {"session": "s.h5", "run": "000"},
         "levels": [-0.98, 0.01, 1.02], "sigma": [0.21, 0.18, 0.2], "level_variation": 0.02, "retention_drift": 0.0,
         "write_energy": 5e-15, "read_energy": 1e-15, "fit": {"confidence": 0.95}}


def test_a_written_model_loads_as_the_synapse_model_a_backend_runs(tmp_path):
    path = write_synapse_model(MODEL, tmp_path / "model.yaml")
    config = load_synapse_model(path)
    assert config.levels == (-0.98, 0.01, 1.02) and config.sigma == (0.21, 0.18, 0.2)
    assert config.level_variation == 0.02 and config.spacing == pytest.approx(1.0)
    backend = SimSynapseBackend(config, seed=1)  # ex-situ training and simulation use it like any model
    assert backend.allocate(4).read().tolist() == pytest.approx([-0.98] * 4, abs=0.2)
    with pytest.raises(OutputExistsError, match="already exists"):
        write_synapse_model(MODEL, path)
    with pytest.raises(SynapseModelError, match="a synapse model file is YAML"):
        write_synapse_model(MODEL, tmp_path / "model.txt")


@pytest.mark.parametrize(("change", "message"), [
    ({"format": "hil-synapse-model/9"}, "format: this version reads 'hil-synapse-model/1', got 'hil-synapse-model/9'"),
    ({"levels": [0.5, 0.1, 1.0]}, "levels: expected finite, strictly ascending weights"),
    ({"sigma": [0.2, 0.2]}, "sigma: one value, or one per state (3), got 2"),
    ({"colour": "blue"}, "colour: unknown key"),
])
def test_a_bad_model_file_is_refused_naming_the_key(tmp_path, change, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**MODEL, **change}))
    with pytest.raises(SynapseModelError) as err:
        load_synapse_model(path)
    assert str(path) in str(err.value) and message in str(err.value)
