"""What a session must match to be continued: the station, the chip, the seed, the software version.

An identity is plain JSON-ready data stored with the session (``identity``) and compared on ``--resume``
(:func:`protocols.engine.check_identity`), so that one file never mixes two stations, chips or seeds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hil import __version__
from instruments.config_files import DEFAULT_CHIP_FILE, read_yaml
from instruments.station_config import StationConfigError, StationSpec


def digest(value: Any) -> str:
    """A short fingerprint of JSON-ready ``value``."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def chip_identity(chip: str | Path | Mapping[str, Any] | None, seed: int | None = None) -> dict[str, Any]:
    """The chip file's name, the seed it is drawn with, and a fingerprint of its content."""
    raw = chip if isinstance(chip, Mapping) else read_yaml(chip or DEFAULT_CHIP_FILE, "chip", StationConfigError)
    if not isinstance(raw, Mapping):
        raise StationConfigError(f"chip file {chip}: expected a mapping")
    content = {k: v for k, v in raw.items() if k != "seed"}
    return {"name": str(raw.get("name", "chip")), "seed": raw.get("seed", 0) if seed is None else int(seed),
            "digest": digest(content)}


def is_emulated(spec: StationSpec) -> bool:
    return all(inst.address == "emulated" for inst in spec.instruments.values())


def station_identity(spec: StationSpec, chip: str | Path | None = None, seed: int | None = None) -> dict[str, Any]:
    """The identity of a characterization: the station as declared, the emulated chip (if any), the version."""
    # the chip on an emulated station is compared by content below, however the file names its path
    declared = {k: v for k, v in spec.raw.items() if k not in ("notes", "chip")}
    identity: dict[str, Any] = {"software_version": __version__, "station": declared}
    if is_emulated(spec):
        identity["chip"] = chip_identity(chip or spec.chip, seed)
    return identity


def check_resume(path: str | Path, identity: Mapping[str, Any]) -> None:
    """Refuse, before anything is opened for writing or connected, to resume the session ``path`` with
    another identity (:class:`~protocols.engine.ResumeError` naming the first difference)."""
    from hil.session import Session
    from protocols.engine import check_identity

    with Session(path) as session:
        check_identity(session.attrs.get("identity"), identity, str(path))


def mark_resumable(exc: BaseException, path: str | Path) -> None:
    """Note on an error that ended a run that the session ``path`` holds what was done and can be resumed."""
    try:
        exc.resumable_session = Path(path)  # type: ignore[attr-defined]
    except (AttributeError, TypeError):
        pass


def check_instruments(recorded: Mapping[str, str], connected: Mapping[str, str], path: str | Path) -> None:
    """Refuse to resume on other instruments than the session was measured with (their ``*IDN?``: model,
    serial number, firmware), naming the first that differs; checked after connecting, before any unit."""
    from protocols.engine import ResumeError

    for role, idn in connected.items():
        if role in recorded and recorded[role] != idn:
            raise ResumeError(f"{path}: cannot resume with a different {role}: the file was measured with "
                              f"{recorded[role]!r}, the station now answers {idn!r}")
