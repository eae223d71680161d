"""``hil characterize``: run characterization protocols on a station into one session file.

A station file whose instruments are all ``address: emulated`` is served by an emulated station
started in-process (the embedded default); any other file is connected through VISA. The instruments
are put in the safe state on exit, Ctrl-C and errors (the station's context manager).
"""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hil.recording import ProgressSink, SessionSink
from hil.session import COMPLETED, SessionError, SessionWriter
from instruments.config_files import read_yaml
from instruments.station import Station
from instruments.station_config import StationSpec, load_station_spec
from instruments.transport import TransportLog
from protocols import analysis
from protocols.characterization import ProtocolConfigError, load_protocol
from protocols.engine import run as run_engine


@dataclass
class CharacterizeResult:
    path: Path
    statuses: dict[str, str]
    virtual_time_s: float | None = None


@contextlib.contextmanager
def open_station(station: str | Path | StationSpec, chip: str | Path | None = None, seed: int | None = None,
                 outcome_seed: int | None = None,
                 record: TransportLog | None = None) -> Iterator[tuple[Station, Any]]:
    """Connect to the station; start an emulated one in-process when its addresses say ``emulated``.

    Yields ``(station, emulated)`` where ``emulated`` is the :class:`EmulatedStation` or ``None``.
    """
    spec = station if isinstance(station, StationSpec) else load_station_spec(station)
    emulated_roles = [role for role, inst in spec.instruments.items() if inst.address == "emulated"]
    if emulated_roles and len(emulated_roles) != len(spec.instruments):
        raise ValueError(f"instruments {', '.join(emulated_roles)} are 'emulated' but the others are not: "
                         "a station is either all emulated or all real")
    if not emulated_roles:
        with Station.open(spec, record=record) as connected:
            yield connected, None
        return
    from sim_backend.emulated.station import EmulatedStation

    with EmulatedStation(spec, chip=chip, seed=seed) as emulated:
        if outcome_seed is not None:
            emulated.chip.reseed(outcome_seed)
        with Station.open(emulated.spec, record=record) as connected:
            yield connected, emulated


def _session_metadata(station: Station, emulated: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"station": station.spec.snapshot(), "hostname": platform.node(),
                            "instruments_idn": {"pulse_generator": station.pulse_generator.idn,
                                                "source_meter": station.source_meter.idn,
                                                "switch_matrix": station.switch_matrix.idn}}
    if emulated is not None:
        chip = emulated.chip
        meta["emulated"] = True
        meta["chip"] = {"name": chip.spec.name, "seed": chip.spec.seed}
        meta["notes"] = "measured on the emulated probe station (simulated chip behind emulated instruments)"
    meta["devices"] = [{"id": d.id, "width_m": d.width_m} for d in station.spec.devices.values()]
    return meta


def finish_analysis(run: Any, protocol: str, station: Station) -> None:
    """Derived results of a completed run, stored under the run's ``analysis/``."""
    widths = {d.id: d.width_m for d in station.spec.devices.values()}
    if protocol in ("bias_sweep", "reset_check"):
        trials = run.table("trials")
        curves = analysis.switching_curves(trials)
        run.write_analysis("curves", curves)
        run.write_analysis("reset", analysis.reset_summary(trials))
        if protocol == "bias_sweep":
            fits = analysis.fit_curves(curves)
            run.write_analysis("fits", fits)
            run.write_analysis("summary", {"by_width": analysis.size_summary(fits, widths)})
    elif protocol == "hysteresis_loop":
        loops = analysis.loop_widths(run.table("steps"))
        run.write_analysis("loops", loops)
        run.write_analysis("summary", {"by_width": analysis.size_summary({}, widths, loops)})


class TransportSink:
    """Appends the transport log's new entries to the session after every unit (crash-safe like the trials)."""

    def __init__(self, writer: SessionWriter, log: TransportLog) -> None:
        self.writer, self.log, self.written = writer, log, 0

    def flush(self) -> None:
        self.writer.append_transport(self.log.to_records(self.written))
        self.written = len(self.log.entries)

    def start(self, *args: Any) -> None:
        self.flush()

    def records(self, *args: Any) -> None:
        self.flush()

    def stop(self, *args: Any) -> None:
        self.flush()


def characterize(station: str | Path | StationSpec, protocols: Sequence[str | Path | dict], out: str | Path,
                 resume: bool = False, progress: bool | None = None, chip: str | Path | None = None,
                 seed: int | None = None, record_transport: bool = False) -> CharacterizeResult:
    """Run ``protocols`` in order on ``station`` into the session ``out`` (continuing it with ``resume``).

    ``record_transport``: every command and reply of every instrument goes into the session too.
    """
    if record_transport and resume:
        raise SessionError("a transport recording cannot be resumed: record the whole run in one go")
    transport = TransportLog() if record_transport else None
    transport_sink: TransportSink | None = None
    out = Path(out)
    raw_protocols = [p if isinstance(p, Mapping) else read_yaml(p, "protocol", ProtocolConfigError) for p in protocols]
    if resume and not out.exists():
        raise SessionError(f"{out}: nothing to resume (no such file)")
    writer = SessionWriter.append_to(out) if resume else None
    attempt = 0
    if writer is not None:
        attempt = int(writer.attrs.get("attempts", 1))
        writer.set_attrs(attempts=attempt + 1)
    statuses: dict[str, str] = {}
    try:
        # a resumed emulated run draws fresh switching outcomes (same chip, next outcome stream)
        with open_station(station, chip=chip, seed=seed, outcome_seed=None if attempt == 0 else 1000 + attempt,
                          record=transport) as (connected, emulated):
            # every protocol is validated against the station before anything is measured or written
            loaded = [load_protocol(raw, connected) for raw in raw_protocols]
            if writer is None:
                writer = SessionWriter.create(out, kind="characterization",
                                              metadata={**_session_metadata(connected, emulated), "attempts": 1,
                                                        "transport_recorded": record_transport})
                if transport is not None:
                    transport_sink = TransportSink(writer, transport)
            # the k-th protocol continues the k-th run of the file (runs are created in order); all are
            # checked before anything is measured
            recorded = writer.runs() if resume else []
            for protocol, run in zip(loaded, recorded, strict=False):
                if (run.attrs.get("protocol") != protocol.name
                        or run.attrs.get("parameters") != _normalise(protocol.parameters())):
                    raise SessionError(f"{out}: the {protocol.name} parameters differ from the run being resumed "
                                       f"({run.name}); resume with the same protocol files, in the same order")
            for index, protocol in enumerate(loaded):
                run = recorded[index] if index < len(recorded) else None
                if run is not None and run.attrs.get("status") == COMPLETED:
                    statuses[protocol.name] = COMPLETED
                    continue
                sink = SessionSink(writer, run, path=protocol.path if hasattr(protocol, "path") else "")
                done = sink.done_units()
                bar = ProgressSink(progress, done=done)
                sinks: list[Any] = [sink, bar] + ([transport_sink] if transport_sink is not None else [])
                statuses[protocol.name] = run_engine(protocol, sinks, done=done)
                finish_analysis(sink.run, protocol.name, connected)
            virtual = emulated.clock_s if emulated is not None else None
        if transport_sink is not None:
            transport_sink.flush()  # the safe-state commands sent when the station closed
    finally:
        if writer is not None:
            writer.close()
    return CharacterizeResult(out, statuses, virtual)


def _normalise(parameters: dict[str, Any]) -> Any:
    """Parameters as they read back from the file (JSON round trip), for comparison on resume."""
    import json

    return json.loads(json.dumps(parameters, sort_keys=True, default=str))
