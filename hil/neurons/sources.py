"""Backends as the commands ask for them: the simulator of a chip file, the curves of a recorded session, or
the devices of a station."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hil.neurons.backend import NeuronBackend
from hil.neurons.measured import ReplayBackend
from hil.neurons.simulated import SimBackend
from hil.session import COMPLETED, Session, SessionError
from instruments.config_files import PROTOCOL_FILES
from instruments.failures import UserFacingError
from instruments.station import Station
from instruments.station_config import parse_station
from protocols.analysis import curves_by_device
from protocols.bias_sweep import BiasSweep
from protocols.channel_resistance import ChannelResistance, channel_resistances
from protocols.registry import load_protocol

DEFAULT_SWEEP = PROTOCOL_FILES / "bias-sweep.yaml"
BACKENDS = ("sim", "replay", "hardware")


def recorded_curves(path: str | Path) -> tuple[dict[str, dict[str, Any]], float]:
    """Per-device switching counts of the session's last completed bias sweep, and its pulse width.

    Returns ``({device_id: {width_m, current_a, n_switched, n_trials, r_ch_ohm, reset_current_a,
    reset_width_s}}, pulse_width_s)`` — what :meth:`ReplayBackend.from_curves` reads.
    """
    with Session(path) as session:
        sweeps = [run for run in session.runs_of(BiasSweep.name) if run.status == COMPLETED]
        if not sweeps:
            raise SessionError(f"{path}: no completed bias sweep to take device curves from")
        run = sweeps[-1]
        curves = run.analysis("curves")
        if curves is None:
            raise SessionError(f"{path}: run {run.name} has no analysis/curves")
        spec = parse_station(session.attrs["station"])
        r_ch: dict[str, list[float]] = {}
        for resistance_run in session.runs_of(ChannelResistance.name):
            for device, value in channel_resistances(resistance_run.tables()).items():
                r_ch.setdefault(device, []).append(value)
        sweep = load_protocol(run.parameters, spec)
    assert isinstance(sweep, BiasSweep)
    by_device = curves_by_device(curves)
    widths = {float(w) for counts in by_device.values() for w in np.unique(counts.width_s)}
    if len(widths) != 1:
        raise SessionError(f"{path}: the bias sweep used several pulse widths; a backend needs one")
    out: dict[str, dict[str, Any]] = {}
    for device, counts in by_device.items():
        out[device] = {"width_m": spec.device(device).width_m, "current_a": counts.current_a,
                       "n_switched": counts.n_switched, "n_trials": counts.n_trials,
                       "r_ch_ohm": float(np.mean(r_ch[device])) if device in r_ch else None,
                       "reset_current_a": sweep.reset_current(device),
                       "reset_width_s": sweep.settings.timing.reset_width_s}
    return out, widths.pop()


def replay_backend(path: str | Path, seed: int = 0, device: str = "cpu") -> ReplayBackend:
    """A :class:`ReplayBackend` of the measured curves of a recorded session (no physics)."""
    curves, pulse_width_s = recorded_curves(path)
    return ReplayBackend.from_curves(curves, pulse_width_s=pulse_width_s, seed=seed, source=str(path), device=device)


def hardware_sweep(station: Station, protocol: str | Path | Mapping[str, Any] = DEFAULT_SWEEP,
                   devices: list[str] | None = None) -> BiasSweep:
    """The bias-sweep protocol whose currents, reset pulses and trial settings a hardware backend uses."""
    raw = dict(load_protocol(protocol, station.spec).raw)
    if devices is not None:
        raw["devices"] = devices
    sweep = load_protocol(raw, station.spec)
    if not isinstance(sweep, BiasSweep):
        raise ValueError(f"{protocol}: a hardware backend measures its curves with a bias_sweep protocol")
    return sweep


def source_identity(kind: str, station: str | Path | None = None, chip: str | Path | None = None,
                    session: str | Path | None = None) -> dict[str, Any]:
    """What a backend's devices are, from the files alone (no instrument is contacted): the chip file of
    the simulator, the recorded session of a replay, the station (and emulated chip) of the hardware."""
    from hil.lab.provenance import chip_identity, station_identity

    if kind == "sim":
        return {"chip": chip_identity(chip)}
    if kind == "replay":
        if session is None:
            raise UserFacingError("--backend replay needs --session FILE.h5 (a recorded characterization)")
        with Session(session) as recorded:
            return {"session": {"path": str(Path(session).resolve()), "created_utc": recorded.attrs.get("created_utc")}}
    if kind == "hardware":
        if station is None:
            raise UserFacingError("--backend hardware needs --station FILE")
        from hil.lab.connection import station_spec

        return station_identity(station_spec(station), chip)
    raise UserFacingError(f"--backend: expected one of {', '.join(BACKENDS)}, got {kind!r}")


@contextlib.contextmanager
def open_backend(kind: str, station: str | Path | None = None, chip: str | Path | None = None,
                 session: str | Path | None = None, seed: int = 0, mode: str = "pulse",
                 devices: list[str] | None = None, trials_per_point: int = 50, remeasure_every: int = 50,
                 device: str = "cpu", outcome_seed: int | None = None
                 ) -> Iterator[tuple[NeuronBackend, dict[str, Any]]]:
    """The backend a command asked for, and what a session should record about its source.

    The source's ``identity`` is what a resumed training run must match (see :func:`source_identity`).
    ``outcome_seed`` restarts the emulated station's switching outcomes (a resumed run draws new ones).
    """
    identity = source_identity(kind, station, chip, session)
    if kind == "sim":
        from sim_backend.chip import load_chip

        # the chip file's own seed draws its devices; ``seed`` restarts the switching outcomes
        backend = SimBackend(load_chip(chip, device=device), seed=seed)
        yield backend, {"chip": str(chip or "configs/chip.default.yaml"), "identity": identity}
    elif kind == "replay":
        yield replay_backend(session, seed=seed, device=device), {"session": str(session), "identity": identity}
    else:
        from hil.lab.connection import open_station, station_spec
        from hil.neurons.hardware import HardwareBackend

        with open_station(station_spec(station), chip=chip, outcome_seed=outcome_seed) as (connected, emulated):
            sweep = hardware_sweep(connected, devices=devices)
            backend = HardwareBackend(connected, {d: sweep.currents(d) for d in sweep.devices},
                                      {d: sweep.reset_current(d) for d in sweep.devices}, mode=mode,
                                      pulse_width_s=sweep.settings.width_s, trials_per_point=trials_per_point,
                                      remeasure_every=remeasure_every, timing=sweep.settings.timing, seed=seed,
                                      path=sweep.settings.path)
            yield backend, {"station": connected.spec.snapshot(), "emulated": emulated is not None,
                            "instruments_idn": {role: inst.idn for role, inst in connected.instruments.items()},
                            "emulated_chip": emulated.chip if emulated is not None else None, "identity": identity}
