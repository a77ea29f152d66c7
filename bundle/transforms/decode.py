"""Decoding: heatmaps to landmarks in world millimetres and original-image pixels.

Decoded grid points go to world millimetres through the image's current affine, and to original-image pixels
through the affine recorded when the image was loaded (``meta["source_affine"]``). Conventions: see :mod:`bundle`.
"""

from __future__ import annotations

from typing import Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from ..codecs import GaussianHeatmapCodec
from ..geometry import map_points
from ..io import image_filename
from .landmarks import _codec_for

__all__ = ["DecodeLandmarksd"]


class DecodeLandmarksd(MapTransform):
    """Heatmaps (K, *S) -> landmarks in world mm, in original-image pixels, and a confidence per landmark.

    The grid points come from the heatmap codec's :meth:`~bundle.GaussianHeatmapCodec.decode` (its method, its DARK
    blur); world = the reference image's affine applied to them; pixels = the inverse of ``meta["source_affine"]``
    (set by :class:`PixelSpacingd`) applied to world (x = column in 2D). Heatmaps must be probabilities (apply a
    sigmoid to logits first).

    Writes ``{prefix}landmarks`` (K, D) world mm, ``{prefix}pixels`` (K, D) and ``{prefix}confidence`` (K,),
    all float64, with ``prefix`` = ``"pred_"`` by default. Non-finite heatmaps raise ``ValueError`` naming the image.

    Args:
        keys: heatmap keys.
        codec: the :class:`bundle.GaussianHeatmapCodec` that owns the heatmap settings (default: its defaults for the
            heatmaps' dimensions, DARK decoding).
        ref_key: the image the heatmaps are on.
        prefix: prefix of the keys written.
    """

    def __init__(
        self,
        keys: KeysCollection,
        codec: GaussianHeatmapCodec | None = None,
        ref_key: str = "image",
        prefix: str = "pred_",
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.codec, self.ref_key, self.prefix = codec, ref_key, prefix

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            heatmaps = torch.as_tensor(d[key])
            reference = d[self.ref_key]
            if not bool(torch.isfinite(heatmaps).all()):  # else every landmark would land on the first grid pixel
                raise ValueError(
                    f"{image_filename(reference)}: the network's output holds NaN or infinite values, so its "
                    "landmarks would be meaningless: the weights are broken (a diverged training, a damaged model.pt) "
                    "or the image is."
                )
            grid, confidence = _codec_for(self.codec, heatmaps.ndim - 1).decode(heatmaps)
            world = map_points(grid.double(), reference.affine, invert=False)
            source = reference.meta.get("source_affine", reference.affine)
            d[f"{self.prefix}landmarks"] = world
            d[f"{self.prefix}pixels"] = map_points(world, source, invert=True)
            d[f"{self.prefix}confidence"] = confidence.double().cpu()
        return d
