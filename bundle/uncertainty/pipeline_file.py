"""The file that holds one fitted entry per pipeline (``both_stages``, ``first_stage``): the error calibration and
the review's risk beside the weights. The pipelines' features differ (the refiner's heatmap, or the first stage's), so
each keeps its own entry, and writing one keeps the others. JSON in the model zoo's style, written whole."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import InputError, MissingFileError
from ..io.files import read_json, write_whole

__all__ = ["read_entry", "write_entry"]


def write_entry(path: str | os.PathLike, file_format: str, pipeline: str, entry: dict) -> None:
    """Put ``entry`` under ``pipeline`` in the file ``path`` of ``file_format``, keeping its other pipelines (a file
    of another format is replaced)."""
    path = Path(path)
    data = {"format": file_format, "pipelines": {}}
    if path.is_file():
        old = json.loads(path.read_text())
        if isinstance(old, dict) and old.get("format") == file_format and isinstance(old.get("pipelines"), dict):
            data = old
    data["pipelines"][str(pipeline)] = entry
    write_whole(path, lambda f: f.write(json.dumps(data, indent=4) + "\n"))


def read_entry(path: str | os.PathLike, file_format: str, pipeline: str, what: str) -> dict:
    """The entry of ``pipeline`` in the file ``path`` of ``file_format``; ``what`` names the file in errors ("error
    calibration", "review risk").

    Raises:
        FileNotFoundError: no such file. LookupError: no entry of that pipeline. ValueError: unreadable, or not a file
            of that format.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no {what} at {path}.")
    data = read_json(path, f"the {what}")
    if not isinstance(data, dict) or data.get("format") != file_format or not isinstance(data.get("pipelines"), dict):
        raise InputError(f"{path}: not this bundle's {what} file (format {file_format!r}).")
    entry = data["pipelines"].get(str(pipeline))
    if not isinstance(entry, dict):
        raise LookupError(f"{path} holds the {what} of {sorted(data['pipelines'])}, not {pipeline!r}.")
    return entry
