"""A shape model from a datalist's landmark files, in the frame the network sees (pixel index times spacing)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..geometry import array_frame, picture_spacing
from ..io import load_image_grey_pictures, read_landmarks
from ..transforms.image import PixelSpacingd, SqueezeSpatiald
from .model import ShapeModel

__all__ = ["shape_model_from_datalist"]


def shape_model_from_datalist(
    entries: Sequence[dict],
    landmark_names: Sequence[str],
    spatial_dims: int = 2,
    default_spacing: Sequence[float] | None = None,
    modes: int | None = 10,
    **settings,
) -> ShapeModel:
    """Fit a :class:`ShapeModel` to the landmark files of ``entries`` (``{"image": ..., "landmarks": ...,
    "spacing": ...}``, as :func:`bundle.load_datalist` gives them; a MONAI Label entry's ``label`` counts as its
    landmark file). Each configuration goes into its image's array frame (:func:`bundle.geometry.array_frame`
    through the affine the image is loaded with), so that the model judges configurations as the network sees
    them, whatever the file headers' orientation. Entries with landmarks missing are left out.

    Args:
        modes: principal directions kept (10: chosen by leave-one-out on ISBI 2015, docs/studies/shape_model.md).
        settings: decision settings of :class:`ShapeModel` (``threshold``, ...).

    Raises:
        ValueError: no entry has every landmark, or a landmark file is wrong (naming it).
    """
    load = load_image_grey_pictures("image", image_only=True, ensure_channel_first=True, dtype=None)
    squeeze = SqueezeSpatiald("image", spatial_dims)
    spacing_of = PixelSpacingd("image", default_spacing=default_spacing)
    shapes = []
    for entry in entries:
        image = squeeze(load({"image": entry["image"]}))["image"]
        image = spacing_of({"image": image, "spacing": entry.get("spacing")})["image"]
        picture = picture_spacing(image)
        landmarks = read_landmarks(
            entry.get("landmarks") or entry["label"],
            len(landmark_names),
            picture or entry.get("spacing"),
            spatial_dims,
            picture_spacing=picture,
        )
        if not landmarks.visible.all():
            continue
        frame = array_frame(torch.as_tensor(landmarks.coordinates), image.meta["source_affine"])
        shapes.append(frame.numpy())
    if not shapes:
        raise ValueError("no training entry has every landmark annotated: a shape model needs complete ones.")
    return ShapeModel.fit(np.stack(shapes), landmark_names, modes=modes, **settings)
