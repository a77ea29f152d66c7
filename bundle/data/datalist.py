"""Datalists: read one (MONAI's decathlon-style JSON), and list the images an inference runs on.

A datalist is ``{"training": [{"image": ..., "landmarks": ..., "spacing": [...]}, ...], "validation": [...],
"test": [...]}``. Relative ``image`` and ``landmarks`` paths are relative to the datalist's folder (or ``base_dir``);
``spacing`` is mm per pixel in array-axis order (x, y[, z]), required for formats without geometry (PNG, JPEG, BMP,
TIFF).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError
from ..io import (
    IMAGE_SUFFIXES,
    colliding_stems,
    output_paths,
)
from ..io.files import read_json, refuse_existing

PATH_KEYS = ("image", "landmarks")
DATALIST_NAME = "datalist.json"


def datalist_file(path: str | os.PathLike) -> str:
    """The datalist a config's ``dataset_dir`` names: the file itself, or ``datalist.json`` in the folder (as the
    preparation scripts write it)."""
    path = Path(path)
    return str(path / DATALIST_NAME if path.is_dir() else path)


def load_datalist(path: str | os.PathLike, key: str = "training", base_dir: str | os.PathLike | None = None) -> list:
    """The list under ``key`` with ``image``/``landmarks`` paths made absolute.

    Raises:
        ValueError: the file is not a datalist or has no non-empty list under ``key``.
    """
    path = Path(path)
    data = read_json(path, "the datalist")
    entries = data.get(key) if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise InputError(
            f"{path}: no non-empty list {key!r} (it has {sorted(data) if isinstance(data, dict) else []})."
        )
    root = Path(base_dir) if base_dir is not None else path.parent
    out = []
    for entry in entries:
        if isinstance(entry, str):
            entry = {"image": entry}
        entry = dict(entry)
        for k in PATH_KEYS:
            if k in entry and not Path(entry[k]).is_absolute():
                entry[k] = str(root / entry[k])
        out.append(entry)
    return out


def datalist_stems(path: str | os.PathLike, key: str) -> list[str]:
    """The image file names without suffix of a datalist's ``key`` list, in order (as evaluation tables name them)."""
    return [Path(entry["image"]).stem for entry in load_datalist(path, key)]


def inference_list(
    source: str | os.PathLike,
    spacing: list | None = None,
    key: str = "test",
    base_dir: str | os.PathLike | None = None,
    output_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> list:
    """Entries ``{"image": ..., "spacing": ...}`` to run inference on.

    Args:
        source: a folder of images (every image file in it, sorted by name), a folder holding a ``datalist.json``
            (its ``key`` list), one image file, or a datalist JSON (its ``key`` list).
        spacing: mm per pixel for entries that do not give one (needed for PNG/JPEG/BMP/TIFF; files with geometry
            keep their own).
        key: the datalist list to use.
        base_dir: for relative paths in a datalist (default: its folder).
        output_dir: where inference will write; with it, outputs that exist already are refused here, before the
            run writes anything, unless ``overwrite``.
        overwrite: replace existing outputs.

    Raises:
        ValueError: no images found, the source does not exist, an entry has no ``image``, or two images would
            write the same output files (same name but for the suffix, e.g. ``scan.png`` and ``scan.jpg``): all
            before anything is written.
    """
    source = Path(source)
    if source.is_file() and source.name.lower().endswith(IMAGE_SUFFIXES):
        entries = [{"image": str(source)}]
    elif source.is_file():
        entries = load_datalist(source, key, base_dir)
    elif source.is_dir() and (source / DATALIST_NAME).is_file():
        entries = load_datalist(source / DATALIST_NAME, key, base_dir)
    elif source.is_dir():
        files = sorted(p for p in source.iterdir() if p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES))
        entries = [{"image": str(p)} for p in files]
    else:
        raise InputError(f"{source}: not found (give a folder of images, an image or a datalist file).")
    if not entries:
        raise InputError(f"{source}: no images (looked for {', '.join(IMAGE_SUFFIXES)}).")
    for i, entry in enumerate(entries):
        if not entry.get("image"):
            raise InputError(f"{source}: entry {key}[{i}] has no 'image'.")
        entry.pop("landmarks", None)
        if spacing is not None and entry.get("spacing") is None:
            entry["spacing"] = list(spacing)
    collisions = colliding_stems(entry["image"] for entry in entries)
    if collisions:
        listed = "; ".join(f"{stem}: {', '.join(paths)}" for stem, paths in collisions.items())
        raise InputError(
            f"{source}: these images would write the same output files ({listed}); rename them or run them apart."
        )
    if output_dir is not None:
        planned = [p for entry in entries for p in output_paths(entry["image"], output_dir)]
        refuse_existing(planned, overwrite, "pass --overwrite true or another --output_dir.")
    return entries
