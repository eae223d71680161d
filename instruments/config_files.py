"""Config files (YAML): where the shipped ones are, and the checks every file kind shares.

The project's ``configs/`` (station, chip and protocol files) and ``data/`` (recorded sessions) ship in
an installed wheel as the resources ``hil.configs`` and ``hil.data`` (``importlib.resources``); a source
checkout (an editable install) has them beside the packages.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


def _shipped(folder: str) -> Path:
    installed = Path(str(importlib.resources.files("hil"))) / folder  # hil/configs, hil/data in a wheel
    return installed if installed.is_dir() else Path(__file__).resolve().parents[1] / folder


CONFIGS = _shipped("configs")
DATA = _shipped("data")
DEFAULT_CHIP_FILE = CONFIGS / "chip.default.yaml"  # the embedded chip: devices with the non-idealities on
IDEAL_CHIP_FILE = CONFIGS / "chip.ideal.yaml"  # the same devices, ideal (the textbook Néel–Brown bar)
EMULATED_STATION_FILE = CONFIGS / "station.emulated.yaml"
PROTOCOL_FILES = CONFIGS / "protocols"
EMULATED_SESSION = DATA / "emulated-session.h5"


def read_yaml(path: str | Path, kind: str, error: type[Exception]) -> Any:
    """The content of a YAML file; ``error`` (naming the ``kind`` of file) if it is missing or not YAML."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{kind} file {str(path)!r} does not exist")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise error(f"{kind} file {str(path)!r} is not valid YAML: {exc}") from None


def check_keys(raw: Mapping[str, Any], known: set[str], where: str, error: type[Exception]) -> None:
    """Refuse the first key of ``raw`` that is not ``known``, naming it and the known ones."""
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise error(f"{where}{unknown[0]}: unknown key (known: {', '.join(sorted(known))})")
