"""Landmark transforms of training: landmark files to world millimetres, world to the current grid, heatmap targets.

The image is the only thing resampled. Landmarks stay in world millimetres (key ``landmarks``) and are mapped onto
the current grid through the image's MetaTensor affine, which MONAI updates with every spatial transform (resize,
spacing, random affine), so they keep sub-pixel precision. Conventions: see :mod:`bundle`.
"""

from __future__ import annotations

from typing import Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform
from monai.transforms.traits import RandomizableTrait

from ..codecs import GaussianHeatmapCodec
from ..errors import InputError
from ..geometry import map_points
from ..io import read_image_landmarks

__all__ = ["LoadLandmarksd", "LandmarksToGridd", "GaussianHeatmapd"]


class LoadLandmarksd(MapTransform):
    """Read each landmark file into a (K, D) float64 tensor of world millimetres (NaN rows: not visible).

    Apply after the image's :class:`PixelSpacingd`: for a picture without geometry, the spacing it was given (from the
    entry or assumed) reads the pixel-based formats (ISBI ``.txt``) and Slicer's frame of the picture (``.mrk.json``,
    ``.fcsv``: :mod:`bundle.io.landmarks`), and a label image (value k + 1 at landmark k, e.g. uploaded from 3D Slicer
    through MONAI Label) is read on the image's pixels as loaded, through their affine.

    Args:
        keys: keys holding landmark file paths.
        num_landmarks: K; a file with another count raises.
        spatial_dims: D.
        spacing_key: the datalist field with the pixel spacing, for pixel-based formats when there is no image.
        ref_key: the image the landmarks belong to.
    """

    def __init__(
        self,
        keys: KeysCollection,
        num_landmarks: int,
        spatial_dims: int = 2,
        spacing_key: str = "spacing",
        ref_key: str = "image",
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.num_landmarks = num_landmarks
        self.spatial_dims = spatial_dims
        self.spacing_key, self.ref_key = spacing_key, ref_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        image = d.get(self.ref_key)
        for key in self.key_iterator(d):
            landmarks = read_image_landmarks(
                d[key], image, self.num_landmarks, self.spatial_dims, spacing=d.get(self.spacing_key)
            )
            d[key] = torch.as_tensor(landmarks.coordinates, dtype=torch.float64)
        return d


class LandmarksToGridd(MapTransform):
    """World-mm landmarks (K, D) -> grid coordinates of the image's current grid (K, D), via its affine.

    Apply after the spatial transforms. Wraps MONAI's :class:`ApplyTransformToPoints` (inverse affine) so that the
    world landmarks stay untouched under ``keys`` and the grid copy goes to ``output_key``.
    """

    def __init__(
        self, keys: KeysCollection, ref_key: str = "image", output_key: str = "grid_landmarks", allow_missing_keys=False
    ):
        super().__init__(keys, allow_missing_keys)
        self.ref_key, self.output_key = ref_key, output_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.output_key] = map_points(torch.as_tensor(d[key]), d[self.ref_key].affine, invert=True)
        return d


class GaussianHeatmapd(MapTransform, RandomizableTrait):
    """Heatmap target (K, *S) float32 from grid landmarks, on the reference image's grid and device, made by the
    heatmap codec (its sigma, its truncation): sub-pixel centre, peak 1, zero channel for a landmark outside the grid.

    It carries MONAI's :class:`~monai.transforms.traits.RandomizableTrait`, the mark at which MONAI's caching datasets
    (``CacheDataset``, ``PersistentDataset``, ...) stop caching: its output is not a fixed function of its input,
    because the codec's sigma may change during training (:class:`bundle.handlers.AdaptiveSigmaHandler`), and a
    cached target would keep the old sigma. It draws no random numbers.

    Args:
        keys: keys of (K, D) grid landmarks.
        codec: the :class:`bundle.GaussianHeatmapCodec` that owns the heatmap settings (default: its defaults for the
            image's dimensions). Read at every call, so a sigma changed on it reaches the next target.
        ref_key: the image whose spatial shape the heatmap takes.
        output_key: where the heatmap goes.
    """

    def __init__(
        self,
        keys: KeysCollection,
        codec: GaussianHeatmapCodec | None = None,
        ref_key: str = "image",
        output_key: str = "heatmap",
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.codec, self.ref_key, self.output_key = codec, ref_key, output_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[self.ref_key]
            codec = _codec_for(self.codec, image.ndim - 1)
            points = torch.as_tensor(d[key]).float().to(image.device)
            d[self.output_key], _ = codec.encode(points, image.shape[1:])
        return d


def _codec_for(codec: GaussianHeatmapCodec | None, spatial_dims: int) -> GaussianHeatmapCodec:
    if codec is None:
        return GaussianHeatmapCodec(spatial_dims)
    if codec.spatial_dims != spatial_dims:
        raise InputError(f"the heatmap codec is {codec.spatial_dims}D, the data {spatial_dims}D.")
    return codec
