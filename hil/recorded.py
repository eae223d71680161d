"""Measured device curves from a recorded session: the data behind the replay backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hil.backends import ReplayBackend
from hil.session import COMPLETED, Session, SessionError
from instruments.units import parse_quantity


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def recorded_curves(path: str | Path) -> tuple[dict[str, dict[str, Any]], float]:
    """Per-device switching counts of the session's last completed bias sweep, and its pulse width.

    Returns ``({device_id: {width_m, current_a, n_switched, n_trials, r_ch_ohm, reset_current_a,
    reset_width_s}}, pulse_width_s)`` — what :meth:`ReplayBackend.from_curves` reads.
    """
    with Session(path) as session:
        sweeps = [run for run in session.runs_of("bias_sweep") if run.status == COMPLETED]
        if not sweeps:
            raise SessionError(f"{path}: no completed bias sweep to take device curves from")
        run = sweeps[-1]
        curves = run.analysis("curves")
        if curves is None:
            raise SessionError(f"{path}: run {run.name} has no analysis/curves")
        widths = {d["id"]: d["width_m"] for d in session.attrs.get("devices") or []}
        resistance = np.concatenate([r.table("resistance") for r in session.runs_of("channel_resistance")] or
                                    [np.zeros(0)])
        parameters = run.parameters
        trials = run.table("trials")
    pulse_widths = np.unique(curves["width_s"])
    if pulse_widths.size != 1:
        raise SessionError(f"{path}: the bias sweep used several pulse widths; a backend needs one")
    reset_width_s = parse_quantity((parameters.get("reset") or {}).get("width", "100us"), "s", "reset.width")
    out: dict[str, dict[str, Any]] = {}
    for device in np.unique(curves["device"]):
        name = _text(device)
        rows = curves[curves["device"] == device]
        r_rows = resistance[resistance["device"] == device] if resistance.size else resistance
        reset = trials["reset_a"][trials["device"] == device]
        out[name] = {"width_m": widths.get(name, float("nan")), "current_a": rows["amplitude_a"],
                     "n_switched": rows["n_switched"], "n_trials": rows["n_trials"],
                     "r_ch_ohm": float(np.mean(r_rows["r_ch_ohm"])) if r_rows.size else None,
                     "reset_current_a": float(reset[0]) if reset.size else 0.0, "reset_width_s": reset_width_s}
    return out, float(pulse_widths[0])


def replay_backend(path: str | Path, seed: int = 0, device: str = "cpu") -> ReplayBackend:
    """A :class:`ReplayBackend` of the measured curves of a recorded session (no physics)."""
    curves, pulse_width_s = recorded_curves(path)
    return ReplayBackend.from_curves(curves, pulse_width_s=pulse_width_s, seed=seed, source=str(path), device=device)
