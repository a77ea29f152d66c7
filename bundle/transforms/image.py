"""Image transforms of the preprocessing: one grey channel, the expected number of spatial axes, the pixel spacing
in the affine, and no more pixels than needed. Conventions: see :mod:`bundle`."""

from __future__ import annotations

import logging
import math
from typing import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Resize, SpatialPad, SqueezeDim

from ..errors import InputError
from ..geometry import affine_spacing
from ..io import DICOM_SUFFIXES, NO_GEOMETRY_SUFFIXES, dicom_spacing, image_filename

__all__ = [
    "AsGreyscaled",
    "FinitePixelsd",
    "SqueezeSpatiald",
    "PixelSpacingd",
    "ShrinkLarged",
    "ResampleToSpacingd",
    "FitToGridd",
]

logger = logging.getLogger(__name__)


class FinitePixelsd(MapTransform):
    """Refuse an image holding NaN or infinite values, naming the file.

    Why: one NaN pixel turns the whole image into NaN at intensity scaling, and the network's output with it; the
    decoder then puts every landmark at the grid's first pixel with a NaN confidence, and the run would succeed.
    (MONAI's readers pass such values through; NIfTI and MHA files from registration or resampling tools can hold
    them outside the field of view.) :func:`bundle.check_datalist` runs it on every entry before training,
    evaluation or inference starts; callers that skip that check (MONAI Label) still get an error, from
    :class:`DecodeLandmarksd`, which refuses a non-finite network output.

    Raises:
        ValueError: the image has non-finite values.
    """

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            image = torch.as_tensor(d[key])
            if image.is_floating_point():
                bad = int((~torch.isfinite(image)).sum())
                if bad:
                    raise InputError(
                        f"{image_filename(d[key])}: {bad} of {image.numel()} values are NaN or infinite; replace them "
                        "(e.g. with the background value) before detection."
                    )
        return d


class AsGreyscaled(MapTransform):
    """Average the channels of a channel-first image into one (an RGB JPEG or BMP of a radiograph, R = G = B).

    An alpha channel is dropped first, not averaged in: 2 channels are grey + alpha, 4 are RGB + alpha (PNG), and
    transparency is not intensity (averaging it in would shift the grey values, and with them the landmarks). A
    one-channel image passes unchanged. MONAI has no such transform; the MetaTensor's metadata is kept.
    """

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            channels = d[key].shape[0]
            if channels in (2, 4):
                d[key] = d[key][: channels - 1]
            if d[key].shape[0] > 1:
                d[key] = d[key].float().mean(dim=0, keepdim=True)
        return d


class SqueezeSpatiald(MapTransform):
    """Drop trailing spatial axes of size 1 beyond ``spatial_dims`` (a 2D radiograph stored as 3D with Z = 1, as the
    Digital Hand Atlas ``.mha`` files are), with MONAI's :class:`SqueezeDim`, which keeps the affine consistent.

    Raises:
        InputError: the image has fewer spatial axes than ``spatial_dims`` (a 2D picture for a 3D model), or more that
            are not of size 1.
    """

    def __init__(self, keys: KeysCollection, spatial_dims: int = 2, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.spatial_dims = spatial_dims

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            while image.ndim - 1 > self.spatial_dims and image.shape[-1] == 1:
                image = SqueezeDim(dim=-1, update_meta=True)(image)
            if image.ndim - 1 != self.spatial_dims:
                raise InputError(
                    f"{image_filename(image)}: a {image.ndim - 1}D image of shape {tuple(image.shape[1:])}; this "
                    f"model takes {self.spatial_dims}D images."
                )
            d[key] = image
        return d


class PixelSpacingd(MapTransform):
    """Record the pixel spacing in the image's affine, and remember the loaded affine as ``meta["source_affine"]``.

    PNG/JPEG/BMP/TIFF carry no spacing (MONAI loads them with an identity affine): the datalist's ``spacing`` (mm per
    pixel, array-axis order x, y) is written into the affine's diagonal. A 2D DICOM's spacing comes from its header's
    PixelSpacing or else ImagerPixelSpacing (:func:`bundle.io.dicom_spacing`; ITK reads only the latter for DX
    images), and one with neither counts as a picture without geometry. Formats with geometry (NIfTI, MHA, DICOM) keep
    their header's affine; a ``spacing`` given beside them must agree with it (relative 1e-3), else the entry is
    wrong and this raises. A geometry-less image without ``spacing`` raises, unless ``default_spacing`` is set: then
    that spacing is *assumed* and a warning is logged once (millimetres on an assumed spacing are only as right as
    the assumption; :class:`~bundle.transforms.LandmarkDetector` may replace it by one estimated from the anatomy).

    ``meta["spacing_source"]`` says where the spacing came from, for the outputs: ``"file"`` (the header),
    ``"given"`` (the entry's ``spacing``) or ``"assumed"``.

    Args:
        keys: image keys (channel-first MetaTensors).
        spacing_key: the datalist field with the spacing.
        default_spacing: assumed for geometry-less images whose entry has no ``spacing`` (inference on bare image
            paths, e.g. the shipped cephalometric model assumes 0.1 mm/px); never applied to files with geometry.
    """

    def __init__(
        self,
        keys: KeysCollection,
        spacing_key: str = "spacing",
        default_spacing: Sequence[float] | None = None,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.spacing_key = spacing_key
        self.default_spacing = default_spacing
        self._warned = False

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            if not isinstance(image, MetaTensor):
                raise TypeError(f"{key} must be a MetaTensor (load it with LoadImaged), got {type(image).__name__}.")
            dims = image.ndim - 1
            affine = image.affine.clone().double()
            has_geometry = not image_filename(image).lower().endswith(NO_GEOMETRY_SUFFIXES)
            if image_filename(image).lower().endswith(DICOM_SUFFIXES):
                from_header = dicom_spacing(image) if dims == 2 else None
                if dims == 2 and from_header is None:
                    has_geometry = False  # a DICOM picture without a spacing tag: ITK's 1 mm would be a guess
                elif from_header is not None:  # the header's spacing, along the directions ITK read
                    directions = affine[:dims, :dims] / affine_spacing(affine, dims)
                    affine[:dims, :dims] = directions * torch.as_tensor(from_header[0], dtype=torch.float64)
                    image.affine = affine
            spacing = d.get(self.spacing_key)
            source = "file" if has_geometry else "given"
            if spacing is None and not has_geometry:
                if self.default_spacing is None:
                    raise InputError(
                        f"{image_filename(image)}: this format has no pixel spacing; give 'spacing' in the datalist."
                    )
                spacing, source = self.default_spacing, "assumed"
                if not self._warned:
                    logger.warning(
                        f"{image_filename(image)} has no pixel spacing: assuming {list(spacing)} mm per pixel (x, y) "
                        "for it and every such image; outputs say 'spacing_source'. Give --spacing to set it."
                    )
                    self._warned = True
            if spacing is not None:
                spacing_t = torch.as_tensor(spacing, dtype=torch.float64).flatten()
                if spacing_t.numel() != dims or not bool(torch.all(spacing_t > 0)):
                    raise InputError(
                        f"{image_filename(image)}: spacing must be {dims} positive numbers, got {spacing}."
                    )
                if has_geometry:
                    current = affine_spacing(affine, dims)
                    if not torch.allclose(current, spacing_t, rtol=1e-3):
                        raise InputError(
                            f"{image_filename(image)}: datalist spacing {spacing_t.tolist()} disagrees with the file's "
                            f"{current.tolist()}."
                        )
                else:
                    affine[:dims, :dims] = torch.diag(spacing_t)
                    image.affine = affine
            image.meta["source_affine"] = image.affine.clone()
            image.meta["spacing_source"] = source
            d[key] = image
        return d


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
            raise InputError(f"max_pixels must be positive, got {max_pixels}.")
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


class ResampleToSpacingd(MapTransform):
    """Average an image down to (about) ``spacing`` mm per pixel on every axis finer than that, with MONAI's
    :class:`Resize` in ``"area"`` mode (a box average: the anti-aliased reduction), which updates the affine. Axes
    already at ``spacing`` or coarser keep their pixels (no up-sampling).

    The new size is ``round(size * current / spacing)`` per axis, so the spacing reached is within half a pixel's
    rounding of ``spacing`` and exactly what the affine says. It makes the refiner's fine image and, from that, the
    first stage's grid (an anti-aliased resize of a few hundred thousand pixels instead of millions), so the image's
    pixel spacing, not its pixel count, decides what the networks see. MONAI's :class:`Spacing` would interpolate
    without averaging (aliasing at a 3x reduction).

    Args:
        keys: image keys (channel-first MetaTensors whose affine holds the spacing: after :class:`PixelSpacingd`).
        spacing: mm per pixel (> 0).
    """

    def __init__(self, keys: KeysCollection, spacing: float, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        if not spacing > 0:
            raise InputError(f"spacing must be > 0 mm, got {spacing}.")
        self.spacing = float(spacing)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            shape = image.shape[1:]
            current = affine_spacing(image.affine, len(shape)).tolist()
            size = [max(1, round(s * c / self.spacing)) if c < self.spacing else s for s, c in zip(shape, current)]
            if list(size) != list(shape):
                d[key] = Resize(spatial_size=size, mode="area")(image)
        return d


class FitToGridd(MapTransform):
    """Resize an image onto the network's grid with square grid pixels, keeping its aspect ratio, and pad the rest
    of the grid with zeros (centred), with MONAI's :class:`Resize` (anti-aliased) and :class:`SpatialPad`, which
    update the affine.

    The grid pixel is ``grid_spacing`` mm when the image's spacing is known (``meta["spacing_source"]`` is not
    ``"assumed"``), so that anatomy has the same size in grid pixels whatever the machine's pixel size, as in
    training; an image too large for the grid at that spacing, or one whose spacing was assumed (its size in mm is
    then a guess), is scaled to fit the grid instead. A stretch to a fixed grid, as before, would distort an image of
    another aspect ratio and everything the network learnt about shapes with it.

    Args:
        keys: image keys (channel-first MetaTensors whose affine holds the spacing: after :class:`PixelSpacingd`).
        grid_size: the grid, in MONAI's array order.
        grid_spacing: mm per grid pixel for images of known spacing; None: every image is fitted to the grid.
    """

    def __init__(
        self,
        keys: KeysCollection,
        grid_size: Sequence[int],
        grid_spacing: float | None = None,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.grid_size = [int(s) for s in grid_size]
        if min(self.grid_size) < 1 or (grid_spacing is not None and not grid_spacing > 0):
            raise InputError(f"grid_size must be positive and grid_spacing > 0, got {grid_size}, {grid_spacing}.")
        self.grid_spacing = None if grid_spacing is None else float(grid_spacing)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            shape = image.shape[1:]
            if len(shape) != len(self.grid_size):
                raise InputError(f"{image_filename(image)}: {len(shape)}D image for a {len(self.grid_size)}D grid.")
            extent = [s * c for s, c in zip(shape, affine_spacing(image.affine, len(shape)).tolist())]  # mm
            fit = max(e / g for e, g in zip(extent, self.grid_size))
            known = self.grid_spacing is not None and image.meta.get("spacing_source") != "assumed"
            scale = max(fit, self.grid_spacing) if known else fit
            size = [min(g, max(1, round(e / scale))) for e, g in zip(extent, self.grid_size)]
            image = Resize(spatial_size=size, mode="bilinear", anti_aliasing=True)(image)
            d[key] = SpatialPad(spatial_size=self.grid_size, method="symmetric")(image)
        return d
