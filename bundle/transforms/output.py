"""Prediction outputs: the per-image result record, written as landmark files (JSON, 3D Slicer markups) and a 2D
overlay picture, or handed to MONAI Label in memory."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from ..errors import InputError
from ..geometry import affine_spacing, map_points
from ..io import (
    Landmarks,
    image_filename,
    landmarks_record,
    loaded_shape,
    output_paths,
    picture_spacing,
    write_landmarks,
)
from ..io.files import refuse_existing
from ..switches import as_bool
from .image import AsGreyscaled

__all__ = ["LandmarkResultd", "SaveLandmarksd", "draw_overlay"]


class SaveLandmarksd(MapTransform):
    """Write each image's predicted landmarks: ``<stem>.json``, ``<stem>.mrk.json`` (3D Slicer) and, in 2D,
    ``<stem>_overlay.png`` (the original image with the numbered landmarks) in ``output_dir``.

    The JSON holds ``{"image": path, "units": {...}, "spacing": [...] (mm per pixel used), "spacing_source":
    "file" | "given" | "estimated" | "assumed", "orientation": "as_acquired" | "mirrored" | "rotated_90" | ...,
    "plausible": bool,
    "error_radius_coverage": 0.9, "landmarks": [{"index": k, "name": ..., "world": [...] (mm), "pixel": [...]
    (original-image pixels, x = column), "confidence": c, "visible": bool, "error_radius_mm": r, "review": bool,
    "review_reasons": [...]}, ...]}``, from the keys that :class:`DecodeLandmarksd` and the trust transforms
    (:class:`FlagLandmarksd`, ...) write; fields they did not write are null or false. If any of an image's files
    exists, nothing is written for it and this raises, unless ``overwrite``. The overlay shows the image in the file's
    own orientation, each landmark numbered by its JSON index with a circle of its error radius, flagged landmarks
    in another colour, and a legend of the names.

    Args:
        keys: the decoded world-landmark key (``pred_landmarks``); ``pred_pixels``/``pred_confidence`` sit beside it.
        output_dir: destination folder.
        landmark_names: K names.
        ref_key: the image (for its file name and spacing).
        overlay: write the 2D overlay PNG.
        overlay_key: the image the overlay is drawn on, as it is in memory (the landmarks go onto it through its
            affine): the inference config hands it the refiner's fine copy (0.3 mm per pixel, a ninth of an ISBI
            image's pixels), so that no image is read twice and the PNG costs milliseconds; None: ``ref_key``'s.
        overlay_size: the overlay's long side at most, in pixels (the original image's size below it).
        tracing: pairs of landmark names to join by a line in the overlay (a cephalometric tracing: SN, FH, ...).
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
        overlay_key: str | None = None,
        overlay_size: int = 1200,
        tracing: Sequence[Sequence[str]] = (),
        overwrite: bool = False,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        unknown = [n for pair in tracing for n in pair if n not in list(landmark_names)]
        if unknown or any(len(pair) != 2 for pair in tracing):
            raise InputError(f"tracing must be pairs of the landmark names; unknown {unknown}.")
        self.tracing = [(list(landmark_names).index(a), list(landmark_names).index(b)) for a, b in tracing]
        if overlay_size < 64:
            raise InputError(f"overlay_size must be at least 64 pixels, got {overlay_size}.")
        self.overlay_key, self.overlay_size = overlay_key or ref_key, int(overlay_size)
        self.output_dir = Path(output_dir)
        self.landmark_names = [str(n) for n in landmark_names]
        self.ref_key, self.prefix = ref_key, prefix
        self.overlay, self.overwrite = as_bool(overlay, "overlay"), as_bool(overwrite, "overwrite")

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[self.ref_key]
            dims = image.ndim - 1
            paths = output_paths(image_filename(image), self.output_dir, overlay=dims == 2 and self.overlay)
            refuse_existing(paths, self.overwrite, "pass --overwrite true or another --output_dir.")
            landmarks, extra = _record_parts(d, key, image, self.landmark_names, self.prefix)
            # each file to a hidden temporary name first, renamed when all are written: a failure part-way leaves
            # no half-written file, and the JSON (the result a re-run looks for) is renamed last
            partial = [p.with_name(f".{p.name}.partial") for p in paths]
            self.output_dir.mkdir(parents=True, exist_ok=True)
            try:
                if len(paths) == 3:
                    picture = d[self.overlay_key]
                    on_picture = map_points(torch.as_tensor(d[key]), picture.affine, invert=True)
                    spacing = float(affine_spacing(picture.affine, 2).mean())
                    radii = [None if r is None else r / spacing for r in extra["error_radius_mm"]]
                    draw_overlay(
                        picture,
                        on_picture.numpy(),
                        partial[2],
                        names=self.landmark_names,
                        radii=radii,
                        review=extra["review"],
                        file_affine=image.meta.get("source_affine"),
                        long_side=min(self.overlay_size, max(loaded_shape(image, 2))),
                        lines=self.tracing,
                    )
                shown = Landmarks(landmarks.coordinates, landmarks.names, np.asarray(extra["visible"], bool))
                write_landmarks(partial[1], shown, True, "mrk.json", picture_spacing=picture_spacing(image))
                write_landmarks(partial[0], landmarks, overwrite=True, fmt="json", extra=extra)
            except BaseException:
                for p in partial:
                    p.unlink(missing_ok=True)
                raise
            for temporary, final in reversed(list(zip(partial, paths))):
                os.replace(temporary, final)
        return d


class LandmarkResultd(MapTransform):
    """Put each image's result record under ``output_key`` as a JSON-ready dict, writing nothing: the content of the
    ``<stem>.json`` that :class:`SaveLandmarksd` writes (see there). MONAI Label returns the
    ``result`` key of its post-processed data as the result JSON of ``/infer``.

    Args:
        keys: the decoded world-landmark key (``pred_landmarks``); ``pred_pixels``/``pred_confidence`` sit beside it.
        landmark_names: K names.
        ref_key: the image (for its file name and spacing).
        output_key: where the record goes.
    """

    def __init__(
        self,
        keys: KeysCollection,
        landmark_names: Sequence[str],
        ref_key: str = "image",
        prefix: str = "pred_",
        output_key: str = "result",
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.landmark_names = [str(n) for n in landmark_names]
        self.ref_key, self.prefix, self.output_key = ref_key, prefix, output_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            parts = _record_parts(d, key, d[self.ref_key], self.landmark_names, self.prefix)
            d[self.output_key] = landmarks_record(*parts)
        return d


UNITS = {
    "world": "mm, the image's world frame (pixel x spacing for pictures without geometry)",
    "pixel": "pixels of the image file, x = column, y = row (z = slice), centre of the first pixel at 0",
    "spacing": "mm per pixel, array axes x, y (, z)",
    "error_radius_mm": "mm: the true landmark lies within it with probability error_radius_coverage",
}


def _record_parts(data: Mapping, key: str, image, names: list, prefix: str) -> tuple:
    """(:class:`Landmarks`, ``extra``) as :func:`bundle.io.write_landmarks` takes them for the JSON format: the
    landmarks as decoded (a point outside the image keeps its coordinates, with ``"visible": false``), and the
    trust fields that :class:`~bundle.transforms.FlagLandmarksd` and the others wrote, where they did."""
    source = torch.as_tensor(image.meta.get("source_affine", image.affine)).double().cpu()
    dims = image.ndim - 1
    world = torch.as_tensor(data[key]).double().cpu().numpy()
    count = len(world)
    landmarks = Landmarks(np.nan_to_num(world), names)
    radius = data.get(f"{prefix}error_radius")
    radius = [None] * count if radius is None else [_finite(v) for v in torch.as_tensor(radius).double().tolist()]
    visible = data.get(f"{prefix}visible")
    review = data.get(f"{prefix}review")
    extra = {
        "pixel": torch.as_tensor(data[f"{prefix}pixels"]).double().tolist(),
        "confidence": torch.as_tensor(data[f"{prefix}confidence"]).double().tolist(),
        "visible": [True] * count if visible is None else [bool(v) for v in torch.as_tensor(visible).tolist()],
        "error_radius_mm": radius,
        "review": [False] * count if review is None else [bool(v) for v in torch.as_tensor(review).tolist()],
        "review_reasons": data.get(f"{prefix}review_reasons", [[] for _ in range(count)]),
        "_top": {
            "image": image_filename(image),
            "units": UNITS,
            "spacing": affine_spacing(source, dims).tolist(),
            "spacing_source": str(image.meta.get("spacing_source", "file")),
            "orientation": str(data.get("orientation", "as_acquired")),
            "plausible": data.get("shape_plausible"),
            "error_radius_coverage": data.get("error_radius_coverage"),
        },
    }
    if data.get("measurements"):
        extra["_top"]["measurements"] = data["measurements"]
    return landmarks, extra


def _finite(value: float):
    return value if math.isfinite(value) else None


NORMAL, FLAGGED, TRACING = (40, 220, 120), (255, 60, 60), (90, 170, 255)


def draw_overlay(
    image: torch.Tensor,
    points,
    output: Path,
    names: Sequence[str] | None = None,
    radii: Sequence[float | None] | None = None,
    review: Sequence[bool] | None = None,
    file_affine=None,
    long_side: int | None = None,
    lines: Sequence[tuple[int, int]] = (),
) -> None:
    """Save a 2D image (C, X, Y), as it is in memory, as a grey PNG (intensities scaled to 0-255) with each of
    ``points`` (K, 2), grid coordinates of that image (x = column), numbered 0..K-1 (as the JSON's ``index``).

    Args:
        names: K names for a legend (``index name``) in the top-left corner; none without.
        radii: per point, a circle of that radius in the image's pixels (the error radius); None: no circle.
        review: per point, True draws it in red (flagged), else green.
        file_affine: the file's own affine (``meta["source_affine"]``): an image held in another orientation (a
            mirrored or rotated view, :func:`~bundle.transforms.orient`) is turned back to the file's.
        long_side: the PNG's long side in pixels (the image is resized to it, points with it); None: as in memory.
        lines: pairs of point indices joined by a thin line, under the points (a tracing).
    """
    from PIL import Image, ImageDraw  # local: only inference draws

    grey = AsGreyscaled("image")({"image": torch.as_tensor(image).detach().float().cpu()})["image"][0]
    low, high = float(grey.min()), float(grey.max())
    array = ((grey - low) * (255.0 / max(high - low, 1e-12))).round().clamp(0, 255).to(torch.uint8).numpy()
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if file_affine is not None:
        array, points = _to_file_orientation(array, points, getattr(image, "affine", None), file_affine)
    picture = Image.fromarray(np.ascontiguousarray(array.T)).convert("RGB")  # MONAI's [x, y] -> rows, columns
    factor = 1.0
    if long_side is not None and max(picture.size) != int(long_side):
        factor = int(long_side) / max(picture.size)
        size = tuple(max(1, round(s * factor)) for s in picture.size)
        picture = picture.resize(size, Image.BILINEAR)
        factor = size[0] / array.shape[0]
    points = (points + 0.5) * factor - 0.5  # pixel centres stay pixel centres
    draw = ImageDraw.Draw(picture)
    unit = max(2, round(max(picture.size) / 250))
    font = _font(max(10, 3 * unit))
    count = len(points)
    for a, b in lines:
        if np.isfinite(points[[a, b]]).all():
            draw.line([tuple(points[a]), tuple(points[b])], fill=TRACING, width=max(1, unit // 2))
    for k, (x, y) in enumerate(points):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        colour = FLAGGED if review is not None and review[k] else NORMAL
        radius = None if radii is None else radii[k]
        if radius is not None and np.isfinite(radius) and circle_meets_picture(x, y, radius * factor, picture.size):
            r = radius * factor
            draw.ellipse([x - r, y - r, x + r, y + r], outline=colour, width=max(1, unit // 2))
        draw.ellipse([x - unit, y - unit, x + unit, y + unit], fill=colour)
        draw.text((x + 2 * unit, y - 4 * unit), str(k), fill=colour, font=font)
    if names:
        lines = [
            f"{k} {name}" + ("  (review)" if review is not None and review[k] else "") for k, name in enumerate(names)
        ]
        height = 3 * unit + 1
        box = [0, 0, max(draw.textlength(line, font=font) for line in lines) + 4 * unit, height * count + 2 * unit]
        draw.rectangle(box, fill=(0, 0, 0))
        for k, line in enumerate(lines):
            colour = FLAGGED if review is not None and review[k] else NORMAL
            draw.text((2 * unit, unit + k * height), line, fill=colour, font=font)
    picture.save(output, format="PNG", compress_level=1)  # zlib's fastest: 4 times faster than its default


def circle_meets_picture(x: float, y: float, r: float, size: tuple[int, int]) -> bool:
    """Whether the circle of radius ``r`` around (x, y) (pixels) crosses the picture of ``size`` (width, height).

    Pillow's cost of drawing a circle grows with its radius: the error radius of a wild guess (an untrained model, or
    the wrong anatomy) can be thousands of pixels, takes a minute to draw and shows nothing, so such circles are left
    out: those wholly outside the picture, and those that hold the whole picture inside.
    """
    width, height = size
    nearest = math.hypot(x - min(max(x, 0.0), width - 1.0), y - min(max(y, 0.0), height - 1.0))
    farthest = math.hypot(max(abs(x), abs(width - 1.0 - x)), max(abs(y), abs(height - 1.0 - y)))
    return nearest <= r <= farthest


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # FreeType's scalable default (Pillow >= 10.1)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def _to_file_orientation(array: np.ndarray, points: np.ndarray, affine, file_affine) -> tuple[np.ndarray, np.ndarray]:
    """A 2D array (X, Y) and points on it, held in a flipped or turned view, back to the axes of the file: the signed
    permutation between the view's direction cosines and the file's, applied with NumPy."""
    if affine is None:
        return array, points
    view = torch.as_tensor(affine, dtype=torch.float64).cpu()[:2, :2]
    own = torch.as_tensor(file_affine, dtype=torch.float64).cpu()[:2, :2]
    relation = torch.linalg.solve(own / affine_spacing(own, 2), view / affine_spacing(view, 2)).round().numpy()
    if np.allclose(relation, np.eye(2)):
        return array, points
    if not np.allclose(np.abs(relation).sum(0), 1) or not np.allclose(np.abs(relation).sum(1), 1):
        return array, points  # not a flip or quarter turn of the file: drawn as held
    order = [int(np.argmax(np.abs(relation[a]))) for a in range(2)]  # file axis a <- view axis order[a]
    out = np.transpose(array, order)
    new_points = points[:, order].copy()
    for a in range(2):
        if relation[a, order[a]] < 0:
            out = np.flip(out, axis=a)
            new_points[:, a] = out.shape[a] - 1 - new_points[:, a]
    return out, new_points
