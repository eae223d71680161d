"""One adapter per instrument model, implementing its role (``instruments.roles``) over a PyMeasure driver.

Each adapter connects through a PyMeasure adapter (VISA, or the transport recording/replay wrappers of
``instruments.transport``), checks ``*IDN?`` against its model before anything else is sent, and
translates role operations into driver calls.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import numpy as np
from pymeasure.adapters import Adapter, VISAAdapter

from instruments.drivers.errors import InstrumentError
from instruments.drivers.keithley707b import Keithley707B
from instruments.drivers.keithley2450 import Keithley2450
from instruments.drivers.keysight81160a import ARB_MEMORY_POINTS, LEVEL_MAX_V, PULSE_PERIOD_FACTOR, Keysight81160A
from instruments.roles import Segment

LINE_FREQUENCY_HZ = 50.0  # sets the reading aperture: NPLC / line frequency


class InstrumentMismatchError(ValueError):
    """The instrument at an address is not the model the station file declares."""


def open_connection(address: str, visa_library: str = "@py", timeout_ms: int = 5000) -> Adapter:
    """A PyMeasure VISA adapter with the terminations these instruments use on sockets and GPIB."""
    return VISAAdapter(address, visa_library=visa_library, timeout=timeout_ms, read_termination="\n",
                       write_termination="\n")


class _ModelAdapter:
    model: ClassVar[str]
    idn_pattern: ClassVar[re.Pattern[str]]
    driver_class: ClassVar[type]

    def __init__(self, driver: Any, idn: str, options: dict[str, Any], role: str) -> None:
        self.driver = driver
        self.idn = idn
        self.options = options
        self.role = role

    @classmethod
    def connect(cls, connection: Adapter, options: dict[str, Any], address: str = "", role: str = "") -> Any:
        """Wrap the driver around ``connection`` after checking that ``*IDN?`` names this model."""
        driver = cls.driver_class(connection)
        idn = str(driver.id).strip()
        if not cls.idn_pattern.search(idn):
            connection.close()
            raise InstrumentMismatchError(f"{role or 'instrument'} at {address or 'this address'}: the station file "
                                          f"declares a {cls.model}, but the instrument answers {idn!r}; nothing "
                                          "else was sent. Check the address or the model in the station file")
        return cls(driver, idn, dict(options), role)

    def close(self) -> None:
        self.driver.adapter.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.idn!r})"


class Keysight81160AAdapter(_ModelAdapter):
    """The pulse-generator role on a Keysight 81160A (one channel)."""

    model = "Keysight81160A"
    idn_pattern = re.compile(r"81160A")
    driver_class = Keysight81160A
    max_level_v = LEVEL_MAX_V

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.channel_number = int(self.options.get("channel", 1))
        if self.channel_number not in (1, 2):
            raise ValueError(f"instruments.{self.role}.options.channel: 1 or 2, got {self.channel_number!r}")
        self.channel = self.driver.channels[self.channel_number]
        self._armed = False

    def _arm(self) -> None:
        if not self._armed:
            self.driver.arm(self.channel_number)
            self._armed = True

    def max_segments(self, segments: Sequence[Segment]) -> int:
        ticks = np.rint(np.array([s.duration_s for s in segments]) * 1e9).astype(np.int64)
        if ticks.size == 0:
            return 0
        points = np.cumsum(ticks // int(np.gcd.reduce(ticks)))
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

    def is_safe(self) -> bool:
        return not self.channel.output


class Keithley2450Adapter(_ModelAdapter):
    """The source-meter role on a Keithley 2450: 4-wire Hall reads, 2-wire channel reads, buffered trials."""

    model = "Keithley2450"
    idn_pattern = re.compile(r"MODEL 2450")
    driver_class = Keithley2450

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.aperture_s = 0.01 / LINE_FREQUENCY_HZ
        self._wires: int | None = None

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

    def _read(self, wires: int, n_readings: int) -> np.ndarray:
        self._set_wires(wires)
        self.driver.enable_source()
        try:
            return np.array([float(self.driver.resistance) for _ in range(n_readings)])
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

    def fetch_readings(self, count: int) -> np.ndarray:
        d = self.driver
        try:
            d.wait_for_completion()
            stored = d.buffer_count()
            if stored < count:
                d.abort()
                raise InstrumentError(f"{self.role}: expected {count} triggered readings, the buffer holds {stored}; "
                                      "is the pulse generator's trigger output wired to digital line 1?")
            return d.fetch_buffer(count)
        finally:
            d.disable_source()

    def list_sweep(self, currents_a: Sequence[float], dwell_s: float) -> np.ndarray:
        d = self.driver
        self._set_wires(4)
        d.clear_buffer()
        d.start_current_list_sweep(currents_a, dwell_s)
        try:
            d.wait_for_completion()
            return d.fetch_buffer(len(currents_a))
        finally:
            d.disable_source()

    def output_off(self) -> None:
        self.driver.disable_source()

    def is_safe(self) -> bool:
        return not self.driver.source_enabled


class Keithley707BAdapter(_ModelAdapter):
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
            raise InstrumentError(f"{self.role}: asked to close {sorted(wanted)}, the matrix reports {sorted(closed)}; "
                                  "every crosspoint was opened")

    def open_all(self) -> None:
        self.driver.open_all()

    def closed(self) -> set[str]:
        return set(self.driver.closed_crosspoints)

    def is_safe(self) -> bool:
        return not self.closed()


SUPPORTED_MODELS: dict[str, dict[str, type[_ModelAdapter]]] = {
    "pulse_generator": {"Keysight81160A": Keysight81160AAdapter},
    "source_meter": {"Keithley2450": Keithley2450Adapter},
    "switch_matrix": {"Keithley707B": Keithley707BAdapter},
}
