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
from ..errors import InputError
from ..geometry import affine_spacing, map_points
from ..io import image_filename
from .landmarks import _codec_for

__all__ = ["DecodeLandmarksd"]


class DecodeLandmarksd(MapTransform):
    """Heatmaps (K, *S) -> landmarks in world mm, in original-image pixels, and a confidence per landmark.

    The grid points come from the heatmap codec's :meth:`~bundle.GaussianHeatmapCodec.decode` (its method, its DARK
    blur); world = the reference image's affine applied to them; pixels = the inverse of ``meta["source_affine"]``
    (set by :class:`PixelSpacingd`) applied to world (x = column in 2D). Heatmaps must be probabilities (apply a
    sigmoid to logits first).

    Writes ``{prefix}landmarks`` (K, D) world mm, ``{prefix}pixels`` (K, D), ``{prefix}confidence`` (K,) and
    ``{prefix}spread`` (K,) (the heatmap's width around the point, mm per axis: :meth:`~GaussianHeatmapCodec.spread`),
    all float64, with ``prefix`` = ``"pred_"`` by default; with ``num_candidates`` M > 1 also
    ``{prefix}candidates`` (K, M, D) world mm (NaN: fewer peaks) and ``{prefix}candidate_scores`` (K, M), the decoded
    point first (:meth:`~GaussianHeatmapCodec.candidates`), for a shape model to choose from
    (:class:`~bundle.transforms.PlausibleLandmarksd`). Non-finite heatmaps raise ``ValueError`` naming the image.

    Args:
        keys: heatmap keys.
        codec: the :class:`bundle.GaussianHeatmapCodec` that owns the heatmap settings (default: its defaults for the
            heatmaps' dimensions, DARK decoding).
        ref_key: the image the heatmaps are on.
        prefix: prefix of the keys written.
        num_candidates: peaks kept per landmark (1: the decoded point only, no candidate keys).
        min_distance: the candidates' separation in grid pixels.
    """

    def __init__(
        self,
        keys: KeysCollection,
        codec: GaussianHeatmapCodec | None = None,
        ref_key: str = "image",
        prefix: str = "pred_",
        num_candidates: int = 1,
        min_distance: int = 2,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        if num_candidates < 1 or min_distance < 1:
            raise InputError(f"num_candidates and min_distance must be >= 1, got {num_candidates}, {min_distance}.")
        self.codec, self.ref_key, self.prefix = codec, ref_key, prefix
        self.num_candidates, self.min_distance = int(num_candidates), int(min_distance)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            heatmaps = torch.as_tensor(d[key])
            reference = d[self.ref_key]
            if not bool(torch.isfinite(heatmaps).all()):  # else every landmark would land on the first grid pixel
                raise InputError(
                    f"{image_filename(reference)}: the network's output holds NaN or infinite values, so its "
                    "landmarks would be meaningless: the weights are broken (a diverged training, a damaged model.pt) "
                    "or the image is."
                )
            codec = _codec_for(self.codec, heatmaps.ndim - 1)
            dims = heatmaps.ndim - 1
            if self.num_candidates > 1:
                candidates, scores = codec.candidates(heatmaps, self.num_candidates, self.min_distance)
                grid, confidence = candidates[:, 0], scores[:, 0]
                flat = candidates.reshape(-1, dims).double()
                world_candidates = map_points(flat.nan_to_num(0.0), reference.affine).reshape(candidates.shape)
                world_candidates[~torch.isfinite(candidates)] = float("nan")
                d[f"{self.prefix}candidates"] = world_candidates
                d[f"{self.prefix}candidate_scores"] = scores.double()
            else:
                grid, confidence = codec.decode(heatmaps)
            world = map_points(grid.double(), reference.affine, invert=False)
            source = reference.meta.get("source_affine", reference.affine)
            d[f"{self.prefix}landmarks"] = world
            d[f"{self.prefix}pixels"] = map_points(world, source, invert=True)
            d[f"{self.prefix}confidence"] = confidence.double().cpu()
            grid_mm = float(affine_spacing(reference.affine, dims).mean())
            d[f"{self.prefix}spread"] = codec.spread(heatmaps, grid).double() * grid_mm
        return d
