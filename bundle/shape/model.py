"""A statistical shape model of a landmark configuration: which configurations are anatomically plausible, where an
implausible landmark should be, and how large the anatomy is.

The model is a point distribution model (Cootes et al. 1995) read as a Gaussian: the training configurations are
aligned by generalised Procrustes analysis (translation, rotation, uniform scale; no reflection) to a mean shape of
unit centroid size, and their covariance is kept as probabilistic PCA (Tipping and Bishop 1999): ``modes`` principal
directions with their variances, and one residual variance for the rest. From that Gaussian, each landmark's
conditional distribution given the others (the Schur complement) says where it should be and how far from there it
may plausibly lie; a robust alignment keeps wrong landmarks from moving the frame (:mod:`.similarity`).

Frame: points are millimetres along the image's array axes (pixel index times spacing, MONAI's order), the frame
the network sees, not the world frame of the file's header: a mirrored or rotated image then gives a mirrored or
rotated configuration, which the model can tell apart. MONAI has no shape model; it is written here with NumPy.

Notation: K landmarks, D spatial dimensions, N training configurations.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InputError, MissingFileError
from ..io.files import read_json, write_whole
from .similarity import Similarity, fit_similarity, fit_similarity_robust, rotation_angle_deg

__all__ = ["ShapeModel", "ShapeFit", "procrustes_align"]

FORMAT = "coortransformer_landmarks shape model"
VERSION = 1
FEW_SHAPES, FEW_SHAPES_RESIDUAL_SD = 10, 0.02  # below 10 training configurations, a residual SD of 2 % of the size
POSE_VARIANCE = 1.0  # unit-size frame: the variance of the pose directions, far above any shape variance


@dataclass
class ShapeFit:
    """How a configuration (K, D) fits a :class:`ShapeModel`.

    Attributes:
        similarity: from the configuration's frame (mm) to the model's unit-size frame, fitted on the inliers.
        inlier: (K,) bool, landmarks consistent with the others.
        mahalanobis: (K,) squared Mahalanobis distance of each landmark from its conditional distribution given the
            inliers (but itself); NaN for landmarks not given.
        predicted: (K, D) where each landmark should be given the inliers (but itself), in the configuration's frame.
        predicted_sd: (K,) the conditional distribution's scatter per axis, in the configuration's units.
        size: the configuration's estimated centroid size, in its units (from the inliers' fit).
        rotation_deg: rotation of the configuration relative to the mean shape (signed in 2D).
        plausible: enough inliers, and a pose (rotation) and size within the model's limits.
    """

    similarity: Similarity
    inlier: np.ndarray
    mahalanobis: np.ndarray
    predicted: np.ndarray
    predicted_sd: np.ndarray
    size: float
    rotation_deg: float
    plausible: bool

    @property
    def implausible(self) -> np.ndarray:
        """(K,) bool: landmarks given but not inliers."""
        return np.isfinite(self.mahalanobis) & ~self.inlier


def procrustes_align(shapes: np.ndarray, iterations: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Generalised Procrustes analysis of (N, K, D) configurations.

    Returns:
        the mean shape (K, D), centred, of unit centroid size; the aligned shapes (N, K, D) (each similarity-fitted to
        the mean); each shape's centroid size (N,) in its own units.
    """
    shapes = np.asarray(shapes, dtype=np.float64)
    centred = shapes - shapes.mean(1, keepdims=True)
    sizes = np.sqrt((centred**2).sum((1, 2)))
    if not np.all(sizes > 0):
        raise InputError("a configuration whose landmarks all coincide has no shape.")
    mean = centred[0] / sizes[0]
    aligned = centred / sizes[:, None, None]
    for _ in range(iterations):
        aligned = np.stack([fit_similarity(s, mean).apply(s) for s in shapes])
        new = aligned.mean(0)
        new = new - new.mean(0)
        new /= np.sqrt((new**2).sum())
        done = np.abs(new - mean).max() < 1e-10
        mean = new
        if done:
            break
    return mean, aligned, sizes


class ShapeModel:
    """A Gaussian point distribution model of K landmarks in D dimensions (see the module docstring).

    Build it with :meth:`fit` from training configurations, keep it with :meth:`save` (a small JSON file beside the
    weights) and read it with :meth:`load`. :meth:`fit_configuration` tells which landmarks of a detected
    configuration are plausible, and where the others should be; :meth:`choose` picks, among candidate positions per
    landmark, the configuration that the detector's scores support and the model finds plausible.

    Args:
        names: K landmark names.
        mean: (K, D) mean shape, centred, unit centroid size.
        modes: (M, K*D) orthonormal principal directions of the aligned shapes (M may be 0).
        variances: (M,) their variances (unit-size frame, squared), each above ``residual_variance``.
        residual_variance: the variance of every other direction (unit-size frame, squared).
        size_mean, size_sd: the training configurations' centroid size, mean and SD, in mm.
        rotation_sd_deg: SD of the training configurations' rotation against the mean shape.
        count: N, the number of training configurations.
        max_rotation_deg: a configuration rotated further than this from the mean shape is implausible as a pose.
        min_inlier_fraction: a configuration with fewer inliers than this fraction of its given landmarks (or fewer
            than D + 1) is implausible as a whole. Two thirds: a cephalogram with a few gross misses keeps more, while
            19 peaks on a hand radiograph shared at most 11 in a consistent configuration.
        max_size_factor: a configuration larger or smaller than the training mean size by more than this factor is
            implausible as a whole (2: the pixel spacing, when assumed, may be wrong by that much).
        threshold: a landmark whose squared Mahalanobis distance (D degrees of freedom) exceeds this is implausible
            (13.8: chi-square's 0.999 quantile with 2 degrees of freedom; chosen by leave-one-out on ISBI 2015, where
            it caught 91 % of 10 mm misses and flagged 0.5 % of correct landmarks, docs/studies/shape_model.md).
    """

    def __init__(
        self,
        names: Sequence[str],
        mean: np.ndarray,
        modes: np.ndarray,
        variances: np.ndarray,
        residual_variance: float,
        size_mean: float,
        size_sd: float,
        rotation_sd_deg: float,
        count: int,
        max_rotation_deg: float = 45.0,
        min_inlier_fraction: float = 2.0 / 3.0,
        max_size_factor: float = 2.0,
        threshold: float = 13.8,
    ):
        self.names = [str(n) for n in names]
        self.mean = np.asarray(mean, dtype=np.float64)
        if self.mean.ndim != 2 or self.mean.shape[0] != len(self.names) or self.mean.shape[1] not in (1, 2, 3):
            raise InputError(
                f"mean must be (K, D) with K = {len(self.names)} names and D in 1..3, got {self.mean.shape}."
            )
        self.modes = np.asarray(modes, dtype=np.float64).reshape(-1, self.mean.size)
        self.variances = np.asarray(variances, dtype=np.float64).reshape(-1)
        if len(self.variances) != len(self.modes):
            raise InputError(f"{len(self.modes)} modes but {len(self.variances)} variances.")
        self.residual_variance = float(residual_variance)
        if not self.residual_variance > 0 or not np.all(self.variances >= self.residual_variance):
            raise InputError("the residual variance must be positive and below every mode's variance.")
        self.size_mean, self.size_sd = float(size_mean), float(size_sd)
        self.rotation_sd_deg, self.count = float(rotation_sd_deg), int(count)
        self.max_rotation_deg = float(max_rotation_deg)
        self.min_inlier_fraction = float(min_inlier_fraction)
        self.max_size_factor = float(max_size_factor)
        self.threshold = float(threshold)
        self._shape_covariance = self._covariance()

    @property
    def num_landmarks(self) -> int:
        return self.mean.shape[0]

    @property
    def spatial_dims(self) -> int:
        return self.mean.shape[1]

    # ------------------------------------------------------------------ fitting and files
    @classmethod
    def fit(
        cls,
        shapes: np.ndarray,
        names: Sequence[str],
        modes: int | None = None,
        min_residual_sd: float = 1e-3,
        **kwargs,
    ) -> "ShapeModel":
        """Fit to (N, K, D) complete training configurations in mm (the frame of the module docstring).

        Args:
            modes: principal directions kept (None: every direction the data determine).
            min_residual_sd: floor of the residual SD, in units of the mean shape's centroid size (1e-3: 0.1 mm of a
                100 mm configuration), so that the covariance is invertible; with fewer than 10 configurations it is
                at least 0.02 (2 mm of 100 mm), since so few say little about the population's variation.
            kwargs: the decision settings of the constructor (``threshold``, ``max_rotation_deg``, ...).

        Raises:
            ValueError: fewer than one configuration, a configuration with missing landmarks, or names that do not
                match K.
        """
        shapes = np.asarray(shapes, dtype=np.float64)
        if shapes.ndim != 3 or len(shapes) < 1:
            raise InputError(f"shapes must be (N, K, D) with N >= 1, got {shapes.shape}.")
        if len(names) != shapes.shape[1]:
            raise InputError(f"{len(names)} names for {shapes.shape[1]} landmarks.")
        if not np.isfinite(shapes).all():
            raise InputError("a shape model is fitted on complete configurations: some landmarks are missing or NaN.")
        count, k, dims = shapes.shape
        mean, aligned, sizes = procrustes_align(shapes)
        flat = aligned.reshape(count, k * dims) - mean.reshape(-1)
        covariance = flat.T @ flat / max(count - 1, 1)
        eigenvalues, eigenvectors = np.linalg.eigh(covariance)
        order = np.argsort(eigenvalues)[::-1]
        eigenvalues, eigenvectors = np.clip(eigenvalues[order], 0, None), eigenvectors[:, order]
        constrained = dims + dims * (dims - 1) // 2 + 1  # translation, rotation and scale are aligned away
        informative = max(0, min(count - 1, k * dims - constrained))
        keep = informative if modes is None else max(0, min(int(modes), informative))
        rest = eigenvalues[keep:informative]
        if count < FEW_SHAPES:  # a few configurations say little about the population's variation: be lenient
            min_residual_sd = max(min_residual_sd, FEW_SHAPES_RESIDUAL_SD)
        residual = max(float(rest.mean()) if len(rest) else 0.0, min_residual_sd**2)
        variances = np.maximum(eigenvalues[:keep], residual)
        rotations = [rotation_angle_deg(fit_similarity(s, mean).rotation) for s in shapes]
        return cls(
            names,
            mean,
            eigenvectors[:, :keep].T,
            variances,
            residual,
            float(sizes.mean()),
            float(sizes.std(ddof=1)) if count > 1 else 0.0,
            float(np.sqrt(np.mean(np.square(rotations)))),
            count,
            **kwargs,
        )

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "names": self.names,
            "spatial_dims": self.spatial_dims,
            "count": self.count,
            "mean": self.mean.tolist(),
            "modes": self.modes.tolist(),
            "variances": self.variances.tolist(),
            "residual_variance": self.residual_variance,
            "size_mean_mm": self.size_mean,
            "size_sd_mm": self.size_sd,
            "rotation_sd_deg": self.rotation_sd_deg,
            "max_rotation_deg": self.max_rotation_deg,
            "min_inlier_fraction": self.min_inlier_fraction,
            "max_size_factor": self.max_size_factor,
            "threshold": self.threshold,
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write the model as JSON (a few kB to a few hundred kB)."""
        write_whole(path, lambda f: f.write(json.dumps(self.to_dict(), indent=4) + "\n"))  # the model zoo's JSON style

    @classmethod
    def load(
        cls, path: str | os.PathLike, num_landmarks: int | None = None, spatial_dims: int | None = None, **overrides
    ) -> "ShapeModel":
        """Read a model written by :meth:`save`; ``overrides`` replace its decision settings (``threshold``, ...).

        Raises:
            FileNotFoundError: no such file.
            ValueError: not a shape model, or one of another landmark count or dimension than the network's (naming
                both).
        """
        path = Path(path)
        if not path.is_file():
            raise MissingFileError(
                f"the shape model {path} is missing: training writes it (shape_model.json beside model.pt); or run "
                "without the trust checks, --trust false."
            )
        data = read_json(path, "the shape model")
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InputError(f"{path}: not a shape model of this bundle (no 'format': {FORMAT!r}).")
        model_k, model_d = len(data["names"]), int(data["spatial_dims"])
        if num_landmarks is not None and model_k != int(num_landmarks):
            raise InputError(f"{path}: the shape model has {model_k} landmarks, the network {num_landmarks}.")
        if spatial_dims is not None and model_d != int(spatial_dims):
            raise InputError(f"{path}: the shape model is {model_d}D, the network {spatial_dims}D.")
        settings = {
            key: data[key]
            for key in ("max_rotation_deg", "min_inlier_fraction", "max_size_factor", "threshold")
            if key in data
        }
        settings.update(overrides)
        return cls(
            data["names"],
            np.asarray(data["mean"]),
            np.asarray(data["modes"]),
            np.asarray(data["variances"]),
            data["residual_variance"],
            data["size_mean_mm"],
            data["size_sd_mm"],
            data["rotation_sd_deg"],
            data["count"],
            **settings,
        )

    # ------------------------------------------------------------------ the Gaussian
    def _covariance(self) -> np.ndarray:
        """(K*D, K*D) covariance of the aligned shapes, ``V diag(var - res) V^T + res I``, plus a large variance
        (the mean shape's size, squared) along the pose directions at the mean shape (translation, rotation, scale):
        a configuration is aligned on a subset of its landmarks, so its pose is known only approximately, and the
        Procrustes constraints (centroid at 0, unit size) must not let the others fix a landmark's position."""
        size, dims = self.mean.size, self.spatial_dims
        shape = (self.modes.T * (self.variances - self.residual_variance)) @ self.modes
        basis = [np.tile(np.eye(dims)[d], self.num_landmarks) for d in range(dims)]
        basis.append(self.mean.reshape(-1))
        for a in range(dims):
            for b in range(a + 1, dims):
                generator = np.zeros((dims, dims))
                generator[b, a], generator[a, b] = 1.0, -1.0
                basis.append((self.mean @ generator.T).reshape(-1))
        pose, _ = np.linalg.qr(np.stack(basis, 1))
        return shape + self.residual_variance * np.eye(size) + POSE_VARIANCE * pose @ pose.T

    def landmark_sd(self) -> np.ndarray:
        """(K,) each landmark's marginal scatter per axis in the unit-size frame, pose variance left out."""
        shape = (self.modes.T * (self.variances - self.residual_variance)) @ self.modes
        diagonal = np.diag(shape).reshape(self.num_landmarks, self.spatial_dims) + self.residual_variance
        return np.sqrt(diagonal.mean(1))

    def _judge(
        self, aligned: np.ndarray, inlier: np.ndarray, noise: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For every landmark of the aligned configuration (K, D) (unit-size frame; rows of non-inliers may be
        anything finite): its squared Mahalanobis distance (K,) from its conditional distribution given the inliers
        other than itself, that distribution's mean (K, D) and covariance (K, D, D)."""
        count, dims = self.mean.shape
        covariance = self._shape_covariance + noise**2 * np.eye(self.mean.size)
        rows = (np.arange(count)[:, None] * dims + np.arange(dims)).reshape(count, dims)
        observed = rows[inlier].reshape(-1)
        precision = np.linalg.inv(covariance[np.ix_(observed, observed)])
        residual = (aligned - self.mean).reshape(-1)[observed]
        weighted = (precision @ residual).reshape(-1, dims)  # (P r)_k per inlier
        means, covariances = np.empty((count, dims)), np.empty((count, dims, dims))
        position = {k: i for i, k in enumerate(np.flatnonzero(inlier))}
        for k in range(count):
            if k in position:  # given the other inliers: through the precision matrix (Schur complement)
                block = slice(position[k] * dims, (position[k] + 1) * dims)
                c = np.linalg.inv(precision[block, block])
                means[k] = aligned[k] - c @ weighted[position[k]]
                covariances[k] = c
            else:  # given all inliers
                cross = covariance[np.ix_(rows[k], observed)]
                means[k] = self.mean[k] + cross @ (precision @ residual)
                covariances[k] = covariance[np.ix_(rows[k], rows[k])] - cross @ precision @ cross.T
        difference = aligned - means
        mahalanobis = np.einsum("kd,kd->k", difference, np.linalg.solve(covariances, difference[..., None])[..., 0])
        return mahalanobis, means, covariances

    # ------------------------------------------------------------------ judging configurations
    def fit_configuration(
        self,
        points: np.ndarray,
        given: np.ndarray | None = None,
        noise_mm: float = 1.0,
        scale_to_mm: float = 1.0,
        check_size: bool = True,
    ) -> ShapeFit:
        """Judge a configuration: a robust alignment to the mean shape, then, repeatedly, the least plausible inlier
        leaves the inliers while its squared Mahalanobis distance (given the other inliers) is over ``threshold``,
        and the most plausible outlier comes back while under it.

        Args:
            points: (K, D) positions in the frame of the module docstring (rows of NaN: not given).
            given: (K,) bool, landmarks to judge (default: the finite rows).
            noise_mm: the detector's scatter per axis, in mm, added to the model's own (a detected configuration is
                noisier than an annotated one).
            scale_to_mm: mm per unit of ``points`` (1 for points in mm).
            check_size: whether a size beyond ``max_size_factor`` of the mean makes the configuration implausible;
                False judges it up to scale (its pixel size unknown: the size is what will give the spacing).

        Raises:
            ValueError: ``points`` is not (K, D) for this model.
        """
        points = np.asarray(points, dtype=np.float64)
        if points.shape != self.mean.shape:
            raise InputError(f"the configuration is {points.shape}, the shape model's {self.mean.shape}.")
        given = np.isfinite(points).all(1) if given is None else np.asarray(given, bool) & np.isfinite(points).all(1)
        count, dims = self.mean.shape
        minimal = max(2, dims)
        if int(given.sum()) < minimal + 1:
            nan = np.full(count, np.nan)
            identity = Similarity(1.0, np.eye(dims), np.zeros(dims))
            return ShapeFit(
                identity, np.zeros(count, bool), nan, np.full_like(points, np.nan), nan, np.nan, np.nan, False
            )
        filled = np.where(given[:, None], points, 0.0)
        spread = self.landmark_sd()
        _, weights = fit_similarity_robust(points, self.mean, spread + 0.2 * np.median(spread), usable=given)
        inlier = given & (weights > 0)
        if int(inlier.sum()) < minimal + 1:
            inlier = given.copy()
        for _ in range(2 * count):
            similarity = fit_similarity(filled, self.mean, inlier.astype(float))
            noise = noise_mm / scale_to_mm * similarity.scale
            mahalanobis, _, _ = self._judge(similarity.apply(filled), inlier, noise)
            worst = np.where(inlier, mahalanobis, -np.inf)
            best_out = np.where(given & ~inlier, mahalanobis, np.inf)
            if worst.max() > self.threshold and int(inlier.sum()) > minimal + 1:
                inlier[int(worst.argmax())] = False
            elif best_out.min() <= self.threshold:
                inlier[int(best_out.argmin())] = True
            else:
                break
        similarity = fit_similarity(filled, self.mean, inlier.astype(float))
        noise = noise_mm / scale_to_mm * similarity.scale
        mahalanobis, predicted, predicted_cov = self._judge(similarity.apply(filled), inlier, noise)
        rotation = rotation_angle_deg(similarity.rotation.T)  # the configuration's turn against the mean shape
        enough = int(inlier.sum()) >= max(minimal + 1, math.ceil(self.min_inlier_fraction * int(given.sum()) - 1e-9))
        size_mm = scale_to_mm / similarity.scale
        sized = (
            not check_size or self.size_mean / self.max_size_factor <= size_mm <= self.size_mean * self.max_size_factor
        )
        plausible = bool(enough and sized and abs(rotation) <= self.max_rotation_deg)
        predicted_sd = np.sqrt(np.trace(predicted_cov, axis1=1, axis2=2) / dims) / similarity.scale
        return ShapeFit(
            similarity,
            inlier,
            np.where(given, mahalanobis, np.nan),
            similarity.invert(predicted),
            predicted_sd,
            1.0 / similarity.scale,
            rotation,
            plausible,
        )

    def choose(
        self,
        candidates: np.ndarray,
        log_scores: np.ndarray,
        noise_mm: float = 1.0,
        scale_to_mm: float = 1.0,
        score_weight: float = 2.0,
        rounds: int = 2,
        check_size: bool = True,
    ) -> tuple[np.ndarray, ShapeFit]:
        """Pick one candidate per landmark: the detector's best, unless the shape model finds it implausible; then the
        candidate that minimises ``mahalanobis - score_weight * log_score`` among those the model finds plausible
        given the inliers (the first candidate if none is).

        Args:
            candidates: (K, M, D) candidate positions per landmark, best first (NaN rows: fewer candidates).
            log_scores: (K, M) the detector's log score of each (e.g. the log of the heatmap's peak).
            noise_mm, scale_to_mm, check_size: as for :meth:`fit_configuration`.
            score_weight: how much the detector's score counts against the shape's (the Gaussian's log density is
                ``-mahalanobis / 2``, so 2 weighs both as log-likelihoods).
            rounds: how often the choice and the judgement alternate.

        Returns:
            the chosen index per landmark (K,) and the final :class:`ShapeFit` of the chosen configuration.
        """
        candidates = np.asarray(candidates, dtype=np.float64)
        log_scores = np.asarray(log_scores, dtype=np.float64)
        count = self.num_landmarks
        if candidates.ndim != 3 or candidates.shape[0] != count or candidates.shape[2] != self.spatial_dims:
            raise InputError(f"candidates must be ({count}, M, {self.spatial_dims}), got {candidates.shape}.")
        chosen = np.zeros(count, dtype=int)
        fit = self.fit_configuration(
            candidates[:, 0], noise_mm=noise_mm, scale_to_mm=scale_to_mm, check_size=check_size
        )
        for _ in range(rounds):
            if not fit.implausible.any() or int(fit.inlier.sum()) < max(2, self.spatial_dims):
                break
            changed = False
            noise = noise_mm / scale_to_mm * fit.similarity.scale
            current = fit.similarity.apply(np.nan_to_num(candidates[np.arange(count), chosen]))
            _, means, covariances = self._judge(current, fit.inlier, noise)
            for k in np.flatnonzero(fit.implausible):
                options = np.flatnonzero(np.isfinite(candidates[k]).all(1))
                if len(options) < 2:
                    continue
                residual = fit.similarity.apply(candidates[k, options]) - means[k]  # k is not an inlier
                distance = np.einsum("md,md->m", residual, np.linalg.solve(covariances[k], residual.T).T)
                cost = np.where(distance <= self.threshold, distance - score_weight * log_scores[k, options], np.inf)
                if np.isfinite(cost).any():
                    pick = int(options[int(np.argmin(cost))])
                    changed |= pick != chosen[k]
                    chosen[k] = pick
            if not changed:
                break
            fit = self.fit_configuration(
                candidates[np.arange(count), chosen], noise_mm=noise_mm, scale_to_mm=scale_to_mm, check_size=check_size
            )
        return chosen, fit
