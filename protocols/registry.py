"""The characterization protocols by name, and loading a protocol file against a station."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from instruments.config_files import read_yaml
from instruments.station_config import StationSpec
from protocols.base import ProtocolConfigError, StationProtocol
from protocols.bias_sweep import BiasSweep
from protocols.channel_resistance import ChannelResistance
from protocols.dw_programming import DWProgramming
from protocols.hysteresis_loop import HysteresisLoop
from protocols.reset_check import ResetCheck

PROTOCOLS: dict[str, type[StationProtocol]] = {
    p.name: p for p in (ChannelResistance, ResetCheck, BiasSweep, HysteresisLoop, DWProgramming)}


def read_protocol(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """The content of a protocol file (or a mapping), checked to be a mapping that names a known protocol."""
    raw = source if isinstance(source, Mapping) else read_yaml(source, "protocol", ProtocolConfigError)
    where = "protocol" if isinstance(source, Mapping) else f"protocol file {str(source)!r}"
    if not isinstance(raw, Mapping):
        raise ProtocolConfigError(f"{where}: expected a mapping of keys (protocol: bias_sweep, ...), "
                                  f"got {'an empty file' if raw is None else type(raw).__name__}")
    name = raw.get("protocol")
    if not isinstance(name, str) or name not in PROTOCOLS:
        raise ProtocolConfigError(f"{where}: protocol: {name!r} is not a protocol "
                                  f"(known: {', '.join(PROTOCOLS)})")
    return dict(raw)


def load_protocol(source: str | Path | Mapping[str, Any], spec: StationSpec) -> StationProtocol:
    """Validate a protocol file (or mapping) against the station ``spec``: ready to attach and run."""
    raw = read_protocol(source)
    return PROTOCOLS[raw["protocol"]](spec, raw)


def register_protocol(protocol: type[StationProtocol]) -> type[StationProtocol]:
    """Make a protocol class loadable by its ``name`` from protocol files (usable as a class decorator)."""
    if not protocol.name or not protocol.records:
        raise ValueError(f"{protocol.__name__}: a protocol needs a name and the record tables it declares")
    if PROTOCOLS.get(protocol.name, protocol) is not protocol:
        raise ValueError(f"protocol name {protocol.name!r} is taken by {PROTOCOLS[protocol.name].__name__}")
    PROTOCOLS[protocol.name] = protocol
    return protocol
