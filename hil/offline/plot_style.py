"""How every figure of ``hil report`` and ``hil replay`` looks: unit symbols, colour by device width (a
shade of it per device), a marker and line style per device, and the file formats figures are saved in."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from instruments.failures import UserFacingError

FORMATS = ("png", "pdf", "svg")
WIDTH_COLOURMAPS = ("Blues", "Oranges", "Greens", "Reds", "Purples", "Greys")
STATE_COLOURMAP = "viridis"  # the states of a DW synapse, lowest level darkest
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":")
PNG_DPI = 150


class FigureFormatError(UserFacingError, ValueError):
    """A figure format the reports do not write."""


def checked_format(fmt: str) -> str:
    """``fmt`` if figures can be saved in it (``--format``), else a one-line refusal."""
    if fmt not in FORMATS:
        raise FigureFormatError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    return fmt


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def width_label(width_m: float) -> str:
    """A device width as printed on figures: ``5 µm``."""
    return f"{width_m * 1e6:g} µm"


def state_colour(state: int, states: int) -> Any:
    """The colour of DW synapse state ``state`` of ``states`` (figures of programming characterizations)."""
    return pyplot().get_cmap(STATE_COLOURMAP)(0.1 + 0.75 * state / max(states - 1, 1))


def natural_order(devices: Iterable[str]) -> list[str]:
    """Device ids sorted as a person reads them: ``w3-2`` before ``w10-1``."""
    return sorted(devices, key=lambda d: [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", d)])


class DeviceStyles:
    """One colour family per device width and, within it, a shade, marker and line style per device."""

    def __init__(self, widths_m: dict[str, float]) -> None:
        plt = pyplot()
        self.widths_m = dict(widths_m)
        self.groups: dict[float, list[str]] = {}
        for device in natural_order(widths_m):
            self.groups.setdefault(widths_m[device], []).append(device)
        self.groups = dict(sorted(self.groups.items()))
        self._style: dict[str, dict[str, Any]] = {}
        for i, (_, devices) in enumerate(self.groups.items()):
            cmap = plt.get_cmap(WIDTH_COLOURMAPS[i % len(WIDTH_COLOURMAPS)])
            for j, device in enumerate(devices):
                shade = 0.85 - 0.4 * j / max(len(devices) - 1, 1)
                self._style[device] = {"color": cmap(shade), "marker": MARKERS[j % len(MARKERS)],
                                       "linestyle": LINESTYLES[j % len(LINESTYLES)], "rank": j, "of": len(devices)}

    def __call__(self, device: str) -> dict[str, Any]:
        """``color``, ``marker`` and ``linestyle`` of a device (black, plain, for a device of unknown width)."""
        style = self._style.get(device, {"color": "k", "marker": "o", "linestyle": "-"})
        return {k: style[k] for k in ("color", "marker", "linestyle")}

    def offset(self, device: str, spread: float = 0.06) -> float:
        """A small multiplicative shift on a log width axis, so devices of one width sit side by side."""
        style = self._style.get(device)
        if style is None or style["of"] < 2:
            return 1.0
        return float(1.0 + spread * (style["rank"] / (style["of"] - 1) - 0.5))


def save(fig: Any, path: Path) -> Path:
    """Save a figure (format from the suffix; raster at :data:`PNG_DPI`) and close it."""
    try:
        fig.savefig(path, dpi=PNG_DPI if path.suffix == ".png" else None)
    finally:
        pyplot().close(fig)
    return path
