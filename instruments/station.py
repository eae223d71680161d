"""The probe station at run time: connected instruments in their roles, the devices, the limits.

``Station.open(spec_or_path)`` connects every instrument through pyvisa, checks each ``*IDN?``
against the declared model (a mismatch is refused before any other command is sent) and returns a
context manager: on exit, and on any exception inside it, the outputs go off and the matrix opens.

Every request that could harm a device is checked against the station's limits **before** any
command is sent: pulse and DC currents per device, pulse widths, compliance, forbidden crosspoints.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from instruments.adapters import SUPPORTED_MODELS, open_connection
from instruments.roles import PulseGenerator, SourceMeter, SwitchMatrix
from instruments.station_config import SafetyError, StationSpec, load_station_spec
from instruments.transport import RecordingAdapter, ReplayAdapter, TransportLog

log = logging.getLogger(__name__)

SOURCE_IMPEDANCE_OHM = 50.0  # the pulse generator's output impedance: I = V / (R_ch + 50 Ω)


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
        self._read_configured = False

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
                if replay is not None:
                    connection: Any = ReplayAdapter(replay.for_instrument(role), role)
                else:
                    connection = open_connection(inst.address, visa_library, timeout_ms)
                    if record is not None:
                        connection = RecordingAdapter(connection, record, role)
                adapter = SUPPORTED_MODELS[role][inst.model].connect(connection, inst.options, inst.address, role)
                opened.append(adapter)
                roles[role] = adapter
            station = cls(spec, roles["pulse_generator"], roles["source_meter"], roles["switch_matrix"])
            station.safe_state()
            return station
        except BaseException:
            for adapter in opened:
                adapter.close()
            raise

    def close(self) -> None:
        """Safe state, then disconnect every instrument."""
        try:
            self.safe_state()
        finally:
            for role in (self.pulse_generator, self.source_meter, self.switch_matrix):
                try:
                    role.close()  # type: ignore[attr-defined]
                except Exception as exc:  # noqa: BLE001 — closing the others matters more
                    log.warning("closing %s failed: %s", role, exc)

    def __enter__(self) -> Station:
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        try:
            self.close()
        except Exception as error:
            if exc_type is None:
                raise
            # the error that ended the run matters more; the failed safe-state step is already logged
            log.error("while stopping after %s: %s", exc_type.__name__, error)

    def safe_state(self) -> None:
        """Outputs off and every crosspoint open; each step is tried even if another fails."""
        errors = []
        for action in (self.pulse_generator.output_off, self.source_meter.output_off, self.switch_matrix.open_all):
            try:
                action()
            except Exception as exc:  # noqa: BLE001 — the remaining steps must still run
                errors.append(exc)
                log.error("safe state: %s failed: %s", getattr(action, "__qualname__", action), exc)
        self.routed = None
        if errors:
            raise errors[0]
        roles = (("pulse generator", self.pulse_generator), ("source meter", self.source_meter),
                 ("switch matrix", self.switch_matrix))
        unsafe = [name for name, role in roles if not role.is_safe()]
        if unsafe:
            raise SafetyError(f"safe state not confirmed by the {', '.join(unsafe)}: check the instruments by hand")

    # -- routing and reads ------------------------------------------------------------------------

    def route(self, device_id: str) -> None:
        """Connect ``device_id`` to the instruments (break before make); refused on a forbidden crosspoint."""
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

    def read_hall(self, device_id: str, n_readings: int = 1) -> Any:
        """``R_xy`` readings of ``device_id`` in Ω."""
        self.route(device_id)
        self.prepare_reads()
        return self.source_meter.read_hall(n_readings)

    def measure_channel_resistance(self, device_id: str) -> float:
        """Two-wire channel resistance of ``device_id`` in Ω, remembered for current→voltage conversion."""
        self.route(device_id)
        self.prepare_reads()
        r_ch = float(self.source_meter.read_channel())
        if not math.isfinite(r_ch) or r_ch <= 0 or r_ch > 1e9:
            raise SafetyError(f"device {device_id}: channel reads open ({r_ch:.4g} Ω); it may be broken or not "
                              "contacted. No pulse will be sent to it")
        self.channel_resistance_ohm[device_id] = r_ch
        return r_ch

    def channel_resistance(self, device_id: str) -> float:
        """The device's channel resistance in Ω: measured the first time it is needed, then remembered."""
        r_ch = self.channel_resistance_ohm.get(device_id)
        return self.measure_channel_resistance(device_id) if r_ch is None else r_ch

    def voltage_for(self, device_id: str, current_a: float) -> float:
        """Pulse-generator voltage that drives ``current_a`` through ``device_id``: ``I · (R_ch + 50 Ω)``."""
        return current_a * (self.channel_resistance(device_id) + SOURCE_IMPEDANCE_OHM)

    # -- pulses ------------------------------------------------------------------------------------

    def check_pulses(self, device_id: str, currents_a: Any, widths_s: Any) -> None:
        """Refuse (SafetyError) if any current or width is beyond the device's limits."""
        for current in currents_a:
            self.spec.check_current(device_id, float(current))
        for width in widths_s:
            self.spec.check_width(device_id, float(width))

    def pulse(self, device_id: str, current_a: float, width_s: float) -> None:
        """One rectangular current pulse through ``device_id`` (naive path: one set of commands per pulse)."""
        self.check_pulses(device_id, [current_a], [width_s])
        voltage = self.voltage_for(device_id, current_a)
        self.check_levels(device_id, [voltage])
        self.route(device_id)
        self.source_meter.output_off()
        self.pulse_generator.play_pulse(voltage, width_s)

    def check_levels(self, device_id: str, levels_v: Any) -> None:
        """Refuse a voltage the pulse generator cannot deliver (SafetyError)."""
        limit = self.pulse_generator.max_level_v
        worst = max((abs(float(v)) for v in levels_v), default=0.0)
        if worst > limit:
            raise SafetyError(f"device {device_id}: the requested current needs {worst:.3f} V, beyond the pulse "
                              f"generator's ±{limit} V; nothing was sent")

    def dc_sweep(self, device_id: str, currents_a: list[float], dwell_s: float) -> Any:
        """Source-meter list sweep of DC currents with ``dwell_s`` per step; ``R_xy`` at each step (Ω)."""
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
