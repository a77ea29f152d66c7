"""Anatomical plausibility of decoded landmarks: a shape model chooses among the first stage's candidate peaks,
sends the refiner to where a still-implausible landmark should be, and judges the final configuration.

MONAI has no shape-constrained decoding (Lindner and Cootes' constrained local models, Payer's spatial configuration
network do it in their own ways), so it is written here, around :class:`bundle.shape.ShapeModel`. Configurations are
judged in the frame the network saw (:func:`bundle.geometry.array_frame`), so that a mirrored image's configuration
is seen mirrored. Conventions: see :mod:`bundle`.
"""

from __future__ import annotations

import os
from typing import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from ..errors import InputError
from ..geometry import affine_spacing, array_frame, map_points
from ..model_files import read_model_file
from ..shape import ShapeModel

__all__ = ["PlausibleLandmarksd", "load_shape_model"]


def load_shape_model(path: str | os.PathLike, num_landmarks: int | None = None, spatial_dims: int | None = None):
    """:meth:`ShapeModel.load` through the model-file loader (:mod:`bundle.model_files`): read once, and again when
    the file changes (a new training or a site adaptation rewrites it)."""
    return read_model_file(
        path,
        lambda real: ShapeModel.load(real, num_landmarks, spatial_dims),
        key=("shape_model", num_landmarks, spatial_dims),
    )


class PlausibleLandmarksd(MapTransform):
    """Judge the decoded landmarks with a shape model, choosing among candidate peaks first if asked to.

    With ``choose`` (after :class:`DecodeLandmarksd` with ``num_candidates`` > 1): each landmark keeps the decoder's
    point unless the shape model finds it implausible given the others; then it takes the candidate peak that the
    heatmap and the shape support best (:meth:`ShapeModel.choose`). With ``reseek``, a landmark that stays implausible
    is moved to where the shape model expects it, so that the refinement stage looks for it there
    (:class:`RefineLandmarksd`); its confidence becomes 0.

    With ``up_to_scale``, a configuration on an image whose pixel size was assumed (``meta["spacing_source"] ==
    "assumed"``) is judged up to scale: its size is what estimates the spacing (:class:`LandmarkDetector`), not
    evidence against it. The first stage's judgement does this; the final one does not, so that an image whose
    spacing stayed assumed (nothing to estimate it from) is judged at that spacing.

    Writes ``{prefix}landmarks``, ``{prefix}pixels`` and ``{prefix}confidence`` (the chosen points), and
    ``shape_plausible`` (bool: the configuration as a whole; without ``choose``, a later judgement, of points the
    refiner placed, also needs the earlier one to have held: a configuration the shape model completed is not
    evidence of itself), ``shape_implausible`` (K,) bool, ``shape_mahalanobis`` (K,) float64 (each point's squared
    Mahalanobis distance from where the others put it, a feature of the review's risk), ``shape_inliers``
    (int), ``shape_size`` (the configuration's centroid size in the image's mm, for spacing estimation),
    ``shape_rotation_deg`` and, with ``reseek``, ``shape_reseek`` (K,) bool.

    Args:
        keys: the decoded world landmarks (``pred_landmarks``, (K, D) mm); ``pred_candidates`` and
            ``pred_candidate_scores`` sit beside them.
        shape_model: a :class:`ShapeModel` or the path of its file (``shape_model.json`` beside the weights).
        num_landmarks, spatial_dims: the network's, checked against the model's (an error names both).
        ref_key: the image the landmarks were decoded on (its affine gives the network's frame).
        noise_mm: the detector's scatter per axis in mm, added to the model's (larger for the first stage).
        choose: choose among candidate peaks; reseek: move still-implausible landmarks to the model's prediction.
        up_to_scale: judge configurations on images of an assumed spacing up to scale (no size gate).
        prefix: of the decoded keys.
    """

    def __init__(
        self,
        keys: KeysCollection,
        shape_model: ShapeModel | str | os.PathLike,
        num_landmarks: int | None = None,
        spatial_dims: int | None = None,
        ref_key: str = "image",
        noise_mm: float = 1.0,
        choose: bool = False,
        reseek: bool = False,
        up_to_scale: bool = False,
        prefix: str = "pred_",
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        if isinstance(shape_model, ShapeModel) and num_landmarks is not None:
            if shape_model.num_landmarks != int(num_landmarks):
                raise InputError(
                    f"the shape model has {shape_model.num_landmarks} landmarks, the network {num_landmarks}."
                )
        self.shape_model, self.num_landmarks, self.spatial_dims = shape_model, num_landmarks, spatial_dims
        _ = self.model  # a missing or mismatched file is an error at once, not at the first image
        if not noise_mm >= 0:
            raise InputError(f"noise_mm must be >= 0, got {noise_mm}.")
        self.ref_key, self.noise_mm, self.prefix = ref_key, float(noise_mm), prefix
        self.choose, self.reseek, self.up_to_scale = bool(choose), bool(reseek), bool(up_to_scale)

    @property
    def model(self) -> ShapeModel:
        """The shape model, as its file is now."""
        if isinstance(self.shape_model, ShapeModel):
            return self.shape_model
        return load_shape_model(self.shape_model, self.num_landmarks, self.spatial_dims)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d.update(self.judge(d, key))
        return d

    def judge(self, d: Mapping, key: str) -> dict:
        """The keys this transform writes, for the landmarks under ``key`` of ``d`` (``d`` is left unchanged)."""
        model = self.model
        reference = d[self.ref_key]
        affine = reference.affine
        world = torch.as_tensor(d[key], dtype=torch.float64).cpu().clone()
        confidence = torch.as_tensor(d[f"{self.prefix}confidence"], dtype=torch.float64).cpu().clone()
        # an assumed pixel size says nothing of the anatomy's size: judge the configuration up to scale, and let the
        # detector estimate the spacing from it (a web export at 0.3 mm/px is a cephalogram, not an implausible one)
        sized = not (self.up_to_scale and reference.meta.get("spacing_source") == "assumed")
        candidates = d.get(f"{self.prefix}candidates") if self.choose else None
        if candidates is not None:
            candidates = torch.as_tensor(candidates, dtype=torch.float64).cpu()
            scores = torch.as_tensor(d[f"{self.prefix}candidate_scores"], dtype=torch.float64).cpu()
            frame = array_frame(candidates, affine).numpy()
            log_scores = np.log(np.clip(scores.numpy(), 1e-6, None))
            chosen, fit = model.choose(frame, log_scores, noise_mm=self.noise_mm, check_size=sized)
            rows = torch.arange(len(chosen))
            picked = torch.as_tensor(chosen)
            world, confidence = candidates[rows, picked].clone(), scores[rows, picked].clone()
        else:
            fit = model.fit_configuration(array_frame(world, affine).numpy(), noise_mm=self.noise_mm, check_size=sized)
        implausible = torch.as_tensor(fit.implausible)
        plausible = bool(fit.plausible)
        if not self.choose:  # a judgement of points placed after the first stage's: both must hold
            plausible = plausible and bool(d.get("shape_plausible", True))
        out = {
            "shape_plausible": plausible,
            "shape_implausible": implausible,
            "shape_mahalanobis": torch.as_tensor(fit.mahalanobis, dtype=torch.float64),
            "shape_inliers": int(fit.inlier.sum()),
            "shape_size": float(fit.size),
            "shape_rotation_deg": float(fit.rotation_deg),
        }
        if self.reseek:
            reseek = implausible & torch.as_tensor(np.isfinite(fit.predicted).all(1)) & bool(fit.plausible)
            if bool(reseek.any()):
                expected = torch.as_tensor(fit.predicted) / affine_spacing(affine, world.shape[-1])
                expected_world = map_points(expected, affine)
                world[reseek] = expected_world[reseek]
                confidence[reseek] = 0.0
            out["shape_reseek"] = reseek
        source = reference.meta.get("source_affine", affine)
        out[key] = world
        out[f"{self.prefix}pixels"] = map_points(world, source, invert=True)
        out[f"{self.prefix}confidence"] = confidence
        return out
