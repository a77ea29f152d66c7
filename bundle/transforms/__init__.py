"""MONAI dictionary transforms, by stage: image preprocessing, landmark targets, decoding, outputs."""

from .decode import DecodeLandmarksd
from .image import AsGreyscaled, FinitePixelsd, PixelSpacingd, ShrinkLarged, SqueezeSpatiald
from .label_map import LandmarkLabelMapd
from .landmarks import GaussianHeatmapd, LandmarksToGridd, LoadLandmarksd
from .output import LandmarkResultd, SaveLandmarksd

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
    "LandmarkResultd",
    "LandmarkLabelMapd",
]
