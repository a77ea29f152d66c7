"""Image file names: which formats carry no geometry, which files count as images, and the stem outputs are named by."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Iterable

__all__ = ["NO_GEOMETRY_SUFFIXES", "IMAGE_SUFFIXES", "image_filename", "output_stem", "output_paths", "colliding_stems"]

# formats whose files carry no pixel spacing: the datalist, the command line or an explicit assumption must give it
NO_GEOMETRY_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
IMAGE_SUFFIXES = NO_GEOMETRY_SUFFIXES + (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".dcm")


def image_filename(image) -> str:
    """The file a loaded image (a MONAI MetaTensor) was read from, for messages and output names."""
    meta = getattr(image, "meta", None) or {}
    return str(meta.get("filename_or_obj", "<image>"))


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
