"""Ignite handlers for the landmark metrics (attach to a MONAI SupervisedEvaluator, as MONAI's MeanDice)."""

from __future__ import annotations

from typing import Callable, Sequence

from ignite.engine import Engine
from monai.handlers import IgniteMetricHandler

from ..metrics import MeanRadialError, SuccessfulDetectionRate

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
    """SDR (%) over an epoch at the given radii. See the MRE handler.

    One radius puts one number under the attached name. Several put one number per radius under
    ``f"{name}_{radius:g}mm"`` (e.g. ``val_sdr_2.5mm``), so that MONAI's StatsHandler prints and TensorBoard plots each
    (a tensor would print as ``tensor([...])`` and cannot be plotted).
    """

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
        self.radii = [float(r) for r in radii]

    def completed(self, engine: Engine, name: str) -> None:
        if len(self.radii) == 1:
            super().completed(engine, name)
            return
        values = self.compute()
        for radius, value in zip(self.radii, values):
            engine.state.metrics[f"{name}_{radius:g}mm"] = float(value)
