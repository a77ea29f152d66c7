"""``.json``: ``{"landmarks": [{"index": k, "name": ..., "world": [...], "visible": true, ...}, ...]}``, the bundle's
output format (``pixel``, ``confidence`` and the other fields are kept out of the in-memory form, written when
given)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..landmarks import FileSettings, LandmarkFileError, Landmarks, file_number, landmarks_record, read_text_lines

__all__ = ["JSON", "load_json"]


def load_json(path):
    """A JSON file's content, or a :class:`LandmarkFileError` naming the line."""
    text = "\n".join(read_text_lines(path))
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise LandmarkFileError(path, f"is not valid JSON ({e.msg}).", e.lineno) from None


class _Json:
    suffix = ".json"

    def read(self, path, settings: FileSettings) -> Landmarks:
        data = load_json(path)
        items = data.get("landmarks") if isinstance(data, dict) else None
        if not isinstance(items, list) or not items:
            raise LandmarkFileError(path, "expected an object with a non-empty list 'landmarks'.")
        names, points, visible = [], [], []
        for k, item in enumerate(items):
            shown = bool(item.get("visible", True)) if isinstance(item, dict) else True
            world = item.get("world") if isinstance(item, dict) else None
            if shown and (not isinstance(world, list) or len(world) not in (2, 3)):
                raise LandmarkFileError(path, f"landmarks[{k}] needs 'world': a list of 2 or 3 numbers in mm.")
            names.append(str(item.get("name", k + 1)))
            visible.append(shown)
            points.append([file_number(path, str(v), None, f"landmarks[{k}].world") for v in world] if shown else None)
        dims = settings.spatial_dims or next((len(p) for p in points if p is not None), 2)
        if any(p is not None and len(p) != dims for p in points):
            raise LandmarkFileError(path, f"landmarks must all have {dims} coordinates.")
        points = [p if p is not None else [np.nan] * dims for p in points]
        return Landmarks(np.asarray(points), names, np.asarray(visible))

    def write(self, path: Path, landmarks: Landmarks, settings: FileSettings) -> None:
        path.write_text(json.dumps(landmarks_record(landmarks, settings.extra), indent=2) + "\n")


JSON = _Json()
