"""Calibrated uncertainty of the landmarks: error radii (:mod:`.conformal`) and the risk of a miss (:mod:`.risk`)."""

from .conformal import FEATURES, ErrorCalibration
from .risk import RAW, MissRisk, risk_features

__all__ = ["ErrorCalibration", "FEATURES", "MissRisk", "RAW", "risk_features"]
