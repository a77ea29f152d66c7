"""MONAI dictionary transforms for landmarks."""

from bundle.transforms.landmarks import (
    DecodeLandmarksd,
    GaussianHeatmapd,
    LandmarksToGridd,
    LoadLandmarksd,
    PixelSpacingd,
    SaveLandmarksd,
)

__all__ = [
    "DecodeLandmarksd",
    "GaussianHeatmapd",
    "LandmarksToGridd",
    "LoadLandmarksd",
    "PixelSpacingd",
    "SaveLandmarksd",
]
