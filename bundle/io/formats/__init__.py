"""Landmark file formats, one module each, and the one table that chooses among them by suffix.

Each format is an object with a ``suffix``, ``read(path, settings) -> Landmarks`` and ``write(path, landmarks,
settings)`` (:class:`bundle.io.landmarks.FileSettings`); the longest suffix that a file name ends with wins.
Conventions of each: the docstring of :mod:`bundle.io.landmarks`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch

from ...errors import InputError
from .. import images
from ..files import refuse_existing
from ..landmarks import FileSettings, LandmarkFileError, Landmarks
from .csv import CSV
from .isbi import ISBI
from .json import JSON
from .label_image import LABEL_IMAGE_FORMATS
from .slicer import FCSV, MARKUPS_JSON

# name -> format; ordered so that ".mrk.json" is tried before ".json"
FORMATS = {"mrk.json": MARKUPS_JSON, "json": JSON, "csv": CSV, "fcsv": FCSV, "isbi": ISBI, **LABEL_IMAGE_FORMATS}

__all__ = [
    "FORMATS",
    "read_image_landmarks",
    "CSV",
    "JSON",
    "ISBI",
    "FCSV",
    "MARKUPS_JSON",
    "landmark_format",
    "read_landmarks",
    "write_landmarks",
]


def landmark_format(path: str | os.PathLike) -> str:
    """The format name of a path from its suffix: one of the names of :data:`FORMATS`."""
    name = str(path).lower()
    for fmt, handler in FORMATS.items():
        if name.endswith(handler.suffix):
            return fmt
    suffixes = ", ".join(h.suffix for h in FORMATS.values())
    raise LandmarkFileError(path, f"unknown landmark file suffix; expected one of {suffixes}.")


def _handler(fmt: str):
    formats = FORMATS
    if fmt not in formats:
        raise InputError(f"fmt must be one of {tuple(formats)}, got {fmt!r}.")
    return formats[fmt]


def read_landmarks(
    path: str | os.PathLike,
    num_landmarks: int | None = None,
    spacing: Sequence[float] | None = None,
    spatial_dims: int | None = None,
    fmt: str | None = None,
    picture_spacing: Sequence[float] | None = None,
    grid: tuple | None = None,
) -> Landmarks:
    """Read a landmark file (or a label image of value k + 1 at landmark k) into world millimetres.

    Args:
        path: the file.
        num_landmarks: the expected count K; a file with another count raises (for ``.txt``, the number of lines read,
            19 by default).
        spacing: pixel spacing in mm per axis (x, y[, z]); required for the ISBI text format (pixels), else ignored.
        spatial_dims: 2 or 3 if known (a 2D point from a Slicer file drops z = 0).
        fmt: a format name; by default from the suffix.
        picture_spacing: for 2D landmarks of a picture without geometry, its spacing (x, y): Slicer files then hold
            Slicer's frame of the picture (see the module's docstring).
        grid: for a label image, ``(spatial shape, affine)`` of its image as loaded (array-axis order, world mm):
            the centroids go through that affine (:mod:`bundle.io.formats.label_image`); without it, through the
            label image's own.

    Raises:
        LandmarkFileError: missing or unreadable file, wrong count, text or NaN where a number belongs; a label
            image on another grid than its image's, or with a landmark in several blobs.
    """
    fmt = landmark_format(path) if fmt is None else fmt
    settings = FileSettings(num_landmarks, spacing, spatial_dims, picture_spacing, grid=grid)
    landmarks = _handler(fmt).read(path, settings)
    if num_landmarks is not None and len(landmarks) != num_landmarks:
        raise LandmarkFileError(path, f"has {len(landmarks)} landmarks; expected {num_landmarks}.")
    return landmarks


def read_image_landmarks(
    path: str | os.PathLike,
    image,
    num_landmarks: int | None,
    spatial_dims: int,
    spacing: Sequence[float] | None = None,
) -> Landmarks:
    """:func:`read_landmarks` of the landmark file (or label image) of ``image``, a MetaTensor loaded by
    ``LoadImaged`` and given its spacing (:class:`bundle.transforms.PixelSpacingd`), in the same world mm: a picture's
    own spacing (Slicer's frame of it), and for a label image the pixels and affine of the image as loaded.

    Args:
        spacing: for an image that carries none (not a MetaTensor), the spacing the entry gives.
    """
    picture = grid = None
    meta = getattr(image, "meta", None)
    if meta is not None:
        picture = images.picture_spacing(image)
        if "spatial_shape" in meta:  # the pixels as loaded, which a label image must lie on
            source = torch.as_tensor(meta.get("source_affine", image.affine)).double().cpu().numpy()
            grid = (images.loaded_shape(image, spatial_dims), source)
    return read_landmarks(path, num_landmarks, picture or spacing, spatial_dims, picture_spacing=picture, grid=grid)


def write_landmarks(
    path: str | os.PathLike,
    landmarks: Landmarks,
    overwrite: bool = False,
    fmt: str | None = None,
    spacing: Sequence[float] | None = None,
    extra: dict | None = None,
    picture_spacing: Sequence[float] | None = None,
) -> Path:
    """Write landmarks; refuses to replace an existing file unless ``overwrite``.

    Args:
        path: destination.
        landmarks: what to write (world mm).
        overwrite: replace an existing file.
        fmt: a format name; by default from the suffix.
        spacing: for the ISBI text format, mm per pixel (the points are rounded to whole pixels as the format has).
        extra: JSON only: per-landmark extra fields, a dict of name -> list of K values (e.g. ``"pixel"``,
            ``"confidence"``), and top-level fields under the key ``"_top"`` (e.g. ``{"image": ..., "spacing": ...}``).
        picture_spacing: for 2D landmarks of a picture without geometry, its spacing (x, y): Slicer files are then
            written in Slicer's frame of the picture (see the module's docstring).
    """
    path = Path(path)
    refuse_existing(path, overwrite, "pass overwrite=True to replace it.")
    fmt = landmark_format(path) if fmt is None else fmt
    handler = _handler(fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler.write(
        path, landmarks, FileSettings(len(landmarks), spacing, landmarks.spatial_dims, picture_spacing, extra)
    )
    return path
