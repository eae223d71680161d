"""Reading config files (YAML): the checks every file kind shares, with errors of the caller's type."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


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
