"""The 707B's crosspoints: channel lists as the reference manual defines them, and switching phases.

Channel lists (707B-901-01, "Channel list parameter for remote commands"): items separated by commas or
semicolons, spaces allowed around them:

- a crosspoint ``<slot><row><column>``: slot 1–6, row ``A``–``H``, column ``01``–``12``, in any case (the
  manual's numeric-row form "1105" belongs to other card types; ``channel.createspecifier(1, 1, 5)`` gives
  ``1A05`` on these 8×12 matrix cards);
- a channel label set with ``channel.setlabel`` (case-sensitive);
- a range ``<first>:<last>``, lowest first: every crosspoint of that slot whose row lies between the two rows
  and whose column lies between the two columns (``1A01:1A05`` is row A, columns 1 to 5; ``1A01:1C05`` the
  3×5 block);
- ``slotX`` and ``allslots`` where the command accepts them.

A list with any invalid item is refused whole (:class:`ChannelListError`).

:func:`switching_phases` orders the relay changes of one command by the connect rule (break before make,
make before break, or none) and ``channel.connectsequential``, with the settle time and the user delays each
phase takes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

SLOT_COUNT = 6
ROWS = "ABCDEFGH"
COLUMN_COUNT = 12
ALL_CROSSPOINTS = tuple(f"{slot}{row}{column:02d}" for slot in range(1, SLOT_COUNT + 1)
                        for row in ROWS for column in range(1, COLUMN_COUNT + 1))
BREAK_BEFORE_MAKE, MAKE_BEFORE_BREAK, RULE_OFF = 1, 2, 0  # channel.connectrule values (manual)

_CROSSPOINT = re.compile(r"^([1-9])([A-Z])(\d\d)$")
_SLOT = re.compile(r"^slot(\d+)$", re.IGNORECASE)
_SEPARATORS = re.compile(r"[,;]")


class ChannelListError(ValueError):
    """A channel list the instrument refuses."""


def crosspoint(item: str) -> str:
    """The canonical name of one crosspoint: ``"1a05"`` is ``"1A05"``."""
    match = _CROSSPOINT.match(item.strip().upper())
    if match is not None:
        slot, row, column = match.groups()
        if 1 <= int(slot) <= SLOT_COUNT and row in ROWS and 1 <= int(column) <= COLUMN_COUNT:
            return f"{slot}{row}{column}"
    raise ChannelListError(f"invalid channel {item.strip()!r}")


def specifier(slot: int, row: int, column: int) -> str:
    """``channel.createspecifier``: the name of the crosspoint at slot, row number (A = 1) and column."""
    if not (1 <= slot <= SLOT_COUNT and 1 <= row <= len(ROWS) and 1 <= column <= COLUMN_COUNT):
        raise ChannelListError(f"no crosspoint at slot {slot:g}, row {row:g}, column {column:g}")
    return f"{slot}{ROWS[row - 1]}{column:02d}"


def _range(first: str, last: str) -> list[str]:
    start, end = crosspoint(first), crosspoint(last)
    rows = ROWS.index(start[1]), ROWS.index(end[1])
    columns = int(start[2:]), int(end[2:])
    if start[0] != end[0] or rows[0] > rows[1] or columns[0] > columns[1]:
        raise ChannelListError(f"invalid channel range {first.strip()}:{last.strip()} (lowest first, one slot)")
    return [f"{start[0]}{ROWS[row]}{column:02d}" for row in range(rows[0], rows[1] + 1)
            for column in range(columns[0], columns[1] + 1)]


def parse_channel_list(text: str, scopes: bool = True, labels: Mapping[str, str] | None = None) -> list[str]:
    """The crosspoints ``text`` names, in the order given, each once; ``scopes`` allows slots and allslots;
    ``labels`` maps channel labels to their crosspoints."""
    items = [item.strip() for item in _SEPARATORS.split(text)]
    if not any(items):
        raise ChannelListError("empty channel list")
    points: dict[str, None] = {}
    for item in items:
        if not item:
            raise ChannelListError(f"empty item in channel list {text!r}")
        slot = _SLOT.match(item)
        if labels and item in labels:
            names = [labels[item]]
        elif item.lower() == "allslots" or slot is not None:
            if not scopes:
                raise ChannelListError(f"{item} is not allowed here")
            if slot is not None and not 1 <= int(slot.group(1)) <= SLOT_COUNT:
                raise ChannelListError(f"invalid slot {item!r}")
            names = [p for p in ALL_CROSSPOINTS if slot is None or p[0] == slot.group(1)]
        elif ":" in item:
            first, _, last = item.partition(":")
            names = _range(first, last)
        else:
            names = [crosspoint(item)]
        points.update(dict.fromkeys(names))
    return list(points)


def switching_phases(closed: frozenset[str], target: frozenset[str], rule: int, sequential: bool,
                     settle_s: float, delays: Mapping[str, float]) -> list[tuple[frozenset[str], float]]:
    """The states the relays pass through from ``closed`` to ``target``, each with the time it takes.

    A command takes at least one settle time. With both openings and closings, break before make opens
    first, make before break closes first (both states are passed through), no rule (``channel.OFF``)
    does both at once (one settle time). A phase that closes relays adds the longest user delay
    (``channel.setdelay``) of what it closes; with ``connectsequential`` on, relays close one at a time,
    each with its own settle time and delay.
    """
    opening, closing = closed - target, target - closed
    if not opening and not closing:
        return [(target, settle_s)]
    if rule == RULE_OFF:
        return [(target, settle_s + max((delays.get(p, 0.0) for p in closing), default=0.0))]
    phases: list[tuple[frozenset[str], float]] = []
    state = closed
    steps = ["close", "open"] if rule == MAKE_BEFORE_BREAK else ["open", "close"]
    for step in steps:
        if step == "open" and opening:
            state = state - opening
            phases.append((state, settle_s))
        elif step == "close" and closing:
            groups: Iterable[list[str]] = [[p] for p in sorted(closing)] if sequential else [sorted(closing)]
            for group in groups:
                state = state | frozenset(group)
                phases.append((state, settle_s + max(delays.get(p, 0.0) for p in group)))
    return phases
