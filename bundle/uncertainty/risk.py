"""The risk that a landmark is a miss, and the review threshold that spends a budget on the riskiest landmarks.

The risk of landmark k of an image is the probability that its point lies more than ``miss_mm`` (5 mm) from the
truth, given the trust layer's features (:data:`FEATURES`: the final and the first stage's heatmap width and peak,
how far the refiner moved the point, the shape model's judgement of the point given the others, the first stage's
second peak). It is a logistic regression with an L2 penalty on standardised features, fitted by Newton's method on
out-of-fold rows (``experiments/crossfit.py``: errors of models that never saw the image). Each landmark may have
its own intercept (``per_landmark``), chosen or not on out-of-fold data (``experiments/trust_study.py``).

The review flags a landmark when its risk reaches the threshold that the budget sets: the ``1 - budget`` quantile of
the fitted rows' risks, so that about ``budget`` of landmarks like those of the fit are flagged. The reason given is
the feature that pushed the risk up most (its weight times its standardised value): :data:`FEATURES`' reason names,
never the landmark's type alone.

MONAI has no risk model for point predictions and scikit-learn is not a dependency, hence this module. NumPy,
float64. Rows are images x landmarks, flattened; ``raw`` maps the names of :data:`RAW` to (N,) arrays.
"""

from __future__ import annotations

import math
import os
from typing import Mapping, Sequence

import numpy as np

from ..errors import InputError
from .pipeline_file import read_entry, write_entry

__all__ = ["FEATURES", "RAW", "MissRisk", "risk_features"]

FORMAT = "coortransformer_landmarks review risk"
_FLOOR = 1e-3  # widths, peaks and scores are clipped here before logarithms and ratios
RAW = (
    "spread_mm",
    "confidence",
    "coarse_spread_mm",
    "coarse_confidence",
    "proposed_move_mm",
    "shape_mahalanobis",
    "candidate_score_1",
    "candidate_score_2",
)


def _log(x):
    return np.log(np.clip(x, _FLOOR, None))


# name: (the review reason it gives, its value from the raw features). Each is oriented so that a larger value is
# expected to mean a likelier miss; the fit decides how much.
FEATURES = {
    "wide_heatmap": ("wide_heatmap", lambda r: _log(r["spread_mm"])),
    "weak_peak": ("weak_peak", lambda r: -_log(r["confidence"])),
    "wide_first_heatmap": ("wide_heatmap", lambda r: _log(r["coarse_spread_mm"])),
    "weak_first_peak": ("weak_peak", lambda r: -_log(r["coarse_confidence"])),
    "refiner_move": ("far_refiner_move", lambda r: np.log1p(np.clip(r["proposed_move_mm"], 0, None))),
    "shape_distance": ("unlike_shape", lambda r: np.log1p(np.clip(r["shape_mahalanobis"], 0, None))),
    "second_peak": (
        "second_peak",
        lambda r: np.clip(r["candidate_score_2"], 0, None) / np.clip(r["candidate_score_1"], _FLOOR, None),
    ),
}


def risk_features(raw: Mapping[str, np.ndarray], names: Sequence[str]) -> np.ndarray:
    """(N, F) the named :data:`FEATURES` of N rows; NaN where a raw value is not a finite number.

    Raises:
        ValueError: an unknown feature, or a raw value it needs is missing.
    """
    columns = []
    for name in names:
        if name not in FEATURES:
            raise InputError(f"unknown risk feature {name!r} (known: {', '.join(FEATURES)}).")
        try:
            with np.errstate(invalid="ignore", divide="ignore"):
                value = np.asarray(FEATURES[name][1]({k: np.asarray(v, np.float64) for k, v in raw.items()}), float)
        except KeyError as e:
            raise InputError(f"the risk feature {name!r} needs {e.args[0]!r}, which the data lacks.") from None
        columns.append(np.where(np.isfinite(value), value, np.nan))
    return np.stack(columns, -1)


def _newton(x: np.ndarray, y: np.ndarray, penalty: np.ndarray, iterations: int = 100) -> np.ndarray:
    """Coefficients minimising the mean logistic loss plus ``sum(penalty * w**2) / 2``; x carries its intercept
    columns (penalty 0 there)."""
    w = np.zeros(x.shape[1])
    n = len(y)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        gradient = x.T @ (p - y) / n + penalty * w
        hessian = (x * (p * (1 - p))[:, None]).T @ x / n + np.diag(penalty) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return w


class MissRisk:
    """The probability of a miss per landmark (see the module docstring).

    Args:
        features: names from :data:`FEATURES`.
        mean, scale: (F,) the standardisation of the features (the fit's mean and SD).
        weights: (F,) per standardised feature.
        intercepts: (K,) one per landmark, or (1,) shared.
        miss_mm: what a miss is (mm from the truth).
        quantiles: (101,) the fitted rows' risk at the quantiles 0, 0.01, ..., 1 (the review thresholds).
        count, misses: the fit's rows and misses among them.
        description: where the fit comes from.
    """

    def __init__(
        self,
        features: Sequence[str],
        mean: Sequence[float],
        scale: Sequence[float],
        weights: Sequence[float],
        intercepts: Sequence[float],
        miss_mm: float,
        quantiles: Sequence[float],
        count: int,
        misses: int,
        description: str = "",
    ):
        self.features = [str(f) for f in features]
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown or not self.features:
            raise InputError(f"risk features must be some of {', '.join(FEATURES)}, got {self.features}.")
        f = len(self.features)
        self.mean, self.scale, self.weights = (np.asarray(a, np.float64).reshape(-1) for a in (mean, scale, weights))
        self.intercepts = np.asarray(intercepts, np.float64).reshape(-1)
        self.quantiles = np.asarray(quantiles, np.float64).reshape(-1)
        if {self.mean.shape, self.scale.shape, self.weights.shape} != {(f,)} or not np.all(self.scale > 0):
            raise InputError(f"mean, scale (> 0) and weights must have {f} values, one per feature.")
        if len(self.quantiles) != 101 or np.any(np.diff(self.quantiles) < 0) or len(self.intercepts) < 1:
            raise InputError("quantiles must be 101 non-decreasing risks (0 %, 1 %, ..., 100 %), intercepts >= 1.")
        if not miss_mm > 0:
            raise InputError(f"miss_mm must be > 0, got {miss_mm}.")
        self.miss_mm, self.count, self.misses, self.description = float(miss_mm), int(count), int(misses), description

    @property
    def per_landmark(self) -> bool:
        return len(self.intercepts) > 1

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(
        cls,
        raw: Mapping[str, np.ndarray],
        errors: np.ndarray,
        landmarks: np.ndarray,
        num_landmarks: int,
        features: Sequence[str] = tuple(FEATURES),
        miss_mm: float = 5.0,
        penalty: float = 0.01,
        per_landmark: bool = False,
        description: str = "",
    ) -> "MissRisk":
        """Fit on N rows: ``raw`` (:data:`RAW` names -> (N,)), (N,) radial errors in mm, (N,) landmark indices.
        ``penalty``: the L2 weight on the standardised features' coefficients (and on the landmarks' intercepts
        about the shared one, with ``per_landmark``).

        Raises:
            ValueError: shapes disagree, a non-finite error or feature, no miss or no hit, a bad landmark index.
        """
        errors = np.asarray(errors, np.float64).reshape(-1)
        landmarks = np.asarray(landmarks).reshape(-1)
        x = risk_features(raw, features)
        if x.shape[0] != len(errors) or len(landmarks) != len(errors):
            raise InputError(f"raw features, errors and landmarks must have one row each, got {x.shape[0]}, "
                             f"{len(errors)} and {len(landmarks)}.")  # fmt: skip
        if not (np.isfinite(x).all() and np.isfinite(errors).all()):
            raise InputError("risk features and errors must be finite to fit the risk.")
        if landmarks.min(initial=0) < 0 or landmarks.max(initial=0) >= num_landmarks:
            raise InputError(f"landmark indices must lie in [0, {num_landmarks}).")
        y = (errors > miss_mm).astype(np.float64)
        if not 0 < y.sum() < len(y):
            raise InputError(f"the rows need misses (> {miss_mm} mm) and hits to fit a risk; {int(y.sum())} misses.")
        mean, scale = x.mean(0), x.std(0)
        scale = np.where(scale > 0, scale, 1.0)
        z = (x - mean) / scale
        if per_landmark:  # a shared intercept and penalised per-landmark departures from it
            design = np.concatenate([np.ones((len(y), 1)), np.eye(num_landmarks)[landmarks], z], 1)
            pen = np.r_[0.0, np.full(num_landmarks, penalty), np.full(z.shape[1], penalty)]
        else:
            design = np.concatenate([np.ones((len(y), 1)), z], 1)
            pen = np.r_[0.0, np.full(z.shape[1], penalty)]
        w = _newton(design, y, pen)
        intercepts = w[0] + w[1 : 1 + num_landmarks] if per_landmark else w[:1]
        weights = w[-z.shape[1] :]
        logit = (intercepts[landmarks] if per_landmark else intercepts[0]) + z @ weights
        quantiles = np.quantile(1.0 / (1.0 + np.exp(-logit)), np.linspace(0, 1, 101))
        return cls(features, mean, scale, weights, intercepts, miss_mm, quantiles, len(y), int(y.sum()), description)

    # ------------------------------------------------------------------ use
    def _contributions(self, raw: Mapping[str, np.ndarray], landmarks: np.ndarray):
        landmarks = np.asarray(landmarks).reshape(-1)
        if self.per_landmark and (landmarks.min(initial=0) < 0 or landmarks.max(initial=0) >= len(self.intercepts)):
            raise InputError(f"the risk has {len(self.intercepts)} landmarks; got index {landmarks.max()}.")
        z = (risk_features(raw, self.features) - self.mean) / self.scale
        intercept = self.intercepts[landmarks] if self.per_landmark else np.full(len(landmarks), self.intercepts[0])
        return intercept, z * self.weights

    def probability(self, raw: Mapping[str, np.ndarray], landmarks: np.ndarray) -> np.ndarray:
        """(N,) the probability of a miss of N rows (NaN where a feature is not a finite number)."""
        intercept, parts = self._contributions(raw, landmarks)
        return 1.0 / (1.0 + np.exp(-(intercept + parts.sum(-1))))

    def reasons(self, raw: Mapping[str, np.ndarray], landmarks: np.ndarray) -> list[str]:
        """(N,) the reason name of the feature that raised each row's risk most above the fit's average row (the
        largest weight x standardised value; the shared reason of two features adds their parts)."""
        _, parts = self._contributions(raw, landmarks)
        names = sorted({FEATURES[f][0] for f in self.features})
        by_reason = np.stack(
            [sum(parts[:, i] for i, f in enumerate(self.features) if FEATURES[f][0] == n) for n in names], -1
        )
        return [names[i] for i in np.argmax(np.nan_to_num(by_reason, nan=-np.inf), -1)]

    def threshold(self, budget: float) -> float:
        """The risk at which a review flags about ``budget`` (a fraction in [0, 1]) of landmarks like the fit's:
        the ``1 - budget`` quantile of the fitted rows' risks (interpolated between whole percents)."""
        if not 0 <= budget <= 1:
            raise InputError(f"the review budget must be a fraction in [0, 1], got {budget}.")
        if budget == 0:
            return math.inf
        return float(np.interp(1 - budget, np.linspace(0, 1, 101), self.quantiles))

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict:
        return {
            "features": self.features,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "weights": self.weights.tolist(),
            "intercepts": self.intercepts.tolist(),
            "miss_mm": self.miss_mm,
            "quantiles": self.quantiles.tolist(),
            "count": self.count,
            "misses": self.misses,
            "description": self.description,
        }

    def save(self, path: str | os.PathLike, pipeline: str) -> None:
        """Write this risk into ``path`` under ``pipeline`` (``"both_stages"``), keeping the file's other pipelines."""
        write_entry(path, FORMAT, pipeline, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike, pipeline: str, num_landmarks: int | None = None) -> "MissRisk":
        """Read the risk of ``pipeline`` from a file written by :meth:`save`.

        Raises:
            FileNotFoundError: no such file. LookupError: no risk of that pipeline in it. ValueError: not a risk file
                of this bundle, a broken entry, or per-landmark intercepts of another landmark count.
        """
        entry = read_entry(path, FORMAT, pipeline, "review risk")
        try:
            risk = cls(**entry)
        except TypeError as e:
            raise InputError(f"{path}: a broken review risk ({e}).") from None
        if num_landmarks is not None and risk.per_landmark and len(risk.intercepts) != int(num_landmarks):
            raise InputError(f"{path}: the risk has {len(risk.intercepts)} landmarks, the network {num_landmarks}.")
        return risk
