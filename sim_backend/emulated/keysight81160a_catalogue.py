"""The arbitrary-waveform memory of one emulated 81160A channel: volatile, built-in and non-volatile waveforms.

- ``VOLATILE``: what ``:DATA<n>:DAC VOLATILE,…`` uploaded (2 … 524 288 points of −8191 … +8191); listed
  by ``:DATA:CAT?`` once there is one.
- Built-in waveforms (:data:`BUILTINS`, 16 384 points each): always there, cannot be overwritten or deleted.
- Non-volatile slots (:data:`NVOL_SLOTS` per channel): ``:DATA:COPY <name>[,VOLATILE]`` stores the
  volatile waveform under a name of up to 12 characters (a letter, then letters, digits or ``_``; stored
  in upper case); copying to a stored name overwrites it; with every slot taken a new name is refused
  (``-225 Out of memory``). ``:DATA:DEL <name>`` / ``:DATA:DEL:ALL`` remove them (not the one being played).

The catalogue replies are lists of quoted names separated by commas (``"VOLATILE","EXP_RISE",…``); an
empty list is ``""``.
"""

from __future__ import annotations

import re

import numpy as np

from sim_backend.emulated.keysight81160a_channel import SettingsConflict

MAX_DAC = 8191
MEMORY_POINTS = 524_288
MIN_POINTS = 2
NVOL_SLOTS = 4
BUILTIN_POINTS = 16_384
BUILTINS = ("EXP_RISE", "EXP_FALL", "NEG_RAMP", "SINC")
VOLATILE = "VOLATILE"
_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,11}$")


class OutOfMemory(ValueError):
    """No free non-volatile slot: ``-225 Out of memory``."""


def builtin_codes(name: str) -> np.ndarray:
    """The DAC codes of a built-in waveform (full scale ±8191)."""
    x = np.linspace(0.0, 1.0, BUILTIN_POINTS, endpoint=False)
    if name in ("EXP_RISE", "EXP_FALL"):
        rise = np.expm1(5 * x) / np.expm1(5.0)
        unit = rise if name == "EXP_RISE" else rise[::-1]
    elif name == "NEG_RAMP":
        unit = 1.0 - x
    else:  # SINC over ±6π
        t = (x - 0.5) * 12 * np.pi
        unit = (np.sinc(t / np.pi) + 0.2172) / 1.2172  # sinc spans −0.2172 … 1
    return np.rint((2 * unit - 1) * MAX_DAC).astype(np.int64)


def check_codes(codes: np.ndarray) -> np.ndarray:
    if not MIN_POINTS <= codes.size <= MEMORY_POINTS or np.any(np.abs(codes) > MAX_DAC):
        raise ValueError(f"DAC data: {MIN_POINTS} to {MEMORY_POINTS} points within +-{MAX_DAC}")
    return codes


def quoted(names: list[str]) -> str:
    return ",".join(f'"{name}"' for name in names) if names else '""'


class WaveformCatalogue:
    """One channel's waveform memory."""

    def __init__(self) -> None:
        self.volatile: np.ndarray | None = None
        self.stored: dict[str, np.ndarray] = {}

    def upload(self, codes: np.ndarray) -> None:
        self.volatile = check_codes(codes)

    def names(self) -> list[str]:
        """Every waveform ``:FUNC:USER`` can select: volatile (if uploaded), built-in, stored."""
        return ([VOLATILE] if self.volatile is not None else []) + list(BUILTINS) + list(self.stored)

    def resolve(self, name: str) -> str:
        """The catalogue name for ``name`` (``VOL`` is ``VOLATILE``); ``ValueError`` if there is none."""
        key = name.strip().strip("'\"").upper()
        key = VOLATILE if key == "VOL" else key
        if key not in self.names():
            raise ValueError(f"waveform {key!r} does not exist" + (" (nothing uploaded)" if key == VOLATILE else ""))
        return key

    def codes(self, name: str) -> np.ndarray:
        if name == VOLATILE and self.volatile is not None:
            return self.volatile
        if name in self.stored:
            return self.stored[name]
        return builtin_codes(name)

    def points(self, name: str) -> int:
        return BUILTIN_POINTS if name in BUILTINS else int(self.codes(name).size)

    def copy(self, name: str, source: str = VOLATILE) -> None:
        """``:DATA:COPY <name>[,VOLATILE]``: store the volatile waveform in non-volatile memory."""
        key = name.strip().strip("'\"").upper()
        if not _NAME.match(key) or key == VOLATILE:
            raise ValueError(f"waveform name {key!r}: a letter, then up to 11 letters, digits or _")
        if key in BUILTINS:
            raise ValueError(f"{key} is a built-in waveform")
        if source.strip().upper() not in (VOLATILE, "VOL"):
            raise ValueError(f"copy source {source.strip()!r}: only VOLATILE can be copied")
        if self.volatile is None:
            raise SettingsConflict("no volatile waveform to copy")
        if key not in self.stored and len(self.stored) >= NVOL_SLOTS:
            raise OutOfMemory(f"all {NVOL_SLOTS} non-volatile slots are taken")
        self.stored[key] = self.volatile.copy()

    def delete(self, name: str, playing: str | None) -> None:
        """``:DATA:DEL <name>``: a stored waveform, or ``VOLATILE``; not a built-in, not the one playing."""
        key = self.resolve(name)
        if key in BUILTINS:
            raise SettingsConflict(f"{key} is a built-in waveform and cannot be deleted")
        if key == playing:
            raise SettingsConflict(f"{key} is being played and cannot be deleted")
        if key == VOLATILE:
            self.volatile = None
        else:
            del self.stored[key]

    def delete_all(self, playing: str | None) -> None:
        """``:DATA:DEL:ALL``: the volatile and every stored waveform (refused while one of them plays)."""
        if playing is not None and playing not in BUILTINS:
            raise SettingsConflict(f"{playing} is being played: select another waveform first")
        self.volatile = None
        self.stored.clear()

    def free_slots(self) -> int:
        return NVOL_SLOTS - len(self.stored)
