"""The emulated Keithley 2450's trigger commands: digital lines, ``:TRIG:LOAD``, the blocks, ``:INIT``, ``:ABOR``.

From the *Model 2450 Reference Manual* (2450-901-01), section 6, DIGital and TRIGger subsystems. This module
parses the commands; :class:`~sim_backend.emulated.trigger_model.TriggerModel` holds and runs the blocks.

- ``:DIG:LINE<n>:MODE <TRIGger|DIGital>, <IN|OUT>`` (lines 1 … 6) and ``?``; ``:TRIG:DIG<n>:IN:EDGE
  FALLing|RISing|EITHer`` and ``?``; ``:TRIG:DIG<n>:IN:CLEar``.
- ``:TRIG:LOAD "Empty"``; the templates ``"SimpleLoop", <count>[, <delay>[, "<buffer>"]]``,
  ``"DurationLoop", <duration>[, <delay>[, "<buffer>"]]`` and ``"LogicTrigger", <digInLine>, <digOutLine>,
  <count>, <clear>[, <delay>[, "<buffer>"]]`` and ``"LoopUntilEvent", <event>, <position>[, <clear>][, <delay>][,
  "<buffer>"]`` (events ``DIGio<n>``, ``COMMand``).
- Blocks: ``:TRIG:BLOC:BUFF:CLE``, ``:WAIT`` (``DIGio<n>``, ``COMMand``; ``ENTer``/``NEVer``), ``:DEL:CONS``,
  ``:MEAS`` (with a count), ``:BRAN:COUN``, ``:NOP``, ``:NOT`` (notify: accepted; the output line reaches
  nothing on the bench).
- ``:INIT`` (the loaded sweep, or the trigger model), ``:ABOR``, ``:TRIG:STAT?``, ``*TRG``.
"""

from __future__ import annotations

import re

from sim_backend.emulated.keithley2450_parameters import bounded, params, whole
from sim_backend.emulated.keithley2450_sweeps import Sweep
from sim_backend.emulated.scpi_values import OutOfRange
from sim_backend.emulated.server import scpi_pattern, unquote
from sim_backend.emulated.trigger_model import TriggerModel

DIGITAL_LINES = range(1, 7)
MAX_BLOCKS = 63
MAX_COUNT = 268_435_455
DELAY_MAX_S = 10_000.0
DURATION_MAX_S = 100_000.0
EDGES = {"FALL": "FALLing", "RIS": "RISing", "EITH": "EITHer"}
_WORDS = {key: scpi_pattern(spec) for key, spec in
          {**EDGES, "ENT": "ENTer", "NEV": "NEVer", "COMM": "COMMand", "TRIG": "TRIGger", "DIG": "DIGital",
           "IN": "IN", "OUT": "OUT"}.items()}
_DIGIO_EVENT = re.compile(r"^DIG(?:IO)?([1-6])$", re.IGNORECASE)


def _is(word: str, key: str) -> bool:
    return bool(_WORDS[key].match(word.strip()))


class TriggerCommands:
    """Digital lines, trigger-model commands, ``:INIT``/``:ABOR`` of the emulated 2450 (a mixin)."""

    TRIGGER_COMMANDS = [
        (":DIGital:LINE<n>:MODE?", "_digital_mode_q"),
        (":DIGital:LINE<n>:MODE", "_digital_mode"),
        (":TRIGger:DIGital<n>:IN:EDGE?", "_digital_edge_q"),
        (":TRIGger:DIGital<n>:IN:EDGE", "_digital_edge"),
        (":TRIGger:DIGital<n>:IN:CLEar", "_digital_clear"),
        (":TRIGger:LOAD", "_trigger_load"),
        (":TRIGger:BLOCk:BUFFer:CLEar", "_block_buffer_clear"),
        (":TRIGger:BLOCk:WAIT", "_block_wait"),
        (":TRIGger:BLOCk:DELay:CONStant", "_block_delay"),
        (":TRIGger:BLOCk:MEASure", "_block_measure"),
        (":TRIGger:BLOCk:BRANch:COUNter", "_block_branch_counter"),
        (":TRIGger:BLOCk:NOP", "_block_nop"),
        (":TRIGger:BLOCk:NOTify", "_block_notify"),
        (":INITiate[:IMMediate]", "_initiate"),
        (":ABORt", "_abort"),
        (":TRIGger:STATe?", "_trigger_state"),
        ("*TRG", "_bus_trigger"),
    ]

    trigger_model: TriggerModel
    sweep: Sweep | None
    line_modes: dict[int, str]
    edges: dict[int, str]

    # provided by the instrument: ``buffer_name(text)`` and ``run_sweep()``

    # -- digital I/O ------------------------------------------------------------------------------------

    @staticmethod
    def _line(text: str) -> int:
        line = int(text or 1)
        if line not in DIGITAL_LINES:
            raise OutOfRange(f"digital line {line}")
        return line

    def _digital_mode_q(self, args: str, line: str) -> str:
        return self.line_modes[self._line(line)].replace(" ", "")

    def _digital_mode(self, args: str, line: str) -> None:
        values = params(args)
        if len(values) != 2 or not (_is(values[0], "TRIG") or _is(values[0], "DIG")) \
                or not (_is(values[1], "IN") or _is(values[1], "OUT")):
            raise ValueError(f"digital line mode {args!r}")
        kind = "TRIG" if _is(values[0], "TRIG") else "DIG"
        self.line_modes[self._line(line)] = f"{kind}, {'IN' if _is(values[1], 'IN') else 'OUT'}"

    def _digital_edge_q(self, args: str, line: str) -> str:
        return self.edges[self._line(line)]

    def _digital_edge(self, args: str, line: str) -> None:
        key = next((k for k in EDGES if _is(args, k)), None)
        if key is None:
            raise ValueError(f"trigger edge {args.strip()!r}")
        self.edges[self._line(line)] = key

    def _digital_clear(self, args: str, line: str) -> None:
        self._line(line)  # a detected edge is never held over: nothing to clear

    # -- loading ------------------------------------------------------------------------------------------

    def _trigger_load(self, args: str) -> None:
        values = params(args)
        name = unquote(values[0]).upper() if values else ""
        rest = values[1:]
        if name == "EMPTY" and not rest:
            self.trigger_model.load_empty()
        elif name in ("SIMPLELOOP", "DURATIONLOOP") and 1 <= len(rest) <= 3:
            # a delay, a measurement, and a loop back: so many times, or for so long
            loop = ("counter", (whole(rest[0], 1, MAX_COUNT, "count"), 1)) if name == "SIMPLELOOP" else \
                ("elapsed", (bounded(rest[0], 0.0, DURATION_MAX_S, "duration"), 1))
            delay = bounded(rest[1], 0.0, DELAY_MAX_S, "delay") if len(rest) > 1 else 0.0
            buffer = self.buffer_name(rest[2] if len(rest) > 2 else "")
            self.trigger_model.load_template([("delay", delay), ("measure", (buffer, 1)), loop])
        elif name == "LOGICTRIGGER" and 4 <= len(rest) <= 6:
            line_in = whole(rest[0], 1, DIGITAL_LINES.stop - 1, "digital input line")
            whole(rest[1], 1, DIGITAL_LINES.stop - 1, "digital output line")
            count = whole(rest[2], 1, MAX_COUNT, "count")
            self._wait_clear(rest[3])
            delay = bounded(rest[4], 0.0, DELAY_MAX_S, "delay") if len(rest) > 4 else 0.0
            buffer = self.buffer_name(rest[5] if len(rest) > 5 else "")
            self.trigger_model.load_template([("wait", f"DIG{line_in}"), ("delay", delay),
                                                    ("measure", (buffer, 1)), ("nop", None),
                                                    ("counter", (count, 1))])
        elif name == "LOOPUNTILEVENT" and 2 <= len(rest) <= 5:
            self.trigger_model.load_template([("clear", self.buffer_name(self._loop_buffer(rest))),
                                              ("loop", self._loop_until(rest))])
        else:
            raise ValueError(f"trigger model template {args.strip()[:60]!r} (emulated: \"Empty\", \"SimpleLoop\", "
                             '"DurationLoop", "LogicTrigger", "LoopUntilEvent", with their parameters)')
        self.sweep = None

    @staticmethod
    def _loop_buffer(rest: list[str]) -> str:
        return rest[-1] if rest[-1][:1] in "'\"" else ""

    def _loop_until(self, rest: list[str]) -> tuple[str, float, float, str]:
        """``<eventConstant>, <position>[, <clear>][, <delay>][, "<buffer>"]`` of ``LoopUntilEvent``."""
        event = self._event(rest[0])
        position = bounded(rest[1], 0.0, 100.0, "trigger position %")
        tail = rest[2:-1] if self._loop_buffer(rest) else rest[2:]
        if tail and (_is(tail[0], "ENT") or _is(tail[0], "NEV")):
            tail = tail[1:]
        if len(tail) > 1:
            raise ValueError(f"LoopUntilEvent: too many parameters {', '.join(rest)}")
        delay = bounded(tail[0], 0.0, DELAY_MAX_S, "delay") if tail else 0.0
        return event, position, delay, self.buffer_name(self._loop_buffer(rest))

    @staticmethod
    def _event(text: str) -> str:
        """A trigger event the emulation can wait for: ``DIGio<n>`` or ``COMMand``."""
        digio = _DIGIO_EVENT.match(text.strip())
        if digio:
            return f"DIG{digio.group(1)}"
        if _is(text, "COMM"):
            return "COMM"
        raise ValueError(f"trigger event {text.strip()} (emulated: DIGio<n>, COMMand)")

    def _block(self, args: str) -> tuple[int, list[str]]:
        values = params(args)
        if not values:
            raise ValueError("block number missing")
        number_ = whole(values[0], 1, MAX_BLOCKS, "block number")
        self.sweep = None
        return number_, values[1:]

    @staticmethod
    def _wait_clear(text: str) -> None:
        if not (_is(text, "ENT") or _is(text, "NEV")):
            raise ValueError(f"wait clear {text}")

    def _block_buffer_clear(self, args: str) -> None:
        number_, rest = self._block(args)
        self.trigger_model.define(number_, "clear", self.buffer_name(rest[0] if rest else ""))

    def _block_wait(self, args: str) -> None:
        number_, rest = self._block(args)
        if not rest or len(rest) > 2:
            raise ValueError(f"wait block: one event (and an optional clear), got {args}")
        event = self._event(rest[0])
        if len(rest) == 2:
            self._wait_clear(rest[1])
        self.trigger_model.define(number_, "wait", event)

    def _block_delay(self, args: str) -> None:
        number_, rest = self._block(args)
        if len(rest) != 1:
            raise ValueError(f"delay block: one delay, got {args}")
        self.trigger_model.define(number_, "delay", bounded(rest[0], 0.0, DELAY_MAX_S, "delay"))

    def _block_measure(self, args: str) -> None:
        number_, rest = self._block(args)
        buffer = self.buffer_name(rest[0] if rest else "")
        count = whole(rest[1], 1, MAX_COUNT, "measure count") if len(rest) > 1 else 1
        self.trigger_model.define(number_, "measure", (buffer, count))

    def _block_branch_counter(self, args: str) -> None:
        number_, rest = self._block(args)
        if len(rest) != 2:
            raise ValueError(f"counter block: <count>, <branch to>, got {args}")
        count = whole(rest[0], 1, MAX_COUNT, "counter")
        target = whole(rest[1], 1, MAX_BLOCKS, "branch block")
        self.trigger_model.define(number_, "counter", (count, target))

    def _block_nop(self, args: str) -> None:
        number_, _ = self._block(args)
        self.trigger_model.define(number_, "nop", None)

    def _block_notify(self, args: str) -> None:
        number_, rest = self._block(args)
        if len(rest) != 1:
            raise ValueError(f"notify block: one notify event, got {args}")
        self.trigger_model.define(number_, "nop", None)

    # -- running ------------------------------------------------------------------------------------------

    def _initiate(self, args: str) -> None:
        if self.sweep is not None:
            self.run_sweep()
            return
        self.trigger_model.initiate()

    def _abort(self, args: str) -> None:
        self.trigger_model.abort()

    def _trigger_state(self, args: str) -> str:
        """``<state>;<state>;<block>``, e.g. ``WAITING;WAITING;2`` or ``IDLE;IDLE;9``."""
        return self.trigger_model.state_reply()

    def _bus_trigger(self, args: str) -> None:
        self.trigger_model.bus_trigger()
