"""MONAI dictionary transforms for landmarks and the images they belong to."""

from .image import ShrinkLarged
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
    "ShrinkLarged",
]
