"""``.txt``: the ISBI 2015 annotation format. The first ``num_landmarks`` lines (19) are ``x,y`` in **pixels**
(x = column, y = row); further lines (classification labels) are ignored. Needs the pixel spacing (0.1 mm for ISBI)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import InputError
from ...geometry import map_points, spacing_affine
from ..landmarks import FileSettings, LandmarkFileError, Landmarks, file_number, read_text_lines

__all__ = ["ISBI"]


class _Isbi:
    suffix = ".txt"

    def read(self, path, settings: FileSettings) -> Landmarks:
        spacing = settings.spacing
        if spacing is None:
            raise LandmarkFileError(path, "ISBI text files hold pixels: give the pixel spacing (0.1 mm for ISBI 2015).")
        k = 19 if settings.num_landmarks is None else settings.num_landmarks
        lines = read_text_lines(path)
        if len(lines) < k:
            raise LandmarkFileError(path, f"has {len(lines)} lines; expected at least {k} lines 'x,y'.")
        points = []
        for i, text in enumerate(lines[:k]):
            parts = text.replace(" ", "").split(",")
            if len(parts) != 2:
                raise LandmarkFileError(path, f"expected 'x,y', got {text!r}.", i + 1)
            points.append([file_number(path, p, i + 1, axis) for p, axis in zip(parts, "xy")])
        if np.asarray(spacing).size != 2:
            raise LandmarkFileError(path, f"ISBI text files are 2D: give 2 spacings (x, y), got {spacing}.")
        try:
            affine = spacing_affine(spacing)
        except ValueError as e:
            raise LandmarkFileError(path, str(e)) from None
        return Landmarks(map_points(np.asarray(points), affine).numpy())

    def write(self, path: Path, landmarks: Landmarks, settings: FileSettings) -> None:
        if settings.spacing is None or not landmarks.visible.all():
            raise InputError("the ISBI text format needs spacing and holds only visible landmarks.")
        affine = spacing_affine(settings.spacing)
        pixels = np.rint(map_points(landmarks.coordinates, affine, invert=True).numpy()).astype(int)
        path.write_text("".join(f"{x},{y}\n" for x, y in pixels))


ISBI = _Isbi()
