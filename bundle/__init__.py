"""Anatomical landmark detection with CoorTransformer and the central loss, as MONAI components.

Coordinate convention, used everywhere in this package:

- Arrays follow MONAI's order: a 2D image loaded by MONAI is indexed ``[x, y]`` (column, then row); 3D ``[x, y, z]``.
- *Grid coordinates* are continuous array indices with pixel (voxel) centres at integers: index ``i`` covers
  ``[i - 0.5, i + 0.5]``. Heatmap targets, decoded points and network grids use them.
- *World coordinates* are millimetres from the image's affine as MONAI reads it (``pixel * spacing`` for 2D
  PNG/JPEG/BMP; RAS for NIfTI). Landmark files and metrics use them.

Example: ISBI 2015 image 001, landmark 1 (sella), senior annotation: pixel (x, y) = (835, 996), i.e. column 835,
row 996; world (83.5, 99.6) mm at 0.1 mm/px.

The version is the bundle's (``configs/metadata.json``); the package keeps no second copy of it.
"""

from . import analysis, handlers, sigma, transforms
from .codecs import GaussianHeatmapCodec
from .data import (
    LandmarkCacheDataset,
    OtherDimensionsError,
    check_datalist,
    check_entry,
    datalist_file,
    inference_list,
    load_datalist,
)
from .io import LandmarkFileError, Landmarks, read_landmarks, write_landmarks
from .io.files import refuse_existing
from .landmark_set import LandmarkSet, bundled_landmark_set, load_landmark_set
from .losses import CentralLoss, HeatmapFocalLoss
from .metrics import MeanRadialError, SuccessfulDetectionRate, radial_errors
from .networks import ChannelSpatialAttention, CoorTransformerBlock, CoorTransformerDetector
from .switches import Switches, as_bool
from .workflow import check_outputs, latest_checkpoint, lower_is_better

__all__ = [
    "as_bool",
    "bundled_landmark_set",
    "CentralLoss",
    "ChannelSpatialAttention",
    "CoorTransformerBlock",
    "CoorTransformerDetector",
    "GaussianHeatmapCodec",
    "HeatmapFocalLoss",
    "LandmarkFileError",
    "LandmarkSet",
    "Landmarks",
    "MeanRadialError",
    "SuccessfulDetectionRate",
    "Switches",
    "check_datalist",
    "check_entry",
    "OtherDimensionsError",
    "datalist_file",
    "LandmarkCacheDataset",
    "check_outputs",
    "inference_list",
    "latest_checkpoint",
    "load_datalist",
    "load_landmark_set",
    "lower_is_better",
    "radial_errors",
    "read_landmarks",
    "refuse_existing",
    "analysis",
    "handlers",
    "transforms",
    "write_landmarks",
]
