"""Heatmap losses: the central loss and its baselines."""

from .central import CentralLoss
from .focal import HeatmapFocalLoss

__all__ = ["CentralLoss", "HeatmapFocalLoss"]
