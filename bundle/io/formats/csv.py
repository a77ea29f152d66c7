"""``.csv``: a header ``name,x,y[,z][,visible]`` and one landmark a row, world mm; ``visible`` 1/0 (optional)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..landmarks import FileSettings, LandmarkFileError, Landmarks, file_number, read_text_lines

__all__ = ["CSV", "csv_row"]


def csv_row(path, text: str, line: int) -> list[str]:
    """One CSV line's fields, or a :class:`LandmarkFileError` (e.g. a NUL character)."""
    try:
        return next(csv.reader([text]), [])
    except csv.Error as e:
        raise LandmarkFileError(path, f"is not CSV ({e}).", line) from None


class _Csv:
    suffix = ".csv"

    def read(self, path, settings: FileSettings) -> Landmarks:
        lines = read_text_lines(path)
        rows = [csv_row(path, text, i) for i, text in enumerate(lines, start=1)]
        if not rows:
            raise LandmarkFileError(path, "is empty; expected a header 'name,x,y[,z][,visible]'.", 1)
        header = [h.strip().lower() for h in rows[0]]
        axes = [a for a in ("x", "y", "z") if a in header]
        if header[:1] != ["name"] or axes not in (["x", "y"], ["x", "y", "z"]):
            raise LandmarkFileError(path, f"header must be 'name,x,y[,z][,visible]', got {lines[0]!r}.", 1)
        if settings.spatial_dims is not None and len(axes) != settings.spatial_dims:
            raise LandmarkFileError(path, f"has {len(axes)}D coordinates; expected {settings.spatial_dims}D.", 1)
        names, points, visible = [], [], []
        for i, row in enumerate(rows[1:], start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise LandmarkFileError(path, f"has {len(row)} fields; the header has {len(header)}.", i)
            record = dict(zip(header, row))
            shown = record.get("visible", "1").strip().lower() not in ("0", "false", "no")
            names.append(record["name"].strip())
            visible.append(shown)
            points.append([file_number(path, record[a], i, a) if shown else np.nan for a in axes])
        if not points:
            raise LandmarkFileError(path, "has no landmark rows.")
        return Landmarks(np.asarray(points), names, np.asarray(visible))

    def write(self, path: Path, landmarks: Landmarks, settings: FileSettings) -> None:
        axes = ["x", "y", "z"][: landmarks.spatial_dims]
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["name", *axes, "visible"])
            for name, point, shown in zip(landmarks.names, landmarks.coordinates, landmarks.visible):
                writer.writerow([name, *(repr(float(v)) if shown else "" for v in point), int(shown)])


CSV = _Csv()
