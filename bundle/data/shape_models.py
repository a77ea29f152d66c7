"""A shape model fitted to the annotated configurations of a datalist's files (what every training writes)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..errors import InputError
from ..geometry import array_frame
from ..io import (
    load_image_grey_pictures,
    read_image_landmarks,
)
from ..shape import ShapeModel
from ..transforms.image import PixelSpacingd, SqueezeSpatiald


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
