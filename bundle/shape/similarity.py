"""Similarity transforms (rotation, uniform scale, translation) between point sets, in any dimension, and a robust
fit that tolerates wrong points.

Written here because neither MONAI nor PyTorch fits a similarity transform to corresponding points (Umeyama 1991)
or a robust one (least median of squares, then Tukey-weighted least squares). Reflections are never fitted: a
mirrored configuration cannot be aligned to an unmirrored one, which is what lets a shape model notice a mirrored
image. NumPy, float64, CPU: the point sets are small (tens of landmarks).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

__all__ = ["Similarity", "fit_similarity", "fit_similarity_robust", "rotation_angle_deg"]


@dataclass
class Similarity:
    """``y = scale * rotation @ x + translation`` for points x (D,) of the source frame, y of the target frame.

    Attributes:
        scale: positive number.
        rotation: (D, D) proper rotation (determinant +1).
        translation: (D,).
    """

    scale: float
    rotation: np.ndarray
    translation: np.ndarray

    def apply(self, points: np.ndarray) -> np.ndarray:
        """(..., D) source points -> target frame."""
        return self.scale * np.asarray(points, dtype=np.float64) @ self.rotation.T + self.translation

    def invert(self, points: np.ndarray) -> np.ndarray:
        """(..., D) target points -> source frame."""
        return (np.asarray(points, dtype=np.float64) - self.translation) @ self.rotation / self.scale


def fit_similarity(source: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None) -> Similarity:
    """The (weighted) least-squares similarity taking ``source`` (N, D) onto ``target`` (N, D): Umeyama's closed form,
    with the reflection removed (the best proper rotation).

    Raises:
        ValueError: shapes differ, fewer than 2 points with positive weight, or the weighted source has no extent.
    """
    source, target = np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if source.shape != target.shape or source.ndim != 2:
        raise InputError(f"source and target must both be (N, D), got {source.shape} and {target.shape}.")
    w = np.ones(len(source)) if weights is None else np.clip(np.asarray(weights, dtype=np.float64), 0, None)
    if int((w > 0).sum()) < 2:
        raise InputError("a similarity needs at least 2 points of positive weight.")
    unused = ~(w > 0)[:, None]  # a point of weight 0 may be NaN (not given)
    source, target = np.where(unused, 0.0, source), np.where(unused, 0.0, target)
    scale, rotation, translation, extent = _umeyama(source[None], target[None], w[None])
    if not extent[0] > 1e-24:
        raise InputError("the source points coincide: no similarity is defined.")
    return Similarity(float(scale[0]), rotation[0], translation[0])


def _umeyama(source: np.ndarray, target: np.ndarray, weights: np.ndarray):
    """Batched weighted Umeyama: (P, N, D) sources and targets, (P, N) weights -> scales (P,), proper rotations
    (P, D, D), translations (P, D) and the weighted source variances (P,) (0: no similarity is defined)."""
    w = weights / np.maximum(weights.sum(1, keepdims=True), 1e-300)
    mu_s, mu_t = np.einsum("pn,pnd->pd", w, source), np.einsum("pn,pnd->pd", w, target)
    xs, xt = source - mu_s[:, None], target - mu_t[:, None]
    var_s = np.einsum("pn,pnd->p", w, xs**2)
    covariance = np.einsum("pn,pnd,pne->pde", w, xt, xs)  # sum_i w_i t_i s_i^T
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones_like(singular)
    sign[:, -1] = np.where(np.linalg.det(u) * np.linalg.det(vt) < 0, -1.0, 1.0)
    rotation = (u * sign[:, None, :]) @ vt
    safe = np.where(var_s > 1e-24, var_s, 1.0)
    scale = (singular * sign).sum(1) / safe
    # a configuration only alignable with a reflection: keep the size ratio, drop the orientation match
    fallback = np.sqrt(np.einsum("pn,pnd->p", w, xt**2) / safe)
    scale = np.where(scale > 0, scale, fallback)
    translation = mu_t - scale[:, None] * np.einsum("pde,pe->pd", rotation, mu_s)
    return scale, rotation, translation, var_s


def fit_similarity_robust(
    source: np.ndarray,
    target: np.ndarray,
    spread: np.ndarray,
    usable: np.ndarray | None = None,
    max_subsets: int = 400,
    tukey_c: float = 4.685,
    iterations: int = 10,
    seed: int = 0,
) -> tuple[Similarity, np.ndarray]:
    """A similarity from ``source`` (N, D) onto ``target`` (N, D) that ignores up to about half of the points being
    wrong: least median of squares over minimal subsets (pairs in 2D, triples in 3D; all of them when there are at
    most ``max_subsets``, else that many drawn with ``seed``), then Tukey-biweight iteratively reweighted least squares.

    Args:
        spread: (N,) the expected scatter of each point in the target frame (its population SD), which scales its
            residual, so that a variable landmark is not mistaken for a wrong one.
        usable: (N,) bool, points that may be used (default all).

    Returns:
        the similarity and the final weights (N,) in [0, 1] (0: treated as wrong, or not usable).
    """
    source, target = np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)
    count, dims = source.shape
    usable = np.ones(count, bool) if usable is None else np.asarray(usable, bool).copy()
    usable &= np.isfinite(source).all(1) & np.isfinite(target).all(1)
    spread = np.asarray(spread, dtype=np.float64)
    index = np.flatnonzero(usable)
    minimal = max(2, dims)
    if len(index) < minimal:
        raise InputError(f"a robust similarity needs at least {minimal} usable points, got {len(index)}.")
    subsets = list(itertools.combinations(index.tolist(), minimal))
    if len(subsets) > max_subsets:
        rng = np.random.default_rng(seed)
        subsets = [tuple(rng.choice(index, minimal, replace=False)) for _ in range(max_subsets)]
    subsets = np.asarray(subsets, dtype=int)  # (P, m)
    scale, rotation, translation, extent = _umeyama(source[subsets], target[subsets], np.ones(subsets.shape))
    moved = scale[:, None, None] * np.einsum("pde,ne->pnd", rotation, source[index]) + translation[:, None]
    residual = np.linalg.norm(moved - target[index], axis=2) / spread[index]
    cost = np.where(extent > 1e-24, np.median(residual, axis=1), np.inf)
    if np.isfinite(cost).any():
        p = int(np.argmin(cost))
        best = Similarity(float(scale[p]), rotation[p], translation[p])
    else:
        best = fit_similarity(source[index], target[index])
    weights = usable.astype(np.float64)
    for _ in range(iterations):
        residual = np.linalg.norm(best.apply(source) - target, axis=1) / spread
        # the residual's robust scale: chi-like with D degrees of freedom, median about sqrt(D - 2/3) for Gaussians
        scale = max(float(np.median(residual[usable])) / np.sqrt(max(dims - 2.0 / 3.0, 0.5)), 1e-9)
        r = residual / (tukey_c * max(scale, 1.0))
        weights = np.where(usable & (r < 1), (1 - r**2) ** 2, 0.0)
        if int((weights > 0).sum()) < minimal:
            break
        best = fit_similarity(source, target, weights)
    return best, weights


def rotation_angle_deg(rotation: np.ndarray) -> float:
    """The angle of a proper rotation (D, D) in degrees: signed in 2D (counter-clockwise in the axes' order), the
    unsigned angle about its axis in 3D."""
    rotation = np.asarray(rotation, dtype=np.float64)
    if rotation.shape == (2, 2):
        return float(np.degrees(np.arctan2(rotation[1, 0], rotation[0, 0])))
    cosine = np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0)
    return float(np.degrees(np.arccos(cosine)))
