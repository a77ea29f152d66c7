"""The one guard against replacing earlier output, the one way of writing a file whole, and the one way of reading
a JSON file the bundle keeps (datalists, landmark sets, shape models, calibrations)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Iterable, TextIO

from ..errors import InputError, OutputExistsError
from ..switches import as_bool

__all__ = ["read_json", "refuse_existing", "write_whole"]


def read_json(path: str | os.PathLike, what: str):
    """The parsed JSON of the file ``path``; ``what`` names it in the error ("the datalist", "the shape model").

    Raises:
        ValueError: unreadable, not text or not JSON, naming the file, what it is and why.
    """
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:  # ValueError: not JSON, or not text at all (UnicodeDecodeError)
        raise InputError(f"{path}: cannot read {what} ({type(e).__name__}: {e}).") from None


def refuse_existing(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    overwrite: bool,
    hint: str = "pass --overwrite to replace it, or choose another --out.",
) -> None:
    """Raise if any of ``paths`` exists and ``overwrite`` is not set: the one guard against replacing earlier output
    (scripts, evaluation and inference writers, landmark files).

    Raises:
        FileExistsError: naming the existing paths, followed by ``hint`` (how to get past it).
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    existing = [str(p) for p in paths if Path(p).exists()]
    if existing and not as_bool(overwrite, "overwrite"):
        named = ", ".join(existing[:3]) + (f" and {len(existing) - 3} more" if len(existing) > 3 else "")
        raise OutputExistsError(f"{named} {'exists' if len(existing) == 1 else 'exist'}: {hint}")


def write_whole(path: str | os.PathLike, write: Callable[[TextIO], None]) -> None:
    """``write(f)`` the text file ``path`` (its folder made) through a hidden partial file beside it, renamed when
    complete: a run stopped while writing leaves the earlier file or none, never half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "w", newline="", encoding="utf-8") as f:
        write(f)
    os.replace(partial, path)
