"""The overlay picture of an image's landmarks: the image in the file's own orientation, each landmark numbered with a
circle of its error radius, flagged landmarks in another colour, the tracing, and a legend of the names."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..geometry import affine_spacing
from ..transforms.image import AsGreyscaled

__all__ = ["draw_overlay", "circle_meets_picture", "NORMAL", "FLAGGED", "TRACING"]

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
