"""The probe station at run time: connected instruments in their roles, the devices, the limits.

``Station.open(spec_or_path)`` connects every instrument through pyvisa, checks each ``*IDN?``
against the declared model (a mismatch is refused before any other command is sent) and returns a
context manager: on exit, and on any exception inside it, the outputs go off and the matrix opens, and
every instrument is asked to confirm it (:meth:`Station.safe_state`, a :class:`SafeStateReport`).

Every request that could harm a device is checked against the station's limits **before** any
command is sent: pulse and DC currents per device, pulse widths, compliance, forbidden crosspoints.
Every instrument's error queue is read when a unit of work ends (:meth:`Station.checked`): an error
an instrument reports stops the run instead of passing unnoticed into the data.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instruments.adapters import MODELS, open_connection
from instruments.drivers.errors import InstrumentConnectionError, InstrumentErrors
from instruments.interrupts import interrupts_held
from instruments.roles import PulseGenerator, Segment, SourceMeter, StationInstrument, SwitchMatrix
from instruments.station_config import HALL_BAR, SafetyError, StationSpec, load_station_spec
from instruments.transport import RecordingAdapter, ReplayAdapter, TransportLog

log = logging.getLogger(__name__)

# Through a DC block every pulse is played between two balancing lobes of the opposite sign, each carrying half its
# charge at this fraction of its level (so each lasts 1 / (2 × 1/8) = 4 pulse widths): the capacitor ends every
# pulse as it began, and, the lobes being symmetric about the pulse, its mean over time stays where it is at the
# reads, so neither the baseline nor the running mean of the waveform shifts. The lobe after a 1.3 Ic0 reset carries
# an eighth of it plus the read current, ≤ 0.23 Ic0 on the embedded chip: over its 400 µs the weakest device
# (Δ = 35) switches with P ≈ 1e-6, and the read after the reset would show one that did (a sixth: 5e-6; a quarter,
# 0.41 Ic0: 1.5e-4).
BALANCE_LEVEL = 1 / 8


def balanced_span(width_s: float) -> float:
    """How long a pulse of ``width_s`` lasts with its two balancing lobes (s)."""
    return width_s * (1.0 + 1.0 / BALANCE_LEVEL)
ROLE_NAMES = {"pulse_generator": "pulse generator", "source_meter": "source meter", "switch_matrix": "switch matrix"}


@dataclass(frozen=True)
class SafeStateReport:
    """What the instruments confirmed when they were put in the safe state.

    ``confirmed``: answered that they are safe; ``unsafe``: answered, but report a live output or a
    closed crosspoint; ``unreachable``: did not answer (even on a new connection), with the reason.
    """

    confirmed: tuple[str, ...]
    unsafe: tuple[str, ...] = ()
    unreachable: tuple[tuple[str, str], ...] = ()
    reconnected: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.unsafe and not self.unreachable

    def describe(self) -> str:
        if self.ok:
            return "outputs off and matrix open, confirmed by every instrument"
        parts = [f"{name} still reports {_live(name)} after the safe-state commands: {_remedy(name)}"
                 for name in self.unsafe]
        parts += [f"{name} did not answer ({reason}): it may still have {_live(name)}; {_remedy(name)} before "
                  "touching the probes" for name, reason in self.unreachable]
        return "SAFE STATE NOT CONFIRMED: " + "; ".join(parts)


def _live(name: str) -> str:
    return "closed crosspoints" if name.startswith(ROLE_NAMES["switch_matrix"]) else "a live output"


def _remedy(name: str) -> str:
    if name.startswith(ROLE_NAMES["switch_matrix"]):
        return "open every crosspoint at its front panel (or power it down)"
    return "switch its output off at its front panel (or power it down)"


class DeviceOpenError(SafetyError):
    """A device reads open (broken down, or not contacted): no further pulse is sent to it.

    ``rows`` may carry what was measured on it before it was found open (a batch of trials).
    """

    def __init__(self, device: str, message: str, rows: Any = None) -> None:
        self.device = device
        self.rows = rows
        super().__init__(message)


class SafeStateError(SafetyError):
    """The instruments could not all confirm the safe state; ``report`` says which and what to do."""

    def __init__(self, report: SafeStateReport) -> None:
        self.report = report
        super().__init__(report.describe())


class Station:
    """Connected instruments in their roles, plus the devices and limits of a :class:`StationSpec`."""

    def __init__(self, spec: StationSpec, pulse_generator: PulseGenerator, source_meter: SourceMeter,
                 switch_matrix: SwitchMatrix) -> None:
        self.spec = spec
        self.pulse_generator = pulse_generator
        self.source_meter = source_meter
        self.switch_matrix = switch_matrix
        self.routed: str | None = None
        self.channel_resistance_ohm: dict[str, float] = {}
        self.safe_state_report: SafeStateReport | None = None
        self.lost: dict[str, str] = {}  # devices found open: never routed again (no pulse, no current)
        self._read_configured = False
        self._generator_live = False  # the generator's output may be on (a direct coupling shunts reads then)
        self._check_depth = 0

    @property
    def instruments(self) -> dict[str, StationInstrument]:
        return {"pulse_generator": self.pulse_generator, "source_meter": self.source_meter,
                "switch_matrix": self.switch_matrix}

    # -- connecting ------------------------------------------------------------------------------

    @classmethod
    def open(cls, spec: StationSpec | str | Path, visa_library: str = "@py", timeout_ms: int = 5000,
             record: TransportLog | None = None, replay: TransportLog | None = None) -> Station:
        """Connect every instrument of ``spec`` (a :class:`StationSpec` or a station file).

        ``record``: log every command and reply into this transport log. ``replay``: connect to no
        instrument; serve the replies of this recorded log instead (offline regression runs).
        """
        if not isinstance(spec, StationSpec):
            spec = load_station_spec(spec)
        if replay is None:
            for role, inst in spec.instruments.items():
                if inst.address == "emulated":
                    raise SafetyError(f"instruments.{role}.address is 'emulated': start the emulated station "
                                      "(hil emulate, or sim_backend.emulated.EmulatedStation) and use its addresses")
        opened: list[Any] = []
        try:
            roles = {}
            for role, inst in spec.instruments.items():
                model = MODELS[inst.model]
                reopen = None
                if replay is not None:
                    connection: Any = ReplayAdapter(replay.for_instrument(role), role)
                else:
                    def reopen(address: str = inst.address, role: str = role, model: str = inst.model) -> Any:
                        link = open_connection(address, visa_library, timeout_ms, instrument=f"{role} ({model})")
                        return RecordingAdapter(link, record, role) if record is not None else link

                    connection = reopen()
                adapter = model.adapter.connect(connection, inst.options, inst.address, role, reopen)
                opened.append(adapter)
                roles[role] = adapter
            station = cls(spec, roles["pulse_generator"], roles["source_meter"], roles["switch_matrix"])
            station.clear_stale_errors()
            station.safe_state(raise_if_unconfirmed=True, reraise_interrupt=True)
            station.check_errors("putting the instruments in the safe state")
            return station
        except BaseException:
            for adapter in opened:
                with contextlib.suppress(Exception):
                    adapter.close()
            raise

    def clear_stale_errors(self) -> None:
        """Read (and so empty) every error queue at the start; what was there came before this run."""
        for role, instrument in self.instruments.items():
            try:
                instrument.check_errors()
            except InstrumentErrors as exc:
                log.warning("%s held errors from before this run (read and cleared): %s", role, exc)

    def close(self, reraise_interrupt: bool = True) -> SafeStateReport:
        """Safe state (confirmed), then disconnect every instrument. Raises :class:`SafeStateError` when an
        instrument could not confirm it. A Ctrl-C meanwhile is held, and raised once all is done
        (``reraise_interrupt``)."""
        try:
            report = self.safe_state(reraise_interrupt=reraise_interrupt)
        except KeyboardInterrupt as interrupt:  # held until the instruments were safe: say what they confirmed
            interrupt.safe_state = self.safe_state_report  # type: ignore[attr-defined]
            raise
        finally:
            for instrument in self.instruments.values():
                try:
                    instrument.close()
                except Exception as exc:  # noqa: BLE001 — closing the others matters more
                    log.warning("closing %s failed: %s", instrument, exc)
        if not report.ok:
            raise SafeStateError(report)
        return report

    def __enter__(self) -> Station:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> None:
        try:
            self.close(reraise_interrupt=exc is None)  # with an error in flight, that error ends the run
        except SafeStateError as error:
            if exc is None:
                raise
            log.error("while stopping after %s: %s", exc_type.__name__ if exc_type else "an error", error)
        if exc is not None and self.safe_state_report is not None:
            with contextlib.suppress(AttributeError, TypeError):
                exc.safe_state = self.safe_state_report  # type: ignore[attr-defined]

    def safe_state(self, raise_if_unconfirmed: bool = False, reraise_interrupt: bool = True) -> SafeStateReport:
        """Outputs off and every crosspoint open, each instrument asked to confirm; the report.

        Each instrument's connection is first brought back in step (a reply still on its way from an
        interrupted query must not be read as the confirmation). An instrument that does not answer is
        tried once more on a new connection. Ctrl-C is held meanwhile, and raised when all is done
        (``reraise_interrupt``; ``False`` when the run is already ending with another error).
        """
        confirmed, unsafe, unreachable, reconnected = [], [], [], []
        with interrupts_held(reraise=reraise_interrupt, what="the instruments are made safe"):
            for role, instrument in self.instruments.items():
                declared = self.spec.instruments[role]
                name = f"{ROLE_NAMES[role]} ({declared.model} at {declared.address})"
                try:
                    safe = self._make_safe(instrument)
                except Exception as first:  # noqa: BLE001 — any failure: try a new connection, then report it
                    try:
                        instrument.reconnect()
                        safe = self._make_safe(instrument)
                        reconnected.append(name)
                    except Exception as exc:  # noqa: BLE001 — whatever happened, the report must say so
                        log.error("safe state: %s failed: %s (then %s)", name, first, exc)
                        unreachable.append((name, str(first)))
                        continue
                (confirmed if safe else unsafe).append(name)
            self.routed = None
            self._read_configured = False
            self._generator_live = False
            report = SafeStateReport(tuple(confirmed), tuple(unsafe), tuple(unreachable), tuple(reconnected))
            self.safe_state_report = report  # known even when a held Ctrl-C is raised next
            if not report.ok:
                log.error("%s", report.describe())
        if raise_if_unconfirmed and not report.ok:
            raise SafeStateError(report)
        return report

    @staticmethod
    def _make_safe(instrument: StationInstrument) -> bool:
        instrument.sync()
        instrument.make_safe()
        return instrument.is_safe()

    # -- instrument errors -------------------------------------------------------------------------

    def check_errors(self, where: str = "") -> None:
        """Read every instrument's error queue; raise :class:`InstrumentErrors` naming every error found."""
        entries = []
        for instrument in self.instruments.values():
            try:
                instrument.check_errors()
            except InstrumentErrors as exc:
                entries.extend(exc.entries)
        if entries:
            raise InstrumentErrors(entries, where)

    @contextlib.contextmanager
    def checked(self, where: str = "") -> Iterator[None]:
        """Read every error queue when the block ends; nested blocks check once, at the outermost.

        When the block failed (a reply that made no sense, a reading out of range), the queues are read
        too: an error an instrument reported is the cause, and is raised instead (chained to the failure).
        """
        self._check_depth += 1
        try:
            yield
        except (InstrumentConnectionError, InstrumentErrors, DeviceOpenError):
            raise
        except Exception as failure:
            if self._check_depth == 1:
                cause = self._queued_errors(where)
                if cause is not None:
                    raise cause from failure
            raise
        finally:
            self._check_depth -= 1
        if self._check_depth == 0:
            self.check_errors(where)

    def _queued_errors(self, where: str) -> InstrumentErrors | None:
        """The errors in the queues after a failure (``None``: none, or the queues could not be read)."""
        try:
            self.check_errors(where)
        except InstrumentErrors as errors:
            return errors
        except Exception:  # noqa: BLE001 — the failure being handled matters more than this one
            return None
        return None

    # -- routing and reads ------------------------------------------------------------------------

    def mark_lost(self, device_id: str, reason: str) -> None:
        """A device found open (broken down, or not contacted): it is never routed again by this station."""
        self.lost[device_id] = reason

    def route(self, device_id: str) -> None:
        """Connect ``device_id`` to the instruments (break before make); refused on a forbidden crosspoint, and
        for a device found open earlier (:class:`DeviceOpenError`)."""
        if device_id in self.lost:
            raise DeviceOpenError(device_id, f"device {device_id} was found open earlier ({self.lost[device_id]}); "
                                  "nothing is sent to it")
        route = self.spec.check_route(device_id)
        if self.routed == device_id:
            return
        self.source_meter.output_off()
        self.switch_matrix.close_only(sorted(route))
        self.routed = device_id

    def prepare_reads(self) -> None:
        """Configure the source meter's read current, compliance and aperture (once)."""
        if not self._read_configured:
            readout = self.spec.readout
            self.spec.check_compliance(readout.compliance_v)
            self.source_meter.configure_read(readout.read_current_a, readout.compliance_v, readout.nplc)
            self._read_configured = True

    def _quiet_generator(self) -> None:
        """Before a read: a generator coupled directly shunts the read current while its output is on; off, it
        opens (the station refuses a direct coupling whose generator does not)."""
        wiring = self.spec.wiring
        if self._generator_live and wiring is not None and not wiring.blocks_dc:
            self.pulse_generator.output_off()
            # a query: the generator has acted on the write (its output is off) before the source meter reads
            if not self.pulse_generator.is_safe():
                raise SafetyError(f"{self.pulse_generator.label}: its output did not go off before a read; a "
                                  "directly coupled generator would shunt the read current")
            self._generator_live = False

    def read_hall(self, device_id: str, n_readings: int = 1) -> Any:
        """``R_xy`` readings of ``device_id`` in Ω."""
        self.route(device_id)
        self.prepare_reads()
        self._quiet_generator()
        return self.source_meter.read_hall(n_readings)

    def measure_channel_resistance(self, device_id: str) -> float:
        """Two-wire channel resistance of ``device_id`` in Ω, remembered for current→voltage conversion."""
        self.route(device_id)
        self.prepare_reads()
        self._quiet_generator()
        r_ch = float(self.source_meter.read_channel())
        if not math.isfinite(r_ch) or r_ch <= 0 or r_ch > 1e9:
            raise DeviceOpenError(device_id, f"device {device_id}: channel reads open ({r_ch:.4g} Ω); it may be "
                                  "broken or not contacted. No pulse will be sent to it")
        self.channel_resistance_ohm[device_id] = r_ch
        return r_ch

    def channel_resistance(self, device_id: str) -> float:
        """The device's channel resistance in Ω: measured the first time it is needed, then remembered."""
        r_ch = self.channel_resistance_ohm.get(device_id)
        return self.measure_channel_resistance(device_id) if r_ch is None else r_ch

    @property
    def source_impedance_ohm(self) -> float:
        """The pulse generator's output impedance (the station file's wiring, 50 Ω by default)."""
        return self.spec.source_impedance_ohm

    def voltage_for(self, device_id: str, current_a: float) -> float:
        """Pulse-generator voltage that drives ``current_a`` through ``device_id``: ``I · (R_ch + 50 Ω)``."""
        return current_a * (self.channel_resistance(device_id) + self.source_impedance_ohm)

    def voltage_beside_read_current(self, device_id: str, current_a: float) -> float:
        """The generator level that makes the channel of ``device_id`` carry ``current_a`` while the source meter
        sources the read current beside it (the fast path): through a DC block the read current flows in the
        channel and the generator adds the rest, ``(I − I_read)·(R_ch + R_out)``; coupled directly, its output
        takes part of the read current, ``I·(R_ch + R_out) − I_read·R_out``. (A station that does not declare
        its wiring: ``I·(R_ch + R_out)``, as before.)"""
        wiring = self.spec.wiring
        level = self.voltage_for(device_id, current_a)
        if wiring is None:
            return level
        read = self.spec.readout.read_current_a
        r_out = self.source_impedance_ohm
        return level - read * (self.channel_resistance(device_id) + r_out if wiring.blocks_dc else r_out)

    def balanced(self, level_v: float, width_s: float) -> list[Segment]:
        """The segments that carry one pulse: the pulse alone, or, through a DC block, between two balancing lobes
        of the opposite sign (each half its charge at :data:`BALANCE_LEVEL` of its level), so that the capacitor
        ends as it began and shifts no baseline."""
        wiring = self.spec.wiring
        if wiring is None or not wiring.blocks_dc or level_v == 0.0:
            return [Segment(level_v, width_s)]
        lobe = Segment(-BALANCE_LEVEL * level_v, (balanced_span(width_s) - width_s) / 2)
        return [lobe, Segment(level_v, width_s), lobe]

    def check_clamp(self, device_id: str, currents_a: Any, what: str = "pulse") -> None:
        """Refuse (:class:`SafetyError`) a pulse whose voltage across the channel of ``device_id`` (measured) exceeds
        the source meter's compliance: on the fast path the source meter sources the read current through every
        pulse and would clamp it there. (Nothing is checked for a station that does not declare its wiring.)"""
        if self.spec.wiring is None:
            return
        compliance = self.spec.readout.compliance_v
        r_ch = self.channel_resistance(device_id)
        for current in currents_a:
            volts = abs(float(current)) * r_ch
            if volts > compliance:
                raise SafetyError(f"device {device_id}: a {what} of {float(current) * 1e3:.4g} mA puts {volts:.3g} V "
                                  f"across its {r_ch:.4g} Ω channel, beyond the source meter's compliance of "
                                  f"{compliance:.3g} V (readout.compliance): sourcing the read current through the "
                                  f"pulse, it would clamp the channel current at {compliance / r_ch * 1e3:.3g} mA; "
                                  f"raise readout.compliance (at most {self.spec.max_compliance_v:.3g} V, "
                                  "safety.max_compliance) or lower the pulse; nothing was sent")

    # -- pulses ------------------------------------------------------------------------------------

    def check_pulses(self, device_id: str, currents_a: Any, widths_s: Any) -> None:
        """Refuse (SafetyError) if any current or width is beyond the device's limits (and current pulses on a
        DW track: it is programmed by voltage, :mod:`instruments.track_programming`)."""
        self.spec.check_kind(device_id, HALL_BAR, "current pulses")
        for current in currents_a:
            self.spec.check_current(device_id, float(current))
        for width in widths_s:
            self.spec.check_width(device_id, float(width))

    def pulse(self, device_id: str, current_a: float, width_s: float) -> None:
        """One rectangular current pulse through ``device_id`` (naive path: one set of commands per pulse)."""
        self.check_pulses(device_id, [current_a], [width_s])
        segments = self.balanced(self.voltage_for(device_id, current_a), width_s)
        self.check_levels(device_id, [segment.level_v for segment in segments])
        self.route(device_id)
        self.source_meter.output_off()
        for segment in segments:  # through a DC block: the pulse between its balancing lobes
            self.pulse_generator.play_pulse(segment.level_v, segment.duration_s)
        self._generator_live = True

    def pulse_time_s(self, width_s: float) -> float:
        """How long the generator is busy with one pulse of :meth:`pulse` (with its balancing lobes) in s."""
        return sum(self.pulse_generator.pulse_time_s(segment.duration_s) for segment in self.balanced(1.0, width_s))

    def check_levels(self, device_id: str, levels_v: Any) -> None:
        """Refuse a voltage the pulse generator cannot deliver (SafetyError)."""
        limit = self.pulse_generator.max_level_v
        worst = max((abs(float(v)) for v in levels_v), default=0.0)
        if worst > limit:
            raise SafetyError(f"device {device_id}: the requested current needs {worst:.3f} V, beyond the pulse "
                              f"generator's ±{limit} V; nothing was sent")

    def dc_sweep(self, device_id: str, currents_a: list[float], dwell_s: float) -> Any:
        """Source-meter list sweep of DC currents with ``dwell_s`` per step; ``R_xy`` at each step (Ω)."""
        self.spec.check_kind(device_id, HALL_BAR, "a DC current sweep")
        for current in currents_a:
            self.spec.check_current(device_id, float(current), what="DC current")
        self.route(device_id)
        self.prepare_reads()
        self.pulse_generator.output_off()
        try:
            return self.source_meter.list_sweep(list(currents_a), dwell_s)
        finally:
            self._read_configured = False  # the sweep reprogrammed the source
            self.source_meter.output_off()
