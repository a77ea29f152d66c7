"""Calibrated uncertainty of predicted landmarks: conformal error radii."""

from .conformal import FEATURES, ErrorCalibration

__all__ = ["ErrorCalibration", "FEATURES"]
