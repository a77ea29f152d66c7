"""Landmarks as a label image: a small disk (a ball in 3D) of value k + 1 around landmark k, 0 elsewhere, on the
original image's pixel grid. This is how MONAI Label and 3D Slicer show a result: MONAI Label's writer saves the label
image of the post-processed data, and Slicer overlays it on the image as a segmentation, one segment per landmark.

MONAI has no such transform (its label transforms take segmentations, not points), hence this one.
"""

from __future__ import annotations

import math
from typing import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from ..errors import InputError
from ..geometry import affine_spacing
from ..io import image_filename, loaded_shape

__all__ = ["LandmarkLabelMapd", "landmark_label_map"]

LOSSY_SUFFIXES = (".jpg", ".jpeg")


def landmark_label_map(
    pixels: np.ndarray, shape: Sequence[int], spacing: Sequence[float], radius_mm: float
) -> np.ndarray:
    """Label image of ``shape`` (array-axis order) with value k + 1 on the pixels within ``radius_mm`` of landmark k.

    Args:
        pixels: (K, D) landmark positions in pixel indices of the same axes (x = column in 2D); NaN rows (not
            visible) and landmarks whose disk misses the image are left out.
        shape: the image's spatial shape, D numbers.
        spacing: mm per pixel, D numbers; the disk is round in millimetres, and always holds its centre pixel.
        radius_mm: the disk's radius.

    A landmark closer than two radii to another gets a smaller disk, of just under half the distance between them, so
    that the disks do not overlap: each disk is then whole and round about its landmark, and its centroid, which is how a label
    image is read back (:mod:`bundle.io.formats.label_image`), is the landmark. Where disks still meet (landmarks
    within a pixel of each other), each pixel goes to the nearer landmark. Returns uint8 for up to 255 landmarks,
    else uint16.
    """
    pixels = np.asarray(pixels, dtype=np.float64)
    spacing = np.asarray(spacing, dtype=np.float64)
    dims = len(shape)
    if pixels.ndim != 2 or pixels.shape[1] != dims or spacing.shape != (dims,):
        raise InputError(f"pixels must be (K, {dims}) and spacing {dims} numbers for a {dims}D shape {tuple(shape)}.")
    if not radius_mm > 0:
        raise InputError(f"radius_mm must be positive, got {radius_mm}.")
    labels = np.zeros(tuple(shape), dtype=np.uint8 if len(pixels) < 256 else np.uint16)
    nearest = np.full(tuple(shape), np.inf)
    shown = np.isfinite(pixels).all(axis=1)
    gaps = np.linalg.norm((pixels[:, None] - pixels[None]) * spacing, axis=-1)  # mm between landmarks
    gaps[~shown] = gaps[:, ~shown] = np.inf
    np.fill_diagonal(gaps, np.inf)
    radii = np.minimum(radius_mm, 0.49 * gaps.min(axis=1, initial=np.inf))  # below half: no pixel in two disks
    for k, centre in enumerate(pixels):
        if not shown[k]:
            continue
        reach = np.maximum(radii[k] / spacing, 0.5)  # pixels per axis; the nearest pixel is always marked too
        low = np.maximum(np.floor(centre - reach).astype(int), 0)
        high = np.minimum(np.ceil(centre + reach).astype(int) + 1, shape)
        if np.any(high <= low):
            continue
        box = tuple(slice(lo, hi) for lo, hi in zip(low, high))
        axes = np.meshgrid(*(np.arange(lo, hi) for lo, hi in zip(low, high)), indexing="ij")
        # distance in units of the reach: <= 1 inside the disk (an ellipse in pixels when the spacing differs by axis)
        distance = sum(((axis - c) / r) ** 2 for axis, c, r in zip(axes, centre, reach))
        centre_pixel = np.logical_and.reduce([axis == np.rint(c) for axis, c in zip(axes, centre)])
        inside = ((distance <= 1.0) | centre_pixel) & (distance < nearest[box])
        labels[box][inside] = k + 1
        nearest[box][inside] = distance[inside]
    return labels


class LandmarkLabelMapd(MapTransform):
    """Decoded landmarks -> a label image on the original image's grid, with the geometry MONAI Label writes it in.

    Reads the decoded ``pred_pixels`` (K, D) original-image pixels (from :class:`DecodeLandmarksd`) and the
    reference image's ``meta["spatial_shape"]`` (as loaded) and ``meta["source_affine"]`` (the affine of the pixels
    as loaded, with the spacing: :class:`PixelSpacingd`). Writes a MetaTensor without a channel axis, of the original
    spatial shape (the first D axes) and that affine, under every one of ``output_keys``: MONAI Label's writer saves
    the key ``pred``, and its ``Restored`` transform visits the first output of the bundle's metadata (``label``);
    with no channel axis and the original shape, ``Restored`` leaves it as it is.

    It also sets ``data[extension_key]`` (MONAI Label's ``result_extension``, the file type of the saved label) to
    ``extension`` when the request did not give one: the default type is the input's, and a JPEG label would be
    lossy. A lossy type asked for is refused.

    Args:
        keys: the decoded pixel key (``pred_pixels``).
        ref_key: the image.
        radius_mm: disk radius in mm.
        output_keys: where the label image goes.
        extension: the label file type when none is asked for (NIfTI: 3D Slicer opens it over 2D pictures and volumes
            alike).
        extension_key: the data key MONAI Label's writer reads the file type from.
        visible_key: (K,) bool beside the pixels (:class:`FlagLandmarksd`'s ``pred_visible``); landmarks not visible
            (outside the image) get no disk. Absent key: every landmark gets one.
    """

    def __init__(
        self,
        keys: KeysCollection,
        ref_key: str = "image",
        radius_mm: float = 1.5,
        output_keys: Sequence[str] = ("label", "pred"),
        extension: str = ".nii.gz",
        extension_key: str = "result_extension",
        visible_key: str | None = "pred_visible",
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        if not (isinstance(radius_mm, (int, float)) and math.isfinite(radius_mm) and radius_mm > 0):
            raise InputError(f"radius_mm must be a positive number, got {radius_mm!r}.")
        self.ref_key, self.radius_mm = ref_key, float(radius_mm)
        self.output_keys = [output_keys] if isinstance(output_keys, str) else list(output_keys)
        self.extension, self.extension_key, self.visible_key = extension, extension_key, visible_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[self.ref_key]
            dims = image.ndim - 1
            shape = loaded_shape(image, dims)
            source = torch.as_tensor(image.meta.get("source_affine", image.affine)).double().cpu()
            spacing = affine_spacing(source, dims).numpy()
            pixels = torch.as_tensor(d[key]).double().cpu().numpy().copy()
            if self.visible_key is not None and self.visible_key in d:
                pixels[~np.asarray(d[self.visible_key], bool)] = np.nan  # left out of the label image
            labels = landmark_label_map(pixels, shape, spacing, self.radius_mm)
            label = MetaTensor(torch.from_numpy(labels), affine=source.clone())
            for output_key in self.output_keys:
                d[output_key] = label
            asked = d.get(self.extension_key)
            if asked and str(asked).lower().endswith(LOSSY_SUFFIXES):
                raise InputError(
                    f"{image_filename(image)}: a label image cannot be saved as {asked} (lossy); ask for .nii.gz, "
                    ".nrrd or .png."
                )
            if not asked:
                d[self.extension_key] = self.extension
        return d
