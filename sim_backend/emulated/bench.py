"""The bench the emulated instruments share: one simulated chip, one virtual clock, the routing.

What the emulated pulse generator plays reaches the device the emulated switch matrix routes, and what
the emulated source meter reads is that device: a Hall bar (its ``R_xy`` on the four-wire read, its channel
on the two-wire one) or a DW synapse track of the chip (:mod:`sim_backend.dw_track`: its two-terminal
resistance on both). The pulse generator's trigger output is wired to the
source meter's trigger input: :meth:`Bench.drive_voltage` fires it at the start of every waveform, and
an armed source meter takes its readings at its own (trigger-model) times within the waveform.

**Wiring** (the station file's ``wiring:``, :class:`~instruments.station_config.Wiring`; ``None``: a station from
before it could be declared, and none of this is modeled). The source meter tells the bench its output
(:meth:`Bench.set_source_meter`), the pulse generator its output state (:meth:`Bench.set_generator_output`), and the
channel's current follows from the circuit: the generator, an EMF ``E`` behind ``R_g`` (its output impedance while
on; while off, its off impedance, ``inf`` when its output opens), the source meter and the channel ``R_ch`` in
parallel on the pads. With the node voltage ``V`` (Norton: ``V = (E / R_g + I_sm) · (R_ch ∥ R_g)``):

- the source meter as a current source of ``I_s`` holds ``I_sm = I_s`` until ``|V|`` reaches its voltage limit,
  then holds ``|V|`` at the limit (a clamp: the channel current is capped at ``limit / R_ch``); as a voltage source
  it holds ``V`` until its current reaches its limit; off (high impedance) ``I_sm = 0``. The channel carries
  ``V / R_ch``.
- ``direct``: ``E`` is the generator's level. During reads (level 0 V, output on) a fraction
  ``R_g / (R_g + R_ch)`` of the read current reaches the channel: a four-wire Hall reading (sensed voltage over the
  source meter's own current) scales by it, a two-wire one reads ``R_ch ∥ R_g``.
- ``dc_block``: a series capacitor ``C`` passes no DC: ``E = V_gen − v_C + V_dc``, where ``v_C`` is the charge the
  generator's levels put on it, a first-order lag of the levels with ``τ = (R_ch + R_g)·C``
  (:func:`sim_backend.first_order_lag.settle`: exact for piecewise-constant levels, every segment at once), and
  ``V_dc`` the voltage the source meter's own DC output holds on the pads, which the capacitor is taken to have
  settled to (its charging transient after the source is switched on, ``τ`` again, is not modeled). A pulse droops
  (its current decays with ``τ``), and the charge left shifts the baseline of what follows: during a read window the
  current ``−v_C / (R_ch + R_g)`` adds to the read current, and a Hall reading scales by the sum over the read
  current. The chip gets each pulse's mean current (the mean of ``v_C`` over the segment is exact; the current
  within a 10 µs bias pulse through a 100 µF block varies by ~0.03 %, which moves its switching rate by ~10⁻⁶
  relatively: the mean is what the device sees), and nothing in the segments the generator holds at 0 V (the
  read current, and the baseline, are far below any switching current; the chip counts no pulse there). While the
  source meter clamps, the capacitor is taken to charge as if it did not (a station refuses such pulses before
  sending them).
- DW tracks: the shunt of a direct coupling (readings ``R ∥ R_g``); a DC block is not modeled for them.

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

from instruments.station_config import Wiring
from sim_backend.chip import Chip
from sim_backend.first_order_lag import settle

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
        # what the wiring does to readings taken at given times: (times, readings) -> readings (None: nothing)
        self.wired: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None  # see Wired

    def _through_wiring(self, times_s: np.ndarray, readings: np.ndarray) -> np.ndarray:
        return readings if self.wired is None else self.wired(times_s, readings)

    @property
    def end_s(self) -> float:
        return float(self.ends_s[-1]) if self.ends_s.size else self.start_s

    def rxy_after(self, segments: np.ndarray) -> np.ndarray:
        """Readings (Ω) in the state after each of the given segments (by index), at each segment's end."""
        segments = np.asarray(segments, dtype=np.int64)
        if self.states is None or self.readings_of is None:
            return np.full(segments.shape, np.inf)
        times = self.ends_s[segments]
        return self._through_wiring(times, self.readings_of(segments + 1, times))

    def rxy_at(self, times_s: np.ndarray) -> np.ndarray:
        """Readings (Ω) at the given virtual times (state of the segment then playing)."""
        times = np.asarray(times_s, dtype=np.float64)
        if self.states is None or self.readings_of is None:
            return np.full(times.shape, np.inf)
        completed = np.searchsorted(self.ends_s, times, side="right")  # segments finished by then
        return self._through_wiring(times, self.readings_of(completed, times))


@dataclass(frozen=True)
class SourceMeterOutput:
    """What the source meter's output does, as the emulated source meter tells the bench.

    ``function``: ``"CURR"`` (a current source of ``level`` A with a voltage ``limit`` in V) or ``"VOLT"`` (a voltage
    source of ``level`` V with a current ``limit`` in A). Off, the output is high impedance (nothing flows).
    """

    on: bool = False
    function: str = "CURR"
    level: float = 0.0
    limit: float = math.inf


Wired = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""What the wiring does to readings: ``(times, readings) -> readings``."""

TriggerListener = Callable[[WaveformRecord], None]
"""Called once per trigger (the start of a waveform) with what the waveform does."""


class Bench:
    """Chip, virtual clock and routing shared by one station's emulated instruments.

    ``routes`` maps each device id to the set of crosspoints (e.g. ``{"1A01", "1B02", ...}``) that
    connect it to the instruments. A device is routed when all its crosspoints are closed and no
    other device's are; otherwise nothing is connected (pulses go nowhere, reads are open).
    """

    def __init__(self, chip: Chip, routes: Mapping[str, Iterable[str]] | None = None,
                 realtime: bool = False, source_impedance_ohm: float = SOURCE_IMPEDANCE_OHM,
                 wiring: Wiring | None = None, generator_channel: int = 1) -> None:
        self.chip = chip
        self.routes = {device: frozenset(points) for device, points in (routes or {}).items()}
        for device in self.routes:
            if not self._is_track(device):
                chip.index(device)  # an unknown device id fails here, at set-up
        self.realtime = realtime
        self.wiring = wiring
        self.source_impedance_ohm = wiring.output_impedance_ohm if wiring is not None else source_impedance_ohm
        self.generator_channel = generator_channel  # the generator's channel wired to the pads
        self.generator_outputs: dict[int, bool] = {}  # each generator channel's output state, as it tells
        self.source_meter = SourceMeterOutput()  # the source meter's output, as it tells
        self.dc_block_v = 0.0  # the charge the generator's levels left on a DC block, as its voltage
        self._dc_block_at_s = 0.0  # ... at this virtual time
        self.lock = threading.RLock()
        self.clock_s = 0.0
        self.closed: frozenset[str] = frozenset()
        self.routed_device: str | None = None
        self._listeners: list[TriggerListener] = []
        self.faults = BenchFaults()

    # -- what the instruments tell the bench about their outputs ----------------------------------

    def set_source_meter(self, on: bool, function: str, level: float, limit: float) -> None:
        """The source meter's output (:class:`SourceMeterOutput`); it calls this whenever it may have changed."""
        self.source_meter = SourceMeterOutput(bool(on), function, float(level), float(limit))

    def set_generator_output(self, channel: int, on: bool) -> None:
        """A pulse-generator channel's output went on or off (only the wired channel reaches the pads)."""
        if self.generator_outputs.get(channel, False) != bool(on):
            self._relax_dc_block()
            self.generator_outputs[channel] = bool(on)

    @property
    def generator_on(self) -> bool:
        return self.generator_outputs.get(self.generator_channel, False)

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
        self._relax_dc_block()
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

    # -- the wiring: what the generator's output and the source meter do to the channel -------------

    def _routed_ohm(self) -> float:
        """The routed device's channel resistance (a DW track's junction) in Ω; ``inf``: nothing routed."""
        track, index = self._routed_track(), self._routed_index()
        if track is not None:
            assert self.chip.tracks is not None
            return float(self.chip.tracks.resistance_ohm(track))
        return math.inf if index is None else float(self.chip.r_ch_ohm[index])

    def _generator_ohm(self, playing: bool = False) -> float:
        """The generator's impedance on the pads now: its output impedance while on (or ``playing``), else its off
        impedance (``inf``: open)."""
        assert self.wiring is not None
        return self.source_impedance_ohm if playing or self.generator_on else self.wiring.off_impedance_ohm

    def _relax_dc_block(self) -> None:
        """Bring the DC block's charge to now: between waveforms the generator idles at 0 V, so it relaxes through
        the routed channel and the generator's impedance (held while either is open)."""
        wiring, now = self.wiring, self.clock_s
        if wiring is not None and wiring.blocks_dc and now > self._dc_block_at_s and self.dc_block_v != 0.0:
            tau = (self._routed_ohm() + self._generator_ohm()) * wiring.capacitance_f
            self.dc_block_v *= math.exp(-(now - self._dc_block_at_s) / tau)
        self._dc_block_at_s = now

    def _node(self, emf_v: np.ndarray, r_ch: np.ndarray | float, r_gen: float) -> tuple[np.ndarray, np.ndarray]:
        """``(channel current, source-meter current)`` in A for a generator branch of EMF ``emf_v`` behind ``r_gen``
        (``inf``: none), the source meter and a channel of ``r_ch`` in parallel (elementwise)."""
        emf = np.asarray(emf_v, dtype=np.float64)
        r_ch = np.broadcast_to(np.asarray(r_ch, dtype=np.float64), emf.shape)
        if math.isinf(r_gen):
            norton, r_par = np.zeros_like(emf), r_ch
        else:
            norton, r_par = emf / r_gen, r_ch * r_gen / (r_ch + r_gen)
        sm = self.source_meter
        if not sm.on:
            i_sm = np.zeros_like(norton)
        elif sm.function == "CURR":  # holds its current until the pads reach its voltage limit
            v = np.clip((norton + sm.level) * r_par, -sm.limit, sm.limit)
            i_sm = v / r_par - norton
        else:  # holds its voltage until its current reaches its limit
            i_sm = np.clip(sm.level / r_par - norton, -sm.limit, sm.limit)
        return (norton + i_sm) * r_par / r_ch, i_sm

    def _source_meter_dc_v(self, r_ch: float) -> float:
        """The voltage the source meter's output alone holds across a channel of ``r_ch`` (what a DC block has
        settled to)."""
        current, _ = self._node(np.zeros(1), r_ch, math.inf)
        return float(current[0] * r_ch)

    def _emf(self, levels_v: np.ndarray, charge_v: np.ndarray | float, r_ch: float) -> np.ndarray:
        """The generator branch's EMF: its levels, less (through a DC block) the capacitor's voltage: the charge
        its levels left, and the source meter's DC voltage, to which it has settled."""
        assert self.wiring is not None
        if not self.wiring.blocks_dc:
            return levels_v
        return levels_v - charge_v + self._source_meter_dc_v(r_ch)

    def _read_scale(self, emf_v: np.ndarray, r_ch: np.ndarray | float, r_gen: float) -> np.ndarray:
        """What a reading is multiplied by: the channel's current over the source meter's own (1 when none flows,
        or through an open device, whose readings are open anyway)."""
        r_ch = np.broadcast_to(np.asarray(r_ch, dtype=np.float64), np.shape(emf_v))
        closed = np.isfinite(r_ch)
        channel, own = self._node(emf_v, np.where(closed, r_ch, 1.0), r_gen)
        return np.divide(channel, own, out=np.ones_like(channel), where=(own != 0.0) & closed)

    def _wired_now(self, readings: np.ndarray) -> np.ndarray:
        """Readings taken now, between waveforms (the generator idle at 0 V), through the wiring."""
        wiring = self.wiring
        if wiring is None or self.routed_device is None:
            return readings
        track = self._routed_track() is not None
        if track and wiring.blocks_dc:
            return readings  # a DC block is not modeled for DW tracks
        self._relax_dc_block()
        r_ch, r_gen = self._routed_ohm(), self._generator_ohm()
        emf = self._emf(np.zeros(np.shape(readings)), self.dc_block_v, r_ch)
        return readings * self._read_scale(emf, readings if track else r_ch, r_gen)

    def _wired_hall(self, index: int, start: float, levels: np.ndarray, durations: np.ndarray,
                    block: tuple[np.ndarray, float] | None, tau: float) -> Wired:
        """What the wiring does to Hall readings at given times within (or after) a played waveform; ``block``: the
        DC block's charge at the start of every segment and at the end (``None``: direct coupling)."""
        r_ch, r_gen = float(self.chip.r_ch_ohm[index]), self.source_impedance_ohm
        ends = start + np.cumsum(durations)

        def wired(times_s: np.ndarray, readings: np.ndarray) -> np.ndarray:
            k = np.searchsorted(ends, times_s, side="right")  # the segment playing (levels.size: after the end)
            playing = k < levels.size
            ki = np.minimum(k, levels.size - 1)
            level = np.where(playing, levels[ki], 0.0)  # the generator idles at 0 V after the waveform
            charge: np.ndarray | float = 0.0
            if block is not None:  # within segment k the capacitor relaxes from its start towards the level
                starts, end = block
                since = times_s - np.where(playing, ends[ki] - durations[ki], ends[-1])
                origin = np.where(playing, starts[ki], end)
                charge = level + (origin - level) * np.exp(-np.maximum(since, 0.0) / tau)
            return readings * self._read_scale(self._emf(level, charge, r_ch), r_ch, r_gen)
        return wired

    def _through_dc_block(self, r_ch: float, levels: np.ndarray, durations: np.ndarray
                          ) -> tuple[np.ndarray, tuple[np.ndarray, float], float]:
        """``(mean charge over every segment, (charge at every segment's start, at the end), τ)``: the DC block's
        capacitor as a first-order lag of the generator's levels, exact for piecewise-constant levels."""
        assert self.wiring is not None
        tau = (r_ch + self.source_impedance_ohm) * self.wiring.capacitance_f
        starts_t, ends_t = settle(torch.tensor([self.dc_block_v], dtype=torch.float64),
                                  torch.from_numpy(levels)[None, :], torch.from_numpy(durations)[None, :], tau)
        starts, end = starts_t[0].numpy(), float(ends_t[0, -1])
        # the mean over a segment of d of y + (x0 − y)·e^(−t/τ) is y + (x0 − y)·(τ/d)·(1 − e^(−d/τ))
        ratio = np.divide(tau * -np.expm1(-durations / tau), durations, out=np.ones_like(durations),
                          where=durations > 0)
        return levels + (starts - levels) * ratio, (starts, end), tau

    def _wired_levels(self, index: int, start: float, levels: np.ndarray, durations: np.ndarray
                      ) -> tuple[np.ndarray, Wired]:
        """The voltage behind the generator's impedance that drives each segment's mean channel current into Hall bar
        ``index``, the wiring and the source meter included (its Thevenin equivalent, for the chip's
        ``currents_for_voltage``); and what the wiring does to readings meanwhile. Advances the DC block."""
        assert self.wiring is not None
        r_ch, r_gen = float(self.chip.r_ch_ohm[index]), self.source_impedance_ohm
        block, tau = None, math.inf
        charge: np.ndarray | float = 0.0
        if self.wiring.blocks_dc:
            self._relax_dc_block()
            charge, block, tau = self._through_dc_block(r_ch, levels, durations)
            self.dc_block_v, self._dc_block_at_s = block[1], start + float(durations.sum())
        channel, _ = self._node(self._emf(levels, charge, r_ch), r_ch, r_gen)
        # the segments the generator holds at 0 V (gaps, read windows) carry the read current and a DC block's
        # baseline, far below any switching current: what the readings show, not pulses; the chip counts none there
        channel = np.where(levels != 0.0, channel, 0.0)
        return channel * (r_ch + r_gen), self._wired_hall(index, start, levels, durations, block, tau)

    def _clamped(self, index: int, currents: np.ndarray) -> np.ndarray:
        """A current source in its voltage limit holds the pads there: no channel current beyond limit / R_ch."""
        sm = self.source_meter
        if not (sm.on and sm.function == "CURR" and math.isfinite(sm.limit)):
            return currents
        cap = sm.limit / float(self.chip.channel_resistance([index])[0])
        return np.clip(currents, -cap, cap)

    def _wired_track(self) -> Wired:
        """A direct coupling's shunt on a DW track's readings while the generator plays (its resistance: the
        reading itself)."""
        r_gen = self.source_impedance_ohm
        return lambda times_s, readings: readings * self._read_scale(np.zeros_like(readings), readings, r_gen)

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
        junction's resistance, :meth:`sim_backend.dw_track.DWTracks.drive`); with declared wiring, what the wiring
        and the source meter make of it (the module's docstring). The pulse generator's trigger output
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
            if self.wiring is not None and not self.wiring.blocks_dc:
                record.wired = self._wired_track()
        elif index is None:
            record = WaveformRecord(start, start + np.cumsum(durations))
        else:
            self.chip.sync(start)
            wired = None
            if self.wiring is not None and levels.size:
                levels, wired = self._wired_levels(index, start, levels, durations)
            currents = self.chip.currents_for_voltage(index, torch.from_numpy(levels),
                                                      self.source_impedance_ohm).numpy()
            if self.wiring is not None:
                currents = self._clamped(index, currents)
            if breaks and currents.size:
                currents = self._breaking(index, currents)
            record = self._drive_hall(index, start, currents, durations)
            record.wired = wired
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
        """The source meter forces a DC current through the routed device's channel for ``duration_s`` (what of it
        reaches the channel: a generator coupled directly takes its share)."""
        index, track = self._routed_index(), self._routed_track()
        current_a *= self._dc_share()
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
        share = self._dc_share()
        currents = currents * share
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
        if share != 1.0 and index is not None:
            record.wired = lambda times_s, readings: readings * share
        elif track is not None and self.wiring is not None and not self.wiring.blocks_dc:
            record.wired = lambda times_s, readings: self._wired_now(readings)
        self.advance(float(durations.sum()))
        return record

    def _dc_share(self) -> float:
        """The share of the source meter's DC current that flows in the routed Hall bar (a generator coupled
        directly takes the rest; a DW track's share depends on its state and is left to its readings)."""
        if self.wiring is None or self._routed_index() is None:
            return 1.0
        return self.wiring.read_fraction(self._routed_ohm(), self.generator_on)

    def read_rxy(self, n_readings: int = 1) -> np.ndarray:
        """Four-wire readings of the routed device in Ω: a Hall bar's ``R_xy``, a DW track's two-terminal
        resistance (``inf``: open, nothing routed)."""
        track = self._routed_track()
        if track is not None:
            assert self.chip.tracks is not None
            return self._wired_now(self.chip.tracks.read(track, n_readings))
        index = self._routed_index()
        if index is None:
            return np.full(n_readings, np.inf)
        self.chip.sync(self.clock_s)
        return self._wired_now(self.chip.read([index], n_readings)[0].numpy())

    def channel_resistance(self) -> float:
        """Two-wire resistance of the routed device in Ω: a Hall bar's channel, a DW track's junction (``inf``:
        open); through the wiring, the voltage on the pads over the source meter's current (a generator coupled
        directly: ``R ∥ R_g``)."""
        track = self._routed_track()
        if track is not None:
            assert self.chip.tracks is not None
            return float(self._wired_now(np.array([self.chip.tracks.resistance_ohm(track)]))[0])
        index = self._routed_index()
        if index is None:
            return np.inf
        r_ch = float(self.chip.channel_resistance([index])[0])
        return float(self._wired_now(np.array([r_ch]))[0]) if math.isfinite(r_ch) else r_ch

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
