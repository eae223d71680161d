"""One adapter per instrument model, implementing its role (``instruments.roles``) over a PyMeasure driver,
and the one registry of instrument models (:data:`MODELS`).

Each adapter connects through a PyMeasure adapter (VISA, guarded so that transport failures name the
instrument; or the transport recording/replay wrappers of ``instruments.transport``), checks ``*IDN?``
against its model before anything else is sent, and translates role operations into driver calls.
Every adapter can also bring its connection back in step after an interrupted exchange (:meth:`sync`),
put its instrument in the safe state and ask it to confirm, read its error queue, and reconnect.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from pymeasure.adapters import Adapter, VISAAdapter

from instruments.drivers.errors import (
    ErrorEntry,
    InstrumentConnectionError,
    InstrumentError,
    InstrumentErrors,
    InstrumentReplyError,
)
from instruments.drivers.keithley707b import Keithley707B
from instruments.drivers.keithley2450 import BUSY_STATES, MAX_BUFFER_READINGS, Keithley2450
from instruments.drivers.keysight81160a import (
    ARB_MEMORY_POINTS,
    LEVEL_MAX_V,
    PULSE_PERIOD_FACTOR,
    Keysight81160A,
    points_per_segment,
)
from instruments.failures import UserFacingError
from instruments.roles import Segment
from instruments.transport import GuardedAdapter

LINE_FREQUENCY_HZ = 50.0  # sets the reading aperture: NPLC / line frequency
TRIGGER_GRACE_S = 2.0  # how long past the waveform's end triggered readings may take to arrive
SYNC_REPLIES = 8  # stale replies discarded at most while bringing a connection back in step


class InstrumentMismatchError(UserFacingError, ValueError):
    """The instrument at an address is not the model the station file declares."""


def open_connection(address: str, visa_library: str = "@py", timeout_ms: int = 5000, instrument: str = "instrument"
                    ) -> Adapter:
    """A PyMeasure VISA adapter with the terminations these instruments use on sockets and GPIB, guarded so
    that a refused, silent or dropped connection names ``instrument`` and ``address``."""
    try:
        inner = VISAAdapter(address, visa_library=visa_library, timeout=timeout_ms, read_termination="\n",
                            write_termination="\n")
    except Exception as exc:  # noqa: BLE001 — pyvisa raises several kinds; all mean "cannot open this address"
        raise InstrumentConnectionError(instrument, address, f"cannot open the address ({exc})",
                                        "check the address in the station file") from exc
    return GuardedAdapter(inner, instrument, address, timeout_ms / 1000)


def _number(value: Any, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InstrumentReplyError(f"{what}: the reply {str(value)[:60]!r} is not a number") from None


class ModelAdapter:
    """Base of the role adapters: identity, connection, sync, safe state, error queue."""

    model: ClassVar[str]
    idn_pattern: ClassVar[re.Pattern[str]]
    driver_class: ClassVar[type]
    known_options: ClassVar[dict[str, tuple[Any, ...]]] = {}  # station-file options and their allowed values

    def __init__(self, driver: Any, idn: str, options: dict[str, Any], role: str, address: str = "",
                 reopen: Callable[[], Adapter] | None = None) -> None:
        self.driver = driver
        self.idn = idn
        self.options = options
        self.role = role
        self.address = address
        self.reopen = reopen  # a new connection to the same address (None: cannot reconnect, e.g. a replay)

    @classmethod
    def connect(cls, connection: Adapter, options: dict[str, Any], address: str = "", role: str = "",
                reopen: Callable[[], Adapter] | None = None) -> Any:
        """Wrap the driver around ``connection`` after checking that ``*IDN?`` names this model."""
        driver = cls.driver_class(connection)
        idn = str(driver.id).strip()
        if not cls.idn_pattern.search(idn):
            connection.close()
            raise InstrumentMismatchError(f"{role or 'instrument'} at {address or 'this address'}: the station file "
                                          f"declares a {cls.model}, but the instrument answers {idn!r}; nothing "
                                          "else was sent. Check the address or the model in the station file")
        return cls(driver, idn, dict(options), role, address, reopen)

    @property
    def label(self) -> str:
        """How messages name this instrument: its role and model."""
        return f"{self.role or 'instrument'} ({self.model})"

    def close(self) -> None:
        self.driver.adapter.close()

    def sync(self) -> None:
        """Bring the connection back in step: ask ``*IDN?`` and discard replies until the identity comes.

        After an interrupted exchange (Ctrl-C between a query and its reply) the instrument's reply to the
        old query is still on its way; without this, the next query would read it as its own answer.
        """
        adapter = self.driver.adapter
        adapter.write("*IDN?")
        for _ in range(SYNC_REPLIES):
            if adapter.read().strip() == self.idn:
                return
        raise InstrumentConnectionError(self.label, self.address, "its replies are out of step with the commands")

    def reconnect(self) -> None:
        """Open a new connection to the same address and check the identity again."""
        if self.reopen is None:
            raise InstrumentConnectionError(self.label, self.address, "cannot reconnect (no address to reopen)")
        try:
            self.driver.adapter.close()
        except Exception:  # noqa: BLE001 — the old link is being replaced because it failed
            pass
        driver = self.driver_class(self.reopen())
        idn = str(driver.id).strip()
        if idn != self.idn:
            raise InstrumentMismatchError(f"{self.label} at {self.address}: after reconnecting it answers {idn!r}, "
                                          f"not {self.idn!r}")
        self.driver = driver
        self.on_reconnect()

    def on_reconnect(self) -> None:
        """Forget what the adapter remembers of the instrument's settings (subclasses extend)."""

    def make_safe(self) -> None:
        """Send the commands of the safe state (output off, matrix open)."""
        raise NotImplementedError

    def is_safe(self) -> bool:
        """Ask the instrument whether it is in its safe state (confirms the commands took effect)."""
        raise NotImplementedError

    def check_errors(self) -> None:
        """Read the instrument's error queue; raise :class:`InstrumentErrors` (with this role) on any error."""
        try:
            self.driver.check_errors()
        except InstrumentErrors as exc:
            raise InstrumentErrors([ErrorEntry(self.role, e.code, e.message, self.model) for e in exc.entries]
                                   ) from None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.idn!r})"


class Keysight81160AAdapter(ModelAdapter):
    """The pulse-generator role on a Keysight 81160A (one channel)."""

    model = "Keysight81160A"
    idn_pattern = re.compile(r"81160A")
    driver_class = Keysight81160A
    known_options = {"channel": (1, 2)}
    max_level_v = LEVEL_MAX_V

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.channel_number = self.options.get("channel", 1)  # validated with the station file
        self._armed = False

    @property
    def channel(self) -> Any:
        return self.driver.channels[self.channel_number]

    def on_reconnect(self) -> None:
        self._armed = False

    def _arm(self) -> None:
        if not self._armed:
            self.driver.arm(self.channel_number)
            self._armed = True

    def max_segments(self, segments: Sequence[Segment]) -> int:
        if not segments:
            return 0
        points = np.cumsum(points_per_segment([s.duration_s for s in segments])[0])
        return int(np.searchsorted(points, ARB_MEMORY_POINTS, side="right"))

    def pulse_time_s(self, width_s: float) -> float:
        return PULSE_PERIOD_FACTOR * width_s

    def play_pulse(self, level_v: float, width_s: float) -> None:
        self.channel.single_pulse(level_v, width_s)
        self._arm()
        self.driver.fire()

    def play_waveform(self, segments: Sequence[Segment]) -> None:
        self.channel.play_segments([s.level_v for s in segments], [s.duration_s for s in segments])
        self._arm()
        self.driver.fire()

    def output_off(self) -> None:
        self.channel.output = False
        self._armed = False

    def make_safe(self) -> None:
        """Both outputs off: the channel in use, and the other one, which nothing here switched on."""
        for number in (1, 2):
            self.driver.channels[number].output = False
        self._armed = False

    def is_safe(self) -> bool:
        return not any(self.driver.channels[number].output for number in (1, 2))


class Keithley2450Adapter(ModelAdapter):
    """The source-meter role on a Keithley 2450: 4-wire Hall reads, 2-wire channel reads, buffered trials."""

    model = "Keithley2450"
    idn_pattern = re.compile(r"MODEL 2450")
    driver_class = Keithley2450
    max_buffer_readings = MAX_BUFFER_READINGS

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.aperture_s = 0.01 / LINE_FREQUENCY_HZ
        self._wires: int | None = None

    def on_reconnect(self) -> None:
        self._wires = None

    def _set_wires(self, wires: int) -> None:
        if self._wires != wires:
            self.driver.wires = wires
            self._wires = wires

    def configure_read(self, current_a: float, compliance_v: float, nplc: float) -> None:
        d = self.driver
        d.apply_current(compliance_voltage=compliance_v)
        d.measure_resistance(nplc=nplc)
        d.output_off_mode = "high_impedance"
        d.source_current = current_a
        # digital line 1 takes the pulse generator's trigger output
        d.trigger_line_mode = "TRIG, IN"
        d.trigger_edge = "RIS"
        self.aperture_s = nplc / LINE_FREQUENCY_HZ
        self._wires = None
        self.check_errors()  # the whole set-up (stock commands too), confirmed before the first reading

    def _read(self, wires: int, n_readings: int) -> np.ndarray:
        self._set_wires(wires)
        self.driver.enable_source()
        try:
            return np.array([_number(self.driver.resistance, self.label) for _ in range(n_readings)])
        finally:
            self.driver.disable_source()

    def read_hall(self, n_readings: int = 1) -> np.ndarray:
        return self._read(4, n_readings)

    def read_channel(self) -> float:
        return float(self._read(2, 1)[0])

    def arm_timed_readings(self, n_trials: int, offsets_s: Sequence[float], period_s: float) -> None:
        """After the next trigger: readings at ``k·period + offset`` for every trial ``k`` and offset."""
        self._set_wires(4)
        offsets = list(offsets_s)
        self.driver.configure_timed_readings(n_trials, offsets[0], list(np.diff(offsets)), period_s, self.aperture_s)
        self.driver.enable_source()
        self.driver.start()

    def fetch_readings(self, count: int, within_s: float = 0.0) -> np.ndarray:
        d = self.driver
        try:
            # poll rather than *OPC? first: a model still waiting for a trigger that never came would hold
            # *OPC? past any timeout, and the wiring would go undiagnosed
            if d.wait_while_busy(within_s + TRIGGER_GRACE_S) in BUSY_STATES:
                d.abort()
            d.wait_for_completion()
            stored = d.buffer_count()
            if stored < count:
                raise InstrumentError(f"{self.label}: expected {count} triggered readings, the buffer holds {stored}; "
                                      "is the pulse generator's trigger output wired to digital line 1?")
            return self._numbers(d.fetch_buffer, count)
        finally:
            d.disable_source()

    def list_sweep(self, currents_a: Sequence[float], dwell_s: float) -> np.ndarray:
        d = self.driver
        self._set_wires(4)
        d.clear_buffer()
        d.start_current_list_sweep(currents_a, dwell_s)
        try:
            d.wait_for_completion()
            return self._numbers(d.fetch_buffer, len(currents_a))
        finally:
            d.disable_source()

    def _numbers(self, fetch: Callable[[int], Any], count: int) -> np.ndarray:
        try:
            return np.asarray(fetch(count), dtype=np.float64)
        except (TypeError, ValueError):
            raise InstrumentReplyError(f"{self.label}: the buffered readings came back unreadable") from None

    def output_off(self) -> None:
        self.driver.disable_source()

    def make_safe(self) -> None:
        self.driver.abort()  # a trigger model still waiting for its trigger would hold the output on
        self.driver.disable_source()

    def is_safe(self) -> bool:
        return not self.driver.source_enabled


class Keithley707BAdapter(ModelAdapter):
    """The switch-matrix role on a Keithley 707B."""

    model = "Keithley707B"
    idn_pattern = re.compile(r"707B")
    driver_class = Keithley707B

    def close_only(self, crosspoints: Iterable[str]) -> None:
        wanted = {str(p).upper() for p in crosspoints}
        self.driver.exclusive_close(sorted(wanted))
        closed = self.closed()
        if closed != wanted:
            self.open_all()
            raise InstrumentError(f"{self.label}: asked to close {sorted(wanted)}, the matrix reports "
                                  f"{sorted(closed)}; every crosspoint was opened")

    def open_all(self) -> None:
        self.driver.open_all()

    make_safe = open_all

    def closed(self) -> set[str]:
        return set(self.driver.closed_crosspoints)

    def is_safe(self) -> bool:
        return not self.closed()


@dataclass(frozen=True)
class InstrumentModel:
    """A supported instrument model: the role it plays, its adapter, and its emulation (``module:Class``)."""

    name: str
    role: str
    adapter: type[ModelAdapter]
    emulator: str


MODELS: dict[str, InstrumentModel] = {m.name: m for m in (
    InstrumentModel("Keysight81160A", "pulse_generator", Keysight81160AAdapter,
                    "sim_backend.emulated.keysight81160a_emulator:EmulatedKeysight81160A"),
    InstrumentModel("Keithley2450", "source_meter", Keithley2450Adapter,
                    "sim_backend.emulated.keithley2450_emulator:EmulatedKeithley2450"),
    InstrumentModel("Keithley707B", "switch_matrix", Keithley707BAdapter,
                    "sim_backend.emulated.keithley707b_emulator:EmulatedKeithley707B"),
)}

# the models each role has an adapter for (what a station file may declare)
SUPPORTED_MODELS: dict[str, dict[str, type[ModelAdapter]]] = {}
for _model in MODELS.values():
    SUPPORTED_MODELS.setdefault(_model.role, {})[_model.name] = _model.adapter
