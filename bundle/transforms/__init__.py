"""MONAI dictionary transforms for landmarks."""

from .landmarks import (
    AsGreyscaled,
    DecodeLandmarksd,
    GaussianHeatmapd,
    LandmarksToGridd,
    LoadLandmarksd,
    PixelSpacingd,
    SaveLandmarksd,
    SqueezeSpatiald,
)

__all__ = [
    "AsGreyscaled",
    "SqueezeSpatiald",
    "DecodeLandmarksd",
    "GaussianHeatmapd",
    "LandmarksToGridd",
    "LoadLandmarksd",
    "PixelSpacingd",
    "SaveLandmarksd",
]
