"""MONAI dictionary transforms, by stage: image preprocessing, landmark targets, decoding, writing."""

from .decode import DecodeLandmarksd
from .image import AsGreyscaled, FinitePixelsd, PixelSpacingd, ShrinkLarged, SqueezeSpatiald
from .landmarks import GaussianHeatmapd, LandmarksToGridd, LoadLandmarksd
from .output import SaveLandmarksd

__all__ = [
    "AsGreyscaled",
    "FinitePixelsd",
    "SqueezeSpatiald",
    "PixelSpacingd",
    "ShrinkLarged",
    "LoadLandmarksd",
    "LandmarksToGridd",
    "GaussianHeatmapd",
    "DecodeLandmarksd",
    "SaveLandmarksd",
]
