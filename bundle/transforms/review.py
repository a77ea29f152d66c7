"""Every landmark's error radius and review flag: what a user needs to know before trusting a point.

:class:`ErrorRadiusd` turns the heatmap's width and peak into a calibrated radius (:mod:`bundle.uncertainty`);
:class:`FlagLandmarksd` says which landmarks lie outside the image and which need a person's review, and why.
Conventions: see :mod:`bundle`.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from ..errors import InputError
from ..io import image_filename, loaded_shape
from ..model_files import read_model_file
from ..uncertainty import RAW, ErrorCalibration, MissRisk

__all__ = ["ErrorRadiusd", "FlagLandmarksd", "REVIEW_REASONS", "ReviewRiskd"]

logger = logging.getLogger(__name__)

REVIEW_REASONS = {
    "outside_image": "the point lies outside the image",
    "implausible": "the point is anatomically implausible given the other landmarks",
    "searched_again": "the first stage's point was implausible; the refiner searched where the shape model expects it",
    "stages_disagree": "the refiner moved the point further than it was trained to; the first stage's point is kept",
    "wide_radius": "the error radius is over the review tolerance",
    "features_not_finite": "the heatmap's width or peak is not a finite number, so the radius is the widest calibrated",
    # the review's risk (ReviewRiskd): a likely miss, by the feature that raised its risk most
    "wide_heatmap": "a likely miss: the heatmap is wide around the point",
    "weak_peak": "a likely miss: the heatmap's peak is weak",
    "far_refiner_move": "a likely miss: the refiner moved the first stage's point far",
    "unlike_shape": "a likely miss: the point is far from where the other landmarks put it",
    "second_peak": "a likely miss: the first stage's heatmap has a strong second peak",
    "image_implausible": "the landmarks as a whole do not form a plausible configuration",
}


class _OptionalFile:
    """A model file a transform can do without: read through the model-file loader as the file is now
    (:mod:`bundle.model_files`); None, with one warning saying what is lost, when the file or its pipeline is
    missing."""

    def __init__(self, path: str | os.PathLike, reader, key: tuple, lost: str):
        self.path, self.reader, self.key, self.lost = path, reader, key, lost
        self._warned = False

    def get(self):
        try:
            return read_model_file(self.path, self.reader, key=self.key)
        except (FileNotFoundError, LookupError) as e:
            if not self._warned:
                logger.warning(f"{e} {self.lost}")
                self._warned = True
            return None


class ErrorRadiusd(MapTransform):
    """The radius (mm) within which each landmark's true position lies with probability ``coverage``: conformal
    calibration (:class:`bundle.uncertainty.ErrorCalibration`) of the final heatmap's width and peak
    (``pred_spread``, ``pred_confidence``). Writes ``pred_error_radius`` (K,) float64 mm,
    ``error_radius_coverage`` and ``pred_features_not_finite`` (K,) bool: a landmark whose width or peak is NaN or
    infinite gets the calibration's widest radius (never a small one) and :class:`FlagLandmarksd` sends it to review.

    Without a calibration file the radii are NaN (written as null) and a warning says how to calibrate, once. The file
    is read through the model-file loader (:mod:`bundle.model_files`), so a calibration rewritten while the
    transform lives (a site adaptation, MONAI Label's ``/train``) is the one used.

    Args:
        keys: the final landmarks (``pred_landmarks``); ``pred_spread``/``pred_confidence`` sit beside them.
        calibration: the calibration file (``calibration.json`` beside the weights).
        pipeline: which of its calibrations: ``"both_stages"`` or ``"first_stage"`` (the features differ).
        coverage: one of the calibrated coverages (0.9 by default).
        num_landmarks: the network's, checked against the calibration's.
        prefix: of the decoded keys.
    """

    def __init__(
        self,
        keys: KeysCollection,
        calibration: str | os.PathLike,
        pipeline: str = "both_stages",
        coverage: float = 0.9,
        num_landmarks: int | None = None,
        prefix: str = "pred_",
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.coverage, self.prefix = float(coverage), prefix
        self.path, self.pipeline, self.num_landmarks = calibration, str(pipeline), num_landmarks
        self._file = _OptionalFile(
            calibration,
            lambda real: ErrorCalibration.load(real, self.pipeline, self.num_landmarks),
            ("calibration", self.pipeline, num_landmarks),
            "Error radii will be null: calibrate on images that neither trained nor selected the weights "
            "(README, 'Calibrate the error radii').",
        )
        _ = self.calibration  # a bad file or an uncalibrated coverage is an error at once, not at the first image

    @property
    def calibration(self) -> ErrorCalibration | None:
        """The calibration as its file is now; None (with a warning, once) when there is none."""
        found = self._file.get()
        if found is None:
            return None
        if self.coverage not in found.quantiles:
            calibrated = sorted(found.quantiles)
            raise InputError(f"coverage {self.coverage} is not calibrated in {self.path} (calibrated: {calibrated}).")
        return found

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        calibration = self.calibration
        for key in self.key_iterator(d):
            count = torch.as_tensor(d[key]).shape[0]
            features = np.stack(
                [
                    torch.as_tensor(d[f"{self.prefix}spread"], dtype=torch.float64).cpu().numpy(),
                    torch.as_tensor(d[f"{self.prefix}confidence"], dtype=torch.float64).cpu().numpy(),
                ],
                -1,
            )
            if calibration is None:
                radius = np.full(count, np.nan)
            else:
                radius = calibration.radius(features, self.coverage)
            d[f"{self.prefix}error_radius"] = torch.as_tensor(radius, dtype=torch.float64)
            d[f"{self.prefix}features_not_finite"] = torch.as_tensor(~np.isfinite(features).all(-1))
            d["error_radius_coverage"] = self.coverage
        return d


# where each raw feature of the risk (bundle.uncertainty.RAW) sits in the data; (key, column) for a column of a table
RISK_KEYS = {
    "spread_mm": ("{prefix}spread", None),
    "confidence": ("{prefix}confidence", None),
    "coarse_spread_mm": ("coarse_spread", None),
    "coarse_confidence": ("coarse_confidence", None),
    "proposed_move_mm": ("refine_move_mm", None),
    "shape_mahalanobis": ("shape_mahalanobis", None),
    "candidate_score_1": ("{prefix}candidate_scores", 0),
    "candidate_score_2": ("{prefix}candidate_scores", 1),
}
assert set(RISK_KEYS) == set(RAW)


class ReviewRiskd(MapTransform):
    """Each landmark's risk of a miss (:class:`bundle.uncertainty.MissRisk`, fitted on out-of-fold rows) and the
    review it calls for: a landmark whose risk reaches the threshold of ``budget`` is flagged, with the reason of the
    feature that raised its risk most. Writes ``pred_review_risk`` (K,) float64 (NaN without a risk file, or where a
    feature is not a number: such a landmark is flagged by :class:`FlagLandmarksd` as ``features_not_finite``) and
    ``pred_risk_reasons`` (K lists of at most one reason name).

    Without a risk file (or without one for ``pipeline``), the risks are NaN, nothing is flagged for risk and a warning
    says so, once. The file is read through the model-file loader (:mod:`bundle.model_files`).

    Args:
        keys: the final landmarks (``pred_landmarks``); the features sit beside them (:data:`RISK_KEYS`).
        risk: the risk file (``review_risk.json`` beside the weights).
        pipeline: which of its risks: ``"both_stages"`` (the features differ without the refiner).
        budget: the share of landmarks a review may flag for risk (0.15: 15 %), on images like the fit's.
        num_landmarks: the network's, checked against a per-landmark risk.
        prefix: of the decoded keys.
    """

    def __init__(
        self,
        keys: KeysCollection,
        risk: str | os.PathLike,
        pipeline: str = "both_stages",
        budget: float = 0.15,
        num_landmarks: int | None = None,
        prefix: str = "pred_",
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        if not 0 <= budget <= 1:
            raise InputError(f"the review budget must be a fraction in [0, 1], got {budget}.")
        self.path, self.pipeline, self.budget = risk, str(pipeline), float(budget)
        self.num_landmarks, self.prefix = num_landmarks, prefix
        self._file = _OptionalFile(
            risk,
            lambda real: MissRisk.load(real, self.pipeline, self.num_landmarks),
            ("review_risk", self.pipeline, num_landmarks),
            "No landmark is flagged for its risk of a miss: fit one on out-of-fold rows "
            "(python -m experiments.trust_study --write <the weights' folder>).",
        )
        _ = self.risk  # a broken file is an error at once, not at the first image

    @property
    def risk(self) -> MissRisk | None:
        """The risk as its file is now; None (with a warning, once) when there is none."""
        return self._file.get()

    def raw_features(self, d: Mapping, count: int) -> dict:
        """The risk's raw features (:data:`bundle.uncertainty.RAW`) of the K landmarks in ``d``, (K,) each; NaN where
        the data lacks one (a pipeline without the refiner has no first-stage features apart)."""
        raw = {}
        for name, (key, column) in RISK_KEYS.items():
            value = d.get(key.format(prefix=self.prefix))
            if value is None:
                raw[name] = np.full(count, np.nan)
                continue
            value = torch.as_tensor(value, dtype=torch.float64).cpu().numpy()
            if column is not None:
                value = value[:, column] if value.ndim == 2 and value.shape[1] > column else np.full(count, np.nan)
            raw[name] = value.reshape(count)
        return raw

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        risk = self.risk
        for key in self.key_iterator(d):
            count = torch.as_tensor(d[key]).shape[0]
            probability, reasons = np.full(count, np.nan), [[] for _ in range(count)]
            if risk is not None:
                raw, landmarks = self.raw_features(d, count), np.arange(count)
                probability = risk.probability(raw, landmarks)
                flagged = probability >= risk.threshold(self.budget)
                for k, reason in enumerate(risk.reasons(raw, landmarks)):
                    if flagged[k]:
                        reasons[k] = [reason]
                d[f"{self.prefix}features_not_finite"] = torch.as_tensor(
                    np.asarray(d.get(f"{self.prefix}features_not_finite", np.zeros(count, bool)), bool)
                    | np.isnan(probability)
                )
            d[f"{self.prefix}review_risk"] = torch.as_tensor(probability, dtype=torch.float64)
            d["review_risk_miss_mm"] = None if risk is None else risk.miss_mm
            d[f"{self.prefix}risk_reasons"] = reasons
        return d


class FlagLandmarksd(MapTransform):
    """Which landmarks are visible, which need review, and why.

    Visible: inside the original image (pixel coordinates within ``[-0.5, size - 0.5]`` on every axis); a point
    outside is kept where it was decoded (never clipped) and marked. Review (``True``) for any of
    :data:`REVIEW_REASONS`: outside the image, implausible (``shape_implausible``), searched again
    (``shape_reseek``), the stages disagreeing (``refine_rejected``), an error radius over ``review_radius_mm``, a
    width or peak that is not a number (``pred_features_not_finite``), a risk of a miss over the budget's threshold
    (``pred_risk_reasons`` from :class:`ReviewRiskd`, naming the feature that raised it), or a
    configuration implausible as a whole (``shape_plausible`` false: every landmark, and a warning naming the file).
    Keys another transform did not write count as no reason.

    Writes ``pred_visible`` (K,) bool, ``pred_review`` (K,) bool and ``pred_review_reasons`` (K lists of reason names).

    Args:
        keys: the final landmarks (``pred_landmarks``); ``pred_pixels`` and ``pred_error_radius`` sit beside them.
        ref_key: the image (its loaded shape).
        review_radius_mm: radii above this flag a landmark (None: radii flag nothing).
        prefix: of the decoded keys.
    """

    def __init__(
        self,
        keys: KeysCollection,
        ref_key: str = "image",
        review_radius_mm: float | None = None,
        prefix: str = "pred_",
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        if review_radius_mm is not None and not review_radius_mm > 0:
            raise InputError(f"review_radius_mm must be > 0 or None, got {review_radius_mm}.")
        self.ref_key, self.prefix = ref_key, prefix
        self.review_radius_mm = None if review_radius_mm is None else float(review_radius_mm)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for _ in self.key_iterator(d):  # the landmarks' own key is not read: their pixels are
            image = d[self.ref_key]
            pixels = torch.as_tensor(d[f"{self.prefix}pixels"], dtype=torch.float64).cpu()
            count, dims = pixels.shape
            extent = torch.tensor(loaded_shape(image, dims), dtype=torch.float64) - 0.5
            visible = (torch.isfinite(pixels) & (pixels >= -0.5) & (pixels <= extent)).all(-1)

            def mask(name: str) -> np.ndarray:
                value = d.get(name)
                return np.zeros(count, bool) if value is None else np.asarray(torch.as_tensor(value).cpu(), bool)

            radius = d.get(f"{self.prefix}error_radius")
            radius = np.full(count, np.nan) if radius is None else torch.as_tensor(radius).double().cpu().numpy()
            wide = np.zeros(count, bool)
            if self.review_radius_mm is not None:
                wide = np.where(np.isfinite(radius), radius > self.review_radius_mm, False)
            whole = not d.get("shape_plausible", True)
            reasons_by = {
                "outside_image": ~visible.numpy(),
                "implausible": mask("shape_implausible"),
                "searched_again": mask("shape_reseek"),
                "stages_disagree": mask("refine_rejected"),
                "wide_radius": wide,
                "features_not_finite": mask(f"{self.prefix}features_not_finite"),
                "image_implausible": np.full(count, whole),
            }
            risky = d.get(f"{self.prefix}risk_reasons") or [[] for _ in range(count)]
            reasons = [[name for name, flags in reasons_by.items() if flags[k]] + list(risky[k]) for k in range(count)]
            d[f"{self.prefix}visible"] = visible
            d[f"{self.prefix}review"] = torch.tensor([bool(r) for r in reasons])
            d[f"{self.prefix}review_reasons"] = reasons
            if whole:
                logger.warning(
                    f"{image_filename(image)}: the landmarks do not form a plausible configuration for this model (not "
                    f"the anatomy it was trained on, or an unusual view); all {count} are flagged for review."
                )
            elif not math.isclose(float(visible.float().mean()), 1.0):
                outside = [k for k in range(count) if not bool(visible[k])]
                logger.warning(f"{image_filename(image)}: landmarks {outside} lie outside the image (visible: false).")
        return d
