"""The clinical measurements of each image's landmarks (:mod:`bundle.analysis`), in its result record."""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from ..analysis import MeasurementSet
from ..geometry import array_frame

__all__ = ["Measurementsd"]


class Measurementsd(MapTransform):
    """Compute the declared measurements of the final landmarks, with intervals from their error radii, and put them
    under ``measurements`` (``{name: {"value", "unit", "interval", "class", "class_name", "normal", "borderline",
    "review", ...}}``, :meth:`bundle.analysis.MeasurementSet.evaluate`), which the result record carries.

    The geometry is taken in the frame the network saw (the grid image's array millimetres), where a cephalogram faces
    right whatever the file's orientation, so signed angles mean what their definitions say. A measurement needs review
    when one of its landmarks is not visible or is flagged for its position (implausible, searched again, the stages
    disagreeing, an implausible image); a landmark flagged only for a wide radius widens the measurement's interval
    instead, which then says whether the class is in doubt (``borderline``). Without definitions it writes nothing.

    Args:
        keys: the final landmarks (``pred_landmarks``, world mm); ``pred_error_radius``, ``pred_review_reasons`` and
            ``pred_visible`` sit beside them.
        definitions: the config's ``measurements`` (a list of dicts).
        landmark_names: K names, checked against the definitions at construction (an error names both).
        spatial_dims: D.
        ref_key: the grid image.
        samples: draws for the intervals; seed: their generator's seed (the same image, the same intervals).
    """

    def __init__(
        self,
        keys: KeysCollection,
        definitions: Sequence[Mapping],
        landmark_names: Sequence[str],
        spatial_dims: int = 2,
        ref_key: str = "image",
        samples: int = 500,
        seed: int = 0,
        prefix: str = "pred_",
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.measurements = MeasurementSet(definitions, landmark_names, spatial_dims)
        self.ref_key, self.samples, self.seed, self.prefix = ref_key, int(samples), int(seed), prefix

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        if not len(self.measurements):
            return d
        for key in self.key_iterator(d):
            frame = array_frame(torch.as_tensor(d[key], dtype=torch.float64), d[self.ref_key].affine).numpy()
            count = frame.shape[0]
            radius = d.get(f"{self.prefix}error_radius")
            radius = None if radius is None else torch.as_tensor(radius, dtype=torch.float64).cpu().numpy()
            reasons = d.get(f"{self.prefix}review_reasons") or [[] for _ in range(count)]
            # a landmark flagged for anything but a wide radius (the radius enters the interval instead)
            review = np.array([any(r != "wide_radius" for r in landmark) for landmark in reasons], bool)
            visible = np.asarray(torch.as_tensor(d.get(f"{self.prefix}visible", torch.ones(count))).cpu(), bool)
            coverage = float(d.get("error_radius_coverage") or 0.9)
            d["measurements"] = self.measurements.evaluate(
                frame, radius, coverage, review | ~visible, self.samples, self.seed
            )
        return d
