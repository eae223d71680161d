"""Transport replay: run a recorded session's protocols again, offline, against its recorded replies.

The drivers, adapters, station and protocols run exactly as they did; each instrument is a
:class:`~instruments.transport.ReplayAdapter` that serves the recorded replies and stops with a
:class:`~instruments.transport.TransportMismatch` at the first command that differs from the recording
(naming the instrument, the position, what was expected and what was sent). A faithful replay gives
identical trial outcomes and readings: a regression test of the whole software stack without hardware.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hil.session import Session, SessionError
from instruments.station import Station
from instruments.station_config import parse_station
from instruments.transport import TransportLog
from protocols.characterization import load_protocol
from protocols.engine import MemorySink
from protocols.engine import run as run_engine

COMPARED = {"trials": ("unit", "device", "amplitude_a", "width_s", "reset_a", "outcome", "reset_ok", "reading_ohm",
                       "reset_reading_ohm"),
            "steps": ("unit", "device", "step", "current_a", "dwell_s", "reading_ohm"),
            "resistance": ("unit", "device", "r_ch_ohm")}


def replay_transport(session_path: str | Path,
                     protocols: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Replay the session's runs (or ``protocols``, to test a change) on its recorded transport.

    Returns ``{"runs": [{"protocol", "identical", "n_records"}...], "identical": bool}``; raises
    ``TransportMismatch`` at the first command that differs from the recording.
    """
    with Session(session_path) as session:
        if not session.attrs.get("transport_recorded"):
            raise SessionError(f"{session_path}: recorded without --record-transport; nothing to replay")
        log = TransportLog.from_records(session.transport_records())
        spec = parse_station(session.attrs["station"])
        recorded = [(run.protocol, run.parameters, {name: run.table(name) for name in COMPARED})
                    for run in session.runs]
    plans = list(protocols) if protocols is not None else [parameters for _, parameters, _ in recorded]
    results = []
    with Station.open(spec, replay=log) as station:
        for index, parameters in enumerate(plans):
            protocol = load_protocol(parameters, station)
            sink = MemorySink()
            run_engine(protocol, [sink])
            tables = recorded[index][2] if index < len(recorded) else {}
            identical = True
            n_records = 0
            for name, fields in COMPARED.items():
                replayed, original = sink.table(name), tables.get(name, np.zeros(0))
                n_records += int(replayed.size)
                if replayed.size != original.size:
                    identical = False
                    continue
                if replayed.size and any(not np.array_equal(replayed[f], original[f]) for f in fields):
                    identical = False
            results.append({"protocol": protocol.name, "identical": identical, "n_records": n_records})
    return {"session": str(session_path), "runs": results, "identical": all(r["identical"] for r in results)}
