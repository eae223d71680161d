"""Output files: no command replaces an existing file unless it is told to (``--force``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from hil.session.format import OutputExistsError


def check_outputs(paths: Iterable[str | Path], force: bool = False) -> None:
    """Refuse (:class:`OutputExistsError`, naming them) to write over existing files unless ``force``."""
    existing = [str(p) for p in paths if Path(p).exists()]
    if existing and not force:
        raise OutputExistsError(f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}: pass "
                                "--force to replace, or choose another --out")
