"""Image-only transforms of the preprocessing."""

from __future__ import annotations

import logging
import math
from typing import Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Resize

__all__ = ["ShrinkLarged"]

logger = logging.getLogger(__name__)


class ShrinkLarged(MapTransform):
    """Average down an image of more than ``max_pixels`` pixels (voxels) by the smallest whole factor per axis that
    brings it under the limit, with MONAI's :class:`Resize` in ``"area"`` mode, which updates the MetaTensor affine
    (so landmarks and millimetres stay right). Smaller images pass unchanged.

    The network grid is a few hundred pixels wide, so this loses nothing the network could see; it keeps the later
    float copies and the anti-aliased resize of, say, an 8000 x 8000 radiograph from taking several GB. Apply after
    :class:`~bundle.transforms.PixelSpacingd` (which records the original affine for output pixels) and before
    intensity scaling and the resize to the grid.

    Args:
        keys: image keys (channel-first MetaTensors).
        max_pixels: the largest spatial size, in pixels (voxels), that passes unchanged.
    """

    def __init__(self, keys: KeysCollection, max_pixels: int = 50_000_000, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        if max_pixels < 1:
            raise ValueError(f"max_pixels must be positive, got {max_pixels}.")
        self.max_pixels = int(max_pixels)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            shape = tuple(d[key].shape[1:])
            pixels = math.prod(shape)
            if pixels <= self.max_pixels:
                continue
            factor = math.ceil((pixels / self.max_pixels) ** (1 / len(shape)))
            while math.prod(s // factor for s in shape) > self.max_pixels:
                factor += 1
            size = [max(1, s // factor) for s in shape]
            name = d[key].meta.get("filename_or_obj", key) if hasattr(d[key], "meta") else key
            logger.warning(f"{name}: {shape} pixels is over {self.max_pixels:,}; averaged down {factor}x to {size}.")
            d[key] = Resize(spatial_size=size, mode="area")(d[key])
        return d
