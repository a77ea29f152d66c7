"""Landmark metrics: radial error, mean radial error (MRE) and successful detection rate (SDR).

MONAI has no landmark metric, so these are written here, as :class:`monai.metrics.CumulativeIterationMetric`
subclasses (accumulate over iterations, ``aggregate()`` at the end, ``reset()``), with ignite handlers in
:mod:`bundle.handlers`.

Inputs are coordinates in world units (mm): ``y_pred`` and ``y`` of shape (B, K, D). A ground-truth landmark that is
not visible is a row of NaN in ``y`` (or ``mask[b, k] = 0``): its error is NaN and every aggregate ignores it.
"""

from __future__ import annotations

from typing import Sequence

import torch
from monai.metrics import CumulativeIterationMetric

from ..errors import InputError

__all__ = ["MeanRadialError", "SuccessfulDetectionRate", "radial_errors", "error_statistics", "detection_rates"]


def radial_errors(
    y_pred: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor | None = None,
    normalize_pair: Sequence[int] | None = None,
    normalize_length: float = 50.0,
) -> torch.Tensor:
    """Euclidean distance between predicted and true landmarks, (B, K), NaN where the landmark does not count.

    Args:
        y_pred: (B, K, D) predicted coordinates, world units (mm).
        y: (B, K, D) ground truth; NaN rows mark landmarks that are not visible.
        mask: optional (B, K), nonzero where the landmark counts.
        normalize_pair: optional 0-based landmark indices (a, b): errors are rescaled per image by
            ``normalize_length / |y_a - y_b|`` (e.g. the hand atlas's wrist width of 50 mm; say which pair you use:
            Payer et al. use (1, 5), the GU2Net code (0, 4)). An image whose pair is missing gets NaN errors.
        normalize_length: the length the pair is scaled to, in the unit the errors are reported in.
    """
    if y_pred.shape != y.shape or y.ndim != 3:
        raise InputError(f"y_pred and y must both be (B, K, D); got {tuple(y_pred.shape)} and {tuple(y.shape)}.")
    y_pred, y = y_pred.double(), y.double()
    errors = torch.linalg.vector_norm(y_pred - y, dim=-1)
    if mask is not None:
        if mask.shape != errors.shape:
            raise InputError(f"mask must be (B, K) = {tuple(errors.shape)}, got {tuple(mask.shape)}.")
        errors = torch.where(mask.to(errors.device).bool(), errors, torch.full_like(errors, float("nan")))
    if normalize_pair is not None:
        a, b = (int(i) for i in normalize_pair)
        reference = torch.linalg.vector_norm(y[:, a] - y[:, b], dim=-1)  # (B,)
        errors = errors * (normalize_length / reference)[:, None]
    return errors


class _RadialErrorMetric(CumulativeIterationMetric):
    """Accumulates per-image, per-landmark radial errors (B, K); subclasses reduce them."""

    def __init__(self, normalize_pair: Sequence[int] | None, normalize_length: float):
        super().__init__()
        self.normalize_pair = None if normalize_pair is None else tuple(int(i) for i in normalize_pair)
        self.normalize_length = float(normalize_length)

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        if y is None:
            raise InputError("ground-truth landmarks y are required.")
        return radial_errors(y_pred, y, kwargs.get("mask"), self.normalize_pair, self.normalize_length)

    def _errors(self) -> torch.Tensor:
        errors = self.get_buffer()
        if not isinstance(errors, torch.Tensor) or errors.numel() == 0:
            raise InputError("no landmarks were accumulated: call the metric on (y_pred, y) before aggregate().")
        return errors


def error_statistics(errors: torch.Tensor) -> dict:
    """MRE and SD (n - 1) overall and per landmark, and the number of errors counted, as plain Python numbers.

    A function of the (N, K) table alone (NaN where a landmark does not count), so that a table already gathered on
    one process is summarised there without the metric classes' synchronisation, which every process must join.
    """
    errors = torch.as_tensor(errors, dtype=torch.float64)
    return {
        "mean": errors.nanmean().item(),
        "std": _nanstd(errors).item(),
        "count": int((~torch.isnan(errors)).sum()),
        "per_landmark_mean": errors.nanmean(0).tolist(),
        "per_landmark_std": _nanstd(errors, 0).tolist(),
    }


def detection_rates(
    errors: torch.Tensor, radii: Sequence[float], per_landmark: bool = False, tolerance: float = 1e-6
) -> torch.Tensor:
    """Percentages of the counted errors of an (N, K) table (NaN: not counted) with ``e <= r + tolerance``:
    (R,) over all pairs, or (R, K) per landmark."""
    valid = ~torch.isnan(errors)
    radii = torch.tensor(_as_radii(radii), dtype=errors.dtype, device=errors.device).reshape(-1, 1, 1)
    hits = (errors[None] <= radii + tolerance) & valid[None]  # (R, N, K)
    if per_landmark:
        return 100.0 * hits.sum(1) / valid.sum(0).clamp_min(1)
    return 100.0 * hits.flatten(1).sum(1) / valid.sum().clamp_min(1)


def _as_radii(radii: float | Sequence[float]) -> list[float]:
    values = [float(r) for r in ([radii] if isinstance(radii, (int, float)) else radii)]
    if not values or any(r < 0 for r in values):
        raise InputError(f"radii must be a non-empty list of non-negative numbers, got {radii}.")
    return values


def _nanstd(errors: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Sample standard deviation (n - 1) ignoring NaN."""
    valid = ~torch.isnan(errors)
    count = valid.sum() if dim is None else valid.sum(dim)
    mean = errors.nanmean() if dim is None else errors.nanmean(dim, keepdim=True)
    squares = torch.where(valid, (errors - mean) ** 2, torch.zeros_like(errors))
    total = squares.sum() if dim is None else squares.sum(dim)
    return torch.sqrt(total / (count - 1).clamp_min(1))


class MeanRadialError(_RadialErrorMetric):
    """Mean radial error (MRE) over all visible (image, landmark) pairs, in the unit of the coordinates (mm).

    Args:
        reduction: ``"mean"``: the MRE, a scalar (the ignite handler's value); ``"mean_batch"``: per landmark, (K,);
            ``"none"``: the (N, K) errors of all accumulated images.
        normalize_pair, normalize_length: see :func:`radial_errors`.

    Example::

        >>> metric = MeanRadialError()
        >>> metric(y_pred=torch.zeros(2, 19, 2), y=torch.ones(2, 19, 2))
        >>> metric.aggregate()  # tensor(1.4142)
        >>> metric.summary()["std"]
    """

    def __init__(  # noqa: B042 - a metric named after the mean radial error, not an exception class
        self, reduction: str = "mean", normalize_pair: Sequence[int] | None = None, normalize_length: float = 50.0
    ):
        super().__init__(normalize_pair, normalize_length)
        if reduction not in ("mean", "mean_batch", "none"):
            raise InputError(f"reduction must be 'mean', 'mean_batch' or 'none', got {reduction!r}.")
        self.reduction = reduction

    def aggregate(self, reduction: str | None = None) -> torch.Tensor:
        errors = self._errors()
        reduction = self.reduction if reduction is None else reduction
        if reduction == "none":
            return errors
        return errors.nanmean(0) if reduction == "mean_batch" else errors.nanmean()

    def summary(self) -> dict:
        """:func:`error_statistics` of the accumulated errors (of every process, under torch.distributed)."""
        return error_statistics(self._errors())


class SuccessfulDetectionRate(_RadialErrorMetric):
    """Successful detection rate: the percentage of visible (image, landmark) pairs with radial error ``e <= r``.

    Annotations often lie on whole pixels, so some errors are exactly a radius (2.0 mm at 0.1 mm/px); ``e <= r`` is
    decided with a tolerance of ``tolerance`` (in the error unit, default 1e-6 mm), far below any data's precision,
    so that floating-point noise in ``sqrt`` does not move a landmark across the threshold.

    Args:
        radii: thresholds, in the error unit (mm); the ISBI convention is (2, 2.5, 3, 4).
        reduction: ``"mean"``: (R,) percentages over all pairs (a scalar for one radius); ``"mean_batch"``: (R, K)
            per landmark; ``"none"``: the (N, K) errors.
        normalize_pair, normalize_length: see :func:`radial_errors` (the hand data's thresholds are 2, 4, 10 mm).
    """

    def __init__(
        self,
        radii: Sequence[float] = (2.0, 2.5, 3.0, 4.0),
        reduction: str = "mean",
        normalize_pair: Sequence[int] | None = None,
        normalize_length: float = 50.0,
        tolerance: float = 1e-6,
    ):
        super().__init__(normalize_pair, normalize_length)
        self.radii = _as_radii(radii)
        if reduction not in ("mean", "mean_batch", "none"):
            raise InputError(f"reduction must be 'mean', 'mean_batch' or 'none', got {reduction!r}.")
        self.reduction = reduction
        self.tolerance = float(tolerance)

    def aggregate(self, reduction: str | None = None) -> torch.Tensor:
        errors = self._errors()
        reduction = self.reduction if reduction is None else reduction
        if reduction == "none":
            return errors
        return detection_rates(errors, self.radii, per_landmark=reduction == "mean_batch", tolerance=self.tolerance)
