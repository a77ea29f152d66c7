"""Landmark metrics."""

from .radial_error import MeanRadialError, SuccessfulDetectionRate, radial_errors
from .summary import summarise_errors

__all__ = ["MeanRadialError", "SuccessfulDetectionRate", "radial_errors", "summarise_errors"]
