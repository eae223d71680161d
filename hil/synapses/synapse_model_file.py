"""Synapse model files (``hil-synapse-model/1``): the DW synapse model fitted from a programming characterization.

A ``dw_programming`` run (:mod:`protocols.dw_programming`) fits, over its tracks, each state's level and
programming noise with intervals. ``hil calibrate SESSION --synapse-model OUT.yaml`` writes them as a YAML
file whose model keys are those of a chip file's ``synapses:`` section, so that
:func:`load_synapse_model` gives a :class:`~sim_backend.dw_synapse.DWSynapseConfig` (levels = the fitted
means, σ = the fitted per-state σ in units of the fitted spacing, the level variation) for ex-situ training
or a simulated synapse backend. The layout is in ``docs/synapse-model-format.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from hil.outputs import check_yaml_output
from hil.session import COMPLETED, Session, SessionError
from instruments.config_files import check_keys, read_yaml
from instruments.failures import UserFacingError
from protocols.dw_programming import MODEL_RESULT, DWProgramming
from sim_backend.dw_synapse import SYNAPSE_KEYS, DWSynapseConfig, SynapseConfigError

SYNAPSE_MODEL_FORMAT = "hil-synapse-model/1"
FILE_KEYS = {"format", "source", "fit", "notes"}  # besides the model's own keys (a chip file's synapses:)


class SynapseModelError(UserFacingError, ValueError):
    """A synapse model file (or the session it should come from) that cannot give a model."""


def synapse_model(session: str | Path) -> dict[str, Any]:
    """The synapse model of the session's last completed ``dw_programming`` run, as a model file's mapping."""
    with Session(session) as recorded:
        runs = [run for run in recorded.runs_of(DWProgramming.name) if run.status == COMPLETED]
        if not runs:
            raise SessionError(f"{session}: no completed dw_programming run to fit a synapse model from")
        run, created = runs[-1], recorded.attrs.get("created_utc")
        fitted = run.analysis(MODEL_RESULT) or {}
    if "levels" not in fitted:
        raise SessionError(f"{session}: run {run.name} has no synapse model "
                           f"({fitted.get('error', 'no dw_model analysis')})")
    defaults = DWSynapseConfig()
    return {
        "format": SYNAPSE_MODEL_FORMAT,
        "source": {"session": str(Path(session).resolve()), "run": run.name, "created_utc": created,
                   "tracks": list(fitted["tracks"])},
        "levels": [float(v) for v in fitted["levels"]],
        "sigma": [float(v) for v in fitted["sigma"]],
        "level_variation": float(fitted["level_variation"]),
        "retention_drift": 0.0,  # not measured by a programming characterization
        "write_energy": defaults.write_energy_j,  # not measured either: the model's defaults (J)
        "read_energy": defaults.read_energy_j,
        "fit": {"confidence": fitted["confidence"], "spacing": fitted["spacing"], "n": fitted["n"],
                "level_intervals": fitted["level_intervals"], "sigma_intervals": fitted["sigma_intervals"],
                "sigma_weight": fitted["sigma_weight"], "conductance": fitted.get("conductance")},
    }


def check_model_output(out: str | Path, force: bool = False) -> Path:
    """Refuse a model-file name that is not YAML, or an existing file without ``force``."""
    return check_yaml_output(out, force, "a synapse model file", SynapseModelError)


def write_synapse_model(model: Mapping[str, Any], out: str | Path, force: bool = False) -> Path:
    """Write a synapse model file; an existing file is replaced only with ``force``."""
    model_config(model, str(out))  # what is written loads back
    out = check_model_output(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    source = model.get("source") or {}
    header = (f"# DW synapse model fitted by `hil calibrate` from {source.get('session', 'a session')} "
              f"(run {source.get('run', '?')}).\n# levels: fitted means of the realized weight per state; sigma: "
              "fitted per-state noise in units of the spacing; intervals under fit.\n")
    out.write_text(header + yaml.safe_dump(dict(model), sort_keys=False))
    return out


def model_config(raw: Any, where: str) -> DWSynapseConfig:
    """The :class:`DWSynapseConfig` of a model file's mapping; errors name the file and the key."""
    if not isinstance(raw, Mapping):
        raise SynapseModelError(f"{where}: expected a mapping (format: {SYNAPSE_MODEL_FORMAT}, levels, sigma, ...)")
    if raw.get("format") != SYNAPSE_MODEL_FORMAT:
        raise SynapseModelError(f"{where}: format: this version reads {SYNAPSE_MODEL_FORMAT!r}, got "
                                f"{raw.get('format')!r}")
    try:
        check_keys(raw, FILE_KEYS | SYNAPSE_KEYS, "", SynapseConfigError)
        return DWSynapseConfig.from_mapping({k: v for k, v in raw.items() if k in SYNAPSE_KEYS}, where="")
    except SynapseConfigError as exc:
        raise SynapseModelError(f"{where}: {exc}") from None


def load_synapse_model(path: str | Path) -> DWSynapseConfig:
    """The DW synapse model of a synapse model file."""
    return model_config(read_yaml(path, "synapse model", SynapseModelError), str(path))
