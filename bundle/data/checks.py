"""Every datalist entry checked before a run uses it, so that a bad file fails early, by name: the image readable and
of the model's dimension, the landmark file of the model's landmarks, inside the image, with a spacing where the
format has none.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import torch

from ..errors import InputError
from ..geometry import map_points
from ..io import (
    NO_GEOMETRY_SUFFIXES,
    Landmarks,
    load_image_grey_pictures,
    read_image_landmarks,
)
from ..io.picture_reader import UnreadableImageError
from ..transforms.image import FinitePixelsd, PixelSpacingd, SqueezeSpatiald

logger = logging.getLogger(__name__)


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
