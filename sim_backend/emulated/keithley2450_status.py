"""The emulated Keithley 2450's own status registers: operation and questionable, with event mapping.

From the *Model 2450 Reference Manual* (2450-901-01), section 6 STATus subsystem and appendix C:

- Each register set has a condition register (``:STAT:OPER:COND?``), an event register (``:STAT:OPER[:EVEN]?``,
  read and cleared) and an enable mask (``:STAT:OPER:ENAB <mask>``, 0 … 65535). Its bits 0 … 14 are set and
  cleared by the instrument's events, as mapped with ``:STAT:OPER:MAP <bit>, <setEvent>[, <clearEvent>]``
  (``:STAT:OPER:MAP? <bit>`` → ``<setEvent>,<clearEvent>``; 0: no mapping): a set event sets the bit in the
  condition and event registers, a clear event clears it in the condition register. The questionable set
  (``:STAT:QUES…``) works the same way.
- The status byte summarizes them: OSB (bit 7) when operation event & enable ≠ 0, QSB (bit 3) likewise for the
  questionable set. MSB (bit 0) summarizes a measurement register that the 2450's SCPI status model does not
  have, so it stays 0.
- ``:STAT:PRES`` clears both sets' event registers and enable masks; ``:STAT:CLE`` clears their event registers.
  The mappings stay until ``*RST`` or power-on.

The events the emulation raises (the 2450's event numbers): :data:`TRIGGER_MODEL_INITIATED` when a trigger model
or sweep starts and :data:`TRIGGER_MODEL_IDLED` when it ends or is aborted — the pair a program maps to watch a
run (e.g. ``:STAT:OPER:MAP 0, 2732, 2731``: bit 0 set when the model idles, cleared when it starts).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sim_backend.emulated.keithley2450_parameters import whole

TRIGGER_MODEL_INITIATED = 2731
TRIGGER_MODEL_IDLED = 2732
REGISTER_BITS = range(15)
ENABLE_RANGE = (0, 65535)
OSB, QSB = 128, 8  # status byte bits


@dataclass
class EventRegister:
    """Condition, event and enable registers of one set, and its event mapping."""

    condition: int = 0
    event: int = 0
    enable: int = 0
    maps: dict[int, tuple[int, int]] = field(default_factory=dict)  # bit -> (set event, clear event)

    def signal(self, event_number: int) -> None:
        for bit, (set_event, clear_event) in self.maps.items():
            if event_number == clear_event:
                self.condition &= ~(1 << bit)
            if event_number == set_event:
                self.condition |= 1 << bit
                self.event |= 1 << bit

    def read_event(self) -> int:
        value, self.event = self.event, 0
        return value

    @property
    def summary(self) -> bool:
        return bool(self.event & self.enable)


class StatusCommands:
    """The STATus subsystem of the emulated 2450 (a mixin of its SCPI front)."""

    STATUS_COMMANDS = [
        (":STATus:{set}[:EVENt]?", "_register_event"),
        (":STATus:{set}:CONDition?", "_register_condition"),
        (":STATus:{set}:ENABle?", "_register_enable_q"),
        (":STATus:{set}:ENABle", "_register_enable"),
        (":STATus:{set}:MAP?", "_register_map_q"),
        (":STATus:{set}:MAP", "_register_map"),
    ]
    REGISTER_SETS = {"OPER": "OPERation", "QUES": "QUEStionable"}

    registers: dict[str, EventRegister]

    @classmethod
    def status_commands(cls) -> list[tuple[str, str, str]]:
        """``(header spec, handler name, register set)`` for both register sets."""
        return [(spec.format(set=word), name, key) for key, word in cls.REGISTER_SETS.items()
                for spec, name in cls.STATUS_COMMANDS]

    def new_registers(self) -> dict[str, EventRegister]:
        return {key: EventRegister() for key in self.REGISTER_SETS}

    def signal_event(self, event_number: int) -> None:
        """An instrument event happened: the mapped bits follow."""
        for register in self.registers.values():
            register.signal(event_number)

    def register_summary(self) -> int:
        return (OSB if self.registers["OPER"].summary else 0) | (QSB if self.registers["QUES"].summary else 0)

    def _register_event(self, which: str, args: str) -> str:
        return str(self.registers[which].read_event())

    def _register_condition(self, which: str, args: str) -> str:
        return str(self.registers[which].condition)

    def _register_enable_q(self, which: str, args: str) -> str:
        return str(self.registers[which].enable)

    def _register_enable(self, which: str, args: str) -> None:
        self.registers[which].enable = whole(args, *ENABLE_RANGE, "enable mask")

    def _register_map_q(self, which: str, args: str) -> str:
        bit = whole(args, REGISTER_BITS.start, REGISTER_BITS.stop - 1, "bit number")
        set_event, clear_event = self.registers[which].maps.get(bit, (0, 0))
        return f"{set_event},{clear_event}"

    def _register_map(self, which: str, args: str) -> None:
        values = [a.strip() for a in args.split(",")]
        if len(values) not in (2, 3):
            raise ValueError(f"map: <bit>, <setEvent>[, <clearEvent>], got {args!r}")
        bit = whole(values[0], REGISTER_BITS.start, REGISTER_BITS.stop - 1, "bit number")
        events = [whole(v, 0, 2**31 - 1, "event number") for v in values[1:]] + [0]
        self.registers[which].maps[bit] = (events[0], events[1])

    def _status_preset(self, args: str) -> None:
        for register in self.registers.values():
            register.event = register.enable = 0

    def _status_clear(self, args: str) -> None:
        for register in self.registers.values():
            register.event = 0
