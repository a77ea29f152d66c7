"""Datalists: read one, and check every entry before training so that a bad file fails early, by name.

A datalist is MONAI's decathlon-style JSON: ``{"training": [{"image": ..., "landmarks": ..., "spacing": [...]}, ...],
"validation": [...], "test": [...]}``. Relative ``image`` and ``landmarks`` paths are relative to the datalist's
folder (or ``base_dir``); ``spacing`` is mm per pixel in array-axis order (x, y[, z]), required for formats without
geometry (PNG, JPEG, BMP, TIFF).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from monai.data import CacheDataset

from .errors import InputError
from .geometry import array_frame, map_points
from .io import (
    IMAGE_SUFFIXES,
    NO_GEOMETRY_SUFFIXES,
    Landmarks,
    colliding_stems,
    load_image_grey_pictures,
    output_paths,
    read_image_landmarks,
)
from .io.files import refuse_existing
from .io.picture_reader import UnreadableImageError
from .shape import ShapeModel
from .transforms.image import FinitePixelsd, PixelSpacingd, SqueezeSpatiald

__all__ = [
    "datalist_file",
    "datalist_stems",
    "load_datalist",
    "check_datalist",
    "check_entry",
    "OtherDimensionsError",
    "inference_list",
    "LandmarkCacheDataset",
]

PATH_KEYS = ("image", "landmarks")
logger = logging.getLogger(__name__)


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
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:  # ValueError: not JSON, or not text at all (UnicodeDecodeError)
        raise InputError(f"{path}: cannot read the datalist ({type(e).__name__}: {e}).") from None
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


MIN_SIZE = 32  # pixels per axis: smaller images cannot hold a landmark layout the networks could find


def check_datalist(
    entries: list,
    num_landmarks: int | None,
    spatial_dims: int = 2,
    name: str = "datalist",
    require_landmarks: bool = True,
    default_spacing: list | None = None,
    min_size: int = MIN_SIZE,
    leave_out_other_dims: bool = False,
    skip_bad: bool = False,
    landmark_names: Sequence[str] | None = None,
) -> list:
    """Check every entry before a run writes anything: the image exists and reads, holds no NaN or infinite value,
    has ``spatial_dims`` axes of at least ``min_size`` pixels, the spacing is there when the format needs it (given,
    or ``default_spacing`` to be assumed) and agrees with the file's when it has one, and (``require_landmarks``)
    the landmark file (or label image) has ``num_landmarks`` finite, visible landmarks inside the image. (A very
    large image is fine: the preprocessing's :class:`~bundle.transforms.ShrinkLarged` averages it down, with a
    warning.) Returns the entries, unchanged; with ``leave_out_other_dims``, those whose image has another number of
    spatial dimensions are left out of it instead of being bad.

    Every entry is checked, and one error lists all the bad ones. With ``skip_bad`` they are left out instead, and a
    warning names each (for a training that should go on with the good labels; never the default, so that nothing
    trains on less than it was given without being asked to). ``landmark_names`` name the landmarks in messages.

    Raises:
        InputError: naming each bad entry (``name[i]`` and its image) and what is wrong with it.
    """
    settings = {"num_landmarks": num_landmarks, "spatial_dims": spatial_dims, "default_spacing": default_spacing}
    kept, bad = [], []
    for i, entry in enumerate(entries):
        image = entry.get("image", "?") if isinstance(entry, dict) else repr(entry)
        where = f"{name}[{i}] ({image})"
        try:
            check_entry(
                entry, require_landmarks=require_landmarks, min_size=min_size, **settings, landmark_names=landmark_names
            )
            kept.append(entry)
        except OtherDimensionsError as e:
            if not leave_out_other_dims:
                bad.append(f"{where}: {e}")
        except InputError as e:
            bad.append(f"{where}: {e}")
    if bad and not skip_bad:
        raise InputError(
            bad[0] if len(bad) == 1 else f"{len(bad)} of {len(entries)} entries are bad: " + "; ".join(bad)
        )
    for problem in bad:
        logger.warning(f"left out (skip_bad): {problem}")
    return kept


class OtherDimensionsError(InputError):
    """An image with another number of spatial dimensions than the model's."""


def check_entry(
    entry: dict,
    num_landmarks: int | None,
    spatial_dims: int = 2,
    default_spacing: list | None = None,
    require_landmarks: bool = True,
    min_size: int = MIN_SIZE,
    landmark_names: Sequence[str] | None = None,
) -> Landmarks | None:
    """One entry's check (see :func:`check_datalist`); returns its landmarks as read (world mm), if it has them.
    ``landmark_names`` name the landmarks in messages (files without names, e.g. label images, number them 1 to K).

    Raises:
        OtherDimensionsError: the image has another number of spatial dimensions than ``spatial_dims``.
        InputError: what else is wrong with the entry.
    """
    # the pipeline's loader (pictures as one grey channel) in the file's own type (an integer image holds no NaN): a
    # check of 250 cephalograms then reads them in 4 s instead of 25
    load = load_image_grey_pictures("image", image_only=True, ensure_channel_first=True, dtype=None)
    if not isinstance(entry, dict):
        raise InputError("an entry is a dict with 'image' (and 'landmarks').")
    image_path = entry.get("image")
    if not image_path:
        raise InputError("no 'image'.")
    if not Path(image_path).exists():
        raise InputError("image file not found.")
    try:
        image = load({"image": image_path})["image"]
    except UnreadableImageError as e:  # the entry names the file already: the reason alone
        raise InputError(e.reason.rstrip(".") + ".") from None
    try:
        image = SqueezeSpatiald("image", spatial_dims)({"image": image})["image"]
    except InputError as e:  # more spatial axes than spatial_dims, not of size 1, or fewer
        raise OtherDimensionsError(str(e)) from None
    FinitePixelsd("image")({"image": image})
    if min(image.shape[1:]) < min_size:
        raise InputError(f"the image is {tuple(image.shape[1:])} pixels; at least {min_size} per axis are needed.")
    spacing = entry.get("spacing")
    if spacing is None and default_spacing is None and str(image_path).lower().endswith(NO_GEOMETRY_SUFFIXES):
        raise InputError(
            "this format has no pixel spacing; give 'spacing' (mm per pixel) in the datalist, or --spacing for a "
            "folder, or an 'assumed_spacing' in the config."
        )
    checked = PixelSpacingd("image", default_spacing=default_spacing)({"image": image, "spacing": spacing})["image"]
    if not require_landmarks:
        return None
    if not entry.get("landmarks"):
        raise InputError("no 'landmarks' file.")
    landmarks = read_image_landmarks(entry["landmarks"], checked, num_landmarks, spatial_dims, spacing=spacing)
    names = list(landmark_names) if landmark_names and len(landmark_names) == len(landmarks) else landmarks.names
    if not landmarks.visible.all():
        missing = [n for n, v in zip(names, landmarks.visible) if not v]
        raise InputError(f"landmarks {missing} are not annotated; training needs every landmark.")
    grid_points = map_points(torch.as_tensor(landmarks.coordinates), checked.affine, invert=True)
    extent = torch.tensor(image.shape[1:], dtype=grid_points.dtype) - 0.5
    outside = ((grid_points < -0.5) | (grid_points > extent)).any(-1)
    if outside.any():
        names = [n for n, o in zip(names, outside.tolist()) if o]
        raise InputError(f"landmarks {names} lie outside the image (check the spacing and the units).")
    return landmarks


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


class LandmarkCacheDataset(CacheDataset):
    """MONAI's :class:`~monai.data.CacheDataset` over landmark entries that it checks first (:func:`check_datalist`),
    wherever they come from: a datalist file, or MONAI Label, whose training task replaces the config's
    ``train#dataset#data`` and ``validate#dataset#data`` with its datastore's ``{"image": ..., "label": ...}``
    entries (``label``: the landmark file saved through MONAI Label, e.g. a 3D Slicer ``.mrk.json``). An entry
    without ``landmarks`` takes its ``label`` as the landmark file.

    A MONAI Label datastore is shared by every model the app serves, so datastore entries whose image has another
    number of spatial dimensions (a 3D volume, for a 2D model) are left out, with a warning that counts them; entries
    with ``landmarks`` (a datalist's) are never left out, and a wrong one is an error.

    Args:
        data: the entries.
        transform: as for :class:`~monai.data.CacheDataset`.
        num_landmarks, spatial_dims, default_spacing: as for :func:`check_datalist` (``default_spacing``: assumed for
            images without geometry whose entry gives no ``spacing``; the transforms' :class:`PixelSpacingd` must
            assume the same).
        name: the split's name, for messages.
        skip_bad: leave bad entries out (a warning names each) instead of refusing them all in one error (the
            config's ``skip_bad_labels``).
        landmark_names: the landmarks' names, for messages.
        checked: the entries were checked already (MONAI Label's training task checks the whole datastore before it
            splits it): taken as they are.
        kwargs: passed to :class:`~monai.data.CacheDataset` (``cache_rate``, ``num_workers``, ...).

    Raises:
        ValueError: no entries (e.g. a MONAI Label validation split of zero images), or a bad entry, by name.
    """

    def __init__(
        self,
        data: list,
        transform,
        num_landmarks: int,
        spatial_dims: int = 2,
        name: str = "datalist",
        default_spacing: list | None = None,
        skip_bad: bool = False,
        landmark_names: Sequence[str] | None = None,
        checked: bool = False,
        **kwargs,
    ):
        listed, stored = [], []  # a datalist's entries, and MONAI Label's datastore entries
        for entry in data or []:
            if isinstance(entry, dict) and not entry.get("landmarks") and entry.get("label"):
                stored.append({**entry, "landmarks": entry["label"]})
            else:
                listed.append(entry)
        if checked:
            entries = listed + stored
        else:
            check = {"num_landmarks": num_landmarks, "spatial_dims": spatial_dims, "name": name, "skip_bad": skip_bad}
            check["landmark_names"] = landmark_names
            entries = check_datalist(listed, default_spacing=default_spacing, **check)
            kept = check_datalist(stored, default_spacing=default_spacing, leave_out_other_dims=True, **check)
            if len(kept) < len(stored):
                logger.warning(
                    f"{name}: left out {len(stored) - len(kept)} datastore images that are not {spatial_dims}D."
                )
            entries += kept
        if not entries:
            raise InputError(
                f"{name}: no {spatial_dims}D entries. (Under MONAI Label: label more images, or give the training a "
                "validation split that holds at least one.)"
            )
        super().__init__(entries, transform, **kwargs)


def configurations_from_datalist(
    entries: Sequence[dict],
    num_landmarks: int,
    spatial_dims: int = 2,
    default_spacing: Sequence[float] | None = None,
) -> np.ndarray:
    """The complete landmark configurations of ``entries`` (``{"image": ..., "landmarks": ..., "spacing": ...}``, as
    :func:`bundle.load_datalist` gives them; a MONAI Label entry's ``label`` counts as its landmark file), (N, K, D),
    each in its image's array frame (:func:`bundle.geometry.array_frame` through the affine the image is loaded with):
    the frame the network sees, whatever the file headers' orientation. Entries with landmarks missing are left out.

    Raises:
        ValueError: a landmark file is wrong (naming it).
    """
    load = load_image_grey_pictures("image", image_only=True, ensure_channel_first=True, dtype=None)
    squeeze = SqueezeSpatiald("image", spatial_dims)
    spacing_of = PixelSpacingd("image", default_spacing=default_spacing)
    shapes = []
    for entry in entries:
        image = squeeze(load({"image": entry["image"]}))["image"]
        image = spacing_of({"image": image, "spacing": entry.get("spacing")})["image"]
        landmarks = read_image_landmarks(
            entry.get("landmarks") or entry["label"], image, num_landmarks, spatial_dims, spacing=entry.get("spacing")
        )
        if landmarks.visible.all():
            frame = array_frame(torch.as_tensor(landmarks.coordinates), image.meta["source_affine"])
            shapes.append(frame.numpy())
    return np.stack(shapes) if shapes else np.zeros((0, num_landmarks, spatial_dims))


def shape_model_from_datalist(
    entries: Sequence[dict],
    landmark_names: Sequence[str],
    spatial_dims: int = 2,
    default_spacing: Sequence[float] | None = None,
    modes: int | None = 20,
    **settings,
) -> ShapeModel:
    """Fit a :class:`ShapeModel` to the complete configurations of ``entries`` (:func:`configurations_from_datalist`).

    Args:
        modes: principal directions kept (20: chosen by leave-one-out on ISBI 2015, docs/studies/shape_model.md).
        settings: decision settings of :class:`ShapeModel` (``threshold``, ...).

    Raises:
        ValueError: no entry has every landmark, or a landmark file is wrong (naming it).
    """
    shapes = configurations_from_datalist(entries, len(landmark_names), spatial_dims, default_spacing)
    if not len(shapes):
        raise InputError("no training entry has every landmark annotated: a shape model needs complete ones.")
    return ShapeModel.fit(shapes, landmark_names, modes=modes, **settings)
