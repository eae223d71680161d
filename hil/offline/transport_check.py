"""``hil replay --transport``: run a session's protocols again, offline, against its recorded replies.

The drivers, adapters, station, protocols and engine run exactly as they did; each instrument is a
:class:`~instruments.transport.ReplayAdapter` that serves the recorded replies and stops with a
:class:`~instruments.transport.TransportMismatch` at the first command that differs from the recording
(naming the instrument, the position, what was expected and what was sent). A faithful replay gives
identical records — every field of every table the protocols declare, but wall-clock times: a regression
test of the whole software stack without hardware.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hil.lab.characterization import station_guard
from hil.session import Session, SessionError
from instruments.station import Station
from instruments.station_config import parse_station
from instruments.transport import TransportLog
from protocols.engine import MemoryStore, RunEngine
from protocols.registry import load_protocol


def replay_transport(session_path: str | Path,
                     protocols: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Replay the session's runs (or ``protocols``, to test a change) on its recorded transport.

    Returns ``{"runs": [{"protocol", "identical", "n_records", "differences"}...], "identical": bool}``;
    raises ``TransportMismatch`` at the first command that differs from the recording.
    """
    with Session(session_path) as session:
        if not session.attrs.get("transport_recorded"):
            raise SessionError(f"{session_path}: recorded without --record-transport; nothing to replay")
        log = TransportLog.from_records(session.transport_records())
        spec = parse_station(session.attrs["station"])
        recorded = [(run.parameters, run.descriptors, run.tables()) for run in session.runs]
    plans = list(protocols) if protocols is not None else [parameters for parameters, _, _ in recorded]
    store = MemoryStore()
    with Station.open(spec, replay=log) as station:
        loaded = [load_protocol(parameters, spec).attach(station) for parameters in plans]
        RunEngine(store, guard=station_guard(station)).run(loaded)
    results = []
    for index, (protocol, replayed) in enumerate(zip(loaded, store.runs, strict=True)):
        _, descriptors, tables = recorded[index] if index < len(recorded) else (None, {}, {})
        differences = []
        n_records = 0
        for name, descriptor in {**descriptors, **replayed.descriptors}.items():
            again, original = replayed.table(name), tables.get(name, np.zeros(0))
            n_records += int(again.size)
            if again.size != original.size:
                differences.append(f"{name}: {again.size} rows replayed, {original.size} recorded")
                continue
            for field in descriptor.reproducible_fields:
                if again.size and not np.array_equal(again[field], original[field]):
                    differences.append(f"{name}.{field}")
        results.append({"protocol": protocol.name, "identical": not differences, "n_records": n_records,
                        "differences": differences})
    return {"session": str(session_path), "runs": results, "identical": all(r["identical"] for r in results)}
