"""Loopback TCP servers for emulated instruments, and the base class they share.

One :class:`InstrumentServer` serves one :class:`EmulatedInstrument` on ``127.0.0.1`` at an
ephemeral (or given) port, reachable through pyvisa-py as ``TCPIP::127.0.0.1::<port>::SOCKET``.
Messages are terminated by ``\\n``; an IEEE 488.2 definite-length binary block (``#<n><len><bytes>``,
after a space or comma) is read whole even when its bytes contain ``\\n``. A message is handed to
:meth:`EmulatedInstrument.handle` as text (binary bytes decoded as latin-1, so they survive
``.encode("latin-1")``); a returned string is sent back with ``\\n``; ``None`` sends nothing.

A message longer than :data:`MAX_MESSAGE_BYTES` is dropped (up to its next ``\\n``) with ``-223 "Too much
data"`` in the error queue, so a client cannot make the server's memory grow without bound. With the bench's
``realtime`` option each message also takes the instrument's :attr:`EmulatedInstrument.command_time_s` for real.

Faults for tests (:class:`Faults`, one per instrument, ``instrument.faults``): a reply delayed past the
client's timeout, a connection dropped, a garbled reply, an instrument error; each can be armed to happen
at a given message from now. (The bench has its own: a device that breaks down, ``bench.faults``.)
"""

from __future__ import annotations

import re
import socket
import socketserver
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sim_backend.emulated.scpi_values import OutOfRange
from sim_backend.emulated.status_model import MSS, StatusModel

if TYPE_CHECKING:
    from sim_backend.emulated.bench import Bench

ERROR_QUEUE_SIZE = 21  # the instruments keep about 20 entries and then report a queue overflow
MAX_MESSAGE_BYTES = 16 << 20  # longest message taken (an 81160A waveform of 512 Ki points in ASCII is ~4 MB)
SCPI_TOO_MUCH_DATA = (-223, "Too much data")
LOG_KEPT = 1000  # messages kept in ``EmulatedInstrument.log``: a rolling log, so a long run's memory stays bounded
SCPI_NO_ERROR = (0, "No error")
SCPI_UNDEFINED_HEADER = -113
SCPI_DATA_OUT_OF_RANGE = -222
SCPI_ILLEGAL_PARAMETER = -224
SCPI_QUEUE_OVERFLOW = (-350, "Queue overflow")
SCPI_EXECUTION_ERROR = (-200, "Execution error")


@dataclass
class Faults:
    """Faults injected into an emulated instrument's transport and error queue (for tests of recovery).

    A fault happens at once (the flags) or at the ``N``-th message from now (the ``*_after_messages``
    counts, ``N >= 1``): messages 1 to ``N - 1`` are served as usual and the fault strikes at message
    ``N``. Every message the server takes counts once, write or query (one line, however many
    ``;``-separated commands it holds), on any connection to the instrument, from when the server takes it:
    writes a client sent before arming but the server has not yet taken count too, so arm after a query
    (its reply means every earlier message was taken). Each arming happens once: when it strikes, its
    count returns to ``None`` and its flag to ``False``.

    - ``drop_connection``: the next message is lost and the server closes the connection (the client's next
      read or write fails; a new connection is served as usual). ``drop_after_messages = N``: message ``N``
      is lost so.
    - ``reply_delay_s``: with no delay armed, every reply waits this long (a slow instrument).
      ``delay_after_messages = N``: replies go out at once until message ``N``; the reply to message ``N``
      (or, if it has none, the next reply after it) waits ``reply_delay_s``, once; ``reply_delay_s`` is then
      0 again. A delay past the client's timeout makes that query time out, and the late reply arrives
      afterwards, where the client's next read finds it. (Arm the count before setting ``reply_delay_s``,
      or assign a whole new ``Faults``.) ``delay_next_reply``: the same, from the next message on.
    - ``garble_next_reply``: the next reply is garbled (its bytes scrambled; still one ``\\n``-terminated
      line). ``garble_after_messages = N``: the reply to message ``N`` (or the next reply after it).
    - ``error_after_messages = N``: message ``N`` is rejected: it is not acted on, and ``error`` lands in the
      instrument's error queue exactly as the instrument's own rejections do (read it with ``SYST:ERR?`` or
      ``print(errorqueue.next())``); nothing is replied, as for any rejected message (so a rejected query
      goes unanswered and the client times out), except that the 707B answers a rejected ``print(...)``
      with ``nil``, as it does for any failing query. ``error`` is ``(code, message)``; ``None`` is the
      instrument's :attr:`EmulatedInstrument.fault_error`: ``(-200, "Execution error")`` on the SCPI
      instruments, a TSP runtime error (``-286``) on the 707B. ``error_next_message``: the next message.
    """

    reply_delay_s: float = 0.0
    drop_connection: bool = False
    garble_next_reply: bool = False
    drop_after_messages: int | None = None
    delay_after_messages: int | None = None
    garble_after_messages: int | None = None
    error_after_messages: int | None = None
    error: tuple[int, str] | None = None
    delay_next_reply: bool = False
    error_next_message: bool = False

    def count_message(self) -> None:
        """One message arrived (the server calls this before acting on it): armed faults due now strike."""
        if self._due("drop_after_messages"):
            self.drop_connection = True
        if self._due("delay_after_messages"):
            self.delay_next_reply = True
        if self._due("garble_after_messages"):
            self.garble_next_reply = True
        if self._due("error_after_messages"):
            self.error_next_message = True

    def _due(self, name: str) -> bool:
        remaining = getattr(self, name)
        if remaining is None:
            return False
        remaining -= 1
        setattr(self, name, None if remaining <= 0 else remaining)
        return remaining <= 0

    def take_reply_delay(self) -> float:
        """Seconds the reply about to be sent waits (a one-shot delay is used up)."""
        if self.delay_next_reply:
            self.delay_next_reply = False
            delay, self.reply_delay_s = self.reply_delay_s, 0.0
            return delay
        return self.reply_delay_s if self.delay_after_messages is None else 0.0


def garble(reply: bytes) -> bytes:
    """Scramble a reply's bytes (XOR 0x5A); a byte that would become a terminator becomes ``?`` instead."""
    scrambled = (b ^ 0x5A for b in reply)
    return bytes(b if b not in (0x0A, 0x0D) else 0x3F for b in scrambled)


def scpi_pattern(spec: str) -> re.Pattern[str]:
    """Compile a manual-style SCPI header into a regex that accepts its short and long forms.

    ``":SOURce[1]:CURRent[:LEVel]"`` accepts ``:SOUR:CURR``, ``SOURCE1:CURRENT:LEV``, ``sour:curr:level``
    and so on (case-insensitive, leading colon optional). Uppercase letters of a keyword are its
    short form. ``<n>`` stands for an optional channel number and is captured as a group.
    """
    out: list[str] = []
    i = 0
    while i < len(spec):
        char = spec[i]
        if char == "[":
            out.append("(?:")
        elif char == "]":
            out.append(")?")
        elif spec.startswith("<n>", i):
            out.append(r"(\d*)")
            i += 3
            continue
        elif char.isalpha():
            j = i
            while j < len(spec) and spec[j].isalpha():
                j += 1
            word = spec[i:j]
            short = "".join(c for c in word if c.isupper() or c.isdigit())
            rest = word[len(short):]
            # long form must be complete: SOUR or SOURCE, not SOURC
            out.append(re.escape(short) + (f"(?:{re.escape(rest)})?" if rest else ""))
            i = j
            continue
        elif char == "*":
            out.append(r"\*")
        else:
            out.append(re.escape(char))
        i += 1
    body = "".join(out)
    if body.startswith(":"):
        body = ":?" + body[1:]
    return re.compile(rf"^{body}$", re.IGNORECASE)


def split_header(message: str) -> tuple[str, str]:
    """Split ``":SOUR:CURR 1e-3"`` into the header and its argument text."""
    message = message.strip()
    head, _, args = message.partition(" ")
    return head, args.strip()


class EmulatedInstrument:
    """Base for one emulated instrument: identity, error queue, access to the shared bench.

    Subclasses implement :meth:`handle`. They report a command they do not understand with
    :meth:`push_error` (it lands in the error queue; nothing is replied).

    ``log`` holds the latest :data:`LOG_KEPT` messages received, oldest first (a ``deque`` with that
    ``maxlen``: iterate it or take ``list(log)``); older messages are forgotten, so the emulator's memory
    stays bounded however long a run is.
    """

    idn: str = "Emulated instrument"
    model: str = ""
    fault_error: tuple[int, str] = SCPI_EXECUTION_ERROR  # what an injected instrument error queues by default
    # the instrument's time to parse and act on one message; waited for real only with the bench's realtime
    # option (the virtual clock counts the modeled instrument time: apertures, pulses, relay settling, uploads)
    command_time_s: float = 0.0

    def __init__(self, bench: Bench | None = None) -> None:
        self.bench = bench
        self.errors: deque[tuple[int, str]] = deque()
        self.faults = Faults()
        # the latest LOG_KEPT messages received, oldest first (for tests; older ones are forgotten)
        self.log: deque[str] = deque(maxlen=LOG_KEPT)

    def handle(self, message: str) -> str | None:
        """Act on one message; return the reply text for a query, ``None`` otherwise."""
        raise NotImplementedError

    def push_error(self, code: int, message: str) -> None:
        """Append an error to the queue (the oldest are kept; overflow is reported as the last entry)."""
        if len(self.errors) >= ERROR_QUEUE_SIZE - 1:
            if self.errors[-1] != SCPI_QUEUE_OVERFLOW:
                self.errors.append(SCPI_QUEUE_OVERFLOW)
            return
        self.errors.append((code, message))

    def next_error(self) -> tuple[int, str]:
        """Pop the oldest error, or ``(0, "No error")``."""
        return self.errors.popleft() if self.errors else SCPI_NO_ERROR

    def clear_errors(self) -> None:
        self.errors.clear()

    def receive(self, message: str) -> str | None:
        """Entry point from the server: log, hand to :meth:`handle` under the bench lock."""
        self.log.append(message)
        if self.bench is not None:
            with self.bench.lock:
                return self.handle(message)
        return self.handle(message)

    def reject(self, message: str, error: tuple[int, str] | None = None) -> str | None:
        """Entry point from the server for a message rejected by an injected fault: log it and queue
        ``error`` (default :attr:`fault_error`) instead of acting on it; reply as to any rejected message."""
        self.log.append(message)
        return self._refuse(message, error if error is not None else self.fault_error)

    def _refuse(self, message: str, error: tuple[int, str]) -> str | None:
        """Queue ``error`` for ``message`` (under the bench lock) and reply as to any rejected message."""
        if self.bench is not None:
            with self.bench.lock:
                self.push_error(*error)
        else:
            self.push_error(*error)
        return self.rejected_reply(message)

    def rejected_reply(self, message: str) -> str | None:
        """What the instrument replies to a message it rejects: nothing."""
        return None

    def fault(self, message: str, exc: Exception) -> str | None:
        """A message the emulation failed on (a defect of the emulator, not of the client): it lands in the
        error queue as an execution error naming the failure, and is answered as a rejected message."""
        code, text = self.fault_error
        return self._refuse(message, (code, f"{text}; emulation fault: {type(exc).__name__}: {exc}"))


_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only
_BLOCK_START = re.compile(rb"[ ,]#([1-9])")


def _take_message(buffer: bytearray) -> bytes | None:
    """Remove and return one message from ``buffer``: up to ``\n``, with binary blocks read whole.

    A message that ends with a definite-length block needs no ``\n`` after it (PyMeasure's
    ``write_binary_values`` sends none): the block's declared length marks the end.
    """
    pos = 0
    while True:
        newline = buffer.find(b"\n", pos)
        block = _BLOCK_START.search(buffer, pos)
        if block is not None and (newline == -1 or block.start() < newline):
            digits = int(block.group(1))
            length_start = block.end()
            length_text = bytes(buffer[length_start:length_start + digits])
            if len(length_text) < digits:
                return None
            if not length_text.isdigit():
                pos = length_start  # not a block after all
                continue
            end = length_start + digits + int(length_text)
            if end > len(buffer):
                return None
            if end == len(buffer) or buffer[end:end + 1] != b"\n":
                message = bytes(buffer[:end])
                del buffer[:end]
                return message
            pos = end
            continue
        if newline == -1:
            return None
        message = bytes(buffer[:newline])
        del buffer[:newline + 1]
        # a carriage return before the newline is part of the terminator, unless a binary block ends there
        return message[:-1] if message.endswith(b"\r") and newline - 1 >= pos else message


class _Handler(socketserver.BaseRequestHandler):
    server: InstrumentServer

    def handle(self) -> None:
        instrument = self.server.instrument
        buffer = bytearray()
        discarding = False  # dropping the rest of an over-long message, up to its newline
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # replies go out at once, as on a LAN instrument
        while not self.server.closing.is_set():
            try:
                chunk = sock.recv(1 << 16)
            except OSError:
                return
            if not chunk:
                return
            if _QUICKACK is not None:
                # acknowledge at once: a client that writes a command and then a query (Nagle's algorithm
                # on its side) would otherwise wait for the delayed ACK, tens of ms per pair
                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            if discarding:
                newline = chunk.find(b"\n")
                if newline == -1:
                    continue
                chunk, discarding = chunk[newline + 1:], False
            buffer.extend(chunk)
            if len(buffer) > MAX_MESSAGE_BYTES:
                newline = buffer.find(b"\n")
                if newline == -1 or newline > MAX_MESSAGE_BYTES:  # the first message is longer than the buffer
                    discarding = newline == -1
                    del buffer[:len(buffer) if discarding else newline + 1]
                    instrument.reject("<message longer than the input buffer>", SCPI_TOO_MUCH_DATA)
            while (raw := _take_message(buffer)) is not None:
                if not raw.strip():
                    continue
                faults = instrument.faults
                faults.count_message()
                if faults.drop_connection:
                    faults.drop_connection = False
                    sock.close()
                    return
                message = raw.decode("latin-1")
                if faults.error_next_message:
                    faults.error_next_message = False
                    reply = instrument.reject(message, faults.error)
                else:
                    try:
                        reply = instrument.receive(message)
                    except Exception as exc:  # an emulation fault must not cost the client its connection
                        reply = instrument.fault(message, exc)
                bench = instrument.bench
                if bench is not None and bench.realtime and instrument.command_time_s > 0:
                    time.sleep(instrument.command_time_s)
                if reply is None:
                    continue
                delay = faults.take_reply_delay()
                if delay > 0:
                    time.sleep(delay)
                data = reply.encode("latin-1", errors="replace")
                if faults.garble_next_reply:
                    faults.garble_next_reply = False
                    data = garble(data)
                data += b"\n"
                try:
                    sock.sendall(data)
                except OSError:
                    return
            if len(buffer) > MAX_MESSAGE_BYTES:
                # a message (a binary block) longer than the input buffer: dropped, up to the next newline
                buffer.clear()
                discarding = True
                instrument.reject("<message longer than the input buffer>", SCPI_TOO_MUCH_DATA)


class InstrumentServer(socketserver.ThreadingTCPServer):
    """Serve one emulated instrument on loopback; a context manager that stops the server on exit."""

    daemon_threads = True
    block_on_close = False  # a connected client's thread ends with its socket; don't wait for it
    allow_reuse_address = True

    def __init__(self, instrument: EmulatedInstrument, port: int = 0, host: str = "127.0.0.1") -> None:
        self.instrument = instrument
        self.closing = threading.Event()
        stopping = getattr(instrument, "stopping", None)
        if stopping is not None:
            stopping.clear()  # served again after an earlier server closed: *OPC? waits again
        super().__init__((host, port), _Handler)
        self._thread = threading.Thread(target=self.serve_forever, name=f"emulated {instrument.model}",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def address(self) -> str:
        """The VISA resource name of this server."""
        return f"TCPIP::{self.server_address[0]}::{self.port}::SOCKET"

    def close(self) -> None:
        if not self.closing.is_set():
            self.closing.set()
            stopping = getattr(self.instrument, "stopping", None)
            if stopping is not None:
                stopping.set()
            self.shutdown()
            self.server_close()

    def __enter__(self) -> InstrumentServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def split_compound(message: str) -> list[str]:
    """Split ``":A 1;:B?"`` at semicolons outside quotes (a message with a binary block stays whole)."""
    if _BLOCK_START.search(message.encode("latin-1")):
        return [message]
    parts, current, quote = [], [], ""
    for char in message:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == ";":
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def unquote(text: str) -> str:
    text = text.strip()
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"" else text


def parse_bool(text: str) -> bool:
    value = text.strip().upper()
    if value in ("1", "ON"):
        return True
    if value in ("0", "OFF"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


class ScpiInstrument(EmulatedInstrument):
    """An SCPI instrument: a table of manual-style headers and the methods that handle them.

    ``COMMANDS`` lists ``(header spec, method name)``; a method gets the argument text and the
    captured channel numbers and returns the reply text for a query. A header no spec matches puts
    ``-113 "Undefined header"`` in the queue; a ValueError from a handler puts ``-224 "Illegal
    parameter value"`` (with the reason) there. Nothing is replied for either.
    """

    COMMANDS: list[tuple[str, str]] = []
    COMMON = [("*IDN?", "_idn"), ("*RST", "_rst"), ("*CLS", "_cls"), ("*OPC?", "_opc"), ("*OPC", "_opc_arm"),
              ("*WAI", "_wai"), ("*ESR?", "_esr_q"), ("*ESE?", "_ese_q"), ("*ESE", "_ese"), ("*SRE?", "_sre_q"),
              ("*SRE", "_sre"), ("*STB?", "_stb_q"), ("*TST?", "_tst_q"), (":SYSTem:ERRor[:NEXT]?", "_syst_err")]
    OPC_POLL_S = 0.002  # how often a waiting ``*OPC?``/``*WAI`` looks whether the pending operations ended

    def __init__(self, bench: Bench | None = None) -> None:
        super().__init__(bench)
        self._table = [(scpi_pattern(spec), name) for spec, name in self.COMMON + self.COMMANDS]
        self.status = StatusModel(pending=self.operations_pending, summary=self.status_summary)
        self.stopping = threading.Event()  # set when the server closes: a waiting ``*OPC?`` gives up
        self.reset_state()

    def reset_state(self) -> None:
        """Power-on / ``*RST`` state (subclasses extend). The status registers are not part of it."""

    def operations_pending(self) -> bool:
        """Whether an overlapped operation (e.g. a running trigger model) is still in progress."""
        return False

    def status_summary(self) -> int:
        """The instrument's own status-byte bits (besides EAV, ESB and MSS, which the status model sets)."""
        return 0

    def push_error(self, code: int, message: str) -> None:
        super().push_error(code, message)
        self.status.error(code)

    def handle(self, message: str) -> str | None:
        replies = []
        for part in split_compound(message):
            head, args = split_header(part)
            for pattern, name in self._table:
                match = pattern.match(head)
                if match:
                    try:
                        reply = getattr(self, name)(args, *match.groups())
                    except OutOfRange as exc:
                        self.push_error(SCPI_DATA_OUT_OF_RANGE, f"Data out of range; {exc}")
                        reply = None
                    except (ValueError, ArithmeticError) as exc:
                        self.push_error(SCPI_ILLEGAL_PARAMETER, f"Illegal parameter value; {exc}")
                        reply = None
                    if reply is not None:
                        replies.append(reply)
                    break
            else:
                self.push_error(SCPI_UNDEFINED_HEADER, f"Undefined header; {head}")
        self.status.settle()
        return ";".join(replies) if replies else None

    def wait_until_idle(self) -> None:
        """Block until no operation is pending (``*OPC?``, ``*WAI``), letting other connections act meanwhile.

        Like the instrument, it waits as long as it takes: a client whose timeout runs out first finds the
        late reply at its next read. The bench lock is released while waiting (another connection's
        ``*TRG`` or the pulse generator's trigger may be what ends the operation)."""
        if self.bench is None:
            while self.operations_pending() and not self.stopping.wait(self.OPC_POLL_S):
                pass
            return
        condition = threading.Condition(self.bench.lock)
        while self.operations_pending() and not self.stopping.is_set():
            condition.wait(self.OPC_POLL_S)

    def _idn(self, args: str) -> str:
        return self.idn

    def _rst(self, args: str) -> None:
        self.reset_state()

    def _cls(self, args: str) -> None:
        self.clear_errors()
        self.status.clear()

    def _opc(self, args: str) -> str:
        self.wait_until_idle()
        return "1"

    def _opc_arm(self, args: str) -> None:
        self.status.arm_opc()

    def _wai(self, args: str) -> None:
        self.wait_until_idle()

    def _esr_q(self, args: str) -> str:
        return str(self.status.read_esr())

    def _ese_q(self, args: str) -> str:
        return str(self.status.ese)

    def _ese(self, args: str) -> None:
        self.status.ese = StatusModel.register_value(args)

    def _sre_q(self, args: str) -> str:
        return str(self.status.sre)

    def _sre(self, args: str) -> None:
        self.status.sre = StatusModel.register_value(args) & ~MSS  # bit 6 cannot be enabled

    def _stb_q(self, args: str) -> str:
        return str(self.status.stb(bool(self.errors)))

    def _tst_q(self, args: str) -> str:
        return "0"  # the self-test passed

    def _syst_err(self, args: str) -> str:
        code, message = self.next_error()
        return f'{code},"{message}"'
