"""The bench the emulated instruments share: one simulated chip, one virtual clock, the routing.

What the emulated pulse generator plays reaches the device the emulated switch matrix routes, and what
the emulated source meter reads is that device: a Hall bar (its ``R_xy`` on the four-wire read, its channel
on the two-wire one) or a DW synapse track of the chip (:mod:`sim_backend.dw_track`: its two-terminal
resistance on both). The pulse generator's trigger output is wired to the
source meter's trigger input: :meth:`Bench.drive_voltage` fires it at the start of every waveform, and
an armed source meter takes its readings at its own (trigger-model) times within the waveform.

All methods are called under :attr:`Bench.lock` by the servers (see ``EmulatedInstrument.receive``).

Faults for tests (:class:`BenchFaults`, ``bench.faults``): a device that breaks down at a chosen waveform.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from sim_backend.chip import Chip

SOURCE_IMPEDANCE_OHM = 50.0  # pulse generator output impedance (physics.md)
BREAKDOWN_FAULT_FACTOR = 1.5  # an injected breakdown drives this many times the device's breakdown current


@dataclass
class BenchFaults:
    """Faults of the bench (for tests of recovery): a device that breaks down.

    ``break_after_waveforms = N`` (``N >= 1``): the device routed when the ``N``-th waveform from now plays
    is destroyed, as if that waveform's first pulse (its first segment that carries current, or its first
    segment if none does) had exceeded the device's breakdown current: the chip counts it destroyed from
    that segment on, so an armed source meter's readings from there on within the waveform, and every
    reading after it, read open (as destroyed devices do), and a current source drives nothing through it.
    Every waveform the pulse generator plays (:meth:`Bench.drive_voltage`) counts, routed or not; if no
    device is routed at the ``N``-th, nothing breaks. The source meter's own currents do not count. Once
    it has struck, the count is ``None`` again.
    """

    break_after_waveforms: int | None = None

    def waveform_played(self) -> bool:
        """One waveform plays (the bench calls this): whether it breaks the routed device."""
        if self.break_after_waveforms is None:
            return False
        self.break_after_waveforms -= 1
        if self.break_after_waveforms > 0:
            return False
        self.break_after_waveforms = None
        return True



class WaveformRecord:
    """What one played waveform did to the routed device, for readings taken while it played.

    ``states``: the device's state before the waveform, then after each segment (a Hall bar's ``m_z``, a DW
    track's wall position); ``readings_of(indices, times)`` turns the states at ``indices`` into noisy readings in Ω
    taken at the virtual ``times`` (what the device's temperature and its telegraph noise were then). ``None`` for
    both: nothing was routed (readings are open).
    """

    def __init__(self, start_s: float, ends_s: np.ndarray, states: np.ndarray | None = None,
                 readings_of: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None) -> None:
        self.start_s, self.ends_s = start_s, ends_s
        self.states, self.readings_of = states, readings_of

    @property
    def end_s(self) -> float:
        return float(self.ends_s[-1]) if self.ends_s.size else self.start_s

    def rxy_after(self, segments: np.ndarray) -> np.ndarray:
        """Readings (Ω) in the state after each of the given segments (by index), at each segment's end."""
        segments = np.asarray(segments, dtype=np.int64)
        if self.states is None or self.readings_of is None:
            return np.full(segments.shape, np.inf)
        return self.readings_of(segments + 1, self.ends_s[segments])

    def rxy_at(self, times_s: np.ndarray) -> np.ndarray:
        """Readings (Ω) at the given virtual times (state of the segment then playing)."""
        times = np.asarray(times_s, dtype=np.float64)
        if self.states is None or self.readings_of is None:
            return np.full(times.shape, np.inf)
        completed = np.searchsorted(self.ends_s, times, side="right")  # segments finished by then
        return self.readings_of(completed, times)


TriggerListener = Callable[[WaveformRecord], None]
"""Called once per trigger (the start of a waveform) with what the waveform does."""


class Bench:
    """Chip, virtual clock and routing shared by one station's emulated instruments.

    ``routes`` maps each device id to the set of crosspoints (e.g. ``{"1A01", "1B02", ...}``) that
    connect it to the instruments. A device is routed when all its crosspoints are closed and no
    other device's are; otherwise nothing is connected (pulses go nowhere, reads are open).
    """

    def __init__(self, chip: Chip, routes: Mapping[str, Iterable[str]] | None = None,
                 realtime: bool = False, source_impedance_ohm: float = SOURCE_IMPEDANCE_OHM) -> None:
        self.chip = chip
        self.routes = {device: frozenset(points) for device, points in (routes or {}).items()}
        for device in self.routes:
            if not self._is_track(device):
                chip.index(device)  # an unknown device id fails here, at set-up
        self.realtime = realtime
        self.source_impedance_ohm = source_impedance_ohm
        self.lock = threading.RLock()
        self.clock_s = 0.0
        self.closed: frozenset[str] = frozenset()
        self.routed_device: str | None = None
        self._listeners: list[TriggerListener] = []
        self.faults = BenchFaults()

    # -- time -----------------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Advance the virtual clock (and, with ``realtime``, wait for real)."""
        if seconds < 0:
            raise ValueError("the clock cannot go back")
        self.clock_s += seconds
        if self.realtime and seconds > 0:
            time.sleep(seconds)

    # -- routing --------------------------------------------------------------------------------

    def set_closed(self, crosspoints: Iterable[str]) -> None:
        """The switch matrix reports its closed crosspoints; the routed device follows from them."""
        self.closed = frozenset(point.upper() for point in crosspoints)
        routed = [device for device, points in self.routes.items() if points and points <= self.closed]
        self.routed_device = routed[0] if len(routed) == 1 else None

    def _is_track(self, device: str) -> bool:
        return self.chip.tracks is not None and device in self.chip.tracks

    def _routed_index(self) -> int | None:
        """The routed Hall bar's index on the chip (``None``: nothing, or a DW track, is routed)."""
        if self.routed_device is None or self._is_track(self.routed_device):
            return None
        return self.chip.index(self.routed_device)

    def _routed_track(self) -> int | None:
        """The routed DW track's index among the chip's tracks (``None``: none is routed)."""
        if self.routed_device is None or not self._is_track(self.routed_device):
            return None
        assert self.chip.tracks is not None
        return self.chip.tracks.index(self.routed_device)

    def _hall_record(self, index: int, start: float, durations: np.ndarray, states: np.ndarray,
                     temperatures_k: np.ndarray) -> WaveformRecord:
        """``states``/``temperatures_k``: before the waveform, then after each segment."""
        return WaveformRecord(start, start + np.cumsum(durations), states,
                              lambda at, times: self.rxy_of_states(index, states[at], times, temperatures_k[at]))

    def _drive_track(self, track: int, start: float, levels: np.ndarray, durations: np.ndarray,
                     source_impedance_ohm: float | None, break_at: int | None = None) -> WaveformRecord:
        """Segments through DW track ``track`` (voltages behind ``source_impedance_ohm``, or currents)."""
        tracks = self.chip.tracks
        assert tracks is not None
        before = np.nan if tracks.destroyed[track] else tracks.weight(track)
        positions = tracks.drive(track, levels, durations, source_impedance_ohm, break_at)
        positions = np.concatenate([[before], positions])
        return WaveformRecord(start, start + np.cumsum(durations), positions,
                              lambda at, times: tracks.readings_ohm(positions[at]))

    # -- what flows through the routed device ---------------------------------------------------

    def drive_voltage(self, levels_v: np.ndarray, durations_s: np.ndarray) -> WaveformRecord:
        """Play a piecewise-constant voltage waveform from the pulse generator into the routed device.

        The current of each segment is ``V / (R_ch + R_out)`` (a DW track: ``V / (R + R_out)`` with its
        junction's resistance, :meth:`sim_backend.dw_track.DWTracks.drive`). The pulse generator's trigger output
        fires at the start of the waveform: every trigger listener (an armed source meter) gets the
        record of what the device did, and takes its readings at its own times within it. A breakdown
        armed in :attr:`faults` strikes here.
        """
        levels = np.asarray(levels_v, dtype=np.float64).reshape(-1)
        durations = np.broadcast_to(np.asarray(durations_s, dtype=np.float64), levels.shape).copy()
        start = self.clock_s
        index, track = self._routed_index(), self._routed_track()
        breaks = self.faults.waveform_played()
        if track is not None:
            carrying = np.flatnonzero(levels != 0.0)
            break_at = (int(carrying[0]) if carrying.size else 0) if breaks else None
            record = self._drive_track(track, start, levels, durations, self.source_impedance_ohm, break_at)
        elif index is None:
            record = WaveformRecord(start, start + np.cumsum(durations))
        else:
            self.chip.sync(start)
            currents = self.chip.currents_for_voltage(index, torch.from_numpy(levels),
                                                      self.source_impedance_ohm).numpy()
            if breaks and currents.size:
                currents = self._breaking(index, currents)
            record = self._drive_hall(index, start, currents, durations)
        self.advance(float(durations.sum()))
        for listener in list(self._listeners):
            listener(record)
        return record

    def _drive_hall(self, index: int, start: float, currents: np.ndarray, durations: np.ndarray) -> WaveformRecord:
        """Segments of ``currents`` through Hall bar ``index``: one call into the chip, the record of its states."""
        chip = self.chip
        before, warm = int(chip.m_z[index]), float(chip.temperature_k[index])
        response = chip.drive([index], torch.from_numpy(currents)[None, :], torch.from_numpy(durations)[None, :])
        states = np.concatenate([[before], response.m_z[0].numpy()]).astype(np.int8)
        temperatures = np.concatenate([[warm], response.temperature_k[0].cpu().numpy()])
        return self._hall_record(index, start, durations, states, temperatures)

    def _breaking(self, index: int, currents: np.ndarray) -> np.ndarray:
        """``currents`` with the first pulse (the first segment carrying current, else the first segment)
        above device ``index``'s breakdown current: the injected breakdown (:class:`BenchFaults`)."""
        currents = currents.copy()
        carrying = np.flatnonzero(currents != 0.0)
        k = int(carrying[0]) if carrying.size else 0
        over = BREAKDOWN_FAULT_FACTOR * float(self.chip.i_breakdown_a[index])
        currents[k] = math.copysign(over, currents[k])
        return currents

    def source_current(self, current_a: float, duration_s: float) -> None:
        """The source meter forces a DC current through the routed device's channel for ``duration_s``."""
        index, track = self._routed_index(), self._routed_track()
        if index is not None and current_a != 0.0:
            self.chip.sync(self.clock_s)
            self.chip.apply_waveform([index], torch.tensor([[float(current_a)]], dtype=torch.float64),
                                     torch.tensor([[float(duration_s)]], dtype=torch.float64))
        if track is not None and current_a != 0.0:
            assert self.chip.tracks is not None
            self.chip.tracks.drive(track, np.array([float(current_a)]), np.array([float(duration_s)]), None)
        self.advance(duration_s)

    def source_current_steps(self, currents_a: np.ndarray, holds_s: Sequence[float]) -> WaveformRecord:
        """The source meter steps its current through the routed device: one waveform, one call into the chip.

        Step ``k`` holds ``currents_a[k]`` for each duration of ``holds_s`` in turn (e.g. a sweep's delay,
        then the reading's aperture): segment ``k * len(holds_s) + j`` is step ``k``'s ``j``-th. A current
        source drives nothing through an open device: a device destroyed before the steps carries no
        current, and one that breaks down in a step (its current above the breakdown current) carries none
        from the next step on. The trigger line does not fire. The clock advances by the whole waveform.

        Returns the record of the device's state after every segment (readings: :meth:`WaveformRecord.rxy_after`).
        """
        currents = np.asarray(currents_a, dtype=np.float64).reshape(-1)
        holds = np.asarray(holds_s, dtype=np.float64).reshape(-1)
        durations = np.tile(holds, currents.size)
        start = self.clock_s
        index, track = self._routed_index(), self._routed_track()
        if track is not None:
            record = self._drive_track(track, start, np.repeat(currents, holds.size), durations, None)
        elif index is None:
            record = WaveformRecord(start, start + np.cumsum(durations))
        else:
            chip = self.chip
            if bool(chip.destroyed[index]):
                currents = np.zeros_like(currents)
            else:
                over = np.flatnonzero(np.abs(currents) > float(chip.i_breakdown_a[index]))
                if over.size:
                    currents = currents.copy()
                    currents[over[0] + 1:] = 0.0
            chip.sync(start)
            record = self._drive_hall(index, start, np.repeat(currents, holds.size), durations)
        self.advance(float(durations.sum()))
        return record

    def read_rxy(self, n_readings: int = 1) -> np.ndarray:
        """Four-wire readings of the routed device in Ω: a Hall bar's ``R_xy``, a DW track's two-terminal
        resistance (``inf``: open, nothing routed)."""
        track = self._routed_track()
        if track is not None:
            assert self.chip.tracks is not None
            return self.chip.tracks.read(track, n_readings)
        index = self._routed_index()
        if index is None:
            return np.full(n_readings, np.inf)
        self.chip.sync(self.clock_s)
        return self.chip.read([index], n_readings)[0].numpy()

    def channel_resistance(self) -> float:
        """Two-wire resistance of the routed device in Ω: a Hall bar's channel, a DW track's junction (``inf``:
        open)."""
        track = self._routed_track()
        if track is not None:
            assert self.chip.tracks is not None
            return self.chip.tracks.resistance_ohm(track)
        index = self._routed_index()
        return np.inf if index is None else float(self.chip.channel_resistance([index])[0])

    def rxy_of_states(self, index: int, states: np.ndarray, times_s: np.ndarray | None = None,
                      temperatures_k: np.ndarray | None = None) -> np.ndarray:
        """Noisy ``R_xy`` readings of device ``index`` in the magnetization ``states`` (0: destroyed → inf), taken at
        the virtual ``times_s`` with the bar at ``temperatures_k`` (:meth:`sim_backend.chip.Chip.hall_readings`)."""
        return self.chip.hall_readings(
            index, torch.from_numpy(np.asarray(states)),
            None if times_s is None else torch.from_numpy(np.asarray(times_s, dtype=np.float64)),
            None if temperatures_k is None else torch.from_numpy(np.asarray(temperatures_k, dtype=np.float64)),
        ).cpu().numpy()

    # -- trigger line (pulse generator marker → source meter trigger in) ------------------------

    def add_trigger_listener(self, listener: TriggerListener) -> None:
        if listener not in self._listeners:
            self._listeners.append(listener)

    def remove_trigger_listener(self, listener: TriggerListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)
