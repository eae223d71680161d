"""A small, safe interpreter for the TSP (Lua) statement forms Keithley's TSP manuals document.

Nothing a client sends is handed to ``eval``/``exec``: a message is tokenized, parsed into a short list of
statements, and run against a namespace of :class:`Table`, :class:`Attribute` and :class:`Function` objects
that the instrument provides. The served subset, per message (a Lua *chunk*):

- statements separated by ``;``, newlines or plain spaces (as TSP's Lua 5.0 allows: one optional ``;`` after a
  statement, never an empty statement); ``--`` comments;
- a function call: ``channel.close('1A01')``, ``waitcomplete()``, ``print(expr, ...)``;
- an assignment: ``channel.connectrule = channel.BREAK_BEFORE_MAKE``, ``format.asciiprecision = 6``,
  ``x = channel.getclose("allslots")``, ``code, message, severity, node = errorqueue.next()``;
- expressions: numbers (``1``, ``-2.5e-3``, ``0x10``), strings in either quote style with Lua's escapes,
  ``nil``, ``true``, ``false``, names, fields (``a.b``), indexing (``slot[1]``), calls (also ``f"text"``).

Lua's own rules hold where they matter to a client (TSP runs Lua 5.0, whose messages quote names as ```name'``):
an undefined name is ``nil`` (``print(foo)`` prints ``nil``), indexing or calling ``nil`` is a runtime error, a
call's extra results expand only as the last expression of a list, and ``print`` writes its values
tab-separated, numbers as ``format.asciiprecision`` digits in exponent form. Not served (a TSP syntax error,
−285): loops, ``if``, ``function``, ``local``, ``return``, operators (``+ .. == and`` …), table constructors and
long strings; the interpreter thus always ends, and a message is bounded (:data:`MAX_MESSAGE_CHARS`,
:data:`MAX_STATEMENTS`, :data:`MAX_GLOBALS`, :data:`MAX_NESTING`).

A syntax error anywhere in a message runs none of it (Lua compiles the chunk first); a runtime error stops
the chunk at that statement, with the statements before it done.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

TSP_SYNTAX_ERROR = -285
TSP_RUNTIME_ERROR = -286
MAX_MESSAGE_CHARS = 4096  # the emulation's bound on one message (the driver's longest is under 100 characters)
MAX_STATEMENTS = 64  # statements in one message
MAX_GLOBALS = 64  # client variables kept (``x = ...``)
MAX_STRING_CHARS = 1024  # a string a client may store in a variable
MAX_NESTING = 32  # fields, indexes and calls chained or nested in one expression (keeps the interpreter's stack small)

# valid Lua that the emulation deliberately does not serve (bounded, no loops or function definitions)
UNSERVED_KEYWORDS = frozenset({"and", "break", "do", "else", "elseif", "end", "for", "function", "goto", "if", "in",
                               "local", "not", "or", "repeat", "return", "then", "until", "while"})
_TOKEN = re.compile(r"""
    (?P<space>[ \t\r]+) | (?P<newline>\n) | (?P<comment>--[^\n]*)
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?P<tail>[A-Za-z_0-9.]*)
  | (?P<name>[A-Za-z_][A-Za-z_0-9]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<open_string>["'])
  | (?P<op>\.\.\.|\.\.|==|~=|<=|>=|\[\[|[-+*/%^#<>=(){}\[\];:,.])
""", re.VERBOSE)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v", "\\": "\\", '"': '"',
            "'": "'", "\n": "\n"}


class TspError(Exception):
    """An error the instrument queues: ``code`` and the message as ``errorqueue.next()`` gives it."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class TspSyntaxError(TspError):
    def __init__(self, detail: str, line: int) -> None:
        super().__init__(TSP_SYNTAX_ERROR, f"TSP Syntax error at line {line}: {detail}")


class TspRuntimeError(Exception):
    """A Lua runtime error raised while a statement runs (the interpreter adds the line: −286)."""


class Table(dict):
    """A Lua table the instrument provides (``channel``, ``slot``, ``slot[1]``)."""


@dataclass(frozen=True)
class Attribute:
    """An instrument attribute: read with ``get``; written with ``set`` (``None``: read-only)."""

    get: Callable[[], object]
    set: Callable[[object], None] | None = None


@dataclass(frozen=True)
class Function:
    """An instrument function: called with the argument values, returns a tuple of results.

    As in Lua, missing arguments are ``nil`` and extra ones are dropped: the call gets exactly ``arity``
    arguments (``None``: all of them)."""

    name: str
    call: Callable[..., tuple]
    arity: int | None = None


# -- tokens ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # name, number, string, op, eof
    value: object
    text: str
    line: int


def _unescape(body: str, line: int) -> str:
    out, i = [], 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        escape = body[i + 1]
        if escape in _ESCAPES:
            out.append(_ESCAPES[escape])
            i += 2
        elif escape in "0123456789":  # ASCII digits only (``isdigit`` takes "²" too)
            digits = re.match(r"[0-9]{1,3}", body[i + 1:]).group()
            if int(digits) > 255:
                raise TspSyntaxError(f"escape sequence too large near `\\{digits}'", line)
            out.append(chr(int(digits)))
            i += 1 + len(digits)
        else:
            raise TspSyntaxError(f"invalid escape sequence near `\\{escape}'", line)
    return "".join(out)


def tokenize(text: str) -> list[Token]:
    """The tokens of a chunk, ending with an ``eof`` token."""
    tokens, pos, line = [], 0, 1
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise TspSyntaxError(f"unexpected symbol near `{text[pos]}'", line)
        kind, lexeme = match.lastgroup, match.group()
        if kind == "tail":
            kind = "number"
        if kind == "newline":
            line += 1
        elif kind == "number":
            if match.group("tail"):
                raise TspSyntaxError(f"malformed number near `{lexeme}'", line)
            try:
                value = float(int(lexeme, 16)) if lexeme[:2].lower() == "0x" else float(lexeme)
            except OverflowError:
                raise TspSyntaxError(f"malformed number near `{lexeme[:20]}'", line) from None
            tokens.append(Token("number", value, lexeme, line))
        elif kind == "name":
            tokens.append(Token("name", lexeme, lexeme, line))
        elif kind == "string":
            tokens.append(Token("string", _unescape(lexeme[1:-1], line), lexeme, line))
        elif kind == "open_string":
            raise TspSyntaxError(f"unfinished string near `{text[pos:].splitlines()[0]}'", line)
        elif kind == "op":
            tokens.append(Token("op", lexeme, lexeme, line))
        pos = match.end()
    tokens.append(Token("eof", None, "<eof>", line))
    return tokens


# -- syntax tree -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Const:
    value: object


@dataclass(frozen=True)
class Name:
    name: str


@dataclass(frozen=True)
class Index:
    target: object
    key: object  # an expression
    field: str | None  # the name of a ``.field`` access, for error messages


@dataclass(frozen=True)
class Call:
    function: object
    args: tuple


@dataclass(frozen=True)
class Assign:
    targets: tuple
    values: tuple
    line: int


@dataclass(frozen=True)
class CallStatement:
    call: Call
    line: int


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0  # expressions being parsed inside one another, and chained suffixes

    @property
    def token(self) -> Token:
        return self.tokens[self.pos]

    def take(self) -> Token:
        token = self.token
        self.pos += 1
        return token

    def at(self, op: str) -> bool:
        return self.token.kind == "op" and self.token.value == op

    def expect(self, op: str, opening: Token | None = None) -> None:
        if not self.at(op):
            if opening is not None and opening.line != self.token.line:
                self.fail(f"`{op}' expected (to close `{opening.text}' at line {opening.line})")
            self.fail(f"`{op}' expected")
        self.take()

    def fail(self, what: str) -> None:
        token = self.token
        if token.kind == "name" and token.value in UNSERVED_KEYWORDS:
            raise TspSyntaxError(f"unexpected symbol near `{token.text}' (not served by the emulation)", token.line)
        raise TspSyntaxError(f"{what} near `{token.text}'", token.line)

    def chunk(self) -> list:
        statements = []
        while self.token.kind != "eof":
            if len(statements) >= MAX_STATEMENTS:
                self.fail(f"more than {MAX_STATEMENTS} statements in one message (not served by the emulation)")
            statements.append(self.statement())
            if self.at(";"):  # TSP's Lua (5.0): one optional ';' after a statement, never on its own
                self.take()
        return statements

    def statement(self):
        line = self.token.line
        if self.token.kind != "name" or self.token.value in UNSERVED_KEYWORDS | {"nil", "true", "false"}:
            self.fail("unexpected symbol")
        target = self.prefix()
        if isinstance(target, Call):
            return CallStatement(target, line)
        targets = [target]
        while self.at(","):
            self.take()
            targets.append(self.prefix())
            if isinstance(targets[-1], Call):
                self.fail("syntax error")
        if not self.at("="):
            self.fail("`=' expected")
        self.take()
        return Assign(tuple(targets), tuple(self.expressions()), line)

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            self.fail(f"expression nested deeper than {MAX_NESTING} (not served by the emulation)")

    def prefix(self):
        if self.token.kind != "name" or self.token.value in UNSERVED_KEYWORDS:
            self.fail("unexpected symbol")
        node = Name(self.take().value)
        outer = self.depth
        try:
            return self._suffixes(node)
        finally:
            self.depth = outer

    def _suffixes(self, node):
        while True:
            self.nest()
            if self.at("."):
                self.take()
                if self.token.kind != "name":
                    self.fail("<name> expected")
                field = self.take().value
                node = Index(node, Const(field), field)
            elif self.at("["):
                opening = self.take()
                key = self.expression()
                self.expect("]", opening)
                node = Index(node, key, None)
            elif self.at("("):
                opening = self.take()
                args = [] if self.at(")") else self.expressions()
                self.expect(")", opening)
                node = Call(node, tuple(args))
            elif self.token.kind == "string":
                node = Call(node, (Const(self.take().value),))
            else:
                return node

    def expressions(self) -> list:
        values = [self.expression()]
        while self.at(","):
            self.take()
            values.append(self.expression())
        return values

    def expression(self):
        token = self.token
        if token.kind in ("number", "string"):
            self.take()
            return Const(token.value)
        if self.at("-") and self.tokens[self.pos + 1].kind == "number":
            self.take()
            return Const(-self.take().value)
        if token.kind == "name" and token.value in ("nil", "true", "false"):
            self.take()
            return Const({"nil": None, "true": True, "false": False}[token.value])
        if token.kind == "name":
            return self.prefix()
        self.fail("unexpected symbol")


def parse(text: str) -> list:
    """The statements of a chunk; :class:`TspSyntaxError` for anything outside the served subset."""
    if len(text) > MAX_MESSAGE_CHARS:
        raise TspSyntaxError(f"message longer than {MAX_MESSAGE_CHARS} characters (not served by the emulation)", 1)
    return _Parser(tokenize(text)).chunk()


# -- values ----------------------------------------------------------------------------------------


def type_name(value: object) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Function):
        return "function"
    return "table"


def format_number(value: float, precision: int) -> str:
    """A number as TSP's ``print`` writes it: ``precision`` significant digits, exponent form."""
    return f"{float(value):.{precision - 1}e}"


def to_text(value: object, precision: int) -> str:
    """A value as ``print`` writes it."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return format_number(value, precision)
    if isinstance(value, str):
        return value
    return f"{type_name(value)}: 0x{id(value) & 0xFFFFFFFF:08x}"


def _key(value: object) -> object:
    """Lua keys: ``1`` and ``1.0`` are the same key; a table as a key finds nothing in the instrument's tables."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None if isinstance(value, Table) else value


class Interpreter:
    """Runs chunks against ``namespace`` (the instrument's global tables, attributes and functions).

    ``precision()`` gives the digits ``print`` writes numbers with. Client variables live in their own
    bounded table; an instrument name cannot be assigned.
    """

    def __init__(self, namespace: dict[str, object], precision: Callable[[], int]) -> None:
        self.namespace = {**namespace, "print": Function("print", self._print)}
        self.precision = precision
        self.variables: dict[str, object] = {}
        self.output: list[str] = []

    def run(self, text: str) -> list[str]:
        """Run one chunk; return the lines it printed. :class:`TspError` when it fails, with ``printed``
        (the lines printed before) and ``unprinted`` (how many ``print`` statements, the failing one and
        those after it, did not run)."""
        self.output = []
        statements = parse(text)
        for position, statement in enumerate(statements):
            try:
                self._execute(statement)
            except TspRuntimeError as exc:
                error = TspError(TSP_RUNTIME_ERROR, f"TSP Runtime error at line {statement.line}: {exc}")
                self._attach(error, statements[position:])
                raise error from None
            except TspError as error:
                self._attach(error, statements[position:])
                raise
        return self.output

    def _attach(self, error: TspError, not_run: list) -> None:
        error.printed = list(self.output)
        error.unprinted = sum(isinstance(s, CallStatement) and s.call.function == Name("print") for s in not_run)

    # -- statements ---------------------------------------------------------------------------------

    def _execute(self, statement) -> None:
        if isinstance(statement, CallStatement):
            self._call(statement.call)
            return
        values = self._values(statement.values)
        values += [None] * (len(statement.targets) - len(values))
        for target, value in zip(statement.targets, values, strict=False):
            self._assign(target, value)

    def _assign(self, target, value: object) -> None:
        if isinstance(target, Name):
            if target.name in self.namespace:
                raise TspRuntimeError(f"`{target.name}' is an instrument name and cannot be assigned "
                                      "(not served by the emulation)")
            if value is None:
                self.variables.pop(target.name, None)
                return
            if target.name not in self.variables and len(self.variables) >= MAX_GLOBALS:
                raise TspRuntimeError("not enough memory (the emulation keeps 64 variables)")
            if isinstance(value, str) and len(value) > MAX_STRING_CHARS:
                raise TspRuntimeError("not enough memory (string too long for the emulation)")
            self.variables[target.name] = value
            return
        table = self._evaluate(target.target)
        key = _key(self._evaluate(target.key))
        if not isinstance(table, Table):
            raise TspRuntimeError(f"attempt to index {self._describe(target.target)} (a {type_name(table)} value)")
        member = table.get(key)
        if not isinstance(member, Attribute):
            raise TspRuntimeError(f"field `{key}' cannot be assigned (not served by the emulation)")
        if member.set is None:
            raise TspRuntimeError(f"cannot set read-only attribute `{key}'")
        member.set(value)

    # -- expressions --------------------------------------------------------------------------------

    def _values(self, expressions: tuple) -> list:
        """Values of an expression list: a call's results expand only as the last expression."""
        values = []
        for position, expression in enumerate(expressions):
            if isinstance(expression, Call):
                results = list(self._call(expression))
                values.extend(results if position == len(expressions) - 1 else results[:1] or [None])
            else:
                values.append(self._evaluate(expression))
        return values

    def _evaluate(self, expression) -> object:
        if isinstance(expression, Const):
            return expression.value
        if isinstance(expression, Name):
            if expression.name in self.variables:
                return self.variables[expression.name]
            return self._read(self.namespace.get(expression.name))
        if isinstance(expression, Index):
            table = self._evaluate(expression.target)
            if not isinstance(table, Table):
                raise TspRuntimeError(f"attempt to index {self._describe(expression.target)} "
                                      f"(a {type_name(table)} value)")
            return self._read(table.get(_key(self._evaluate(expression.key))))
        results = self._call(expression)
        return results[0] if results else None

    @staticmethod
    def _read(member: object) -> object:
        return member.get() if isinstance(member, Attribute) else member

    def _call(self, call: Call) -> tuple:
        function = self._evaluate(call.function)
        if not isinstance(function, Function):
            raise TspRuntimeError(f"attempt to call {self._describe(call.function)} (a {type_name(function)} value)")
        args = self._values(call.args)
        if function.arity is not None:
            args = (args + [None] * function.arity)[:function.arity]
        return tuple(function.call(*args))

    @staticmethod
    def _describe(expression) -> str:
        if isinstance(expression, Name):
            return f"global `{expression.name}'"
        if isinstance(expression, Index) and expression.field is not None:
            return f"field `{expression.field}'"
        return "a value"

    def _print(self, *values: object) -> tuple:
        self.output.append("\t".join(to_text(value, self.precision()) for value in values))
        return ()
