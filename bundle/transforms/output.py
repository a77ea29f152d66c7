"""Prediction outputs: the per-image result record, written as landmark files (JSON, 3D Slicer markups) and a 2D
overlay picture, or handed to MONAI Label in memory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from ..geometry import affine_spacing, map_points, picture_spacing
from ..io import Landmarks, image_filename, landmarks_record, output_paths, write_landmarks
from ..io.files import refuse_existing
from ..switches import as_bool
from .image import AsGreyscaled

__all__ = ["LandmarkResultd", "SaveLandmarksd", "draw_overlay"]


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
        overlay_key: the image the overlay is drawn on, as it is in memory (the landmarks go onto it through its
            affine): the inference config hands it the refiner's fine copy (0.3 mm per pixel, a ninth of an ISBI
            image's pixels), so that no image is read twice and the PNG costs milliseconds; None: ``ref_key``'s.
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
        overwrite: bool = False,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.overlay_key = overlay_key or ref_key
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
                    draw_overlay(picture, on_picture.numpy(), partial[2])
                write_landmarks(partial[1], landmarks, True, "mrk.json", picture_spacing=picture_spacing(image))
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
    ``<stem>.json`` that :class:`SaveLandmarksd` writes, ``{"image": path, "spacing": [...] (mm per pixel used),
    "spacing_assumed": bool, "landmarks": [{"index": k, "name": ..., "world": [...] (mm), "pixel": [...]
    (original-image pixels, x = column), "confidence": c, "visible": true}, ...]}``. MONAI Label returns the
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


def _record_parts(data: Mapping, key: str, image, names: list, prefix: str) -> tuple:
    """(:class:`Landmarks`, ``extra``) as :func:`bundle.io.write_landmarks` takes them for the JSON format."""
    source = torch.as_tensor(image.meta.get("source_affine", image.affine)).double().cpu()
    dims = image.ndim - 1
    landmarks = Landmarks(torch.as_tensor(data[key]).double().cpu().numpy(), names)
    extra = {
        "pixel": torch.as_tensor(data[f"{prefix}pixels"]).double().tolist(),
        "confidence": torch.as_tensor(data[f"{prefix}confidence"]).double().tolist(),
        "_top": {
            "image": image_filename(image),
            "spacing": affine_spacing(source, dims).tolist(),
            "spacing_assumed": bool(image.meta.get("spacing_assumed", False)),
        },
    }
    return landmarks, extra


def draw_overlay(image: torch.Tensor, points, output: Path) -> None:
    """Save a 2D image (C, X, Y), as it is in memory, as a grey PNG (intensities scaled to 0-255) with a numbered
    red circle at each of ``points`` (K, 2), grid coordinates of that image (x = column). Circles and lines scale
    with the picture."""
    from PIL import Image, ImageDraw  # local: only inference draws

    grey = AsGreyscaled("image")({"image": torch.as_tensor(image).detach().float().cpu()})["image"][0]
    low, high = float(grey.min()), float(grey.max())
    array = ((grey - low) * (255.0 / max(high - low, 1e-12))).round().clamp(0, 255).to(torch.uint8).numpy()
    picture = Image.fromarray(array.T).convert("RGB")  # MONAI's [x, y] -> rows, columns
    draw = ImageDraw.Draw(picture)
    radius = max(3, round(max(picture.size) / 200))
    width = max(1, radius // 4)
    for k, (x, y) in enumerate(points):
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], outline=(255, 0, 0), width=width)
        draw.text((x + radius + 2, y - radius), str(k + 1), fill=(255, 64, 64))
    picture.save(output, format="PNG", compress_level=1)  # zlib's fastest: 4 times faster than its default
