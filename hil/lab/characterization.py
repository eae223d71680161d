"""Characterization: protocols run on a station into one session file (``hil characterize``).

A thin composition: the protocols are validated against the station file (every limit and route that
can be checked from the files is checked before any instrument is connected), the session's identity
is compared with the file being resumed, the station is connected (an emulated one in-process when its
addresses say ``emulated``) and the run engine streams every protocol into the session. The instruments
are put in the safe state on exit, Ctrl-C and errors, and asked to confirm it.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hil.display.progress import LOG_EVERY_S, ProgressSink, work_of
from hil.lab.connection import open_station, station_spec
from hil.lab.provenance import check_instruments, check_resume, mark_resumable, station_identity
from hil.session.format import SessionError
from hil.session.sinks import SessionStore, TransportSink
from hil.session.writer import SessionWriter, check_new
from instruments.station import SafeStateReport, Station
from instruments.station_config import DW_TRACK, HALL_BAR, StationSpec
from instruments.transport import TransportLog
from protocols.base import lost_devices
from protocols.engine import COMPLETED, Measurement, RunEngine, Unit, check_resumable
from protocols.registry import load_protocol

RESUMED_OUTCOME_SEED = 1000  # a resumed emulated run draws the next outcome stream: 1000 + attempt


@dataclass
class CharacterizeResult:
    path: Path
    statuses: dict[str, str]
    virtual_time_s: float | None = None
    safe_state: SafeStateReport | None = None


def characterize(station: str | Path | StationSpec, protocols: Sequence[str | Path | Mapping[str, Any]],
                 out: str | Path, resume: bool = False, force: bool = False, progress: bool | None = None,
                 chip: str | Path | None = None, seed: int | None = None,
                 record_transport: bool = False, progress_every_s: float = LOG_EVERY_S) -> CharacterizeResult:
    """Run ``protocols`` in order on ``station`` into the session ``out`` (continuing it with ``resume``).

    ``force`` replaces an existing ``out``; ``record_transport`` puts every command and reply of every
    instrument into the session too; ``chip``/``seed`` choose the emulated station's chip. ``progress``:
    ``None`` shows bars on a terminal and a line every ``progress_every_s`` seconds elsewhere (per protocol
    and, for several, overall), ``False`` nothing.
    """
    out = Path(out)
    spec = station_spec(station)
    loaded = [load_protocol(p, spec) for p in protocols]  # validated, limits and routes checked: nothing sent
    identity = station_identity(spec, chip, seed)
    if record_transport and resume:
        raise SessionError("a transport recording cannot be resumed: record the whole run in one go")
    writer: SessionWriter | None = None
    if resume:
        check_resume(out, identity)  # read only: a refused resume leaves the file untouched
        writer = SessionWriter.resume(out)
        try:
            check_resumable(loaded, SessionStore(writer).recorded())
        except BaseException:
            writer.close()
            raise
    else:
        check_new(out, force)
    transport = TransportLog() if record_transport else None
    attempt = int(writer.attrs.get("attempts", 0)) if writer is not None else 0
    try:
        with open_station(spec, chip=chip, seed=seed, record=transport,
                          outcome_seed=RESUMED_OUTCOME_SEED + attempt if attempt else None) as (connected, emulated):
            if writer is None:
                metadata = {**session_metadata(connected, emulated), "identity": identity,
                            "transport_recorded": record_transport}
                writer = SessionWriter.create(out, "characterization", metadata, overwrite=force)
            for protocol in loaded:
                protocol.attach(connected)
            store = SessionStore(writer)
            finished = {i for i, run in enumerate(store.recorded()) if run.status == COMPLETED} if resume else set()
            to_run = [p for i, p in enumerate(loaded) if i not in finished]
            progress_sink = ProgressSink(progress, log_every_s=progress_every_s, overall_work=sum(
                work_of(p.plan()) for p in to_run) if len(to_run) > 1 else None)
            sinks: list[Any] = [progress_sink]
            transport_sink = TransportSink(writer, transport) if transport is not None else None
            if transport_sink is not None:
                sinks.append(transport_sink)
            for index in range(len(writer.runs()) if resume else 0):
                for device, reason in lost_devices(store.tables(index)).items():
                    connected.mark_lost(device, reason)  # found open in an earlier attempt: stays untouched
            if resume:
                check_instruments(writer.attrs.get("instruments_idn") or {},
                                  {role: inst.idn for role, inst in connected.instruments.items()}, out)
            engine = RunEngine(store, sinks, guard=station_guard(connected))
            try:
                statuses = engine.run(loaded, resume=resume)
            except BaseException as exc:
                mark_resumable(exc, out)
                raise
            finally:
                progress_sink.close()  # its lines and bars end with the runs, however they end
            virtual = emulated.clock_s if emulated is not None else None
        if transport_sink is not None:
            transport_sink.flush()  # the safe-state commands sent when the station closed
    finally:
        if writer is not None:
            writer.close()
    return CharacterizeResult(out, {p.name: s for p, s in zip(loaded, statuses, strict=True)}, virtual,
                              connected.safe_state_report)


def station_guard(station: Station) -> Any:
    def guard(measurement: Measurement, unit: Unit) -> Any:
        return station.checked(f"{measurement.name} {unit.describe()}")
    return guard


def session_metadata(station: Station, emulated: Any) -> dict[str, Any]:
    """What a session records about where it was measured."""
    meta: dict[str, Any] = {"station": station.spec.snapshot(), "hostname": platform.node(),
                            "instruments_idn": {role: inst.idn for role, inst in station.instruments.items()},
                            "devices": [{"id": d.id, "width_m": d.width_m} for d in station.spec.devices.values()
                                        if d.kind == HALL_BAR],
                            "dw_tracks": station.spec.devices_of(DW_TRACK)}
    if emulated is not None:
        chip = emulated.chip
        meta["emulated"] = True
        meta["chip"] = {"name": chip.spec.name, "seed": chip.spec.seed}
        meta["notes"] = "measured on the emulated probe station (simulated chip behind emulated instruments)"
    return meta
