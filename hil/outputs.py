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


YAML_SUFFIXES = (".yaml", ".yml")


def check_yaml_output(out: str | Path, force: bool, what: str, error: type[Exception], option: str = "") -> Path:
    """Refuse an output name that is not YAML (``error``, naming ``what`` the file is and the ``option`` that
    names it) or an existing file without ``force``; the path."""
    out = Path(out)
    if out.suffix.lower() not in YAML_SUFFIXES:
        give = f"give {option} a name" if option else "give a name"
        raise error(f"{out}: {what} is YAML; {give} ending in .yaml")
    check_outputs([out], force)
    return out
