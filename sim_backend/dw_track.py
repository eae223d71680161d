"""Domain-wall synapse tracks on the chip: two-terminal DW magnetic tunnel junctions the station programs.

Each track is a DW synapse of the chip's ``synapses:`` model (:mod:`sim_backend.dw_synapse`: ``K`` states,
levels, programming noise σ, device-to-device level variation) made physical, so that the emulated probe
station can program it with the pulse generator and read it with the source meter.

**Device.** A magnetic tunnel junction whose free layer is a short track holding one domain wall
(the spin-torque memristor of Chanthbouala et al., Nat. Phys. 7, 626 (2011)), with ``K`` pinning sites
along it (Lequeux et al., Sci. Rep. 6, 31510 (2016): a DW-MTJ with discrete, pinned resistance levels).
The wall's position is the synapse's weight ``w``: ``w = −1`` with the whole free layer antiparallel
(the wall at the track's start), ``w = +1`` parallel. State ``k`` is pinning site ``k``; its nominal
weight is the model's level ``w_k``. The junction extends a little beyond the outer sites, so a wall
landing a little past them still reads on the same line.

**Read (two-terminal, linear in the wall position).** The two domains conduct in parallel::

    G(w) = (G_low + G_high)/2 + w · (G_high − G_low)/2

``G_low`` (all antiparallel, ``w = −1``) and ``G_high`` (all parallel, ``w = +1``); defaults 20 mS and
40 mS (R_AP = 50 Ω, R_P = 25 Ω: a 100 % TMR, low-RA junction of 5 Ω·µm² over 1 µm × 0.2 µm, the regime in
which currents of a few mA move the wall without breaking the barrier). The source meter's four-wire read
(its sense leads on Kelvin pads at both electrodes) gives ``R = 1/G`` with a relative Gaussian read noise
(default 0.1 % per reading). A read current far below the first depinning current does not move the wall.

**Programming (spin-transfer torque of the vertical current).** A pulse of ``V`` volts from the pulse
generator (open-circuit amplitude, 50 Ω output) drives ``I = V/(R + 50 Ω)`` through the junction. The
pinning sites are graded (deeper notches along the track): the wall passes from site ``k−1`` into site
``k`` when the current exceeds the depinning current ``I_k = I_first + (k − 1)·I_step`` (``k = 1 … K−1``,
default 4 mA + 2 mA steps), the current being computed with the wall at site ``k−1`` (its nominal level);
it stops at the first site it cannot leave. So, after a reset, the amplitude selects the state. A
negative pulse above ``I_reset`` (default 8 mA; the notches are asymmetric, so they hold the wall
against positive currents only) drives it back to site 0: the reset. A pulse shorter than
``min_width`` (default 100 ns, the wall's transit time between sites) moves nothing.

Where the wall lands is :class:`~sim_backend.dw_synapse.DWSynapseArray`'s noise model: every move
(every reset too) is a programming event of that array, landing at ``w_k + o_dk + ε``. With the defaults
and the model's 5 states, the amplitudes (after a reset) that select states 1 … 4 lie between the
thresholds 0.400, 0.540, 0.667 and 0.786 V (e.g. 0.47, 0.60, 0.725 and 0.85 V); −1.0 V resets.

**Breakdown.** A junction voltage ``|I|·R`` above ``breakdown_voltage`` (default 1.0 V, an MgO barrier
of about 1 nm) destroys the barrier: the track reads open from then on and moves no more.

A chip file declares its tracks under ``dw_tracks:`` (their model is the file's ``synapses:`` section)::

    dw_tracks:
      conductance: {low: 20mS, high: 40mS}
      read_noise: 0.001            # relative, one reading
      depinning_current: {first: 4mA, step: 2mA}
      reset_current: 8mA
      min_width: 100ns
      breakdown_voltage: 1.0 V
      tracks: [{id: dw-1}, {id: dw-2}]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from instruments.config_files import check_keys
from instruments.units import QuantityError, parse_quantity
from sim_backend.dw_synapse import DWSynapseArray, DWSynapseConfig, SynapseConfigError

TRACK_KEYS = {"conductance", "read_noise", "depinning_current", "reset_current", "min_width", "breakdown_voltage",
              "tracks"}
TRACK_SEED_OFFSET = 104_729  # the tracks' random streams start here above the chip's seed (the Hall bars' own)
OPEN_OHM = math.inf


@dataclass(frozen=True)
class DWTrackSpec:
    """The chip's DW tracks, validated (SI units: S, A, s, V; ``read_noise`` relative)."""

    ids: tuple[str, ...]
    synapse: DWSynapseConfig
    g_low_s: float = 20e-3
    g_high_s: float = 40e-3
    read_noise: float = 1e-3
    depinning_first_a: float = 4e-3
    depinning_step_a: float = 2e-3
    reset_current_a: float = 8e-3
    min_width_s: float = 100e-9
    breakdown_v: float = 1.0

    @classmethod
    def from_mapping(cls, raw: Any, synapse: DWSynapseConfig, where: str = "dw_tracks.") -> DWTrackSpec:
        """The ``dw_tracks:`` section of a chip file; errors name the key (:class:`SynapseConfigError`)."""
        if not isinstance(raw, Mapping):
            raise SynapseConfigError(f"{where.rstrip('.')}: expected a mapping, got {raw!r}")
        check_keys(raw, TRACK_KEYS, where, SynapseConfigError)
        values: dict[str, Any] = {}
        conductance = raw.get("conductance", {})
        if not isinstance(conductance, Mapping):
            raise SynapseConfigError(f"{where}conductance: expected {{low: ..., high: ...}}, got {conductance!r}")
        check_keys(conductance, {"low", "high"}, f"{where}conductance.", SynapseConfigError)
        values["g_low_s"] = _positive(conductance, "low", "S", f"{where}conductance.", cls.g_low_s)
        values["g_high_s"] = _positive(conductance, "high", "S", f"{where}conductance.", cls.g_high_s)
        if values["g_high_s"] <= values["g_low_s"]:
            raise SynapseConfigError(f"{where}conductance.high: must be above conductance.low, got "
                                     f"{conductance.get('high')!r}")
        depinning = raw.get("depinning_current", {})
        if not isinstance(depinning, Mapping):
            raise SynapseConfigError(f"{where}depinning_current: expected {{first: ..., step: ...}}, got {depinning!r}")
        check_keys(depinning, {"first", "step"}, f"{where}depinning_current.", SynapseConfigError)
        values["depinning_first_a"] = _positive(depinning, "first", "A", f"{where}depinning_current.",
                                                cls.depinning_first_a)
        values["depinning_step_a"] = _positive(depinning, "step", "A", f"{where}depinning_current.",
                                               cls.depinning_step_a)
        values["read_noise"] = _positive(raw, "read_noise", "", where, cls.read_noise, zero_ok=True)
        values["reset_current_a"] = _positive(raw, "reset_current", "A", where, cls.reset_current_a)
        values["min_width_s"] = _positive(raw, "min_width", "s", where, cls.min_width_s, zero_ok=True)
        values["breakdown_v"] = _positive(raw, "breakdown_voltage", "V", where, cls.breakdown_v)
        tracks = raw.get("tracks")
        if not isinstance(tracks, list) or not tracks:
            raise SynapseConfigError(f"{where}tracks: expected a non-empty list of {{id: ...}}, got {tracks!r}")
        ids: list[str] = []
        for i, entry in enumerate(tracks):
            if not isinstance(entry, Mapping):
                raise SynapseConfigError(f"{where}tracks[{i}]: expected a mapping with an id, got {entry!r}")
            check_keys(entry, {"id"}, f"{where}tracks[{i}].", SynapseConfigError)
            track_id = entry.get("id")
            if not isinstance(track_id, str) or not track_id:
                raise SynapseConfigError(f"{where}tracks[{i}].id: expected a non-empty string, got {track_id!r}")
            if track_id in ids:
                raise SynapseConfigError(f"{where}tracks[{i}].id: duplicate track id {track_id!r}")
            ids.append(track_id)
        return cls(ids=tuple(ids), synapse=synapse, **values)

    def conductance(self, weight: np.ndarray | float) -> np.ndarray:
        """``G(w)`` in S (the module docstring)."""
        mid, half = (self.g_low_s + self.g_high_s) / 2, (self.g_high_s - self.g_low_s) / 2
        return mid + np.asarray(weight, dtype=np.float64) * half

    def weight(self, conductance_s: np.ndarray | float) -> np.ndarray:
        """The inverse of :meth:`conductance`: the weight a conductance (S) stands for."""
        mid, half = (self.g_low_s + self.g_high_s) / 2, (self.g_high_s - self.g_low_s) / 2
        return (np.asarray(conductance_s, dtype=np.float64) - mid) / half

    def depinning_current_a(self, site: int) -> float:
        """The current that moves the wall from site ``site − 1`` into ``site`` (``site ≥ 1``)."""
        return self.depinning_first_a + (site - 1) * self.depinning_step_a


def _positive(raw: Mapping[str, Any], key: str, unit: str, where: str, default: float, zero_ok: bool = False) -> float:
    if key not in raw:
        return default
    try:
        value = parse_quantity(raw[key], unit, f"{where}{key}")
    except QuantityError as exc:
        raise SynapseConfigError(str(exc)) from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        raise SynapseConfigError(f"{where}{key}: must be a {'non-negative' if zero_ok else 'positive'} quantity, "
                                 f"got {raw[key]!r}")
    return value


class DWTracks:
    """The chip's DW tracks: wall positions (a :class:`DWSynapseArray`), breakdown, pulses and reads."""

    def __init__(self, spec: DWTrackSpec, seed: int) -> None:
        self.spec = spec
        self.ids = list(spec.ids)
        self._index = {track_id: i for i, track_id in enumerate(self.ids)}
        self.walls = DWSynapseArray(spec.synapse, len(self.ids), seed=seed + TRACK_SEED_OFFSET)
        self.destroyed = np.zeros(len(self.ids), dtype=bool)
        self.read_generator = torch.Generator().manual_seed(seed + TRACK_SEED_OFFSET + 1)
        levels = np.asarray(spec.synapse.levels, dtype=np.float64)
        self.site_resistance_ohm = 1.0 / spec.conductance(levels)  # with the wall at each site's nominal level

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, track_id: object) -> bool:
        return track_id in self._index

    def index(self, track_id: str) -> int:
        if track_id not in self._index:
            raise KeyError(f"no DW track {track_id!r} on the chip (tracks: {', '.join(self.ids)})")
        return self._index[track_id]

    def reseed(self, seed: int) -> None:
        """Restart the landing and read-noise streams (the device-to-device level offsets stay)."""
        self.walls.generator.manual_seed(int(seed) + TRACK_SEED_OFFSET)
        self.read_generator.manual_seed(int(seed) + TRACK_SEED_OFFSET + 1)

    def state(self, index: int) -> int:
        return int(self.walls.state[index])

    def weight(self, index: int) -> float:
        """The realized weight (wall position) of track ``index``."""
        return float(self.walls.weight[index])

    def resistance_ohm(self, index: int) -> float:
        """Two-terminal resistance now, without read noise (``inf``: destroyed)."""
        if self.destroyed[index]:
            return OPEN_OHM
        return float(1.0 / self.spec.conductance(self.weight(index)))

    def readings_ohm(self, weights: np.ndarray) -> np.ndarray:
        """Noisy four-wire readings ``R = 1/G(w)`` in Ω of walls at ``weights`` (NaN: destroyed → ``inf``)."""
        weights = np.asarray(weights, dtype=np.float64)
        noise = torch.randn(weights.shape, generator=self.read_generator, dtype=torch.float64).numpy()
        with np.errstate(invalid="ignore"):
            readings = (1.0 + self.spec.read_noise * noise) / self.spec.conductance(weights)
        return np.where(np.isnan(weights), OPEN_OHM, readings)

    def read(self, index: int, n_readings: int = 1) -> np.ndarray:
        """``n_readings`` noisy readings of track ``index`` now, in Ω."""
        weight = math.nan if self.destroyed[index] else self.weight(index)
        return self.readings_ohm(np.full(n_readings, weight))

    def drive(self, index: int, levels: np.ndarray, durations_s: np.ndarray, source_impedance_ohm: float | None,
              break_at: int | None = None) -> np.ndarray:
        """Drive track ``index`` through piecewise-constant segments; its wall position after each (NaN once
        destroyed).

        ``levels`` are open-circuit voltages behind ``source_impedance_ohm`` (the pulse generator) or, with
        ``source_impedance_ohm=None``, currents in A (the source meter). ``break_at``: the segment at which
        an injected fault destroys the track (the emulated station's breakdown fault).
        """
        levels = np.asarray(levels, dtype=np.float64).reshape(-1)
        durations = np.broadcast_to(np.asarray(durations_s, dtype=np.float64), levels.shape)
        after = np.empty(levels.size)
        spec, walls = self.spec, self.walls
        limit = levels.size if break_at is None else min(break_at, levels.size)
        moving = np.flatnonzero((levels[:limit] != 0.0) & (durations[:limit] >= spec.min_width_s))
        if self.destroyed[index]:
            return np.full(levels.size, math.nan)
        position = self.weight(index)
        done = 0
        for k in moving:
            after[done:k] = position
            done = k
            level = float(levels[k])
            resistance = 1.0 / float(spec.conductance(position))
            current = level if source_impedance_ohm is None else level / (resistance + source_impedance_ohm)
            if abs(current) * resistance > spec.breakdown_v:
                self.destroyed[index] = True
                break
            site = self._site_after(self.state(index), current, level, source_impedance_ohm)
            if site is not None:
                position = float(walls.program(torch.tensor([site]), torch.tensor([index]))[0])
        if break_at is not None and not self.destroyed[index]:
            after[done:limit] = position
            done = limit
            self.destroyed[index] = True
        if self.destroyed[index]:
            position = math.nan
        after[done:] = position
        return after

    def _site_after(self, site: int, current_a: float, level: float, source_impedance_ohm: float | None) -> int | None:
        """Where a segment leaves a wall pinned at ``site`` (``None``: it does not move)."""
        if current_a < 0:
            return 0 if -current_a > self.spec.reset_current_a else None
        start = site
        while site + 1 < self.spec.synapse.states:
            r = self.site_resistance_ohm[site]
            at_site = level if source_impedance_ohm is None else level / (r + source_impedance_ohm)
            if at_site <= self.spec.depinning_current_a(site + 1):
                break
            site += 1
        return site if site != start else None


def track_spec(raw: Mapping[str, Any]) -> DWTrackSpec | None:
    """The DW tracks of a chip mapping (``None`` when it declares none); errors name the key."""
    if raw.get("dw_tracks") is None:
        return None
    return DWTrackSpec.from_mapping(raw["dw_tracks"], DWSynapseConfig.from_mapping(raw.get("synapses")))


__all__ = ["DWTrackSpec", "DWTracks", "track_spec"]
