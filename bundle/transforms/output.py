"""Prediction outputs: the per-image result record, handed to MONAI Label in memory (``result``) and written as files
by :class:`bundle.handlers.LandmarkFiles`."""

from __future__ import annotations

import math
from typing import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from ..geometry import affine_spacing
from ..io import (
    Landmarks,
    image_filename,
    landmarks_record,
)

__all__ = ["LandmarkResultd", "record_parts"]


class LandmarkResultd(MapTransform):
    """Put each image's result record under ``output_key`` as a JSON-ready dict, writing nothing: the content of the
    ``<stem>.json`` that :class:`bundle.handlers.LandmarkFiles` writes (see there). MONAI Label returns the
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
            parts = record_parts(d, key, d[self.ref_key], self.landmark_names, self.prefix)
            d[self.output_key] = landmarks_record(*parts)
        return d


UNITS = {
    "world": "mm, the image's world frame (pixel x spacing for pictures without geometry)",
    "pixel": "pixels of the image file, x = column, y = row (z = slice), centre of the first pixel at 0",
    "spacing": "mm per pixel, array axes x, y (, z)",
    "error_radius_mm": "mm: the true landmark lies within it with probability error_radius_coverage",
    "review_risk": "probability that the landmark is more than review_risk_miss_mm from the truth",
}


def record_parts(data: Mapping, key: str, image, names: list, prefix: str) -> tuple:
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
    risk = data.get(f"{prefix}review_risk")
    risk = None if risk is None else [_finite(v) for v in torch.as_tensor(risk).double().tolist()]
    visible = data.get(f"{prefix}visible")
    review = data.get(f"{prefix}review")
    extra = {
        "pixel": torch.as_tensor(data[f"{prefix}pixels"]).double().tolist(),
        "confidence": torch.as_tensor(data[f"{prefix}confidence"]).double().tolist(),
        "visible": [True] * count if visible is None else [bool(v) for v in torch.as_tensor(visible).tolist()],
        "error_radius_mm": radius,
        "review": [False] * count if review is None else [bool(v) for v in torch.as_tensor(review).tolist()],
        "review_reasons": data.get(f"{prefix}review_reasons", [[] for _ in range(count)]),
        **({} if risk is None else {"review_risk": risk}),
        "_top": {
            "image": image_filename(image),
            "units": UNITS,
            "spacing": affine_spacing(source, dims).tolist(),
            "spacing_source": str(image.meta.get("spacing_source", "file")),
            "orientation": str(data.get("orientation", "as_acquired")),
            "plausible": data.get("shape_plausible"),
            "error_radius_coverage": data.get("error_radius_coverage"),
            **({} if risk is None else {"review_risk_miss_mm": data.get("review_risk_miss_mm")}),
        },
    }
    if data.get("measurements"):
        extra["_top"]["measurements"] = data["measurements"]
    return landmarks, extra


def _finite(value: float):
    return value if math.isfinite(value) else None
