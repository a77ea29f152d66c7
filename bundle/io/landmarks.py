"""Landmark files: read and write CSV, JSON, the ISBI 2015 text format, 3D Slicer ``.fcsv`` and ``.mrk.json``; read
label images.

One in-memory form, :class:`Landmarks`: names, coordinates (K, D) in **world millimetres** and a visibility mask.
World coordinates are those of the image's affine as MONAI reads it: for 2D PNG/JPEG/BMP images, ``pixel * spacing``
on MONAI's array axes (x = column, y = row, origin at the centre of the first pixel); for NIfTI and other 3D formats,
RAS (MONAI's readers convert ITK's LPS to RAS). Coordinates of landmarks that are not visible are NaN.

File formats (the format follows the suffix, or ``fmt=``):

- ``.csv``: a header ``name,x,y[,z][,visible]`` and one landmark a row, world mm. ``visible`` is 1/0 (optional).
- ``.json``: ``{"landmarks": [{"index": k, "name": ..., "world": [...], "visible": true, ...}, ...]}`` (the bundle's
  output format; ``pixel``, ``confidence`` and other keys are kept out of the in-memory form and written when given).
- ``.txt``: the ISBI 2015 annotation format: the first ``num_landmarks`` lines (19) are ``x,y`` in **pixels**
  (x = column, y = row); further lines (classification labels) are ignored. Needs ``spacing`` (0.1 mm for ISBI).
- ``.fcsv``: 3D Slicer markups fiducial CSV. ``# CoordinateSystem = 0``/``RAS`` or ``1``/``LPS`` (converted to RAS).
- ``.mrk.json``: 3D Slicer markups JSON; read in its ``coordinateSystem`` (RAS or LPS), written in RAS.
- ``.nii.gz``, ``.nii``, ``.nrrd``, ``.mha``: a label image, value k + 1 at landmark k (read only): each landmark is
  its value's centroid, an absent value is not visible (:mod:`bundle.io.formats.label_image`).

For ``spatial_dims=2`` the Slicer formats hold the point in the z = 0 plane; reading a 2D point from them drops z.
For a 2D picture without geometry (PNG, JPEG, ...), give ``picture_spacing``: 3D Slicer loads such a picture at 1 mm
per pixel with its LPS axes along the pixel axes, so a point placed on it is at RAS (-column, -row, 0); with
``picture_spacing`` the Slicer formats are read and written in that frame (world = pixel * spacing), so that they
overlay the picture in Slicer. Without it they hold world millimetres (RAS), right for images with geometry.

Any malformed file raises :class:`LandmarkFileError` naming the file and, where there is one, the line. This module
holds the in-memory form; each format's reader and writer is a module of :mod:`bundle.io.formats`, which chooses one
by suffix (:func:`~bundle.io.formats.read_landmarks`, :func:`~bundle.io.formats.write_landmarks`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..errors import InputError

__all__ = ["Landmarks", "LandmarkFileError", "FileSettings", "landmarks_record", "read_text_lines", "file_number"]


class LandmarkFileError(InputError):
    """A landmark file that cannot be read as asked: the message names the file and the line (1-based)."""

    def __init__(self, path: str | os.PathLike, message: str, line: int | None = None):
        super().__init__(path, message, line)  # all arguments, so that pickling and copying rebuild the error
        self.path, self.message, self.line = str(path), message, line

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}, line {self.line}"
        return f"{where}: {self.message}"


@dataclass
class Landmarks:
    """K landmarks in D dimensions.

    Attributes:
        coordinates: (K, D) float64 world coordinates in mm; NaN rows where not visible.
        names: K names (default "1".."K").
        visible: (K,) bool; defaults to "coordinates are finite".
    """

    coordinates: np.ndarray
    names: list[str] = field(default_factory=list)
    visible: np.ndarray | None = None

    def __post_init__(self):
        self.coordinates = np.asarray(self.coordinates, dtype=np.float64)
        if self.coordinates.ndim != 2 or self.coordinates.shape[1] not in (2, 3):
            raise InputError(f"coordinates must be (K, 2) or (K, 3), got {self.coordinates.shape}.")
        k = self.coordinates.shape[0]
        self.names = [str(n) for n in self.names] if self.names else [str(i + 1) for i in range(k)]
        if len(self.names) != k:
            raise InputError(f"{len(self.names)} names for {k} landmarks.")
        finite = np.isfinite(self.coordinates).all(1)
        self.visible = finite if self.visible is None else np.asarray(self.visible, dtype=bool).copy()
        if self.visible.shape != (k,):
            raise InputError(f"visible must have shape ({k},), got {self.visible.shape}.")
        if (self.visible & ~finite).any():
            raise InputError("a landmark marked visible has non-finite coordinates.")
        self.coordinates = np.where(self.visible[:, None], self.coordinates, np.nan)

    def __len__(self) -> int:
        return self.coordinates.shape[0]

    @property
    def spatial_dims(self) -> int:
        return self.coordinates.shape[1]


@dataclass
class FileSettings:
    """What a format may need beyond the file: see :func:`read_landmarks` and :func:`write_landmarks` (``grid``: the
    ``(spatial shape, affine)`` of the image the landmarks belong to, as loaded, for label images)."""

    num_landmarks: int | None = None
    spacing: Sequence[float] | None = None
    spatial_dims: int | None = None
    picture_spacing: Sequence[float] | None = None
    extra: dict | None = None
    grid: tuple | None = None


def file_number(path, text: str, line: int | None, what: str) -> float:
    """A finite number from a file's text, or a :class:`LandmarkFileError` naming the file, the line and ``what``."""
    try:
        value = float(text)
    except ValueError:
        raise LandmarkFileError(path, f"{what} is {text.strip()!r}, not a number.", line) from None
    if not math.isfinite(value):
        raise LandmarkFileError(path, f"{what} is {text.strip()!r}, not a finite number.", line)
    return value


def read_text_lines(path) -> list[str]:
    """A text file's lines (a UTF-8 byte-order mark dropped), or a :class:`LandmarkFileError`."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        raise LandmarkFileError(path, "file not found.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise LandmarkFileError(path, f"cannot be read as text ({e}).") from None


def landmarks_record(landmarks: Landmarks, extra: dict | None = None) -> dict:
    """The ``.json`` format's content as a dict: ``{**extra["_top"], "landmarks": [{"index": k, "name": ...,
    "world": [...] or None, "visible": bool, **per-landmark extra}, ...]}`` (see :func:`write_landmarks`)."""
    extra = dict(extra or {})
    top = extra.pop("_top", {})
    items = []
    for k, (name, point, shown) in enumerate(zip(landmarks.names, landmarks.coordinates, landmarks.visible)):
        item = {"index": k, "name": name, "world": [float(v) for v in point] if shown else None, "visible": bool(shown)}
        item.update({key: _plain(values[k]) for key, values in extra.items()})
        items.append(item)
    return {**top, "landmarks": items}


def _plain(value):
    return value.tolist() if isinstance(value, np.ndarray) else value
