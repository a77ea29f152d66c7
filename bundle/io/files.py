"""The one guard against replacing earlier output."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from ..errors import OutputExistsError
from ..switches import as_bool

__all__ = ["refuse_existing"]


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
