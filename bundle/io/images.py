"""Image file names: which formats carry no geometry, which files count as images, and the stem outputs are named by."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import InputError
from ..geometry import affine_spacing

__all__ = [
    "NO_GEOMETRY_SUFFIXES",
    "DICOM_SUFFIXES",
    "IMAGE_SUFFIXES",
    "image_filename",
    "loaded_shape",
    "output_stem",
    "output_paths",
    "colliding_stems",
    "dicom_spacing",
    "picture_spacing",
]

# formats whose files carry no pixel spacing: the datalist, the command line or an explicit assumption must give it
NO_GEOMETRY_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
DICOM_SUFFIXES = (".dcm", ".dicom")
IMAGE_SUFFIXES = NO_GEOMETRY_SUFFIXES + (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd") + DICOM_SUFFIXES


def image_filename(image) -> str:
    """The file a loaded image (a MONAI MetaTensor) was read from, for messages and output names."""
    meta = getattr(image, "meta", None) or {}
    return str(meta.get("filename_or_obj", "<image>"))


# DICOM's spacing tags as MONAI's ITK reader keeps them in the metadata: "row spacing\\column spacing", mm
DICOM_SPACING_TAGS = (("0028|0030", "PixelSpacing"), ("0018|1164", "ImagerPixelSpacing"))


def dicom_spacing(image) -> tuple[list[float], str] | None:
    """A loaded DICOM picture's pixel spacing (x, y) in mm, from its header, and the tag it came from:
    PixelSpacing (0028,0030), calibrated where present, else ImagerPixelSpacing (0018,1164), the detector's (digital
    radiography stores that one, and ITK reads only it for DX images, which turns a DX file with PixelSpacing alone
    into 1 mm pixels). None when the image has neither (not a DICOM, or one without a spacing).
    """
    meta = getattr(image, "meta", None) or {}
    for tag, name in DICOM_SPACING_TAGS:
        value = meta.get(tag)
        if value is None:
            continue
        try:
            row, column = (float(v) for v in str(value).strip().split("\\")[:2])
        except ValueError:
            continue
        if row > 0 and column > 0:
            return [column, row], name
    return None


def loaded_shape(image, spatial_dims: int) -> list[int]:
    """The spatial shape of a loaded image's file, its first ``spatial_dims`` axes (MONAI's ``meta["spatial_shape"]``,
    which resampling leaves as it was): the extent of the original pixels.

    Raises:
        ValueError: the image has no ``meta["spatial_shape"]`` (it was not loaded by ``LoadImaged``).
    """
    meta = getattr(image, "meta", None) or {}
    if "spatial_shape" not in meta:
        raise InputError(f"{image_filename(image)}: no meta['spatial_shape'] (the shape as loaded by LoadImaged).")
    return [int(n) for n in np.asarray(meta["spatial_shape"]).reshape(-1)[:spatial_dims]]


def output_stem(path: str | os.PathLike) -> str:
    """The name an image's outputs take: the file name without its image suffix (``p1.v2.png`` -> ``p1.v2``,
    ``t1.nii.gz`` -> ``t1``; another suffix: ``Path.stem``). Two images of one folder can share a stem only if they
    differ by the suffix alone (``scan.png``, ``scan.jpg``): :func:`colliding_stems` finds those before any run."""
    name = Path(path).name
    for suffix in sorted(IMAGE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def output_paths(image: str | os.PathLike, output_dir: str | os.PathLike, overlay: bool = True) -> list[Path]:
    """The files inference writes for ``image`` in ``output_dir``: ``<stem>.json`` (the result), ``<stem>.mrk.json``
    (3D Slicer) and, with ``overlay`` (2D only), ``<stem>_overlay.png``."""
    stem, folder = output_stem(image), Path(output_dir)
    paths = [folder / f"{stem}.json", folder / f"{stem}.mrk.json"]
    return paths + [folder / f"{stem}_overlay.png"] if overlay else paths


def colliding_stems(paths: Iterable[str | os.PathLike]) -> dict[str, list[str]]:
    """``{stem: [paths]}`` for every output stem that more than one of ``paths`` would write."""
    by_stem = defaultdict(list)
    for path in paths:
        by_stem[output_stem(path)].append(str(path))
    return {stem: found for stem, found in by_stem.items() if len(found) > 1}


def picture_spacing(image) -> list | None:
    """For a loaded 2D picture without geometry (PNG, JPEG, ...; a MONAI MetaTensor after
    :class:`~bundle.transforms.PixelSpacingd`), the spacing its pixels were given (x, y); None for any other image.
    3D Slicer files of such a picture are in Slicer's frame of it (:mod:`bundle.io.landmarks`)."""
    if image.ndim - 1 != 2 or not image_filename(image).lower().endswith(NO_GEOMETRY_SUFFIXES):
        return None
    return affine_spacing(image.meta.get("source_affine", image.affine), 2).tolist()
