"""Ignite handlers for the landmark metrics (attach to a MONAI SupervisedEvaluator, as MONAI's MeanDice)."""

from __future__ import annotations

from typing import Callable, Sequence

from monai.handlers import IgniteMetricHandler

from bundle.metrics import MeanRadialError, SuccessfulDetectionRate

__all__ = ["MeanRadialErrorHandler", "SuccessfulDetectionRateHandler"]


class MeanRadialErrorHandler(IgniteMetricHandler):
    """Mean radial error over an epoch. ``output_transform`` must give ``(y_pred, y)``: (B, K, D) world coordinates.

    Args: see :class:`bundle.MeanRadialError`; ``save_details`` keeps the (N, K) errors in
    ``engine.state.metric_details``.
    """

    def __init__(
        self,
        normalize_pair: Sequence[int] | None = None,
        normalize_length: float = 50.0,
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
    ):
        metric = MeanRadialError(reduction="mean", normalize_pair=normalize_pair, normalize_length=normalize_length)
        super().__init__(metric_fn=metric, output_transform=output_transform, save_details=save_details)


class SuccessfulDetectionRateHandler(IgniteMetricHandler):
    """SDR (%) over an epoch at the given radii (one radius gives a number, several a tensor). See the MRE handler."""

    def __init__(
        self,
        radii: Sequence[float] = (2.0,),
        normalize_pair: Sequence[int] | None = None,
        normalize_length: float = 50.0,
        output_transform: Callable = lambda x: x,
        save_details: bool = False,
    ):
        metric = SuccessfulDetectionRate(
            radii=radii, reduction="mean", normalize_pair=normalize_pair, normalize_length=normalize_length
        )
        super().__init__(metric_fn=metric, output_transform=output_transform, save_details=save_details)
