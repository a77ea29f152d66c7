"""Heatmap losses: the central loss and its baselines."""

from bundle.losses.central import CentralLoss
from bundle.losses.focal import HeatmapFocalLoss

__all__ = ["CentralLoss", "HeatmapFocalLoss"]
