"""Point mapping, the one place where coordinates change frame: grid or pixel indices <-> world millimetres.

Everything that converts between pixels and millimetres goes through :func:`map_points` with an affine: the image's
MetaTensor affine for grids and images, :func:`spacing_affine` for a bare pixel spacing (landmark files in pixels,
reports). Conventions: see :mod:`bundle`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from monai.data.utils import to_affine_nd
from monai.transforms import ApplyTransformToPoints
from monai.utils import convert_to_tensor

from .errors import InputError

__all__ = ["map_points", "spacing_affine", "affine_spacing", "array_frame"]


def map_points(points, affine, invert: bool = False) -> torch.Tensor:
    """(K, D) points through a (D+1)x(D+1) or 4x4 affine (MONAI gives 2D images a 4x4 one): ``affine @ [p, 1]``, or
    its inverse with ``invert``. Float64 on the CPU (the image itself may live on the GPU); NumPy arrays are taken.

    MONAI's :class:`ApplyTransformToPoints` does the work; this adapts what it needs (plain tensors, 4x4 affines).
    """
    # plain tensors: a MetaTensor returned by an earlier mapping carries that mapping in its metadata, and
    # ApplyTransformToPoints would apply it again instead of the affine given here
    points = convert_to_tensor(points, track_meta=False).detach().cpu().double()
    affine = convert_to_tensor(affine, track_meta=False).detach().cpu().double()
    # ApplyTransformToPoints composes with 4x4 matrices: a 3x3 (2D after SqueezeDim) goes to 4x4, a 4x4 stays
    affine = convert_to_tensor(to_affine_nd(3, affine), track_meta=False)
    mapped = ApplyTransformToPoints(dtype=torch.float64, affine=affine, invert_affine=invert)(points[None])
    return convert_to_tensor(mapped, track_meta=False)[0]


def spacing_affine(spacing: Sequence[float]) -> torch.Tensor:
    """The (D+1)x(D+1) affine of a D-dimensional image with pixel ``spacing`` (mm per pixel, array-axis order) and its
    first pixel's centre at the origin: world = pixel * spacing, as MONAI reads PNG/JPEG/BMP with a given spacing.

    Raises:
        ValueError: the spacing is not D positive, finite numbers.
    """
    spacing = np.asarray(spacing, dtype=np.float64).reshape(-1)
    if spacing.size not in (1, 2, 3) or not np.all(np.isfinite(spacing) & (spacing > 0)):
        raise InputError(f"spacing must be 1 to 3 positive numbers (mm per pixel), got {spacing.tolist()}.")
    return torch.diag(torch.as_tensor(np.append(spacing, 1.0)))


def affine_spacing(affine, spatial_dims: int) -> torch.Tensor:
    """The pixel spacing (mm per pixel, array-axis order) of a grid with this affine: the lengths of its first
    ``spatial_dims`` columns. Float64 on the CPU."""
    affine = convert_to_tensor(affine, track_meta=False).detach().cpu().double()
    return torch.linalg.vector_norm(affine[:spatial_dims, :spatial_dims], dim=0)


def array_frame(points, affine) -> torch.Tensor:
    """(..., D) world mm -> millimetres along the array axes of the grid with this affine: grid index times spacing.

    This is the frame a network sees: a mirrored or rotated image gives a mirrored or rotated configuration in it,
    whatever the file's header says, which is what shape models judge (:mod:`bundle.shape`). Float64 on the CPU.
    """
    points = convert_to_tensor(points, track_meta=False).detach().cpu().double()
    dims = points.shape[-1]
    grid = map_points(points.reshape(-1, dims), affine, invert=True)
    return (grid * affine_spacing(affine, dims)).reshape(points.shape)
