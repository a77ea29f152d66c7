"""Calibrated error radii: the radius around each predicted landmark within which the true landmark lies with a
stated probability, by split conformal prediction (Vovk et al. 2005; Angelopoulos and Bates 2021) with a
per-landmark, per-image difficulty.

Difficulty: ``g = exp(beta_0 * log(spread) + beta_1 * log(confidence))``, from the heatmap that placed the point
(its width around the point in mm, :meth:`bundle.GaussianHeatmapCodec.spread`, and its peak), with ``beta`` from a
least-squares fit of ``log(error)`` on those features with one intercept per landmark; each landmark then has a
scale ``s_k`` (the geometric mean of its ``error / g``). The nonconformity score of landmark k of image i is
``error_ik / (s_k * g_ik)``; the radius at coverage ``1 - alpha`` is ``q * s_k * g_ik``, ``q`` the
``ceil((n + 1)(1 - alpha))``-th smallest of the n calibration scores: of all landmarks' scores pooled, or, per
landmark (Mondrian conformal prediction, Vovk et al. 2005, ch. 4), of that landmark's own I scores, so that each
landmark's radius covers at the stated rate, not only the landmarks on average. ``beta`` and ``s_k`` are fitted on the same
calibration images, so each image's scores use a fit without that image (leave one image out, the jackknife), which
keeps the scores honest about the fitted difficulty.

The calibration images must neither train nor select the weights (never a test split). MONAI has no conformal
calibration for point predictions, hence this module. NumPy, float64.
"""

from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np

from ..errors import InputError
from .pipeline_file import read_entry, write_entry

__all__ = ["ErrorCalibration", "FEATURES"]

FORMAT = "coortransformer_landmarks error calibration"
FEATURES = ("spread_mm", "confidence")
_FLOOR = 1e-3  # features and errors are clipped here before logarithms (mm, or a heatmap peak)


def _design(features: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(features, dtype=np.float64), _FLOOR, None))


class ErrorCalibration:
    """Per-landmark error radii from a conformal calibration (see the module docstring).

    Args:
        beta: (F,) the difficulty's exponents for :data:`FEATURES`.
        scales: (K,) each landmark's scale ``s_k`` in mm.
        quantiles: ``{coverage: q}``, e.g. ``{0.9: 2.3}``; q is one number (pooled) or K, one per landmark
            (Mondrian).
        count: n, calibration scores (images x landmarks).
        images: the calibration images' count.
        description: where the calibration comes from (data, split, pipeline).
        widest: (K,) each landmark's largest difficulty ``s_k * g_ik`` over the calibration images, in mm: the radius
            of a landmark whose features are not finite numbers is its quantile times this, the widest the calibration
            gives (None, in files written before it was stored: such a radius is NaN).
    """

    def __init__(
        self,
        beta: Sequence[float],
        scales: Sequence[float],
        quantiles: dict,
        count: int,
        images: int,
        description: str = "",
        widest: Sequence[float] | None = None,
    ):
        self.beta = np.asarray(beta, dtype=np.float64).reshape(-1)
        if self.beta.shape != (len(FEATURES),):
            raise InputError(f"beta must have {len(FEATURES)} values ({', '.join(FEATURES)}), got {self.beta.shape}.")
        self.scales = np.asarray(scales, dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(self.scales) & (self.scales > 0)):
            raise InputError("every landmark scale must be a positive number.")
        self.quantiles = {}
        for c, q in quantiles.items():
            q = np.asarray(q, dtype=np.float64)
            if q.ndim not in (0, 1) or (q.ndim == 1 and q.shape != self.scales.shape):
                raise InputError(f"the quantile at {c} must be one number or {len(self.scales)}, got {q.shape}.")
            self.quantiles[float(c)] = float(q) if q.ndim == 0 else q
        self.count, self.images, self.description = int(count), int(images), str(description)
        self.widest = None
        if widest is not None:
            self.widest = np.asarray(widest, dtype=np.float64).reshape(-1)
            if self.widest.shape != self.scales.shape or not np.all(np.isfinite(self.widest) & (self.widest > 0)):
                raise InputError(f"widest must be {len(self.scales)} positive numbers, got {self.widest}.")

    @property
    def per_landmark(self) -> bool:
        """Whether each landmark has its own quantile (Mondrian)."""
        return any(np.ndim(q) == 1 for q in self.quantiles.values())

    @property
    def num_landmarks(self) -> int:
        return len(self.scales)

    # ------------------------------------------------------------------ fitting
    @staticmethod
    def _fit_difficulty(features: np.ndarray, errors: np.ndarray, landmarks: np.ndarray, count: int):
        """beta (F,) and scales (K,) from (N, F) features, (N,) errors, (N,) landmark indices."""
        x = _design(features)
        y = np.log(np.clip(errors, _FLOOR, None))
        dummies = np.eye(count)[landmarks]
        solution, *_ = np.linalg.lstsq(np.concatenate([dummies, x], 1), y, rcond=None)
        beta = solution[count:]
        residual = y - x @ beta
        sums = np.bincount(landmarks, residual, minlength=count)
        counts = np.bincount(landmarks, minlength=count)
        scales = np.exp(np.where(counts > 0, sums / np.maximum(counts, 1), residual.mean()))
        return beta, scales

    @classmethod
    def fit(
        cls,
        errors: np.ndarray,
        features: np.ndarray,
        coverages: Sequence[float] = (0.8, 0.9, 0.95),
        description: str = "",
        per_landmark: bool = False,
    ) -> "ErrorCalibration":
        """Calibrate on (I, K) radial errors in mm and (I, K, F) features of I calibration images; ``per_landmark``:
        one quantile per landmark, from its own I scores (Mondrian).

        Raises:
            ValueError: shapes disagree, fewer than 2 images, a non-finite value, or a coverage outside (0, 1), or one
                that needs more scores than there are (``ceil((n + 1) c) > n``, n = I K pooled, I per landmark).
        """
        errors = np.asarray(errors, dtype=np.float64)
        features = np.asarray(features, dtype=np.float64)
        if errors.ndim != 2 or features.shape != (*errors.shape, len(FEATURES)):
            raise InputError(
                f"errors must be (I, K) and features (I, K, {len(FEATURES)}), got {errors.shape} and {features.shape}."
            )
        images, count = errors.shape
        if images < 2:
            raise InputError(f"a calibration needs at least 2 images, got {images}.")
        if not (np.isfinite(errors).all() and np.isfinite(features).all()):
            raise InputError("calibration errors and features must be finite (every landmark visible).")
        landmarks = np.tile(np.arange(count), images)
        scores = np.empty((images, count))
        for i in range(images):  # leave image i out of the difficulty fit that scores it
            keep = np.ones(images, bool)
            keep[i] = False
            beta, scales = cls._fit_difficulty(
                features[keep].reshape(-1, len(FEATURES)),
                errors[keep].reshape(-1),
                np.tile(np.arange(count), images - 1),
                count,
            )
            scores[i] = errors[i] / (scales * np.exp(_design(features[i]) @ beta))
        beta, scales = cls._fit_difficulty(features.reshape(-1, len(FEATURES)), errors.reshape(-1), landmarks, count)
        columns = np.sort(scores, axis=0) if per_landmark else np.sort(scores.reshape(-1))[:, None]
        n = len(columns)
        quantiles = {}
        for coverage in coverages:
            rank = math.ceil((n + 1) * float(coverage))
            if not 0 < coverage < 1 or rank > n:
                raise InputError(
                    f"coverage {coverage} needs more than the {n} calibration scores (or is not in (0, 1))."
                )
            row = columns[rank - 1]
            quantiles[float(coverage)] = row if per_landmark else float(row[0])
        widest = (scales * np.exp(_design(features) @ beta)).max(axis=0)
        return cls(beta, scales, quantiles, scores.size, images, description, widest)

    # ------------------------------------------------------------------ use
    def radius(self, features: np.ndarray, coverage: float = 0.9) -> np.ndarray:
        """(..., K) radii in mm for (..., K, F) features, at a calibrated ``coverage``. A landmark with a feature that
        is not a finite number (a heatmap with no positive value near its point, a refiner's point that was not kept
        with no first-stage features) gets the widest radius of the calibration (``widest``), never a small one.

        Raises:
            ValueError: the coverage was not calibrated, or the features have another landmark count.
        """
        if float(coverage) not in self.quantiles:
            raise InputError(f"coverage {coverage} is not calibrated (calibrated: {sorted(self.quantiles)}).")
        features = np.asarray(features, dtype=np.float64)
        if features.shape[-2:] != (self.num_landmarks, len(FEATURES)):
            raise InputError(f"features must be (..., {self.num_landmarks}, {len(FEATURES)}), got {features.shape}.")
        known = np.isfinite(features).all(-1)
        difficulty = self.scales * np.exp(_design(np.where(known[..., None], features, 1.0)) @ self.beta)
        widest = np.full(self.num_landmarks, np.nan) if self.widest is None else self.widest
        return self.quantiles[float(coverage)] * np.where(known, difficulty, widest)

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict:
        return {
            "features": list(FEATURES),
            "beta": self.beta.tolist(),
            "scales_mm": self.scales.tolist(),
            "quantiles": {str(c): np.asarray(q).tolist() for c, q in sorted(self.quantiles.items())},
            "count": self.count,
            "images": self.images,
            "description": self.description,
            **({} if self.widest is None else {"widest_mm": self.widest.tolist()}),
        }

    def save(self, path: str | os.PathLike, pipeline: str) -> None:
        """Write this calibration into ``path`` under ``pipeline`` (e.g. ``"both_stages"``), keeping the file's other
        pipelines: the features differ between the pipelines (the refiner's heatmap, or the first stage's)."""
        write_entry(path, FORMAT, pipeline, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike, pipeline: str, num_landmarks: int | None = None) -> "ErrorCalibration":
        """Read the calibration of ``pipeline`` from a file written by :meth:`save`.

        Raises:
            FileNotFoundError: no such file. LookupError: the file has no calibration of that pipeline.
            ValueError: not a calibration of this bundle, or one of another landmark count than the network's (naming
                both).
        """
        entry = read_entry(path, FORMAT, pipeline, "error calibration")
        if list(entry.get("features", [])) != list(FEATURES):
            raise InputError(
                f"{path}: the {pipeline!r} calibration uses features {entry.get('features')}, not {FEATURES}."
            )
        if num_landmarks is not None and len(entry["scales_mm"]) != int(num_landmarks):
            raise InputError(
                f"{path}: the calibration has {len(entry['scales_mm'])} landmarks, the network {num_landmarks}."
            )
        quantiles = {float(c): q for c, q in entry["quantiles"].items()}
        return cls(
            entry["beta"],
            entry["scales_mm"],
            quantiles,
            entry["count"],
            entry["images"],
            entry.get("description", ""),
            entry.get("widest_mm"),
        )
