"""Dictionary transforms that carry landmarks through MONAI's pipeline.

The image is the only thing resampled. Landmarks stay in world millimetres (key ``landmarks``) and are mapped onto
the current grid through the image's MetaTensor affine, which MONAI updates with every spatial transform (resize,
spacing, random affine), so they keep sub-pixel precision. Decoded predictions go back to world millimetres through
the same affine, and to original-image pixels through the affine recorded when the image was loaded
(``meta["source_affine"]``). Conventions: see :mod:`bundle`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, SqueezeDim

from ..codecs import GaussianHeatmapCodec
from ..geometry import map_points
from ..io import NO_GEOMETRY_SUFFIXES, Landmarks, output_paths, read_landmarks, write_landmarks
from ..workflow import as_bool, refuse_existing

__all__ = [
    "AsGreyscaled",
    "SqueezeSpatiald",
    "PixelSpacingd",
    "LoadLandmarksd",
    "LandmarksToGridd",
    "GaussianHeatmapd",
    "DecodeLandmarksd",
    "SaveLandmarksd",
]

logger = logging.getLogger(__name__)


def _filename(image: MetaTensor) -> str:
    return str(image.meta.get("filename_or_obj", "<image>"))


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
        ValueError: the image has more spatial axes than ``spatial_dims`` and they are not of size 1.
    """

    def __init__(self, keys: KeysCollection, spatial_dims: int = 2, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.spatial_dims = spatial_dims

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            while image.ndim - 1 > self.spatial_dims:
                if image.shape[-1] != 1:
                    raise ValueError(
                        f"{_filename(image)}: {image.ndim - 1} spatial dims of shape {tuple(image.shape[1:])}, "
                        f"expected {self.spatial_dims}."
                    )
                image = SqueezeDim(dim=-1, update_meta=True)(image)
            d[key] = image
        return d


class PixelSpacingd(MapTransform):
    """Record the pixel spacing in the image's affine, and remember the loaded affine as ``meta["source_affine"]``.

    PNG/JPEG/BMP/TIFF carry no spacing (MONAI loads them with an identity affine): the datalist's ``spacing`` (mm per
    pixel, array-axis order x, y) is written into the affine's diagonal. Formats with geometry (NIfTI, MHA, DICOM) keep
    their header's affine; a ``spacing`` given beside them must agree with it (relative 1e-3), else the entry is
    wrong and this raises. A geometry-less image without ``spacing`` raises, unless ``default_spacing`` is set: then
    that spacing is *assumed*, ``meta["spacing_assumed"]`` says so (``False`` otherwise) and a warning is logged once,
    so that outputs can record it (millimetres on an assumed spacing are only as right as the assumption).

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
            has_geometry = not _filename(image).lower().endswith(NO_GEOMETRY_SUFFIXES)
            spacing, assumed = d.get(self.spacing_key), False
            if spacing is None and not has_geometry:
                if self.default_spacing is None:
                    raise ValueError(
                        f"{_filename(image)}: this format has no pixel spacing; give 'spacing' in the datalist."
                    )
                spacing, assumed = self.default_spacing, True
                if not self._warned:
                    logger.warning(
                        f"{_filename(image)} has no pixel spacing: assuming {list(spacing)} mm per pixel (x, y) for "
                        "it and every such image; outputs say 'spacing_assumed'. Give --spacing to set it."
                    )
                    self._warned = True
            if spacing is not None:
                spacing_t = torch.as_tensor(spacing, dtype=torch.float64).flatten()
                if spacing_t.numel() != dims or not bool(torch.all(spacing_t > 0)):
                    raise ValueError(f"{_filename(image)}: spacing must be {dims} positive numbers, got {spacing}.")
                if has_geometry:
                    current = torch.linalg.vector_norm(affine[:dims, :dims], dim=0)
                    if not torch.allclose(current, spacing_t, rtol=1e-3):
                        raise ValueError(
                            f"{_filename(image)}: datalist spacing {spacing_t.tolist()} disagrees with the file's "
                            f"{current.tolist()}."
                        )
                else:
                    affine[:dims, :dims] = torch.diag(spacing_t)
                    image.affine = affine
            image.meta["source_affine"] = image.affine.clone()
            image.meta["spacing_assumed"] = assumed
            d[key] = image
        return d


class LoadLandmarksd(MapTransform):
    """Read each landmark file into a (K, D) float64 tensor of world millimetres (NaN rows: not visible).

    Args:
        keys: keys holding landmark file paths.
        num_landmarks: K; a file with another count raises.
        spatial_dims: D.
        spacing_key: the datalist field with the pixel spacing, needed by pixel-based formats (ISBI ``.txt``).
    """

    def __init__(
        self,
        keys: KeysCollection,
        num_landmarks: int,
        spatial_dims: int = 2,
        spacing_key: str = "spacing",
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.num_landmarks = num_landmarks
        self.spatial_dims = spatial_dims
        self.spacing_key = spacing_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            landmarks = read_landmarks(
                d[key], self.num_landmarks, spacing=d.get(self.spacing_key), spatial_dims=self.spatial_dims
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


class GaussianHeatmapd(MapTransform):
    """Heatmap target (K, *S) float32 from grid landmarks, on the reference image's grid and device, made by the
    heatmap codec (its sigma, its truncation): sub-pixel centre, peak 1, zero channel for a landmark outside the grid.

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


class DecodeLandmarksd(MapTransform):
    """Heatmaps (K, *S) -> landmarks in world mm, in original-image pixels, and a confidence per landmark.

    The grid points come from the heatmap codec's :meth:`~bundle.GaussianHeatmapCodec.decode` (its method, its DARK
    blur); world = the reference image's affine applied to them; pixels = the inverse of ``meta["source_affine"]``
    (set by :class:`PixelSpacingd`) applied to world (x = column in 2D). Heatmaps must be probabilities (apply a
    sigmoid to logits first).

    Writes ``{prefix}landmarks`` (K, D) world mm, ``{prefix}pixels`` (K, D) and ``{prefix}confidence`` (K,),
    all float64, with ``prefix`` = ``"pred_"`` by default.

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
            grid, confidence = _codec_for(self.codec, heatmaps.ndim - 1).decode(heatmaps)
            world = map_points(grid.double(), reference.affine, invert=False)
            source = reference.meta.get("source_affine", reference.affine)
            d[f"{self.prefix}landmarks"] = world
            d[f"{self.prefix}pixels"] = map_points(world, source, invert=True)
            d[f"{self.prefix}confidence"] = confidence.double().cpu()
        return d


def _codec_for(codec: GaussianHeatmapCodec | None, spatial_dims: int) -> GaussianHeatmapCodec:
    if codec is None:
        return GaussianHeatmapCodec(spatial_dims)
    if codec.spatial_dims != spatial_dims:
        raise ValueError(f"the heatmap codec is {codec.spatial_dims}D, the data {spatial_dims}D.")
    return codec


class SaveLandmarksd(MapTransform):
    """Write each image's predicted landmarks: ``<stem>.json``, ``<stem>.mrk.json`` (3D Slicer) and, in 2D,
    ``<stem>_overlay.png`` (the original image with the numbered landmarks) in ``output_dir``.

    The JSON holds ``{"image": path, "spacing": [...] (mm per pixel used), "spacing_assumed": bool, "landmarks":
    [{"index": k, "name": ..., "world": [...] (mm), "pixel": [...] (original-image pixels, x = column), "confidence": c,
    "visible": true}, ...]}``, from the keys that :class:`DecodeLandmarksd` writes. If any of an image's files exists,
    nothing is written for it and this raises, unless ``overwrite``.

    Args:
        keys: the decoded world-landmark key (``pred_landmarks``); ``pred_pixels``/``pred_confidence`` sit beside it.
        output_dir: destination folder.
        landmark_names: K names.
        ref_key: the image (for its file name and spacing).
        overlay: write the 2D overlay PNG.
        overwrite: replace existing files.
    """

    def __init__(
        self,
        keys: KeysCollection,
        output_dir: str,
        landmark_names: Sequence[str],
        ref_key: str = "image",
        prefix: str = "pred_",
        overlay: bool = True,
        overwrite: bool = False,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.output_dir = Path(output_dir)
        self.landmark_names = [str(n) for n in landmark_names]
        self.ref_key, self.prefix = ref_key, prefix
        self.overlay, self.overwrite = as_bool(overlay, "overlay"), as_bool(overwrite, "overwrite")

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[self.ref_key]
            source = torch.as_tensor(image.meta.get("source_affine", image.affine)).double().cpu()
            dims = image.ndim - 1
            paths = output_paths(_filename(image), self.output_dir, overlay=dims == 2 and self.overlay)
            refuse_existing(paths, self.overwrite, "pass --overwrite true or another --output_dir.")
            landmarks = Landmarks(torch.as_tensor(d[key]).double().numpy(), self.landmark_names)
            pixels = torch.as_tensor(d[f"{self.prefix}pixels"]).double()
            extra = {
                "pixel": pixels.tolist(),
                "confidence": torch.as_tensor(d[f"{self.prefix}confidence"]).double().tolist(),
                "_top": {
                    "image": _filename(image),
                    "spacing": torch.linalg.vector_norm(source[:dims, :dims], dim=0).tolist(),
                    "spacing_assumed": bool(image.meta.get("spacing_assumed", False)),
                },
            }
            # each file to a hidden temporary name first, renamed when all are written: a failure part-way leaves
            # no half-written file, and the JSON (the result a re-run looks for) is renamed last
            partial = [p.with_name(f".{p.name}.partial") for p in paths]
            self.output_dir.mkdir(parents=True, exist_ok=True)
            try:
                if len(paths) == 3:
                    draw_overlay(_filename(image), pixels.numpy(), partial[2])
                write_landmarks(partial[1], landmarks, overwrite=True, fmt="mrk.json")
                write_landmarks(partial[0], landmarks, overwrite=True, fmt="json", extra=extra)
            except BaseException:
                for p in partial:
                    p.unlink(missing_ok=True)
                raise
            for temporary, final in reversed(list(zip(partial, paths))):
                os.replace(temporary, final)
        return d


def draw_overlay(image_path: str, pixels, output: Path, radius: int = 12) -> None:
    """Save the 2D image at ``image_path`` (any format MONAI reads) as a PNG with numbered red markers at
    ``pixels`` (K, 2), original-image pixels with x = column."""
    from monai.transforms import LoadImage, ScaleIntensity  # local: only inference draws
    from PIL import Image, ImageDraw

    image = LoadImage(image_only=True, ensure_channel_first=True)(image_path)
    image = AsGreyscaled("image")({"image": image})["image"]
    array = ScaleIntensity(minv=0.0, maxv=255.0)(image)[0].squeeze().cpu().numpy()
    picture = Image.fromarray(array.T.astype("uint8")).convert("RGB")  # MONAI's [x, y] -> rows, columns
    draw = ImageDraw.Draw(picture)
    width = max(1, picture.size[0] // 600)
    for k, (x, y) in enumerate(pixels):
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], outline=(255, 0, 0), width=width)
        draw.text((x + radius + 2, y - radius), str(k + 1), fill=(255, 64, 64))
    picture.save(output, format="PNG")
