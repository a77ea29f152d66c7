"""Heatmap encoding and decoding."""

from .heatmap import GaussianHeatmapCodec

__all__ = ["GaussianHeatmapCodec"]
