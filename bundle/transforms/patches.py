"""Patches around landmarks, for the refinement stage: where a patch lies (its affine), its pixels, and the patches
that train the refiner.

A patch is a small grid of ``patch_size`` pixels at a fine ``spacing`` (mm per pixel), centred on a point in world
millimetres, with the axes of the image it is cut from (its direction cosines), optionally rotated and scaled. Its
affine maps patch-grid coordinates to world mm, exactly as an image's MetaTensor affine does, so the codec, the
targets and the decoder work on a patch as they work on an image. Conventions: see :mod:`bundle`.

MONAI's crops (``SpatialCrop``, ``RandCropByLabelClassesd``) cut whole pixels at the image's own spacing, and its
``Affine`` resamples the whole image; a refiner needs K sub-pixel-centred patches at another spacing from one image,
cut in one interpolation, so this module writes it with ``torch.nn.functional.grid_sample``.
"""

from __future__ import annotations

import zlib
from typing import Hashable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Randomizable
from monai.transforms.utils import create_rotate

from ..errors import InputError
from ..geometry import affine_spacing
from ..io import image_filename

__all__ = ["patch_affines", "sample_patches", "RandLandmarkPatchesd"]


def patch_affines(
    centres: torch.Tensor,
    patch_size: Sequence[int],
    spacing: float,
    image_affine: torch.Tensor,
    rotations: torch.Tensor | None = None,
    scales: torch.Tensor | None = None,
) -> torch.Tensor:
    """The affines (N, D+1, D+1), float64, of N patches: patch-grid coordinates -> world mm.

    Patch n's centre, grid coordinate ``(patch_size - 1) / 2``, lies at ``centres[n]``; its axes are the image's
    (the columns of ``image_affine`` normalised), rotated by ``rotations[n]`` and scaled by ``scales[n]``, and one
    patch pixel is ``spacing * scales[n]`` mm on every axis.

    Args:
        centres: (N, D) world mm.
        patch_size: D pixel counts.
        spacing: mm per patch pixel (> 0).
        image_affine: the image's (D+1)x(D+1) or 4x4 affine (its direction cosines orient the patches).
        rotations: (N,) radians in 2D, (N, 3) in 3D (about x, y, z, as MONAI's ``create_rotate``); none if None.
        scales: (N,) factors (> 0); 1 if None.
    """
    centres = torch.as_tensor(centres, dtype=torch.float64).cpu()
    count, dims = centres.shape
    if len(patch_size) != dims or min(patch_size) < 1 or not spacing > 0:
        raise InputError(f"patch_size must be {dims} positive sizes and spacing > 0, got {patch_size}, {spacing}.")
    affine = torch.as_tensor(image_affine, dtype=torch.float64).cpu()[:dims, :dims]
    direction = affine / affine_spacing(affine, dims)  # columns of unit length
    half = (torch.tensor(patch_size, dtype=torch.float64) - 1) / 2
    out = torch.eye(dims + 1, dtype=torch.float64).repeat(count, 1, 1)
    for n in range(count):
        linear = direction * spacing
        if rotations is not None:
            angles = torch.as_tensor(rotations[n], dtype=torch.float64).reshape(-1).tolist()
            linear = linear @ torch.as_tensor(create_rotate(dims, angles)[:dims, :dims], dtype=torch.float64)
        if scales is not None:
            linear = linear * float(scales[n])
        out[n, :dims, :dims] = linear
        out[n, :dims, dims] = centres[n] - linear @ half
    return out


def sample_patches(
    image: torch.Tensor, image_affine: torch.Tensor, affines: torch.Tensor, patch_size: Sequence[int]
) -> torch.Tensor:
    """Cut N patches out of ``image`` (C, *S) by (bi/tri)linear interpolation: (N, C, *patch_size), float32, on the
    image's device; zero outside the image.

    Patch pixel ``p`` of patch n takes the image's value at grid coordinate
    ``inverse(image_affine) @ affines[n] @ [p, 1]``. All N patches go through one ``grid_sample`` call: their sample
    grids are stacked along the first patch axis, so the image is never copied N times.
    """
    dims = image.ndim - 1
    if len(patch_size) != dims or affines.shape[-2:] != (dims + 1, dims + 1):
        raise InputError(f"a {dims}D image needs {dims} patch sizes and ({dims + 1}, {dims + 1}) affines.")
    full = torch.eye(dims + 1, dtype=torch.float64)
    given = torch.as_tensor(image_affine, dtype=torch.float64).cpu()
    full[:dims, :dims], full[:dims, dims] = given[:dims, :dims], given[:dims, -1]
    to_image = torch.linalg.inv(full) @ torch.as_tensor(affines, dtype=torch.float64).cpu()  # (N, D+1, D+1)
    axes = torch.meshgrid(*(torch.arange(s, dtype=torch.float64) for s in patch_size), indexing="ij")
    points = torch.stack(axes, -1).reshape(-1, dims)  # (P, D) patch-grid coordinates
    coords = points @ to_image[:, :dims, :dims].transpose(1, 2) + to_image[:, None, :dims, dims]  # (N, P, D)
    sizes = torch.tensor(image.shape[1:], dtype=torch.float64)
    normalised = 2 * coords / (sizes - 1).clamp_min(1) - 1  # align_corners=True: index 0 -> -1, S - 1 -> +1
    grid = normalised.flip(-1).reshape(1, -1, *patch_size[1:], dims)  # grid_sample wants the last axis first
    values = image.as_tensor() if isinstance(image, MetaTensor) else image
    sampled = F.grid_sample(
        values[None].float(),
        grid.to(device=values.device, dtype=torch.float32),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=True,
    )  # (1, C, N * P_0, P_1, ...)
    channels = image.shape[0]
    return sampled.reshape(channels, affines.shape[0], *patch_size).transpose(0, 1).contiguous()


class RandLandmarkPatchesd(Randomizable, MapTransform):
    """Training and validation samples of the refiner: one patch per visible landmark of an image, around the truth
    displaced as the first stage would miss it. Returns a list of K dicts (MONAI's multi-sample convention, which
    ``list_data_collate`` flattens into the batch).

    Each dict is a copy of the input with ``keys`` replaced by a patch (a MetaTensor whose affine is the patch's,
    meta copied), ``landmark_index`` (the landmark k it is for) and ``patch_centre`` (D,) world mm. The landmarks stay
    in world mm, so the usual target transforms (:class:`LandmarksToGridd`, :class:`GaussianHeatmapd`) put every
    landmark that falls in the patch on the patch grid.

    The centre is ``landmarks[k] + offset``, the offset drawn per axis from a normal of ``offset_std_mm`` and clipped
    to ``max_offset_mm``: set them from the first stage's measured validation errors. With ``fixed`` the draws
    depend only on the image's file name (validation: the same patches at every epoch, whatever the order).

    Args:
        keys: the image key (channel-first MetaTensor with its affine; at the refiner's spacing or finer).
        patch_size: D pixel counts.
        spacing: mm per patch pixel.
        landmarks_key: (K, D) world mm, NaN rows not visible (no patch).
        offset_std_mm, max_offset_mm: the displacement of the centre from the truth, per axis.
        rotate_range: largest rotation in radians (uniform in +-); a number, or one per axis in 3D.
        scale_range: largest relative scale change (uniform in 1 +- it).
        fixed: draw from the file name instead of the transform's random state.
        seed: mixed into the file name's draws with ``fixed``.
    """

    def __init__(
        self,
        keys: KeysCollection,
        patch_size: Sequence[int],
        spacing: float,
        landmarks_key: str = "landmarks",
        offset_std_mm: float = 1.5,
        max_offset_mm: float = 6.0,
        rotate_range: float | Sequence[float] = 0.0,
        scale_range: float = 0.0,
        fixed: bool = False,
        seed: int = 0,
        allow_missing_keys: bool = False,
    ):
        MapTransform.__init__(self, keys, allow_missing_keys)
        if offset_std_mm < 0 or max_offset_mm < 0 or not 0 <= scale_range < 1:
            raise InputError("offset_std_mm and max_offset_mm must be >= 0, scale_range in [0, 1).")
        self.patch_size = [int(s) for s in patch_size]
        self.spacing = float(spacing)
        self.landmarks_key = landmarks_key
        self.offset_std_mm, self.max_offset_mm = float(offset_std_mm), float(max_offset_mm)
        self.rotate_range = rotate_range
        self.scale_range = float(scale_range)
        self.fixed, self.seed = bool(fixed), int(seed)

    def randomize(self, data=None) -> None:  # the draws happen per image in __call__
        pass

    def _draws(self, rng: np.random.RandomState, count: int, dims: int) -> tuple:
        offsets = np.clip(rng.normal(0.0, self.offset_std_mm, (count, dims)), -self.max_offset_mm, self.max_offset_mm)
        angle_count = 1 if dims == 2 else 3
        ranges = np.broadcast_to(np.asarray(self.rotate_range, dtype=np.float64).reshape(-1), (angle_count,))
        rotations = rng.uniform(-1.0, 1.0, (count, angle_count)) * ranges
        scales = 1.0 + rng.uniform(-self.scale_range, self.scale_range, count)
        return torch.as_tensor(offsets), torch.as_tensor(rotations), torch.as_tensor(scales)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> list[dict]:
        d = dict(data)
        key = self.first_key(d)
        image = d[key]
        landmarks = torch.as_tensor(d[self.landmarks_key], dtype=torch.float64)
        dims = image.ndim - 1
        visible = torch.isfinite(landmarks).all(-1).nonzero().flatten()
        if self.fixed:
            name = image_filename(image).encode()
            rng = np.random.RandomState([self.seed, zlib.crc32(name)])
        else:
            rng = self.R
        offsets, rotations, scales = self._draws(rng, len(visible), dims)
        centres = landmarks[visible] + offsets
        affines = patch_affines(centres, self.patch_size, self.spacing, image.affine, rotations, scales)
        patches = sample_patches(image, image.affine, affines, self.patch_size)
        samples = []
        for n, k in enumerate(visible.tolist()):
            sample = dict(d)
            meta = {k: v for k, v in image.meta.items() if k != "affine"}
            sample[key] = MetaTensor(
                patches[n], affine=affines[n], meta={**meta, "spatial_shape": list(self.patch_size)}
            )
            sample["landmark_index"] = k
            sample["patch_centre"] = centres[n]
            samples.append(sample)
        return samples
