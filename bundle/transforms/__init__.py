"""MONAI dictionary transforms, by stage: image preprocessing, landmark targets, decoding, trust, measurements, outputs."""

from .analysis import Measurementsd
from .chain import chain
from .decode import DecodeLandmarksd
from .detector import ORIENTATIONS, DetectLandmarksd, LandmarkDetector, orient
from .image import (
    AsGreyscaled,
    FinitePixelsd,
    FitToGridd,
    PixelSpacingd,
    ResampleToSpacingd,
    ShrinkLarged,
    SqueezeSpatiald,
)
from .label_map import LandmarkLabelMapd
from .landmarks import GaussianHeatmapd, LandmarksToGridd, LoadLandmarksd
from .output import LandmarkResultd
from .patches import RandLandmarkPatchesd, patch_affines, sample_patches
from .plausibility import PlausibleLandmarksd
from .refine import DecodePatchLandmarkd, RefineLandmarksd, decode_patches
from .review import REVIEW_REASONS, ErrorRadiusd, FlagLandmarksd, ReviewRiskd

__all__ = [
    "chain",
    "AsGreyscaled",
    "FinitePixelsd",
    "SqueezeSpatiald",
    "PixelSpacingd",
    "ShrinkLarged",
    "ResampleToSpacingd",
    "FitToGridd",
    "RandLandmarkPatchesd",
    "patch_affines",
    "sample_patches",
    "DecodePatchLandmarkd",
    "RefineLandmarksd",
    "decode_patches",
    "LoadLandmarksd",
    "LandmarksToGridd",
    "GaussianHeatmapd",
    "DecodeLandmarksd",
    "PlausibleLandmarksd",
    "LandmarkDetector",
    "DetectLandmarksd",
    "ORIENTATIONS",
    "orient",
    "ErrorRadiusd",
    "FlagLandmarksd",
    "REVIEW_REASONS",
    "ReviewRiskd",
    "Measurementsd",
    "LandmarkResultd",
    "LandmarkLabelMapd",
]
