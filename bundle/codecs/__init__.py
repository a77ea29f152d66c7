"""Heatmap encoding and decoding."""

from bundle.codecs.heatmap import GaussianHeatmapCodec

__all__ = ["GaussianHeatmapCodec"]
