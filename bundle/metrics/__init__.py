"""Landmark metrics."""

from bundle.metrics.radial_error import MeanRadialError, SuccessfulDetectionRate, radial_errors
from bundle.metrics.summary import summarise_errors

__all__ = ["MeanRadialError", "SuccessfulDetectionRate", "radial_errors", "summarise_errors"]
