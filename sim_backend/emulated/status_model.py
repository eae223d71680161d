"""The IEEE 488.2 status model the SCPI instruments share: event status, status byte, operation complete.

- **Standard Event Status Register** (ESR), read and cleared by ``*ESR?``, enabled by ``*ESE <mask>``:
  bit 0 OPC (operation complete, set by ``*OPC`` once no operation is pending), bit 2 QYE (query error,
  codes −400…−499), bit 3 DDE (device-dependent error, −300…−399 and positive codes), bit 4 EXE
  (execution error, −200…−299), bit 5 CME (command error, −100…−199), bit 7 PON (power on; set at power-on,
  not by ``*RST``).
- **Status Byte** (STB), read without clearing by ``*STB?``, enabled by ``*SRE <mask>``: bit 2 EAV (the
  error queue holds an entry), bit 4 MAV (a reply is waiting: never, since a socket instrument sends its
  reply at once), bit 5 ESB (ESR & ESE ≠ 0), bit 6 MSS (STB & SRE ≠ 0 over the other bits: the
  service-request summary that a program without an SRQ line polls), and the instrument's own summary
  bits (e.g. the 2450's OSB/QSB, bits 7 and 3).
- ``*CLS`` clears the ESR and the error queue and cancels a pending ``*OPC``; the enable masks stay.
  ``*ESE``/``*SRE`` take 0…255 (−222 outside); ``*ESE?``/``*SRE?`` read them back.

An instrument says whether an operation is pending (:meth:`StatusModel.pending` is given a callable):
``*OPC`` then arms and sets OPC when the last pending operation ends; ``*OPC?`` and ``*WAI`` wait for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sim_backend.emulated.scpi_values import register_value

OPC, QYE, DDE, EXE, CME, PON = 1, 4, 8, 16, 32, 128  # ESR bits
EAV, MAV, ESB, MSS = 4, 16, 32, 64  # STB bits
REGISTER_RANGE = (0, 255)


def error_event(code: int) -> int:
    """The ESR bit an error code sets."""
    if -199 <= code <= -100:
        return CME
    if -299 <= code <= -200:
        return EXE
    if -499 <= code <= -400:
        return QYE
    return DDE if code != 0 else 0


@dataclass
class StatusModel:
    """ESR, its enable mask, the service-request enable mask and the ``*OPC`` arming of one instrument."""

    pending: Callable[[], bool] = lambda: False
    summary: Callable[[], int] = lambda: 0  # the instrument's own STB bits (not EAV/ESB/MSS)
    esr: int = PON
    ese: int = 0
    sre: int = 0
    opc_armed: bool = field(default=False)

    def event(self, bits: int) -> None:
        self.esr |= bits

    def error(self, code: int) -> None:
        self.event(error_event(code))

    def arm_opc(self) -> None:
        """``*OPC``: OPC now if nothing is pending, else when the pending operations end."""
        self.opc_armed = True
        self.settle()

    def settle(self) -> None:
        """Set OPC if ``*OPC`` is armed and no operation is pending any more."""
        if self.opc_armed and not self.pending():
            self.opc_armed = False
            self.event(OPC)

    def read_esr(self) -> int:
        self.settle()
        value, self.esr = self.esr, 0
        return value

    def stb(self, errors_queued: bool) -> int:
        self.settle()
        value = self.summary() & ~(EAV | ESB | MSS)
        if errors_queued:
            value |= EAV
        if self.esr & self.ese:
            value |= ESB
        if value & self.sre & ~MSS:
            value |= MSS
        return value

    def clear(self) -> None:
        """``*CLS``: the event register cleared and a pending ``*OPC`` cancelled (enable masks kept)."""
        self.esr = 0
        self.opc_armed = False

    @staticmethod
    def register_value(text: str) -> int:
        """A ``*ESE``/``*SRE`` argument: an integer (NRf rounded) in 0…255."""
        return register_value(text, REGISTER_RANGE[1])
